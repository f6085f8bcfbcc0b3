"""`PTLoss(..., variable_coefficients=True)` and `set_coefficients`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import ptloss_tf
from tests.helpers import reference


def _data(rng, batch=16, num_classes=3):
    p = rng.dirichlet(np.full(num_classes, 0.8), size=batch).astype(np.float32)
    z = rng.normal(scale=3.0, size=(batch, num_classes)).astype(np.float32)
    return p, z


def test_variable_equals_constant_coefficients(rng):
    p, z = _data(rng)
    eta = rng.uniform(-1.0, 8.0, size=(5, 3))
    constant = ptloss_tf.PTLoss(eta, from_logits=True, reduction=None)
    variable = ptloss_tf.PTLoss(eta, from_logits=True, reduction=None,
                                variable_coefficients=True)
    np.testing.assert_allclose(variable(p, z).numpy(), reference.ptloss_numpy(p, z, eta),
                               rtol=2e-5)
    np.testing.assert_allclose(variable(p, z).numpy(), constant(p, z).numpy(), rtol=1e-6)


def test_set_coefficients_reaches_a_compiled_step_without_retracing(rng):
    p, z = _data(rng)
    loss = ptloss_tf.PTLoss(np.zeros((3, 3)), from_logits=True, reduction=None,
                            variable_coefficients=True)
    traces = []

    @tf.function(jit_compile=True)
    def value_and_grad(z):
        traces.append(1)
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = loss(p, z)
            total = tf.reduce_sum(value)
        return value, tape.gradient(total, z)

    for _ in range(3):
        eta = rng.uniform(-1.0, 8.0, size=(3, 3))
        loss.set_coefficients(eta)
        value, grad = value_and_grad(tf.constant(z))
        np.testing.assert_allclose(value.numpy(), reference.ptloss_numpy(p, z, eta),
                                   rtol=2e-5)
        # Central finite differences of the numpy reference on one logit.
        h = 1e-4
        zp, zm = z.astype(np.float64), z.astype(np.float64)
        zp[0, 1] += h
        zm[0, 1] -= h
        fd = (reference.ptloss_numpy(p, zp, eta).sum()
              - reference.ptloss_numpy(p, zm, eta).sum()) / (2 * h)
        assert grad.numpy()[0, 1] == pytest.approx(fd, rel=1e-3, abs=1e-4)
    assert len(traces) == 1


def test_set_coefficients_in_model_fit_changes_the_training_loss(rng):
    x = rng.normal(size=(32, 4)).astype(np.float32)
    p = rng.dirichlet(np.ones(2), size=32).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    loss = ptloss_tf.PTLoss(np.zeros((1, 2)), from_logits=True, variable_coefficients=True)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss, jit_compile=True)
    kl = model.evaluate(x, p, batch_size=32, verbose=0)
    eta = np.array([[2.0, -0.5]])
    loss.set_coefficients(eta)
    perturbed = model.evaluate(x, p, batch_size=32, verbose=0)
    logits = model.predict(x, verbose=0)
    assert kl == pytest.approx(np.mean(reference.ptloss_numpy(p, logits, np.zeros((1, 2)))),
                               rel=1e-4)
    assert perturbed == pytest.approx(np.mean(reference.ptloss_numpy(p, logits, eta)),
                                      rel=1e-4)
    assert abs(perturbed - kl) > 1e-2


def test_constant_coefficients_refuse_changes_after_tracing(rng):
    p, z = _data(rng)
    loss = ptloss_tf.PTLoss(np.ones((2, 3)), from_logits=True)
    loss.set_coefficients(np.full((2, 3), 2.0))  # eager use only so far: allowed
    assert float(loss(p, z)) == pytest.approx(
        np.mean(reference.ptloss_numpy(p, z, np.full((2, 3), 2.0))), rel=2e-5)
    tf.function(lambda z: loss(p, z))(tf.constant(z))
    with pytest.raises(RuntimeError, match="variable_coefficients=True"):
        loss.set_coefficients(np.zeros((2, 3)))
    assert loss.coefficients == ptloss_tf.Coefficients(np.full((2, 3), 2.0))


def test_variable_coefficients_bad_input(rng):
    loss = ptloss_tf.PTLoss(np.zeros((2, 3)), variable_coefficients=True)
    with pytest.raises(ValueError, match=r"shape \(3, 3\).*\(2, 3\)"):
        loss.set_coefficients(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN|finite"):
        loss.set_coefficients([[np.nan, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert loss.coefficients == ptloss_tf.Coefficients(np.zeros((2, 3)))


def test_variable_coefficients_config_round_trip(rng):
    loss = ptloss_tf.PTLoss(np.zeros((2, 2)), from_logits=True, variable_coefficients=True)
    eta = rng.uniform(-1, 3, size=(2, 2))
    loss.set_coefficients(eta)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.variable_coefficients
    assert restored.coefficients == ptloss_tf.Coefficients(eta)
    np.testing.assert_allclose(restored.coefficients_variable.numpy(), eta, rtol=1e-6)
