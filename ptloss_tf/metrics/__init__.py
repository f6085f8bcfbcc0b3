"""Evaluation metrics for distillation: calibration, TVD and NLL.

All are `keras.metrics.Metric`s built on `keras.ops` (backend-agnostic, usable
in `model.compile(metrics=...)`, in XLA-compiled steps and under
`tf.distribute` strategies) that compute in float32 whatever the input dtype.
"""

from ptloss_tf.metrics.expected_calibration_error import (
    ExpectedCalibrationError,
)
from ptloss_tf.metrics.negative_log_likelihood import NegativeLogLikelihood
from ptloss_tf.metrics.total_variation_distance import TotalVariationDistance

__all__ = [
    "ExpectedCalibrationError",
    "NegativeLogLikelihood",
    "TotalVariationDistance",
]
