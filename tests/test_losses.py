import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import log_softmax
from scipy.special import softmax
from scipy.special import xlogy

import ptloss_tf
from ptloss_tf import losses
from tests.helpers import reference


def _data(rng, batch=16, num_classes=3, scale=3.0):
    p = rng.dirichlet(np.full(num_classes, 0.8), size=batch)
    z = rng.normal(scale=scale, size=(batch, num_classes))
    return p, z


def _per_example(loss_class, *args, **kwargs):
    return loss_class(*args, reduction=None, **kwargs)


@pytest.mark.parametrize("num_classes, order", [(2, 1), (3, 5), (5, 3), (4, 10)])
def test_value_matches_numpy_formula(rng, num_classes, order):
    p, z = _data(rng, num_classes=num_classes)
    eta = rng.uniform(-1.0, 10.0, size=(order, num_classes))
    loss = _per_example(ptloss_tf.PTLoss, eta, from_logits=True, dtype="float64")
    np.testing.assert_allclose(
        loss(p, z).numpy(), reference.ptloss_numpy(p, z, eta), rtol=1e-10
    )
    # Probabilities as y_pred give the same value.
    loss_p = _per_example(ptloss_tf.PTLoss, eta, from_logits=False, dtype="float64")
    np.testing.assert_allclose(
        loss_p(p, softmax(z, axis=-1)).numpy(),
        reference.ptloss_numpy(p, z, eta),
        rtol=1e-6,
    )


def test_binary_form_of_equation_12(rng):
    # Class-1 term: p_1 * gamma_m * (1 - q_1)^m == (1 - p_0) * gamma_m * q_0^m.
    p0 = rng.uniform(size=8)
    p = np.stack([p0, 1 - p0], 1)
    z = rng.normal(size=(8, 2))
    q0 = softmax(z, axis=-1)[:, 0]
    eps, gamma = np.array([0.5, 2.0, -0.1]), np.array([1.5, -0.3, 4.0])
    expected = np.sum(xlogy(p, p) - p * log_softmax(z, axis=-1), axis=-1)
    for m in range(1, 4):
        expected += p0 * eps[m - 1] * (1 - q0) ** m
        expected += (1 - p0) * gamma[m - 1] * q0**m
    loss = ptloss_tf.PTLoss.binary(eps, gamma, from_logits=True, reduction=None, dtype="float64")
    np.testing.assert_allclose(loss(p, z).numpy(), expected, rtol=1e-10)


def test_zero_coefficients_equal_kl_in_value_and_gradient(rng):
    p, z = _data(rng, num_classes=4)
    pt = ptloss_tf.PTLoss(np.zeros((5, 4)), from_logits=True, dtype="float64")
    kl_value = np.mean(np.sum(xlogy(p, p) - p * log_softmax(z, axis=-1), -1))
    z_t = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(z_t)
        value = pt(p, z_t)
    grad = tape.gradient(value, z_t).numpy()
    np.testing.assert_allclose(float(value), kl_value, rtol=1e-12)
    # d KL / dz = (softmax(z) - p) / B for the batch mean.
    np.testing.assert_allclose(grad, (softmax(z, -1) - p) / len(p), atol=1e-12)
    kl = ptloss_tf.KLDivergence(from_logits=True, dtype="float64")
    np.testing.assert_allclose(float(kl(p, z)), kl_value, rtol=1e-12)


def test_kl_equals_keras_kl_divergence_on_probabilities(rng):
    p, z = _data(rng)
    q = softmax(z, axis=-1)
    ours = ptloss_tf.KLDivergence(from_logits=False)(p, q)
    theirs = keras.losses.KLDivergence()(p, q)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-4)


def test_polyloss_special_case_for_one_hot_teacher(rng):
    labels = rng.integers(0, 3, size=10)
    p = np.eye(3)[labels]
    z = rng.normal(scale=2.0, size=(10, 3))
    eta = rng.uniform(-0.5, 3.0, size=(4, 3))
    log_q = log_softmax(z, axis=-1)
    q_y = np.exp(log_q[np.arange(10), labels])
    expected = -log_q[np.arange(10), labels]
    for m in range(1, 5):
        expected += eta[m - 1, labels] * (1 - q_y) ** m
    loss = _per_example(ptloss_tf.PTLoss, eta, from_logits=True, dtype="float64")
    np.testing.assert_allclose(loss(p, z).numpy(), expected, rtol=1e-10)


def test_zero_probability_terms_contribute_nothing(rng):
    p = np.array([[0.0, 0.25, 0.75]])
    z = np.array([[50.0, 0.0, 1.0]])  # student is confident in a class p gives 0
    eta = np.array([[7.0, 1.0, -0.5]])
    value = _per_example(ptloss_tf.PTLoss, eta, from_logits=True, dtype="float64")(p, z)
    # Only classes 1, 2 enter; the large eta of class 0 does not.
    log_q = log_softmax(z, axis=-1)[0]
    q = np.exp(log_q)
    expected = sum(
        p[0, k] * (np.log(p[0, k]) - log_q[k]) + p[0, k] * eta[0, k] * (1 - q[k])
        for k in (1, 2)
    )
    np.testing.assert_allclose(value.numpy()[0], expected, rtol=1e-10)


def test_loss_of_teacher_against_itself_is_zero(rng):
    p = rng.dirichlet(np.ones(3), size=5)
    p[0] = [0.0, 0.0, 1.0]
    loss = ptloss_tf.PTLoss(np.zeros((2, 3)), from_logits=False, reduction=None)
    np.testing.assert_allclose(loss(p, p).numpy(), 0.0, atol=1e-6)
    with np.errstate(divide="ignore"):
        logits = np.log(p)
    logits[~np.isfinite(logits)] = -1e4
    loss_l = ptloss_tf.PTLoss(np.zeros((2, 3)), from_logits=True, reduction=None)
    np.testing.assert_allclose(loss_l(p, logits).numpy(), 0.0, atol=1e-6)


def test_gradient_matches_finite_differences(rng):
    p, z = _data(rng, batch=4, num_classes=3)
    eta = rng.uniform(-1.0, 5.0, size=(5, 3))
    z_t = tf.constant(z)
    loss = ptloss_tf.PTLoss(eta, from_logits=True, dtype="float64")
    with tf.GradientTape() as tape:
        tape.watch(z_t)
        value = loss(p, z_t)
    grad = tape.gradient(value, z_t).numpy()
    h = 1e-6
    numeric = np.zeros_like(z)
    for index in np.ndindex(*z.shape):
        plus, minus = z.copy(), z.copy()
        plus[index] += h
        minus[index] -= h
        numeric[index] = (
            np.mean(reference.ptloss_numpy(p, plus, eta))
            - np.mean(reference.ptloss_numpy(p, minus, eta))
        ) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_extreme_logits_and_one_hot_teacher_are_finite():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.3, 0.5]], np.float32)
    z = np.array(
        [[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], np.float32
    )
    eta = np.array([[5.0, -1.0, 2.0], [-0.5, 3.0, 1.0]])
    z_t = tf.constant(z)
    for cls, args in [
        (ptloss_tf.PTLoss, (eta,)),
        (ptloss_tf.KLDivergence, ()),
        (ptloss_tf.TemperatureKLDivergence, (2.0,)),
        (ptloss_tf.LabelSmoothingKLDivergence, (0.1,)),
        (ptloss_tf.FocalDistillationLoss, (0.5,)),
    ]:
        loss = cls(*args, from_logits=True, reduction=None)
        with tf.GradientTape() as tape:
            tape.watch(z_t)
            value = loss(p, z_t)
        grad = tape.gradient(value, z_t)
        assert np.all(np.isfinite(value.numpy())), cls
        assert np.all(np.isfinite(grad.numpy())), cls
    # Row 0 predicts its one-hot class perfectly: KL = 0 and no perturbation.
    value = ptloss_tf.PTLoss(eta, from_logits=True, reduction=None)(p, z)
    assert value.numpy()[0] == pytest.approx(0.0, abs=1e-6)
    # Row 1: log q_1 = -2e4, so the loss is ~2e4 plus eta[:, 1] * 1^m.
    assert value.numpy()[1] == pytest.approx(2e4 + (-1.0 + 3.0), rel=1e-5)


def test_xla_compiled_equals_eager(rng):
    p, z = _data(rng, batch=32, num_classes=3)
    p, z = p.astype(np.float32), z.astype(np.float32)
    loss = ptloss_tf.PTLoss(rng.uniform(-1, 5, size=(5, 3)), from_logits=True)

    @tf.function(jit_compile=True)
    def value_and_grad(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = loss(p, z)
        return value, tape.gradient(value, z)

    eager_z = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(eager_z)
        eager_value = loss(p, eager_z)
    eager_grad = tape.gradient(eager_value, eager_z)
    value, grad = value_and_grad(tf.constant(z))
    np.testing.assert_allclose(value.numpy(), eager_value.numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), eager_grad.numpy(), atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_computes_in_float32(rng, policy):
    p, z = _data(rng, batch=8, num_classes=3)
    eta = rng.uniform(0, 3, size=(3, 3))
    low = "bfloat16" if policy == "mixed_bfloat16" else "float16"
    z_low = tf.cast(tf.constant(z), low)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        loss = ptloss_tf.PTLoss(eta, from_logits=True, reduction=None)
        value = loss(tf.cast(p, low), z_low)
    finally:
        keras.config.set_dtype_policy(previous)
    assert value.dtype == tf.float32
    # Golden: the same low-precision inputs, evaluated in float64 by numpy.
    expected = reference.ptloss_numpy(
        tf.cast(tf.cast(p, low), tf.float64).numpy(),
        tf.cast(z_low, tf.float64).numpy(),
        eta,
    )
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_temperature_baseline_matches_numpy(rng):
    teacher_logits = rng.normal(scale=3, size=(10, 3))
    z = rng.normal(scale=3, size=(10, 3))
    p = softmax(teacher_logits, axis=-1)
    for temperature in (0.1, 0.5, 2.0, 10.0):
        pt = softmax(teacher_logits / temperature, axis=-1)
        expected = temperature**2 * np.sum(
            xlogy(pt, pt) - pt * log_softmax(z / temperature, axis=-1), -1
        )
        loss = _per_example(
            ptloss_tf.TemperatureKLDivergence, temperature, from_logits=True,
            dtype="float64",
        )
        np.testing.assert_allclose(loss(p, z).numpy(), expected, rtol=1e-8)


def test_label_smoothing_baseline_matches_numpy_and_keras(rng):
    p, z = _data(rng, batch=10, num_classes=4)
    delta = 0.15
    smoothed = (1 - delta) * p + delta / 4
    log_q = log_softmax(z, axis=-1)
    expected = np.sum(xlogy(smoothed, smoothed) - smoothed * log_q, -1)
    loss = _per_example(
        ptloss_tf.LabelSmoothingKLDivergence, delta, from_logits=True,
        dtype="float64",
    )
    np.testing.assert_allclose(loss(p, z).numpy(), expected, rtol=1e-10)
    # Keras' label-smoothed cross-entropy differs by the smoothed entropy only.
    keras_ce = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=delta, reduction=None
    )(p, z).numpy()
    np.testing.assert_allclose(
        keras_ce - np.sum(-xlogy(smoothed, smoothed), -1), expected, rtol=1e-5
    )


def test_focal_baseline_matches_numpy_and_keras(rng):
    p, z = _data(rng, batch=10, num_classes=3, scale=1.5)
    log_q = log_softmax(z, axis=-1)
    for tau in (0.1, 1.0, 5.0):
        expected = -np.sum(p * (1 - np.exp(log_q)) ** tau * log_q, -1)
        ours = _per_example(
            ptloss_tf.FocalDistillationLoss, tau, from_logits=True, dtype="float64"
        )(p, z).numpy()
        np.testing.assert_allclose(ours, expected, rtol=1e-10)
        theirs = keras.losses.CategoricalFocalCrossentropy(
            alpha=1.0, gamma=tau, from_logits=True, reduction=None
        )(p, z).numpy()
        np.testing.assert_allclose(theirs, expected, rtol=1e-4)


def test_label_smoothing_is_ptloss_with_example_dependent_coefficients(rng):
    # Paper Sec. 4.2: eta[m, k] = (delta / (K p_k) - delta) / m for all m.
    # Truncating at a high order M reproduces label smoothing up to a
    # student-independent constant.
    num_classes, delta, order = 3, 0.1, 400
    p = rng.dirichlet(np.full(num_classes, 2.0), size=4)
    z = rng.normal(scale=0.5, size=(4, num_classes))
    orders = np.arange(1, order + 1)[:, None]
    smoothing = LS = ptloss_tf.LabelSmoothingKLDivergence(
        delta, from_logits=True, reduction=None, dtype="float64"
    )
    del LS
    smoothed = (1 - delta) * p + delta / num_classes
    constant = np.sum(xlogy(p, p) - xlogy(smoothed, smoothed), -1)
    for n in range(len(p)):
        eta = (delta / (num_classes * p[n]) - delta)[None, :] / orders
        pt = ptloss_tf.PTLoss(eta, from_logits=True, reduction=None, dtype="float64")
        value = pt(p[n : n + 1], z[n : n + 1]).numpy()[0]
        expected = smoothing(p[n : n + 1], z[n : n + 1]).numpy()[0] + constant[n]
        assert value == pytest.approx(expected, abs=1e-6)


def test_minimiser_over_free_logits_is_the_proxy_teacher(rng):
    p = rng.dirichlet(np.ones(3), size=6)
    eta = np.array([[2.0, 0.5, 1.0], [1.0, -0.4, 3.0], [0.0, 2.0, 0.5]])
    loss = ptloss_tf.PTLoss(eta, from_logits=True, dtype="float64", reduction="sum")
    z = tf.Variable(np.log(p))
    optimizer = keras.optimizers.Adam(learning_rate=0.05)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = loss(p, z)
        optimizer.apply_gradients([(tape.gradient(value, z), z)])

    for _ in range(3000):
        step()
    learned = softmax(z.numpy(), axis=-1)
    expected = ptloss_tf.proxy_teacher(p, eta).numpy()
    np.testing.assert_allclose(learned, expected, atol=1e-4)
    assert np.abs(expected - p).max() > 0.05  # the proxy really moved


def test_serialisation_round_trip(tmp_path, rng):
    eta = rng.uniform(-1, 3, size=(3, 2))
    for loss in [
        ptloss_tf.PTLoss(eta, from_logits=True, temperature=2.0, name="pt"),
        ptloss_tf.KLDivergence(from_logits=True),
        ptloss_tf.TemperatureKLDivergence(5.0, from_logits=True),
        ptloss_tf.LabelSmoothingKLDivergence(0.05),
        ptloss_tf.FocalDistillationLoss(2.0, from_logits=True),
    ]:
        config = loss.get_config()
        clone = type(loss).from_config(config)
        assert clone.get_config() == config
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(loss)
        )
        assert type(restored) is type(loss)
        assert restored.get_config() == config
    p = rng.dirichlet(np.ones(2), size=5).astype(np.float32)
    z = rng.normal(size=(5, 2)).astype(np.float32)
    pt = ptloss_tf.PTLoss(eta, from_logits=True, temperature=2.0)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(pt)
    )
    assert restored.coefficients == pt.coefficients
    assert float(restored(p, z)) == pytest.approx(float(pt(p, z)))


def test_model_compile_fit_and_keras_file_round_trip(tmp_path, rng):
    x = rng.normal(size=(64, 4)).astype(np.float32)
    p = softmax(x[:, :3] * 2, axis=-1).astype(np.float32)
    eta = [[1.0, 0.5, 2.0]]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=ptloss_tf.PTLoss(eta, from_logits=True),
        jit_compile=True,
    )
    history = model.fit(x, p, epochs=15, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    expected = np.mean(reference.ptloss_numpy(p, model.predict(x, verbose=0), eta))
    assert model.evaluate(x, p, verbose=0, batch_size=64) == pytest.approx(
        expected, rel=1e-4
    )
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, ptloss_tf.PTLoss)
    assert loaded.loss.coefficients == ptloss_tf.Coefficients(eta)


def test_keras_distillation_adapter(rng):
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    eta = np.array([[1.0, 2.0, 0.5]])
    adapter = ptloss_tf.PTLossDistillation(eta, temperature=2.0)
    t = rng.normal(size=(6, 3)).astype(np.float32)
    s = rng.normal(size=(6, 3)).astype(np.float32)
    expected = np.mean(
        reference.ptloss_numpy(softmax(t, -1), s, eta, temperature=2.0)
    )
    assert float(adapter.compute_loss(t, s)) == pytest.approx(expected, rel=1e-5)
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student, distillation_losses=adapter,
        student_loss_weight=0.0,
    )
    distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=32)
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    restored = ptloss_tf.PTLossDistillation.from_config(adapter.get_config())
    assert restored.coefficients == adapter.coefficients
    with pytest.raises(ValueError, match="class-count mismatch"):
        adapter.validate_outputs(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize(
    "teacher, match",
    [
        ([[0.5, np.nan, 0.5]], "NaN"),
        ([[-0.2, 0.6, 0.6]], "negative"),
        ([[0.2, 0.2, 0.2]], "sum to 1"),
    ],
)
def test_bad_teacher_values_raise_when_called_eagerly(teacher, match):
    loss = ptloss_tf.PTLoss(np.ones((1, 3)), from_logits=True)
    with pytest.raises(ValueError, match=match):
        loss(np.array(teacher), np.zeros((1, 3)))


def test_bad_shapes_and_arguments():
    loss = ptloss_tf.PTLoss(np.ones((2, 3)), from_logits=True)
    with pytest.raises(ValueError, match="class-count mismatch"):
        loss(np.full((2, 4), 0.25), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="class-count mismatch"):
        loss(np.full((2, 3), 1 / 3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="order 0"):
        ptloss_tf.PTLoss(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="shape"):
        ptloss_tf.PTLoss([1.0, 2.0])
    for bad in (0.0, -1.0, float("nan"), "warm"):
        with pytest.raises(ValueError, match="temperature"):
            ptloss_tf.PTLoss(np.ones((1, 2)), temperature=bad)
    with pytest.raises(ValueError, match="smoothing"):
        ptloss_tf.LabelSmoothingKLDivergence(1.5)
    with pytest.raises(ValueError, match="focusing"):
        ptloss_tf.FocalDistillationLoss(-1.0)
