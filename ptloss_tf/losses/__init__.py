"""Distillation losses sharing one call convention (see `losses.base`)."""

from ptloss_tf.losses.focal_distillation_loss import FocalDistillationLoss
from ptloss_tf.losses.kl_divergence import KLDivergence
from ptloss_tf.losses.label_smoothing_kl_divergence import (
    LabelSmoothingKLDivergence,
)
from ptloss_tf.losses.ptloss import PTLoss
from ptloss_tf.losses.ptloss_distillation import PTLossDistillation
from ptloss_tf.losses.temperature_kl_divergence import TemperatureKLDivergence
