"""`teacher_summary`: how a synthetic task's teacher relates to its labels
and to the known posterior `p*` (plain numpy; the report's teacher rows)."""

import numpy as np


def teacher_summary(split):
    """How the teacher of a `SyntheticSplit` relates to the labels and to `p*`.

    Plain numpy. Label-based entries use only labelled rows (`label >= 0`).

    Returns a dict of floats:
        num_examples: N.
        teacher_accuracy: mean `[argmax_k p^t == y]`.
        teacher_tvd_to_labels: mean `0.5 * ||p^t - onehot(y)||_1` (the
            paper's Fig. 2b quantity).
        teacher_mse_to_p_star: mean over examples of `||p^t - p*||_2^2`.
        teacher_kl_to_p_star: mean `KL(p* || p^t) = sum_k p*_k log(p*_k / p^t_k)`.
        teacher_expected_accuracy: mean `p*[argmax_k p^t]` (the accuracy the
            teacher's decisions have in expectation over the labels).
        teacher_mean_max_prob, p_star_mean_max_prob: mean `max_k p`.
        bayes_accuracy: mean `[argmax_k p* == y]` (the best any model can do
            on these labels, up to sampling noise).
        bayes_expected_accuracy: mean `max_k p*`.
        p_star_tvd_to_labels: mean `0.5 * ||p* - onehot(y)||_1`.

    Example (teacher == p* when overconfidence=1):
    >>> from ptloss_tf.training.synthetic import make_synthetic_task
    >>> task = make_synthetic_task(num_train=30, num_validation=5, num_test=5, overconfidence=1.0)
    >>> s = teacher_summary(task.train)
    >>> s["teacher_mse_to_p_star"], s["teacher_accuracy"] == s["bayes_accuracy"]
    (0.0, True)
    """
    p_t = np.asarray(split.teacher_probs, dtype=np.float64)
    p_s = np.asarray(split.p_star, dtype=np.float64)
    y = np.asarray(split.examples.labels, dtype=np.int64)
    n, k = p_t.shape
    lab = y >= 0
    onehot = np.eye(k)[y[lab]]
    t_arg = p_t.argmax(axis=1)
    s_arg = p_s.argmax(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p_s > 0, p_s * (np.log(p_s) - np.log(p_t)), 0.0)
    nan = float("nan")

    def mean(x):
        return float(np.mean(x)) if np.size(x) else nan

    return {
        "num_examples": int(n),
        "num_labelled": int(lab.sum()),
        "teacher_accuracy": mean(t_arg[lab] == y[lab]),
        "teacher_tvd_to_labels": mean(0.5 * np.abs(p_t[lab] - onehot).sum(axis=1)),
        "teacher_mse_to_p_star": mean(((p_t - p_s) ** 2).sum(axis=1)),
        "teacher_kl_to_p_star": mean(terms.sum(axis=1)),
        "teacher_expected_accuracy": mean(p_s[np.arange(n), t_arg]),
        "teacher_mean_max_prob": mean(p_t.max(axis=1)),
        "p_star_mean_max_prob": mean(p_s.max(axis=1)),
        "bayes_accuracy": mean(s_arg[lab] == y[lab]),
        "bayes_expected_accuracy": mean(p_s.max(axis=1)),
        "p_star_tvd_to_labels": mean(0.5 * np.abs(p_s[lab] - onehot).sum(axis=1)),
    }
