"""`KLDivergence`: the plain KL distillation loss (Hinton et al. 2015)."""

import keras

from ptloss_tf.losses.base import DistillationLossBase


@keras.saving.register_keras_serializable(package="ptloss_tf")
class KLDivergence(DistillationLossBase):
    """`KL(p || q)` between teacher probabilities and the student.

    Same value as `keras.losses.KLDivergence` on probabilities, but accepts
    student logits (`from_logits=True`, computed from the log-softmax: stable
    for extreme logits) and follows the package's call convention
    (`ptloss_tf.losses.base`). With `temperature=T` it is the temperature
    baseline `T^2 KL(softmax(t/T) || softmax(z/T))` (see
    `TemperatureKLDivergence`).

    Args:
        from_logits: whether `y_pred` are logits.
        temperature: softening temperature `T > 0`, default 1.
        reduction, name, dtype: as for `keras.losses.Loss`.

    Example:
    >>> import numpy as np
    >>> loss = KLDivergence(from_logits=True)
    >>> round(float(loss(np.array([[0.5, 0.5]]), np.array([[0.0, 0.0]]))), 6)
    0.0
    """

    def __init__(
        self,
        from_logits=False,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="kl_divergence",
        dtype=None,
    ):
        super().__init__(from_logits, temperature, reduction, name, dtype)

    def _per_example_loss(self, p, log_q):
        return self._kl(p, log_q)
