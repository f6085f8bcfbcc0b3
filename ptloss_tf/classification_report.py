"""Metrics of a classifier's hard predictions beyond accuracy.

Accuracy alone hides the failure that distillation on a small or skewed
data set produces most often: a student that predicts one class for every
example (on RTE and BoolQ in `docs/RESULTS.md` every student did). Macro-F1
and, for two classes, the Matthews correlation coefficient expose it (both
are 0 for a constant predictor whatever the class ratio), and the counts of
predictions per class show it directly.

Example:
>>> report = classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], ("neg", "pos"))
>>> report["accuracy"], round(report["macro_f1"], 4), round(report["mcc"], 4)
(0.75, 0.7333, 0.5774)
>>> report["prediction_counts"], report["single_class_prediction"]
({'neg': 3, 'pos': 1}, False)
"""

import numpy as np


def macro_f1(labels, predictions, num_classes):
    """The unweighted mean over classes of F1 = 2TP / (2TP + FP + FN).

    The mean runs over the classes that occur among the labels or the
    predictions (as scikit-learn's default), so a class absent from both
    neither counts as 0 nor as 1.

    Example:
    >>> macro_f1([0, 0, 1, 1], [0, 0, 0, 0], 2)  # F1 2/3 for class 0, 0 for class 1
    0.3333333333333333
    """
    labels, predictions = _check(labels, predictions, num_classes)
    scores = []
    for k in range(num_classes):
        tp = np.sum((predictions == k) & (labels == k))
        fp = np.sum((predictions == k) & (labels != k))
        fn = np.sum((predictions != k) & (labels == k))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def matthews_correlation(labels, predictions):
    """Matthews correlation coefficient of binary labels and predictions
    (the phi coefficient, Pearson's correlation of the two 0/1 vectors);
    0 when either is constant.

    Example:
    >>> matthews_correlation([0, 1, 0, 1], [0, 1, 0, 1]), matthews_correlation([0, 1], [1, 1])
    (1.0, 0.0)
    """
    labels, predictions = _check(labels, predictions, 2)
    tp = float(np.sum((predictions == 1) & (labels == 1)))
    tn = float(np.sum((predictions == 0) & (labels == 0)))
    fp = float(np.sum((predictions == 1) & (labels == 0)))
    fn = float(np.sum((predictions == 0) & (labels == 1)))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator else 0.0


def classification_metrics(labels, predictions, class_names):
    """Accuracy, macro-F1, (binary) MCC and per-class counts of predictions.

    Args:
        labels: `[N]` int class indices; -1 (unlabeled) rows are left out.
        predictions: `[N]` int predicted class indices.
        class_names: label index -> name (K names).

    Returns:
        `{"accuracy", "macro_f1", "mcc" (K = 2 only), "prediction_counts":
        {name: n}, "label_counts": {name: n}, "single_class_prediction":
        bool}`; `single_class_prediction` is True when every prediction is
        the same class while the labels hold more than one.
    """
    class_names = tuple(str(c) for c in class_names)
    labels, predictions = _check(labels, predictions, len(class_names))
    counts = np.bincount(predictions, minlength=len(class_names))
    label_counts = np.bincount(labels, minlength=len(class_names))
    report = {
        "accuracy": float(np.mean(labels == predictions)) if len(labels) else float("nan"),
        "macro_f1": macro_f1(labels, predictions, len(class_names)),
    }
    if len(class_names) == 2:
        report["mcc"] = matthews_correlation(labels, predictions)
    report["prediction_counts"] = {c: int(n) for c, n in zip(class_names, counts)}
    report["label_counts"] = {c: int(n) for c, n in zip(class_names, label_counts)}
    report["single_class_prediction"] = bool(
        np.count_nonzero(counts) == 1 and np.count_nonzero(label_counts) > 1)
    return report


def reliability_bins(probs, labels, num_bins=10):
    """A reliability diagram's data: per confidence bin, the mean confidence
    (max probability), the accuracy and the count.

    Bins split [0, 1] into `num_bins` equal parts (a confidence of exactly 1
    falls in the last); unlabeled rows (-1) are left out; empty bins have
    count 0 and None (JSON null) as confidence and accuracy. The count-weighted mean of
    `|accuracy - confidence|` over the bins is the ECE.

    Args:
        probs: `[N, K]` probabilities.
        labels: `[N]` class indices, -1 = unlabeled.
        num_bins: number of equal-width bins.

    Returns:
        `{"edges": [num_bins + 1], "confidence": [num_bins], "accuracy":
        [num_bins], "count": [num_bins]}` of plain floats / ints.

    Example:
    >>> bins = reliability_bins([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], [0, 1, 1], num_bins=2)
    >>> bins["count"], bins["accuracy"], [c and round(c, 4) for c in bins["confidence"]]
    ([0, 3], [None, 0.6666666666666666], [None, 0.7667])
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs must be [N, K] with N = len(labels) = {labels.shape[0]}, "
                         f"got shape {probs.shape}.")
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be at least 1, got {num_bins}.")
    labelled = labels >= 0
    probs, labels = probs[labelled], labels[labelled]
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, int(num_bins) + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=False), 0, int(num_bins) - 1)
    bins = {"edges": edges.tolist(), "confidence": [], "accuracy": [], "count": []}
    for b in range(int(num_bins)):
        members = index == b
        n = int(members.sum())
        bins["count"].append(n)
        bins["confidence"].append(float(confidence[members].mean()) if n else None)
        bins["accuracy"].append(float(correct[members].mean()) if n else None)
    return bins


def _check(labels, predictions, num_classes):
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    predictions = np.asarray(predictions).astype(np.int64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions must have the same length, got "
                         f"{labels.shape[0]} and {predictions.shape[0]}.")
    if predictions.size and (predictions.min() < 0 or predictions.max() >= num_classes):
        raise ValueError(f"predictions must be class indices in [0, {num_classes}).")
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"labels must be class indices in [0, {num_classes}) or -1.")
    labelled = labels >= 0  # -1: unlabeled, not scored
    return labels[labelled], predictions[labelled]
