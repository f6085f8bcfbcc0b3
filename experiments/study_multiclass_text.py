"""Issue 22, section 3: PTLoss against KL, recalibration (vector and matrix)
and the K-class baselines on real multi-class text (TREC-6, SST-5), with
all-MiniLM-L6-v2 teachers of realistic bias.

Per data set (`--datasets`, in the order given; default `trec sst5`), the
training file is split once (`--split-seed` 0) into a validation set (TREC:
the 545 rows `--task trec` holds out; SST-5: `dev.tsv`), a transfer set the
students learn from (natural class ratio) and a pool the teachers are
fine-tuned on (rows the students never see). Test: the data set's test file.
Four teachers, fine-tuned with `ptloss-distill teacher`:

* `balanced`: `teacher_rows` pool rows at the natural ratio, `--teacher-epochs`;
* `shifted`: as many pool rows, `--shift-fraction` (60%) of them from one
  class (`shift_class`), the rest at the natural ratio of the others;
* `overconfident`: the balanced rows, `--overconfident-epochs` (far past its
  best validation NLL, which the report shows against the balanced teacher's);
* `confused`: the balanced rows with `--confusion-fraction` (50%) of one
  class's labels turned into another's (`confusion` below: TREC DESC -> ENTY,
  SST-5 neutral -> negative; CB's would be neutral -> contradiction).

Each teacher predicts the transfer set through its saved `teacher.keras`;
those outputs enter the students' runs through `ptloss-distill
import-teacher` (with text fingerprints). They are kept with the results
(`experiments/results/study_multiclass_text_teachers/<data set>/<teacher>/`)
so the study resumes with the same teachers on another machine.

Student recipe, fixed per data set before any result is recorded (`pilot`):
KL students of the `balanced` teacher, seed 0, at 2, then 4, then 6 layers of
the MiniLM with `study_depth.RECIPES` (2: 4 epochs at 3e-4; 4: 5 at 1e-4;
6: 3 at 5e-5); the first depth whose best validation accuracy is within
`--pilot-gap` (2.0) points of the teacher's validation accuracy is the
recipe for every method, teacher and seed of that data set (none: the
smallest gap). The pilot students are recorded apart (`state["recipes"]`)
and enter no table.

One `ptloss-distill` call per (data set, teacher, seed, group):

* `main`: `kl`, `ptloss` (brier), `kl_calibrated` (vector);
* `matrix`: `kl_calibrated` with `--calibration matrix`;
* `more`: `ptloss_calibrated` (on the matrix-recalibrated teacher),
  `temperature` (the CLI's T = 2, one value: no grid, for the budget),
  `dkd` and `dist` (the authors' defaults, as the CLI's).

Order (a partial run answers the main question first), per data set:
`main` then `matrix` of seed 0, of seed 1, of seed 2, then `more` seeds 0-2,
then `main` and `matrix` of seeds 3 and 4 (`--seeds` 5 for main and matrix, `--extra-seeds` 3 for more); within a
(group, seed), the four teachers. The state is one JSON (`--out`), rewritten
atomically after every finished step: rerunning the command resumes. `--groups
more` launches only that group's calls now (e.g. DKD and DIST before more
seeds of `main`); the plan and the recorded options stay the same.

CB is not run in this design (`--datasets cb` exits saying why): its 250
training pairs (16 neutral) cannot be split into a teacher pool, a transfer
set and a validation set of useful size; a 60%-one-class teacher or a
neutral -> contradiction teacher would rest on a handful of pairs, and the 56
test pairs make one pair 1.8 points.

From the repository root:

    nice -n 10 python -m experiments.study_multiclass_text [--datasets trec sst5]
    python -m experiments.study_multiclass_text --report \\
        experiments/results/study_multiclass_text.json --figure docs/images/multiclass_text.png
    python -m experiments.study_multiclass_text --tiny   # an end-to-end dry run
"""

import argparse
import json
import os
import shutil
import sys

if not __package__:
    sys.exit("study_multiclass_text: run it from the repository root as "
             "`python -m experiments.study_multiclass_text ...`.")

from bench import cli_runs  # noqa: E402

from . import study_depth  # noqa: E402
from . import study_sst2_bias  # noqa: E402
from . import text_studies  # noqa: E402

SCRIPT = "study_multiclass_text"
TEACHERS = ("balanced", "shifted", "overconfident", "confused")
KEPT_OUTPUTS = os.path.join(text_studies.RESULTS, "study_multiclass_text_teachers")


def _data(*parts):
    return os.path.join(cli_runs.data_root(), "multiclass", *parts)


#: Per data set: files, columns, classes and the sizes of the split.
DATASETS = {
    "trec": dict(
        train="trec/train.tsv", validation=None, holdout=545, test="trec/test.tsv",
        text_fields=["question"], label_field="label",
        class_names=["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"], sequence_length=32,
        transfer_rows=2400, teacher_rows=900, shift_class="ENTY",
        confusion=("DESC", "ENTY")),
    "sst5": dict(
        train="sst5/train.tsv", validation="sst5/dev.tsv", holdout=0, test="sst5/test.tsv",
        text_fields=["sentence"], label_field="label",
        class_names=["very negative", "negative", "neutral", "positive", "very positive"],
        sequence_length=64, transfer_rows=4000, teacher_rows=2000, shift_class="positive",
        confusion=("neutral", "negative")),
}
NOT_RUN = {
    "cb": "CB has 250 training pairs (115 entailment / 119 contradiction / 16 neutral) and "
          "56 labelled test pairs: after 25 validation pairs, a teacher pool and a transfer "
          "set of ~110 pairs each; a 60%-contradiction teacher needs more contradiction pairs "
          "than that pool holds, a neutral -> contradiction teacher would change ~4 labels, "
          "and one test pair is 1.8 points. This design (teacher rows disjoint from a "
          "transfer set of thousands) cannot be run on CB; see docs/RESULTS.md section 2d.",
}

#: group -> (methods, extra CLI flags).
GROUPS = {
    "main": (("kl", "ptloss", "kl_calibrated"),
             ("--criterion", "brier", "--calibration", "vector")),
    "matrix": (("kl_calibrated",), ("--calibration", "matrix")),
    "more": (("ptloss_calibrated", "temperature", "dkd", "dist"),
             ("--criterion", "brier", "--calibration", "matrix")),
}
#: The report's rows: label -> ((group, method),).
COLUMNS = {
    "KL": (("main", "kl"),),
    "PTLoss (brier)": (("main", "ptloss"),),
    "KL, recal. teacher (vector)": (("main", "kl_calibrated"),),
    "KL, recal. teacher (matrix)": (("matrix", "kl_calibrated"),),
    "PTLoss, recal. teacher (matrix)": (("more", "ptloss_calibrated"),),
    "Temperature (T = 2)": (("more", "temperature"),),
    "DKD": (("more", "dkd"),),
    "DIST": (("more", "dist"),),
}
HEAD_TO_HEAD = (("KL, recal. teacher (vector)", "PTLoss (brier)"),
                ("KL, recal. teacher (matrix)", "KL, recal. teacher (vector)"),
                ("KL, recal. teacher (matrix)", "PTLoss (brier)"),
                ("PTLoss, recal. teacher (matrix)", "KL, recal. teacher (matrix)"))


# --- subsets --------------------------------------------------------------

def _rows(path, spec):
    """`(header, rows)` of a TSV data file, label column as class names."""
    header, rows = text_studies.read_table(path)
    li = header.index(spec["label_field"])
    names = spec["class_names"]
    for r in rows:
        if r[li] not in names:
            r[li] = names[int(r[li])]  # integer labels are class indices (SST-5)
    return header, rows


def write_subsets(name, spec, folder, args):
    """The study's TSVs of data set `name` in `folder`: validation, test,
    transfer and the teachers' training rows (`teacher_<teacher>.tsv`).
    Returns their row counts and class counts."""
    import numpy as np

    header, rows = _rows(_data(spec["train"]), spec)
    li = header.index(spec["label_field"])
    names = spec["class_names"]
    labels = np.array([names.index(r[li]) for r in rows])
    n = len(rows)
    if spec["validation"]:
        _, val_rows = _rows(_data(spec["validation"]), spec)
        rest = np.arange(n)
    else:  # the rows the registered task / `--task file` hold out (seed 0)
        held = np.random.default_rng(0).permutation(n)[:spec["holdout"]]
        val_rows = [rows[i] for i in np.sort(held)]
        rest = np.setdiff1d(np.arange(n), held)
    _, test_rows = _rows(_data(spec["test"]), spec)
    rng = np.random.default_rng(args.split_seed)
    rest = rng.permutation(rest)
    n_transfer, n_teacher = spec["transfer_rows"], spec["teacher_rows"]
    if args.tiny:
        n_transfer, n_teacher = 120, 120
        val_rows, test_rows = val_rows[:100], test_rows[:100]
    transfer, pool = np.sort(rest[:n_transfer]), rest[n_transfer:]
    balanced = np.sort(pool[:n_teacher])
    shift = names.index(spec["shift_class"])
    n_shift = int(round(args.shift_fraction * n_teacher))
    in_class, others = pool[labels[pool] == shift], pool[labels[pool] != shift]
    if len(in_class) < n_shift:
        sys.exit(f"{SCRIPT}: {name}: the pool holds {len(in_class)} '{names[shift]}' rows, "
                 f"the shifted teacher needs {n_shift}.")
    shifted = np.sort(np.concatenate([in_class[:n_shift], others[:n_teacher - n_shift]]))
    source, target = (names.index(c) for c in spec["confusion"])
    confused_rows = [list(rows[i]) for i in balanced]
    candidates = [j for j, i in enumerate(balanced) if labels[i] == source]
    flip = rng.permutation(candidates)[:int(round(args.confusion_fraction * len(candidates)))]
    for j in flip:
        confused_rows[j][li] = names[target]
    subsets = {"validation": val_rows, "test": test_rows,
               "transfer": [rows[i] for i in transfer],
               "teacher_balanced": [rows[i] for i in balanced],
               "teacher_shifted": [rows[i] for i in shifted],
               "teacher_confused": confused_rows}
    os.makedirs(folder, exist_ok=True)
    summary = {}
    for sub, sub_rows in subsets.items():
        text_studies.write_table(os.path.join(folder, f"{sub}.tsv"), header, sub_rows)
        counts = {c: sum(r[li] == c for r in sub_rows) for c in names}
        summary[sub] = {"rows": len(sub_rows), "class_counts": counts}
    summary["teacher_overconfident"] = summary["teacher_balanced"]
    summary["confused_flipped"] = {"from": names[source], "to": names[target],
                                   "rows": int(len(flip)), "of": len(candidates)}
    return summary


def file_task(spec, folder, train):
    return ["--task", "file", "--train-file", os.path.join(folder, f"{train}.tsv"),
            "--validation-file", os.path.join(folder, "validation.tsv"),
            "--test-file", os.path.join(folder, "test.tsv"),
            "--text-fields", *spec["text_fields"], "--label-field", spec["label_field"],
            "--class-names", *spec["class_names"],
            "--sequence-length", str(spec["sequence_length"])]


# --- teachers -------------------------------------------------------------

def teacher_nll(outputs, folder, spec, split):
    """NLL and accuracy of a teacher's `split` outputs against the labels."""
    import numpy as np

    with open(os.path.join(outputs, f"{split}.jsonl")) as f:
        next(f)
        logits = np.array([json.loads(line)["values"] for line in f], np.float64)
    header, rows = text_studies.read_table(os.path.join(folder, f"{split}.tsv"))
    li = header.index(spec["label_field"])
    y = np.array([spec["class_names"].index(r[li]) for r in rows])
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return {"nll": float(-logp[np.arange(len(y)), y].mean()),
            "accuracy": float((logits.argmax(1) == y).mean())}


def prepare_teacher(ds, teacher, spec, folder, args, minilm, state, save):
    """Fine-tunes teacher `teacher` of data set `ds` once and writes the
    students' teacher outputs; restores them from `KEPT_OUTPUTS` when the
    work directory lacks them. Returns the outputs folder."""
    record = state["teachers"].setdefault(ds, {}).setdefault(teacher, {})
    run_dir = os.path.join(args.work_dir, ds, f"teacher_{teacher}")
    outputs = os.path.join(args.work_dir, ds, f"outputs_{teacher}")
    kept = os.path.join(KEPT_OUTPUTS, ds, teacher)
    name = f"all-MiniLM-L6-v2 {ds} {teacher}"
    if not args.tiny and "teacher_run" in record and not text_studies.has_outputs(outputs):
        if not text_studies.has_outputs(kept):
            sys.exit(f"{SCRIPT}: {outputs} and {kept} lack the {ds} {teacher} teacher's "
                     f"outputs that {args.out} records; use another --out to start afresh.")
        text_studies.copy_outputs(kept, outputs)
        print(f"[{ds} teacher {teacher}] outputs restored from {kept}", flush=True)
    if "teacher_run" not in record:
        epochs = args.overconfident_epochs if teacher == "overconfident" else args.teacher_epochs
        rows = "teacher_balanced" if teacher == "overconfident" else f"teacher_{teacher}"
        step = cli_runs.run_cli(f"{ds} teacher {teacher}", ["teacher"] + file_task(
            spec, folder, rows) + [
            "--preset", minilm, "--epochs", str(epochs),
            "--learning-rate", str(args.teacher_learning_rate), "--output-dir", run_dir,
            "--teacher-name", name, "--seed", str(args.split_seed), "--overwrite"],
            os.path.join(args.work_dir, ds, f"teacher_{teacher}.log"))
        if step["returncode"]:
            sys.exit(f"{SCRIPT}: the {ds} {teacher} teacher failed; see its log.")
        record.update(epochs=epochs, wall_s=step["wall_s"],
                      teacher_run=cli_runs.read_teacher_run(run_dir))
        save()
    if not text_studies.has_outputs(outputs):
        text_studies.import_transfer_outputs(
            run_dir, os.path.join(folder, "transfer.tsv"), outputs, spec["text_fields"],
            spec["class_names"], name, os.path.join(args.work_dir, ds, f"import_{teacher}.log"))
    if "validation" not in record:
        record.update({split: teacher_nll(outputs, folder, spec, split)
                       for split in ("validation", "test")})
        save()
    if not args.tiny and not text_studies.has_outputs(kept):
        text_studies.copy_outputs(outputs, kept)
    return outputs


# --- students -------------------------------------------------------------

def run_call(key, task, outputs, minilm, methods, recipe, seed, flags, args):
    """One student call; returns (step, report or None)."""
    out = os.path.join(args.work_dir, "runs", key.replace("/", "_"))
    if os.path.exists(out):
        shutil.rmtree(out)  # an interrupted call: its students restart
    os.makedirs(os.path.dirname(out), exist_ok=True)
    step = cli_runs.run_cli(key, task + [
        "--teacher-outputs", outputs, "--preset", minilm,
        "--init-from-layers", str(recipe["layers"]), "--loss", *methods,
        "--epochs", str(recipe["epochs"]), "--learning-rate", str(recipe["learning_rate"]),
        "--seed", str(seed), "--verbose", "2", "--output-dir", out, *flags], out + ".log")
    report = cli_runs.read_report(out) if step["returncode"] == 0 else None
    if report is None:
        print(f"[{key}] failed; not recorded (log: {out}.log)", flush=True)
    return step, report


def fix_recipe(ds, spec, folder, outputs, args, minilm, state, save):
    """The data set's student recipe (`pilot` in the module docstring)."""
    recipes = state["recipes"].setdefault(ds, {"pilot": {}})
    if "fixed" in recipes:
        return recipes["fixed"]
    teacher_val = 100 * state["teachers"][ds]["balanced"]["teacher_run"]["accuracy"]["validation"]
    depths = (2,) if args.tiny else sorted(study_depth.RECIPES)
    for depth in depths:
        epochs, lr = study_depth.RECIPES[depth]
        recipe = {"layers": depth, "epochs": 1 if args.tiny else epochs, "learning_rate": lr}
        if str(depth) not in recipes["pilot"]:
            step, report = run_call(f"{ds}/pilot/layers{depth}", file_task(spec, folder, "transfer"),
                                    outputs, minilm, ["kl"], recipe, 0, [], args)
            if report is None:
                sys.exit(f"{SCRIPT}: the {ds} pilot at {depth} layers failed.")
            r = report["results"][0]
            recipes["pilot"][str(depth)] = dict(
                recipe, wall_s=step["wall_s"], best_val_accuracy=r["best_val_accuracy"],
                gap_points=teacher_val - 100 * r["best_val_accuracy"])
            save()
            print(f"[{ds} pilot] {depth} layers: validation accuracy "
                  f"{100 * r['best_val_accuracy']:.1f} against the teacher's {teacher_val:.1f}",
                  flush=True)
        if recipes["pilot"][str(depth)]["gap_points"] <= args.pilot_gap:
            break
    else:
        depth = min(recipes["pilot"], key=lambda d: (recipes["pilot"][d]["gap_points"], int(d)))
    chosen = recipes["pilot"][str(depth)]
    recipes["fixed"] = {k: chosen[k] for k in ("layers", "epochs", "learning_rate")}
    recipes["rule"] = (f"smallest depth of {list(depths)} whose seed-0 KL student's validation "
                       f"accuracy is within {args.pilot_gap} points of the balanced teacher's "
                       f"({teacher_val:.1f})")
    save()
    return recipes["fixed"]


def planned(args):
    """(dataset, teacher, seed, group) in the study's order."""
    early = min(3, args.seeds)
    phases = [(group, [seed]) for seed in range(early) for group in ("main", "matrix")]
    phases += [("more", range(args.extra_seeds))]
    phases += [(group, [seed]) for seed in range(early, args.seeds) for group in ("main", "matrix")]
    calls = [(ds, teacher, seed, group) for ds in args.datasets for group, seeds in phases
             for seed in seeds for teacher in TEACHERS]
    if args.tiny:  # every teacher and group once, not every pair
        calls = [c for c in calls if c[3] == "main" or c[1] == "confused"]
    return calls


def run_study(args):
    minilm = text_studies.require_minilm(SCRIPT)
    config = {k: v for k, v in vars(args).items()
              if k not in ("report", "figure", "datasets", "stop_after_minutes", "groups")}
    state, save = text_studies.load_state(args.out, {
        "config": config, "subsets": {}, "teachers": {}, "recipes": {}, "runs": {}})
    # Where the files live is not a study option: a worktree or another
    # machine resumes the same study.
    same = {k: v for k, v in state["config"].items() if k not in ("out", "work_dir")}
    if same != {k: v for k, v in config.items() if k not in ("out", "work_dir")}:
        sys.exit(f"{SCRIPT}: {args.out} records other options ({state['config']}); "
                 "use another --out.")
    import time
    deadline = time.time() + 60 * args.stop_after_minutes if args.stop_after_minutes else None
    prepared = {}
    for ds, teacher, seed, group in planned(args):
        key = f"{ds}/{teacher}/seed{seed}/{group}"
        if key in state["runs"] or (args.groups and group not in args.groups):
            continue
        if deadline and time.time() > deadline:
            print(f"[{SCRIPT}] --stop-after-minutes reached; not launching {key}", flush=True)
            return
        spec = DATASETS[ds]
        folder = os.path.join(args.work_dir, ds, "subsets")
        if ds not in prepared:
            state["subsets"][ds] = write_subsets(ds, spec, folder, args)
            save()
            outputs = {"balanced": prepare_teacher(ds, "balanced", spec, folder, args, minilm,
                                                   state, save)}
            recipe = fix_recipe(ds, spec, folder, outputs["balanced"], args, minilm, state, save)
            for t in TEACHERS[1:]:
                outputs[t] = prepare_teacher(ds, t, spec, folder, args, minilm, state, save)
            prepared[ds] = (outputs, recipe)
        outputs, recipe = prepared[ds]
        methods, flags = GROUPS[group]
        step, report = run_call(key, file_task(spec, folder, "transfer"), outputs[teacher],
                                minilm, list(methods), recipe, seed, list(flags), args)
        if report is None:
            continue
        state["runs"][key] = {
            "dataset": ds, "teacher": teacher, "seed": seed, "group": group,
            "recipe": recipe, "wall_s": step["wall_s"],
            "results": {r["method"]: r for r in report["results"]},
            "teacher_result": report["teacher"],
            "calibrated_teacher": report.get("calibrated_teacher"),
            "coefficients": report.get("coefficients"),
            "finished_utc": cli_runs.utc_now()}
        save()
        accs = ", ".join(f"{r['method']} {r['accuracy']:.4f}" for r in report["results"])
        print(f"[{key}] {accs} ({step['wall_s']:.0f} s)", flush=True)


# --- report ---------------------------------------------------------------

def _runs_of(state, ds):
    return {k: r for k, r in state["runs"].items() if r["dataset"] == ds}


def _cell(values, digits=1):
    import numpy as np

    values = np.asarray(values, float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (1 seed)"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def report(path):
    """Markdown tables of a recorded study (no training)."""
    import numpy as np

    with open(path) as f:
        state = json.load(f)
    datasets = [ds for ds in DATASETS if _runs_of(state, ds)]
    lines = []
    for ds in datasets:
        rec = state["recipes"].get(ds, {})
        fixed = rec.get("fixed", {})
        pilot = "; ".join(f"{d} layers: val. acc. {100 * p['best_val_accuracy']:.1f}, gap "
                          f"{p['gap_points']:+.1f} points, {p['wall_s'] / 60:.1f} min"
                          for d, p in sorted(rec.get("pilot", {}).items()))
        lines += [f"Recipe `{ds}`: {fixed.get('layers')} layers, {fixed.get('epochs')} epochs, "
                  f"peak lr {fixed.get('learning_rate')} ({rec.get('rule')}; pilot: {pilot}).",
                  ""]
    # Table 2 layout: one column per data set, per teacher.
    for teacher in TEACHERS:
        if not any(r["teacher"] == teacher for r in state["runs"].values()):
            continue
        lines += [f"#### Teacher `{teacher}`: test accuracy (%), mean ± sd over seeds (n)", "",
                  "| method | " + " | ".join(datasets) + " |",
                  "|---" * (len(datasets) + 1) + "|"]
        row = ["teacher"]
        for ds in datasets:
            t = state["teachers"].get(ds, {}).get(teacher, {})
            row.append(f"{100 * t['test']['accuracy']:.1f}" if "test" in t else "-")
        lines.append("| " + " | ".join(row) + " |")
        for label, entries in COLUMNS.items():
            row = [label]
            for ds in datasets:
                chosen = study_sst2_bias.per_seed(_runs_of(state, ds), teacher, entries)
                acc = [100 * chosen[s]["accuracy"] for s in sorted(chosen)]
                row.append(f"{_cell(acc).replace(' (1 seed)', '')} ({len(acc)})" if acc else "-")
            if any(c != "-" for c in row[1:]):  # methods not run yet: no row
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    for ds in datasets:
        lines += detail(state, ds)
    lines += pooled(state, datasets)
    return "\n".join(lines)


def detail(state, ds):
    """Per teacher of `ds`: accuracy, macro-F1, NLL, ECE and the paired
    differences against KL, then the head-to-head comparisons."""
    import numpy as np

    runs = _runs_of(state, ds)
    lines = [f"#### {ds}: subsets {json.dumps({k: v['rows'] for k, v in state['subsets'][ds].items() if 'class_counts' in v})}; "
             f"confused teacher: {json.dumps(state['subsets'][ds]['confused_flipped'])}", ""]
    for teacher in TEACHERS:
        t_runs = [r for r in runs.values() if r["teacher"] == teacher]
        if not t_runs:
            continue
        rec = state["teachers"][ds][teacher]
        run = rec["teacher_run"]
        recal = {g: next((r["calibrated_teacher"] for r in t_runs
                          if r.get("calibrated_teacher") and r["group"] == g), None)
                 for g in ("main", "matrix")}
        head = (f"#### {ds}, teacher `{teacher}` ({rec['epochs']} epochs, "
                f"{rec['wall_s'] / 60:.1f} min): test accuracy {100 * rec['test']['accuracy']:.1f}, "
                f"NLL {rec['test']['nll']:.3f}, ECE {t_runs[0]['teacher_result']['ece']:.3f}; "
                f"validation accuracy "
                f"{100 * rec['validation']['accuracy']:.1f}, NLL {rec['validation']['nll']:.3f}; "
                f"teacher-train accuracy {100 * run['accuracy']['train']:.1f}")
        for g, name in (("main", "vector"), ("matrix", "matrix")):
            if recal[g]:
                head += (f". Recalibrated ({name}): test accuracy "
                         f"{100 * recal[g]['accuracy']:.1f}, NLL {recal[g]['nll']:.3f}, "
                         f"ECE {recal[g]['ece']:.3f}")
        lines += [head, "",
                  "| method | seeds | test acc. | macro-F1 | Δ acc. vs KL | per seed | paired t p "
                  "| test NLL | Δ NLL | test ECE | Δ ECE |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        kl = study_sst2_bias.per_seed(runs, teacher, COLUMNS["KL"])
        for label, entries in COLUMNS.items():
            chosen = study_sst2_bias.per_seed(runs, teacher, entries)
            if not chosen:
                continue
            seeds = sorted(chosen)
            cells = [label, ",".join(map(str, seeds)),
                     _cell([100 * chosen[s]["accuracy"] for s in seeds]),
                     _cell([100 * chosen[s]["macro_f1"] for s in seeds])]
            if label == "KL":
                cells += ["-", "-", "-"]
            else:
                d, diff, p = study_sst2_bias.paired(chosen, kl)
                cells += [f"{d:+.2f}", ", ".join(f"{x:+.1f}" for x in diff),
                          "-" if np.isnan(p) else f"{p:.3f}"]
            for metric in ("nll", "ece"):
                cells.append(f"{np.mean([chosen[s][metric] for s in seeds]):.3f}")
                cells.append("-" if label == "KL"
                             else f"{study_sst2_bias.paired(chosen, kl, metric)[0]:+.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        for a, b in HEAD_TO_HEAD:
            d, diff, p = study_sst2_bias.paired(study_sst2_bias.per_seed(runs, teacher, COLUMNS[a]),
                                                study_sst2_bias.per_seed(runs, teacher, COLUMNS[b]))
            if len(diff):
                lines += ["", f"{a} minus {b}: {d:+.2f} points (per seed "
                              f"{', '.join(f'{x:+.1f}' for x in diff)}; paired t p = "
                              + ("-" if np.isnan(p) else f"{p:.3f}") + ")."]
        wall = sum(r["wall_s"] for r in t_runs)
        lines += ["", f"{len(t_runs)} student calls, {wall / 60:.0f} min of summed wall time.", ""]
    return lines


def pooled(state, datasets):
    """Paired differences pooled over (data set, teacher, seed)."""
    import numpy as np
    from scipy import stats

    pairs = [("PTLoss (brier)", "KL"), ("KL, recal. teacher (vector)", "KL"),
             ("KL, recal. teacher (matrix)", "KL"), *HEAD_TO_HEAD,
             ("Temperature (T = 2)", "KL"), ("DKD", "KL"), ("DIST", "KL")]
    lines = ["#### Pooled over data sets and teachers (accuracy points; (data set, teacher, "
             "seed) pairs)", "",
             "| comparison | pairs | mean Δ | paired t p | Wilcoxon p |", "|---|---|---|---|---|"]
    for a, b in pairs:
        diff = np.concatenate([
            study_sst2_bias.paired(study_sst2_bias.per_seed(_runs_of(state, ds), t, COLUMNS[a]),
                                   study_sst2_bias.per_seed(_runs_of(state, ds), t, COLUMNS[b]))[1]
            for ds in datasets for t in TEACHERS] or [np.zeros(0)])
        if len(diff) < 2:
            continue
        t_p = stats.ttest_1samp(diff, 0.0).pvalue if np.ptp(diff) > 1e-12 else float("nan")
        w_p = stats.wilcoxon(diff).pvalue if np.any(diff != 0) else float("nan")
        lines.append(f"| {a} − {b} | {len(diff)} | {diff.mean():+.2f} | {t_p:.3f} | {w_p:.3f} |")
    return lines


def figure(path, png):
    """Δ test accuracy against KL (points) per method, one panel per
    (data set, teacher): a dot per seed, the mean as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    with open(path) as f:
        state = json.load(f)
    panels = [(ds, t) for ds in DATASETS for t in TEACHERS
              if any(r["teacher"] == t for r in _runs_of(state, ds).values())]
    if not panels:
        return
    labels = [c for c in COLUMNS if c != "KL"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 4.6), sharey=True,
                             squeeze=False)
    for ax, (ds, teacher) in zip(axes[0], panels):
        runs = _runs_of(state, ds)
        kl = study_sst2_bias.per_seed(runs, teacher, COLUMNS["KL"])
        for i, label in enumerate(labels):
            _, diff, _ = study_sst2_bias.paired(
                study_sst2_bias.per_seed(runs, teacher, COLUMNS[label]), kl)
            if len(diff):
                colour = "C0" if "PTLoss" in label else "C1" if "recal" in label else "C2"
                ax.bar(i, diff.mean(), color=colour, alpha=0.5)
                ax.plot(np.full(len(diff), i), diff, "k.", ms=4)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{ds}: teacher {teacher}", fontsize=10)
    axes[0][0].set_ylabel("test accuracy − KL's (points), per seed")
    fig.tight_layout()
    text_studies.save_figure(fig, png, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS),
                        choices=list(DATASETS) + list(NOT_RUN))
    parser.add_argument("--work-dir", default="/tmp/study_multiclass_text")
    parser.add_argument("--out", default=os.path.join(text_studies.RESULTS,
                                                      "study_multiclass_text.json"))
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--shift-fraction", type=float, default=0.6)
    parser.add_argument("--confusion-fraction", type=float, default=0.5)
    parser.add_argument("--teacher-epochs", type=int, default=4)
    parser.add_argument("--overconfident-epochs", type=int, default=12)
    parser.add_argument("--teacher-learning-rate", type=float, default=1e-4)
    parser.add_argument("--pilot-gap", type=float, default=2.0,
                        help="accuracy points: the recipe rule's tolerance (module docstring)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of main and matrix")
    parser.add_argument("--extra-seeds", type=int, default=3, help="seeds of more")
    parser.add_argument("--stop-after-minutes", type=float,
                        help="launch no new call after this many minutes (a budget)")
    parser.add_argument("--groups", nargs="+", choices=("main", "matrix", "more"),
                        help="launch only these groups' calls now (the plan and the recorded "
                             "options stay the same: a later run without it fills the rest)")
    parser.add_argument("--tiny", action="store_true",
                        help="a dry run: 120 transfer / teacher rows, 100 validation / test "
                             "rows, 1 epoch, 2 layers, 1 seed; state in the work directory")
    text_studies.add_report_options(parser)
    args = parser.parse_args()
    if text_studies.reported(args, report, figure):
        return
    for ds in args.datasets:
        if ds in NOT_RUN:
            sys.exit(f"{SCRIPT}: {ds}: {NOT_RUN[ds]}")
    if args.tiny:
        args.teacher_epochs = args.seeds = args.extra_seeds = 1
        args.overconfident_epochs = 2
        args.work_dir = args.work_dir.rstrip("/") + "_tiny"
        if "--datasets" not in sys.argv:
            args.datasets = ["trec"]
        if "--out" not in sys.argv:
            args.out = os.path.join(args.work_dir, "study_multiclass_text_tiny.json")
    os.makedirs(args.work_dir, exist_ok=True)
    run_study(args)


if __name__ == "__main__":
    main()
