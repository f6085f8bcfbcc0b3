"""ptloss_tf: PTLoss knowledge distillation for TensorFlow / Keras 3.

The public API::

    PTLoss, KLDivergence, TemperatureKLDivergence, LabelSmoothingKLDivergence,
    FocalDistillationLoss, PTLossDistillation, Coefficients, Distiller,
    metrics.*, proxy_teacher, deviation, brier_score, proxy_nll,
    search_coefficients, sample_candidates, random_coefficients, SearchResult,
    make_strategy, probabilities

(`negative_log_likelihood` is the deprecated name of `proxy_nll`.)

The losses, metrics and the `Distiller` are backend-agnostic Keras 3 (they
also run under `KERAS_BACKEND=jax`); the proxy-teacher solver, the search and
`make_strategy` use TensorFlow and are imported on first use.
"""

import importlib

from ptloss_tf import callbacks
from ptloss_tf import losses
from ptloss_tf import metrics
from ptloss_tf import probabilities
from ptloss_tf.coefficients import Coefficients
from ptloss_tf.distiller import Distiller
from ptloss_tf.losses import FocalDistillationLoss
from ptloss_tf.losses import KLDivergence
from ptloss_tf.losses import LabelSmoothingKLDivergence
from ptloss_tf.losses import PTLoss
from ptloss_tf.losses import PTLossDistillation
from ptloss_tf.losses import TemperatureKLDivergence
from ptloss_tf.search_result import SearchResult

__version__ = "0.1.0"

_TENSORFLOW_API = {
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
    if name in _TENSORFLOW_API:
        value = getattr(importlib.import_module(_TENSORFLOW_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ptloss_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_TENSORFLOW_API))
