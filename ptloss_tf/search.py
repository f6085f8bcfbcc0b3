"""Choosing PTLoss coefficients: the paper's Proxy Teacher search (Sec. 4.1.3).

Functions:

* `deviation(proxy_probs, labels)`: paper Eq. 21 as MATH.md Sec. 3 states it.
* `brier_score`, `proxy_nll`: proper scoring rules of the proxy teacher
  against the labels (MATH.md Sec. 3b). (`negative_log_likelihood` is the
  deprecated name of `proxy_nll`; the metric of that name is
  `ptloss_tf.metrics.NegativeLogLikelihood`.)
* `sample_candidates`, `random_coefficients`: uniform candidates.
* `search_coefficients`: draw candidates, solve all proxy teachers in one
  batched call, score them with every criterion, keep the best.
"""

import logging
import warnings

import numpy as np
import tensorflow as tf

from ptloss_tf.coefficients import Coefficients
from ptloss_tf.proxy import proxy_teacher
from ptloss_tf.search_result import CRITERIA
from ptloss_tf.search_result import SearchResult
from ptloss_tf.validation import check_labels
from ptloss_tf.validation import check_probabilities

logger = logging.getLogger(__name__)


def _one_hot(labels, num_classes):
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[-1] == 1:
        labels = labels[:, 0]
    return tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float64)


def deviation(proxy_probs, labels):
    """Paper Eq. 21: `D = (mean_n ||q_n - y_n||_2)^2 + (mean_n q_n . log q_n)^2`.

    The first term is the square of the mean (unsquared) L2 distance to the
    one-hot labels, the second the squared mean negative entropy, exactly as
    the paper prints it (MATH.md Sec. 3; Sec. 3b explains why this favours
    over-confident proxies).

    Args:
        proxy_probs: `[N, K]` or `[S, N, K]` proxy-teacher probabilities.
        labels: `[N]` integer labels.

    Returns:
        float64 tensor: a scalar, or `[S]` for a leading candidate axis.

    Example:
    >>> float(deviation([[1.0, 0.0], [0.0, 1.0]], [0, 1]))
    0.0
    """
    q = tf.convert_to_tensor(proxy_probs, tf.float64)
    y = _one_hot(labels, q.shape[-1])
    distance = tf.reduce_mean(tf.norm(q - y, axis=-1), axis=-1)
    negative_entropy = tf.reduce_mean(
        tf.reduce_sum(tf.math.xlogy(q, q), axis=-1), axis=-1
    )
    return tf.square(distance) + tf.square(negative_entropy)


def brier_score(proxy_probs, labels):
    """`mean_n ||q_n - y_n||_2^2`, a proper scoring rule; `[S]` if batched.

    Example:
    >>> float(brier_score([[0.5, 0.5]], [0]))
    0.5
    """
    q = tf.convert_to_tensor(proxy_probs, tf.float64)
    y = _one_hot(labels, q.shape[-1])
    return tf.reduce_mean(tf.reduce_sum(tf.square(q - y), axis=-1), axis=-1)


def proxy_nll(proxy_probs, labels):
    """The `"nll"` criterion: `mean_n -log q_n[y_n]` of proxy teacher and labels.

    A proper scoring rule (MATH.md Sec. 3b); inf where a label gets
    probability 0. Arguments and result as for `deviation` (`[S]` for a
    leading candidate axis). Not to be confused with the training metric
    `ptloss_tf.metrics.NegativeLogLikelihood`, which averages a student's NLL
    over batches.

    Example:
    >>> round(float(proxy_nll([[0.5, 0.5], [0.2, 0.8]], [1, 1])), 6)  # -(ln .5 + ln .8) / 2
    0.458145
    """
    q = tf.convert_to_tensor(proxy_probs, tf.float64)
    y = _one_hot(labels, q.shape[-1])
    return tf.reduce_mean(-tf.math.log(tf.reduce_sum(q * y, axis=-1)), axis=-1)


def negative_log_likelihood(proxy_probs, labels):
    """Deprecated name of `proxy_nll` (same value, with a `DeprecationWarning`).

    Renamed because `ptloss_tf.metrics.NegativeLogLikelihood` is another thing.
    """
    warnings.warn(
        "ptloss_tf.negative_log_likelihood (the proxy teacher's NLL criterion) "
        "is deprecated; use ptloss_tf.proxy_nll. The metric is "
        "ptloss_tf.metrics.NegativeLogLikelihood.",
        DeprecationWarning,
        stacklevel=2,
    )
    return proxy_nll(proxy_probs, labels)


_SCORERS = {
    "deviation": deviation,
    "brier": brier_score,
    "nll": proxy_nll,
}
assert tuple(_SCORERS) == CRITERIA


def coefficient_box(order, low=-1.0, high=10.0, convex=True):
    """Per-order sampling bounds `(lower [M], upper [M])`.

    With `convex=True` (the default) order `m` is drawn from
    `[max(low, -1/m), high]`, so every candidate keeps PTLoss convex and its
    proxy teacher unique; `convex=False` uses `[low, high]` for every order.

    Example:
    >>> coefficient_box(2)[0].tolist()
    [-1.0, -0.5]
    """
    order = int(order)
    if order < 1:
        raise ValueError(f"`order` must be >= 1, got {order}.")
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(
            f"need finite `low` < `high`, got low={low}, high={high}."
        )
    lower = np.full(order, low)
    if convex:
        lower = np.maximum(lower, -1.0 / np.arange(1, order + 1))
    if np.any(lower >= high):
        raise ValueError(
            f"empty coefficient box: lower bounds {lower.tolist()} vs "
            f"high={high}."
        )
    return lower, np.full(order, high)


def sample_candidates(
    order, num_classes, num_candidates, low=-1.0, high=10.0, seed=0, convex=True
):
    """Uniform candidate sets `[S, M, K]` in the box of `coefficient_box`.

    Deterministic for a given `seed` (numpy PCG64).

    Example:
    >>> sample_candidates(5, 3, 100).shape
    (100, 5, 3)
    """
    num_classes = int(num_classes)
    num_candidates = int(num_candidates)
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2, got {num_classes}.")
    if num_candidates < 1:
        raise ValueError(
            f"`num_candidates` must be >= 1, got {num_candidates}."
        )
    lower, upper = coefficient_box(order, low, high, convex)
    rng = np.random.default_rng(seed)
    draws = rng.uniform(size=(num_candidates, len(lower), num_classes))
    return lower[:, None] + draws * (upper - lower)[:, None]


def random_coefficients(order, num_classes, low=-1.0, high=10.0, seed=0):
    """The paper's random-coefficient baseline (Fig. 2a): one `Coefficients`
    set, each entry uniform in `[low, high]` (default `[-1, 10]`, not
    restricted to the convex box), chosen without looking at any data.

    Example:
    >>> random_coefficients(5, 3, seed=1).shape
    (5, 3)
    """
    return Coefficients(
        sample_candidates(order, num_classes, 1, low, high, seed, convex=False)[0]
    )


def search_coefficients(
    teacher_probs,
    labels,
    order,
    num_candidates=100,
    low=-1.0,
    high=10.0,
    seed=0,
    criterion="deviation",
    convex=True,
    max_iterations=200,
):
    """Proxy Teacher coefficient search (paper Sec. 4.1.3, MATH.md Sec. 3).

    Draws `num_candidates` uniform coefficient sets, solves every proxy
    teacher on the labelled validation set in one batched XLA call, scores each
    candidate with all criteria and keeps the one with the smallest value of
    `criterion`.

    Args:
        teacher_probs: `[N, K]` teacher probabilities on a validation set.
        labels: `[N]` integer validation labels.
        order: PTLoss order `M >= 1` (the paper uses 5).
        num_candidates: `S`, default 100 (the paper's).
        low, high: sampling range; with `convex=True` (default) order `m`
            is drawn from `[max(low, -1/m), high]` (see `coefficient_box`).
        seed: sampling seed; same seed, same candidates.
        criterion: `"deviation"` (Eq. 21, the paper's, default), `"brier"` or
            `"nll"` (proper scoring rules, MATH.md Sec. 3b).
        convex: restrict candidates to the convex box. `convex=False` is only
            supported for K = 2 (the solver certifies global minima there).
        max_iterations: Newton iteration cap of the solver.

    Returns:
        A `SearchResult` with `.best`, `.candidates [S, M, K]`,
        `.criterion_scores [S]` (the chosen criterion's), `.scores` (every
        criterion),
        `.teacher_scores` (the raw teacher, i.e. `eta = 0`), `.table()`,
        `.plot()`, `.to_json()`.

    Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> probs = rng.dirichlet([1.0, 1.0], size=200)
    >>> labels = rng.integers(0, 2, size=200)
    >>> result = search_coefficients(probs, labels, order=2, num_candidates=8)
    >>> result.best.shape, result.candidates.shape, result.criterion_scores.shape
    ((2, 2), (8, 2, 2), (8,))
    """
    if criterion not in CRITERIA:
        raise ValueError(
            f"`criterion` must be one of {list(CRITERIA)}, got {criterion!r}."
        )
    p = check_probabilities(teacher_probs)
    y = check_labels(labels, p.shape[0], p.shape[1])
    candidates = sample_candidates(
        order, p.shape[1], num_candidates, low, high, seed, convex
    )
    logger.info(
        "Solving %d proxy teachers on %d examples (K=%d, order %d).",
        len(candidates), p.shape[0], p.shape[1], int(order),
    )
    proxies = proxy_teacher(p, candidates, max_iterations=max_iterations)
    scores = {
        name: np.nan_to_num(fn(proxies, y).numpy(), nan=np.inf)
        for name, fn in _SCORERS.items()
    }
    teacher_scores = {
        name: float(fn(p, y).numpy()) for name, fn in _SCORERS.items()
    }
    return SearchResult(
        candidates=candidates,
        scores=scores,
        criterion=criterion,
        teacher_scores=teacher_scores,
        seed=seed,
    )
