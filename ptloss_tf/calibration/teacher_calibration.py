"""`TeacherCalibration`: a fitted recalibration map and its JSON."""

import json

import numpy as np

from ptloss_tf.calibration.common import check_method
from ptloss_tf.calibration.common import clipped_log_probabilities
from ptloss_tf.calibration.common import log_softmax
from ptloss_tf.io_utils import atomic_write_text
from ptloss_tf.validation import check_positive

_CONFIG_KEYS = (
    "method", "num_classes", "temperature", "scale", "matrix", "bias",
    "regularization", "validation_nll_before", "validation_nll_after",
)
#: The parameters each method takes (`regularization` is optional).
_PARAMETERS = {"temperature": {"temperature"}, "bias": {"bias"},
               "vector": {"scale", "bias"},
               "matrix": {"matrix", "bias", "regularization"}}
_REQUIRED = {"temperature": {"temperature"}, "bias": {"bias"},
             "vector": {"scale", "bias"}, "matrix": {"matrix", "bias"}}


def _read_only_array(value, name, shape):
    try:
        v = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be numbers of shape {list(shape)}, got {value!r}.")
    if v.shape != shape:
        raise ValueError(
            f"`{name}` must have shape {list(shape)} (num_classes), got "
            f"shape {v.shape}."
        )
    if not np.isfinite(v).all():
        raise ValueError(f"`{name}` contains NaN or inf: {v.tolist()}")
    v.setflags(write=False)
    return v


def _optional_nonnegative(value, name):
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number or None, got {value!r}.")
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return v


def _read_only(array):
    array.setflags(write=False)
    return array


class TeacherCalibration:
    """Immutable recalibration map of teacher probabilities.

    `q = softmax(W max(log p, LOG_PROB_FLOOR) + bias)` row by row, with
    `W = diag(scale)` for the per-class methods and a full `matrix` for
    `"matrix"` (`ptloss_tf.calibration`). Usually made by
    `calibrate_teacher`; the constructor takes exactly the parameters of its
    method.

    Args:
        method: `"temperature"`, `"bias"`, `"vector"` or `"matrix"`.
        num_classes: `K >= 2`.
        temperature: `T > 0`; required for, and only for, `"temperature"`.
        scale: `[K]` per-class scales; required for, and only for, `"vector"`.
        matrix: `[K, K]` `W`; required for, and only for, `"matrix"`.
        bias: `[K]` per-class biases; required for `"bias"`, `"vector"` and
            `"matrix"`. Shifted so that `bias[0] = 0` (the same map: a
            constant cancels in the softmax).
        regularization: `"matrix"` only, optional: the ODIR weight the map
            was fitted with (`calibrate_teacher` records it), or None.
        validation_nll_before: the raw teacher's mean NLL on the fitting
            split (`calibrate_teacher` records it), or None.
        validation_nll_after: the calibrated teacher's mean NLL there, or None.

    Attributes:
        method, num_classes, temperature (`T`, None unless `"temperature"`),
        scale (read-only float64 `[K]`: `1/T` in every class for
        `"temperature"`, ones for `"bias"`; None for `"matrix"`), matrix
        (read-only float64 `[K, K]` `W`: `diag(scale)` for the per-class
        methods), bias (read-only float64 `[K]`, `bias[0] = 0`; zeros for
        `"temperature"`), regularization, validation_nll_before,
        validation_nll_after.

    Two calibrations are equal when their `get_config()` are: the same method
    and parameters, and the same recorded NLLs.

    Example:
    >>> cal = TeacherCalibration("vector", 2, scale=[1.0, 2.0], bias=[0.5, 0.0])
    >>> cal.bias.tolist(), cal.temperature
    ([0.0, -0.5], None)
    >>> cal([[0.5, 0.5]]).round(4).tolist()  # q_0 = 1 / (1 + 0.5 e^-0.5)
    [[0.7673, 0.2327]]
    >>> TeacherCalibration.from_json(cal.to_json()) == cal
    True
    >>> TeacherCalibration("temperature", 3, temperature=2.0)
    TeacherCalibration(method='temperature', num_classes=3, temperature=2)
    >>> swap = TeacherCalibration("matrix", 2, matrix=[[0, 1], [1, 0]], bias=[0, 0])
    >>> swap([[0.2, 0.8]]).round(4).tolist()  # W swaps the classes' evidence
    [[0.8, 0.2]]
    """

    __slots__ = (
        "_method", "_num_classes", "_temperature", "_scale", "_matrix",
        "_bias", "_regularization", "_validation_nll_before",
        "_validation_nll_after",
    )

    def __init__(self, method, num_classes, temperature=None, scale=None,
                 bias=None, validation_nll_before=None,
                 validation_nll_after=None, matrix=None, regularization=None):
        method = check_method(method)
        if isinstance(num_classes, bool) or not isinstance(
            num_classes, (int, np.integer)
        ) or num_classes < 2:
            raise ValueError(
                f"`num_classes` must be an integer >= 2, got {num_classes!r}."
            )
        k = int(num_classes)
        given = {"temperature": temperature is not None,
                 "scale": scale is not None, "matrix": matrix is not None,
                 "bias": bias is not None,
                 "regularization": regularization is not None}
        for name, present in given.items():
            if present and name not in _PARAMETERS[method]:
                raise ValueError(
                    f"`{name}` is not a parameter of method {method!r} (it "
                    f"takes {sorted(_PARAMETERS[method])})."
                )
            if not present and name in _REQUIRED[method]:
                raise ValueError(
                    f"`{name}` is required for method {method!r}."
                )
        if method == "temperature":
            temperature = check_positive(temperature, "temperature")
            scale = _read_only(np.full(k, 1.0 / temperature))
            bias = _read_only(np.zeros(k))
        else:
            bias = _read_only_array(bias, "bias", (k,))
            if bias[0] != 0.0:
                bias = _read_only(bias - bias[0])
            if method == "bias":
                scale = _read_only(np.ones(k))
            elif method == "vector":
                scale = _read_only_array(scale, "scale", (k,))
        if method == "matrix":
            matrix = _read_only_array(matrix, "matrix", (k, k))
        else:
            matrix = _read_only(np.diag(scale))
        values = {
            "_method": method, "_num_classes": k, "_temperature": temperature,
            "_scale": scale, "_matrix": matrix, "_bias": bias,
            "_regularization": _optional_nonnegative(
                regularization, "regularization"),
            "_validation_nll_before": _optional_nonnegative(
                validation_nll_before, "validation_nll_before"),
            "_validation_nll_after": _optional_nonnegative(
                validation_nll_after, "validation_nll_after"),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("TeacherCalibration is immutable.")

    @property
    def method(self):
        return self._method

    @property
    def num_classes(self):
        return self._num_classes

    @property
    def temperature(self):
        """`T` of `q ∝ p^(1/T)` for `"temperature"`; None otherwise."""
        return self._temperature

    @property
    def scale(self):
        """Read-only float64 `[K]`: the multiplier of `log p` in each class
        (None for `"matrix"`: see `matrix`)."""
        return self._scale

    @property
    def matrix(self):
        """Read-only float64 `[K, K]` `W` of `softmax(W log p + bias)`."""
        return self._matrix

    @property
    def bias(self):
        """Read-only float64 `[K]` added to the scaled `log p`; `bias[0] = 0`."""
        return self._bias

    @property
    def regularization(self):
        """The ODIR weight of a `"matrix"` fit (or None)."""
        return self._regularization

    @property
    def validation_nll_before(self):
        """The raw teacher's mean NLL on the fitting split (or None)."""
        return self._validation_nll_before

    @property
    def validation_nll_after(self):
        """The calibrated teacher's mean NLL on the fitting split (or None)."""
        return self._validation_nll_after

    def __call__(self, teacher_probs):
        """Calibrated probabilities of `teacher_probs`.

        Args:
            teacher_probs: `[M, K]` teacher probabilities (numpy, lists or an
                eager tensor), `K = num_classes`.

        Returns:
            float64 numpy `[M, K]`; every row sums to 1. Float64 like
            `ptloss_tf.probabilities.softmax`: cast it (`.astype("float32")`)
            to feed a model.

        Raises:
            ValueError: `teacher_probs` fails the library's probability checks
                or has a number of classes other than `num_classes`.
        """
        log_p = clipped_log_probabilities(teacher_probs)
        if log_p.shape[1] != self._num_classes:
            raise ValueError(
                f"`teacher_probs` has {log_p.shape[1]} classes but this "
                f"calibration was fitted for {self._num_classes} (shape "
                f"{log_p.shape})."
            )
        if self._method == "matrix":
            return np.exp(log_softmax(log_p @ self._matrix.T + self._bias))
        return np.exp(log_softmax(self._scale * log_p + self._bias))

    def get_config(self):
        """A JSON-able dict: the method, its parameters, the recorded NLLs.

        Only the parameters of the method appear (`temperature` for
        `"temperature"`, `bias` for `"bias"`, `scale` and `bias` for
        `"vector"`, `matrix`, `bias` and `regularization` for `"matrix"`),
        so `from_config(get_config())` rebuilds an equal object.
        """
        config = {"method": self._method, "num_classes": self._num_classes}
        if self._method == "temperature":
            config["temperature"] = self._temperature
        if self._method == "vector":
            config["scale"] = self._scale.tolist()
        if self._method == "matrix":
            config["matrix"] = self._matrix.tolist()
        if self._method != "temperature":
            config["bias"] = self._bias.tolist()
        if self._method == "matrix":
            config["regularization"] = self._regularization
        config["validation_nll_before"] = self._validation_nll_before
        config["validation_nll_after"] = self._validation_nll_after
        return config

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, dict):
            raise ValueError(
                f"A calibration config must be a dict, got {type(config).__name__}."
            )
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        missing = sorted({"method", "num_classes"} - set(config))
        if unknown or missing:
            raise ValueError(
                "A calibration config has the keys "
                f"{list(_CONFIG_KEYS)} (method and num_classes required); "
                f"got unknown {unknown}, missing {missing}."
            )
        return cls(**config)

    def to_json(self, path=None):
        """JSON text of `get_config()` (exact float64 round trip); with
        `path`, also written there atomically."""
        text = json.dumps(self.get_config(), indent=1)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_json(cls, text):
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"Calibration JSON is not valid JSON: {e}")
        return cls.from_config(config)

    def __eq__(self, other):
        if not isinstance(other, TeacherCalibration):
            return NotImplemented
        return self.get_config() == other.get_config()

    def __hash__(self):
        return hash(json.dumps(self.get_config()))

    def __repr__(self):
        def fmt(values):
            return "[" + ", ".join(f"{x:.4g}" for x in values) + "]"

        parts = [f"method={self._method!r}", f"num_classes={self._num_classes}"]
        if self._method == "temperature":
            parts.append(f"temperature={self._temperature:.4g}")
        if self._method == "vector":
            parts.append(f"scale={fmt(self._scale)}")
        if self._method == "matrix":
            parts.append(f"matrix=[{', '.join(fmt(row) for row in self._matrix)}]")
        if self._method != "temperature":
            parts.append(f"bias={fmt(self._bias)}")
        if self._regularization is not None:
            parts.append(f"regularization={self._regularization:.4g}")
        if self._validation_nll_before is not None:
            parts.append(f"validation_nll_before={self._validation_nll_before:.4g}")
        if self._validation_nll_after is not None:
            parts.append(f"validation_nll_after={self._validation_nll_after:.4g}")
        return f"TeacherCalibration({', '.join(parts)})"
