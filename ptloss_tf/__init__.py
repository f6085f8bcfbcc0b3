"""ptloss_tf: PTLoss knowledge distillation for TensorFlow / Keras 3.

The public API::

    PTLoss, KLDivergence, TemperatureKLDivergence, LabelSmoothingKLDivergence,
    FocalDistillationLoss, DecoupledKDLoss, DISTLoss, PTLossDistillation,
    Coefficients, Distiller,
    metrics.*, proxy_teacher, deviation, brier_score, proxy_nll,
    search_coefficients, sample_candidates, random_coefficients, SearchResult,
    make_strategy, calibrate_teacher, TeacherCalibration, probabilities,
    classification_report

(`negative_log_likelihood` is the deprecated name of `proxy_nll`.)

The losses, metrics and the `Distiller` are backend-agnostic Keras 3 (they
also run under `KERAS_BACKEND=jax`); the proxy-teacher solver, the search and
`make_strategy` use TensorFlow. Every name is imported on first use.
"""

import importlib

__version__ = "0.1.0"

# Every public name is imported on first use (PEP 562), so `import
# ptloss_tf.<submodule>` (e.g. a console script's entry point) does not load
# Keras and TensorFlow before the application has configured them.
_SUBMODULES = ("callbacks", "classification_report", "losses", "metrics", "probabilities")
_PUBLIC_API = {
    "Coefficients": "ptloss_tf.coefficients",
    "DISTLoss": "ptloss_tf.losses",
    "DecoupledKDLoss": "ptloss_tf.losses",
    "Distiller": "ptloss_tf.distiller",
    "FocalDistillationLoss": "ptloss_tf.losses",
    "KLDivergence": "ptloss_tf.losses",
    "LabelSmoothingKLDivergence": "ptloss_tf.losses",
    "PTLoss": "ptloss_tf.losses",
    "PTLossDistillation": "ptloss_tf.losses",
    "TemperatureKLDivergence": "ptloss_tf.losses",
    "SearchResult": "ptloss_tf.search_result",
    "TeacherCalibration": "ptloss_tf.calibration",
    "calibrate_teacher": "ptloss_tf.calibration",
    # TensorFlow-only (the solver, the search, the strategies):
    "proxy_teacher": "ptloss_tf.proxy",
    "brier_score": "ptloss_tf.search",
    "deviation": "ptloss_tf.search",
    "negative_log_likelihood": "ptloss_tf.search",  # deprecated: proxy_nll
    "proxy_nll": "ptloss_tf.search",
    "random_coefficients": "ptloss_tf.search",
    "sample_candidates": "ptloss_tf.search",
    "search_coefficients": "ptloss_tf.search",
    "make_strategy": "ptloss_tf.strategy",
}


def __getattr__(name):
    if name in _SUBMODULES:
        value = importlib.import_module(f"ptloss_tf.{name}")
    elif name in _PUBLIC_API:
        value = getattr(importlib.import_module(_PUBLIC_API[name]), name)
    else:
        raise AttributeError(f"module 'ptloss_tf' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES) | set(_PUBLIC_API))
