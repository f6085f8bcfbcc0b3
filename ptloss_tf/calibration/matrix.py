"""Matrix scaling with ODIR regularisation, and its weight by cross-validation.

`q = softmax(W l + b)` with `l = max(log p, LOG_PROB_FLOOR)`, a full K x K
`W` and `b` in R^K: multinomial logistic regression on the teacher's
log-probabilities. Guo et al. (2017) call this matrix scaling (of logits);
on log-probabilities it is Kull et al.'s (2019) Dirichlet calibration, and it
can undo biases no per-class map can, e.g. two classes confused with each
other (row k of `W` may take evidence from every class).

With `K^2 + K` parameters it overfits small validation splits, so the fit
minimises the mean NLL plus the ODIR penalty (Kull et al. 2019, "Beyond
temperature scaling", Off-Diagonal and Intercept Regularisation)

    lambda * ( sum_{i != j} W_ij^2 / (K (K - 1)) + sum_k b_k^2 / K ),

which pulls `W` towards a diagonal matrix and `b` towards 0: towards
temperature / per-class scaling, not towards any one scale (the diagonal is
free, as in ODIR). One weight `lambda` serves both terms (ODIR allows two).
The objective is convex (a convex NLL of a linear function plus a convex
quadratic): trust-region Newton-CG with the analytic gradient and Hessian-vector
products finds its minimum.

Gauge: adding `c_j` to every entry of column j of `W` (or a constant to `b`)
adds a per-row constant to the logits and leaves `q` unchanged. At a
penalised minimum the off-diagonal entries of every column sum to 0 (the
NLL's gradient is orthogonal to these directions, the penalty's is not), so
the fit returns that representative for every `lambda`, 0 included: the
limit `lambda -> 0+`, the unregularised minimiser nearest to a diagonal `W`.
"""

import numpy as np

from ptloss_tf.calibration.common import log_softmax
from ptloss_tf.calibration.common import minimize_convex

#: The weights `calibrate_teacher(..., method="matrix")` cross-validates when
#: none is given: 0 (plain matrix scaling) and 1e-4 ... 100 by decades,
#: around the scale of the mean NLL (~1 nat). At 100 the off-diagonal entries
#: and `b` are all but 0: the map is a per-class scaling without bias.
REGULARIZATION_GRID = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: Stratified folds of the validation split, assigned from this seed.
CV_FOLDS = 5
CV_SEED = 0


def check_regularization(value):
    """`value` as a float if it is a finite number >= 0, else a ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ) or not np.isfinite(value) or value < 0:
        raise ValueError(
            "`regularization` must be a finite number >= 0 (or None: chosen "
            f"by cross-validation), got {value!r}."
        )
    return float(value)


def unpack(theta, num_classes):
    """Free parameters `[W.ravel(), b]` -> `(W [K, K], b [K])`."""
    k = num_classes
    return theta[: k * k].reshape(k, k), theta[k * k:]


def affine(log_p, w, b):
    """The logits `l W^T + b` of `[N, K]` rows `l`."""
    # einsum, not `@`: these products are [N, K] x [K, K], and a threaded
    # BLAS call per objective evaluation made the fits 20-40x slower on a
    # busy machine (OpenBLAS threads waiting for cores), for no gain at
    # these sizes.
    return np.einsum("nj,kj->nk", log_p, w) + b


def matrix_objective(theta, log_p, labels, regularization):
    """The penalised mean NLL that `fit_matrix` minimises, and its gradient.

    Args:
        theta: float64 `[K^2 + K]`: `W` row-major, then `b`.
        log_p: `[N, K]` clipped teacher log-probabilities.
        labels: `[N]` int class indices.
        regularization: `lambda >= 0` of the ODIR penalty (module docstring).

    Returns:
        `(objective, gradient)`, a float and a `[K^2 + K]` array.

    Example:
    >>> log_p = np.log([[0.9, 0.1], [0.2, 0.8]])
    >>> identity = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    >>> value, grad = matrix_objective(identity, log_p, np.array([0, 1]), 5.0)
    >>> round(float(value), 4), grad.shape   # no penalty at W = I, b = 0
    (0.1643, (6,))
    """
    n, k = log_p.shape
    w, b = unpack(theta, k)
    log_q = log_softmax(affine(log_p, w, b))
    rows = np.arange(n)
    value = -log_q[rows, labels].mean()
    # d NLL / d logits = (q - onehot) / N; logit_nk = sum_j W_kj l_nj + b_k.
    g = np.exp(log_q)
    g[rows, labels] -= 1.0
    g /= n
    # einsum, not `@`: its own loops, no BLAS call (see `affine`).
    grad_w = np.einsum("nk,nj->kj", g, log_p)
    grad_b = g.sum(axis=0)
    if regularization:
        off = w - np.diag(np.diag(w))
        c_w, c_b = regularization / (k * (k - 1)), regularization / k
        value = value + c_w * np.sum(off**2) + c_b * np.sum(b**2)
        grad_w = grad_w + 2.0 * c_w * off
        grad_b = grad_b + 2.0 * c_b * b
    return value, np.concatenate([grad_w.ravel(), grad_b])


def matrix_hessian_product(theta, v, log_p, labels, regularization):
    """The Hessian of `matrix_objective` at `theta` times `v` (both
    `[K^2 + K]`): `J^T (diag q - q q^T) J v / N` plus the penalty's."""
    n, k = log_p.shape
    w, b = unpack(theta, k)
    v_w, v_b = unpack(v, k)
    q = np.exp(log_softmax(affine(log_p, w, b)))
    d = affine(log_p, v_w, v_b)  # J v: the logits' change along v
    r = q * (d - np.sum(q * d, axis=1, keepdims=True)) / n
    h_w = np.einsum("nk,nj->kj", r, log_p)
    h_b = r.sum(axis=0)
    if regularization:
        off = v_w - np.diag(np.diag(v_w))
        h_w = h_w + 2.0 * regularization / (k * (k - 1)) * off
        h_b = h_b + 2.0 * regularization / k * v_b
    return np.concatenate([h_w.ravel(), h_b])


def canonical(w, b):
    """The representative of `(W, b)`'s map whose off-diagonal column sums
    and bias sum are 0 (module docstring: the gauge)."""
    k = len(b)
    off_mean = (w.sum(axis=0) - np.diag(w)) / (k - 1)
    return w - off_mean[None, :], b - b.mean()


def fit_matrix(log_p, labels, regularization):
    """`(W, b)` minimising `matrix_objective`, from the identity map, by
    trust-region Newton-CG (`common.minimize_convex`).

    Args:
        log_p: `[N, K]` clipped teacher log-probabilities.
        labels: `[N]` int class indices.
        regularization: `lambda >= 0`.

    Returns:
        float64 `W [K, K]`, `b [K]` in the canonical gauge (`canonical`).
    """
    k = log_p.shape[1]
    start = np.concatenate([np.eye(k).ravel(), np.zeros(k)])
    theta, _ = minimize_convex(matrix_objective, start,
                               (log_p, labels, regularization), "matrix",
                               hessp=matrix_hessian_product)
    return canonical(*unpack(theta, k))


def matrix_nll(w, b, log_p, labels):
    """Mean NLL of `softmax(W l + b)` at the labels (no penalty)."""
    log_q = log_softmax(affine(log_p, w, b))
    return float(-log_q[np.arange(len(labels)), labels].mean())


def cross_validation_folds(labels, folds=CV_FOLDS, seed=CV_SEED):
    """Stratified fold of each example: `[N]` ints in `[0, folds)`.

    The examples are shuffled with `numpy.random.default_rng(seed)`, sorted
    (stably) by label, and dealt round-robin, so every class is split as
    evenly as its count allows and the same labels give the same folds.

    Example:
    >>> cross_validation_folds(np.array([0, 0, 1, 1, 1, 1]), folds=2).tolist()
    [0, 1, 1, 0, 1, 0]
    """
    labels = np.asarray(labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]
    fold = np.empty(len(labels), dtype=np.int64)
    fold[order] = np.arange(len(labels)) % folds
    return fold


def choose_regularization(log_p, labels, grid=REGULARIZATION_GRID,
                          folds=CV_FOLDS, seed=CV_SEED):
    """The ODIR weight with the lowest k-fold cross-validated NLL.

    For each weight in `grid`, fits `fit_matrix` on all folds but one and
    scores the held-out fold's NLL; the score is the mean over all examples
    (each is held out once). Ties go to the larger weight (the simpler map).

    Args:
        log_p: `[N, K]` clipped teacher log-probabilities, `N >= 2 * folds`.
        labels: `[N]` int class indices.
        grid: the candidate weights (each >= 0).
        folds: the number of folds (`cross_validation_folds`).
        seed: the fold assignment's seed.

    Returns:
        `(weight, scores)`: the chosen weight and `{weight: CV NLL}`.
    """
    fold = cross_validation_folds(labels, folds, seed)
    scores = {}
    for weight in grid:
        total = 0.0
        for f in range(folds):
            train, held = fold != f, fold == f
            w, b = fit_matrix(log_p[train], labels[train], weight)
            total += matrix_nll(w, b, log_p[held], labels[held]) * held.sum()
        scores[weight] = total / len(labels)
    best = min(scores.values())
    return max(weight for weight, s in scores.items() if s == best), scores
