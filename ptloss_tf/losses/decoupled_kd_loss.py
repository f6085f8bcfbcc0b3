"""`DecoupledKDLoss`: Decoupled Knowledge Distillation (Zhao et al., CVPR 2022)."""

import warnings

import keras
import numpy as np
from keras import ops

from ptloss_tf.losses.base import DistillationLossBase
from ptloss_tf.losses.base import _is_concrete
from ptloss_tf.losses.base import check_weight

#: Stands in for `log 0` when the target class is masked out of a logsumexp
#: (a finite value keeps gradients finite; exp of it is 0 in float32).
_MASKED_LOG = -1e30


@keras.saving.register_keras_serializable(package="ptloss_tf")
class DecoupledKDLoss(DistillationLossBase):
    """`T^2 (alpha TCKD + beta NCKD)`, the DKD loss of Zhao et al. (CVPR 2022).

    With the tempered teacher `p = softmax(log p / T)` and student
    `q = softmax(z / T)` and the target class `t` of each row:

    * TCKD = `KL((p_t, 1 - p_t) || (q_t, 1 - q_t))`, the binary "target vs
      the rest" part;
    * NCKD = `KL(p_hat || q_hat)` over the non-target classes, `p_hat` and
      `q_hat` being `p` and `q` without class `t`, renormalised (0 when the
      teacher puts no mass there).

    This is `dkd_loss` of the authors' mdistiller code (the `T^2` factor on
    both terms, the batch mean under the default reduction). Their training
    also adds a cross-entropy with the labels (weight 1) and ramps the DKD
    term in over 20 warm-up epochs; here the first is the `Distiller`'s
    `student_loss_weight`, the second is left out.

    **Defaults** `alpha=1, beta=8, temperature=4`: mdistiller's `CFG.DKD`
    defaults (`mdistiller/engine/cfg.py`, the CIFAR-100 setting of the
    paper). Their ImageNet configs use `beta=0.5, T=1`; the paper ties a
    good `beta` to the teacher's confidence, so tune it for a new task.

    **Labels.** DKD needs each row's ground-truth class. `y_true` is the
    teacher probabilities and the one-hot labels side by side, `[B, 2K]` =
    `concat([teacher_probs, one_hot(labels)])`; `targets_with_labels` builds
    it (label `-1` gives a zero row). A row without a label (all zeros in
    the label half) takes the teacher's argmax as its target class, so
    unlabelled rows are distilled as DKD would on the teacher's own
    prediction. `ptloss_tf.Distiller` builds this `y_true` itself from its
    `"labels"` target (teacher argmax for every row where `"labels"` is
    absent): there the loss is compiled as `distillation_loss=` like any
    other. For `model.compile(loss=DecoupledKDLoss(from_logits=True))` pass
    `y = DecoupledKDLoss.targets_with_labels(teacher_probs, labels)`.

    **Two classes.** With `K = 2` the non-target part is a single class, so
    NCKD is 0 and DKD is `alpha T^2 KL(p_T || q_T)`, the temperature
    baseline; the loss warns once per loss object when called with two
    classes.

    Args:
        alpha: weight `>= 0` of TCKD, default 1.
        beta: weight `>= 0` of NCKD, default 8.
        temperature: `T > 0`, default 4 (both terms are multiplied by `T^2`).
        from_logits: whether `y_pred` are student logits.
        reduction, name, dtype: as for `keras.losses.Loss`.

    Example:
    >>> import numpy as np
    >>> loss = DecoupledKDLoss(alpha=1.0, beta=2.0, temperature=1.0, from_logits=True)
    >>> p = np.array([[0.7, 0.2, 0.1]])
    >>> y_true = DecoupledKDLoss.targets_with_labels(p, np.array([0]))
    >>> y_true.tolist()
    [[0.7, 0.2, 0.1, 1.0, 0.0, 0.0]]
    >>> # q = softmax(0, 0, 0): TCKD = KL((.7, .3) || (1/3, 2/3)) = 0.27980,
    >>> # NCKD = KL((2/3, 1/3) || (1/2, 1/2)) = 0.05663; TCKD + 2 * NCKD
    >>> round(float(loss(y_true, np.zeros((1, 3)))), 4)
    0.3931
    """

    #: `ptloss_tf.Distiller` passes the labels in `y_true` (`targets_with_labels`).
    takes_labels = True

    def __init__(
        self,
        alpha=1.0,
        beta=8.0,
        temperature=4.0,
        from_logits=False,
        reduction="sum_over_batch_size",
        name="decoupled_kd_loss",
        dtype=None,
    ):
        super().__init__(from_logits, temperature, reduction, name, dtype)
        self.alpha = check_weight(alpha, "alpha")
        self.beta = check_weight(beta, "beta")
        self._warned_two_classes = False

    @staticmethod
    def targets_with_labels(teacher_probs, labels=None):
        """`concat([teacher_probs, one_hot(labels)])`, the `[B, 2K]` `y_true`.

        Args:
            teacher_probs: `[B, K]` teacher probabilities.
            labels: `[B]` (or `[B, 1]`) integer class ids; `-1` marks a row
                without a label (its one-hot half is zero: the teacher's
                argmax is used). None: no row has a label.

        Numpy in, numpy out (float32 unless `teacher_probs` is float64);
        tensors in, tensors out (traceable, for compiled steps).
        """
        if isinstance(teacher_probs, np.ndarray) and (
            labels is None or isinstance(labels, (np.ndarray, list, tuple))
        ):
            p = teacher_probs if teacher_probs.dtype == np.float64 else (
                teacher_probs.astype(np.float32))
            if labels is None:
                return np.concatenate([p, np.zeros_like(p)], axis=-1)
            y = np.asarray(labels).reshape(-1)
            if y.shape[0] != p.shape[0] or not np.all(y == np.round(y)):
                raise ValueError(
                    f"`labels` must be {p.shape[0]} integer class ids (-1: no "
                    f"label), one per teacher row; got shape {np.shape(labels)}.")
            y = y.astype(np.int64)
            k = p.shape[-1]
            if y.size and (y.min() < -1 or y.max() >= k):
                raise ValueError(f"`labels` must lie in [-1, {k}), got "
                                 f"{y.min()}..{y.max()}.")
            one_hot = (y[:, None] == np.arange(k)[None, :]).astype(p.dtype)
            return np.concatenate([p, one_hot], axis=-1)
        p = ops.convert_to_tensor(teacher_probs)
        k = p.shape[-1]
        if labels is None:
            return ops.concatenate([p, ops.zeros_like(p)], axis=-1)
        y = ops.reshape(ops.cast(labels, "int32"), (-1,))
        one_hot = ops.one_hot(ops.maximum(y, 0), k, dtype=p.dtype)
        one_hot = one_hot * ops.cast(ops.expand_dims(y >= 0, -1), p.dtype)
        return ops.concatenate([p, one_hot], axis=-1)

    def call(self, y_true, y_pred):
        teacher, labels = self._split(y_true, y_pred)
        p, log_q = self._prepare(teacher, y_pred)
        target = self._target_mask(p, ops.cast(labels, p.dtype))
        return self._scale(self._decoupled(p, log_q, target))

    def _split(self, y_true, y_pred):
        t_shape, p_shape = tuple(y_true.shape), tuple(y_pred.shape)
        k = p_shape[-1] if p_shape else None
        if len(p_shape) < 2 or k is None or len(t_shape) != len(p_shape):
            raise ValueError(
                f"{self.name}: `y_pred` must be [batch, K] with a known K and "
                f"`y_true` of the same rank, got shapes {t_shape} and {p_shape}.")
        if t_shape[-1] != 2 * k:
            raise ValueError(
                f"{self.name}: `y_true` must be the teacher probabilities and the "
                f"one-hot labels side by side, [batch, 2K] = [batch, {2 * k}] for "
                f"the student's K = {k} classes (build it with "
                f"DecoupledKDLoss.targets_with_labels(teacher_probs, labels)), "
                f"got shape {t_shape}.")
        if k == 2:
            self._warn_two_classes()
        teacher, labels = y_true[..., :k], y_true[..., k:]
        if _is_concrete(labels):
            values = np.asarray(labels, np.float64)
            rows = values.reshape(-1, k)
            if not (np.isin(rows, (0.0, 1.0)).all() and (rows.sum(-1) <= 1).all()):
                raise ValueError(
                    f"{self.name}: the label half of `y_true` (columns {k}..{2 * k - 1}) "
                    "must be one-hot rows, or zero rows for rows without a label.")
        return teacher, labels

    def _warn_two_classes(self):
        if not self._warned_two_classes:
            self._warned_two_classes = True
            warnings.warn(
                f"{self.name}: DKD with 2 classes is degenerate: NCKD is 0 and the "
                "loss is alpha * T^2 * KL(p_T || q_T), the temperature baseline.",
                UserWarning, stacklevel=3)

    @staticmethod
    def _target_mask(p, labels):
        """The one-hot target class: the label, else the teacher's argmax."""
        has_label = ops.sum(labels, axis=-1, keepdims=True) > 0
        argmax = ops.one_hot(ops.argmax(p, axis=-1), p.shape[-1], dtype=p.dtype)
        return ops.where(has_label, labels, argmax)

    def _decoupled(self, p, log_q, target):
        other = 1.0 - target
        p_t = ops.sum(p * target, axis=-1)
        p_o = ops.sum(p * other, axis=-1)
        log_q_t = ops.sum(log_q * target, axis=-1)
        log_q_o = ops.logsumexp(ops.where(target > 0, _MASKED_LOG, log_q), axis=-1)
        tckd = (self._p_log_p(p_t) - p_t * log_q_t
                + self._p_log_p(p_o) - p_o * log_q_o)
        # Renormalised non-target teacher; all zero where the teacher has no
        # mass outside the target (NCKD is then 0).
        denominator = ops.where(p_o > 0, p_o, 1.0)
        p_hat = p * other / ops.expand_dims(denominator, -1)
        log_q_hat = log_q - ops.expand_dims(log_q_o, -1)
        nckd = ops.sum(self._p_log_p(p_hat) - p_hat * log_q_hat, axis=-1)
        return self.alpha * tckd + self.beta * nckd

    def get_config(self):
        config = super().get_config()
        config.update({"alpha": self.alpha, "beta": self.beta})
        return config

