"""Teacher recalibration: temperature, bias and vector scaling of `p`.

The baseline a user would try before the Proxy Teacher: a map of the teacher's
probabilities fitted on the same labelled validation split, here the classic
post-hoc calibrations (Guo et al. 2017). Every method is one softmax of an
affine function of the clipped log-probabilities,

    q = softmax(scale * max(log p, LOG_PROB_FLOOR) + bias)     (per class)

with `scale`, `bias` in R^K and `bias[0] = 0`:

- `"temperature"`: `scale = 1/T` in every class, `bias = 0`, i.e. `q ∝ p^(1/T)`;
- `"bias"`: `scale = 1`, `bias` free, i.e. `q ∝ p * exp(bias)` (a class-prior /
  label-shift correction);
- `"vector"`: `scale` and `bias` free (vector scaling). For K = 2 the log-odds
  become `scale[1] log p_1 - scale[0] log p_0 + bias[1]`, which contains Platt
  scaling of the teacher's log-odds (`scale[0] = scale[1]`).

The logits are linear in the free parameters (`1/T`; `bias[1:]`;
`scale, bias[1:]`), so the mean validation NLL is convex in them: the fit
(L-BFGS-B with the analytic gradient, float64) finds the global minimum.
`bias[0]` is pinned at 0 because a constant added to every class cancels in
the softmax.

Plain numpy and scipy: no TensorFlow import.
"""

import json
import math

import numpy as np

from ptloss_tf.io_utils import atomic_write_text
from ptloss_tf.probabilities import LOG_FLOOR
from ptloss_tf.validation import check_labels
from ptloss_tf.validation import check_positive
from ptloss_tf.validation import check_probabilities

METHODS = ("temperature", "bias", "vector")

#: `log p` is clipped at this value, `log(1e-12)` (about -27.63): the same
#: probability floor as `ptloss_tf.probabilities.LOG_FLOOR`. Without it an
#: exact zero gives `log 0 = -inf` (and `0 * -inf = NaN` when the fitted scale
#: is 0), and a 1e-30 entry a log of -69 that lets one near-one-hot row
#: dominate the fitted temperature. With it, a teacher probability below 1e-12
#: counts as 1e-12, so exact one-hot rows are as stable as any other.
LOG_PROB_FLOOR = math.log(LOG_FLOOR)

#: The smallest `1/T` the temperature fit may reach (T at most 1e6): the
#: temperature stays positive and finite even where the teacher's ranking is
#: no better than chance (the unconstrained optimum would be `1/T <= 0`).
MIN_INVERSE_TEMPERATURE = 1e-6

_CONFIG_KEYS = (
    "method", "num_classes", "temperature", "scale", "bias",
    "validation_nll_before", "validation_nll_after",
)


def clipped_log_probabilities(teacher_probs):
    """`max(log p, LOG_PROB_FLOOR)` of checked, row-normalised probabilities.

    Rows are divided by their sum first: `check_probabilities` accepts rows
    within 1e-2 of 1 (bfloat16 teachers), and under per-class scales that
    rounding would otherwise leak into the calibrated probabilities.

    Args:
        teacher_probs: `[N, K]` probabilities.

    Returns:
        float64 `[N, K]`, every entry in `[LOG_PROB_FLOOR, 0]`.

    Raises:
        ValueError: as `ptloss_tf.validation.check_probabilities`.

    Example:
    >>> clipped_log_probabilities([[1.0, 0.0]]).round(2).tolist()
    [[0.0, -27.63]]
    """
    p = check_probabilities(teacher_probs, "teacher_probs")
    p = p / p.sum(axis=1, keepdims=True)
    # np.maximum before the log: log(0) would warn (and give -inf) first.
    return np.log(np.maximum(p, LOG_FLOOR))


def _free_parameter_count(method, num_classes):
    return {"temperature": 1, "bias": num_classes - 1,
            "vector": 2 * num_classes - 1}[method]


def _check_method(method):
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"`method` must be one of {list(METHODS)}, got {method!r}."
        )
    return method


def _unpack(theta, method, num_classes):
    """Free parameters -> (`scale` [K], `bias` [K] with `bias[0] = 0`)."""
    k = num_classes
    bias = np.zeros(k)
    if method == "temperature":
        return np.full(k, theta[0]), bias
    if method == "bias":
        bias[1:] = theta
        return np.ones(k), bias
    bias[1:] = theta[k:]
    return np.array(theta[:k], dtype=np.float64), bias


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll_and_gradient(theta, log_p, labels, method):
    """The objective `calibrate_teacher` minimises: the mean NLL of the
    calibrated probabilities and its analytic gradient in `theta`.

    Args:
        theta: the free parameters, float64: `[1/T]` (`"temperature"`),
            `bias[1:]` (`"bias"`), or `scale` then `bias[1:]` (`"vector"`,
            `2K - 1` values).
        log_p: `[N, K]` clipped teacher log-probabilities
            (`clipped_log_probabilities`).
        labels: `[N]` int class indices.
        method: one of `METHODS`.

    Returns:
        `(nll, gradient)`, a float and an array shaped like `theta`.

    Example:
    >>> log_p = np.log([[0.9, 0.1], [0.2, 0.8]])
    >>> nll, grad = nll_and_gradient(np.array([1.0]), log_p, np.array([0, 1]), "temperature")
    >>> round(float(nll), 4), grad.shape   # (-log 0.9 - log 0.8) / 2 at T = 1
    (0.1643, (1,))
    """
    n, k = log_p.shape
    scale, bias = _unpack(theta, method, k)
    log_q = _log_softmax(scale * log_p + bias)
    rows = np.arange(n)
    nll = -log_q[rows, labels].mean()
    # d NLL / d logits = (q - onehot) / N; the logits are linear in theta.
    g = np.exp(log_q)
    g[rows, labels] -= 1.0
    g /= n
    if method == "temperature":
        return nll, np.array([np.sum(g * log_p)])
    if method == "bias":
        return nll, g.sum(axis=0)[1:]
    return nll, np.concatenate([np.sum(g * log_p, axis=0), g.sum(axis=0)[1:]])


def _fit(log_p, labels, method):
    # Imported here so that `import ptloss_tf.calibration` stays light (the
    # console scripts import modules before they parse their arguments).
    import scipy.optimize

    k = log_p.shape[1]
    # Start at the identity map: the fit can only improve on the raw teacher.
    if method == "temperature":
        start = np.ones(1)
        bounds = [(MIN_INVERSE_TEMPERATURE, None)]
    elif method == "bias":
        start = np.zeros(k - 1)
        bounds = None
    else:
        start = np.concatenate([np.ones(k), np.zeros(k - 1)])
        bounds = None
    result = scipy.optimize.minimize(
        nll_and_gradient, start, args=(log_p, labels, method), jac=True,
        method="L-BFGS-B", bounds=bounds,
        # Tight tolerances: the problem is tiny and convex, and callers compare
        # NLLs of calibrations to ~1e-6; the default ftol (2.2e-9 relative)
        # can stop a few 1e-7 short on flat valleys.
        options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 10_000,
                 "maxfun": 20_000},
    )
    theta = np.asarray(result.x, dtype=np.float64)
    nll_after, _ = nll_and_gradient(theta, log_p, labels, method)
    nll_start, _ = nll_and_gradient(start, log_p, labels, method)
    # L-BFGS-B may end with "ABNORMAL_TERMINATION_IN_LNSRCH" once the NLL is
    # flat to machine precision: that is convergence, not failure. A result
    # worse than the start or not finite is not.
    if not (np.all(np.isfinite(theta)) and np.isfinite(nll_after)):
        raise RuntimeError(
            f"Calibration ({method}) did not converge: {result.message}"
        )
    if nll_after > nll_start:
        theta, nll_after = start, nll_start
    return theta, float(nll_after), float(nll_start)


def calibrate_teacher(teacher_probs, labels, method="vector"):
    """Fits a recalibration of a teacher's probabilities on labelled data.

    Minimises the mean NLL `-mean_n log q_n[y_n]` of the calibrated teacher
    `q = softmax(scale * max(log p, LOG_PROB_FLOOR) + bias)` over the
    method's free parameters (module docstring): one `1/T` for
    `"temperature"`, `bias[1:]` for `"bias"`, `scale` and `bias[1:]` for
    `"vector"`. Each problem is convex; L-BFGS-B with the analytic gradient
    finds its minimum, starting from the identity map.

    When the teacher's ranking separates the labels (e.g. a teacher that is
    always right), the NLL has no finite minimiser: the fit stops where the
    gradient vanishes numerically, with large but finite parameters.

    Args:
        teacher_probs: `[N, K]` teacher probabilities on the validation split
            (rows summing to 1 within 1e-2; they are renormalised).
        labels: `[N]` integer labels in `[0, K)`.
        method: `"temperature"`, `"bias"` or `"vector"` (the default).

    Returns:
        A `TeacherCalibration`; calling it on `[M, K]` teacher probabilities
        returns the calibrated probabilities.

    Raises:
        ValueError: an unknown `method`; `teacher_probs` or `labels` that fail
            the library's checks (`ptloss_tf.validation`); not more examples
            than free parameters (2 for temperature, K for bias, 2K for
            vector).

    Example:
    >>> p = [[0.1, 0.9]] * 10
    >>> y = [1] * 7 + [0] * 3          # the teacher says 0.9, the truth is 0.7
    >>> cal = calibrate_teacher(p, y, method="temperature")
    >>> round(cal.temperature, 4)      # 0.9^s / (0.9^s + 0.1^s) = 0.7: s = ln(7/3) / ln 9
    2.5932
    >>> cal([[0.1, 0.9], [0.5, 0.5]]).round(4).tolist()
    [[0.3, 0.7], [0.5, 0.5]]
    >>> round(cal.validation_nll_before, 4), round(cal.validation_nll_after, 4)
    (0.7645, 0.6109)
    >>> cal = calibrate_teacher(p, y, method="bias")
    >>> cal.bias.round(4).tolist()     # 9 e^b / (1 + 9 e^b) = 0.7: b = ln(7/27)
    [0.0, -1.3499]
    """
    method = _check_method(method)
    log_p = clipped_log_probabilities(teacher_probs)
    n, k = log_p.shape
    y = check_labels(labels, n, k, "labels")
    free = _free_parameter_count(method, k)
    if n <= free:
        raise ValueError(
            f"`teacher_probs` has {n} examples; method {method!r} with "
            f"{k} classes fits {free} parameter(s) and needs more than {free} "
            "examples (use a larger validation split)."
        )
    theta, nll_after, nll_before = _fit(log_p, y, method)
    scale, bias = _unpack(theta, method, k)
    if method == "temperature":
        return TeacherCalibration(
            "temperature", k, temperature=1.0 / float(theta[0]),
            validation_nll_before=nll_before, validation_nll_after=nll_after,
        )
    return TeacherCalibration(
        method, k, scale=scale if method == "vector" else None, bias=bias,
        validation_nll_before=nll_before, validation_nll_after=nll_after,
    )


def _read_only_vector(value, name, num_classes):
    try:
        v = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be {num_classes} numbers, got {value!r}.")
    if v.shape != (num_classes,):
        raise ValueError(
            f"`{name}` must have shape [{num_classes}] (num_classes), got "
            f"shape {v.shape}."
        )
    if not np.isfinite(v).all():
        raise ValueError(f"`{name}` contains NaN or inf: {v.tolist()}")
    v.setflags(write=False)
    return v


def _optional_nll(value, name):
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number or None, got {value!r}.")
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return v


class TeacherCalibration:
    """Immutable recalibration map of teacher probabilities.

    `q = softmax(scale * max(log p, LOG_PROB_FLOOR) + bias)` row by row
    (module docstring). Usually made by `calibrate_teacher`; the constructor
    takes exactly the parameters of its method.

    Args:
        method: `"temperature"`, `"bias"` or `"vector"`.
        num_classes: `K >= 2`.
        temperature: `T > 0`; required for, and only for, `"temperature"`.
        scale: `[K]` per-class scales; required for, and only for, `"vector"`.
        bias: `[K]` per-class biases; required for `"bias"` and `"vector"`.
            Shifted so that `bias[0] = 0` (the same map: a constant cancels in
            the softmax).
        validation_nll_before: the raw teacher's mean NLL on the fitting
            split (`calibrate_teacher` records it), or None.
        validation_nll_after: the calibrated teacher's mean NLL there, or None.

    Attributes:
        method, num_classes, temperature (`T`, None unless `"temperature"`),
        scale (read-only float64 `[K]`: `1/T` in every class for
        `"temperature"`, ones for `"bias"`), bias (read-only float64 `[K]`,
        `bias[0] = 0`; zeros for `"temperature"`), validation_nll_before,
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
    """

    __slots__ = (
        "_method", "_num_classes", "_temperature", "_scale", "_bias",
        "_validation_nll_before", "_validation_nll_after",
    )

    def __init__(self, method, num_classes, temperature=None, scale=None,
                 bias=None, validation_nll_before=None,
                 validation_nll_after=None):
        method = _check_method(method)
        if isinstance(num_classes, bool) or not isinstance(
            num_classes, (int, np.integer)
        ) or num_classes < 2:
            raise ValueError(
                f"`num_classes` must be an integer >= 2, got {num_classes!r}."
            )
        k = int(num_classes)
        given = {"temperature": temperature is not None,
                 "scale": scale is not None, "bias": bias is not None}
        needed = {"temperature": {"temperature"}, "bias": {"bias"},
                  "vector": {"scale", "bias"}}[method]
        for name, present in given.items():
            if present and name not in needed:
                raise ValueError(
                    f"`{name}` is not a parameter of method {method!r} (it "
                    f"takes {sorted(needed)})."
                )
            if not present and name in needed:
                raise ValueError(
                    f"`{name}` is required for method {method!r}."
                )
        if method == "temperature":
            temperature = check_positive(temperature, "temperature")
            scale = np.full(k, 1.0 / temperature)
            scale.setflags(write=False)
            bias = np.zeros(k)
            bias.setflags(write=False)
        else:
            bias = _read_only_vector(bias, "bias", k)
            if bias[0] != 0.0:
                bias = bias - bias[0]
                bias.setflags(write=False)
            if scale is None:
                scale = np.ones(k)
                scale.setflags(write=False)
            else:
                scale = _read_only_vector(scale, "scale", k)
        values = {
            "_method": method, "_num_classes": k, "_temperature": temperature,
            "_scale": scale, "_bias": bias,
            "_validation_nll_before": _optional_nll(
                validation_nll_before, "validation_nll_before"),
            "_validation_nll_after": _optional_nll(
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
        """Read-only float64 `[K]`: the multiplier of `log p` in each class."""
        return self._scale

    @property
    def bias(self):
        """Read-only float64 `[K]` added to the scaled `log p`; `bias[0] = 0`."""
        return self._bias

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
        return np.exp(_log_softmax(self._scale * log_p + self._bias))

    def get_config(self):
        """A JSON-able dict: the method, its parameters, the recorded NLLs.

        Only the parameters of the method appear (`temperature` for
        `"temperature"`, `bias` for `"bias"`, `scale` and `bias` for
        `"vector"`), so `from_config(get_config())` rebuilds an equal object.
        """
        config = {"method": self._method, "num_classes": self._num_classes}
        if self._method == "temperature":
            config["temperature"] = self._temperature
        if self._method == "vector":
            config["scale"] = self._scale.tolist()
        if self._method in ("bias", "vector"):
            config["bias"] = self._bias.tolist()
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
        if self._method in ("bias", "vector"):
            parts.append(f"bias={fmt(self._bias)}")
        if self._validation_nll_before is not None:
            parts.append(f"validation_nll_before={self._validation_nll_before:.4g}")
        if self._validation_nll_after is not None:
            parts.append(f"validation_nll_after={self._validation_nll_after:.4g}")
        return f"TeacherCalibration({', '.join(parts)})"
