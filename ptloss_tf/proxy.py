"""The Proxy Teacher: the distribution PTLoss distillation implicitly targets.

`p^PT(p; eta) = argmin_{q in simplex} sum_k p_k [-log q_k + sum_m eta[m,k] (1-q_k)^m]`

(MATH.md Sec. 2: the argmin reading of paper Eq. 19.) Solved in float64 by
XLA-compiled `tf.function`s, vectorised over examples and candidate sets:

* Convex box (`eta[m, k] >= -1/m` for all m, k), any K: the objective is
  strictly convex on the simplex. Damped, equality-constrained Newton from
  `q = p` (the constraint `sum q = 1` has a closed-form multiplier because the
  Hessian is diagonal), with a fraction-to-boundary rule keeping `q > 0` and
  Armijo backtracking, until no probability moves by more than 1e-13. Classes
  with `p_k = 0` get `q_k = 0` exactly (the KKT solution).
* Binary (K = 2) outside the box: the loss may have several local minima in
  `q_0`. The global minimiser is found by evaluating the objective on a
  2,051-point grid (logit-spaced, plus both end points), refining every
  discrete local minimum by bisection on the derivative, and keeping the best.
* K > 2 outside the box: no method here certifies a global minimum, so
  `proxy_teacher` raises a `ValueError` naming the offending coefficients
  instead of returning a possibly wrong local minimum.
"""

import numpy as np
import tensorflow as tf

from ptloss_tf.coefficients import Coefficients
from ptloss_tf.coefficients import in_convex_box
from ptloss_tf.coefficients import snap_to_convex_box
from ptloss_tf.validation import as_numpy
from ptloss_tf.validation import check_probabilities

_STEP_TOLERANCE = 1e-13
_ARMIJO_SLOPE = 1e-4
_ARMIJO_SKIP_DECREMENT = 1e-12
_BOUNDARY_FRACTION = 0.99
_GRID_LOGIT_RANGE = 36.0
_GRID_SIZE = 2049
_BISECTION_STEPS = 60
_BINARY_CHUNK_ROWS = 4096


def _zeros(x):
    return tf.zeros_like(x)


def _polynomial_and_derivatives(eta_by_order, u):
    """`P(u) = sum_m eta_m u^m`, `P'(u)` and `P''(u)` by Horner's rule.

    `eta_by_order` is a list of M tensors broadcastable against `u`.
    """
    value = tf.zeros_like(u)
    first = tf.zeros_like(u)
    second = tf.zeros_like(u)
    # Horner on a(u) = eta_M u^M + ... + eta_1 u + 0 with derivative carries.
    for coefficient in reversed([tf.zeros_like(u)] + list(eta_by_order)):
        second = second * u + 2.0 * first
        first = first * u + value
        value = value * u + coefficient
    return value, first, second


def _polynomial(eta_by_order, u):
    value = tf.zeros_like(u)
    for coefficient in reversed(eta_by_order):
        value = (value + coefficient) * u
    return value


def _objective(p, active, eta_by_order, q):
    """`sum_k p_k (-log q_k + P_k(1 - q_k))` over the active classes."""
    q_safe = tf.where(active, q, tf.ones_like(q))
    terms = -p * tf.math.log(q_safe) + p * _polynomial(eta_by_order, 1.0 - q)
    return tf.reduce_sum(tf.where(active, terms, _zeros(q)), axis=-1)


def _solve_convex(teacher_probs, coefficients, max_iterations):
    """Newton solve. `teacher_probs [N, K]`, `coefficients [S, M, K]` -> `[S, N, K]`."""
    p = teacher_probs[tf.newaxis]  # [1, N, K]
    eta_by_order = [
        coefficients[:, m, tf.newaxis, :] for m in range(coefficients.shape[1])
    ]  # each [S, 1, K]
    num_sets = tf.shape(coefficients)[0]
    p = tf.broadcast_to(p, tf.concat([[num_sets], tf.shape(teacher_probs)], 0))
    active = p > 0.0
    q = p

    order = len(eta_by_order)
    # c_m = eta_m + 1/m >= 0 in the box. Writing f'(q) and f''(q) with c and
    # the closed-form tails of the -log q series avoids the cancellation
    # 1/q^2 + P''(u) ~ 0 at the box's corner (eta = -1/m), where the loss is
    # almost flat near q = 1.
    shifted = [e + 1.0 / (m + 1) for m, e in enumerate(eta_by_order)]

    def newton_step(q):
        q_safe = tf.where(active, q, tf.ones_like(q))
        u = 1.0 - q
        _, first, second = _polynomial_and_derivatives(shifted, u)
        u_power = tf.ones_like(u)
        for _ in range(order - 1):
            u_power = u_power * u
        tail_first = u_power * u / q_safe
        tail_second = u_power * (order - (order - 1) * u) / (q_safe * q_safe)
        gradient = tf.where(active, -p * (tail_first + first), _zeros(q))
        curvature = p * (tail_second + second)
        inverse_hessian = tf.where(
            active, 1.0 / tf.maximum(curvature, 1e-300), _zeros(q)
        )
        weight = inverse_hessian / tf.reduce_max(
            inverse_hessian, -1, keepdims=True
        )
        multiplier = tf.reduce_sum(gradient * weight, -1, keepdims=True) / (
            tf.reduce_sum(weight, -1, keepdims=True)
        )
        direction = -(gradient - multiplier) * inverse_hessian
        # The class with the largest inverse curvature takes minus the sum of
        # the others, so sum(direction) = 0 holds to rounding even when its
        # inverse curvature is huge.
        pivot = tf.one_hot(
            tf.argmax(inverse_hessian, axis=-1), tf.shape(q)[-1], dtype=q.dtype
        ) > 0.5
        others = tf.reduce_sum(
            tf.where(pivot, _zeros(q), direction), -1, keepdims=True
        )
        direction = tf.where(pivot, -others + _zeros(q), direction)
        decrement = -tf.reduce_sum(gradient * direction, axis=-1)
        return direction, tf.maximum(decrement, 0.0)

    def body(iteration, q, current, _):
        direction, decrement = newton_step(q)
        ratios = tf.where(direction < 0.0, -q / direction, _zeros(q) + np.inf)
        step = tf.minimum(
            _BOUNDARY_FRACTION * tf.reduce_min(ratios, axis=-1), 1.0
        )

        def trial_value(step):
            trial = q + step[..., tf.newaxis] * direction
            return _objective(p, active, eta_by_order, trial)

        def not_sufficient(step, value):
            return tf.logical_and(
                value > current - _ARMIJO_SLOPE * step * decrement,
                decrement > _ARMIJO_SKIP_DECREMENT,
            )

        def backtrack(halvings, step, value):
            shrink = not_sufficient(step, value)
            step = tf.where(shrink, step * 0.5, step)
            return halvings + 1, step, trial_value(step)

        _, step, value = tf.while_loop(
            lambda halvings, step, value: tf.logical_and(
                halvings < 60, tf.reduce_any(not_sufficient(step, value))
            ),
            backtrack,
            (tf.constant(0), step, trial_value(step)),
        )
        change = step[..., tf.newaxis] * direction
        q = tf.where(active, tf.maximum(q + change, 0.0), _zeros(q))
        return iteration + 1, q, value, tf.reduce_max(tf.abs(change))

    _, q, _, _ = tf.while_loop(
        lambda i, q, value, change: tf.logical_and(
            i < max_iterations, change > _STEP_TOLERANCE
        ),
        body,
        (
            tf.constant(0),
            q,
            _objective(p, active, eta_by_order, q),
            tf.constant(np.inf, tf.float64),
        ),
    )
    return q / tf.reduce_sum(q, axis=-1, keepdims=True)


def _solve_binary_global(p0, eta0, eta1):
    """Global minimiser for K = 2, any coefficients.

    `p0 [B]` teacher probability of class 0; `eta0`, `eta1` `[B, M]`.
    Returns `q0 [B]`.
    """
    p1 = 1.0 - p0
    order = eta0.shape[1]
    e0 = [eta0[:, m, tf.newaxis] for m in range(order)]  # each [B, 1]
    e1 = [eta1[:, m, tf.newaxis] for m in range(order)]
    p0_ = p0[:, tf.newaxis]
    p1_ = p1[:, tf.newaxis]

    def objective(q0, q1):
        # q1 is passed separately so that 1 - q0 keeps full precision near 1.
        log_terms = -tf.math.xlogy(p0_, q0) - tf.math.xlogy(p1_, q1)
        return log_terms + p0_ * _polynomial(e0, q1) + p1_ * _polynomial(e1, q0)

    def derivative(q0, q1):
        _, first0, _ = _polynomial_and_derivatives(e0, q1)
        _, first1, _ = _polynomial_and_derivatives(e1, q0)
        inv0 = tf.where(p0_ > 0, p0_ / q0, _zeros(q0))
        inv1 = tf.where(p1_ > 0, p1_ / q1, _zeros(q1))
        return -inv0 + inv1 - p0_ * first0 + p1_ * first1

    logits = tf.linspace(
        tf.constant(-_GRID_LOGIT_RANGE, tf.float64), _GRID_LOGIT_RANGE, _GRID_SIZE
    )
    zero = tf.zeros([1], tf.float64)
    one = tf.ones([1], tf.float64)
    grid0 = tf.concat([zero, tf.sigmoid(logits), one], 0)[tf.newaxis]
    grid1 = tf.concat([one, tf.sigmoid(-logits), zero], 0)[tf.newaxis]
    values = objective(grid0, grid1)  # [B, G]
    values = tf.where(tf.math.is_nan(values), _zeros(values) + np.inf, values)
    padded = tf.pad(values, [[0, 0], [1, 1]], constant_values=np.inf)
    is_local_min = tf.logical_and(
        values <= padded[:, :-2], values <= padded[:, 2:]
    )
    num_refined = order // 2 + 2
    _, index = tf.math.top_k(
        tf.where(is_local_min, -values, _zeros(values) - np.inf), k=num_refined
    )  # [B, R]
    last = tf.shape(values)[1] - 1
    low = tf.gather(grid0[0], tf.maximum(index - 1, 0))
    high = tf.gather(grid0[0], tf.minimum(index + 1, last))
    low1 = tf.gather(grid1[0], tf.maximum(index - 1, 0))
    high1 = tf.gather(grid1[0], tf.minimum(index + 1, last))

    def bisect(_, bounds):
        low, high, low1, high1 = bounds
        mid = 0.5 * (low + high)
        mid1 = 0.5 * (low1 + high1)
        rising = derivative(mid, mid1) > 0.0
        return _ + 1, (
            tf.where(rising, low, mid),
            tf.where(rising, mid, high),
            tf.where(rising, low1, mid1),
            tf.where(rising, mid1, high1),
        )

    _, (low, high, low1, high1) = tf.while_loop(
        lambda i, _: i < _BISECTION_STEPS,
        bisect,
        (tf.constant(0), (low, high, low1, high1)),
    )
    # Candidates: both ends of every refined bracket and the best grid point.
    best_grid = tf.argmin(values, axis=1)[:, tf.newaxis]
    cand0 = tf.concat([low, high, tf.gather(grid0[0], best_grid)], axis=1)
    cand1 = tf.concat([low1, high1, tf.gather(grid1[0], best_grid)], axis=1)
    cand_values = objective(cand0, cand1)
    cand_values = tf.where(
        tf.math.is_nan(cand_values), _zeros(cand_values) + np.inf, cand_values
    )
    choice = tf.argmin(cand_values, axis=1)
    return tf.gather(cand0, choice[:, tf.newaxis], batch_dims=1)[:, 0]


# One XLA-compiled function per (solver, order), traced once: the input
# signatures leave the numbers of examples, sets and classes open, so new
# batch shapes reuse the trace (XLA still compiles each new shape, as it
# must) instead of retracing and warning about "excessive" retracing. The
# order stays static: the Horner loops unroll over it.
_COMPILED = {}


def _compiled_solver(kind, order):
    key = (kind, int(order))
    if key not in _COMPILED:
        f64 = tf.float64
        if kind == "convex":
            function = _solve_convex
            signature = [tf.TensorSpec([None, None], f64),
                         tf.TensorSpec([None, order, None], f64),
                         tf.TensorSpec([], tf.int32)]
        else:
            function = _solve_binary_global
            signature = [tf.TensorSpec([None], f64), tf.TensorSpec([None, order], f64),
                         tf.TensorSpec([None, order], f64)]
        _COMPILED[key] = tf.function(function, jit_compile=True, input_signature=signature)
    return _COMPILED[key]


def _as_coefficient_array(coefficients, num_classes):
    if isinstance(coefficients, Coefficients):
        eta = coefficients.values
    else:
        eta = as_numpy(coefficients, "coefficients")
    if eta.ndim not in (2, 3):
        raise ValueError(
            "`coefficients` must have shape [order, num_classes] or "
            f"[num_sets, order, num_classes], got shape {eta.shape}."
        )
    if eta.shape[-2] < 1:
        raise ValueError(f"`coefficients` has order 0 (shape {eta.shape}).")
    if eta.ndim == 3 and eta.shape[0] == 0:
        raise ValueError(f"`coefficients` holds no sets (shape {eta.shape}).")
    if eta.shape[-1] != num_classes:
        raise ValueError(
            f"class-count mismatch: `coefficients` have {eta.shape[-1]} "
            f"classes (shape {eta.shape}) but `teacher_probs` have "
            f"{num_classes}."
        )
    eta = eta.astype(np.float64)
    if not np.isfinite(eta).all():
        raise ValueError("`coefficients` contains NaN or inf.")
    return eta


def convex_mask(coefficients):
    """Per set `[S]`: whether all `eta[m, k] >= -1/m` (`coefficients [S, M, K]`),
    the edge accepted up to float32 rounding (`coefficients.BOX_EDGE_RTOL`)."""
    return np.atleast_1d(in_convex_box(coefficients))


def proxy_teacher(teacher_probs, coefficients, max_iterations=200):
    """Solves for the Proxy Teacher `p^PT(p; eta)` (MATH.md Sec. 2).

    Args:
        teacher_probs: `[N, K]` teacher probabilities (rows sum to 1).
        coefficients: `[M, K]` (array-like or `Coefficients`) or `[S, M, K]`
            (S candidate sets solved at once).
        max_iterations: Newton iteration cap (convergence takes ~5-30).

    Returns:
        A float64 `tf.Tensor` (`.numpy()` gives the array): `[N, K]` for
        `[M, K]` coefficients, else `[S, N, K]`. Calls with new numbers of
        examples, sets or classes reuse one trace per order (no retracing).

    Coefficients within float32 rounding of the convex box's edge
    (`float32(-1/m)`, see `ptloss_tf.coefficients.BOX_EDGE_RTOL`) count as
    on the edge and are solved there.

    Raises:
        ValueError: bad teacher probabilities, mismatched class counts, or
            K > 2 with coefficients outside the convex box.

    Example:
    >>> import ptloss_tf
    >>> q = ptloss_tf.proxy_teacher([[0.1, 0.9]], [[1.0, 1.0]])
    >>> round(float(q[0, 0]), 5)   # Figure 1a: the teacher is sharpened
    0.057
    >>> q.dtype.name, q.numpy().shape
    ('float64', (1, 2))
    """
    p = check_probabilities(teacher_probs)
    p = p / p.sum(axis=1, keepdims=True)
    num_examples, num_classes = p.shape
    eta = _as_coefficient_array(coefficients, num_classes)
    single = eta.ndim == 2
    if single:
        eta = eta[np.newaxis]
    convex = convex_mask(eta)
    # Sets inside the box only by rounding go to the Newton solver exactly on
    # the edge, where its convexity argument holds.
    eta[convex] = snap_to_convex_box(eta[convex])
    if num_classes > 2 and not convex.all():
        s = int(np.argmin(convex))
        bounds = -1.0 / np.arange(1, eta.shape[1] + 1)
        raise ValueError(
            f"coefficients set {s} lies outside the convex box "
            f"(eta[m, k] >= -1/m; lower bounds {np.round(bounds, 4).tolist()}): "
            f"{eta[s].tolist()}. For K = {num_classes} > 2 the proxy teacher "
            "is only solved (with a guaranteed global minimum) inside the box."
        )
    result = np.empty((eta.shape[0], num_examples, num_classes))
    if convex.any():
        result[convex] = _compiled_solver("convex", eta.shape[1])(
            tf.constant(p), tf.constant(eta[convex]), tf.constant(max_iterations, tf.int32)
        ).numpy()
    if not convex.all():
        sets = np.flatnonzero(~convex)
        s_index = np.repeat(sets, num_examples)
        n_index = np.tile(np.arange(num_examples), len(sets))
        q0 = np.empty(len(s_index))
        for start in range(0, len(s_index), _BINARY_CHUNK_ROWS):
            sl = slice(start, start + _BINARY_CHUNK_ROWS)
            q0[sl] = _compiled_solver("binary", eta.shape[1])(
                tf.constant(p[n_index[sl], 0]),
                tf.constant(eta[s_index[sl], :, 0]),
                tf.constant(eta[s_index[sl], :, 1]),
            ).numpy()
        result[s_index, n_index, 0] = q0
        result[s_index, n_index, 1] = 1.0 - q0
    out = tf.constant(result)
    return out[0] if single else out
