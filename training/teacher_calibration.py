"""The calibration stage: the teacher recalibrated on the labelled validation
split (`ptloss_tf.calibrate_teacher`), for the methods that distil from it.

`kl_calibrated` is the baseline a user would try before PTLoss: fit a
temperature / class bias / vector / matrix scaling of the teacher's
probabilities on the validation split (the same rows the Proxy Teacher search
uses; matrix scaling also cross-validates its penalty's weight on them), then
plain KL to the recalibrated teacher. `ptloss_calibrated` runs the Proxy
Teacher search and PTLoss on the recalibrated teacher (does the perturbation
add anything once the target is calibrated?).

Writes `calibration.json` (the fitted map and its validation NLL before and
after) beside `coefficients.json`.
"""

import os

import numpy as np

from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.training.methods import CALIBRATED
from ptloss_tf.training.splits import Splits

CALIBRATION_FILE = "calibration.json"


def choose_calibration(config, splits, output_dir, log=print):
    """`(calibration, calibrated_splits)`: the `TeacherCalibration` fitted on
    the validation split and the `Splits` whose teacher probabilities are
    recalibrated; `(None, None)` when no method of the run needs them."""
    if not set(CALIBRATED) & set(config.loss):
        return None, None
    import ptloss_tf

    calibration = ptloss_tf.calibrate_teacher(
        splits.teacher_probs["validation"], splits.examples["validation"].labels,
        method=config.calibration)
    atomic_write_json(os.path.join(output_dir, CALIBRATION_FILE), calibration.get_config())
    log(f"Teacher recalibration ({config.calibration} scaling) on "
        f"{len(splits.examples['validation'])} validation examples: validation NLL "
        f"{calibration.validation_nll_before:.4f} -> {calibration.validation_nll_after:.4f}"
        f"\n  {calibration!r}")
    return calibration, recalibrated(splits, calibration)


def recalibrated(splits, calibration):
    """`splits` with every split's teacher probabilities mapped by
    `calibration` (float32, as the originals)."""
    return Splits(
        splits.examples,
        {split: np.asarray(calibration(probs), np.float32)
         for split, probs in splits.teacher_probs.items()},
        p_star=splits.p_star, vocabulary=splits.vocabulary,
        task_config=splits.task_config, notes=splits.notes,
    )
