"""Evaluation metrics for distillation: calibration, TVD and NLL.

All are `keras.metrics.Metric`s built on `keras.ops` (backend-agnostic, usable
in `model.compile(metrics=...)`, in XLA-compiled steps and under
`tf.distribute` strategies) that compute in float32 whatever the input dtype.

Usage with `compile()` (each is updated with `(y_true, y_pred)` of a batch):

```python
model.compile(
    optimizer="adam",
    loss="sparse_categorical_crossentropy",
    metrics=[
        ptloss_tf.metrics.ExpectedCalibrationError(num_bins=15),
        ptloss_tf.metrics.NegativeLogLikelihood(),
        ptloss_tf.metrics.TotalVariationDistance(),
    ],
)
```
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
