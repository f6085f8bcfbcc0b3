"""`calibrate_teacher`: the fits of every method (temperature, bias and
vector scaling here; matrix scaling in `ptloss_tf.calibration.matrix`).

The per-class methods are one softmax of an affine function of the clipped
log-probabilities, `q = softmax(scale * l + bias)` with `bias[0] = 0`:

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
"""

import numpy as np

from ptloss_tf.calibration import matrix as matrix_scaling
from ptloss_tf.calibration.common import check_method
from ptloss_tf.calibration.common import clipped_log_probabilities
from ptloss_tf.calibration.common import log_softmax
from ptloss_tf.calibration.common import minimize_convex
from ptloss_tf.calibration.teacher_calibration import TeacherCalibration
from ptloss_tf.validation import check_labels

#: The smallest `1/T` the temperature fit may reach (T at most 1e6): the
#: temperature stays positive and finite even where the teacher's ranking is
#: no better than chance (the unconstrained optimum would be `1/T <= 0`).
MIN_INVERSE_TEMPERATURE = 1e-6


def _free_parameter_count(method, num_classes):
    # Matrix: K^2 entries of W and K of b, less the K + 1 gauge directions.
    return {"temperature": 1, "bias": num_classes - 1,
            "vector": 2 * num_classes - 1,
            "matrix": num_classes * num_classes - 1}[method]


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


def nll_and_gradient(theta, log_p, labels, method):
    """The objective `calibrate_teacher` minimises for the per-class methods:
    the mean NLL of the calibrated probabilities and its analytic gradient.

    Args:
        theta: the free parameters, float64: `[1/T]` (`"temperature"`),
            `bias[1:]` (`"bias"`), or `scale` then `bias[1:]` (`"vector"`,
            `2K - 1` values).
        log_p: `[N, K]` clipped teacher log-probabilities
            (`clipped_log_probabilities`).
        labels: `[N]` int class indices.
        method: `"temperature"`, `"bias"` or `"vector"` (matrix scaling:
            `ptloss_tf.calibration.matrix.matrix_objective`).

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
    log_q = log_softmax(scale * log_p + bias)
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
    return minimize_convex(nll_and_gradient, start, (log_p, labels, method),
                           method, bounds)


def _fit_matrix(log_p, y, regularization, nll_before):
    if regularization is None:
        if len(y) < 2 * matrix_scaling.CV_FOLDS:
            raise ValueError(
                f"`teacher_probs` has {len(y)} examples; choosing the matrix "
                f"regularisation by {matrix_scaling.CV_FOLDS}-fold cross-"
                f"validation needs at least {2 * matrix_scaling.CV_FOLDS} "
                "(pass `regularization`)."
            )
        regularization, _ = matrix_scaling.choose_regularization(log_p, y)
    w, b = matrix_scaling.fit_matrix(log_p, y, regularization)
    nll_after = matrix_scaling.matrix_nll(w, b, log_p, y)
    return TeacherCalibration(
        "matrix", log_p.shape[1], matrix=w, bias=b,
        regularization=regularization, validation_nll_before=nll_before,
        validation_nll_after=nll_after,
    )


def calibrate_teacher(teacher_probs, labels, method="vector",
                      regularization=None):
    """Fits a recalibration of a teacher's probabilities on labelled data.

    Minimises the mean NLL `-mean_n log q_n[y_n]` of the calibrated teacher
    `q = softmax(W max(log p, LOG_PROB_FLOOR) + b)` over the method's free
    parameters: one `1/T` for `"temperature"` (`W = I/T`, `b = 0`), `b[1:]`
    for `"bias"` (`W = I`), a diagonal `W` and `b[1:]` for `"vector"`, a full
    `W` and `b` for `"matrix"` (plus the ODIR penalty,
    `ptloss_tf.calibration.matrix`). Each problem is convex; L-BFGS-B with
    the analytic gradient (matrix: trust-region Newton-CG) finds its
    minimum, starting from the identity map.

    For `"matrix"` with `regularization=None` the ODIR weight is chosen from
    `REGULARIZATION_GRID` = (0, 1e-4, 1e-3, ..., 10, 100) by 5-fold
    cross-validation on these rows (folds stratified by label, shuffled with
    seed 0: deterministic), lowest mean held-out NLL, ties to the larger
    weight; the map is then refitted on all rows with that weight.

    When the teacher's ranking separates the labels (e.g. a teacher that is
    always right), the NLL has no finite minimiser: the fit stops where the
    gradient vanishes numerically, with large but finite parameters.

    Args:
        teacher_probs: `[N, K]` teacher probabilities on the validation split
            (rows summing to 1 within 1e-2; they are renormalised).
        labels: `[N]` integer labels in `[0, K)`.
        method: `"temperature"`, `"bias"`, `"vector"` (the default) or
            `"matrix"`.
        regularization: `"matrix"` only: the ODIR weight `lambda >= 0` (0 is
            plain matrix scaling), or None to cross-validate it.

    Returns:
        A `TeacherCalibration`; calling it on `[M, K]` teacher probabilities
        returns the calibrated probabilities.

    Raises:
        ValueError: an unknown `method`; `teacher_probs` or `labels` that fail
            the library's checks (`ptloss_tf.validation`); not more examples
            than free parameters (2 for temperature, K for bias, 2K for
            vector, K^2 for matrix; at least 10 to cross-validate);
            `regularization` negative, not finite, or given for a method
            other than `"matrix"`.

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
    >>> cal = calibrate_teacher(p, y, method="matrix", regularization=0.0)
    >>> cal([[0.1, 0.9]]).round(4).tolist()   # one teacher row: the label frequencies
    [[0.3, 0.7]]
    """
    method = check_method(method)
    if regularization is not None:
        if method != "matrix":
            raise ValueError(
                "`regularization` applies only to method 'matrix', got "
                f"method {method!r}."
            )
        regularization = matrix_scaling.check_regularization(regularization)
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
    nll_before = float(-log_softmax(log_p)[np.arange(n), y].mean())
    if method == "matrix":
        return _fit_matrix(log_p, y, regularization, nll_before)
    theta, nll_after = _fit(log_p, y, method)
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
