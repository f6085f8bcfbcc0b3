"""`TemperatureKLDivergence`: the temperature-scaling baseline."""

import keras

from ptloss_tf.losses.kl_divergence import KLDivergence


@keras.saving.register_keras_serializable(package="ptloss_tf")
class TemperatureKLDivergence(KLDivergence):
    """`T^2 * KL(softmax(t / T) || softmax(z / T))` (MATH.md Sec. 4).

    Takes teacher *probabilities* like every loss here: `softmax(log p / T)`
    equals `softmax(t / T)` for the teacher logits `t` behind `p`, so cached
    probabilities suffice. The paper's grid: `T in {0.1, 0.2, 0.5, 1, 2, 5, 10}`.

    Args:
        temperature: `T > 0` (required).
        from_logits: whether `y_pred` are student logits.
        reduction, name, dtype: as for `keras.losses.Loss`.

    Example:
    >>> import numpy as np
    >>> loss = TemperatureKLDivergence(temperature=2.0, from_logits=True)
    >>> # p_T = softmax(log p / 2) = (1/3, 2/3), q_T = softmax(0, 0.5):
    >>> # 2^2 * KL(p_T || q_T)
    >>> round(float(loss(np.array([[0.2, 0.8]]), np.array([[0.0, 1.0]]))), 4)
    0.0169
    """

    def __init__(
        self,
        temperature,
        from_logits=False,
        reduction="sum_over_batch_size",
        name="temperature_kl_divergence",
        dtype=None,
    ):
        super().__init__(from_logits, temperature, reduction, name, dtype)
