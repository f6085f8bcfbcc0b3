"""`ExpectedCalibrationError`: binned top-label calibration error (ECE)."""

import numbers

import keras
from keras import ops

from ptloss_tf.metrics import _utils


@keras.saving.register_keras_serializable(package="ptloss_tf")
class ExpectedCalibrationError(keras.metrics.Metric):
    """Expected calibration error of the top-1 prediction (Guo et al. 2017).

    The confidence of an example is its largest predicted probability
    `conf = max_k q_k`; it is correct when `argmax_k q_k` equals the label.
    Examples fall into `num_bins` equal-width confidence bins over `[0, 1]`
    (bin `min(floor(conf * num_bins), num_bins - 1)`) and

    `ECE = sum_b (n_b / N) * |acc_b - conf_b|`,

    where `n_b` is the (weighted) number of examples in bin `b`, `N = sum_b
    n_b`, and `acc_b`, `conf_b` are the bin's mean correctness and mean
    confidence. The state is three `[num_bins]` vectors (weighted count, sum
    of confidences, sum of correct predictions) with `"sum"` aggregation, so
    the metric accumulates over batches and replicas exactly: the ECE of many
    batches equals the ECE of their concatenation. Computation is in float32
    whatever the dtype of `y_pred` (float64 if `dtype="float64"`).

    Args:
        num_bins: number of equal-width confidence bins, an int `>= 1`.
        from_logits: whether `y_pred` are logits (softmax is applied).
        name: (Optional) string name of the metric instance.
        dtype: (Optional) data type of the metric result.

    `update_state(y_true, y_pred, sample_weight=None)` takes integer labels
    `[B]` or `[B, 1]` (or one-hot / probability rows `[B, K]`, reduced by
    argmax), predictions `[B, K]` and optional per-example weights `[B]`.

    Example:

    >>> import numpy as np
    >>> m = ExpectedCalibrationError(num_bins=10)
    >>> m.update_state([0, 1, 1], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    >>> # bins 9, 8, 6 hold one example each: (0.1 + 0.2 + 0.6) / 3
    >>> round(float(m.result()), 4)
    0.3
    >>> m.reset_state()
    >>> float(m.result())
    0.0

    Usage with `compile()`: `model.compile(..., metrics=[ExpectedCalibrationError(num_bins=15)])`.
    """

    def __init__(self, num_bins=15, from_logits=False, name="ece", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if (
            isinstance(num_bins, bool)
            or not isinstance(num_bins, numbers.Integral)
            or num_bins < 1
        ):
            raise ValueError(
                f"`num_bins` must be an integer >= 1, got {num_bins!r}."
            )
        self.num_bins = int(num_bins)
        self.from_logits = bool(from_logits)
        # Smaller is better (for callbacks monitoring this metric).
        self._direction = "down"
        acc_dtype = _utils.accumulation_dtype(self)
        self.bin_counts = self.add_variable(
            shape=(self.num_bins,),
            initializer="zeros",
            dtype=acc_dtype,
            name="bin_counts",
        )
        self.bin_confidences = self.add_variable(
            shape=(self.num_bins,),
            initializer="zeros",
            dtype=acc_dtype,
            name="bin_confidences",
        )
        self.bin_correct = self.add_variable(
            shape=(self.num_bins,),
            initializer="zeros",
            dtype=acc_dtype,
            name="bin_correct",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        dtype = _utils.accumulation_dtype(self)
        y_pred = ops.convert_to_tensor(y_pred)
        labels = _utils.labels(y_true, y_pred)
        probs = _utils.probabilities(y_pred, self.from_logits, dtype)

        confidence = ops.max(probs, axis=-1)
        predicted = ops.cast(ops.argmax(probs, axis=-1), "int32")
        correct = ops.cast(ops.equal(predicted, labels), dtype)
        weight = _utils.sample_weights(sample_weight, confidence, dtype)

        bins = ops.floor(confidence * ops.cast(self.num_bins, dtype))
        bins = ops.cast(ops.clip(bins, 0, self.num_bins - 1), "int32")
        # [B, num_bins] weighted bin membership; one matmul-free reduction
        # per statistic keeps this XLA- and replica-friendly.
        member = ops.one_hot(bins, self.num_bins, dtype=dtype)
        member = member * ops.expand_dims(weight, -1)

        self.bin_counts.assign_add(ops.sum(member, axis=0))
        self.bin_confidences.assign_add(
            ops.sum(member * ops.expand_dims(confidence, -1), axis=0)
        )
        self.bin_correct.assign_add(
            ops.sum(member * ops.expand_dims(correct, -1), axis=0)
        )

    def result(self):
        # (n_b / N) |acc_b - conf_b| = |correct_b - confidence_b| / N.
        gaps = ops.sum(ops.abs(self.bin_correct - self.bin_confidences))
        ece = ops.divide_no_nan(gaps, ops.sum(self.bin_counts))
        return ops.cast(ece, self.dtype)

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "num_bins": self.num_bins,
            "from_logits": self.from_logits,
        }
