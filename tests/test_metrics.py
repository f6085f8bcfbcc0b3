"""Tests of `ptloss_tf.metrics` against independent numpy/scipy references."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from scipy import special

from ptloss_tf.metrics import (
    ExpectedCalibrationError,
    NegativeLogLikelihood,
    TotalVariationDistance,
)

# ---------------------------------------------------------------------------
# Independent numpy references.
# ---------------------------------------------------------------------------


def np_softmax(z):
    z = np.asarray(z, np.float64)
    return np.exp(z - special.logsumexp(z, axis=-1, keepdims=True))


def np_ece(labels, probs, num_bins, weights=None):
    """Straightforward loop over bins (Guo et al. 2017)."""
    probs = np.asarray(probs, np.float32)
    labels = np.asarray(labels).reshape(-1)
    n = len(labels)
    weights = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    conf = probs.max(axis=-1)
    pred = probs.argmax(axis=-1)
    # Same float32 bin assignment as the metric (conf is float32 there too).
    bins = np.floor(conf * np.float32(num_bins)).astype(np.int64)
    bins = np.clip(bins, 0, num_bins - 1)
    total = weights.sum()
    ece = 0.0
    for b in range(num_bins):
        in_bin = bins == b
        n_b = weights[in_bin].sum()
        if n_b == 0:
            continue
        acc_b = (weights[in_bin] * (pred[in_bin] == labels[in_bin])).sum() / n_b
        conf_b = (weights[in_bin] * conf[in_bin].astype(np.float64)).sum() / n_b
        ece += n_b / total * abs(acc_b - conf_b)
    return ece


def np_tvd(target, probs, weights=None):
    target = np.asarray(target, np.float64)
    probs = np.asarray(probs, np.float64)
    per_example = 0.5 * np.abs(probs - target).sum(axis=-1)
    return np.average(per_example, weights=weights)


def np_nll(labels, log_probs, weights=None):
    labels = np.asarray(labels).reshape(-1)
    per_example = -np.asarray(log_probs, np.float64)[np.arange(len(labels)), labels]
    return np.average(per_example, weights=weights)


def random_problem(seed, n=257, k=5, scale=2.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * scale
    probs = np_softmax(logits).astype(np.float32)
    labels = rng.integers(0, k, size=n)
    weights = rng.uniform(0.0, 2.0, size=n).astype(np.float32)
    return rng, logits.astype(np.float32), probs, labels, weights


def value(metric):
    return float(keras.ops.convert_to_numpy(metric.result()))


# ---------------------------------------------------------------------------
# ExpectedCalibrationError
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_bins", [1, 3, 10, 15, 40])
def test_ece_matches_numpy(num_bins):
    _, _, probs, labels, weights = random_problem(num_bins)
    m = ExpectedCalibrationError(num_bins=num_bins)
    m.update_state(labels, probs)
    expected = np_ece(labels, probs, num_bins)
    assert expected > 0.01  # non-trivial case
    np.testing.assert_allclose(value(m), expected, rtol=1e-5, atol=1e-6)

    mw = ExpectedCalibrationError(num_bins=num_bins)
    mw.update_state(labels, probs, sample_weight=weights)
    expected_w = np_ece(labels, probs, num_bins, weights)
    np.testing.assert_allclose(value(mw), expected_w, rtol=1e-5, atol=1e-6)
    assert abs(expected_w - expected) > 1e-4  # the weights actually matter


def test_ece_single_bin_is_abs_accuracy_minus_mean_confidence():
    _, _, probs, labels, _ = random_problem(7)
    m = ExpectedCalibrationError(num_bins=1)
    m.update_state(labels, probs)
    accuracy = np.mean(probs.argmax(-1) == labels)
    np.testing.assert_allclose(
        value(m), abs(accuracy - probs.max(-1).mean()), rtol=1e-5
    )


def test_ece_hand_computed():
    m = ExpectedCalibrationError(num_bins=10)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.35, 0.65]])
    m.update_state([0, 1, 1, 1], probs)
    # bins 9, 8, 6, 6: (|1-.9| + |1-.8| + |(0 + 1) - (.6 + .65)|) / 4
    np.testing.assert_allclose(value(m), (0.1 + 0.2 + 0.25) / 4, rtol=1e-5)


def test_ece_accumulates_across_batches_and_resets():
    _, _, probs, labels, weights = random_problem(1, n=300)
    one = ExpectedCalibrationError(num_bins=12)
    one.update_state(labels, probs, sample_weight=weights)

    many = ExpectedCalibrationError(num_bins=12)
    for lo, hi in [(0, 7), (7, 100), (100, 101), (101, 300)]:
        many.update_state(
            labels[lo:hi], probs[lo:hi], sample_weight=weights[lo:hi]
        )
    np.testing.assert_allclose(value(many), value(one), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        value(many), np_ece(labels, probs, 12, weights), rtol=1e-5
    )
    for v_many, v_one in zip(many.variables, one.variables):
        np.testing.assert_allclose(
            v_many.numpy(),
            v_one.numpy(),
            rtol=1e-5,
            atol=1e-5,
        )

    many.reset_state()
    assert value(many) == 0.0
    for v in many.variables:
        assert not np.any(v.numpy())
    many.update_state(labels[:50], probs[:50])
    np.testing.assert_allclose(
        value(many), np_ece(labels[:50], probs[:50], 12), rtol=1e-5
    )


def test_ece_from_logits():
    _, logits, probs, labels, weights = random_problem(3)
    m = ExpectedCalibrationError(num_bins=15, from_logits=True)
    m.update_state(labels, logits, sample_weight=weights)
    np.testing.assert_allclose(
        value(m), np_ece(labels, np_softmax(logits), 15, weights), rtol=1e-5
    )


def test_ece_label_formats_agree():
    _, _, probs, labels, _ = random_problem(4, k=4)
    results = []
    for y_true in (
        labels,
        labels.reshape(-1, 1),
        labels.astype(np.float32),
        np.eye(4, dtype=np.float32)[labels],
    ):
        m = ExpectedCalibrationError(num_bins=8)
        m.update_state(y_true, probs)
        results.append(value(m))
    np.testing.assert_allclose(results, np_ece(labels, probs, 8), rtol=1e-5)


def test_ece_scalar_and_column_sample_weight():
    _, _, probs, labels, weights = random_problem(5)
    m = ExpectedCalibrationError(num_bins=10)
    m.update_state(labels, probs, sample_weight=weights.reshape(-1, 1))
    np.testing.assert_allclose(
        value(m), np_ece(labels, probs, 10, weights), rtol=1e-5
    )
    m2 = ExpectedCalibrationError(num_bins=10)
    m2.update_state(labels, probs, sample_weight=3.0)
    np.testing.assert_allclose(value(m2), np_ece(labels, probs, 10), rtol=1e-5)


def test_ece_perfectly_calibrated_is_near_zero():
    rng = np.random.default_rng(0)
    n, k = 200_000, 3
    conf = rng.uniform(1.0 / k + 0.01, 1.0, size=n)
    other = (1.0 - conf) / (k - 1)
    probs = np.stack([conf, other, other], axis=-1).astype(np.float32)
    # Top class 0 is right with probability exactly `conf`.
    correct = rng.uniform(size=n) < conf
    labels = np.where(correct, 0, rng.integers(1, k, size=n))
    m = ExpectedCalibrationError(num_bins=15)
    m.update_state(labels, probs)
    assert value(m) < 0.01

    # The same predictions made over-confident are clearly miscalibrated.
    labels_bad = np.where(rng.uniform(size=n) < conf - 0.2, 0, 1)
    m.reset_state()
    m.update_state(labels_bad, probs)
    np.testing.assert_allclose(value(m), 0.2, atol=0.02)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_ece_low_precision_inputs_computed_in_float32(dtype):
    _, logits, _, labels, _ = random_problem(6)
    low = keras.ops.cast(logits, dtype)
    low_as_f32 = keras.ops.convert_to_numpy(keras.ops.cast(low, "float32"))
    m = ExpectedCalibrationError(num_bins=10, from_logits=True)
    m.update_state(labels, low)
    assert keras.ops.convert_to_numpy(m.result()).dtype == np.float32
    for v in m.variables:
        assert v.dtype == "float32"
    np.testing.assert_allclose(
        value(m), np_ece(labels, np_softmax(low_as_f32), 10), rtol=1e-5
    )


@pytest.mark.parametrize("bad", [0, -3, 1.5, 10.0, "10", None, True])
def test_ece_bad_num_bins_raises(bad):
    with pytest.raises(ValueError, match="num_bins"):
        ExpectedCalibrationError(num_bins=bad)


def test_ece_accepts_numpy_integer_num_bins():
    m = ExpectedCalibrationError(num_bins=np.int64(7))
    assert m.num_bins == 7 and isinstance(m.num_bins, int)
    assert m.get_config()["num_bins"] == 7


# ---------------------------------------------------------------------------
# TotalVariationDistance
# ---------------------------------------------------------------------------


def test_tvd_with_labels_matches_numpy():
    _, logits, probs, labels, weights = random_problem(10)
    one_hot = np.eye(probs.shape[-1])[labels]
    for y_true in (labels, labels.reshape(-1, 1)):
        m = TotalVariationDistance()
        m.update_state(y_true, probs)
        np.testing.assert_allclose(value(m), np_tvd(one_hot, probs), rtol=1e-5)
    # For normalised predictions and one-hot targets TVD = 1 - q_y.
    np.testing.assert_allclose(
        np_tvd(one_hot, probs),
        np.mean(1.0 - probs[np.arange(len(labels)), labels]),
        rtol=1e-5,
    )
    mw = TotalVariationDistance(from_logits=True)
    mw.update_state(labels, logits, sample_weight=weights)
    np.testing.assert_allclose(
        value(mw), np_tvd(one_hot, np_softmax(logits), weights), rtol=1e-5
    )


def test_tvd_with_distribution_matches_numpy():
    rng, _, probs, _, weights = random_problem(11)
    teacher = np_softmax(rng.normal(size=probs.shape)).astype(np.float32)
    m = TotalVariationDistance()
    m.update_state(teacher, probs)
    np.testing.assert_allclose(value(m), np_tvd(teacher, probs), rtol=1e-5)
    m.reset_state()
    assert value(m) == 0.0
    m.update_state(teacher[:100], probs[:100], sample_weight=weights[:100])
    m.update_state(teacher[100:], probs[100:], sample_weight=weights[100:])
    np.testing.assert_allclose(
        value(m), np_tvd(teacher, probs, weights), rtol=1e-5
    )
    # Identical distributions are at distance 0, disjoint ones at 1.
    m.reset_state()
    m.update_state(teacher, teacher)
    assert value(m) < 1e-6
    m.reset_state()
    m.update_state(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    np.testing.assert_allclose(value(m), 1.0)


def test_tvd_low_precision_inputs():
    _, _, probs, labels, _ = random_problem(12)
    low = keras.ops.cast(probs, "bfloat16")
    low_as_f32 = keras.ops.convert_to_numpy(keras.ops.cast(low, "float32"))
    m = TotalVariationDistance()
    m.update_state(labels, low)
    assert keras.ops.convert_to_numpy(m.result()).dtype == np.float32
    np.testing.assert_allclose(
        value(m), np_tvd(np.eye(5)[labels], low_as_f32), rtol=1e-5
    )


# ---------------------------------------------------------------------------
# NegativeLogLikelihood
# ---------------------------------------------------------------------------


def test_nll_matches_scipy():
    _, logits, probs, labels, weights = random_problem(20)
    m = NegativeLogLikelihood()
    m.update_state(labels, probs)
    np.testing.assert_allclose(
        value(m), np_nll(labels, np.log(probs.astype(np.float64))), rtol=1e-5
    )
    ml = NegativeLogLikelihood(from_logits=True)
    ml.update_state(labels[:100], logits[:100], sample_weight=weights[:100])
    ml.update_state(
        labels[100:].reshape(-1, 1), logits[100:], sample_weight=weights[100:]
    )
    np.testing.assert_allclose(
        value(ml),
        np_nll(labels, special.log_softmax(logits.astype(np.float64), -1), weights),
        rtol=1e-5,
    )


def test_nll_extreme_logits_are_finite_and_exact():
    logits = np.array(
        [[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, 0.0]],
        dtype=np.float32,
    )
    labels = np.array([0, 1, 0, 2])
    m = NegativeLogLikelihood(from_logits=True)
    m.update_state(labels, logits)
    result = value(m)
    assert np.isfinite(result)
    expected = np_nll(labels, special.log_softmax(logits.astype(np.float64), -1))
    # = (0 + 2e4 + (2e4 + log 2) + log 3) / 4
    np.testing.assert_allclose(result, expected, rtol=1e-6)

    # The same through bfloat16 logits (as a mixed-precision student emits;
    # bfloat16 rounds 1e4 to 9984, so the reference uses the rounded logits).
    low = keras.ops.cast(logits, "bfloat16")
    low_as_f64 = keras.ops.convert_to_numpy(keras.ops.cast(low, "float32"))
    mb = NegativeLogLikelihood(from_logits=True)
    mb.update_state(labels, low)
    assert np.isfinite(value(mb))
    np.testing.assert_allclose(
        value(mb),
        np_nll(labels, special.log_softmax(low_as_f64.astype(np.float64), -1)),
        rtol=1e-6,
    )


def test_nll_probabilities_of_zero_are_clipped_not_infinite():
    m = NegativeLogLikelihood()
    m.update_state([1], np.array([[1.0, 0.0]], np.float32))
    assert np.isfinite(value(m)) and value(m) > 10.0


# ---------------------------------------------------------------------------
# Inside compile() / evaluate() / fit().
# ---------------------------------------------------------------------------


def _tiny_model(k=4, d=6, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((d,)), keras.layers.Dense(k, activation="softmax")]
    )


def test_metrics_inside_compile_and_evaluate_match_numpy():
    rng = np.random.default_rng(30)
    n, d, k = 203, 6, 4
    x = rng.normal(size=(n, d)).astype(np.float32) * 2.0
    y = rng.integers(0, k, size=n)
    w = rng.uniform(0.1, 2.0, size=n).astype(np.float32)
    model = _tiny_model(k, d)
    model.compile(
        optimizer="sgd",
        loss="sparse_categorical_crossentropy",
        metrics=[
            ExpectedCalibrationError(num_bins=10),
            TotalVariationDistance(),
            NegativeLogLikelihood(),
        ],
        # Keras applies `sample_weight` to `weighted_metrics` only.
        weighted_metrics=[
            ExpectedCalibrationError(num_bins=10, name="w_ece"),
            TotalVariationDistance(name="w_tvd"),
            NegativeLogLikelihood(name="w_nll"),
        ],
        jit_compile=True,
    )
    probs = model.predict(x, batch_size=32, verbose=0)
    one_hot = np.eye(k)[y]

    out = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(out["ece"], np_ece(y, probs, 10), rtol=1e-4)
    np.testing.assert_allclose(out["tvd"], np_tvd(one_hot, probs), rtol=1e-5)
    np.testing.assert_allclose(
        out["nll"], np_nll(y, np.log(probs.astype(np.float64))), rtol=1e-5
    )
    np.testing.assert_allclose(out["nll"], out["loss"], rtol=1e-5)

    out_w = model.evaluate(
        x, y, sample_weight=w, batch_size=32, verbose=0, return_dict=True
    )
    np.testing.assert_allclose(
        out_w["w_ece"], np_ece(y, probs, 10, w), rtol=1e-4
    )
    np.testing.assert_allclose(
        out_w["w_tvd"], np_tvd(one_hot, probs, w), rtol=1e-5
    )
    np.testing.assert_allclose(
        out_w["w_nll"], np_nll(y, np.log(probs.astype(np.float64)), w), rtol=1e-5
    )
    # Unweighted `metrics` ignore the weights, as Keras' own metrics do.
    np.testing.assert_allclose(out_w["ece"], out["ece"], rtol=1e-6)
    # Without sample weights both lists agree.
    for name in ("ece", "tvd", "nll"):
        np.testing.assert_allclose(out[f"w_{name}"], out[name], rtol=1e-6)

    # And inside a jit-compiled training step.
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    for name in ("ece", "tvd", "nll"):
        assert np.isfinite(history.history[name][0])


def test_tvd_against_soft_targets_inside_evaluate():
    rng = np.random.default_rng(31)
    n, d, k = 64, 6, 4
    x = rng.normal(size=(n, d)).astype(np.float32)
    teacher = np_softmax(rng.normal(size=(n, k))).astype(np.float32)
    model = _tiny_model(k, d, seed=1)
    model.compile(loss="kl_divergence", metrics=[TotalVariationDistance()])
    probs = model.predict(x, batch_size=16, verbose=0)
    out = model.evaluate(x, teacher, batch_size=16, verbose=0, return_dict=True)
    np.testing.assert_allclose(out["tvd"], np_tvd(teacher, probs), rtol=1e-5)


# ---------------------------------------------------------------------------
# Serialization.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric",
    [
        ExpectedCalibrationError(num_bins=7, from_logits=True, name="my_ece"),
        TotalVariationDistance(from_logits=True, name="my_tvd"),
        NegativeLogLikelihood(from_logits=True, name="my_nll", dtype="float64"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_config_and_keras_serialization_round_trip(metric):
    config = metric.get_config()
    json.dumps(config)
    assert config["from_logits"] is True
    clone = type(metric).from_config(config)
    assert clone.get_config() == config

    serialized = keras.saving.serialize_keras_object(metric)
    assert serialized["registered_name"] == f"ptloss_tf>{type(metric).__name__}"
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(serialized))
    )
    assert type(restored) is type(metric)
    assert restored.get_config() == config

    _, logits, _, labels, weights = random_problem(40)
    for m in (metric, restored):
        m.reset_state()
        m.update_state(labels, logits, sample_weight=weights)
    np.testing.assert_allclose(value(restored), value(metric), rtol=1e-6)


def test_float64_metric_accumulates_in_float64():
    _, logits, _, labels, _ = random_problem(41)
    m = ExpectedCalibrationError(num_bins=5, from_logits=True, dtype="float64")
    m.update_state(labels, logits)
    assert all(v.dtype == "float64" for v in m.variables)
    np.testing.assert_allclose(
        value(m), np_ece(labels, np_softmax(logits), 5), rtol=1e-5
    )


# ---------------------------------------------------------------------------
# tf.distribute.MirroredStrategy (two logical CPUs, in a fresh process since
# logical devices must be configured before TensorFlow initialises).
# ---------------------------------------------------------------------------

_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras
    from ptloss_tf.metrics import (
        ExpectedCalibrationError, NegativeLogLikelihood, TotalVariationDistance
    )
    rng = np.random.default_rng(50)
    x = rng.normal(size=(96, 6)).astype(np.float32) * 2.0
    y = rng.integers(0, 4, size=96)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(4, activation="softmax")]
        )
        model.compile(
            loss="sparse_categorical_crossentropy",
            metrics=[ExpectedCalibrationError(num_bins=10),
                     TotalVariationDistance(), NegativeLogLikelihood()],
            # XLA cannot place the model's mirrored variables across logical
            # CPU devices (a TF limitation unrelated to the metrics), so the
            # distributed step runs as a plain tf.function here.
            jit_compile=False,
        )
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    out = model.evaluate(ds, verbose=0, return_dict=True)
    probs = model.predict(x, batch_size=32, verbose=0)
    print("RESULT" + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "out": {k: float(v) for k, v in out.items()},
        "probs": probs.tolist(), "y": y.tolist(),
    }))
    """
)


@pytest.mark.slow
def test_metrics_under_mirrored_strategy():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][-1]
    data = json.loads(line[len("RESULT"):])
    assert data["replicas"] == 2
    probs = np.asarray(data["probs"], np.float32)
    y = np.asarray(data["y"])
    out = data["out"]
    np.testing.assert_allclose(out["ece"], np_ece(y, probs, 10), rtol=1e-4)
    np.testing.assert_allclose(
        out["tvd"], np_tvd(np.eye(4)[y], probs), rtol=1e-5
    )
    np.testing.assert_allclose(
        out["nll"], np_nll(y, np.log(probs.astype(np.float64))), rtol=1e-5
    )
