"""`PTLoss`: the perturbed distillation loss (paper Eq. 13, MATH.md Sec. 1)."""

import keras
import numpy as np
from keras import ops

from ptloss_tf.coefficients import Coefficients
from ptloss_tf.coefficients import as_coefficients
from ptloss_tf.losses.base import DistillationLossBase


def perturbation_polynomial(coefficients, one_minus_q):
    """`sum_m eta[m, k] * u_k^m` by Horner's rule, `u = 1 - q`.

    Args:
        coefficients: tensor `[M, K]`.
        one_minus_q: tensor `[..., K]`.
    """
    acc = ops.zeros_like(one_minus_q)
    for m in range(coefficients.shape[0] - 1, -1, -1):
        acc = (acc + coefficients[m]) * one_minus_q
    return acc


@keras.saving.register_keras_serializable(package="ptloss_tf")
class PTLoss(DistillationLossBase):
    """The order-M perturbed distillation loss PTLoss.

    `PT_M(p, q) = KL(p || q) + sum_k p_k sum_{m=1..M} eta[m, k] (1 - q_k)^m`

    The KL loss' Maclaurin expansion `-log q = sum_m (1 - q)^m / m` has its
    first `M` coefficients `1/m` shifted by `eta[m, k]` (paper Eq. 13). With
    `eta = 0` it is exactly the KL loss; with a one-hot teacher it is the
    PolyLoss of Leng et al. (2022). The reported value is KL-based (teacher
    entropy included), so `PT_M(p, p) = 0` when `eta = 0`; the entropy does
    not depend on the student and changes no gradient.

    Numerics: `1 - q` is computed as `-expm1(log q)` from the log-softmax, so
    logits of magnitude 1e4 and one-hot teachers give finite values and
    gradients. Everything is written with `keras.ops` and compiles under XLA
    (`jit_compile=True`); see `DistillationLossBase` for dtype handling.

    Args:
        coefficients: `[M, K]` array-like (row `m-1` = order `m`, column `k` =
            class `k`) or a `ptloss_tf.Coefficients`.
        from_logits: whether `y_pred` are student logits (recommended) or
            probabilities.
        temperature: softening temperature `T > 0` applied to teacher and
            student; the loss is multiplied by `T^2`. Defaults to 1 (the paper).
        reduction: Keras reduction, default `"sum_over_batch_size"`.
        name: loss name.
        dtype: loss dtype; computation is at least float32.

    Example:
    >>> import numpy as np, ptloss_tf
    >>> loss = ptloss_tf.PTLoss([[1.0, 1.0]], from_logits=True)
    >>> teacher = np.array([[0.1, 0.9]])
    >>> student_logits = np.array([[0.0, 2.0]])
    >>> float(loss(teacher, student_logits)) > 0
    True
    """

    def __init__(
        self,
        coefficients,
        from_logits=False,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="ptloss",
        dtype=None,
    ):
        super().__init__(
            from_logits=from_logits,
            temperature=temperature,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )
        self.coefficients = as_coefficients(coefficients)

    @classmethod
    def binary(cls, eps, gamma, **kwargs):
        """Binary PTLoss from the paper's `eps_m` (class 0) and `gamma_m` (class 1).

        Example:
        >>> PTLoss.binary(eps=[1.0], gamma=[1.0]).coefficients.values.tolist()
        [[1.0, 1.0]]
        """
        return cls(Coefficients.binary(eps, gamma), **kwargs)

    def call(self, y_true, y_pred):
        eta_np = self.coefficients.values
        p, log_q = self._prepare(y_true, y_pred, eta_np.shape[1])
        eta = ops.convert_to_tensor(
            eta_np.astype(np.dtype(self.compute_dtype_for_loss))
        )
        one_minus_q = -ops.expm1(log_q)
        # KL and perturbation share one reduction (fewer XLA fusions).
        per_class = self._p_log_p(p) + p * (
            perturbation_polynomial(eta, one_minus_q) - log_q
        )
        return self._scale(ops.sum(per_class, axis=-1))

    def get_config(self):
        config = super().get_config()
        config["coefficients"] = self.coefficients.values.tolist()
        return config
