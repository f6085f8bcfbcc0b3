"""Shared machinery of the distillation losses (one convention for all).

Call convention of every loss in `ptloss_tf.losses`:

* `y_true`: teacher probabilities `[B, K]` (rows on the simplex).
* `y_pred`: student logits (`from_logits=True`) or probabilities `[B, K]`.
* `temperature=T`: teacher and student distributions are both softened,
  `p_T = softmax(log p / T)` (equal to `softmax(teacher_logits / T)`) and
  `q_T = softmax(z / T)`, and the loss is multiplied by `T^2` (Hinton et al.
  2015) so gradient magnitudes do not shrink with `T`.

Computation happens in float32 (float64 if the loss dtype is float64) whatever
the inputs' dtype, so `mixed_bfloat16` / `mixed_float16` students get an exact
loss. Value checks (NaN, negative, unnormalised teacher rows) run only when the
loss is called eagerly on concrete tensors; inside a compiled step only the
static shape checks remain (see `ptloss_tf.validation`).
"""

import keras
import numpy as np
from keras import ops

from ptloss_tf import validation

#: Clip for student probabilities given with `from_logits=False`.
PROBABILITY_EPSILON = 1e-7


def check_weight(value, name):
    """Raises unless `value` is a finite number >= 0 (a loss term's weight);
    returns it as float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number >= 0, got {value!r}.") from None
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return v


def _is_concrete(x):
    return hasattr(x, "numpy") and not keras.backend.is_keras_tensor(x)


class DistillationLossBase(keras.losses.Loss):
    """Base class: input handling shared by all distillation losses.

    `call` checks the inputs, softens teacher and student by the temperature
    (`_prepare`), hands the tempered teacher probabilities `p` and student
    log-probabilities `log_q` to the subclass' `_per_example_loss`, and
    multiplies its `[B]` result by `T^2`. Subclasses spell out their full
    constructor signature (their documented API, read by
    `ptloss_tf.losses.parameters`) and forward the five shared arguments to
    this constructor positionally, in its order.
    """

    def __init__(
        self,
        from_logits=False,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name=None,
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.temperature = validation.check_positive(temperature, "temperature")

    @property
    def compute_dtype_for_loss(self):
        return "float64" if self.dtype == "float64" else "float32"

    @property
    def _expected_num_classes(self):
        """The class count the loss is bound to (PTLoss' coefficients), or None."""
        return None

    def call(self, y_true, y_pred):
        p, log_q = self._prepare(y_true, y_pred, self._expected_num_classes)
        return self._scale(self._per_example_loss(p, log_q))

    def _per_example_loss(self, p, log_q):
        """`[B]` loss of tempered teacher probs `p` and student log-probs `log_q`
        (both `[B, K]`), before the `T^2` factor."""
        raise NotImplementedError

    def _check_shapes(self, y_true, y_pred, num_classes=None):
        t_shape = tuple(y_true.shape)
        p_shape = tuple(y_pred.shape)
        if len(t_shape) < 1 or len(p_shape) < 1:
            raise ValueError(
                f"{self.name}: `y_true` (teacher probabilities) and `y_pred` "
                f"(student) must have a class axis, got shapes {t_shape} and "
                f"{p_shape}."
            )
        k_true, k_pred = t_shape[-1], p_shape[-1]
        if k_true is not None and k_pred is not None and k_true != k_pred:
            raise ValueError(
                f"{self.name}: class-count mismatch: teacher probabilities "
                f"`y_true` have {k_true} classes (shape {t_shape}), the "
                f"student `y_pred` has {k_pred} (shape {p_shape})."
            )
        if num_classes is not None:
            for k, what, shape in (
                (k_true, "teacher `y_true`", t_shape),
                (k_pred, "student `y_pred`", p_shape),
            ):
                if k is not None and k != num_classes:
                    raise ValueError(
                        f"{self.name}: class-count mismatch: the coefficients "
                        f"have {num_classes} classes but the {what} has {k} "
                        f"(shape {shape})."
                    )
        if len(t_shape) != len(p_shape):
            raise ValueError(
                f"{self.name}: `y_true` and `y_pred` must have the same rank, "
                f"got shapes {t_shape} and {p_shape}."
            )

    def _check_values(self, y_true):
        if _is_concrete(y_true):
            t = np.asarray(y_true)
            validation.check_probabilities(
                t.reshape(-1, t.shape[-1]), name="y_true (teacher probabilities)"
            )

    def _prepare(self, y_true, y_pred, num_classes=None):
        """Returns `(p, log_q)`: tempered teacher probs and student log-probs."""
        self._check_shapes(y_true, y_pred, num_classes)
        self._check_values(y_true)
        dtype = self.compute_dtype_for_loss
        p = ops.stop_gradient(ops.cast(y_true, dtype))
        z = ops.cast(y_pred, dtype)
        if self.from_logits:
            log_q = ops.log_softmax(z / self.temperature, axis=-1)
        else:
            log_q = ops.log(ops.clip(z, PROBABILITY_EPSILON, 1.0))
            if self.temperature != 1.0:
                log_q = ops.log_softmax(log_q / self.temperature, axis=-1)
        if self.temperature != 1.0:
            # log(0) = -inf keeps zero-probability classes at exactly zero.
            p = ops.stop_gradient(
                ops.softmax(ops.log(p) / self.temperature, axis=-1)
            )
        return p, log_q

    @staticmethod
    def _p_log_p(p):
        """`p log p` elementwise with `0 log 0 = 0` (keras.ops has no xlogy)."""
        positive = p > 0
        return ops.where(positive, p * ops.log(ops.where(positive, p, 1.0)), 0.0)

    @classmethod
    def _kl(cls, p, log_q):
        """`KL(p || q)` per example."""
        return ops.sum(cls._p_log_p(p) - p * log_q, axis=-1)

    def _scale(self, per_example):
        if self.temperature != 1.0:
            per_example = per_example * (self.temperature**2)
        return per_example

    def get_config(self):
        config = super().get_config()
        config.update(
            {"from_logits": self.from_logits, "temperature": self.temperature}
        )
        return config
