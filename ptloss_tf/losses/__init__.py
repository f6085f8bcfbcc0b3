"""Distillation losses sharing one call convention (see `losses.base`).

`get(name, **params)` builds one by name (`NAMES`); `parameters(name)` lists
what each name accepts (see `losses.registry`).
"""

from ptloss_tf.losses.decoupled_kd_loss import DecoupledKDLoss
from ptloss_tf.losses.dist_loss import DISTLoss
from ptloss_tf.losses.focal_distillation_loss import FocalDistillationLoss
from ptloss_tf.losses.kl_divergence import KLDivergence
from ptloss_tf.losses.label_smoothing_kl_divergence import (
    LabelSmoothingKLDivergence,
)
from ptloss_tf.losses.ptloss import PTLoss
from ptloss_tf.losses.ptloss_distillation import PTLossDistillation
from ptloss_tf.losses.registry import NAMES
from ptloss_tf.losses.registry import REQUIRED
from ptloss_tf.losses.registry import get
from ptloss_tf.losses.registry import loss_class
from ptloss_tf.losses.registry import parameters
from ptloss_tf.losses.temperature_kl_divergence import TemperatureKLDivergence
