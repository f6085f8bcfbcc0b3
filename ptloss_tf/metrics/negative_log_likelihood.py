"""`NegativeLogLikelihood`: mean `-log q_y` of the true labels."""

import keras
from keras import ops

from ptloss_tf.metrics import _utils


def _negative_log_likelihood(y_true, y_pred, from_logits=False, dtype="float32"):
    """Per-example `-log q_y`, shape `[B]`, via Keras' sparse crossentropy."""
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.cast(y_pred, dtype)
    return keras.losses.sparse_categorical_crossentropy(
        y_true, y_pred, from_logits=from_logits
    )


@keras.saving.register_keras_serializable(package="ptloss_tf")
class NegativeLogLikelihood(_utils.PerExampleMeanMetric):
    """Mean negative log-likelihood `-log q_y` of integer labels `y`.

    A thin wrapper around `keras.losses.sparse_categorical_crossentropy`
    computed in float32 whatever the dtype of `y_pred` (float64 if
    `dtype="float64"`). With `from_logits=True` the log-softmax is evaluated
    stably, so even logits of magnitude `1e4` give a finite value; with
    probabilities Keras clips `q_y` to `[1e-7, 1 - 1e-7]` (so the value is at
    most `-log 1e-7 ~ 16.1`). `y_true` holds integer labels of shape `[B]` or
    `[B, 1]`; per-example values are averaged (weighted by `sample_weight`)
    over all examples seen.

    Args:
        from_logits: whether `y_pred` are logits rather than probabilities.
        name: (Optional) string name of the metric instance.
        dtype: (Optional) data type of the metric result.

    Example:

    >>> m = NegativeLogLikelihood()
    >>> m.update_state([1, 0], [[0.5, 0.5], [0.25, 0.75]])
    >>> round(float(m.result()), 4)  # (log 2 + log 4) / 2
    1.0397
    >>> m = NegativeLogLikelihood(from_logits=True)
    >>> m.update_state([0], [[0.0, 0.0]])
    >>> round(float(m.result()), 4)  # log 2
    0.6931

    Usage with `compile()`: `model.compile(..., metrics=[NegativeLogLikelihood()])`.
    """

    def __init__(self, from_logits=False, name="nll", dtype=None):
        super().__init__(_negative_log_likelihood, from_logits=from_logits, name=name, dtype=dtype)
