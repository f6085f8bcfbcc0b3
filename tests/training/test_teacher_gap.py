"""The gap between each student and its teacher: recorded for every result,
summarised for the best-validation student, and a warning with what to try
when it is large. The subprocess tests run `ptloss-distill` as a user does."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ptloss_tf.training.config import DistillConfig
from ptloss_tf.training.teacher_gap import DEFAULT_MAX_GAP
from ptloss_tf.training.teacher_gap import gap_summary
from ptloss_tf.training.teacher_gap import levers
from ptloss_tf.training.teacher_gap import result_gaps
from tests.helpers import TINY_RUN

TEACHER = {"accuracy": 0.812, "validation_accuracy": 0.845}
CALIBRATED = {"accuracy": 0.83, "validation_accuracy": 0.86}


def _cli():
    """The installed console script beside this interpreter."""
    return os.path.join(os.path.dirname(sys.executable), "ptloss-distill")


def test_result_gaps_are_teacher_minus_student_in_points():
    result = {"method": "kl", "accuracy": 0.7, "best_val_accuracy": 0.9}
    gaps = result_gaps(result, TEACHER, CALIBRATED)
    expected = 100 * np.array([0.845 - 0.9, 0.812 - 0.7, 0.86 - 0.9, 0.83 - 0.7])
    got = [gaps["validation_points"], gaps["test_points"],
           gaps["recalibrated_validation_points"], gaps["recalibrated_test_points"]]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert gaps["validation_points"] < 0   # the student is ahead on validation
    assert set(result_gaps(result, TEACHER)) == {"validation_points", "test_points"}
    missing = result_gaps({"method": "kl", "accuracy": float("nan")}, TEACHER)
    assert missing == {"validation_points": None, "test_points": None}


def _results(*val_test):
    results = [{"method": f"m{i}", "best_val_accuracy": v, "accuracy": t}
               for i, (v, t) in enumerate(val_test)]
    for r in results:
        r["teacher_gap"] = result_gaps(r, TEACHER)
    return results


def test_summary_takes_the_best_validation_student_and_warns_above_the_threshold():
    # m1 is best on validation although m0 is best on test: validation chooses.
    results = _results((0.70, 0.80), (0.75, 0.60), (float("nan"), 0.9))
    summary = gap_summary(results, TEACHER, max_gap=5.0, levers=["first", "second"])
    assert summary["best_method"] == "m1"
    assert summary["validation_points"] == pytest.approx(100 * (0.845 - 0.75))
    assert summary["test_points"] == pytest.approx(100 * (0.812 - 0.60))
    warning = summary["warning"]
    assert "\n" not in warning and warning.startswith("Warning: the best student (m1")
    assert "9.5 points under its teacher" in warning and "test: 21.2 points" in warning
    assert warning.index("first") < warning.index("second")
    # Exactly at the threshold is quiet; a larger threshold too.
    at = gap_summary(_results((0.795, 0.8)), TEACHER, max_gap=5.0)
    assert at["validation_points"] == pytest.approx(5.0) and at["warning"] is None
    assert gap_summary(results, TEACHER, max_gap=10.0)["warning"] is None
    assert gap_summary(results, TEACHER, max_gap=float("inf"))["warning"] is None


def test_summary_of_a_student_ahead_of_its_teacher_and_of_no_results():
    summary = gap_summary(_results((0.9, 0.9)), TEACHER)
    assert summary["validation_points"] < 0 and summary["warning"] is None
    assert summary["max_gap"] == DEFAULT_MAX_GAP
    empty = gap_summary([], TEACHER)
    assert empty["best_method"] is None and empty["warning"] is None


def test_levers_are_worded_for_the_run_and_in_order():
    scratch = levers(DistillConfig(student_layers=2, epochs=3))
    assert len(scratch) == 3 and "--student-layers above 2" in scratch[0]
    assert "--epochs above 3" in scratch[1] and "transfer rows" in scratch[2]
    preset = levers(DistillConfig(task="file", preset="/models/minilm",
                                  init_from_layers=2, max_train_examples=1500))
    assert "--init-from-layers above 2" in preset[0] and "/models/minilm" in preset[0]
    assert "--max-train-examples above 1500" in preset[2]


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_a_bad_threshold_is_a_one_line_error(tmp_path, capsys, value):
    from ptloss_tf.training.cli import main

    assert main(TINY_RUN + ["--max-teacher-gap", value, "--output-dir",
                            str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--max-teacher-gap must be at least 0" in err
    assert not (tmp_path / "out").exists()


def _run(args, tmp_path):
    out = tmp_path / "out"
    completed = subprocess.run([_cli(), *args, "--output-dir", str(out)],
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads((out / "report.json").read_text()), completed.stdout


def _assert_gaps_agree_with_the_accuracies(report):
    teacher = report["teacher"]
    for r in report["results"]:
        gap = r["teacher_gap"]
        assert gap["validation_points"] == pytest.approx(
            100 * (teacher["validation_accuracy"] - r["best_val_accuracy"]), abs=1e-6)
        assert gap["test_points"] == pytest.approx(
            100 * (teacher["accuracy"] - r["accuracy"]), abs=1e-6)
        if report.get("calibrated_teacher"):
            assert gap["recalibrated_test_points"] == pytest.approx(
                100 * (report["calibrated_teacher"]["accuracy"] - r["accuracy"]), abs=1e-6)
    best = max(report["results"], key=lambda r: r["best_val_accuracy"])
    summary = report["teacher_gap"]
    assert summary["best_method"] == best["method"]
    assert summary["validation_points"] == best["teacher_gap"]["validation_points"]
    assert summary["test_points"] == best["teacher_gap"]["test_points"]


@pytest.mark.slow
def test_a_weak_student_gets_the_warning_and_consistent_numbers(tmp_path):
    # An unbiased teacher (near the Bayes accuracy) and a student that barely
    # trains: one epoch at a learning rate of 1e-7 leaves it near chance.
    args = TINY_RUN + ["--prior-shift", "0", "--overconfidence", "1",
                       "--learning-rate", "1e-7", "--loss", "kl", "ptloss"]
    report, stdout = _run(args, tmp_path)
    _assert_gaps_agree_with_the_accuracies(report)
    summary = report["teacher_gap"]
    assert summary["validation_points"] > DEFAULT_MAX_GAP
    assert summary["warning"].startswith("Warning: the best student")
    assert "--student-layers above 1" in summary["warning"]
    # The run ends with the warning, one line, and exits 0.
    assert stdout.rstrip().splitlines()[-1] == summary["warning"]
    header = next(line for line in stdout.splitlines() if line.startswith("method"))
    assert "gap_val_pts" in header and "gap_test_pts" in header
    assert (tmp_path / "out" / "report.png").stat().st_size > 20_000


@pytest.mark.slow
def test_the_embedded_default_gets_no_warning(tmp_path):
    report, stdout = _run(["--verbose", "0"], tmp_path)
    _assert_gaps_agree_with_the_accuracies(report)
    assert report["teacher_gap"]["warning"] is None
    assert report["teacher_gap"]["validation_points"] <= DEFAULT_MAX_GAP
    assert "Warning: the best student" not in stdout
