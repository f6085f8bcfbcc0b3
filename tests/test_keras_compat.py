"""`ptloss_tf.keras_compat`: the private Keras API behind the `Distiller`.

Checked on Keras 3.12.0, 3.13.0, 3.14.0, 3.15.0 and 3.15.1 (and the 3.16.0
development branch): `keras.src.losses.loss.unscale_loss_for_distribution`,
`Trainer._aggregate_additional_loss` and
`TensorFlowTrainer._distribute_strategy` have the same code in all of them.
These tests run on the installed Keras; the first one fails, naming the
version, when that Keras no longer has one of the names (then the fallbacks
are in use and `keras_compat` needs a look).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import log_softmax
from scipy.special import xlogy

import ptloss_tf
from ptloss_tf import keras_compat


def _model(seed=0, regulariser=None):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, kernel_regularizer=regulariser),
    ])


def test_the_checked_versions_are_named():
    assert keras_compat.KERAS_VERSIONS_CHECKED == (
        "3.12.0", "3.13.0", "3.14.0", "3.15.0", "3.15.1",
    )
    for version in keras_compat.KERAS_VERSIONS_CHECKED:
        assert version in keras_compat.__doc__


def test_installed_keras_has_the_private_names():
    where = (
        f"Keras {keras.__version__} (keras_compat was checked on "
        f"{keras_compat.KERAS_VERSIONS_CHECKED})"
    )
    assert keras_compat._keras_unscale_loss_for_distribution is not None, where
    model = _model()
    model.compile(loss="mse")
    assert callable(getattr(model, "_aggregate_additional_loss", None)), where
    assert hasattr(model, "_distribute_strategy"), where


def _per_replica(strategy, fn):
    values = strategy.run(fn)
    return [float(v) for v in strategy.experimental_local_results(values)]


def test_unscale_loss_for_distribution(mirrored_strategy):
    value = tf.constant(1.5)
    assert float(keras_compat.unscale_loss_for_distribution(value)) == 1.5
    assert _per_replica(
        mirrored_strategy, lambda: keras_compat.unscale_loss_for_distribution(value)
    ) == [3.0, 3.0]
    # The fallback for a Keras without the function does the same.
    assert _per_replica(
        mirrored_strategy, lambda: keras_compat._unscale_fallback(value)
    ) == [3.0, 3.0]
    assert float(keras_compat._unscale_fallback(value)) == 1.5


def test_aggregate_additional_loss(mirrored_strategy):
    losses = tf.constant([0.5, 0.25])
    model = _model()
    no_method = object()  # takes the fallback path
    for target in (model, no_method):
        assert float(keras_compat.aggregate_additional_loss(target, losses)) == 0.75
        assert _per_replica(
            mirrored_strategy,
            lambda: keras_compat.aggregate_additional_loss(target, losses),
        ) == [0.375, 0.375]
    integers = tf.constant([1, 2])
    for target in (model, no_method):
        total = keras_compat.aggregate_additional_loss(target, integers)
        assert total.dtype == keras.backend.floatx() and float(total) == 3.0


def test_model_distribute_strategy(mirrored_strategy):
    assert keras_compat.model_distribute_strategy(_model()) is None
    with mirrored_strategy.scope():
        model = _model()
    assert keras_compat.model_distribute_strategy(model) is mirrored_strategy

    class PublicOnly:  # a Keras without the private attribute
        distribute_strategy = tf.distribute.get_strategy()

    # Then the public (never None) strategy: callers treat it as distributed.
    assert keras_compat.model_distribute_strategy(PublicOnly()) is PublicOnly.distribute_strategy
    assert PublicOnly.distribute_strategy is not None


@pytest.mark.parametrize("distributed", [False, True])
def test_distiller_reports_regularised_loss_of_the_global_batch(
    rng, mirrored_strategy, distributed
):
    """One step: loss = mean KL + L2 penalty, on one device and on 2 replicas."""
    x = rng.normal(size=(8, 4)).astype(np.float32)
    teacher = rng.dirichlet(np.ones(3), size=8).astype(np.float32)
    strategy = mirrored_strategy if distributed else tf.distribute.get_strategy()
    with strategy.scope():
        student = _model(regulariser=keras.regularizers.L2(0.1))
        distiller = ptloss_tf.Distiller(student)
        distiller.compile(optimizer=keras.optimizers.SGD(0.1),
                          distillation_loss=ptloss_tf.KLDivergence(from_logits=True))
    kernel, bias = [w.numpy().astype(np.float64) for w in student.weights]
    dataset = tf.data.Dataset.from_tensor_slices((x, {"teacher_probs": teacher})).batch(8)
    history = distiller.fit(dataset, epochs=1, verbose=0).history

    log_q = log_softmax(x.astype(np.float64) @ kernel + bias, axis=-1)
    p = teacher.astype(np.float64)
    kl = np.mean(np.sum(xlogy(p, p) - p * log_q, axis=-1))
    penalty = 0.1 * np.sum(kernel**2)
    assert history["distillation_loss"][0] == pytest.approx(kl, rel=1e-5)
    assert history["loss"][0] == pytest.approx(kl + penalty, rel=1e-5)
