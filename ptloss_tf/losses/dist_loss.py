"""`DISTLoss`: DIST, correlation-based distillation (Huang et al., NeurIPS 2022)."""

import warnings

import keras
from keras import ops

from ptloss_tf.losses.base import DistillationLossBase
from ptloss_tf.losses.base import check_weight

#: The authors' `eps` in the Pearson correlation's denominator.
_PEARSON_EPSILON = 1e-8
#: Added under the square roots so that their gradient stays finite where a
#: centred vector is zero (a uniform student); far below `_PEARSON_EPSILON`.
_NORM_FLOOR = 1e-30


def _pearson(a, b, axis, weights=None):
    """Pearson correlation of `a` and `b` along `axis`, as the authors'
    `pearson_correlation` (a cosine of the centred vectors, `eps` 1e-8).

    `weights` (broadcastable to `a`, along `axis`): the weighted correlation,
    means and sums over the weighted entries; entries of weight 0 (padding
    rows) drop out exactly, and weights of 1 give the unweighted value.
    """
    if weights is None:
        a = a - ops.mean(a, axis=axis, keepdims=True)
        b = b - ops.mean(b, axis=axis, keepdims=True)
        weights = 1.0
    else:
        total = ops.sum(weights, axis=axis, keepdims=True)
        a = a - ops.sum(weights * a, axis=axis, keepdims=True) / total
        b = b - ops.sum(weights * b, axis=axis, keepdims=True) / total
    norms = (ops.sqrt(ops.sum(weights * a * a, axis=axis) + _NORM_FLOOR)
             * ops.sqrt(ops.sum(weights * b * b, axis=axis) + _NORM_FLOOR))
    return ops.sum(weights * a * b, axis=axis) / (norms + _PEARSON_EPSILON)


@keras.saving.register_keras_serializable(package="ptloss_tf")
class DISTLoss(DistillationLossBase):
    """`T^2 (beta * inter + gamma * intra)`, DIST (Huang et al., NeurIPS 2022).

    With the tempered teacher `p = softmax(log p / T)` and student
    `q = softmax(z / T)`, both `[B, K]`:

    * inter-class relation: `1 - pearson(q_i, p_i)` over the K classes of
      each row `i` (the batch mean of it);
    * intra-class relation: `1 - mean_k pearson(q[:, k], p[:, k])`, each
      class' column correlated over the B rows of the batch.

    This is the authors' `DIST` module (`hunto/DIST_KD`; the same code in
    their image-classification repository), Pearson's `eps` 1e-8 included.
    The intra-class term is a property of the batch, like batch norm: the
    per-example value returned is row `i`'s inter-class term plus the
    batch's intra-class term, so the default `"sum_over_batch_size"`
    reduction gives exactly DIST's value. With `sample_weight`, the
    intra-class correlations weigh the rows by it: rows of weight 0 (the
    padding rows that make a batch divisible by the devices) take no part,
    so a padded batch gives the loss of its real rows. Under a `tf.distribute` strategy
    each replica correlates its own part of the batch, as in the authors'
    multi-GPU training. `y_true` is `[B, K]` (rank 2); labels play no part.

    **Defaults** `beta=1, gamma=1, temperature=1`: the defaults of the
    authors' `DIST(beta=1.0, gamma=1.0, tau=1.0)`, their ImageNet setting.
    (Some ports use `beta = gamma = 2, tau = 4` for CIFAR-100.)

    **Two classes.** With `K = 2` the inter-class correlation of two values
    is +1 or -1 (whether `p` and `q` pick the same class): a step with no
    gradient, so only `gamma * intra` (the batch correlation of the
    positive-class probabilities) trains; the loss warns once per loss
    object when called with two classes.

    Args:
        beta: weight `>= 0` of the inter-class term, default 1.
        gamma: weight `>= 0` of the intra-class term, default 1.
        temperature: `T > 0` (the authors' `tau`), default 1.
        from_logits: whether `y_pred` are student logits.
        reduction, name, dtype: as for `keras.losses.Loss`.

    Example:
    >>> import numpy as np
    >>> loss = DISTLoss(from_logits=True)
    >>> p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3]])
    >>> q = np.array([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    >>> # inter: 1 - pearson of each row pair = (0.0157, 1.9737, 0.0551);
    >>> # intra: 1 - pearson of each column pair = (1.0524, 0.1340, 1.5960)
    >>> round(float(loss(p, np.log(q))), 4)  # mean(inter) + mean(intra)
    1.609
    """

    def __init__(
        self,
        beta=1.0,
        gamma=1.0,
        temperature=1.0,
        from_logits=False,
        reduction="sum_over_batch_size",
        name="dist_loss",
        dtype=None,
    ):
        super().__init__(from_logits, temperature, reduction, name, dtype)
        self.beta = check_weight(beta, "beta")
        self.gamma = check_weight(gamma, "gamma")
        self._warned_two_classes = False
        self._row_weights = None

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras hands `call` no sample weights; the batch term needs them.
        self._row_weights = sample_weight
        try:
            return super().__call__(y_true, y_pred, sample_weight)
        finally:
            self._row_weights = None

    def call(self, y_true, y_pred):
        shape = tuple(y_pred.shape)
        if len(shape) != 2 or len(tuple(y_true.shape)) != 2:
            raise ValueError(
                f"{self.name}: DIST correlates over the batch and needs [batch, K] "
                f"inputs, got shapes {tuple(y_true.shape)} and {shape}.")
        if shape[-1] == 2 and not self._warned_two_classes:
            self._warned_two_classes = True
            warnings.warn(
                f"{self.name}: DIST with 2 classes is degenerate: the inter-class "
                "correlation of two values is +-1 (no gradient), so only the "
                "intra-class term trains.", UserWarning, stacklevel=2)
        return super().call(y_true, y_pred)

    def _per_example_loss(self, p, log_q):
        q = ops.exp(log_q)
        inter = 1.0 - _pearson(q, p, axis=-1)
        weights = self._row_weights
        if weights is not None:
            weights = ops.broadcast_to(ops.reshape(ops.cast(weights, q.dtype), (-1, 1)),
                                       (ops.shape(q)[0], 1))
        intra = 1.0 - ops.mean(_pearson(q, p, axis=0, weights=weights))
        return self.beta * inter + self.gamma * intra

    def get_config(self):
        config = super().get_config()
        config.update({"beta": self.beta, "gamma": self.gamma})
        return config
