"""`LabelSmoothingKLDivergence`: KL to a label-smoothed teacher."""

import keras

from ptloss_tf.losses.base import DistillationLossBase


@keras.saving.register_keras_serializable(package="ptloss_tf")
class LabelSmoothingKLDivergence(DistillationLossBase):
    """`KL((1 - delta) p + delta / K || q)`: the label-smoothing baseline.

    Up to the student-independent entropy of the smoothed teacher this is
    `keras.losses.CategoricalCrossentropy(label_smoothing=delta)` applied to
    teacher probabilities; the value reported here is KL-based (0 when the
    student equals the smoothed teacher). Paper grid:
    `delta in {0.02, 0.05, 0.1, 0.15, 0.2}`. Paper Sec. 4.2: this is PTLoss
    with example-dependent coefficients.

    Args:
        smoothing: `delta` in `[0, 1]`.
        from_logits: whether `y_pred` are student logits.
        temperature, reduction, name, dtype: as for `PTLoss`.

    Example:
    >>> import numpy as np
    >>> loss = LabelSmoothingKLDivergence(0.1, from_logits=True)
    >>> # KL((0.05, 0.95) || softmax(0, 1) = (0.2689, 0.7311))
    >>> round(float(loss(np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]]))), 4)
    0.1647
    """

    def __init__(
        self,
        smoothing,
        from_logits=False,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="label_smoothing_kl_divergence",
        dtype=None,
    ):
        super().__init__(from_logits, temperature, reduction, name, dtype)
        smoothing = float(smoothing)
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(
                f"`smoothing` must lie in [0, 1], got {smoothing}."
            )
        self.smoothing = smoothing

    def _per_example_loss(self, p, log_q):
        num_classes = p.shape[-1]
        p = (1.0 - self.smoothing) * p + self.smoothing / num_classes
        return self._kl(p, log_q)

    def get_config(self):
        config = super().get_config()
        config["smoothing"] = self.smoothing
        return config
