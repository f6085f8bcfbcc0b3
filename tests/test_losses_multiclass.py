"""The K-class baselines `dkd` (`DecoupledKDLoss`) and `dist` (`DISTLoss`).

Golden values are numpy written here from the papers' formulas (Zhao et
al. 2022, Eq. 1-4 and the T^2 of mdistiller's `dkd_loss`; Huang et al.
2022, Eq. 7-9 with the authors' tau^2), one row / one class at a time,
never calling the code under test; Pearson correlations from
`scipy.stats.pearsonr`.
"""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import pearsonr

import ptloss_tf
from ptloss_tf import losses
from ptloss_tf.losses import DecoupledKDLoss
from ptloss_tf.losses import DISTLoss

# -- references ---------------------------------------------------------------


def _tempered(p, z, t):
    with np.errstate(divide="ignore"):
        return softmax(np.log(p) / t, axis=-1), softmax(z / t, axis=-1)


def _kl(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    keep = a > 0
    return float(np.sum(a[keep] * np.log(a[keep] / b[keep])))


def dkd_numpy(p, z, labels, alpha=1.0, beta=8.0, t=4.0):
    """Per row: T^2 (alpha KL(b_p || b_q) + beta KL(p_hat || q_hat)), the
    target class the label, or the teacher's argmax where the label is -1."""
    pt, qt = _tempered(p, z, t)
    out = []
    for i in range(len(p)):
        c = labels[i] if labels[i] >= 0 else int(np.argmax(p[i]))
        rest = [k for k in range(p.shape[1]) if k != c]
        tckd = _kl([pt[i, c], 1 - pt[i, c]], [qt[i, c], 1 - qt[i, c]])
        nckd = _kl(pt[i, rest] / pt[i, rest].sum(), qt[i, rest] / qt[i, rest].sum())
        out.append(t**2 * (alpha * tckd + beta * nckd))
    return np.array(out)


def dist_numpy(p, z, beta=1.0, gamma=1.0, t=1.0):
    """The batch value: T^2 (beta mean_i (1 - r(q_i, p_i)) + gamma mean_k
    (1 - r(q[:, k], p[:, k])))."""
    pt, qt = _tempered(p, z, t)
    inter = np.mean([1 - pearsonr(qt[i], pt[i])[0] for i in range(len(p))])
    intra = np.mean([1 - pearsonr(qt[:, k], pt[:, k])[0] for k in range(p.shape[1])])
    return t**2 * (beta * inter + gamma * intra)


def _data(k, batch=12, seed=0, unlabelled=0):
    rng = np.random.default_rng([seed, k])
    p = rng.dirichlet(np.full(k, 0.7), size=batch)
    z = rng.normal(scale=2.0, size=(batch, k))
    labels = rng.integers(0, k, size=batch)
    labels[:unlabelled] = -1
    return p, z, labels


# -- values against the references --------------------------------------------


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-4), ("float64", 1e-9)])
@pytest.mark.parametrize("params", [{}, {"alpha": 0.5, "beta": 2.0, "temperature": 1.0}])
def test_dkd_matches_the_reference(k, dtype, rtol, params):
    p, z, labels = _data(k, unlabelled=3)
    loss = DecoupledKDLoss(**params, from_logits=True, reduction=None, dtype=dtype)
    y_true = DecoupledKDLoss.targets_with_labels(p.astype(dtype), labels)
    value = np.asarray(loss(y_true, z.astype(dtype)))
    expected = dkd_numpy(p, z, labels, params.get("alpha", 1.0), params.get("beta", 8.0),
                         params.get("temperature", 4.0))
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=1e-7)
    mean = DecoupledKDLoss(**params, from_logits=True, dtype=dtype)(y_true, z.astype(dtype))
    assert float(mean) == pytest.approx(expected.mean(), rel=max(rtol, 1e-6))


@pytest.mark.parametrize("k", [3, 5])
# float64 too: the authors' eps 1e-8 in Pearson's denominator (not in scipy)
# moves the value by ~1e-6 relative at tau = 4.
@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-5), ("float64", 1e-5)])
@pytest.mark.parametrize("params", [{}, {"beta": 2.0, "gamma": 0.5, "temperature": 4.0}])
def test_dist_matches_the_reference(k, dtype, rtol, params):
    p, z, _ = _data(k, batch=16, seed=1)
    loss = DISTLoss(**params, from_logits=True, dtype=dtype)
    value = float(loss(p.astype(dtype), z.astype(dtype)))
    expected = dist_numpy(p, z, params.get("beta", 1.0), params.get("gamma", 1.0),
                          params.get("temperature", 1.0))
    assert value == pytest.approx(expected, rel=rtol)


def test_dist_per_example_values_average_to_the_batch_value():
    p, z, _ = _data(3, batch=10, seed=2)
    per_example = np.asarray(DISTLoss(from_logits=True, reduction=None)(p, z))
    assert per_example.shape == (10,)
    assert per_example.mean() == pytest.approx(dist_numpy(p, z), rel=2e-5)
    # Each row's inter-class term plus the batch's intra-class term.
    intra = np.mean([1 - pearsonr(softmax(z, -1)[:, c], p[:, c])[0] for c in range(3)])
    inter_0 = 1 - pearsonr(softmax(z[0]), p[0])[0]
    assert per_example[0] == pytest.approx(inter_0 + intra, rel=2e-5)


@pytest.mark.parametrize("reduction", ["mean_with_sample_weight", None])
def test_dist_padding_rows_of_weight_zero_take_no_part(reduction):
    # A batch padded to a multiple of the devices repeats its first row with
    # sample weight 0 (PreparedBatches); DIST's batch term must not see it.
    p, z, _ = _data(3, batch=10, seed=3)
    padded_p, padded_z = np.concatenate([p, p[:3]]), np.concatenate([z, z[:3]])
    weights = np.r_[np.ones(10), np.zeros(3)].astype("float32")
    value = np.asarray(DISTLoss(from_logits=True, reduction=reduction)(
        padded_p, padded_z, sample_weight=weights))
    if reduction is None:
        expected = np.asarray(DISTLoss(from_logits=True, reduction=None)(p, z))
        np.testing.assert_allclose(value[:10], expected, rtol=2e-5)
        assert np.all(value[10:] == 0)
    else:
        assert float(value) == pytest.approx(dist_numpy(p, z), rel=2e-5)
    # Without the weights the copies would change the value.
    unweighted = float(DISTLoss(from_logits=True)(padded_p, padded_z))
    assert abs(unweighted - dist_numpy(p, z)) > 1e-3


def test_dist_integer_sample_weights_count_rows_that_many_times():
    # A row of weight 2 enters every mean as two copies of it: the weighted
    # loss equals the reference on the batch with that row repeated.
    p, z, _ = _data(5, batch=8, seed=4)
    weights = np.array([2, 1, 1, 3, 1, 1, 1, 1], dtype="float32")
    value = float(DISTLoss(from_logits=True, reduction="mean_with_sample_weight")(
        p, z, sample_weight=weights))
    repeat = np.repeat(np.arange(8), weights.astype(int))
    assert value == pytest.approx(dist_numpy(p[repeat], z[repeat]), rel=2e-5)


def test_probabilities_input_matches_logits_input():
    p, z, labels = _data(4, seed=3)
    q = softmax(z, axis=-1)
    y_true = DecoupledKDLoss.targets_with_labels(p, labels)
    for cls, target in ((DecoupledKDLoss, y_true), (DISTLoss, p)):
        from_logits = float(cls(from_logits=True, dtype="float64")(target, z))
        from_probs = float(cls(from_logits=False, dtype="float64")(target, q))
        assert from_probs == pytest.approx(from_logits, rel=1e-6)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_computes_in_float32(policy):
    low = policy.split("_")[1]
    p, z, labels = _data(3, seed=4)
    z_low = keras.ops.cast(z, low)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        dkd = DecoupledKDLoss(from_logits=True, reduction=None)
        dist = DISTLoss(from_logits=True)
        dkd_value = dkd(DecoupledKDLoss.targets_with_labels(p, labels), z_low)
        dist_value = dist(p.astype(np.float32), z_low)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(dkd_value.dtype) == "float32"
    assert keras.backend.standardize_dtype(dist_value.dtype) == "float32"
    # Golden: the same low-precision logits, in float64 by numpy.
    z_seen = keras.ops.convert_to_numpy(keras.ops.cast(z_low, "float32")).astype(np.float64)
    # float32 arithmetic with T^2 = 16: absolute errors ~1e-5.
    np.testing.assert_allclose(np.asarray(dkd_value), dkd_numpy(p, z_seen, labels),
                               rtol=1e-4, atol=5e-5)
    assert float(dist_value) == pytest.approx(dist_numpy(p, z_seen), rel=2e-5)


# -- compiled training ---------------------------------------------------------


def _tiny_model(k, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(k)])


@pytest.mark.parametrize("name", ["dkd", "dist"])
@pytest.mark.parametrize("policy", [None, "mixed_bfloat16"])
def test_compile_loss_fit_step_under_xla(name, policy):
    """`model.compile(loss=..., jit_compile=True)`: one fit step moves the
    weights and the compiled `evaluate` equals the numpy reference."""
    k, n = 3, 24
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    p, _, labels = _data(k, batch=n, seed=5, unlabelled=4)
    y = DecoupledKDLoss.targets_with_labels(p, labels) if name == "dkd" else p
    previous = keras.config.dtype_policy()
    if policy:
        keras.config.set_dtype_policy(policy)
    try:
        model = _tiny_model(k, seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True,
                      loss=losses.get(name, from_logits=True))
        before = [w.copy() for w in model.get_weights()]
        history = model.fit(x, y, batch_size=n, epochs=1, verbose=0, shuffle=False)
        logits = np.asarray(model.predict(x, batch_size=n, verbose=0), np.float64)
        evaluated = model.evaluate(x, y, batch_size=n, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    expected = (dkd_numpy(p, logits, labels).mean() if name == "dkd"
                else dist_numpy(p, logits))
    rtol = 1e-3 if policy else 1e-5  # bfloat16: predict and evaluate round differently
    assert evaluated == pytest.approx(expected, rel=rtol)


def test_gradients_are_finite_in_the_edge_cases():
    """A uniform student (DIST's centred student is 0) and a one-hot
    teacher (no non-target mass: NCKD is 0)."""
    import tensorflow as tf

    p = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 1.0, 0.0]], np.float32)
    z = tf.Variable(np.zeros((3, 3), np.float32))
    for loss, y in ((DISTLoss(from_logits=True), p),
                    (DecoupledKDLoss(from_logits=True),
                     DecoupledKDLoss.targets_with_labels(p, [0, 2, -1]))):
        with tf.GradientTape() as tape:
            value = loss(y, z)
        assert np.isfinite(float(value))
        assert np.isfinite(tape.gradient(value, z).numpy()).all()
    # A one-hot teacher on its label, uniform student: TCKD = KL((1, 0) ||
    # (1/3, 2/3)) = log 3, NCKD = 0 (no non-target mass to share).
    one_hot = DecoupledKDLoss(temperature=1.0, from_logits=True, reduction=None)
    value = np.asarray(one_hot(DecoupledKDLoss.targets_with_labels(p[:1], [0]), z[:1]))
    assert value[0] == pytest.approx(np.log(3.0), rel=1e-6)


# -- the labels -----------------------------------------------------------------


def test_labels_change_dkd_and_an_unlabelled_row_uses_the_teacher_argmax():
    p, z, _ = _data(5, seed=6)
    loss = DecoupledKDLoss(from_logits=True, reduction=None, dtype="float64")
    argmax = p.argmax(-1)
    other = (argmax + 1) % 5
    with_argmax = np.asarray(loss(DecoupledKDLoss.targets_with_labels(p, argmax), z))
    with_other = np.asarray(loss(DecoupledKDLoss.targets_with_labels(p, other), z))
    unlabelled = np.asarray(loss(DecoupledKDLoss.targets_with_labels(p, -np.ones(12)), z))
    no_labels = np.asarray(loss(DecoupledKDLoss.targets_with_labels(p), z))
    assert np.all(np.abs(with_argmax - with_other) > 1e-6)
    np.testing.assert_array_equal(unlabelled, with_argmax)
    np.testing.assert_array_equal(no_labels, with_argmax)
    np.testing.assert_allclose(with_other, dkd_numpy(p, z, other), rtol=1e-9)


def test_targets_with_labels_layout_numpy_and_tensor():
    import tensorflow as tf

    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], np.float32)
    expected = [[0.6, 0.3, 0.1, 0, 1, 0], [0.2, 0.2, 0.6, 0, 0, 0]]
    y = DecoupledKDLoss.targets_with_labels(p, np.array([1, -1]))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected)
    tensor = DecoupledKDLoss.targets_with_labels(tf.constant(p), tf.constant([[1], [-1]]))
    np.testing.assert_allclose(tensor.numpy(), expected)


def _distilled(loss, targets, seed=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 6)).astype(np.float32)
    distiller = ptloss_tf.Distiller(_tiny_model(3, seed=1))
    distiller.compile(optimizer="sgd", distillation_loss=loss, jit_compile=True)
    return distiller.evaluate(x, targets, batch_size=16, verbose=0,
                              return_dict=True)["distillation_loss"]


def test_the_distiller_hands_its_labels_to_dkd_and_not_to_dist():
    p, _, labels = _data(3, batch=16, seed=8)
    p = p.astype(np.float32)
    argmax = p.argmax(-1).astype(np.int32)
    shifted = ((argmax + 1) % 3).astype(np.int32)

    def dkd(targets):
        return _distilled(DecoupledKDLoss(from_logits=True), targets)

    def dist(targets):
        return _distilled(DISTLoss(from_logits=True), targets)

    labelled = dkd({"teacher_probs": p, "labels": shifted})
    assert labelled != pytest.approx(dkd({"teacher_probs": p, "labels": argmax}), rel=1e-4)
    # Without "labels" the teacher's argmax is the target class.
    assert dkd({"teacher_probs": p}) == pytest.approx(
        dkd({"teacher_probs": p, "labels": argmax}), rel=1e-6)
    # The Distiller's value is the reference on the student's logits.
    x = np.random.default_rng(7).normal(size=(16, 6)).astype(np.float32)
    logits = np.asarray(_tiny_model(3, seed=1)(x), np.float64)
    assert labelled == pytest.approx(dkd_numpy(p, logits, shifted).mean(), rel=1e-5)
    assert dist({"teacher_probs": p, "labels": shifted}) == pytest.approx(
        dist({"teacher_probs": p, "labels": argmax}), rel=1e-7)
    assert dist({"teacher_probs": p}) == pytest.approx(dist_numpy(p, logits), rel=1e-5)


# -- two classes -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["dkd", "dist"])
def test_two_classes_warn_once_per_loss_object(name):
    p, z, labels = _data(2, seed=9)
    y = DecoupledKDLoss.targets_with_labels(p, labels) if name == "dkd" else p
    loss = losses.get(name, from_logits=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss(y, z)
        loss(y, z)
    assert len(caught) == 1 and "degenerate" in str(caught[0].message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses.get(name, from_logits=True)(y, z)  # a new object warns again
        p3, z3, labels3 = _data(3, seed=9)
        y3 = DecoupledKDLoss.targets_with_labels(p3, labels3) if name == "dkd" else p3
        losses.get(name, from_logits=True)(y3, z3)  # three classes: silent
    assert len(caught) == 1


def test_two_classes_dkd_is_alpha_times_the_temperature_baseline():
    p, z, labels = _data(2, seed=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dkd = DecoupledKDLoss(alpha=0.7, beta=8.0, temperature=3.0, from_logits=True,
                              reduction=None, dtype="float64")
        value = np.asarray(dkd(DecoupledKDLoss.targets_with_labels(p, labels), z))
    baseline = ptloss_tf.TemperatureKLDivergence(3.0, from_logits=True, reduction=None,
                                                 dtype="float64")
    np.testing.assert_allclose(value, 0.7 * np.asarray(baseline(p, z)), rtol=1e-9)


# -- configuration ----------------------------------------------------------------


@pytest.mark.parametrize("cls, params", [
    (DecoupledKDLoss, {"alpha": 0.5, "beta": 2.0, "temperature": 3.0}),
    (DISTLoss, {"beta": 2.0, "gamma": 0.5, "temperature": 4.0}),
])
def test_get_config_round_trip(cls, params):
    loss = cls(**params, from_logits=True, reduction=None, name="mine")
    config = loss.get_config()
    for key, value in params.items():
        assert config[key] == value
    again = cls.from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is cls and restored.get_config() == config
    p, z, labels = _data(3, seed=11)
    y = DecoupledKDLoss.targets_with_labels(p, labels) if cls is DecoupledKDLoss else p
    np.testing.assert_allclose(np.asarray(restored(y, z)), np.asarray(loss(y, z)))


def test_registry_names_parameters_and_defaults():
    assert losses.NAMES[4:6] == ("dkd", "dist")
    assert losses.parameters("dkd") == {
        "alpha": 1.0, "beta": 8.0, "temperature": 4.0, "from_logits": False,
        "reduction": "sum_over_batch_size", "name": "decoupled_kd_loss", "dtype": None}
    assert losses.parameters("dist") == {
        "beta": 1.0, "gamma": 1.0, "temperature": 1.0, "from_logits": False,
        "reduction": "sum_over_batch_size", "name": "dist_loss", "dtype": None}
    assert type(losses.get("dkd", beta=0.5)) is DecoupledKDLoss
    assert ptloss_tf.DISTLoss is DISTLoss and ptloss_tf.DecoupledKDLoss is DecoupledKDLoss


def test_ptloss_distill_options_reach_the_losses():
    from ptloss_tf.training.config import parse_args
    from ptloss_tf.training.methods import make_loss
    from ptloss_tf.training.preflight import check_config

    config = parse_args(["--loss", "dkd", "dist", "--dkd-beta", "2", "--dist-gamma", "3",
                         "--dist-temperature", "2"])
    assert (config.dkd_alpha, config.dkd_beta, config.dkd_temperature) == (1.0, 2.0, 4.0)
    dkd = make_loss("dkd", 3, dkd={"alpha": config.dkd_alpha, "beta": config.dkd_beta,
                                   "temperature": config.dkd_temperature})
    assert (dkd.alpha, dkd.beta, dkd.temperature, dkd.from_logits) == (1.0, 2.0, 4.0, True)
    dist = make_loss("dist", 3, dist={"gamma": config.dist_gamma,
                                      "temperature": config.dist_temperature})
    assert (dist.beta, dist.gamma, dist.temperature) == (1.0, 3.0, 2.0)
    with pytest.raises(ValueError, match="dkd_beta"):
        check_config(config.replace(dkd_beta=-1.0))
    with pytest.raises(ValueError, match="dist_temperature"):
        check_config(config.replace(dist_temperature=0.0))


# -- bad inputs: one-line ValueErrors --------------------------------------------------


def _one_line(info):
    assert "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("build, y_true, y_pred, match", [
    (lambda: DecoupledKDLoss(from_logits=True), np.full((2, 3), 1 / 3), np.zeros((2, 3)),
     r"\[batch, 2K\] = \[batch, 6\]"),
    (lambda: DecoupledKDLoss(from_logits=True),
     np.array([[0.5, 0.3, 0.2, 0.5, 0.5, 0.0]]), np.zeros((1, 3)), "one-hot"),
    (lambda: DecoupledKDLoss(from_logits=True),
     np.array([[0.5, 0.3, 0.2, 0.0, 2.0, 0.0]]), np.zeros((1, 3)), "one-hot"),
    (lambda: DecoupledKDLoss(from_logits=True), np.full((2, 6), 0.5), np.zeros((2,)),
     "known K"),
    (lambda: DISTLoss(from_logits=True), np.full((2, 4, 3), 1 / 3), np.zeros((2, 4, 3)),
     r"\[batch, K\]"),
    (lambda: DISTLoss(from_logits=True), np.full((2, 3), 1 / 3), np.zeros((2, 4)),
     "class-count mismatch"),
    (lambda: DISTLoss(from_logits=True), np.array([[0.5, 0.6, 0.1]] * 2), np.zeros((2, 3)),
     "y_true"),
])
def test_bad_inputs_are_one_line_value_errors(build, y_true, y_pred, match):
    with pytest.raises(ValueError, match=match) as info:
        build()(y_true, y_pred)
    _one_line(info)


@pytest.mark.parametrize("build, match", [
    (lambda: DecoupledKDLoss(alpha=-1.0), "`alpha` must be a finite number >= 0"),
    (lambda: DecoupledKDLoss(beta=float("nan")), "`beta`"),
    (lambda: DecoupledKDLoss(temperature=0.0), "`temperature`"),
    (lambda: DISTLoss(gamma="x"), "`gamma` must be a number"),
    (lambda: DecoupledKDLoss.targets_with_labels(np.full((2, 3), 1 / 3), [0, 3]),
     r"\[-1, 3\)"),
    (lambda: DecoupledKDLoss.targets_with_labels(np.full((2, 3), 1 / 3), [0]), "2 integer"),
])
def test_bad_parameters_are_one_line_value_errors(build, match):
    with pytest.raises(ValueError, match=match) as info:
        build()
    _one_line(info)


def test_the_readme_dkd_snippet_runs():
    import re

    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "README.md")
    with open(readme, encoding="utf-8") as f:
        blocks = [b for b in re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
                  if "targets_with_labels" in b]
    assert len(blocks) == 1
    p, _, labels = _data(3, batch=8, seed=12, unlabelled=2)
    student = _tiny_model(3, seed=2)
    before = [w.copy() for w in student.get_weights()]
    namespace = {"ptloss_tf": ptloss_tf, "teacher_probs": p.astype(np.float32),
                 "labels": labels, "student": student,
                 "x": np.random.default_rng(12).normal(size=(8, 6)).astype(np.float32)}
    exec(blocks[0], namespace)
    assert namespace["y"].shape == (8, 6)
    assert not np.allclose(before[0], student.get_weights()[0])


# -- end to end ----------------------------------------------------------------------

_JAX_SCRIPT = """
import sys, numpy as np, keras, ptloss_tf
from ptloss_tf.training.data.prepared_batches import PreparedBatches
assert keras.backend.backend() == "jax"
rng = np.random.default_rng(0)
ids = rng.integers(4, 50, size=(16, 8)).astype(np.int32)
inputs = {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": np.ones_like(ids)}
p = rng.dirichlet(np.ones(3), size=16).astype(np.float32)
labels = rng.integers(0, 3, size=16).astype(np.int32)
token_ids = keras.Input((None,), dtype="int32", name="token_ids")
segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
mask = keras.Input((None,), dtype="int32", name="padding_mask")
hidden = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4)(token_ids))
student = keras.Model({"token_ids": token_ids, "segment_ids": segment_ids,
                       "padding_mask": mask}, keras.layers.Dense(3)(hidden))
out = {}
for name in ("dkd", "dist"):
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(optimizer="sgd", jit_compile=True,
                      distillation_loss=ptloss_tf.losses.get(name, from_logits=True))
    for key, y in (("shifted", (labels + 1) % 3), ("argmax", p.argmax(-1))):
        batches = PreparedBatches(inputs, {"teacher_probs": p, "labels": y.astype(np.int32)}, 16)
        out[name + "_" + key] = distiller.evaluate(
            batches, verbose=0, return_dict=True)["distillation_loss"]
    distiller.fit(PreparedBatches(inputs, {"teacher_probs": p, "labels": labels}, 8),
                  epochs=1, verbose=0)
logits = np.asarray(student.predict(PreparedBatches(inputs, None, 16), verbose=0))
np.savez(sys.argv[1], logits=logits, p=p, labels=labels, **out)
"""


@pytest.mark.slow
def test_dkd_labels_reach_the_loss_under_jax_from_prepared_batches(tmp_path):
    """The prepared-data path: `PreparedBatches` under `KERAS_BACKEND=jax`."""
    import jax  # noqa: F401  (the test extra installs it)

    target = tmp_path / "out.npz"
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", _JAX_SCRIPT, str(target)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(target)
    assert np.isfinite(out["logits"]).all()
    assert float(out["dkd_shifted"]) != pytest.approx(float(out["dkd_argmax"]), rel=1e-4)
    assert float(out["dist_shifted"]) == pytest.approx(float(out["dist_argmax"]), rel=1e-6)


@pytest.mark.slow
def test_ptloss_distill_runs_kl_dkd_and_dist_on_three_classes(tmp_path):
    from tests.helpers import TINY_RUN

    out = tmp_path / "out"
    command = [sys.executable, "-m", "ptloss_tf.training", *TINY_RUN,
               "--synthetic-classes", "3", "--loss", "kl", "dkd", "dist",
               "--dkd-beta", "2", "--output-dir", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "degenerate" not in result.stderr  # three classes: no two-class warning
    report = json.loads((out / "report.json").read_text())
    results = {r["method"]: r for r in report["results"]}
    assert list(results) == ["kl", "dkd", "dist"]
    for method, r in results.items():
        for key in ("accuracy", "nll", "ece", "distillation_loss"):
            assert np.isfinite(r[key]), (method, key, r[key])
    assert report["config"]["dkd_beta"] == 2.0 and report["config"]["dist_gamma"] == 1.0
