"""ptloss_tf: PTLoss knowledge distillation for TensorFlow / Keras 3."""
from ptloss_tf.coefficients import Coefficients
from ptloss_tf.losses.ptloss import PTLoss
from ptloss_tf.proxy import proxy_teacher

__version__ = "0.1.0"
