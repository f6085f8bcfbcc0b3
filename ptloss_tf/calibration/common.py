"""What every recalibration shares: the method names, the clipped
log-probabilities they are affine in, and the minimiser of a convex NLL.

Plain numpy (scipy on first fit): no TensorFlow import.
"""

import math

import numpy as np

from ptloss_tf.probabilities import LOG_FLOOR
from ptloss_tf.validation import check_probabilities

METHODS = ("temperature", "bias", "vector", "matrix")

#: `log p` is clipped at this value, `log(1e-12)` (about -27.63): the same
#: probability floor as `ptloss_tf.probabilities.LOG_FLOOR`. Without it an
#: exact zero gives `log 0 = -inf` (and `0 * -inf = NaN` when the fitted scale
#: is 0), and a 1e-30 entry a log of -69 that lets one near-one-hot row
#: dominate the fitted temperature. With it, a teacher probability below 1e-12
#: counts as 1e-12, so exact one-hot rows are as stable as any other.
LOG_PROB_FLOOR = math.log(LOG_FLOOR)


def check_method(method):
    """`method` if it is one of `METHODS`, else a one-line ValueError."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"`method` must be one of {list(METHODS)}, got {method!r}."
        )
    return method


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


def log_softmax(z):
    """Row-wise `log softmax` of float64 `[N, K]` logits (max-shifted)."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def minimize_convex(objective, start, args, method, bounds=None, hessp=None):
    """Minimises a convex `objective(theta, *args) -> (value, gradient)` from
    `start`; returns `(theta, value)`, or `(start, value at start)` when the
    fit ended worse than where it began.

    L-BFGS-B (with `bounds`) for the per-class methods; with
    `hessp(theta, v, *args)`, the Hessian-vector product, a trust-region
    Newton-CG ("trust-ncg", gradient norm below 1e-10) instead: matrix scaling
    has up to K^2 + K parameters, where L-BFGS-B needs hundreds of iterations
    (and with scipy >= 1.15 each one calls a threaded BLAS: 5 ms per step on
    a busy machine) and stops short on ill-conditioned penalties; Newton
    needs about ten, in numpy only.

    Raises:
        RuntimeError: the fit ended at a non-finite point or value.
    """
    # Imported here so that `import ptloss_tf.calibration` stays light (the
    # console scripts import modules before they parse their arguments).
    import scipy.optimize

    if hessp is not None:
        result = scipy.optimize.minimize(
            objective, start, args=args, jac=True, hessp=hessp,
            method="trust-ncg", options={"gtol": 1e-10, "maxiter": 1000},
        )
    else:
        result = scipy.optimize.minimize(
            objective, start, args=args, jac=True, method="L-BFGS-B",
            bounds=bounds,
            # Tight tolerances: the problems are small and convex, and callers
            # compare NLLs of calibrations to ~1e-6; the default ftol (2.2e-9
            # relative) can stop a few 1e-7 short on flat valleys.
            options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 10_000,
                     "maxfun": 20_000},
        )
    theta = np.asarray(result.x, dtype=np.float64)
    value, _ = objective(theta, *args)
    value_start, _ = objective(start, *args)
    # Either method may stop with a warning ("ABNORMAL_TERMINATION_IN_LNSRCH",
    # "A bad approximation caused failure to predict improvement") once the
    # objective is flat to machine precision: that is convergence, not
    # failure. A result worse than the start or not finite is not.
    if not (np.all(np.isfinite(theta)) and np.isfinite(value)):
        raise RuntimeError(
            f"Calibration ({method}) did not converge: {result.message}"
        )
    if value > value_start:
        return np.array(start, dtype=np.float64), float(value_start)
    return theta, float(value)
