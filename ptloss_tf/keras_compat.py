"""The private Keras API the `Distiller` relies on, one small function each.

`keras.Model` offers no public hook for two things a custom `compute_loss`
must match in the built-in trainer, and one the `Distiller` reads:

* `unscale_loss_for_distribution`: the trainer reports the loss per global
  batch, so a replica's (pre-scaled) loss is multiplied back by the number of
  replicas before it enters a `Mean` tracker
  (`keras.src.losses.loss.unscale_loss_for_distribution`).
* `aggregate_additional_loss`: regularisation losses summed and scaled for
  the replicas the way the trainer does it (`Trainer._aggregate_additional_loss`).
* `model_distribute_strategy`: the `tf.distribute` strategy a model was
  created under, or None (`TensorFlowTrainer._distribute_strategy`; the public
  `Model.distribute_strategy` returns the default strategy instead of None).

Checked on Keras 3.12.0, 3.13.0, 3.14.0, 3.15.0, 3.15.1 (the version this
project installs) and the 3.16.0 development branch: in all of them these
three private names exist with the same code (`KERAS_VERSIONS_CHECKED`).
`setup.cfg` requires Keras >= 3.12 (the first with `keras.distillation`).
On a Keras where a name has moved, the first two functions fall back to a
copy of the checked behaviour and `model_distribute_strategy` to the public
`Model.distribute_strategy`. (The `Distiller` keeps its own `"loss"` tracker
instead of `Trainer._loss_tracker`, which weighs a batch by its rows, a
device mesh's padding rows of weight 0 included.)
"""

import keras
from keras import ops

try:
    from keras.src.losses.loss import (
        unscale_loss_for_distribution as _keras_unscale_loss_for_distribution,
    )
except ImportError:  # moved or removed in a Keras version not checked here
    _keras_unscale_loss_for_distribution = None

#: Keras versions whose sources were read for the private names used here.
KERAS_VERSIONS_CHECKED = ("3.12.0", "3.13.0", "3.14.0", "3.15.0", "3.15.1")


def _replicas_in_sync():
    """Replicas of the current `tf.distribute` strategy; 1 off TensorFlow."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def unscale_loss_for_distribution(value):
    """A replica's loss times the number of replicas in sync.

    Inside a replica of an `n`-replica strategy a `"sum_over_batch_size"`
    loss is divided by `n` (Keras scales it so the replicas' gradients sum to
    the global batch's); this undoes that for reporting. Unchanged with one
    replica and off the TensorFlow backend.

    Example:
    >>> float(unscale_loss_for_distribution(keras.ops.convert_to_tensor(1.5)))
    1.5
    """
    if _keras_unscale_loss_for_distribution is not None:
        return _keras_unscale_loss_for_distribution(value)
    return _unscale_fallback(value)


def _unscale_fallback(value):
    # Keras 3.12-3.16's `unscale_loss_for_distribution`.
    replicas = _replicas_in_sync()
    if replicas > 1:
        value = ops.multiply(value, ops.cast(replicas, value.dtype))
    return value


def aggregate_additional_loss(model, loss):
    """`loss` (e.g. the stacked regularisation losses) summed as `model.fit` does.

    Cast to `floatx` if not floating, summed, and divided by the number of
    replicas in sync on the TensorFlow backend (the same scaling as a
    `"sum_over_batch_size"` loss), by the model's own
    `_aggregate_additional_loss` where Keras has it.

    Example:
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> float(aggregate_additional_loss(model, keras.ops.convert_to_tensor([0.5, 0.25])))
    0.75
    """
    method = getattr(model, "_aggregate_additional_loss", None)
    if method is not None:
        return method(loss)
    # Keras 3.12-3.16's `Trainer` + `TensorFlowTrainer` version.
    if not keras.backend.is_float_dtype(loss.dtype):
        loss = ops.cast(loss, keras.backend.floatx())
    loss = ops.sum(loss)
    replicas = _replicas_in_sync()
    if replicas > 1:
        loss = ops.multiply(loss, ops.cast(1.0 / replicas, loss.dtype))
    return loss


def model_distribute_strategy(model):
    """The `tf.distribute` strategy `model` was created under, or None.

    None when the model was built outside any strategy scope, and always on
    the JAX and PyTorch backends. On a TensorFlow Keras without the private
    attribute the public `model.distribute_strategy` is returned: never None,
    so callers treat the model as distributed (the safe side).

    Example:
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> print(model_distribute_strategy(model))
    None
    """
    try:
        return model._distribute_strategy
    except AttributeError:
        if keras.backend.backend() != "tensorflow":
            return None
        return model.distribute_strategy
