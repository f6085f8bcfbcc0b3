"""How far each student is under its teacher: the first number a user of
distillation reads, and the warning when it is large.

A comparison between losses says little while every student is far below
the teacher it learns from: the student's capacity or training budget, not
the loss, then decides the result. The gap is the teacher's accuracy minus
the student's, in accuracy points (negative: the student is ahead), on the
validation split (where the run chooses its best student) and on the test
split. The student's validation accuracy is `best_val_accuracy`, that of the
weights the run keeps (the checkpoint monitors validation accuracy).

Example:
>>> teacher = {"accuracy": 0.83, "validation_accuracy": 0.85}
>>> results = [{"method": "kl", "accuracy": 0.62, "best_val_accuracy": 0.64},
...            {"method": "ptloss", "accuracy": 0.63, "best_val_accuracy": 0.66}]
>>> for r in results:
...     r["teacher_gap"] = result_gaps(r, teacher)
>>> results[1]["teacher_gap"]
{'validation_points': 19.0, 'test_points': 20.0}
>>> summary = gap_summary(results, teacher, max_gap=5.0,
...                       levers=["a deeper student"])
>>> summary["best_method"], summary["validation_points"]
('ptloss', 19.0)
>>> print(summary["warning"])  # doctest: +NORMALIZE_WHITESPACE
Warning: the best student (ptloss, validation accuracy 0.6600) is 19.0 points under its
teacher (0.8500) on validation (test: 20.0 points), more than --max-teacher-gap 5: the
student, not the loss, limits these results and a comparison between losses says little.
To close the gap try, in this order: a deeper student.
"""

import math

#: The default of `--max-teacher-gap`, in accuracy points.
DEFAULT_MAX_GAP = 5.0


def _points(teacher_accuracy, student_accuracy):
    """Teacher minus student in accuracy points (rounded to 1e-6 points),
    or None when either is missing or not finite."""
    values = (teacher_accuracy, student_accuracy)
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return round(100.0 * (teacher_accuracy - student_accuracy), 6)


def result_gaps(result, teacher, calibrated_teacher=None):
    """One result's gaps to `teacher` (and to the recalibrated teacher where
    the run has one), in accuracy points.

    Args:
        result: a method's result (`accuracy` on test, `best_val_accuracy`).
        teacher: the teacher's report (`accuracy` on test,
            `validation_accuracy`).
        calibrated_teacher: the recalibrated teacher's report, or None.

    Returns:
        `{"validation_points", "test_points"}`, plus
        `"recalibrated_validation_points"`, `"recalibrated_test_points"` with
        a recalibrated teacher; None where an accuracy is missing.
    """
    student_validation = result.get("best_val_accuracy")
    gaps = {"validation_points": _points(teacher.get("validation_accuracy"),
                                         student_validation),
            "test_points": _points(teacher.get("accuracy"), result.get("accuracy"))}
    if calibrated_teacher is not None:
        gaps["recalibrated_validation_points"] = _points(
            calibrated_teacher.get("validation_accuracy"), student_validation)
        gaps["recalibrated_test_points"] = _points(calibrated_teacher.get("accuracy"),
                                                   result.get("accuracy"))
    return gaps


def levers(config):
    """What usually closes a large gap, in the order to try it, worded for
    the run's own options (`DistillConfig`)."""
    if config.preset:
        layers = config.init_from_layers
        deeper = (f"a deeper student (--init-from-layers above {layers}, up to the "
                  f"depth of {config.preset})" if layers else
                  "a deeper student (more --init-from-layers of the preset)")
    else:
        deeper = (f"a deeper or pretrained student (--student-layers above "
                  f"{config.student_layers}, or --preset with --init-from-layers 4)")
    epochs = f"more epochs (--epochs above {config.epochs})"
    if config.max_train_examples:
        rows = (f"more transfer rows (--max-train-examples above "
                f"{config.max_train_examples}, or none)")
    else:
        rows = "more transfer rows (teacher outputs on more unlabelled text)"
    return [deeper, epochs, rows]


def gap_summary(results, teacher, max_gap=DEFAULT_MAX_GAP, levers=()):
    """`report.json`'s `teacher_gap`: the best-validation student's gaps and
    the warning when its validation gap exceeds `max_gap` points.

    Args:
        results: the results, each with `teacher_gap` (`result_gaps`).
        teacher: the teacher's report.
        max_gap: the largest validation gap, in points, that passes quietly.
        levers: what to try, in order (`levers(config)`), named in the
            warning.

    Returns:
        `{"best_method", "validation_points", "test_points", "max_gap",
        "warning"}`; `warning` is None unless the gap exceeds `max_gap`.
    """
    ranked = [r for r in results if r.get("best_val_accuracy") is not None
              and math.isfinite(r["best_val_accuracy"])]
    if not ranked:
        return {"best_method": None, "validation_points": None, "test_points": None,
                "max_gap": max_gap, "warning": None}
    # The same choice as the run's last lines: the best validation accuracy.
    best = max(ranked, key=lambda r: r["best_val_accuracy"])
    gaps = best.get("teacher_gap") or result_gaps(best, teacher)
    validation, test = gaps["validation_points"], gaps["test_points"]
    warning = None
    if validation is not None and validation > max_gap:
        on_test = f"{test:.1f} points" if test is not None else "not measured"
        warning = (
            f"Warning: the best student ({best['method']}, validation accuracy "
            f"{best['best_val_accuracy']:.4f}) is {validation:.1f} points under its "
            f"teacher ({teacher['validation_accuracy']:.4f}) on validation (test: "
            f"{on_test}), more than --max-teacher-gap {max_gap:g}: the student, not the "
            "loss, limits these results and a comparison between losses says little."
            + (f" To close the gap try, in this order: {'; '.join(levers)}." if levers
               else ""))
    return {"best_method": best["method"], "validation_points": validation,
            "test_points": test, "max_gap": max_gap, "warning": warning}
