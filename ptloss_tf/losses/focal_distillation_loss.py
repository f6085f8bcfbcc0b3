"""`FocalDistillationLoss`: the focal-loss baseline on teacher probabilities."""

import keras
from keras import ops

from ptloss_tf.losses.base import DistillationLossBase


@keras.saving.register_keras_serializable(package="ptloss_tf")
class FocalDistillationLoss(DistillationLossBase):
    """`-sum_k p_k (1 - q_k)^tau log q_k` (Lin et al. 2017; MATH.md Sec. 4).

    Equals `keras.losses.CategoricalFocalCrossentropy(alpha=1, gamma=tau)` with
    the teacher probabilities as `y_true`, but computed from the log-softmax
    (no probability clipping, stable for extreme logits). Unlike the KL-based
    losses this is a cross-entropy value (it is not zero at `q = p`), as in
    the paper. Paper grid: `tau in {0.1, 0.2, 0.5, 1, 2, 5}`.

    Args:
        focusing: `tau >= 0`.
        from_logits: whether `y_pred` are student logits.
        temperature, reduction, name, dtype: as for `PTLoss`.

    Example:
    >>> import numpy as np
    >>> loss = FocalDistillationLoss(2.0, from_logits=True)
    >>> # q = softmax(0, 1) = (0.2689, 0.7311):
    >>> # -(0.3 * 0.7311^2 * log 0.2689 + 0.7 * 0.2689^2 * log 0.7311)
    >>> round(float(loss(np.array([[0.3, 0.7]]), np.array([[0.0, 1.0]]))), 4)
    0.2264
    """

    def __init__(
        self,
        focusing,
        from_logits=False,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="focal_distillation_loss",
        dtype=None,
    ):
        super().__init__(from_logits, temperature, reduction, name, dtype)
        focusing = float(focusing)
        if not focusing >= 0.0:
            raise ValueError(f"`focusing` (tau) must be >= 0, got {focusing}.")
        self.focusing = focusing

    def _per_example_loss(self, p, log_q):
        # Floored so that the power's derivative stays finite at q = 1.
        one_minus_q = ops.maximum(-ops.expm1(log_q), 1e-30)
        weight = ops.power(one_minus_q, self.focusing)
        return -ops.sum(p * weight * log_q, axis=-1)

    def get_config(self):
        config = super().get_config()
        config["focusing"] = self.focusing
        return config
