"""Issue 13, section 3: PTLoss against KL and against a recalibrated teacher,
on real SST-2 text, with teachers of realistic bias.

Three all-MiniLM-L6-v2 teachers are fine-tuned with `ptloss-distill teacher`
on SST-2 training rows that the students never see:

* `balanced`: `--teacher-examples` rows at the natural class ratio
  (44% negative), `--teacher-epochs` epochs: the control;
* `shifted`: the same number of rows, `--shifted-negative` (85%) negative:
  a teacher trained where one class is far more frequent than where the
  student is deployed (label shift);
* `overconfident`: the balanced rows, `--overconfident-epochs` epochs, far
  past its best validation NLL while its accuracy holds.

Each teacher then predicts the students' transfer set (`--transfer-examples`
SST-2 training rows at the natural ratio, disjoint from the teachers' rows)
through its saved `teacher.keras`, and those outputs enter the students' runs
through `ptloss-distill import-teacher`, a user's path for an external
teacher. Students: the first 2 layers of the same MiniLM, sequence length 64
(length-bucketed), `--epochs` (4) epochs at peak learning rate
`--learning-rate` (3e-4, cosine schedule with warmup). Validation (coefficient search, recalibration, best
epoch, grid selection): the 872 training rows that `--task sst2` holds out.
Test: GLUE dev (872 rows).

One `ptloss-distill` call per (teacher, seed, group); groups, in the order
they run (all teachers and seeds of a group before the next group, so that
a partial study still answers the main question):

* `main` (seeds 0..`--seeds`-1): `kl`, `ptloss` (brier), `kl_calibrated`
  (vector scaling);
* `more` (seeds 0..`--extra-seeds`-1): `ptloss` with the paper's Eq. 21
  (`--criterion deviation`), `kl_calibrated` with temperature scaling;
* `grid_a`, `grid_b` (same seeds): `ptloss_calibrated` (vector, brier;
  grid_a only), and the baselines `temperature` (T in {0.5, 2}) and
  `label_smoothing` (0.05, 0.2), values from the paper's grid (Appendix A.1);
  per seed the value with the better validation accuracy is reported.

The state is one JSON (`--out`, default
`experiments/results/study_sst2_bias.json`), rewritten atomically after each
finished step, so rerunning the command resumes. From the repository root:

    nice python -m experiments.study_sst2_bias [--seeds 5] [--extra-seeds 3]
    python -m experiments.study_sst2_bias --report experiments/results/study_sst2_bias.json
    python -m experiments.study_sst2_bias --tiny   # a 3-minute end-to-end dry run

The report prints, per teacher, the paper's Table 2 layout (mean ± sd test
accuracy over seeds, NLL, ECE), the paired differences against KL with a
paired t test, and `--figure PNG` draws Δ accuracy vs KL per teacher.
"""

import argparse
import json
import os
import shutil
import sys
import time

if not __package__:
    sys.exit("study_sst2_bias: run it from the repository root as "
             "`python -m experiments.study_sst2_bias ...`.")

from bench import cli_runs  # noqa: E402

from . import text_studies  # noqa: E402

TEACHERS = ("balanced", "shifted", "overconfident")
CLASS_NAMES = ("negative", "positive")
#: group -> (methods, extra CLI flags); the order of the study.
GROUPS = {
    "main": (("kl", "ptloss", "kl_calibrated"),
             ("--criterion", "brier", "--calibration", "vector")),
    "more": (("ptloss", "kl_calibrated"),
             ("--criterion", "deviation", "--calibration", "temperature")),
    "grid_a": (("ptloss_calibrated", "temperature", "label_smoothing"),
               ("--criterion", "brier", "--calibration", "vector",
                "--temperature", "0.5", "--smoothing", "0.05")),
    "grid_b": (("temperature", "label_smoothing"),
               ("--temperature", "2.0", "--smoothing", "0.2")),
}
#: The report's columns: label -> ((group, method), ...); several entries
#: form a grid, of which each seed's best validation accuracy is reported.
COLUMNS = {
    "KL": (("main", "kl"),),
    "PTLoss (brier)": (("main", "ptloss"),),
    "KL, recal. teacher (vector)": (("main", "kl_calibrated"),),
    "PTLoss (Eq. 21)": (("more", "ptloss"),),
    "KL, recal. teacher (temperature)": (("more", "kl_calibrated"),),
    "PTLoss, recal. teacher": (("grid_a", "ptloss_calibrated"),),
    "Temperature": (("grid_a", "temperature"), ("grid_b", "temperature")),
    "Label smoothing": (("grid_a", "label_smoothing"), ("grid_b", "label_smoothing")),
    # What the CLI's default run hands a user: its last lines name the
    # student with the best validation accuracy among kl, kl_calibrated, ptloss.
    "Default run's pick (best val. of the 3)": (("main", "kl"), ("main", "ptloss"),
                                                ("main", "kl_calibrated")),
}

#: Per-teacher comparisons between two methods, beyond each one's Δ vs KL:
#: does recalibration beat PTLoss, and does PTLoss add anything once the
#: teacher is recalibrated?
HEAD_TO_HEAD = (("KL, recal. teacher (vector)", "PTLoss (brier)"),
                ("PTLoss, recal. teacher", "KL, recal. teacher (vector)"))


def _read_rows(path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        rows = [line.rstrip("\r\n").split("\t") for line in f if line.strip()]
    return header, rows


def write_subsets(folder, args):
    """The TSVs of the study in `folder` (header `sentence label sst2_row`):
    validation (the CLI's 872 held-out rows of train.tsv), test (dev.tsv),
    the transfer set and each teacher's training rows, drawn with
    `--subset-seed` from the other training rows. Returns their row counts
    and class-0 fractions."""
    import numpy as np

    src = os.path.join(cli_runs.data_root(), "glue", "SST-2")
    for name in ("train.tsv", "dev.tsv"):
        if not os.path.exists(os.path.join(src, name)):
            raise SystemExit(f"{os.path.join(src, name)} not found; set $PTLOSS_DATA_DIR "
                             "(see ../shared/docs/DATA.md).")
    header, rows = _read_rows(os.path.join(src, "train.tsv"))
    _, dev = _read_rows(os.path.join(src, "dev.tsv"))
    labels = np.array([int(r[1]) for r in rows])
    held = np.sort(np.random.default_rng(cli_runs.SST2_HOLDOUT_SEED).permutation(
        len(rows))[:cli_runs.SST2_HOLDOUT])
    rng = np.random.default_rng(args.subset_seed)
    rest = rng.permutation(np.setdiff1d(np.arange(len(rows)), held))
    transfer = np.sort(rest[:args.transfer_examples])
    pool = rest[args.transfer_examples:]
    balanced = np.sort(pool[:args.teacher_examples])
    n_neg = int(round(args.shifted_negative * args.teacher_examples))
    negatives, positives = pool[labels[pool] == 0], pool[labels[pool] == 1]
    shifted = np.sort(np.concatenate([negatives[:n_neg],
                                      positives[:args.teacher_examples - n_neg]]))
    val = held[:200] if args.tiny else held
    test = np.arange(200 if args.tiny else len(dev))
    subsets = {"validation": (rows, val), "test": (dev, test), "transfer": (rows, transfer),
               "teacher_balanced": (rows, balanced), "teacher_shifted": (rows, shifted)}
    os.makedirs(folder, exist_ok=True)
    summary = {}
    for name, (source, idx) in subsets.items():
        path = os.path.join(folder, f"{name}.tsv")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\tsst2_row\n")
            for i in idx:
                f.write(f"{source[i][0]}\t{source[i][1]}\t{int(i)}\n")
        os.replace(tmp, path)
        y = np.array([int(source[i][1]) for i in idx])
        summary[name] = {"rows": int(len(idx)), "negative_fraction": round(float((y == 0).mean()), 4)}
    summary["teacher_overconfident"] = summary["teacher_balanced"]
    return summary


def teacher_task(folder, teacher):
    rows = "teacher_shifted" if teacher == "shifted" else "teacher_balanced"
    return ["--task", "file", "--train-file", os.path.join(folder, f"{rows}.tsv"),
            "--validation-file", os.path.join(folder, "validation.tsv"),
            "--test-file", os.path.join(folder, "test.tsv"),
            "--class-names", *CLASS_NAMES, "--sequence-length", "64"]


def student_task(folder):
    # The transfer set is the students' `--train-file`; its ids are
    # `transfer/<row>` (the file's stem), which the imported outputs use.
    return ["--task", "file", "--train-file", os.path.join(folder, "transfer.tsv"),
            "--validation-file", os.path.join(folder, "validation.tsv"),
            "--test-file", os.path.join(folder, "test.tsv"),
            "--class-names", *CLASS_NAMES, "--sequence-length", "64"]


#: The teachers' outputs kept with the results, so that the study resumes
#: with the same teachers on a machine whose work directory is gone.
KEPT_OUTPUTS = os.path.join(text_studies.RESULTS, "study_sst2_bias_teachers")
OUTPUT_FILES = text_studies.OUTPUT_FILES
has_outputs = text_studies.has_outputs
copy_outputs = text_studies.copy_outputs


def prepare_teacher(name, args, folder, minilm, state, save):
    """Fine-tunes teacher `name` (once) and writes the students' teacher
    outputs for it: train.jsonl = its predictions on the transfer set
    (imported), validation/test.jsonl = the teacher CLI's own. They are also
    kept in `KEPT_OUTPUTS/<name>/` (not for `--tiny`), and restored from
    there when the work directory lacks them. Returns the outputs folder."""
    record = state["teachers"].setdefault(name, {})
    run_dir = os.path.join(args.work_dir, f"teacher_{name}")
    outputs = os.path.join(args.work_dir, f"outputs_{name}")
    kept = os.path.join(KEPT_OUTPUTS, name)
    if (not args.tiny and "teacher_run" in record
            and not os.path.exists(os.path.join(outputs, "train.jsonl"))):
        if not has_outputs(kept):
            sys.exit(f"study_sst2_bias: {outputs} and {kept} lack the {name} teacher's "
                     f"outputs that {args.out} records; use another --out to start afresh.")
        copy_outputs(kept, outputs)
        print(f"[teacher {name}] outputs restored from {kept}", flush=True)
    if "teacher_run" not in record:
        epochs = args.overconfident_epochs if name == "overconfident" else args.teacher_epochs
        step = cli_runs.run_cli(f"teacher {name}", ["teacher"] + teacher_task(folder, name) + [
            "--preset", minilm, "--epochs", str(epochs), "--output-dir", run_dir,
            "--teacher-name", f"all-MiniLM-L6-v2 SST-2 {name}", "--seed", str(args.subset_seed),
            "--overwrite"], os.path.join(args.work_dir, f"teacher_{name}.log"))
        if step["returncode"]:
            sys.exit(f"study_sst2_bias: the {name} teacher failed; see its log.")
        record.update(epochs=epochs, wall_s=step["wall_s"],
                      teacher_run=cli_runs.read_teacher_run(run_dir))
        save()
    if not os.path.exists(os.path.join(outputs, "train.jsonl")):
        t0 = time.perf_counter()
        text_studies.import_transfer_outputs(
            run_dir, os.path.join(folder, "transfer.tsv"), outputs, ["sentence"], CLASS_NAMES,
            f"all-MiniLM-L6-v2 SST-2 {name}", os.path.join(args.work_dir, f"import_{name}.log"))
        record["transfer_predict_s"] = time.perf_counter() - t0
        save()
    if not args.tiny and not has_outputs(kept):
        copy_outputs(outputs, kept)
    return outputs


def planned(args):
    calls = []
    for group in GROUPS:
        seeds = args.seeds if group == "main" else args.extra_seeds
        for seed in range(seeds):
            calls += [(teacher, seed, group) for teacher in TEACHERS]
    return calls


def run_study(args):
    minilm = text_studies.require_minilm("study_sst2_bias")
    folder = os.path.join(args.work_dir, "subsets")
    config = {k: v for k, v in vars(args).items() if k not in ("report", "figure", "predict")}
    state, save = text_studies.load_state(
        args.out, {"config": config, "subsets": None, "teachers": {}, "runs": {}})
    if state["config"] != config:
        sys.exit(f"study_sst2_bias: {args.out} records other options "
                 f"({state['config']}); use another --out.")
    state["subsets"] = write_subsets(folder, args)
    save()
    outputs = {name: prepare_teacher(name, args, folder, minilm, state, save)
               for name in TEACHERS}
    for teacher, seed, group in planned(args):
        key = f"{teacher}/seed{seed}/{group}"
        if key in state["runs"]:
            continue
        methods, flags = GROUPS[group]
        out = os.path.join(args.work_dir, "runs", key.replace("/", "_"))
        if os.path.exists(out):
            shutil.rmtree(out)  # an interrupted call: its students restart
        os.makedirs(os.path.dirname(out), exist_ok=True)
        step, report = text_studies.run_student(
            key, student_task(folder), outputs[teacher], minilm, list(methods), args.epochs,
            seed, out, list(flags) + ["--learning-rate", str(args.learning_rate)])
        if report is None:
            continue
        state["runs"][key] = {
            "teacher": teacher, "seed": seed, "group": group, "wall_s": step["wall_s"],
            "results": {r["method"]: r for r in report["results"]},
            "teacher_result": report["teacher"],
            "calibrated_teacher": report.get("calibrated_teacher"),
            "coefficients": report.get("coefficients"),
            "finished_utc": cli_runs.utc_now()}
        save()
        accs = ", ".join(f"{r['method']} {r['accuracy']:.4f}" for r in report["results"])
        print(f"[{key}] {accs} ({step['wall_s']:.0f} s)", flush=True)


def per_seed(runs, teacher, entries):
    """{seed: result} of one column: the entry of the grid with the best
    validation accuracy per seed."""
    out = {}
    for run in runs.values():
        if run["teacher"] != teacher:
            continue
        for group, method in entries:
            if run["group"] == group and method in run["results"]:
                result = dict(run["results"][method], group=group)
                best = out.get(run["seed"])
                if best is None or result["best_val_accuracy"] > best["best_val_accuracy"]:
                    out[run["seed"]] = result
    return out


def paired(chosen, kl, metric="accuracy"):
    """(mean difference in points, per-seed differences, paired t p) against KL."""
    import numpy as np
    from scipy import stats

    common = sorted(set(chosen) & set(kl))
    a = np.array([chosen[s][metric] for s in common])
    b = np.array([kl[s][metric] for s in common])
    diff = 100 * (a - b) if metric == "accuracy" else a - b
    p = (float(stats.ttest_rel(a, b).pvalue) if len(common) >= 2 and np.ptp(diff) > 1e-12
         else float("nan"))
    return (float(diff.mean()) if len(diff) else float("nan")), diff, p


def report(path):
    """Markdown tables of a recorded study (no training)."""
    import numpy as np

    with open(path) as f:
        state = json.load(f)
    runs = state["runs"]
    lines = [f"Subsets: {json.dumps(state['subsets'])}", ""]
    for teacher in TEACHERS:
        record = state["teachers"].get(teacher, {})
        t_runs = [r for r in runs.values() if r["teacher"] == teacher]
        if not t_runs:
            continue
        t = t_runs[0]["teacher_result"]
        counts = t.get("prediction_counts")
        recal = next((r["calibrated_teacher"] for r in t_runs
                      if r.get("calibrated_teacher") and r["group"] == "main"), None)
        lines += [f"### Teacher `{teacher}` ({record.get('epochs')} epochs, "
                  f"{record.get('wall_s', 0) / 60:.1f} min): test accuracy "
                  f"{100 * t['accuracy']:.1f}, validation accuracy "
                  f"{100 * t['validation_accuracy']:.1f}"
                  + (f", test NLL {t['nll']:.3f}, ECE {t['ece']:.3f}" if 'nll' in t else "")
                  + (f"; test predictions {counts}" if counts else "")
                  + (f". Recalibrated (vector): test accuracy {100 * recal['accuracy']:.1f}, "
                     f"NLL {recal['nll']:.3f}, ECE {recal['ece']:.3f}" if recal else ""), "",
                  "| method | seeds | test acc. (mean ± sd) | Δ acc. vs KL (points) | per seed "
                  "| paired t p | test NLL | Δ NLL | test ECE | Δ ECE |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        kl = per_seed(runs, teacher, COLUMNS["KL"])
        for label, entries in COLUMNS.items():
            chosen = per_seed(runs, teacher, entries)
            if not chosen:
                continue
            acc = np.array([100 * chosen[s]["accuracy"] for s in sorted(chosen)])
            sd = f" ± {acc.std(ddof=1):.1f}" if len(acc) > 1 else ""
            cells = [label, str(len(acc)), f"{acc.mean():.1f}{sd}"]
            if label == "KL":
                cells += ["-", "-", "-"]
            else:
                d, diff, p = paired(chosen, kl)
                cells += [f"{d:+.2f}", ", ".join(f"{x:+.1f}" for x in diff),
                          "-" if np.isnan(p) else f"{p:.3f}"]
            for metric in ("nll", "ece"):
                cells.append(f"{np.mean([chosen[s][metric] for s in chosen]):.3f}")
                cells.append("-" if label == "KL" else f"{paired(chosen, kl, metric)[0]:+.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        for a, b in HEAD_TO_HEAD:
            d, diff, p = paired(per_seed(runs, teacher, COLUMNS[a]),
                                per_seed(runs, teacher, COLUMNS[b]))
            if len(diff):
                lines += ["", f"{a} minus {b}: {d:+.2f} points (per seed "
                              f"{', '.join(f'{x:+.1f}' for x in diff)}; paired t p = "
                              + ("-" if np.isnan(p) else f"{p:.3f}") + ")."]
        lines += grid_choices(runs, teacher)
        wall = sum(r["wall_s"] for r in t_runs)
        lines += ["", f"{len(t_runs)} student calls, {wall / 60:.0f} min of summed wall time.", ""]
    lines += pooled(runs)
    return "\n".join(lines)


def grid_choices(runs, teacher):
    """One line per baseline grid: the value each seed's validation accuracy
    selected (the report's column is those students)."""
    values = {group: dict(zip(GROUPS[group][1][::2], GROUPS[group][1][1::2]))
              for group in GROUPS}
    lines = []
    for label, flag in (("Temperature", "--temperature"), ("Label smoothing", "--smoothing")):
        chosen = per_seed(runs, teacher, COLUMNS[label])
        if chosen:
            picks = ", ".join(f"seed {s}: {values[chosen[s]['group']][flag]}"
                              for s in sorted(chosen))
            lines += ["", f"{label}: value selected on validation accuracy per seed ({picks})."]
    return lines


def pooled(runs):
    """Paired differences pooled over the teachers' (teacher, seed) pairs:
    mean, paired t p and Wilcoxon signed-rank p."""
    import numpy as np
    from scipy import stats

    pairs = [("PTLoss (brier)", "KL"), ("KL, recal. teacher (vector)", "KL"),
             *HEAD_TO_HEAD, ("Default run's pick (best val. of the 3)", "KL"),
             ("Temperature", "KL"), ("Label smoothing", "KL")]
    lines = ["### Pooled over the teachers (accuracy points; (teacher, seed) pairs)", "",
             "| comparison | teachers | pairs | mean Δ | paired t p | Wilcoxon p |",
             "|---|---|---|---|---|---|"]
    for a, b in pairs:
        for label, teachers in (("all three", TEACHERS), ("balanced + overconfident",
                                                          ("balanced", "overconfident"))):
            diff = np.concatenate([paired(per_seed(runs, t, COLUMNS[a]),
                                          per_seed(runs, t, COLUMNS[b]))[1] for t in teachers])
            if len(diff) < 2:
                continue
            t_p = stats.ttest_1samp(diff, 0.0).pvalue if np.ptp(diff) > 1e-12 else float("nan")
            w_p = stats.wilcoxon(diff).pvalue if np.any(diff != 0) else float("nan")
            lines.append(f"| {a} − {b} | {label} | {len(diff)} | {diff.mean():+.2f} | "
                         f"{t_p:.3f} | {w_p:.3f} |")
    return lines


def figure(path, png):
    """Δ test accuracy against KL (points), per method and teacher: one dot
    per seed, the mean as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    with open(path) as f:
        runs = json.load(f)["runs"]
    labels = [c for c in COLUMNS if c != "KL" and any(
        per_seed(runs, t, COLUMNS[c]) for t in TEACHERS)]

    def colour(label):
        if label.startswith("Default"):
            return "0.5"
        return "C0" if "PTLoss" in label else "C1" if "recal" in label else "C2"

    fig, axes = plt.subplots(1, len(TEACHERS), figsize=(4.2 * len(TEACHERS), 4.6), sharey=True)
    for ax, teacher in zip(axes, TEACHERS):
        kl = per_seed(runs, teacher, COLUMNS["KL"])
        for i, label in enumerate(labels):
            chosen = per_seed(runs, teacher, COLUMNS[label])
            _, diff, _ = paired(chosen, kl)
            if len(diff):
                ax.bar(i, diff.mean(), color=colour(label), alpha=0.5)
                ax.plot(np.full(len(diff), i), diff, "k.", ms=4)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"teacher: {teacher}")
    axes[0].set_ylabel("test accuracy − KL's (points), per seed")
    fig.tight_layout()
    text_studies.save_figure(fig, png, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="/tmp/study_sst2_bias")
    parser.add_argument("--out", default=os.path.join(text_studies.RESULTS, "study_sst2_bias.json"))
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--transfer-examples", type=int, default=1500)
    parser.add_argument("--teacher-examples", type=int, default=2000)
    parser.add_argument("--shifted-negative", type=float, default=0.85)
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--overconfident-epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4, help="student epochs")
    parser.add_argument("--learning-rate", type=float, default=3e-4,
                        help="the students' peak learning rate (cosine schedule): the CLI's "
                             "default for pretrained weights, 5e-5, left 2-epoch students of "
                             "1,500 rows predicting one class")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--extra-seeds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true",
                        help="a dry run: 200 rows each, 1 epoch, 1 seed")
    text_studies.add_report_options(parser)
    args = parser.parse_args()
    if text_studies.reported(args, report, figure):
        return
    if args.tiny:
        args.transfer_examples = args.teacher_examples = 200
        args.teacher_epochs = args.epochs = args.seeds = args.extra_seeds = 1
        args.overconfident_epochs = 2
    run_study(args)


if __name__ == "__main__":
    main()
