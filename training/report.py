"""The report stage: the teacher's statistics, the result table and the
export samples (the figures: `report_figure`)."""

import os

import numpy as np

from ptloss_tf.classification_report import classification_metrics
from ptloss_tf.classification_report import reliability_bins
from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.probabilities import teacher_statistics
from ptloss_tf.training.splits import suffix

SAMPLES = "samples.json"
SAMPLE_COUNT = 8


def teacher_report(splits):
    """The teacher's test accuracy, TVD to the labels and validation accuracy
    (`accuracy_mismatched` too when MNLI's mismatched set is loaded; the
    distances to p* and the Bayes accuracy for the synthetic task)."""
    def accuracy(split):
        return float(np.mean(splits.teacher_probs[split].argmax(1)
                             == splits.examples[split].labels))

    test = splits.examples["test"]
    report = teacher_statistics(splits.teacher_probs["test"], np.asarray(test.labels),
                                p_star=splits.p_star.get("test"))
    hard = classification_metrics(test.labels, splits.teacher_probs["test"].argmax(1),
                                  test.class_names)
    hard.pop("accuracy")
    report.update(hard)
    report["reliability"] = reliability_bins(splits.teacher_probs["test"], test.labels)
    report.update(_nll_and_ece(splits.teacher_probs["test"], test.labels))
    report["validation_accuracy"] = accuracy("validation")
    for split in splits.extra_test_splits:
        report[f"accuracy{suffix(split)}"] = accuracy(split)
    return report


def _nll_and_ece(probs, labels):
    """The teacher's NLL and ECE with the metrics the students are scored
    with (`ptloss_tf.metrics`, default bins), on its labelled rows."""
    import ptloss_tf

    labelled = np.asarray(labels) >= 0
    scores = {}
    for key, metric in (("nll", ptloss_tf.metrics.NegativeLogLikelihood()),
                        ("ece", ptloss_tf.metrics.ExpectedCalibrationError())):
        metric.update_state(np.asarray(labels)[labelled], np.asarray(probs)[labelled])
        scores[key] = float(metric.result())
    return scores


#: The results table's gap columns: teacher minus student, accuracy points
#: (`teacher_gap.result_gaps`).
GAP_COLUMNS = {"gap_val_pts": "validation_points", "gap_test_pts": "test_points"}


def print_table(results, teacher, log=print, calibrated_teacher=None):
    """Logs one row per method (test metrics, then `*_mismatched` ones where
    present, then the gap to the teacher in accuracy points on validation
    and test where the results carry `teacher_gap`), rows for the teacher,
    the recalibrated teacher and (synthetic task) the Bayes classifier, then
    each one's predictions per class (a student that predicts a single class
    is flagged). `-`: not defined."""
    columns = ["accuracy", "macro_f1"]
    if any("mcc" in r for r in results):
        columns.append("mcc")
    columns += ["nll", "ece", "teacher_agreement"]
    for extra in ("kl_to_p_star", "accuracy_mismatched", "nll_mismatched", "ece_mismatched"):
        if any(extra in r for r in results):
            columns.append(extra)
    if any("teacher_gap" in r for r in results):
        columns += list(GAP_COLUMNS)
    references = [{**teacher, "method": "teacher"}]
    if calibrated_teacher is not None:
        references.append({**calibrated_teacher, "method": "recalibrated teacher"})
    if "bayes_accuracy" in teacher:
        references.append({"method": "Bayes (p*)", "accuracy": teacher["bayes_accuracy"],
                           "kl_to_p_star": 0.0})
    widths = [max(10, len(c) + 2) for c in columns]
    name = max([16] + [len(r["method"]) + 2 for r in results + references])

    def row(r):
        cells = []
        for c, w in zip(columns, widths):
            if c in GAP_COLUMNS:
                value, digits = (r.get("teacher_gap") or {}).get(GAP_COLUMNS[c]), 2
            else:
                value, digits = r.get(c), 4
            cells.append(f"{value:{w}.{digits}f}" if isinstance(value, (int, float))
                         and np.isfinite(value) else f"{'-':>{w}}")
        return f"{r['method']:<{name}}" + "".join(cells)

    header = f"{'method':<{name}}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    log("\n" + header + "\n" + "-" * len(header))
    for r in results:
        log(row(r))
    log("-" * len(header))
    for r in references:
        log(row(r))
    if "accuracy_mismatched" in teacher:
        log(f"teacher: mismatched accuracy {teacher['accuracy_mismatched']:.4f}")
    if "label_counts" in teacher:
        log("test labels per class: " + _counts(teacher["label_counts"]))
    for label, r in [(r["method"], r) for r in results] + [("teacher", teacher)]:
        if "prediction_counts" in r:
            flag = ("   <- predicts a single class" if r.get("single_class_prediction")
                    else "")
            log(f"  {label} predictions: {_counts(r['prediction_counts'])}{flag}")


def _counts(counts):
    return ", ".join(f"{name} {n}" for name, n in counts.items())


def single_class_notes(results):
    """`report.json` notes for students that predict one class for every
    test example."""
    return [f"the {r['method']} student predicts one class for every test example "
            f"({_counts(r['prediction_counts'])}): its accuracy is the class prior's"
            for r in results if r.get("single_class_prediction")]


def write_samples(output_dir, examples, count=SAMPLE_COUNT):
    """`samples.json`: the first `count` test examples, as export inputs."""
    n = min(count, len(examples))
    atomic_write_json(os.path.join(output_dir, SAMPLES), {
        "texts": [[str(t[i]) for t in examples.texts] for i in range(n)],
        "labels": [int(x) for x in examples.labels[:n]],
        "class_names": list(examples.class_names),
    })
