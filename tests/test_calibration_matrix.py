"""`calibrate_teacher(..., method="matrix")` against independent computations.

The references here share no code with the library: the NLL and the ODIR
penalty are written again with `scipy.special.log_softmax` and a boolean
off-diagonal mask, minimised by BFGS with finite-difference gradients from
random starts (the library: trust-region Newton-CG with analytic gradient and
Hessian products, from the identity), and the unregularised fit in another
gauge (last row of W and last bias pinned at 0).
"""

import json

import numpy as np
import pytest
import scipy.optimize
import scipy.special

from ptloss_tf.calibration import REGULARIZATION_GRID
from ptloss_tf.calibration import TeacherCalibration
from ptloss_tf.calibration import calibrate_teacher
from ptloss_tf.calibration import clipped_log_probabilities
from ptloss_tf.calibration.matrix import choose_regularization
from ptloss_tf.calibration.matrix import cross_validation_folds
from ptloss_tf.calibration.matrix import matrix_hessian_product
from ptloss_tf.calibration.matrix import matrix_objective

FLOOR = 1e-12  # the documented probability floor, written out independently


def _log_p(p):
    return np.log(np.clip(np.asarray(p, dtype=np.float64), FLOOR, 1.0))


def _sample_labels(rng, probs):
    u = rng.random(len(probs))
    return np.minimum((np.cumsum(probs, axis=1) < u[:, None]).sum(1), probs.shape[1] - 1)


def _misspecified(seed, n, k):
    """Over-confident, shifted, noisy: no method fits it exactly."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    y = _sample_labels(rng, scipy.special.softmax(z, axis=1))
    teacher = scipy.special.softmax(
        1.7 * z + np.linspace(-0.8, 0.6, k) + 0.4 * rng.normal(size=(n, k)), axis=1)
    return teacher, y


def _nll(q, y):
    """Per-row NLL of probabilities `q` at the labels."""
    return -np.log(q[np.arange(len(y)), y])


def _independent_fit(p, y, weight, seed):
    """(penalised objective, W, b centred) by BFGS, numerical gradient."""
    log_p = _log_p(p)
    n, k = log_p.shape
    off = ~np.eye(k, dtype=bool)

    def objective(t):
        w, b = t[: k * k].reshape(k, k), t[k * k:]
        logits = np.stack([log_p @ w[i] for i in range(k)], axis=1) + b
        nll = -np.mean(scipy.special.log_softmax(logits, axis=1)[np.arange(n), y])
        return nll + weight * (np.sum(w[off] ** 2) / (k * (k - 1)) + np.sum(b**2) / k)

    rng = np.random.default_rng(seed)
    start = np.concatenate([(np.eye(k) + 0.3 * rng.normal(size=(k, k))).ravel(),
                            rng.normal(size=k)])
    res = scipy.optimize.minimize(objective, start, method="BFGS",
                                  options={"gtol": 1e-9, "maxiter": 20_000})
    w, b = res.x[: k * k].reshape(k, k), res.x[k * k:]
    return res.fun, w, b - b.mean()


def _library_objective(cal, p, y):
    k = cal.num_classes
    b = cal.bias - cal.bias.mean()  # the penalty's gauge: centred b
    theta = np.concatenate([cal.matrix.ravel(), b])
    return matrix_objective(theta, _log_p(p), y, cal.regularization)[0]


# --- agreement with an independent fit ----------------------------------------

#: BFGS with 2-point finite differences: gradient error ~1e-8 (sqrt of the
#: float64 epsilon times the objective's scale), the objective's curvature at
#: least ~2 weight / (K (K - 1)) = 5e-3 here, so its parameters are off by up
#: to ~1e-5 (6e-6 seen); 5e-5 leaves a margin and is still far below any
#: wrong answer (a wrong gradient or penalty moves them by > 1e-2).
PARAM_ATOL = 5e-5


@pytest.mark.parametrize("k, seed", [(3, 0), (5, 1)])
def test_regularised_fit_agrees_with_an_independent_optimisation(k, seed):
    weight = 0.05
    p, y = _misspecified(seed, 2000, k)
    cal = calibrate_teacher(p, y, method="matrix", regularization=weight)
    assert cal.regularization == weight
    ours = _library_objective(cal, p, y)
    for start_seed in (10, 11):
        value, w, b = _independent_fit(p, y, weight, start_seed)
        # The minimum: the same to 1e-9, and the library's not above scipy's.
        assert ours == pytest.approx(value, rel=1e-9, abs=0)
        assert ours <= value + 1e-12
        # Strictly convex with the penalty: the minimiser itself is unique.
        np.testing.assert_allclose(cal.matrix, w, atol=PARAM_ATOL)
        np.testing.assert_allclose(cal.bias, b - b[0], atol=PARAM_ATOL)
    assert cal.validation_nll_after < cal.validation_nll_before - 0.01


@pytest.mark.parametrize("k, seed", [(3, 2), (5, 3)])
def test_unregularised_fit_agrees_with_a_fit_in_another_gauge(k, seed):
    # Plain matrix scaling: W is defined only up to a constant per column, so
    # the reference pins the last row of W and the last bias at 0 (K^2 - 1
    # free parameters, strictly convex) and the maps are compared.
    p, y = _misspecified(seed, 2000, k)
    test_p, _ = _misspecified(seed + 100, 500, k)
    cal = calibrate_teacher(p, y, method="matrix", regularization=0.0)
    log_p = _log_p(p)

    def logits(t, lp):
        w = np.vstack([t[: k * (k - 1)].reshape(k - 1, k), np.zeros(k)])
        return lp @ w.T + np.append(t[k * (k - 1):], 0.0)

    def nll(t):
        return -np.mean(scipy.special.log_softmax(logits(t, log_p), axis=1)[np.arange(len(y)), y])

    start = np.random.default_rng(seed).normal(size=k * k - 1)
    res = scipy.optimize.minimize(nll, start, method="BFGS",
                                  options={"gtol": 1e-9, "maxiter": 20_000})
    assert cal.validation_nll_after == pytest.approx(res.fun, rel=1e-9)
    assert cal.validation_nll_after <= res.fun + 1e-12
    reference = scipy.special.softmax(logits(res.x, _log_p(test_p)), axis=1)
    np.testing.assert_allclose(cal(test_p), reference, atol=PARAM_ATOL)
    # The stored representative: off-diagonal column sums 0 (the gauge the
    # penalty picks as its weight -> 0), so the map is continuous in it.
    w = cal.matrix
    np.testing.assert_allclose(w.sum(axis=0) - np.diag(w), 0.0, atol=1e-12)


def test_matrix_contains_vector_scaling():
    # Nested models on the same rows: matrix (no penalty) <= vector.
    p, y = _misspecified(4, 1500, 3)
    vector = calibrate_teacher(p, y, method="vector")
    matrix = calibrate_teacher(p, y, method="matrix", regularization=0.0)
    assert matrix.validation_nll_after <= vector.validation_nll_after + 1e-12
    # A diagonal W with vector's parameters is vector's map.
    same = TeacherCalibration("matrix", 3, matrix=np.diag(vector.scale), bias=vector.bias)
    np.testing.assert_allclose(same(p), vector(p), rtol=1e-12)
    np.testing.assert_array_equal(vector.matrix, np.diag(vector.scale))


def test_gradient_and_hessian_products_match_finite_differences():
    p, y = _misspecified(5, 300, 3)
    log_p = _log_p(p)
    rng = np.random.default_rng(6)
    theta = np.concatenate([(np.eye(3) + 0.2 * rng.normal(size=(3, 3))).ravel(),
                            rng.normal(size=3)])
    for weight in (0.0, 0.7):
        def value(t):
            return matrix_objective(t, log_p, y, weight)[0]

        def grad(t):
            return matrix_objective(t, log_p, y, weight)[1]

        np.testing.assert_allclose(grad(theta), scipy.optimize.approx_fprime(theta, value, 1e-7),
                                   atol=1e-6)
        v = rng.normal(size=theta.size)
        h = 1e-6
        numeric = (grad(theta + h * v) - grad(theta - h * v)) / (2 * h)
        np.testing.assert_allclose(matrix_hessian_product(theta, v, log_p, y, weight),
                                   numeric, atol=1e-7)


# --- the penalty -----------------------------------------------------------------


def _diagonal_only_fit(p, y):
    """The limit of a huge weight: W diagonal, b = 0 (Nelder-Mead)."""
    log_p = _log_p(p)
    res = scipy.optimize.minimize(
        lambda a: np.mean(_nll(scipy.special.softmax(a * log_p, axis=1), y)),
        np.ones(log_p.shape[1]), method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-15, "maxiter": 20_000})
    return res.x


def test_a_huge_weight_gives_a_diagonal_map_without_bias():
    # ODIR leaves the diagonal free: W -> diag(a), b -> 0, with a the best
    # per-class scales without bias; off-diagonal entries and b shrink like
    # 1 / weight (gradient <= 1, curvature 2 weight / (K (K - 1))).
    p, y = _misspecified(7, 2000, 3)
    cal = calibrate_teacher(p, y, method="matrix", regularization=1e6)
    off = ~np.eye(3, dtype=bool)
    assert np.abs(cal.matrix[off]).max() < 1e-5
    assert np.abs(cal.bias).max() < 1e-5
    np.testing.assert_allclose(np.diag(cal.matrix), _diagonal_only_fit(p, y), atol=1e-5)
    # The penalty term never grows with the weight along the path.
    penalties = []
    for weight in (0.0, 1e-2, 1.0, 100.0, 1e6):
        fit = calibrate_teacher(p, y, method="matrix", regularization=weight)
        b = fit.bias - fit.bias.mean()
        penalties.append(np.sum(fit.matrix[off] ** 2) / 6 + np.sum(b**2) / 3)
    assert all(a >= b - 1e-12 for a, b in zip(penalties, penalties[1:])), penalties


def test_a_huge_weight_on_a_calibrated_teacher_gives_the_identity():
    rng = np.random.default_rng(8)
    z = rng.normal(size=(20_000, 3))
    p_star = scipy.special.softmax(z, axis=1)
    y = _sample_labels(rng, p_star)
    cal = calibrate_teacher(p_star, y, method="matrix", regularization=1e6)
    # W = I, b = 0 up to the diagonal's sampling error: the diagonal-only MLE
    # has standard errors ~0.01 at N = 20,000 (its Fisher information,
    # computed below); 4 SE.
    log_p = _log_p(p_star)
    q = scipy.special.softmax(np.diag(cal.matrix) * log_p, axis=1)
    jac = np.eye(3)[None] * log_p[:, :, None]  # d logit_k / d a_j
    cov = np.einsum("nk,kl->nkl", q, np.eye(3)) - np.einsum("nk,nl->nkl", q, q)
    fisher = np.einsum("nkp,nkl,nlr->pr", jac, cov, jac) / len(y)
    se = np.sqrt(np.diag(np.linalg.inv(fisher)) / len(y))
    assert se.max() < 0.02
    np.testing.assert_array_less(np.abs(np.diag(cal.matrix) - 1.0), 4 * se)
    np.testing.assert_allclose(cal.matrix[~np.eye(3, dtype=bool)], 0.0, atol=1e-5)
    np.testing.assert_allclose(cal.bias, 0.0, atol=1e-5)


# --- a bias only matrix scaling undoes -----------------------------------------


def _confused_teacher(seed, n, kind, alpha):
    """True logits z ~ N(0, 4 I), labels from softmax(z); the teacher confuses
    classes 1 and 2. "mixed": z'_1, z'_2 = (1-a) z_1 + a z_2, a z_1 + (1-a) z_2
    (rows of the mixing sum to 1, so W = its inverse undoes it exactly on
    log p); "moved" (issue 22): z'_1 = (1-a) z_1, z'_2 = z_2 + a z_1 (not
    exactly in the family: the normaliser of log p does not cancel)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(n, 3))
    p_star = scipy.special.softmax(z, axis=1)
    y = _sample_labels(rng, p_star)
    t = z.copy()
    if kind == "mixed":
        t[:, 1] = (1 - alpha) * z[:, 1] + alpha * z[:, 2]
        t[:, 2] = alpha * z[:, 1] + (1 - alpha) * z[:, 2]
    else:
        t[:, 1] = (1 - alpha) * z[:, 1]
        t[:, 2] = z[:, 2] + alpha * z[:, 1]
    return scipy.special.softmax(t, axis=1), y, p_star


@pytest.mark.parametrize("kind, alpha", [("mixed", 0.4), ("moved", 0.6)])
def test_confused_classes_are_repaired_by_matrix_not_vector_scaling(kind, alpha):
    p, y, _ = _confused_teacher(0, 3000, kind, alpha)
    held_p, held_y, held_star = _confused_teacher(1, 3000, kind, alpha)
    vector = calibrate_teacher(p, y, method="vector")
    matrix = calibrate_teacher(p, y, method="matrix")  # weight by CV
    gain = _nll(vector(held_p), held_y) - _nll(matrix(held_p), held_y)
    # Paired over the same held-out rows: > 3 standard errors (seen: 9.7 SE
    # for "mixed", 4.6 for "moved").
    assert gain.mean() > 3 * gain.std(ddof=1) / np.sqrt(len(gain))
    oracle = _nll(held_star, held_y).mean()
    if kind == "mixed":
        # In the family: matrix scaling reaches the Bayes NLL (0.6012 vs
        # 0.6000 seen), vector scaling stays far from it (0.678).
        assert matrix(held_p).shape == (3000, 3)
        assert _nll(matrix(held_p), held_y).mean() < oracle + 0.005
        assert _nll(vector(held_p), held_y).mean() > oracle + 0.05


# --- cross-validation ------------------------------------------------------------


def test_folds_are_stratified_and_deterministic():
    y = np.repeat([0, 1, 2], [23, 51, 7])
    fold = cross_validation_folds(y)
    np.testing.assert_array_equal(fold, cross_validation_folds(y))
    assert set(fold.tolist()) == set(range(5))
    for c in range(3):
        counts = np.bincount(fold[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert not np.array_equal(fold, cross_validation_folds(y, seed=1))


def test_cross_validation_picks_the_grid_weight_with_the_lowest_held_out_nll():
    p, y = _misspecified(9, 300, 3)
    log_p = clipped_log_probabilities(p)
    weight, scores = choose_regularization(log_p, y)
    assert list(scores) == list(REGULARIZATION_GRID) and weight in REGULARIZATION_GRID
    assert scores[weight] == min(scores.values())
    # One score recomputed with the independent fit: each fold's rows held
    # out once, the mean NLL over all rows.
    fold = cross_validation_folds(y)
    held_nll = np.empty(len(y))
    for f in range(5):
        train, held = fold != f, fold == f
        _, w, b = _independent_fit(p[train], y[train], 1.0, 12)
        held_nll[held] = _nll(scipy.special.softmax(_log_p(p[held]) @ w.T + b, axis=1), y[held])
    assert scores[1.0] == pytest.approx(held_nll.mean(), rel=1e-7)
    # calibrate_teacher refits on every row with the chosen weight, and
    # the same rows give the same map.
    cal = calibrate_teacher(p, y, method="matrix")
    assert cal.regularization == weight
    assert cal == calibrate_teacher(p, y, method="matrix", regularization=weight)
    assert cal == calibrate_teacher(p, y, method="matrix")


def test_cross_validation_regularises_small_splits_more():
    # Few rows for K^2 + K = 30 parameters: CV prefers a strong penalty; many
    # rows of a teacher matrix scaling fits exactly: a weak one.
    p, y = _misspecified(3, 60, 5)
    small = calibrate_teacher(p, y, method="matrix")
    p, y, _ = _confused_teacher(2, 3000, "mixed", 0.4)
    large = calibrate_teacher(p, y, method="matrix")
    assert small.regularization >= 10.0 and large.regularization <= 0.01


def test_cross_validation_breaks_ties_towards_the_larger_weight(monkeypatch):
    # Every weight fitted to the same map: every score ties exactly.
    from ptloss_tf.calibration import matrix

    monkeypatch.setattr(matrix, "fit_matrix", lambda log_p, y, weight: (np.eye(3), np.zeros(3)))
    p, y = _misspecified(12, 50, 3)
    weight, scores = choose_regularization(clipped_log_probabilities(p), y,
                                           grid=(0.0, 3.0, 0.5))
    assert len(set(scores.values())) == 1 and weight == 3.0


# --- config, JSON ---------------------------------------------------------------


@pytest.mark.parametrize("regularization", [0.0, 0.3, None])
def test_config_and_json_round_trips_are_exact(regularization, tmp_path):
    p, y = _misspecified(10, 400, 3)
    cal = calibrate_teacher(p, y, method="matrix", regularization=regularization)
    config = cal.get_config()
    assert set(config) == {"method", "num_classes", "matrix", "bias", "regularization",
                           "validation_nll_before", "validation_nll_after"}
    assert json.loads(json.dumps(config)) == config
    assert TeacherCalibration.from_config(config) == cal
    path = tmp_path / "calibration.json"
    text = cal.to_json(path)
    again = TeacherCalibration.from_json(path.read_text())
    assert path.read_text() == text and again == cal and hash(again) == hash(cal)
    np.testing.assert_array_equal(again(p), cal(p))
    np.testing.assert_array_equal(again.matrix, cal.matrix)
    assert again.scale is None and again.temperature is None
    assert again.regularization == cal.regularization
    # A hand-made map records no weight.
    by_hand = TeacherCalibration("matrix", 2, matrix=[[1, 0], [0.5, 1]], bias=[0, 0])
    assert by_hand.get_config()["regularization"] is None
    assert TeacherCalibration.from_json(by_hand.to_json()) == by_hand


def test_calibration_files_written_before_matrix_scaling_still_load():
    # Verbatim configs of the earlier module (no `matrix` / `regularization`).
    old = {
        "vector": '{"method": "vector", "num_classes": 2, "scale": [0.5, 2.0], '
                  '"bias": [0.0, 0.3], "validation_nll_before": 0.7, '
                  '"validation_nll_after": 0.6}',
        "temperature": '{"method": "temperature", "num_classes": 3, "temperature": 2.5, '
                       '"validation_nll_before": null, "validation_nll_after": null}',
    }
    vector = TeacherCalibration.from_json(old["vector"])
    p = np.array([[0.2, 0.8], [0.9, 0.1]])
    np.testing.assert_allclose(
        vector(p), scipy.special.softmax([0.5, 2.0] * np.log(p) + [0.0, 0.3], axis=1),
        rtol=1e-12)
    assert vector.get_config() == json.loads(old["vector"])
    temperature = TeacherCalibration.from_json(old["temperature"])
    assert temperature.get_config() == json.loads(old["temperature"])
    np.testing.assert_array_equal(temperature.matrix, np.eye(3) / 2.5)


def test_repr_and_attributes():
    cal = TeacherCalibration("matrix", 2, matrix=[[1.0, 0.0], [0.5, 1.0]], bias=[0.2, 0.0],
                             regularization=0.1)
    assert cal.bias.tolist() == [0.0, -0.2]
    assert repr(cal) == ("TeacherCalibration(method='matrix', num_classes=2, "
                         "matrix=[[1, 0], [0.5, 1]], bias=[0, -0.2], regularization=0.1)")
    with pytest.raises(ValueError):
        cal.matrix[0, 0] = 2.0
    p = np.array([[0.3, 0.7]])
    expected = scipy.special.softmax(np.log(p) @ np.array([[1.0, 0.0], [0.5, 1.0]]).T
                                     + [0.0, -0.2], axis=1)
    np.testing.assert_allclose(cal(p), expected, rtol=1e-12)


# --- bad input ------------------------------------------------------------------

_P, _Y = _misspecified(11, 40, 3)


@pytest.mark.parametrize(
    "probs, labels, kwargs, match",
    [
        (_P[:, :1], _Y, {}, r"`teacher_probs` must have at least 2 classes"),
        (_P[0], _Y, {}, r"`teacher_probs` must have rank 2"),
        (_P, _Y[:-1], {}, r"`labels` has 39 entries"),
        (_P * 2, _Y, {}, r"`teacher_probs` rows must sum to 1"),
        (-_P, _Y, {}, r"`teacher_probs` contains negative"),
        (_P, _Y, {"method": "dirichlet"}, r"`method` must be one of .*'matrix'\]"),
        (_P, _Y, {"regularization": -1.0}, r"`regularization` must be a finite number >= 0"),
        (_P, _Y, {"regularization": np.nan}, r"`regularization` must be a finite number >= 0"),
        (_P, _Y, {"regularization": "1"}, r"`regularization` must be a finite number >= 0"),
        (_P, _Y, {"regularization": True}, r"`regularization` must be a finite number >= 0"),
        (_P, _Y, {"method": "vector", "regularization": 1.0},
         r"`regularization` applies only to method 'matrix'"),
        (_P[:8], _Y[:8], {"regularization": 1.0}, r"has 8 examples.*fits 8 parameter"),
        (_P[:9], _Y[:9], {}, r"has 9 examples; choosing .* needs at least 10"),
    ],
)
def test_bad_input_to_calibrate_teacher(probs, labels, kwargs, match):
    kwargs = {"method": "matrix", **kwargs}
    with pytest.raises(ValueError, match=match) as error:
        calibrate_teacher(probs, labels, **kwargs)
    assert "\n" not in str(error.value)


def test_the_smallest_splits_are_accepted():
    assert calibrate_teacher(_P[:9], _Y[:9], method="matrix", regularization=1.0).num_classes == 3
    assert calibrate_teacher(_P[:10], _Y[:10], method="matrix").regularization in REGULARIZATION_GRID


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bias": [0, 0]}, r"`matrix` is required for method 'matrix'"),
        ({"matrix": np.eye(2)}, r"`bias` is required for method 'matrix'"),
        ({"matrix": np.eye(3), "bias": [0, 0]}, r"`matrix` must have shape \[2, 2\]"),
        ({"matrix": [1, 0, 0, 1], "bias": [0, 0]}, r"`matrix` must have shape \[2, 2\]"),
        ({"matrix": [[1, np.nan], [0, 1]], "bias": [0, 0]}, r"`matrix` contains NaN or inf"),
        ({"matrix": np.eye(2), "bias": [0, 0], "scale": [1, 1]},
         r"`scale` is not a parameter of method 'matrix'"),
        ({"matrix": np.eye(2), "bias": [0, 0], "regularization": -0.1},
         r"`regularization` must be a finite number >= 0"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        TeacherCalibration("matrix", 2, **kwargs)
    assert "\n" not in str(error.value)


def test_matrix_and_regularization_belong_to_matrix_only():
    with pytest.raises(ValueError, match=r"`matrix` is not a parameter of method 'vector'"):
        TeacherCalibration("vector", 2, scale=[1, 1], bias=[0, 0], matrix=np.eye(2))
    with pytest.raises(ValueError, match=r"`regularization` is not a parameter of method 'bias'"):
        TeacherCalibration("bias", 2, bias=[0, 0], regularization=1.0)
    with pytest.raises(ValueError, match=r"unknown \['weights'\]"):
        TeacherCalibration.from_config({"method": "matrix", "num_classes": 2,
                                        "weights": [[1, 0], [0, 1]], "bias": [0, 0]})


# --- the CLI's calibration stage ------------------------------------------------


def test_cli_calibration_matrix_fits_writes_and_reloads(tmp_path):
    """`--calibration matrix`: the stage fits on the validation split, writes
    calibration.json, maps every split, and the config survives the JSON of
    the prepared-data manifest (`prepared_data` stores `get_config()`)."""
    from ptloss_tf.training.config import parse_args
    from ptloss_tf.training.splits import Splits
    from ptloss_tf.training.teacher_calibration import CALIBRATION_FILE
    from ptloss_tf.training.teacher_calibration import choose_calibration
    from tests.helpers import TINY_RUN
    from tests.helpers import tiny_synthetic_task

    config = parse_args([*TINY_RUN, "--loss", "kl_calibrated", "--calibration", "matrix",
                         "--output-dir", str(tmp_path / "run")])
    task = tiny_synthetic_task()
    parts = task.splits()
    splits = Splits({s: part.examples for s, part in parts.items()},
                    {s: part.teacher_probs for s, part in parts.items()})
    lines = []
    calibration, calibrated = choose_calibration(config, splits, str(tmp_path), log=lines.append)
    expected = calibrate_teacher(task.validation.teacher_probs, task.validation.examples.labels,
                                 method="matrix")
    assert calibration == expected and calibration.regularization in REGULARIZATION_GRID
    saved = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert TeacherCalibration.from_config(saved) == calibration
    manifest = json.loads(json.dumps({"calibration": calibration.get_config()}))
    assert TeacherCalibration.from_config(manifest["calibration"]) == calibration
    for split, probs in splits.teacher_probs.items():
        got = calibrated.teacher_probs[split]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, calibration(probs), atol=1e-6)
    assert "matrix scaling" in lines[0] and "regularization=" in lines[0]
