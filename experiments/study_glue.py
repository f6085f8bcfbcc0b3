"""Issue 6, section 2: PTLoss vs the baselines on RTE and BoolQ, at CPU scale.

The sentence-pair companions of `experiments/study_sst2.py`, run through the
registered tasks of `ptloss-distill` on the local files of
`../shared/data` (`--task rte|boolq --source files`):

* RTE: GLUE `train.tsv` (2,490 pairs); GLUE test labels are hidden, so the
  CLI evaluates on GLUE dev (277 pairs, as the paper does for its tasks) and
  searches coefficients / selects epochs on 249 training pairs held out with
  seed 0; the student trains on the other 2,241.
* BoolQ: only `dev.jsonl` (3,270) is here; the CLI splits it 60/20/20 with
  seed 0 into train (1,962) / validation (654) / test (654).

Teacher: all-MiniLM-L6-v2 fine-tuned with `ptloss-distill teacher`
(`--teacher-epochs`, default 3, lr 5e-5) on the task's training split.
Student: its first 2 layers (`--init-from-layers 2`), `--epochs` (default 2),
lr 5e-5 (the CLI's default with a preset), sequence length 128.

To fit a few hours on 2 cores, methods that share a process share one
`ptloss-distill` call, and the baselines get one value each instead of the
paper's grids: the values most often selected on SST-2 validation by
`experiments/study_sst2.py` (temperature 2, label smoothing 0.1, focal tau 2).
Calls, in priority order (a partial study still answers the main question),
seed by seed within each priority:

1. `--loss kl ptloss ptloss_random --criterion brier` (the CLI's default
   criterion, MATH.md Sec. 3b);
2. `--loss ptloss --criterion deviation` (the paper's Eq. 21);
3. `--loss temperature label_smoothing focal` with the values above;
4. `recipe`: `--loss kl` alone, not in the default groups: with
   `--epochs 4 --learning-rate 3e-4` (the recipe that lifted the SST-2
   students of `study_sst2_bias.py` off a single class) it tests whether
   the RTE/BoolQ students stayed at the class prior because the default
   recipe under-trained them.

`--groups` picks among these (`main`, `eq21`, `baselines`, `recipe`);
`--learning-rate` sets the students' peak learning rate (default: the
CLI's).

Each finished call's results are written atomically to `--out` (JSON, the
record layout of `study_sst2.py`, so either script's `--report` reads it;
default `experiments/results/study_TASK.json`); rerunning the same command
skips finished calls. From the repository root:

    .venv/bin/python -m experiments.study_glue --task rte
    .venv/bin/python -m experiments.study_glue --task boolq
    .venv/bin/python -m experiments.study_glue --report experiments/results/study_rte.json
    .venv/bin/python -m experiments.study_glue --task rte --spread
    .venv/bin/python -m experiments.study_glue --task rte --groups recipe --seeds 2 \
        --epochs 4 --learning-rate 3e-4 --work-dir /tmp/study_rte_recipe \
        --out experiments/results/study_rte_recipe.json

`--spread` loads every saved `student.keras` under the work directory and
prints, on the test split, how many examples each class is predicted for and
the range of each class probability: whether the students' predictions
depend on their input at all.
"""

import argparse
import os
import sys

if not __package__:
    sys.exit("study_glue: run it from the repository root as "
             "`python -m experiments.study_glue ...`.")

from bench import cli_runs  # noqa: E402

from . import text_studies  # noqa: E402

BASELINE_VALUES = {method: (text_studies.BASELINE_FLAGS[method], value)
                   for method, value in (("temperature", 2.0), ("label_smoothing", 0.1),
                                         ("focal", 2.0))}
TEACHER_NAMES = {"rte": "all-MiniLM-L6-v2 (RTE fine-tuned)",
                 "boolq": "all-MiniLM-L6-v2 (BoolQ 60% split fine-tuned)"}


GROUPS = ("main", "eq21", "baselines", "recipe")
DEFAULT_GROUPS = ("main", "eq21", "baselines")


def planned_calls(seeds, groups=DEFAULT_GROUPS):
    """(key, seed, --loss methods, extra flags), in priority order."""
    flags = [str(x) for flag, value in BASELINE_VALUES.values() for x in (flag, value)]
    by_group = {
        "main": [(f"seed{s}/kl+ptloss_brier+ptloss_random", s,
                  ["kl", "ptloss", "ptloss_random"], ["--criterion", "brier"])
                 for s in range(seeds)],
        "eq21": [(f"seed{s}/ptloss_eq21", s, ["ptloss"], ["--criterion", "deviation"])
                 for s in range(seeds)],
        "baselines": [(f"seed{s}/baselines", s, list(BASELINE_VALUES), flags)
                      for s in range(seeds)],
        "recipe": [(f"seed{s}/kl", s, ["kl"], []) for s in range(seeds)],
    }
    return [call for group in GROUPS if group in groups for call in by_group[group]]


def run_records(seed, call_extra, result):
    """The study_sst2 record (seed, method, flag, value) of one method's result."""
    method = result["method"]
    flag = value = None
    if method == "ptloss" and call_extra == ["--criterion", "brier"]:
        flag, value = "--criterion", "brier"  # Eq. 21 keeps flag None, as in study_sst2
    elif method in BASELINE_VALUES:
        flag, value = BASELINE_VALUES[method]
    key = f"seed{seed}/{method}" + (f"{flag}={value}" if flag else "")
    return key, {"seed": seed, "method": method, "flag": flag, "value": value}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("rte", "boolq"), required=True)
    parser.add_argument("--work-dir", default=None, help="default: /tmp/study_TASK")
    parser.add_argument("--teacher-outputs", default=None,
                        help="reuse the teacher outputs of an earlier run of this script")
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=list(DEFAULT_GROUPS),
                        help="which calls to run (main: kl, ptloss brier, ptloss_random; "
                             "eq21: ptloss with the paper's criterion; baselines; "
                             "recipe: kl alone, not run by default)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="the students' peak learning rate (default: the CLI's)")
    parser.add_argument("--out", default=None,
                        help="default: experiments/results/study_TASK.json")
    parser.add_argument("--spread", action="store_true",
                        help="only print the saved students' prediction spread (see above)")
    args = parser.parse_args()
    work = args.work_dir or f"/tmp/study_{args.task}"
    if args.spread:
        return prediction_spread(args.task, work)
    out_path = args.out or os.path.join(text_studies.RESULTS, f"study_{args.task}.json")
    folder = text_studies.require_minilm("study_glue")
    os.makedirs(work, exist_ok=True)
    task = ["--task", args.task, "--source", "files", "--data-root", cli_runs.data_root(),
            "--sequence-length", str(args.sequence_length)]
    state, save = text_studies.load_state(
        out_path, {"config": vars(args), "teacher": None, "calls": {}, "runs": {}})

    teacher_dir = args.teacher_outputs or os.path.join(work, "teacher")
    if not os.path.exists(os.path.join(teacher_dir, "train.jsonl")):
        text_studies.run_teacher("study_glue", state, task, folder, teacher_dir,
                                 args.teacher_epochs, TEACHER_NAMES[args.task],
                                 os.path.join(work, "teacher.log"), extra=("--verbose", "2"))
    state["teacher_outputs"] = os.path.abspath(teacher_dir)
    state.setdefault("invocations", []).append(
        {"argv": sys.argv[1:], "started_utc": cli_runs.utc_now()})
    for key, seed, methods, extra in planned_calls(args.seeds, args.groups):
        if key in state["calls"]:
            continue
        out = os.path.join(work, key.replace("/", "_").replace("+", "_"))
        lr = [] if args.learning_rate is None else ["--learning-rate", str(args.learning_rate)]
        step, report = text_studies.run_student(key, task, teacher_dir, folder, methods,
                                                args.epochs, seed, out, extra + lr)
        if report is None:
            continue
        state["teacher"] = report["teacher"]
        finished = cli_runs.utc_now()
        timings = {r["method"]: text_studies.method_timings(report, r["method"])
                   for r in report["results"]}
        train_total = sum(t["train_seconds"] for t in timings.values()) or 1.0
        for result in report["results"]:
            run_key, record = run_records(seed, extra, result)
            coefficients = report.get("coefficients")
            train_s = timings[result["method"]]["train_seconds"]
            record.update(result=result, call=key, finished_utc=finished,
                          # The call's wall time, shared out by training time.
                          wall_s=step["wall_s"] * train_s / train_total,
                          timings=timings[result["method"]],
                          coefficients=coefficients if result["method"] == "ptloss" else None)
            state["runs"][run_key] = record
            print(f"[{run_key}] test accuracy {result['accuracy']:.4f}, "
                  f"val {result['best_val_accuracy']:.4f}", flush=True)
        state["calls"][key] = {"wall_s": step["wall_s"], "finished_utc": finished,
                               "notes": report.get("notes")}
        save()


def prediction_spread(task_name, work):
    """Per saved student: predicted-class counts and class-probability ranges
    on the test split the CLI evaluates (RTE: GLUE dev)."""
    import glob

    import keras
    import numpy as np

    from ptloss_tf.training.data import load_split
    from ptloss_tf.probabilities import softmax

    split = "validation" if task_name == "rte" else "test"  # RTE test labels are hidden
    examples = load_split(task_name, split, source="files", data_root=cli_runs.data_root())
    texts = tuple(np.asarray(t) for t in examples.texts)
    for path in sorted(glob.glob(os.path.join(work, "seed*", "*", "student.keras"))):
        model = keras.saving.load_model(path, compile=False)
        probs = softmax(np.asarray(model.predict(texts, batch_size=64, verbose=0), np.float64))
        counts = np.bincount(probs.argmax(1), minlength=probs.shape[1])
        ranges = ", ".join(f"P({c}) {probs[:, k].min():.3f}-{probs[:, k].max():.3f}"
                           for k, c in enumerate(examples.class_names))
        print(f"{os.path.relpath(path, work)}: predicted counts {counts.tolist()} of "
              f"{len(probs)}; {ranges}", flush=True)


if __name__ == "__main__":
    text_studies.main_or_report(main)
