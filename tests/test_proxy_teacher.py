import numpy as np
import pytest
from scipy import optimize

import ptloss_tf
from tests.helpers import reference


def _convex_eta(rng, order, num_classes, high=10.0):
    lower = -1.0 / np.arange(1, order + 1)[:, None]
    return lower + rng.uniform(size=(order, num_classes)) * (high - lower)


def test_figure_1a_golden_value():
    # p0/q0 + p0 = p1/(1-q0) + p1 for p = (0.1, 0.9), eps = gamma = 1.
    p0, p1 = 0.1, 0.9
    expected = optimize.brentq(
        lambda q: p0 / q + p0 - p1 / (1 - q) - p1, 1e-9, 1 - 1e-9, xtol=1e-15
    )
    assert round(expected, 5) == 0.05700
    q = ptloss_tf.proxy_teacher([[0.1, 0.9]], ptloss_tf.Coefficients.binary([1.0], [1.0]))
    assert q.shape == (1, 2)
    np.testing.assert_allclose(q.numpy()[0], [expected, 1 - expected], atol=1e-9)


@pytest.mark.parametrize("num_classes", [2, 3, 4, 5, 7, 10])
def test_matches_independent_kkt_solution_in_convex_box(rng, num_classes):
    order = 5
    p = rng.dirichlet(np.full(num_classes, 0.7), size=12)
    p[0] = rng.dirichlet(np.full(num_classes, 0.05))  # very peaked row
    p[1] = np.full(num_classes, 1.0 / num_classes)
    etas = np.stack([_convex_eta(rng, order, num_classes) for _ in range(4)])
    etas[0] = -1.0 / np.arange(1, order + 1)[:, None]  # the box's corner
    q = ptloss_tf.proxy_teacher(p, etas).numpy()
    assert q.shape == (4, 12, num_classes)
    worst = 0.0
    for s in range(len(etas)):
        for n in range(len(p)):
            expected = reference.proxy_teacher_kkt(p[n], etas[s])
            worst = max(worst, np.abs(q[s, n] - expected).max())
            # Global optimality: no worse than the reference point.
            assert reference.proxy_objective(q[s, n], p[n], etas[s]) <= (
                reference.proxy_objective(expected, p[n], etas[s]) + 1e-10
            )
    assert worst <= 1e-5, worst


def test_single_set_equals_batched(rng):
    p = rng.dirichlet(np.ones(3), size=7)
    etas = np.stack([_convex_eta(rng, 3, 3) for _ in range(3)])
    batched = ptloss_tf.proxy_teacher(p, etas).numpy()
    for s in range(3):
        single = ptloss_tf.proxy_teacher(p, ptloss_tf.Coefficients(etas[s]))
        np.testing.assert_allclose(single.numpy(), batched[s], atol=1e-12)


def test_zero_coefficients_return_the_teacher(rng):
    p = rng.dirichlet(np.ones(4), size=9)
    q = ptloss_tf.proxy_teacher(p, np.zeros((3, 4))).numpy()
    np.testing.assert_allclose(q, p, atol=1e-12)


def test_zero_teacher_probabilities_stay_zero_in_convex_box(rng):
    p = np.array([[0.0, 0.3, 0.7], [0.0, 0.0, 1.0], [0.5, 0.0, 0.5]])
    eta = _convex_eta(rng, 2, 3)
    q = ptloss_tf.proxy_teacher(p, eta).numpy()
    assert np.all(q[p == 0] == 0.0)
    np.testing.assert_allclose(q[1], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-12)
    for n in range(3):
        np.testing.assert_allclose(
            q[n], reference.proxy_teacher_kkt(p[n], eta), atol=1e-8
        )


def test_positive_coefficients_sharpen_binary_teacher():
    # Figure 1: eps = gamma > 0 polarises the teacher; -1/m < eta < 0 softens.
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    sharp = ptloss_tf.proxy_teacher(p, [[2.0, 2.0]]).numpy()
    soft = ptloss_tf.proxy_teacher(p, [[-0.5, -0.5]]).numpy()
    assert np.all(np.abs(sharp[:, 0] - 0.5) > np.abs(p[:, 0] - 0.5))
    assert np.all(np.abs(soft[:, 0] - 0.5) < np.abs(p[:, 0] - 0.5))


def test_binary_non_convex_gives_global_minimiser(rng):
    # The paper's random range [-1, 10]: mostly outside the convex box.
    order = 5
    etas = rng.uniform(-1.0, 10.0, size=(6, order, 2))
    etas[0, :, :] = [[-1.0, -1.0], [-0.9, -0.9], [-1.0, 0.0], [10, -1], [-1, 10]]
    p = np.concatenate([rng.uniform(0.01, 0.99, size=6), [0.0, 1.0, 0.5]])
    probs = np.stack([p, 1 - p], axis=1)
    assert not ptloss_tf.Coefficients(etas[0]).is_convex
    q = ptloss_tf.proxy_teacher(probs, etas).numpy()
    for s in range(len(etas)):
        for n in range(len(p)):
            expected_q0, expected_value = reference.binary_global_minimiser(
                p[n], etas[s]
            )
            value = reference.proxy_objective(q[s, n], probs[n], etas[s])
            assert value <= expected_value + 1e-9 * max(1.0, abs(expected_value))
            np.testing.assert_allclose(q[s, n, 0], expected_q0, atol=1e-5)


def test_non_convex_multiclass_raises_clear_error(rng):
    p = rng.dirichlet(np.ones(3), size=4)
    eta = np.full((2, 3), 1.0)
    eta[1, 2] = -0.9  # below -1/2
    with pytest.raises(ValueError, match="convex box"):
        ptloss_tf.proxy_teacher(p, eta)


@pytest.mark.parametrize(
    "probs, match",
    [
        ([[0.5, float("nan")]], "NaN"),
        ([[-0.1, 1.1]], "negative"),
        ([[0.3, 0.3]], "sum to 1"),
        ([0.5, 0.5], "rank 2"),
        (np.zeros((0, 2)), "empty"),
        ([[1.0]], "at least 2 classes"),
    ],
)
def test_bad_teacher_probabilities(probs, match):
    with pytest.raises(ValueError, match=match):
        ptloss_tf.proxy_teacher(probs, [[1.0, 1.0]])


def test_bad_coefficients():
    p = [[0.5, 0.5]]
    with pytest.raises(ValueError, match="class-count mismatch"):
        ptloss_tf.proxy_teacher(p, [[1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="order 0"):
        ptloss_tf.proxy_teacher(p, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="shape"):
        ptloss_tf.proxy_teacher(p, [1.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        ptloss_tf.proxy_teacher(p, [[np.nan, 1.0]])


def test_float32_box_edge_is_solved_on_the_edge(rng):
    # Before: `float32(-1/m)` lies below -1/m, so K = 3 coefficients exactly
    # at the box's corner, stored as float32, were refused as non-convex.
    order, num_classes = 5, 3
    corner = -1.0 / np.arange(1, order + 1)[:, None] * np.ones((1, num_classes))
    eta32 = corner.astype(np.float32)
    assert (eta32.astype(np.float64) < corner).any()
    p = rng.dirichlet(np.ones(num_classes), size=6)
    q = ptloss_tf.proxy_teacher(p, eta32).numpy()
    for n in range(len(p)):
        np.testing.assert_allclose(q[n], reference.proxy_teacher_kkt(p[n], corner), atol=1e-5)
    # Clearly outside the box is still refused for K > 2.
    outside = corner.copy()
    outside[2, 1] = -1.0 / 3 - 1e-5
    with pytest.raises(ValueError, match="convex box"):
        ptloss_tf.proxy_teacher(p, outside)


def test_new_shapes_do_not_retrace(rng):
    # Before: every new batch shape retraced the solver's tf.function and
    # TensorFlow logged "... triggered tf.function retracing" from the 5th.
    import logging

    import tensorflow as tf

    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    tf.get_logger().addHandler(handler)
    try:
        for n, k, s in [(3, 3, 1), (5, 3, 2), (7, 4, 1), (9, 2, 3), (11, 3, 1), (13, 4, 2)]:
            p = rng.dirichlet(np.ones(k), size=n)
            q = ptloss_tf.proxy_teacher(p, np.stack([_convex_eta(rng, 2, k) for _ in range(s)]))
            assert q.shape == (s, n, k)
        for n in (3, 5, 7, 9, 11, 13):  # K = 2 outside the box: the global solver
            p = rng.dirichlet(np.ones(2), size=n)
            assert ptloss_tf.proxy_teacher(p, [[-2.0, 1.0], [0.5, -1.5]]).shape == (n, 2)
    finally:
        tf.get_logger().removeHandler(handler)
    retracing = [m for m in messages if "retracing" in m]
    assert not retracing, retracing[0]
