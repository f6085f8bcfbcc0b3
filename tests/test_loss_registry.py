"""`ptloss_tf.losses.get`, `NAMES` and `parameters`: the name -> loss map.

Golden values are written here from MATH.md Sec. 1 and 4 with numpy/scipy.
"""

import keras
import numpy as np
import pytest
from scipy.special import log_softmax
from scipy.special import softmax
from scipy.special import xlogy

import ptloss_tf
from ptloss_tf import losses
from tests.helpers import reference


def _data(seed=7, batch=6, num_classes=3):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(num_classes, 0.8), size=batch)
    z = rng.normal(scale=2.0, size=(batch, num_classes))
    return p, z


def _kl(p, log_q):
    return np.sum(xlogy(p, p) - p * log_q, axis=-1)


def _kl_numpy(p, z):
    return _kl(p, log_softmax(z, axis=-1))


def _temperature_numpy(p, z, t=2.0):
    with np.errstate(divide="ignore"):
        p_t = softmax(np.log(p) / t, axis=-1)
    return t**2 * _kl(p_t, log_softmax(z / t, axis=-1))


def _label_smoothing_numpy(p, z, delta=0.1):
    smoothed = (1 - delta) * p + delta / p.shape[-1]
    return _kl(smoothed, log_softmax(z, axis=-1))


def _focal_numpy(p, z, tau=2.0):
    q = softmax(z, axis=-1)
    return -np.sum(p * (1 - q) ** tau * np.log(q), axis=-1)


ETA = np.array([[1.0, -0.5, 2.0], [0.3, 0.3, -0.2]])

CASES = [
    # name, parameters, class, attribute checked, numpy reference
    ("kl", {}, ptloss_tf.KLDivergence, None, _kl_numpy),
    ("temperature", {"temperature": 2.0}, ptloss_tf.TemperatureKLDivergence,
     "temperature", _temperature_numpy),
    ("label_smoothing", {"smoothing": 0.1}, ptloss_tf.LabelSmoothingKLDivergence,
     "smoothing", _label_smoothing_numpy),
    ("focal", {"focusing": 2.0}, ptloss_tf.FocalDistillationLoss, "focusing",
     _focal_numpy),
    ("ptloss", {"coefficients": ETA}, ptloss_tf.PTLoss, None,
     lambda p, z: reference.ptloss_numpy(p, z, ETA)),
]


def test_names_in_order():
    assert losses.NAMES == ("kl", "temperature", "label_smoothing", "focal", "dkd",
                            "dist", "ptloss")
    # dkd and dist (K-class, dkd with labels in y_true): tests/test_losses_multiclass.py
    assert [c[0] for c in CASES] == [n for n in losses.NAMES if n not in ("dkd", "dist")]


@pytest.mark.parametrize("name, params, cls, attribute, numpy_loss", CASES)
def test_each_name_builds_its_class_with_the_parameter(
    name, params, cls, attribute, numpy_loss
):
    loss = losses.get(name, from_logits=True, reduction=None, dtype="float64", **params)
    assert type(loss) is cls
    assert loss.from_logits is True
    if attribute is not None:
        assert getattr(loss, attribute) == params[attribute]
    p, z = _data()
    np.testing.assert_allclose(loss(p, z).numpy(), numpy_loss(p, z), rtol=1e-10)


def test_ptloss_coefficients_and_the_shared_temperature():
    loss = losses.get("ptloss", coefficients=ETA, temperature=3.0, from_logits=True,
                      reduction=None, dtype="float64")
    np.testing.assert_array_equal(loss.coefficients.values, ETA)
    p, z = _data(seed=3)
    np.testing.assert_allclose(
        loss(p, z).numpy(), reference.ptloss_numpy(p, z, ETA, temperature=3.0),
        rtol=1e-10,
    )


def test_default_reduction_is_the_batch_mean():
    p, z = _data(seed=11)
    loss = losses.get("focal", focusing=0.5, from_logits=True)
    assert float(loss(p, z)) == pytest.approx(np.mean(_focal_numpy(p, z, 0.5)), rel=1e-5)


def test_parameters_are_the_constructor_signature():
    assert losses.parameters("temperature") == {
        "temperature": losses.REQUIRED,
        "from_logits": False,
        "reduction": "sum_over_batch_size",
        "name": "temperature_kl_divergence",
        "dtype": None,
    }
    assert losses.parameters("kl") == {
        "from_logits": False,
        "temperature": 1.0,
        "reduction": "sum_over_batch_size",
        "name": "kl_divergence",
        "dtype": None,
    }
    assert list(losses.parameters("ptloss")) == [
        "coefficients", "from_logits", "temperature", "reduction", "name",
        "dtype", "variable_coefficients",
    ]
    assert losses.parameters("label_smoothing")["smoothing"] is losses.REQUIRED
    assert repr(losses.REQUIRED) == "REQUIRED"


@pytest.mark.parametrize("name, params, cls, attribute, numpy_loss", CASES)
def test_listed_defaults_are_the_real_defaults(name, params, cls, attribute, numpy_loss):
    listed = {k: v for k, v in losses.parameters(name).items() if v is not losses.REQUIRED}
    assert set(params) == set(losses.parameters(name)) - set(listed)
    explicit = losses.get(name, **params, **listed)
    implicit = losses.get(name, **params)
    assert explicit.get_config() == implicit.get_config()


def test_a_loss_instance_is_returned_unchanged():
    loss = ptloss_tf.KLDivergence(from_logits=True)
    assert losses.get(loss) is loss
    keras_loss = keras.losses.MeanSquaredError()
    assert losses.get(keras_loss) is keras_loss
    with pytest.raises(ValueError, match="with a loss instance"):
        losses.get(loss, from_logits=False)


@pytest.mark.parametrize("name", ["KL", "pt_loss", "", 3, None])
def test_unknown_name_lists_the_known_names(name):
    with pytest.raises(ValueError, match="unknown loss") as info:
        losses.get(name)
    for known in losses.NAMES:
        assert known in str(info.value)


def test_unknown_parameter_is_named_with_the_accepted_ones():
    with pytest.raises(ValueError) as info:
        losses.get("focal", focusing=2.0, tau=2.0)
    message = str(info.value)
    assert "'tau'" in message
    for accepted in losses.parameters("focal"):
        assert accepted in message
    with pytest.raises(ValueError, match="'smoothing'"):
        losses.get("kl", smoothing=0.1)


def test_missing_required_parameter():
    with pytest.raises(ValueError, match="needs the parameter\\(s\\) 'coefficients'"):
        losses.get("ptloss", from_logits=True)


def test_constructor_checks_still_apply():
    with pytest.raises(ValueError, match="smoothing"):
        losses.get("label_smoothing", smoothing=1.5)
    with pytest.raises(ValueError, match="temperature"):
        losses.get("temperature", temperature=0.0)
