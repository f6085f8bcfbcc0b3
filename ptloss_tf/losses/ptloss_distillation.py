"""`PTLossDistillation`: PTLoss as a `keras.distillation.DistillationLoss`."""

import keras
from keras import ops

from ptloss_tf.coefficients import as_coefficients
from ptloss_tf.losses.ptloss import PTLoss
from ptloss_tf.validation import check_positive


@keras.saving.register_keras_serializable(package="ptloss_tf")
class PTLossDistillation(keras.distillation.DistillationLoss):
    """Plugs PTLoss into Keras' own `keras.distillation.Distiller`.

    Keras' `Distiller` hands `compute_loss` the teacher's and the student's
    *logits*. The teacher logits become probabilities `softmax(t / T)`; the
    student logits go through `PTLoss(from_logits=True, temperature=T)` (which
    multiplies by `T^2`). The batch mean is taken, as Keras'
    `LogitsDistillation` does.

    Args:
        coefficients: `[M, K]` array-like or `ptloss_tf.Coefficients`.
        temperature: `T > 0`, default 1.

    Example:
    ```python
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=ptloss_tf.losses.PTLossDistillation([[1.0, 1.0]]),
        student_loss_weight=0.0)
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ```
    """

    def __init__(self, coefficients, temperature=1.0):
        self.coefficients = as_coefficients(coefficients)
        self.temperature = check_positive(temperature, "temperature")
        # Both sides are tempered here, so the inner loss runs at T = 1.
        self._loss = PTLoss(self.coefficients, from_logits=True, reduction=None)

    def validate_outputs(self, teacher_outputs, student_outputs):
        super().validate_outputs(teacher_outputs, student_outputs)
        self._loss._check_shapes(
            teacher_outputs, student_outputs, self.coefficients.num_classes
        )

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        teacher_probs = ops.softmax(
            ops.cast(teacher_outputs, "float32") / self.temperature, axis=-1
        )
        student_scaled = ops.cast(student_outputs, "float32") / self.temperature
        per_example = self._loss(teacher_probs, student_scaled)
        return ops.mean(per_example) * (self.temperature**2)

    def get_config(self):
        return {
            "coefficients": self.coefficients.values.tolist(),
            "temperature": self.temperature,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
