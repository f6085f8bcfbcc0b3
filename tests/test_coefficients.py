import numpy as np
import pytest

from ptloss_tf import Coefficients


def test_shape_and_binary_convention():
    eta = Coefficients.binary(eps=[1.0, 2.0], gamma=[3.0, 4.0])
    assert eta.shape == (2, 2) and eta.order == 2 and eta.num_classes == 2
    # eps is class 0 (column 0), gamma class 1; row m-1 is order m.
    assert eta.values.tolist() == [[1.0, 3.0], [2.0, 4.0]]


def test_is_convex_boundary():
    at_bound = Coefficients([[-1.0, 0.0], [-0.5, 1.0], [-1 / 3, 2.0]])
    assert at_bound.is_convex
    # Clearly below (1e-6 is ~17 float32 ulps of 0.5): outside.
    below = Coefficients([[-1.0, 0.0], [-0.5 - 1e-6, 1.0]])
    assert not below.is_convex
    assert Coefficients.zeros(4, 3).is_convex


def test_immutable_and_value_semantics():
    source = np.array([[1.0, 2.0]])
    eta = Coefficients(source)
    source[0, 0] = 99.0  # the copy is not affected
    assert eta.values[0, 0] == 1.0
    with pytest.raises(ValueError):
        eta.values[0, 0] = 5.0
    with pytest.raises(AttributeError):
        eta.foo = 1
    assert eta == Coefficients([[1.0, 2.0]])
    assert hash(eta) == hash(Coefficients([[1.0, 2.0]]))
    assert eta != Coefficients([[1.0, 2.5]])
    assert np.asarray(eta).shape == (1, 2)


def test_json_round_trip_is_exact():
    eta = Coefficients(np.random.default_rng(0).uniform(-1, 10, size=(5, 3)))
    assert Coefficients.from_json(eta.to_json()) == eta
    assert Coefficients.from_json("[[1, 2], [3, 4]]") == Coefficients([[1, 2], [3, 4]])


def test_pretty_printing():
    text = str(Coefficients([[1.0, -0.5]]))
    assert "class 0" in text and "+1.0000" in text and "-0.5000" in text
    assert "convex: True" in text
    assert repr(Coefficients([[1.0, 2.0]])) == "Coefficients([[1.0, 2.0]])"


@pytest.mark.parametrize(
    "values, match",
    [
        ([1.0, 2.0], "shape"),
        (np.zeros((0, 2)), "order 0"),
        ([[1.0]], "at least 2 classes"),
        ([[np.nan, 1.0]], "NaN"),
        ([[np.inf, 1.0]], "inf"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_validation(values, match):
    with pytest.raises(ValueError, match=match):
        Coefficients(values)


def test_bad_json():
    with pytest.raises(ValueError, match="JSON"):
        Coefficients.from_json("{not json")
    with pytest.raises(ValueError, match="coefficients"):
        Coefficients.from_json('{"eta": [[1, 2]]}')
    with pytest.raises(ValueError, match="eps"):
        Coefficients.binary([1.0, 2.0], [1.0])


def test_float32_box_edge_is_inside():
    # float32(-1/m) rounds below -1/m for m = 3, 5, 6, 7 (not for 1, 2, 4):
    # a float32 round trip of the box's corner used to be refused.
    edge = np.float32(-1.0 / np.arange(1, 8))[:, None] * np.ones((1, 3), np.float32)
    assert (edge.astype(np.float64) < -1.0 / np.arange(1, 8)[:, None]).any()
    assert Coefficients(edge).is_convex
    assert Coefficients(edge.astype(np.float64).tolist()).is_convex
    # One float32 ulp further out per order is still within the tolerance...
    nudged = np.nextafter(edge, np.float32(-np.inf))
    assert Coefficients(nudged).is_convex
    # ...but clearly outside is outside, at every order.
    for m in range(1, 8):
        outside = edge.astype(np.float64)
        outside[m - 1, 1] = -1.0 / m * (1 + 1e-5)
        assert not Coefficients(outside).is_convex, m
