"""`TotalVariationDistance`: mean TVD between predictions and targets."""

import keras
from keras import ops

from ptloss_tf.metrics import _utils


def _total_variation_distance(y_true, y_pred, from_logits=False, dtype="float32"):
    """Per-example `0.5 * sum_k |q_k - t_k|`, shape `[B]`."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    probs = _utils.probabilities(y_pred, from_logits, dtype)
    if _utils.is_distribution(y_true, y_pred):
        target = ops.cast(y_true, dtype)
    else:
        num_classes = y_pred.shape[-1]
        if num_classes is None:
            num_classes = ops.shape(y_pred)[-1]
        target = ops.one_hot(
            _utils.labels(y_true, y_pred), num_classes, dtype=dtype
        )
    return 0.5 * ops.sum(ops.abs(probs - target), axis=-1)


@keras.saving.register_keras_serializable(package="ptloss_tf")
class TotalVariationDistance(_utils.PerExampleMeanMetric):
    """Mean total variation distance `0.5 * sum_k |q_k - t_k|`.

    `q = y_pred` are predicted probabilities (softmax of `y_pred` when
    `from_logits=True`); the target `t` is either a distribution `[B, K]`
    (one-hot or soft, e.g. teacher probabilities) or integer labels `[B]` /
    `[B, 1]`, which are one-hot encoded. Which one is decided statically
    from the shapes: `y_true` with the rank of `y_pred` and a non-singleton
    last axis is a distribution. With labels the value is `1 - q_y` for
    normalised `q`; it lies in `[0, 1]`. The PTLoss paper (Fig. 2b) reports
    the teacher's TVD to the labels. Per-example values are computed in
    float32 whatever the input dtype, then averaged (weighted by
    `sample_weight`) over all examples seen.

    Args:
        from_logits: whether `y_pred` are logits (softmax is applied).
        name: (Optional) string name of the metric instance.
        dtype: (Optional) data type of the metric result.

    Example:

    >>> import numpy as np
    >>> m = TotalVariationDistance()
    >>> m.update_state([0, 1], np.array([[0.75, 0.25], [0.5, 0.5]]))
    >>> round(float(m.result()), 4)  # mean of 0.25 and 0.5
    0.375
    >>> m.reset_state()
    >>> m.update_state(np.array([[0.5, 0.5]]), np.array([[0.75, 0.25]]))
    >>> round(float(m.result()), 4)
    0.25

    Usage with `compile()`: `model.compile(..., metrics=[TotalVariationDistance()])`.
    """

    def __init__(self, from_logits=False, name="tvd", dtype=None):
        super().__init__(_total_variation_distance, from_logits=from_logits, name=name, dtype=dtype)
