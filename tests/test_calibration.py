"""`calibrate_teacher` / `TeacherCalibration` against independent computations.

Golden values come from closed forms (where the MLE has one), from scipy
optimisations written here in other parameterisations with other optimisers,
and from the parameters that generated the data (with tolerances from the
MLE's asymptotic standard errors, see `_standard_errors`).
"""

import json
import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.special
import scipy.stats

import ptloss_tf
from ptloss_tf.calibration import LOG_PROB_FLOOR
from ptloss_tf.calibration import TeacherCalibration
from ptloss_tf.calibration import calibrate_teacher

FLOOR = 1e-12  # the documented probability floor, written out independently


def _log_p(p):
    return np.log(np.clip(np.asarray(p, dtype=np.float64), FLOOR, 1.0))


def _sample_labels(rng, probs):
    """One categorical draw per row (inverse CDF)."""
    u = rng.random(len(probs))
    return np.minimum((np.cumsum(probs, axis=1) < u[:, None]).sum(1), probs.shape[1] - 1)


def _population(seed, n, k, sigma=1.0):
    """Logits z ~ N(0, sigma^2), the true posterior softmax(z), labels from it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=sigma, size=(n, k))
    p_star = scipy.special.softmax(z, axis=1)
    return z, p_star, _sample_labels(rng, p_star)


def _misspecified(seed, n, k):
    """A teacher none of the methods fits exactly: over-confident, shifted, noisy."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    y = _sample_labels(rng, scipy.special.softmax(z, axis=1))
    shift = np.linspace(-0.8, 0.6, k)
    teacher = scipy.special.softmax(
        1.7 * z + shift + 0.4 * rng.normal(size=(n, k)), axis=1
    )
    return teacher, y


# --- independent NLLs, in other parameterisations ---------------------------


def _nll_from_logits(logits, y):
    return -np.mean(scipy.special.log_softmax(logits, axis=1)[np.arange(len(y)), y])


def _independent_fit(method, p, y, seed):
    """Minimum NLL and parameters (scale, bias with bias[0] = 0) by other means.

    temperature: bounded Brent on log T (the library fits 1/T by L-BFGS-B);
    bias: Nelder-Mead with the bias pinned at the LAST class;
    vector: BFGS with finite-difference gradients, bias pinned at the last
    class, a random start.
    """
    log_p = _log_p(p)
    k = log_p.shape[1]
    rng = np.random.default_rng(seed)
    if method == "temperature":
        res = scipy.optimize.minimize_scalar(
            lambda log_t: _nll_from_logits(log_p / np.exp(log_t), y),
            bounds=(-6.0, 6.0), method="bounded",
            options={"xatol": 1e-12, "maxiter": 1000},
        )
        t = math.exp(res.x)
        return res.fun, np.full(k, 1 / t), np.zeros(k)

    def split(theta):
        if method == "bias":
            scale, free = np.ones(k), theta
        else:
            scale, free = theta[:k], theta[k:]
        return scale, np.append(free, 0.0)  # bias of the last class = 0

    def nll(theta):
        scale, bias = split(theta)
        return _nll_from_logits(scale * log_p + bias, y)

    if method == "bias":
        start = rng.normal(size=k - 1)
        res = scipy.optimize.minimize(
            nll, start, method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-15, "maxiter": 40_000,
                     "maxfev": 40_000},
        )
    else:
        start = np.concatenate([rng.uniform(0.3, 2.0, k), rng.normal(size=k - 1)])
        res = scipy.optimize.minimize(nll, start, method="BFGS",
                                      options={"gtol": 1e-9, "maxiter": 10_000})
    scale, bias = split(res.x)
    return res.fun, scale, bias - bias[0]


@pytest.mark.parametrize("method", ["temperature", "bias", "vector"])
@pytest.mark.parametrize("k, seed", [(2, 0), (4, 1)])
def test_minimum_agrees_with_an_independent_optimisation(method, k, seed):
    p, y = _misspecified(seed, 3000, k)
    cal = calibrate_teacher(p, y, method=method)
    for start_seed in (10, 11):
        nll, scale, bias = _independent_fit(method, p, y, start_seed)
        assert cal.validation_nll_after == pytest.approx(nll, rel=1e-6)
        # The library must not be worse than scipy at all (beyond rounding).
        assert cal.validation_nll_after <= nll * (1 + 1e-9)
        # Strictly convex here (N >> parameters): the minimiser is unique too.
        np.testing.assert_allclose(cal.scale, scale, atol=2e-4)
        np.testing.assert_allclose(cal.bias, bias, atol=2e-4)
    # The calibration is a real improvement on this teacher.
    assert cal.validation_nll_after < cal.validation_nll_before - 0.01


def test_nlls_are_those_of_the_teacher_and_of_the_calibrated_probabilities():
    p, y = _misspecified(2, 2000, 3)
    cal = calibrate_teacher(p, y)
    rows = np.arange(len(y))
    assert cal.validation_nll_before == pytest.approx(
        -np.mean(np.log(p[rows, y])), rel=1e-12)
    assert cal.validation_nll_after == pytest.approx(
        -np.mean(np.log(cal(p)[rows, y])), rel=1e-12)


# --- closed forms -----------------------------------------------------------


def test_temperature_closed_form_binary():
    # Every row is (0.1, 0.9), 70% of labels are 1: the MLE has q_1 = 0.7,
    # 9^(1/T) = 7/3.
    p = np.tile([0.1, 0.9], (10, 1))
    y = np.array([1] * 7 + [0] * 3)
    cal = calibrate_teacher(p, y, method="temperature")
    assert cal.temperature == pytest.approx(math.log(9) / math.log(7 / 3), rel=1e-7)
    np.testing.assert_allclose(cal(p[:1]), [[0.3, 0.7]], atol=1e-9)
    assert cal.validation_nll_after == pytest.approx(
        -(0.7 * math.log(0.7) + 0.3 * math.log(0.3)), rel=1e-10)


def test_bias_closed_form_matches_the_label_frequencies():
    # One teacher row for everyone: the MLE makes q the empirical label
    # frequencies f, so bias_k = log(f_k / p_k) - log(f_0 / p_0).
    p0 = np.array([0.2, 0.3, 0.5])
    counts = np.array([50, 20, 30])
    y = np.repeat(np.arange(3), counts)
    cal = calibrate_teacher(np.tile(p0, (100, 1)), y, method="bias")
    f = counts / counts.sum()
    golden = np.log(f / p0) - np.log(f[0] / p0[0])
    np.testing.assert_allclose(cal.bias, golden, atol=1e-7)
    np.testing.assert_allclose(cal(p0[None]), f[None], atol=1e-8)
    assert cal.scale.tolist() == [1.0, 1.0, 1.0] and cal.temperature is None


# --- recovery of generating parameters ---------------------------------------


def _standard_errors(method, cal, p):
    """Asymptotic standard errors of the fitted (scale, bias) at the fit.

    The data are drawn from the calibration model itself, so the MLE is
    asymptotically normal with covariance (N * Fisher)^-1; the Fisher
    information of a softmax-linear model is mean_n J_n^T (diag q - q q^T) J_n
    with J_n = d logits / d parameters. Returns (se_scale, se_bias) as [K]
    arrays, 0 where a parameter is fixed; for temperature se_scale is the SE
    of 1/T in every entry.
    """
    log_p = _log_p(p)
    n, k = log_p.shape
    q = scipy.special.softmax(cal.scale * log_p + cal.bias, axis=1)
    eye = np.broadcast_to(np.eye(k), (n, k, k))
    if method == "temperature":
        jac = log_p[:, :, None]
    elif method == "bias":
        jac = eye[:, :, 1:]
    else:
        jac = np.concatenate([eye * log_p[:, :, None], eye[:, :, 1:]], axis=2)
    cov_q = np.einsum("nk,kl->nkl", q, np.eye(k)) - np.einsum("nk,nl->nkl", q, q)
    fisher = np.einsum("nkp,nkl,nlr->pr", jac, cov_q, jac) / n
    se = np.sqrt(np.diag(np.linalg.inv(fisher)) / n)
    if method == "temperature":
        return np.full(k, se[0]), np.zeros(k)
    if method == "bias":
        return np.zeros(k), np.concatenate([[0.0], se])
    return se[:k], np.concatenate([[0.0], se[k:]])


#: 4 standard errors: a two-sided normal tail of 6e-5 per parameter, so a
#: correct fit fails with negligible probability (and the seeds are fixed).
#: With N = 20,000 every SE is below 0.1 (checked), so 4 SE < 0.4 is less
#: than the distance to any wrong answer tested for (scale 1 vs 0.4, bias 0
#: vs -0.9 / 0.8, T 1 vs 2.5).
Z = 4.0
N_RECOVERY = 20_000


def _assert_recovered(method, cal, p, scale, bias):
    se_scale, se_bias = _standard_errors(method, cal, p)
    assert se_scale.max() < 0.1 and se_bias.max() < 0.1, (se_scale, se_bias)
    np.testing.assert_array_less(np.abs(cal.scale - scale), Z * se_scale + 1e-12)
    np.testing.assert_array_less(np.abs(cal.bias - bias), Z * se_bias + 1e-12)


@pytest.mark.parametrize("method", ["temperature", "bias", "vector"])
@pytest.mark.parametrize("k", [2, 3])
def test_a_calibrated_teacher_gets_the_identity(method, k):
    _, p_star, y = _population(100 + k, N_RECOVERY, k)
    cal = calibrate_teacher(p_star, y, method=method)
    _assert_recovered(method, cal, p_star, np.ones(k), np.zeros(k))
    if method == "temperature":
        se_t = _standard_errors(method, cal, p_star)[0][0] / cal.scale[0] ** 2
        assert abs(cal.temperature - 1.0) < Z * se_t
    # Wilks: 2 N (NLL_before - NLL_after) ~ chi^2 with one degree of freedom
    # per free parameter when the identity is the truth.
    free = {"temperature": 1, "bias": k - 1, "vector": 2 * k - 1}[method]
    gain = cal.validation_nll_before - cal.validation_nll_after
    assert 0 <= gain < scipy.stats.chi2.ppf(1 - 1e-4, free) / (2 * N_RECOVERY)


@pytest.mark.parametrize("k", [2, 3])
def test_an_over_confident_teacher_gets_its_temperature(k):
    z, _, y = _population(200 + k, N_RECOVERY, k)
    p = scipy.special.softmax(2.5 * z, axis=1)  # logits times 2.5
    cal = calibrate_teacher(p, y, method="temperature")
    se_inverse_t = _standard_errors("temperature", cal, p)[0][0]
    se_t = se_inverse_t / cal.scale[0] ** 2  # delta method, T = 1 / s
    assert se_t < 0.1
    assert abs(cal.temperature - 2.5) < Z * se_t
    # Vector scaling holds the same model (scale = 1/2.5 in every class).
    vector = calibrate_teacher(p, y, method="vector")
    _assert_recovered("vector", vector, p, np.full(k, 0.4), np.zeros(k))


@pytest.mark.parametrize("method", ["bias", "vector"])
def test_a_prior_shifted_teacher_gets_minus_the_shift(method):
    shift = np.array([0.3, 1.2, -0.5])
    z, _, y = _population(300, N_RECOVERY, 3)
    p = scipy.special.softmax(z + shift, axis=1)
    cal = calibrate_teacher(p, y, method=method)
    golden = -(shift - shift[0])  # relative to class 0: [0, -0.9, 0.8]
    _assert_recovered(method, cal, p, np.ones(3), golden)


# --- numerics at the floor ----------------------------------------------------


def _one_hot_teacher(tiny):
    """100 one-hot rows, 90 right; the zeros replaced by `tiny`."""
    y = np.array([0] * 30 + [1] * 30 + [2] * 30 + [1] * 5 + [2] * 5)
    right = np.array([0] * 30 + [1] * 30 + [2] * 30 + [0] * 10)
    p = np.full((100, 3), tiny)
    p[np.arange(100), right] = 1.0 - 2 * tiny
    return p, y


def test_one_hot_teacher_temperature_is_set_by_the_documented_floor():
    assert LOG_PROB_FLOOR == pytest.approx(math.log(1e-12), rel=1e-15)
    # q_right = 1 / (1 + 2 * 1e-12^(1/T)) and the MLE has q_right = 0.9:
    # 1e-12^(1/T) = 1/18, T = -log(1e-12) / log(18).
    golden = -math.log(FLOOR) / math.log(18)
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no log(0), overflow or 0 * inf warnings
        for tiny in (0.0, 1e-30, 1e-300):
            p, y = _one_hot_teacher(tiny)
            cal = calibrate_teacher(p, y, method="temperature")
            assert cal.temperature == pytest.approx(golden, rel=1e-7)
            results.append(cal(p))
    for q in results:
        assert np.isfinite(q).all()
        np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-12)
        np.testing.assert_allclose(q[0], [0.9, 0.05, 0.05], atol=1e-7)
    # Exact zeros and 1e-30 entries are the same teacher after the floor.
    np.testing.assert_allclose(results[0], results[1], atol=1e-15)


@pytest.mark.parametrize("method", ["bias", "vector"])
def test_one_hot_and_near_one_hot_rows_are_stable(method):
    p, y = _one_hot_teacher(0.0)
    p[::7] = [1e-30, 1e-30, 1.0]  # near-one-hot rows among them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal = calibrate_teacher(p, y, method=method)
        q = cal(np.vstack([p, [[1.0, 0.0, 0.0]], [[1e-30, 1.0, 1e-30]]]))
    assert np.isfinite(cal.scale).all() and np.isfinite(cal.bias).all()
    assert np.isfinite(q).all() and (q >= 0).all()
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-12)
    assert cal.validation_nll_after <= cal.validation_nll_before


def test_separable_labels_give_a_finite_small_temperature():
    # An under-confident teacher that is always right: the NLL falls towards 0
    # as T -> 0 with no finite minimiser; the fit must stop finite.
    y = np.array([0, 1] * 50)
    p = np.where(y[:, None] == np.arange(2), 0.6, 0.4)
    cal = calibrate_teacher(p, y, method="temperature")
    assert 0 < cal.temperature < 0.05
    assert cal.validation_nll_after < 1e-6 < cal.validation_nll_before
    assert np.isfinite(cal(p)).all()


def test_temperature_stays_positive_for_an_anti_informative_teacher():
    # A teacher that is always wrong: the unconstrained optimum is 1/T < 0;
    # the fit stays at the smallest 1/T (a near-uniform, still valid map).
    y = np.array([0, 1] * 50)
    p = np.where(y[:, None] == np.arange(2), 0.3, 0.7)
    cal = calibrate_teacher(p, y, method="temperature")
    assert cal.temperature > 1e5
    np.testing.assert_allclose(cal(p), 0.5, atol=1e-5)


# --- the map itself ----------------------------------------------------------


def test_call_matches_each_method_written_directly():
    rng = np.random.default_rng(5)
    p = rng.dirichlet([0.5, 1.0, 2.0], size=50)
    t = TeacherCalibration("temperature", 3, temperature=1.7)
    powered = p ** (1 / 1.7)
    np.testing.assert_allclose(t(p), powered / powered.sum(1, keepdims=True), rtol=1e-12)
    b = TeacherCalibration("bias", 3, bias=[0.0, 0.4, -1.1])
    shifted = p * np.exp([0.0, 0.4, -1.1])
    np.testing.assert_allclose(b(p), shifted / shifted.sum(1, keepdims=True), rtol=1e-12)
    v = TeacherCalibration("vector", 3, scale=[0.5, 1.5, 2.0], bias=[0.0, 0.2, -0.3])
    np.testing.assert_allclose(
        v(p), scipy.special.softmax([0.5, 1.5, 2.0] * np.log(p) + [0.0, 0.2, -0.3], axis=1),
        rtol=1e-12)
    out = v(p.astype(np.float32))
    assert out.dtype == np.float64 and out.shape == (50, 3)
    identity = TeacherCalibration("vector", 3, scale=np.ones(3), bias=np.zeros(3))
    np.testing.assert_allclose(identity(p), p, rtol=1e-12)


def test_rows_are_renormalised_before_the_log():
    # check_probabilities accepts sums within 1e-2 (bfloat16 teachers); with
    # per-class scales an unnormalised row would change the calibrated output.
    p = np.array([[0.2, 0.8], [0.7, 0.3]])
    cal = TeacherCalibration("vector", 2, scale=[0.5, 2.0], bias=[0.0, 0.3])
    np.testing.assert_allclose(cal(p * 1.008), cal(p), rtol=1e-12)
    fitted = calibrate_teacher(np.tile(p, (20, 1)) * 0.995, [1, 0, 0, 1] * 10)
    again = calibrate_teacher(np.tile(p, (20, 1)), [1, 0, 0, 1] * 10)
    assert fitted.validation_nll_after == pytest.approx(again.validation_nll_after, rel=1e-9)


@pytest.mark.parametrize("method", ["temperature", "bias", "vector"])
def test_analytic_gradient_matches_finite_differences(method):
    # The fit's gradient (private): a wrong one can still end at the minimum
    # by luck, or stop early; check it directly.
    from ptloss_tf.calibration import nll_and_gradient

    p, y = _misspecified(6, 400, 3)
    log_p = _log_p(p)
    size = {"temperature": 1, "bias": 2, "vector": 5}[method]
    theta = np.random.default_rng(7).uniform(0.2, 1.5, size)
    analytic = nll_and_gradient(theta, log_p, y, method)[1]
    numeric = scipy.optimize.approx_fprime(
        theta, lambda t: nll_and_gradient(t, log_p, y, method)[0], 1e-7)
    np.testing.assert_allclose(analytic, numeric, atol=1e-5)


def test_bias_is_shifted_to_class_zero():
    cal = TeacherCalibration("bias", 3, bias=[1.0, 2.0, 0.5])
    assert cal.bias.tolist() == [0.0, 1.0, -0.5]
    p = np.array([[0.2, 0.3, 0.5]])
    e = p * np.exp([1.0, 2.0, 0.5])
    np.testing.assert_allclose(cal(p), e / e.sum(), rtol=1e-12)


def test_attributes_per_method():
    t = TeacherCalibration("temperature", 2, temperature=4.0)
    assert t.method == "temperature" and t.num_classes == 2 and t.temperature == 4.0
    assert t.scale.tolist() == [0.25, 0.25] and t.bias.tolist() == [0.0, 0.0]
    assert t.validation_nll_before is None and t.validation_nll_after is None
    fitted = calibrate_teacher(*_misspecified(3, 500, 3), method="vector")
    assert fitted.method == "vector" and fitted.temperature is None
    assert fitted.scale.shape == (3,) and fitted.bias.shape == (3,)
    assert fitted.bias[0] == 0.0
    assert fitted.validation_nll_after < fitted.validation_nll_before


# --- immutability, config, JSON -----------------------------------------------


def test_immutable_and_copies_its_arrays():
    scale, bias = np.array([1.0, 2.0]), np.array([0.0, 0.5])
    cal = TeacherCalibration("vector", 2, scale=scale, bias=bias)
    scale[0], bias[1] = 9.0, 9.0
    assert cal.scale.tolist() == [1.0, 2.0] and cal.bias.tolist() == [0.0, 0.5]
    with pytest.raises(ValueError):
        cal.scale[0] = 3.0
    with pytest.raises(ValueError):
        cal.bias[1] = 3.0
    with pytest.raises(AttributeError):
        cal.method = "bias"
    with pytest.raises(AttributeError):
        cal.extra = 1
    t = TeacherCalibration("temperature", 2, temperature=2.0)
    with pytest.raises(ValueError):
        t.scale[0] = 1.0


@pytest.mark.parametrize("method", ["temperature", "bias", "vector"])
def test_config_and_json_round_trips_are_exact(method, tmp_path):
    p, y = _misspecified(4, 800, 3)
    cal = calibrate_teacher(p, y, method=method)
    config = cal.get_config()
    assert json.loads(json.dumps(config)) == config
    assert TeacherCalibration.from_config(config) == cal
    path = tmp_path / "calibration.json"
    text = cal.to_json(path)
    assert path.read_text() == text
    again = TeacherCalibration.from_json(path.read_text())
    assert again == cal and hash(again) == hash(cal)
    np.testing.assert_array_equal(again(p), cal(p))
    assert again.validation_nll_after == cal.validation_nll_after
    expected_keys = {"temperature": {"temperature"}, "bias": {"bias"},
                     "vector": {"scale", "bias"}}[method]
    assert set(config) == {"method", "num_classes", "validation_nll_before",
                           "validation_nll_after"} | expected_keys


def test_equality_and_repr():
    a = TeacherCalibration("vector", 2, scale=[1.0, 2.0], bias=[0.0, 0.5])
    assert a == TeacherCalibration("vector", 2, scale=[1.0, 2.0], bias=[0.0, 0.5])
    assert a != TeacherCalibration("vector", 2, scale=[1.0, 2.0], bias=[0.0, 0.6])
    assert a != TeacherCalibration("bias", 2, bias=[0.0, 0.5])
    assert a != "vector"
    assert repr(a) == ("TeacherCalibration(method='vector', num_classes=2, "
                       "scale=[1, 2], bias=[0, 0.5])")
    t = TeacherCalibration("temperature", 3, temperature=2.5,
                           validation_nll_before=0.9, validation_nll_after=0.7)
    assert repr(t) == ("TeacherCalibration(method='temperature', num_classes=3, "
                       "temperature=2.5, validation_nll_before=0.9, "
                       "validation_nll_after=0.7)")


def test_public_api():
    from ptloss_tf import calibration

    assert ptloss_tf.calibrate_teacher is calibration.calibrate_teacher
    assert ptloss_tf.TeacherCalibration is calibration.TeacherCalibration
    assert {"calibrate_teacher", "TeacherCalibration"} <= set(dir(ptloss_tf))


# --- bad input ---------------------------------------------------------------

_P = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
_Y = np.array([1, 0, 1, 0])


@pytest.mark.parametrize(
    "probs, labels, method, match",
    [
        ([[0.5, 0.6]] * 4, _Y, "vector", r"`teacher_probs` rows must sum to 1"),
        ([[1.2, -0.2]] * 4, _Y, "vector", r"`teacher_probs` contains negative"),
        ([[np.nan, 1.0]] * 4, _Y, "vector", r"`teacher_probs` contains NaN"),
        ([0.5, 0.5, 0.5, 0.5], _Y, "vector", r"`teacher_probs` must have rank 2"),
        ([[1.0]] * 4, _Y, "vector", r"`teacher_probs` must have at least 2 classes"),
        (np.zeros((0, 2)), [], "vector", r"`teacher_probs` is empty"),
        (_P, [1, 0, 2, 0], "vector", r"`labels` must lie in \[0, 2\)"),
        (_P, [1, 0, 1], "vector", r"`labels` has 3 entries"),
        (_P, [0.5, 0, 1, 0], "vector", r"`labels` must be integer"),
        (_P, _Y, "platt", r"`method` must be one of \['temperature', 'bias', 'vector', 'matrix'\]"),
        (_P, _Y, None, r"`method` must be one of"),
        (_P[:3], _Y[:3], "vector", r"`teacher_probs` has 3 examples.*more than 3"),
        (_P[:1], _Y[:1], "bias", r"`teacher_probs` has 1 examples.*more than 1"),
        (_P[:1], _Y[:1], "temperature", r"`teacher_probs` has 1 examples.*more than 1"),
    ],
)
def test_bad_input_to_calibrate_teacher(probs, labels, method, match):
    with pytest.raises(ValueError, match=match):
        calibrate_teacher(probs, labels, method=method)


def test_minimum_example_counts_are_accepted():
    assert calibrate_teacher(_P[:2], _Y[:2], method="temperature").temperature > 0
    assert calibrate_teacher(_P[:4], _Y[:4], method="vector").num_classes == 2


def test_bad_input_to_call():
    cal = TeacherCalibration("temperature", 3, temperature=2.0)
    with pytest.raises(ValueError, match=r"`teacher_probs` has 2 classes but .* fitted for 3"):
        cal(_P)
    with pytest.raises(ValueError, match=r"`teacher_probs` rows must sum to 1"):
        cal([[0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"`teacher_probs` must have rank 2"):
        cal([0.2, 0.3, 0.5])


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("vector", 2), {"bias": [0.0, 1.0]}, r"`scale` is required for method 'vector'"),
        (("bias", 2), {}, r"`bias` is required for method 'bias'"),
        (("temperature", 2), {}, r"`temperature` is required"),
        (("bias", 2), {"bias": [0, 1], "scale": [1, 1]}, r"`scale` is not a parameter of method 'bias'"),
        (("temperature", 2), {"temperature": 2.0, "bias": [0, 1]}, r"`bias` is not a parameter"),
        (("temperature", 2), {"temperature": 0.0}, r"`temperature` must be a finite number > 0"),
        (("temperature", 2), {"temperature": -1.0}, r"`temperature` must be a finite number > 0"),
        (("bias", 2), {"bias": [0.0, 1.0, 2.0]}, r"`bias` must have shape \[2\]"),
        (("vector", 2), {"scale": [1.0, np.inf], "bias": [0, 0]}, r"`scale` contains NaN or inf"),
        (("vector", 1), {"scale": [1.0], "bias": [0.0]}, r"`num_classes` must be an integer >= 2"),
        (("vector", 2.0), {"scale": [1, 1], "bias": [0, 0]}, r"`num_classes` must be an integer"),
        (("affine", 2), {}, r"`method` must be one of"),
        (("temperature", 2), {"temperature": 2.0, "validation_nll_after": -1.0},
         r"`validation_nll_after` must be a finite number >= 0"),
    ],
)
def test_bad_constructor_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TeacherCalibration(*args, **kwargs)


def test_bad_config_and_json():
    with pytest.raises(ValueError, match="unknown \\['shift'\\]"):
        TeacherCalibration.from_config({"method": "bias", "num_classes": 2,
                                        "bias": [0, 1], "shift": 1})
    with pytest.raises(ValueError, match="missing \\['num_classes'\\]"):
        TeacherCalibration.from_config({"method": "bias", "bias": [0, 1]})
    with pytest.raises(ValueError, match="must be a dict"):
        TeacherCalibration.from_json("[1, 2]")
    with pytest.raises(ValueError, match="not valid JSON"):
        TeacherCalibration.from_json("{method")
