"""`PTLoss`: the perturbed distillation loss (paper Eq. 13, MATH.md Sec. 1)."""

import keras
import numpy as np
from keras import ops

from ptloss_tf.coefficients import Coefficients
from ptloss_tf.coefficients import as_coefficients
from ptloss_tf.losses.base import DistillationLossBase
from ptloss_tf.losses.base import _is_concrete


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
        variable_coefficients: if False (default) the coefficients are
            compiled into the training step as constants. If True they live in
            a non-trainable `keras.Variable` of shape `[M, K]`, and
            `set_coefficients` changes them in an already compiled step, so a
            coefficient sweep traces the step once (create the loss under the
            distribution strategy's scope, as any variable).

    Changing coefficients: `set_coefficients(new)` takes the same forms as
    `coefficients`. With constant coefficients it is refused once the loss
    has been traced into a compiled function (that function would keep
    computing with the old values); build the loss with
    `variable_coefficients=True` to sweep coefficients without recompiling.

    Example:
    >>> import numpy as np, ptloss_tf
    >>> loss = ptloss_tf.PTLoss([[1.0, 1.0]], from_logits=True)
    >>> teacher = np.array([[0.1, 0.9]])
    >>> student_logits = np.array([[0.0, 2.0]])
    >>> # q = softmax(0, 2) = (0.1192, 0.8808): KL(p || q) = 0.0018 plus
    >>> # 0.1 * (1 - 0.1192) + 0.9 * (1 - 0.8808) = 0.1954
    >>> round(float(loss(teacher, student_logits)), 4)
    0.1972

    Coefficients held in a variable, changed without recompiling:
    >>> sweep = ptloss_tf.PTLoss(np.zeros((1, 2)), from_logits=True,
    ...                          variable_coefficients=True)
    >>> round(float(sweep(teacher, student_logits)), 4)  # eta = 0: the KL
    0.0018
    >>> sweep.set_coefficients([[1.0, 1.0]])
    >>> round(float(sweep(teacher, student_logits)), 4)  # as `loss` above
    0.1972
    """

    def __init__(
        self,
        coefficients,
        from_logits=False,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="ptloss",
        dtype=None,
        variable_coefficients=False,
    ):
        super().__init__(from_logits, temperature, reduction, name, dtype)
        self.coefficients = as_coefficients(coefficients)
        self.variable_coefficients = bool(variable_coefficients)
        self._traced = False
        self.coefficients_variable = None
        if self.variable_coefficients:
            self.coefficients_variable = keras.Variable(
                self._coefficients_array(self.coefficients),
                trainable=False,
                dtype=self.compute_dtype_for_loss,
                name=f"{name}_coefficients",
            )

    def _coefficients_array(self, coefficients):
        return coefficients.values.astype(np.dtype(self.compute_dtype_for_loss))

    def set_coefficients(self, coefficients):
        """Replaces the coefficients (same forms as the constructor's).

        Raises:
            ValueError: the new coefficients' shape differs from `[M, K]` of
                a loss built with `variable_coefficients=True`, or they fail
                the `Coefficients` checks (NaN, not 2-D).
            RuntimeError: the coefficients are constants and the loss was
                already traced into a compiled function.
        """
        new = as_coefficients(coefficients)
        if self.variable_coefficients:
            if new.values.shape != self.coefficients.values.shape:
                raise ValueError(
                    f"{self.name}: set_coefficients got shape {new.values.shape}, "
                    f"but the coefficient variable has shape "
                    f"{self.coefficients.values.shape} (order M, classes K); "
                    "build a new loss to change the order or class count."
                )
            self.coefficients_variable.assign(self._coefficients_array(new))
        elif self._traced:
            raise RuntimeError(
                f"{self.name}: its coefficients were compiled into a traced "
                "step as constants, which would keep using the old values; "
                "build the loss with `variable_coefficients=True` to change "
                "coefficients after compiling, or build a new loss."
            )
        self.coefficients = new

    @classmethod
    def binary(cls, eps, gamma, **kwargs):
        """Binary PTLoss from the paper's `eps_m` (class 0) and `gamma_m` (class 1).

        Example:
        >>> PTLoss.binary(eps=[1.0], gamma=[1.0]).coefficients.values.tolist()
        [[1.0, 1.0]]
        """
        return cls(Coefficients.binary(eps, gamma), **kwargs)

    @property
    def _expected_num_classes(self):
        return self.coefficients.values.shape[1]

    def _per_example_loss(self, p, log_q):
        if self.variable_coefficients:
            eta = ops.cast(self.coefficients_variable, self.compute_dtype_for_loss)
        else:
            if not _is_concrete(log_q):
                self._traced = True
            eta = ops.convert_to_tensor(self._coefficients_array(self.coefficients))
        one_minus_q = -ops.expm1(log_q)
        # KL and perturbation share one reduction (fewer XLA fusions).
        per_class = self._p_log_p(p) + p * (
            perturbation_polynomial(eta, one_minus_q) - log_q
        )
        return ops.sum(per_class, axis=-1)

    def get_config(self):
        config = super().get_config()
        config["coefficients"] = self.coefficients.values.tolist()
        config["variable_coefficients"] = self.variable_coefficients
        return config
