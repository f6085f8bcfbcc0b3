import json

import numpy as np
import pytest

import ptloss_tf
from ptloss_tf.search import coefficient_box
from tests.helpers import reference


def _numpy_deviation(q, y):
    onehot = np.eye(q.shape[-1])[y]
    distance = np.mean(np.sqrt(np.sum((q - onehot) ** 2, -1)), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        negentropy = np.mean(np.sum(np.where(q > 0, q * np.log(q), 0.0), -1), -1)
    return distance**2 + negentropy**2


def test_deviation_matches_equation_21(rng):
    q = rng.dirichlet(np.ones(3), size=(4, 20))
    q[0, 0] = [0.0, 0.0, 1.0]
    y = rng.integers(0, 3, size=20)
    np.testing.assert_allclose(
        ptloss_tf.deviation(q, y).numpy(), _numpy_deviation(q, y), rtol=1e-12
    )
    assert ptloss_tf.deviation(q[1], y).shape == ()
    np.testing.assert_allclose(
        float(ptloss_tf.deviation(q[1], y)), _numpy_deviation(q[1], y), rtol=1e-12
    )


def test_brier_and_nll_match_numpy(rng):
    q = rng.dirichlet(np.ones(4), size=(3, 15))
    y = rng.integers(0, 4, size=15)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(
        ptloss_tf.brier_score(q, y).numpy(),
        np.mean(np.sum((q - onehot) ** 2, -1), -1),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        ptloss_tf.proxy_nll(q, y).numpy(),
        -np.mean(np.log(q[:, np.arange(15), y]), -1),
        rtol=1e-12,
    )


def test_candidates_are_uniform_in_the_documented_box():
    candidates = ptloss_tf.sample_candidates(4, 3, 5000, low=-1.0, high=10.0, seed=3)
    assert candidates.shape == (5000, 4, 3)
    for m in range(1, 5):
        lower = max(-1.0, -1.0 / m)
        assert candidates[:, m - 1].min() >= lower
        assert candidates[:, m - 1].max() <= 10.0
        # Uniform: mean in the middle of the box, spread over the whole box.
        assert candidates[:, m - 1].mean() == pytest.approx((lower + 10) / 2, abs=0.15)
        assert candidates[:, m - 1].min() < lower + 0.05
    raw = ptloss_tf.sample_candidates(3, 2, 4000, convex=False, seed=3)
    assert raw.min() < -0.95 and raw.max() > 9.95
    lower, upper = coefficient_box(3, low=0.5, high=2.0)
    assert lower.tolist() == [0.5, 0.5, 0.5] and upper.tolist() == [2.0] * 3


def test_random_coefficients_baseline_is_deterministic_and_in_range():
    a = ptloss_tf.random_coefficients(5, 3, seed=7)
    b = ptloss_tf.random_coefficients(5, 3, seed=7)
    c = ptloss_tf.random_coefficients(5, 3, seed=8)
    assert a == b and a != c
    assert a.shape == (5, 3)
    values = np.stack([ptloss_tf.random_coefficients(2, 2, seed=s).values for s in range(300)])
    assert values.min() >= -1.0 and values.max() <= 10.0
    assert values.min() < -0.8  # reaches below the convex box of order 2


def test_search_picks_the_argmin_of_an_independent_computation(rng):
    p = rng.dirichlet(np.ones(3), size=40)
    y = rng.integers(0, 3, size=40)
    result = ptloss_tf.search_coefficients(p, y, order=2, num_candidates=6, seed=5)
    candidates = ptloss_tf.sample_candidates(2, 3, 6, seed=5)
    np.testing.assert_array_equal(result.candidates, candidates)
    independent = np.array([
        _numpy_deviation(
            np.stack([reference.proxy_teacher_kkt(p[n], candidates[s]) for n in range(40)]),
            y,
        )
        for s in range(6)
    ])
    np.testing.assert_allclose(result.criterion_scores, independent, rtol=1e-6)
    assert result.best_index == int(np.argmin(independent))
    assert result.best == ptloss_tf.Coefficients(candidates[result.best_index])
    assert result.teacher_scores["deviation"] == pytest.approx(_numpy_deviation(p, y))
    again = ptloss_tf.search_coefficients(p, y, order=2, num_candidates=6, seed=5)
    np.testing.assert_array_equal(again.criterion_scores, result.criterion_scores)
    # All criteria are scored from the same solve; each picks its own argmin.
    brier = ptloss_tf.search_coefficients(
        p, y, order=2, num_candidates=6, seed=5, criterion="brier"
    )
    np.testing.assert_array_equal(brier.scores["deviation"], result.criterion_scores)
    assert brier.best_index == int(np.argmin(brier.scores["brier"]))


def test_proper_criterion_moves_an_over_confident_teacher_towards_p_star():
    # MATH.md Sec. 3b: known p*, labels drawn from it, over-confident teacher.
    rng = np.random.default_rng(0)
    n = 2000
    p_star = rng.beta(2, 2, size=n)
    y = (rng.uniform(size=n) > p_star).astype(int)  # class 0 w.p. p_star
    logit = 2.0 * np.log(p_star / (1 - p_star))
    teacher0 = 1 / (1 + np.exp(-logit))
    teacher = np.stack([teacher0, 1 - teacher0], 1)
    teacher_error = np.mean((teacher0 - p_star) ** 2)
    errors = {}
    for criterion in ("deviation", "brier", "nll"):
        result = ptloss_tf.search_coefficients(
            teacher, y, order=5, num_candidates=100, criterion=criterion
        )
        proxy = ptloss_tf.proxy_teacher(teacher, result.best).numpy()
        errors[criterion] = np.mean((proxy[:, 0] - p_star) ** 2)
    assert errors["brier"] < 0.5 * teacher_error
    assert errors["nll"] < 0.5 * teacher_error
    # The paper's criterion as printed makes it worse (the documented caveat).
    assert errors["deviation"] > teacher_error


def test_search_result_json_table_and_plot(tmp_path, rng):
    p = rng.dirichlet(np.ones(2), size=30)
    y = rng.integers(0, 2, size=30)
    result = ptloss_tf.search_coefficients(p, y, order=1, num_candidates=5)
    path = tmp_path / "search.json"
    text = result.to_json(path)
    assert json.loads(path.read_text()) == json.loads(text)
    restored = ptloss_tf.SearchResult.from_dict(json.loads(text))
    assert restored.best == result.best
    np.testing.assert_allclose(restored.criterion_scores, result.criterion_scores)
    table = result.table(top=3)
    assert "teacher" in table and len(table.splitlines()) == 2 + 1 + 3
    figure = result.plot(tmp_path / "search.png")
    assert (tmp_path / "search.png").stat().st_size > 1000
    assert len(figure.axes) == 3


def test_bad_search_input(rng):
    p = rng.dirichlet(np.ones(3), size=10)
    y = rng.integers(0, 3, size=10)
    with pytest.raises(ValueError, match="criterion"):
        ptloss_tf.search_coefficients(p, y, order=2, criterion="accuracy")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ptloss_tf.search_coefficients(p, np.full(10, 3), order=2)
    with pytest.raises(ValueError, match="10 rows"):
        ptloss_tf.search_coefficients(p, y[:5], order=2)
    with pytest.raises(ValueError, match="order"):
        ptloss_tf.search_coefficients(p, y, order=0)
    with pytest.raises(ValueError, match="num_candidates"):
        ptloss_tf.search_coefficients(p, y, order=1, num_candidates=0)
    with pytest.raises(ValueError, match="low"):
        ptloss_tf.search_coefficients(p, y, order=1, low=5.0, high=1.0)
    with pytest.raises(ValueError, match="convex box"):
        ptloss_tf.search_coefficients(p, y, order=2, convex=False)


# -- deprecated names ---------------------------------------------------------

def test_criterion_scores_are_the_chosen_criterions(rng):
    p = rng.dirichlet(np.ones(2), size=30)
    y = rng.integers(0, 2, size=30)
    for criterion in ("deviation", "brier", "nll"):
        result = ptloss_tf.search_coefficients(
            p, y, order=1, num_candidates=4, criterion=criterion
        )
        np.testing.assert_array_equal(result.criterion_scores, result.scores[criterion])
        assert result.best_index == int(np.argmin(result.scores[criterion]))


def test_deviations_is_a_deprecated_alias(rng):
    result = ptloss_tf.SearchResult(
        np.zeros((3, 1, 2)),
        {"deviation": [3.0, 1.0, 2.0], "brier": [0.5, 0.7, 0.1], "nll": [1.0, 2.0, 3.0]},
        "brier", {"deviation": 4.0, "brier": 1.0, "nll": 5.0},
    )
    with pytest.warns(DeprecationWarning, match="criterion_scores"):
        old = result.deviations
    np.testing.assert_array_equal(old, [0.5, 0.7, 0.1])
    # The JSON format is unchanged (it never held `deviations`): files
    # written before the rename load, and round trip, as before.
    config = json.loads(result.to_json())
    assert "deviations" not in config and "criterion_scores" not in config
    restored = ptloss_tf.SearchResult.from_dict(config)
    np.testing.assert_array_equal(restored.criterion_scores, [0.5, 0.7, 0.1])
    assert restored.best_index == 2


def test_negative_log_likelihood_is_a_deprecated_alias_of_proxy_nll():
    q = np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]])
    y = np.array([1, 1, 0])
    expected = -np.mean(np.log([0.5, 0.8, 0.9]))
    assert float(ptloss_tf.proxy_nll(q, y)) == pytest.approx(expected, rel=1e-12)
    with pytest.warns(DeprecationWarning, match="proxy_nll"):
        old = ptloss_tf.negative_log_likelihood(q, y)
    assert float(old) == float(ptloss_tf.proxy_nll(q, y))
    from ptloss_tf import search

    with pytest.warns(DeprecationWarning, match="proxy_nll"):
        assert float(search.negative_log_likelihood(q, y)) == pytest.approx(expected)
    # The search's "nll" criterion is the new function and warns nothing.
    assert search._SCORERS["nll"] is ptloss_tf.proxy_nll
