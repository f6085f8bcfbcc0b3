"""`--loss kl_calibrated` / `ptloss_calibrated`: the recalibrated teacher of
a run is the one fitted on its validation split, and the calibrated methods
train towards it."""

import json

import numpy as np
import pytest

import ptloss_tf
from ptloss_tf.training.cli import main
from ptloss_tf.training.methods import make_loss
from tests.helpers import TINY_RUN
from tests.helpers import tiny_synthetic_task

pytestmark = pytest.mark.slow  # end-to-end runs


def tiny_task():
    return tiny_synthetic_task()


def test_default_run_recalibrates_on_the_validation_split(tiny_run):
    """The default comparison is kl, kl_calibrated, ptloss; the saved vector
    scaling is the one fitted on the validation split's teacher outputs."""
    task = tiny_task()
    report = json.loads((tiny_run / "report.json").read_text())
    saved = ptloss_tf.TeacherCalibration.from_config(
        json.loads((tiny_run / "calibration.json").read_text()))
    refit = ptloss_tf.calibrate_teacher(task.validation.teacher_probs,
                                        task.validation.examples.labels, method="vector")
    assert saved.method == "vector" and report["calibration"] == saved.get_config()
    # The run holds float32 teacher probabilities: equal to float32 rounding.
    np.testing.assert_allclose(saved.scale, refit.scale, rtol=1e-6)
    np.testing.assert_allclose(saved.bias, refit.bias, atol=1e-6)
    # The recalibrated teacher's test statistics, computed here.
    calibrated = saved(task.test.teacher_probs)
    labels = task.test.examples.labels
    assert report["calibrated_teacher"]["accuracy"] == pytest.approx(
        np.mean(calibrated.argmax(1) == labels), abs=1e-12)
    kl = np.sum(task.test.p_star * (np.log(task.test.p_star) - np.log(calibrated)), axis=1)
    assert report["calibrated_teacher"]["kl_to_p_star"] == pytest.approx(kl.mean(), rel=1e-4)
    assert saved.validation_nll_after <= saved.validation_nll_before


def test_ptloss_calibrated_searches_on_the_recalibrated_teacher(tmp_path):
    out = tmp_path / "run"
    assert main(TINY_RUN + ["--loss", "ptloss_calibrated", "--calibration", "temperature",
                            "--output-dir", str(out)]) == 0
    task = tiny_task()
    calibration = ptloss_tf.calibrate_teacher(task.validation.teacher_probs,
                                              task.validation.examples.labels,
                                              method="temperature")
    expected = ptloss_tf.search_coefficients(
        calibration(task.validation.teacher_probs).astype(np.float32),
        task.validation.examples.labels, order=2, num_candidates=8, seed=0,
        criterion="brier")
    report = json.loads((out / "report.json").read_text())
    np.testing.assert_allclose(report["coefficients_calibrated"], expected.best.values,
                               rtol=1e-6)
    saved = json.loads((out / "coefficients_calibrated.json").read_text())
    np.testing.assert_allclose(ptloss_tf.Coefficients.from_dict(saved).values,
                               expected.best.values, rtol=1e-6)
    assert report["calibration"]["method"] == "temperature"
    assert report["coefficients"] is None       # plain ptloss did not run
    assert not (out / "coefficients.json").exists()


def test_calibrated_methods_train_with_the_plain_losses():
    assert type(make_loss("kl_calibrated", 2)).__name__ == "KLDivergence"
    coefficients = ptloss_tf.random_coefficients(2, 2, seed=0)
    loss = make_loss("ptloss_calibrated", 2, coefficients=coefficients)
    assert type(loss).__name__ == "PTLoss"
