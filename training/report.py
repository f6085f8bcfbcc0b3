"""The report stage: the teacher's statistics, the result table, the
export samples and the learning-curve plot."""

import json
import os

import numpy as np

from ptloss_tf.classification_report import classification_metrics
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
    report["validation_accuracy"] = accuracy("validation")
    for split in splits.extra_test_splits:
        report[f"accuracy{suffix(split)}"] = accuracy(split)
    return report


def print_table(results, teacher, log=print, calibrated_teacher=None):
    """Logs one row per method (test metrics, then `*_mismatched` ones where
    present), a line for the teacher, and each one's predictions per class
    (a student that predicts a single class is flagged)."""
    columns = ["accuracy", "macro_f1"]
    if any("mcc" in r for r in results):
        columns.append("mcc")
    columns += ["nll", "ece", "teacher_agreement"]
    for extra in ("kl_to_p_star", "accuracy_mismatched", "nll_mismatched", "ece_mismatched"):
        if any(extra in r for r in results):
            columns.append(extra)
    widths = [max(10, len(c) + 2) for c in columns]
    name = max([16] + [len(r["method"]) + 2 for r in results])
    header = f"{'method':<{name}}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    log("\n" + header + "\n" + "-" * len(header))
    for r in results:
        log(f"{r['method']:<{name}}" + "".join(f"{r.get(c, float('nan')):{w}.4f}"
                                              for c, w in zip(columns, widths)))
    extra = f", KL to p* {teacher['kl_to_p_star']:.4f}" if "kl_to_p_star" in teacher else ""
    if "accuracy_mismatched" in teacher:
        extra += f", mismatched accuracy {teacher['accuracy_mismatched']:.4f}"
    log(f"teacher: test accuracy {teacher['accuracy']:.4f}, macro-F1 "
        f"{teacher.get('macro_f1', float('nan')):.4f}, TVD to labels "
        f"{teacher['tvd_to_labels']:.4f}{extra}")
    if calibrated_teacher is not None:
        recal = calibrated_teacher
        extra = (f", KL to p* {recal['kl_to_p_star']:.4f}" if "kl_to_p_star" in recal
                 else "")
        log(f"recalibrated teacher: test accuracy {recal['accuracy']:.4f}, TVD to labels "
            f"{recal['tvd_to_labels']:.4f}{extra}")
    if "label_counts" in teacher:
        log("test labels per class: " + _counts(teacher["label_counts"]))
    for name, row in [(r["method"], r) for r in results] + [("teacher", teacher)]:
        if "prediction_counts" in row:
            flag = ("   <- predicts a single class" if row.get("single_class_prediction")
                    else "")
            log(f"  {name} predictions: {_counts(row['prediction_counts'])}{flag}")


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


def plot_learning_curves(output_dir, methods):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for method in methods:
        path = os.path.join(output_dir, method, "history.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            history = json.load(f)
        epochs = np.arange(1, len(history.get("loss", [])) + 1)
        line, = axes[0].plot(epochs, history.get("loss", []), label=f"{method} train")
        if "val_loss" in history:
            axes[0].plot(epochs, history["val_loss"], ls="--", color=line.get_color(),
                         label=f"{method} val")
        if "val_accuracy" in history:
            axes[1].plot(epochs, history["val_accuracy"], color=line.get_color(), label=method)
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, "learning_curves.png"), dpi=110)
    plt.close(fig)
