"""ptloss_tf: PTLoss knowledge distillation for TensorFlow / Keras 3.

The public API::

    PTLoss, Coefficients, proxy_teacher, deviation, search_coefficients,
    random_coefficients, SearchResult, losses.*, metrics.*
"""

from ptloss_tf import losses
from ptloss_tf import metrics
from ptloss_tf.coefficients import Coefficients
from ptloss_tf.losses import FocalDistillationLoss
from ptloss_tf.losses import KLDivergence
from ptloss_tf.losses import LabelSmoothingKLDivergence
from ptloss_tf.losses import PTLoss
from ptloss_tf.losses import PTLossDistillation
from ptloss_tf.losses import TemperatureKLDivergence
from ptloss_tf.proxy import proxy_teacher
from ptloss_tf.search import brier_score
from ptloss_tf.search import deviation
from ptloss_tf.search import negative_log_likelihood
from ptloss_tf.search import random_coefficients
from ptloss_tf.search import sample_candidates
from ptloss_tf.search import search_coefficients
from ptloss_tf.search_result import SearchResult

__version__ = "0.1.0"
from ptloss_tf.distiller import Distiller  # noqa: E402
