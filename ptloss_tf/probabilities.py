"""Numpy helpers on probability rows: softmax, distances to p*, teacher stats.

Plain numpy (no TensorFlow import), for reports and analysis scripts that look
at cached teacher or student probabilities `[N, K]`. `p_star` is the true
posterior `p*(y | x)` where a task knows it (synthetic tasks).
"""

import numpy as np

from ptloss_tf.validation import check_labels

#: Floor applied to probabilities before their log in `distance_to_p_star`,
#: so a zero probability gives a large finite KL instead of inf.
LOG_FLOOR = 1e-12


def softmax(logits, axis=-1):
    """Numerically stable softmax along `axis`, computed and returned in float64.

    The row maximum is subtracted before `exp`, so logits of magnitude 1e4
    give finite probabilities. The result is float64 whatever the input dtype:
    these helpers feed reports and statistics, where float32 rounding of the
    small probabilities would show.

    Args:
        logits: array-like of logits.
        axis: the class axis.

    Returns:
        float64 array of `logits`' shape; slices along `axis` sum to 1.

    Example:
    >>> p = softmax([[0.0, 1.0, 2.0], [1000.0, 1000.0, -1000.0]])
    >>> p.round(4).tolist()
    [[0.09, 0.2447, 0.6652], [0.5, 0.5, 0.0]]
    >>> p.dtype
    dtype('float64')
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def distance_to_p_star(probs, p_star):
    """Mean `KL(p* || probs)` and mean squared error to the true posterior.

    `kl_to_p_star = mean_n sum_k p*_nk (log p*_nk - log probs_nk)` with both
    probabilities floored at `LOG_FLOOR` inside the logs (so `0 log 0 = 0`),
    `mse_to_p_star = mean_n sum_k (probs_nk - p*_nk)^2` (summed over classes).
    Computed in the inputs' dtype, as numpy promotes it.

    Args:
        probs: `[N, K]` probabilities (teacher, proxy teacher or student).
        p_star: `[N, K]` true posterior.

    Returns:
        dict with float values `"kl_to_p_star"` and `"mse_to_p_star"`.

    Example:
    >>> d = distance_to_p_star([[0.5, 0.5]], [[0.25, 0.75]])
    >>> round(d["kl_to_p_star"], 4), d["mse_to_p_star"]  # 0.75 ln 3 - ln 2, 2 * 0.25^2
    (0.1308, 0.125)
    """
    probs, p_star = _same_shape(probs, p_star, "p_star")
    log_ratio = np.log(np.clip(p_star, LOG_FLOOR, 1)) - np.log(
        np.clip(probs, LOG_FLOOR, 1)
    )
    return {
        "kl_to_p_star": float(np.mean(np.sum(p_star * log_ratio, -1))),
        "mse_to_p_star": float(np.mean(np.sum((probs - p_star) ** 2, -1))),
    }


def teacher_statistics(probs, labels, p_star=None):
    """A teacher's accuracy and distance to the labels (and to p*, if known).

    Args:
        probs: `[N, K]` teacher probabilities.
        labels: `[N]` integer labels.
        p_star: optional `[N, K]` true posterior.

    Returns:
        dict of floats: `"accuracy"` (argmax of `probs` equals the label),
        `"tvd_to_labels"` (mean `0.5 * ||probs_n - onehot(y_n)||_1`, the
        quantity of the paper's Fig. 2b); with `p_star` also the two
        `distance_to_p_star` entries and `"bayes_accuracy"` (accuracy of the
        argmax of `p_star`: the best any classifier can expect).

    Example:
    >>> s = teacher_statistics([[0.75, 0.25], [0.5, 0.5], [0.25, 0.75]],
    ...                        [0, 1, 0], p_star=[[0.5, 0.5], [0.25, 0.75],
    ...                                           [0.75, 0.25]])
    >>> s["accuracy"], s["tvd_to_labels"]  # argmax ties go to class 0
    (0.3333333333333333, 0.5)
    >>> s["bayes_accuracy"], s["mse_to_p_star"]
    (1.0, 0.25)
    """
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(
            f"`probs` must have shape [num_examples, num_classes], got {probs.shape}."
        )
    labels = check_labels(labels, probs.shape[0], probs.shape[1])
    onehot = np.eye(probs.shape[1])[labels]
    statistics = {
        "accuracy": float(np.mean(probs.argmax(1) == labels)),
        "tvd_to_labels": float(np.mean(0.5 * np.abs(probs - onehot).sum(1))),
    }
    if p_star is not None:
        probs, p_star = _same_shape(probs, p_star, "p_star")
        statistics.update(distance_to_p_star(probs, p_star))
        statistics["bayes_accuracy"] = float(np.mean(p_star.argmax(1) == labels))
    return statistics


def _same_shape(probs, other, name):
    probs, other = np.asarray(probs), np.asarray(other)
    if probs.shape != other.shape:
        raise ValueError(
            f"`probs` and `{name}` must have the same shape, got {probs.shape} "
            f"and {other.shape}."
        )
    return probs, other
