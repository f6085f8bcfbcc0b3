"""Private helpers shared by the metrics in `ptloss_tf.metrics`."""

import keras
from keras import ops


def accumulation_dtype(metric):
    """float64 if the metric was built with `dtype="float64"`, else float32.

    Predictions may arrive in bfloat16/float16 (mixed precision students);
    the metrics always compute and accumulate in at least float32.
    """
    return "float64" if metric.dtype == "float64" else "float32"


def probabilities(y_pred, from_logits, dtype):
    """Casts `y_pred` to `dtype` and applies softmax if they are logits."""
    y_pred = ops.cast(y_pred, dtype)
    if from_logits:
        y_pred = ops.softmax(y_pred, axis=-1)
    return y_pred


def is_distribution(y_true, y_pred):
    """Statically decides whether `y_true` is `[B, K]` rows or labels.

    `y_true` is a distribution (one-hot or soft) when it has the rank of
    `y_pred` and its last axis is not a singleton label axis; otherwise it
    holds integer labels of shape `[B]` or `[B, 1]`.
    """
    t_rank, p_rank = len(y_true.shape), len(y_pred.shape)
    if t_rank == p_rank - 1:
        return False
    if t_rank != p_rank:
        raise ValueError(
            "`y_true` must be integer labels of shape [B] or [B, 1] or a "
            f"distribution of shape [B, K] matching `y_pred` {y_pred.shape}; "
            f"got shape {y_true.shape}."
        )
    t_last, p_last = y_true.shape[-1], y_pred.shape[-1]
    return not (t_last == 1 and p_last != 1)


def labels(y_true, y_pred):
    """Integer labels `[B]` (int32) from labels `[B]`/`[B, 1]` or `[B, K]`."""
    y_true = ops.convert_to_tensor(y_true)
    if is_distribution(y_true, y_pred):
        return ops.cast(ops.argmax(y_true, axis=-1), "int32")
    if len(y_true.shape) == len(y_pred.shape):
        y_true = ops.squeeze(y_true, axis=-1)
    return ops.cast(y_true, "int32")


def sample_weights(sample_weight, reference, dtype):
    """Per-example weights with the shape of `reference` (`[B]`), or ones."""
    if sample_weight is None:
        return ops.ones_like(reference, dtype=dtype)
    sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), dtype)
    if len(sample_weight.shape) == 0:
        return ops.broadcast_to(sample_weight, ops.shape(reference))
    return ops.reshape(sample_weight, ops.shape(reference))


class PerExampleMeanMetric(keras.metrics.MeanMetricWrapper):
    """Mean of a per-example function of `(y_true, y_pred)`, lower is better.

    The shared constructor and config of `NegativeLogLikelihood` and
    `TotalVariationDistance`: `fn(y_true, y_pred, from_logits, dtype)` gets
    the accumulation dtype (at least float32, see `accumulation_dtype`).
    """

    def __init__(self, fn, from_logits=False, name=None, dtype=None):
        super().__init__(fn, name=name, dtype=dtype, from_logits=bool(from_logits))
        self._fn_kwargs["dtype"] = accumulation_dtype(self)
        self.from_logits = bool(from_logits)
        # Smaller is better (for callbacks monitoring this metric).
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits}
