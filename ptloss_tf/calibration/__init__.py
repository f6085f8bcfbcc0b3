"""Teacher recalibration: temperature, bias, vector and matrix scaling of `p`.

The baseline a user would try before the Proxy Teacher: a map of the teacher's
probabilities fitted on the same labelled validation split, here the classic
post-hoc calibrations (Guo et al. 2017; Kull et al. 2019). Every method is one
softmax of an affine function of the clipped log-probabilities,

    q = softmax(W max(log p, LOG_PROB_FLOOR) + b)

- `"temperature"`: `W = I / T`, `b = 0`, i.e. `q ∝ p^(1/T)`;
- `"bias"`: `W = I`, `b` free (a class-prior / label-shift correction);
- `"vector"`: `W` diagonal, `b` free (vector scaling; Platt scaling for K = 2);
- `"matrix"`: `W` full, `b` free, with the ODIR penalty towards a diagonal
  `W` and `b = 0`, its weight given or cross-validated (`matrix`).

The logits are linear in the parameters, so each fit is convex (float64;
L-BFGS-B with the analytic gradient, trust-region Newton-CG for matrix).
Modules: `fit` (`calibrate_teacher`), `matrix` (matrix scaling, the penalty,
the cross-validation), `teacher_calibration` (`TeacherCalibration` and its
JSON), `common`.

Plain numpy and scipy: no TensorFlow import.
"""

from ptloss_tf.calibration.common import LOG_PROB_FLOOR
from ptloss_tf.calibration.common import METHODS
from ptloss_tf.calibration.common import clipped_log_probabilities
from ptloss_tf.calibration.fit import MIN_INVERSE_TEMPERATURE
from ptloss_tf.calibration.fit import calibrate_teacher
from ptloss_tf.calibration.fit import nll_and_gradient
from ptloss_tf.calibration.matrix import CV_FOLDS
from ptloss_tf.calibration.matrix import CV_SEED
from ptloss_tf.calibration.matrix import REGULARIZATION_GRID
from ptloss_tf.calibration.teacher_calibration import TeacherCalibration

__all__ = [
    "CV_FOLDS", "CV_SEED", "LOG_PROB_FLOOR", "METHODS",
    "MIN_INVERSE_TEMPERATURE", "REGULARIZATION_GRID", "TeacherCalibration",
    "calibrate_teacher", "clipped_log_probabilities", "nll_and_gradient",
]
