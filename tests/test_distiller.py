import os

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import log_softmax
from scipy.special import softmax

import ptloss_tf
from tests.helpers import reference
from tests.helpers import vocabulary

NUM_CLASSES = 3
ETA = np.array([[1.5, -0.5, 0.5], [2.0, 0.3, -0.4]])


def _dense_student(seed=0, features=4):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(NUM_CLASSES, name="head")]
    )


def _batch(rng, batch=8, features=4):
    x = rng.normal(size=(batch, features)).astype(np.float32)
    teacher = rng.dirichlet(np.ones(NUM_CLASSES), size=batch).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=batch).astype(np.int32)
    return x, teacher, labels


def _hand_step(kernel, bias, x, teacher, labels, weight, lr):
    """One SGD step computed from the loss formula (float64, numpy + tape)."""
    z = tf.Variable(x.astype(np.float64) @ kernel + bias)
    with tf.GradientTape() as tape:
        log_q = tf.nn.log_softmax(z)
        q = tf.exp(log_q)
        p = tf.constant(teacher, tf.float64)
        pert = 0.0
        for m in range(1, ETA.shape[0] + 1):
            pert += tf.reduce_sum(p * ETA[m - 1] * (1 - q) ** m, -1)
        kl = tf.reduce_sum(tf.math.xlogy(p, p) - p * log_q, -1)
        ce = -tf.gather(log_q, labels, batch_dims=1)
        loss = (1 - weight) * tf.reduce_mean(kl + pert) + weight * tf.reduce_mean(ce)
    dz = tape.gradient(loss, z).numpy()
    # The same formula, via the independent numpy reference, for the value.
    expected_loss = (1 - weight) * np.mean(
        reference.ptloss_numpy(teacher, z.numpy(), ETA)
    ) + weight * np.mean(-log_softmax(z.numpy(), -1)[np.arange(len(labels)), labels])
    np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-10)
    return kernel - lr * x.T.astype(np.float64) @ dz, bias - lr * dz.sum(0), float(loss)


def _fit_one_step(x, teacher, labels, weight, lr, jit_compile, strategy=None):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        student = _dense_student()
        distiller = ptloss_tf.Distiller(student)
        distiller.compile(
            optimizer=keras.optimizers.SGD(lr),
            distillation_loss=ptloss_tf.PTLoss(ETA, from_logits=True),
            student_loss_weight=weight,
            jit_compile=jit_compile,
        )
    kernel0, bias0 = [w.numpy().astype(np.float64) for w in student.weights]
    dataset = tf.data.Dataset.from_tensor_slices(
        (x, {"teacher_probs": teacher, "labels": labels})
    ).batch(len(x))
    history = distiller.fit(dataset, epochs=1, verbose=0)
    return (kernel0, bias0), [w.numpy() for w in student.weights], history


@pytest.mark.parametrize(
    "mode", ["eager_graph", "jit", "mirrored_2_replicas"]
)
def test_one_step_equals_hand_computed_step(rng, mode, mirrored_strategy):
    x, teacher, labels = _batch(rng)
    weight, lr = 0.3, 0.5
    strategy = mirrored_strategy if mode == "mirrored_2_replicas" else None
    (kernel0, bias0), (kernel, bias), history = _fit_one_step(
        x, teacher, labels, weight, lr, jit_compile=(mode == "jit"),
        strategy=strategy,
    )
    expected_kernel, expected_bias, expected_loss = _hand_step(
        kernel0, bias0, x, teacher, labels, weight, lr
    )
    np.testing.assert_allclose(kernel, expected_kernel, atol=1e-5)
    np.testing.assert_allclose(bias, expected_bias, atol=1e-5)
    # The reported loss is the global-batch loss, not a per-replica share.
    assert history.history["loss"][0] == pytest.approx(expected_loss, rel=1e-5)


def test_metrics_and_loss_parts(rng):
    x, teacher, labels = _batch(rng, batch=32)
    student = _dense_student()
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.0),  # no update: metrics of the initial model
        distillation_loss=ptloss_tf.PTLoss(ETA, from_logits=True),
        student_loss_weight=0.25,
    )
    logs = distiller.evaluate(
        x, {"teacher_probs": teacher, "labels": labels}, batch_size=32,
        verbose=0, return_dict=True,
    )
    logits = x @ student.weights[0].numpy() + student.weights[1].numpy()
    probs = softmax(logits, -1)
    distill = np.mean(reference.ptloss_numpy(teacher, logits, ETA))
    ce = np.mean(-np.log(probs[np.arange(32), labels]))
    assert logs["distillation_loss"] == pytest.approx(distill, rel=1e-5)
    assert logs["student_loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["loss"] == pytest.approx(0.75 * distill + 0.25 * ce, rel=1e-5)
    assert logs["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))
    assert logs["teacher_agreement"] == pytest.approx(
        np.mean(probs.argmax(1) == teacher.argmax(1))
    )
    assert logs["nll"] == pytest.approx(ce, rel=1e-5)
    assert 0.0 <= logs["ece"] <= 1.0


def test_teacher_logits_and_live_teacher_give_the_same_step(rng):
    x, _, labels = _batch(rng, batch=16)
    keras.utils.set_random_seed(7)
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(NUM_CLASSES)])
    teacher_logits = teacher.predict(x, verbose=0)
    teacher_weights = [w.numpy().copy() for w in teacher.weights]
    results = []
    for targets, model in [
        ({"teacher_logits": teacher_logits, "labels": labels}, None),
        ({"teacher_probs": softmax(teacher_logits, -1).astype(np.float32)}, None),
        ({"labels": labels}, teacher),
    ]:
        student = _dense_student()
        distiller = ptloss_tf.Distiller(student, teacher=model)
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.5),
            distillation_loss=ptloss_tf.PTLoss(ETA, from_logits=True, temperature=2.0),
        )
        distiller.fit(x, targets, batch_size=16, epochs=1, verbose=0, shuffle=False)
        results.append([w.numpy() for w in student.weights])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, atol=1e-6)
    # The teacher is frozen and not part of the distiller's weights.
    for before, after in zip(teacher_weights, teacher.weights):
        np.testing.assert_array_equal(before, after.numpy())
    assert len(distiller.weights) == len(distiller.student.weights)


def test_zero_coefficients_train_like_keras_kl_divergence(rng):
    x = rng.normal(size=(64, 4)).astype(np.float32)
    teacher = rng.dirichlet(np.ones(NUM_CLASSES), size=64).astype(np.float32)
    student = _dense_student(seed=3)
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(
        optimizer=keras.optimizers.Adam(0.05),
        distillation_loss=ptloss_tf.PTLoss(np.zeros((3, NUM_CLASSES)), from_logits=True),
    )
    distiller.fit(x, {"teacher_probs": teacher}, batch_size=16, epochs=3,
                  verbose=0, shuffle=False)
    plain = _dense_student(seed=3)
    model = keras.Sequential([plain, keras.layers.Softmax()])
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.KLDivergence())
    model.fit(x, teacher, batch_size=16, epochs=3, verbose=0, shuffle=False)
    for a, b in zip(student.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def _tiny_bert(seed=0, vocabulary_size=60):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size, num_layers=1, num_heads=2,
        hidden_dim=16, intermediate_dim=32, max_sequence_length=16, dropout=0.0,
    )
    return keras_hub.models.BertTextClassifier(
        backbone, num_classes=2, preprocessor=None, dropout=0.0
    )


def _bert_dataset(rng, n=32, batch=8):
    vocab = vocabulary(f"w{i}" for i in range(55))
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=16
    )
    texts = [" ".join(f"w{j}" for j in rng.integers(0, 55, size=rng.integers(2, 12)))
             for _ in range(n)]
    teacher = rng.dirichlet([1, 1], size=n).astype(np.float32)
    labels = rng.integers(0, 2, size=n).astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices(
        (texts, {"teacher_probs": teacher, "labels": labels})
    ).batch(batch).map(lambda x, y: (preprocessor(x), y))
    return dataset


def test_keras_hub_bert_student_under_mirrored_strategy_matches_one_device(
    rng, mirrored_strategy
):
    dataset = _bert_dataset(rng)
    # keras-hub emits a bool padding_mask: the case that breaks plain Keras fit.
    assert dataset.element_spec[0]["padding_mask"].dtype == tf.bool
    final = []
    for strategy in (tf.distribute.get_strategy(), mirrored_strategy):
        with strategy.scope():
            student = _tiny_bert()
            distiller = ptloss_tf.Distiller(student)
            distiller.compile(
                optimizer=keras.optimizers.SGD(0.1),
                distillation_loss=ptloss_tf.PTLoss([[1.0, 2.0]], from_logits=True),
                student_loss_weight=0.5,
                jit_compile=False,
            )
        history = distiller.fit(dataset, epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        final.append([w.numpy() for w in student.weights])
    for a, b in zip(*final):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_losses(rng, policy):
    dataset = _bert_dataset(rng, n=16)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        student = _tiny_bert()
        distiller = ptloss_tf.Distiller(student)
        distiller.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            distillation_loss=ptloss_tf.PTLoss([[1.0, 2.0]], from_logits=True),
            jit_compile=False,  # XLA-compiling bf16 BERT on CPU costs ~30 s
        )
        history = distiller.fit(dataset, epochs=2, verbose=0)
        logits = distiller.predict(dataset.map(lambda x, y: x), verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert student.dtype_policy.name == policy
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(logits).all()
    if policy == "mixed_float16":
        assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    assert distiller.distillation_loss.dtype == "float32"


def test_save_writes_the_student_only(tmp_path, rng):
    x, teacher_probs, labels = _batch(rng)
    keras.utils.set_random_seed(1)
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(NUM_CLASSES)])
    student = _dense_student()
    distiller = ptloss_tf.Distiller(student, teacher=teacher)
    distiller.compile(optimizer="sgd", distillation_loss=ptloss_tf.KLDivergence(from_logits=True))
    distiller.fit(x, {"labels": labels}, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "student.keras")
    distiller.save(path)
    loaded = keras.saving.load_model(path)
    assert not isinstance(loaded, ptloss_tf.Distiller)
    assert len(loaded.weights) == len(student.weights)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0))
    weights_path = os.path.join(tmp_path, "distiller.weights.h5")
    distiller.save_weights(weights_path)
    assert os.path.getsize(weights_path) < 50_000
    assert {id(v) for v in distiller.weights} == {id(v) for v in student.weights}


@pytest.mark.parametrize(
    "targets, match",
    [
        ({"labels": np.zeros(8, np.int32)}, "no 'teacher_probs'"),
        ({"teacher_probs": np.full((8, 2), 0.5, np.float32)}, "class-count mismatch"),
        ({"teacher_probs": np.full((8, 3), np.nan, np.float32)}, "NaN"),
        ({"teacher_probs": np.full((8, 3), 0.5, np.float32)}, "sum to 1"),
        ({"teacher_logits": np.full((8, 3), np.inf, np.float32)}, "NaN or inf"),
        ({"teacher_probs": np.full((8, 3), 1 / 3, np.float32),
          "labels": np.full(8, 5)}, r"\[0, 3\)"),
        ({"teacher_probs": np.full((8, 3), 1 / 3, np.float32),
          "logits": np.zeros(8)}, "unknown"),
    ],
)
def test_bad_targets_fail_before_training(rng, targets, match):
    x, _, _ = _batch(rng)
    student = _dense_student()
    before = [w.numpy().copy() for w in student.weights]
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(optimizer="sgd",
                      distillation_loss=ptloss_tf.PTLoss(ETA, from_logits=True))
    with pytest.raises(ValueError, match=match):
        distiller.fit(x, targets, epochs=1, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, targets)).batch(4)
    with pytest.raises(ValueError, match=match):
        distiller.fit(dataset, epochs=1, verbose=0)
    for b, w in zip(before, student.weights):
        np.testing.assert_array_equal(b, w.numpy())


def test_bad_compile_arguments():
    distiller = ptloss_tf.Distiller(_dense_student())
    with pytest.raises(ValueError, match="student_loss_weight"):
        distiller.compile(student_loss_weight=1.5)
    with pytest.raises(ValueError, match="from_logits=True"):
        distiller.compile(distillation_loss=ptloss_tf.PTLoss(ETA))
    with pytest.raises(ValueError, match="distillation_loss"):
        distiller.compile(loss="mse")
    with pytest.raises(ValueError, match="keras.Model"):
        ptloss_tf.Distiller(student="bert")
    distiller.compile(optimizer="sgd", student_loss_weight=0.5)
    with pytest.raises(ValueError, match="needs 'labels'"):
        distiller.fit(np.zeros((4, 4), np.float32),
                      {"teacher_probs": np.full((4, 3), 1 / 3, np.float32)}, verbose=0)
