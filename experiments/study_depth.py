"""Issue 26: which student depth to start from. KL students of 2, 4 and 6
layers of the same all-MiniLM-L6-v2 preset (`--init-from-layers`), each
distilled from one fixed teacher, against their gap to that teacher and
their training time.

Data sets (`--dataset`):

* `sst2` (2 classes): the subsets and the `balanced` teacher of
  `study_sst2_bias` (its kept outputs, `experiments/results/
  study_sst2_bias_teachers/balanced`): 1,500 transfer rows, validation = the
  872 training rows `--task sst2` holds out, test = GLUE dev (872);
* `file` (any number of classes, single sentences or pairs): a labelled
  `--train-file` split with `--split-seed` into `--teacher-rows` rows the
  teacher is fine-tuned on (`ptloss-distill teacher`, `--teacher-epochs`)
  and `--transfer-rows` other rows the students learn from (the teacher's
  predictions on them enter through `ptloss-distill import-teacher`), with
  `--validation-file` (or `--validation-rows` more rows of the train file)
  and `--test-file` as given.

The recipe of each depth was fixed before any result of this study was
recorded (`RECIPES`): 2 layers use the SST-2 study's recipe (4 epochs, peak
learning rate 3e-4), 4 and 6 layers the settings the issue's user found to
reach their teacher on a 3-class task (5 epochs at 1e-4; 3 epochs at 5e-5).
Students: `--loss kl`, sequence length `--sequence-length` (64), seeds
0..`--seeds`-1.

The state is one JSON (`--out`), rewritten atomically after every finished
call, so rerunning the command resumes. From the repository root:

    nice python -m experiments.study_depth --dataset sst2
    python -m experiments.study_depth --report experiments/results/study_depth_sst2.json
    nice python -m experiments.study_depth --dataset file --name trec \
        --train-file ../shared/data/multiclass/trec/train.tsv \
        --test-file ../shared/data/multiclass/trec/test.tsv --text-fields question \
        --class-names ABBR DESC ENTY HUM LOC NUM --teacher-rows 2400 \
        --transfer-rows 2400 --validation-rows 500
"""

import argparse
import json
import os
import shutil
import sys

if not __package__:
    sys.exit("study_depth: run it from the repository root as "
             "`python -m experiments.study_depth ...`.")

from bench import cli_runs  # noqa: E402

from . import study_sst2_bias  # noqa: E402
from . import text_studies  # noqa: E402

#: depth -> (epochs, peak learning rate), fixed before any result.
RECIPES = {2: (4, 3e-4), 4: (5, 1e-4), 6: (3, 5e-5)}


_read_table = text_studies.read_table
_write_table = text_studies.write_table


def split_teacher_and_transfer(args, folder):
    """Writes `teacher.tsv` and `transfer.tsv` (disjoint, drawn with
    `--split-seed` from `--train-file`) into `folder`, and `validation.tsv`
    (`--validation-rows` more) where there is no `--validation-file`;
    returns their sizes."""
    import numpy as np

    header, rows = _read_table(args.train_file)
    carved = 0 if args.validation_file else args.validation_rows
    need = args.teacher_rows + args.transfer_rows + carved
    if need > len(rows):
        sys.exit(f"study_depth: --teacher-rows + --transfer-rows (+ --validation-rows) = "
                 f"{need} exceeds the {len(rows)} rows of {args.train_file}.")
    order = np.random.default_rng(args.split_seed).permutation(len(rows))
    first = args.teacher_rows + args.transfer_rows
    parts = {"teacher": np.sort(order[:args.teacher_rows]),
             "transfer": np.sort(order[args.teacher_rows:first])}
    if carved:
        parts["validation"] = np.sort(order[first:need])
        args.validation_file = os.path.join(folder, "validation.tsv")
    os.makedirs(folder, exist_ok=True)
    for name, index in parts.items():
        _write_table(os.path.join(folder, f"{name}.tsv"), header, [rows[i] for i in index])
    return {name: int(len(index)) for name, index in parts.items()}


def file_task(args, train_file):
    return ["--task", "file", "--train-file", train_file,
            "--validation-file", args.validation_file, "--test-file", args.test_file,
            "--text-fields", *args.text_fields, "--label-field", args.label_field,
            "--class-names", *args.class_names,
            "--sequence-length", str(args.sequence_length)]


def prepare_file_teacher(args, folder, minilm, state, save):
    """Fine-tunes the teacher once on `teacher.tsv` and writes the students'
    teacher outputs (train = its predictions on `transfer.tsv`)."""
    run_dir = os.path.join(args.work_dir, "teacher")
    outputs = os.path.join(args.work_dir, "outputs")
    if "teacher_run" not in state:
        step = cli_runs.run_cli("teacher", ["teacher"] + file_task(
            args, os.path.join(folder, "teacher.tsv")) + [
            "--preset", minilm, "--epochs", str(args.teacher_epochs), "--output-dir", run_dir,
            "--teacher-name", f"all-MiniLM-L6-v2 {args.name}", "--seed", str(args.split_seed),
            "--overwrite"], os.path.join(args.work_dir, "teacher.log"))
        if step["returncode"]:
            sys.exit("study_depth: the teacher failed; see its log.")
        state.update(teacher_wall_s=step["wall_s"],
                     teacher_run=cli_runs.read_teacher_run(run_dir))
        save()
    if not os.path.exists(os.path.join(outputs, "train.jsonl")):
        text_studies.import_transfer_outputs(
            run_dir, os.path.join(folder, "transfer.tsv"), outputs, args.text_fields,
            args.class_names, f"all-MiniLM-L6-v2 {args.name}",
            os.path.join(args.work_dir, "import.log"))
    return outputs


def prepare(args, minilm, state, save):
    """The students' task flags and teacher-outputs folder of `--dataset`."""
    folder = os.path.join(args.work_dir, "subsets")
    if args.dataset == "sst2":
        subset_args = argparse.Namespace(subset_seed=0, transfer_examples=1500,
                                         teacher_examples=2000, shifted_negative=0.85,
                                         tiny=False)
        state["subsets"] = study_sst2_bias.write_subsets(folder, subset_args)
        outputs = os.path.join(args.work_dir, "outputs")
        if not study_sst2_bias.has_outputs(outputs):
            study_sst2_bias.copy_outputs(
                os.path.join(study_sst2_bias.KEPT_OUTPUTS, "balanced"), outputs)
        save()
        return study_sst2_bias.student_task(folder), outputs
    state["subsets"] = split_teacher_and_transfer(args, folder)
    save()
    outputs = prepare_file_teacher(args, folder, minilm, state, save)
    return file_task(args, os.path.join(folder, "transfer.tsv")), outputs


def run_study(args):
    minilm = text_studies.require_minilm("study_depth")
    config = {k: v for k, v in vars(args).items() if k not in ("report", "predict")}
    state, save = text_studies.load_state(args.out, {"config": config, "runs": {}})
    if state["config"] != config:
        sys.exit(f"study_depth: {args.out} records other options ({state['config']}); "
                 "use another --out.")
    task, outputs = prepare(args, minilm, state, save)
    for seed in range(args.seeds):
        for depth in args.depths:
            key = f"layers{depth}/seed{seed}"
            if key in state["runs"]:
                continue
            epochs, learning_rate = RECIPES[depth]
            out = os.path.join(args.work_dir, "runs", key.replace("/", "_"))
            if os.path.exists(out):
                shutil.rmtree(out)  # an interrupted call restarts
            os.makedirs(os.path.dirname(out), exist_ok=True)
            step = cli_runs.run_cli(key, task + [
                "--teacher-outputs", outputs, "--preset", minilm,
                "--init-from-layers", str(depth), "--loss", "kl", "--epochs", str(epochs),
                "--learning-rate", str(learning_rate), "--seed", str(seed),
                "--verbose", "2", "--output-dir", out], out + ".log")
            report = cli_runs.read_report(out) if step["returncode"] == 0 else None
            if report is None:
                print(f"[{key}] failed; not recorded (log: {out}.log)", flush=True)
                continue
            result = report["results"][0]
            state["runs"][key] = {
                "depth": depth, "seed": seed, "epochs": epochs,
                "learning_rate": learning_rate, "wall_s": step["wall_s"],
                "train_seconds": result.get("train_seconds"), "result": result,
                "teacher": {k: report["teacher"].get(k) for k in (
                    "accuracy", "validation_accuracy", "nll", "ece", "macro_f1")},
                "teacher_gap": report.get("teacher_gap"),
                "finished_utc": cli_runs.utc_now()}
            save()
            print(f"[{key}] accuracy {result['accuracy']:.4f}, gap "
                  f"{result['teacher_gap']['test_points']:+.1f} points (test), "
                  f"{result.get('train_seconds', 0):.0f} s", flush=True)


def report(path):
    """Markdown: per depth, mean ± sd over seeds of test accuracy, the gap
    to the teacher (validation and test) and the training time."""
    import numpy as np

    with open(path) as f:
        state = json.load(f)
    runs = list(state["runs"].values())
    if not runs:
        return "no finished runs"
    teacher = runs[0]["teacher"]
    lines = [f"Teacher: test accuracy {100 * teacher['accuracy']:.1f}, validation "
             f"{100 * teacher['validation_accuracy']:.1f}.", "",
             "| student layers | recipe (epochs, peak lr) | seeds | test acc. (%) | macro-F1 "
             "| gap to teacher, val. (points) | gap, test (points) | train time (s) |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(values, digits=1):
        values = np.asarray(values, float)
        if len(values) == 1:
            return f"{values[0]:.{digits}f}"
        return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"

    for depth in sorted({r["depth"] for r in runs}):
        rows = sorted((r for r in runs if r["depth"] == depth), key=lambda r: r["seed"])
        gaps = [r["result"]["teacher_gap"] for r in rows]
        lines.append(
            f"| {depth} | {rows[0]['epochs']}, {rows[0]['learning_rate']:g} | "
            f"{', '.join(str(r['seed']) for r in rows)} | "
            f"{cell([100 * r['result']['accuracy'] for r in rows])} | "
            f"{cell([100 * r['result']['macro_f1'] for r in rows])} | "
            f"{cell([g['validation_points'] for g in gaps])} | "
            f"{cell([g['test_points'] for g in gaps])} | "
            f"{cell([r['train_seconds'] for r in rows], 0)} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("sst2", "file"), default="sst2")
    parser.add_argument("--name", default="sst2", help="the data set's name in the records")
    parser.add_argument("--train-file")
    parser.add_argument("--validation-file")
    parser.add_argument("--test-file")
    parser.add_argument("--text-fields", nargs="+", default=["sentence"])
    parser.add_argument("--label-field", default="label")
    parser.add_argument("--class-names", nargs="+")
    parser.add_argument("--teacher-rows", type=int, default=4000)
    parser.add_argument("--transfer-rows", type=int, default=4000)
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--validation-rows", type=int, default=500,
                        help="without --validation-file: rows of --train-file held out "
                             "(disjoint from the teacher's and the transfer rows)")
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--depths", type=int, nargs="+", default=sorted(RECIPES),
                        choices=sorted(RECIPES))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--work-dir")
    parser.add_argument("--out")
    parser.add_argument("--report", metavar="JSON")
    args = parser.parse_args()
    if args.report:
        print(report(args.report))
        return
    if args.dataset == "file" and not (args.train_file and args.test_file
                                       and args.class_names):
        parser.error("--dataset file needs --train-file, --test-file and --class-names "
                     "(and --validation-file, or --validation-rows carved from the train file)")
    args.work_dir = args.work_dir or f"/tmp/study_depth_{args.name}"
    args.out = args.out or os.path.join(text_studies.RESULTS, f"study_depth_{args.name}.json")
    run_study(args)


if __name__ == "__main__":
    main()
