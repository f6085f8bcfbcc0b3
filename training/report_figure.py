"""The run's pictures: `report.png` (what a user looks at first) and
`learning_curves.png`.

`report.png`, one panel each:

* test accuracy per method (bars), the teacher's and, for the synthetic
  task, the Bayes accuracy as lines (the summary panel gives each
  student's gap to the teacher and the large-gap warning);
* KL(p* || student) per method with the teacher's (synthetic task: p* is
  known) or, for real tasks, the test NLL per method;
* a reliability diagram (confidence against accuracy per bin) for each
  method and the teacher;
* validation accuracy and validation NLL against the labels per epoch per
  method: quantities every method shares (the training losses of different
  methods are different functions, so their values are not comparable).

`learning_curves.png` holds the two per-epoch panels alone.
"""

import json
import os

import numpy as np

REPORT_FIGURE = "report.png"
LEARNING_CURVES = "learning_curves.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_histories(output_dir, methods):
    """`{method: history}` of the methods whose `history.json` exists."""
    histories = {}
    for method in methods:
        path = os.path.join(output_dir, method, "history.json")
        if os.path.exists(path):
            with open(path) as f:
                histories[method] = json.load(f)
    return histories


def _epoch_panels(axes, histories, colors):
    accuracy_ax, nll_ax = axes
    for method, history in histories.items():
        epochs = np.arange(1, len(history.get("val_accuracy", [])) + 1)
        if len(epochs):
            accuracy_ax.plot(epochs, history["val_accuracy"], marker="o", ms=3,
                             color=colors[method], label=method)
        if "val_nll" in history:
            nll_ax.plot(np.arange(1, len(history["val_nll"]) + 1), history["val_nll"],
                        marker="o", ms=3, color=colors[method], label=method)
    accuracy_ax.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    nll_ax.set(xlabel="epoch", ylabel="NLL", title="validation NLL (against the labels)")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)


def _colors(methods):
    cycle = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"]
    return {m: cycle[i % len(cycle)] for i, m in enumerate(methods)}


def plot_learning_curves(output_dir, methods):
    """`learning_curves.png`: validation accuracy and NLL per epoch."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    _epoch_panels(axes, read_histories(output_dir, methods), _colors(methods))
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, LEARNING_CURVES), dpi=110)
    plt.close(fig)


def _bars(ax, results, key, colors, title, ylabel, lines):
    methods = [r["method"] for r in results]
    values = [r.get(key, np.nan) for r in results]
    ax.bar(methods, values, color=[colors[m] for m in methods])
    for x, v in enumerate(values):
        if np.isfinite(v):
            ax.text(x, v, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
    for (label, value), style in zip(lines, ("--", ":", "-.")):
        if value is not None and np.isfinite(value):
            ax.axhline(value, ls=style, color="k", lw=1, label=f"{label} {value:.3f}")
    finite = [v for v in values + [v for _, v in lines if v is not None] if np.isfinite(v)]
    if key == "accuracy" and finite:
        low, high = min(finite), max(finite)
        ax.set_ylim(max(0.0, low - 0.1 * max(high - low, 0.05) - 0.02), min(1.0, high + 0.03))
    elif finite:
        ax.set_ylim(0.0, 1.15 * max(finite))
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", labelrotation=20, labelsize=7)
    if lines:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3,
                  frameon=False)


def _reliability(ax, results, teacher, colors):
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":")
    rows = [(r["method"], r.get("reliability"), colors[r["method"]]) for r in results]
    rows.append(("teacher", teacher.get("reliability"), "k"))
    for name, bins, color in rows:
        if not bins:
            continue
        confidence = np.array([np.nan if c is None else c for c in bins["confidence"]])
        accuracy = np.array([np.nan if a is None else a for a in bins["accuracy"]])
        keep = np.isfinite(confidence)
        ax.plot(confidence[keep], accuracy[keep], marker="o", ms=3, color=color,
                ls="--" if name == "teacher" else "-", label=name)
    ax.set(xlim=(0.45, 1.0), ylim=(0.3, 1.0), xlabel="confidence (max probability)",
           ylabel="accuracy", title="reliability (test split)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def plot_report(output_dir, report):
    """Writes `report.png` from a run's `report` dict and its histories."""
    plt = _pyplot()
    results, teacher = report["results"], report["teacher"]
    methods = [r["method"] for r in results]
    colors = _colors(methods)
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    accuracy_lines = [("teacher", teacher.get("accuracy"))]
    if report.get("bayes_accuracy") is not None:
        accuracy_lines.append(("Bayes", report["bayes_accuracy"]))
    _bars(axes[0, 0], results, "accuracy", colors,
          "test accuracy (line: the teacher's)", "accuracy", accuracy_lines)
    if all("kl_to_p_star" in r for r in results) and "kl_to_p_star" in teacher:
        lines = [("teacher", teacher["kl_to_p_star"])]
        if report.get("calibrated_teacher"):
            lines.append(("recalibrated teacher",
                          report["calibrated_teacher"].get("kl_to_p_star")))
        _bars(axes[0, 1], results, "kl_to_p_star", colors, "KL(p* || student), test",
              "KL (lower is better)", lines)
    else:
        _bars(axes[0, 1], results, "nll", colors, "test NLL", "NLL (lower is better)", [])
    _reliability(axes[0, 2], results, teacher, colors)
    _epoch_panels(axes[1, :2], read_histories(output_dir, methods), colors)
    summary = axes[1, 2]
    summary.axis("off")
    lines = [f"task: {report.get('task')}", f"classes: {', '.join(report['class_names'])}"]
    config = report.get("config", {})
    if report.get("task") == "synthetic":
        lines.append(f"teacher: overconfidence {config.get('overconfidence')}, prior shift "
                     f"{config.get('prior_shift')}, noise {config.get('teacher_noise')}")
    for r in results:
        extra = f", KL(p*||s) {r['kl_to_p_star']:.3f}" if "kl_to_p_star" in r else ""
        gap = (r.get("teacher_gap") or {}).get("test_points")
        extra += f", {gap:+.1f} pts under teacher" if gap is not None else ""
        lines.append(f"{r['method']}: acc {r['accuracy']:.4f}, NLL {r['nll']:.3f}, "
                     f"ECE {r['ece']:.3f}{extra}")
    lines.append(f"teacher: acc {teacher['accuracy']:.4f}"
                 + (f", KL(p*||t) {teacher['kl_to_p_star']:.3f}" if "kl_to_p_star" in teacher
                    else ""))
    if report.get("bayes_accuracy") is not None:
        lines.append(f"Bayes accuracy {report['bayes_accuracy']:.4f}")
    warning = (report.get("teacher_gap") or {}).get("warning")
    if warning:
        gap = report["teacher_gap"]
        lines.append(f"\nWARNING: best student ({gap['best_method']}) "
                     f"{gap['validation_points']:.1f} pts under the teacher on validation")
    summary.text(0.0, 1.0, "\n".join(lines), va="top", family="monospace", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, REPORT_FIGURE), dpi=100)
    plt.close(fig)
