"""Issue 22, section 2: the synthetic task with K = 3 (and K = 5) classes, a
known posterior p*, and teachers with the biases a K-class teacher can have.

One `ptloss-distill` call (the installed CLI, as a user runs it) per
(K, bias, strength, seed, group). Task size: `--synthetic-train 2000
--synthetic-validation 500 --synthetic-test 2000` (half the embedded
default's training and validation rows, its test rows), the CLI's default
student (2-layer BERT from scratch, hidden 64), 6 epochs, negation off (the
CLI default). `--seed` is both the task draw (texts, labels, evidence words)
and the student's initialisation, so a seed pairs every method on one task.

Teachers (`BIASES`; the flags of `ptloss-distill`, each bias at a weak and a
strong strength; every other bias switched off):

* `prior`: `--prior-shift` 1 / 2 on class 0's logit, calibrated otherwise;
* `overconfident`: `--overconfidence` 1.5 / 2.5 (logits x s);
* `confusion`: `--teacher-confusion` 0.4 / 0.8 with `--confusion-classes 1 2`:
  a fraction c of class 1's true logit evidence moves to class 2
  (l_1 <- (1 - c) l_1, l_2 <- l_2 + c l_1); at 0.8 the teacher reads pure
  class-1 evidence as class 2 (past c = K / (2(K-1))). A linear map of the
  logits: no per-class map undoes it, matrix scaling on log p only in part;
* `prior+overconfident`: shift 1 and x1.5 / shift 2 and x2.5.

Groups (methods of one call, and their flags):

* `main`: `kl`, `kl_calibrated` (vector scaling), `ptloss` (brier, M = 5,
  100 candidates: the CLI defaults);
* `matrix`: `kl_calibrated` with `--calibration matrix` (ODIR, its weight by
  5-fold cross-validation on the validation split);
* `more` (K = 3 only): `ptloss_calibrated` (PTLoss on the vector-scaled
  teacher), `temperature` (T = 2, the CLI default; no grid), `dkd`, `dist`
  (the authors' defaults, the CLI's).

The order of the calls (`planned`) makes a partial study answer the main
question first: K = 3, strong biases, seeds 0-2, `main` + `matrix`; then
`more` on those; then seeds 3-4 (`main` + `matrix`); then K = 5 strong
(`main` + `matrix`, seeds 0-2); then `more` on seeds 3-4; then the weak
strengths; then the rest of K = 5.

The state is one JSON (`--out`, default
`experiments/results/study_multiclass_synthetic.json`), rewritten
atomically after each finished call: rerunning the command resumes. From
the repository root:

    nice -n 10 python -m experiments.study_multiclass_synthetic [--deadline 2026-12-07T16:30]
    python -m experiments.study_multiclass_synthetic --report experiments/results/study_multiclass_synthetic.json \
        [--figure docs/images/multiclass_synthetic.png]
    python -m experiments.study_multiclass_synthetic --tiny   # a dry run (2 calls, seconds of training)

The report prints, per (K, strength) and bias, test accuracy and
KL(p* || student) (mean ± sd over seeds), the paired differences against
KL (paired t and Wilcoxon signed-rank p), and the head-to-heads: matrix
minus vector recalibration, and PTLoss minus the better recalibration
(chosen per seed on validation accuracy, which a user can do).
"""

import argparse
import datetime as dt
import json
import os
import shutil
import sys

if not __package__:
    sys.exit("study_multiclass_synthetic: run it from the repository root as "
             "`python -m experiments.study_multiclass_synthetic ...`.")

from bench import cli_runs  # noqa: E402

from . import text_studies  # noqa: E402

#: bias -> strength -> the teacher's flags (all of them, so the CLI's
#: default teacher, shift 2 and x1.5, never leaks in).
BIASES = {
    "prior": {"weak": (1.0, 1.0, 0.0), "strong": (2.0, 1.0, 0.0)},
    "overconfident": {"weak": (0.0, 1.5, 0.0), "strong": (0.0, 2.5, 0.0)},
    "confusion": {"weak": (0.0, 1.0, 0.4), "strong": (0.0, 1.0, 0.8)},
    "prior+overconfident": {"weak": (1.0, 1.5, 0.0), "strong": (2.0, 2.5, 0.0)},
}
#: group -> (methods, extra CLI flags)
GROUPS = {
    "main": (("kl", "kl_calibrated", "ptloss"),
             ("--calibration", "vector", "--criterion", "brier")),
    "matrix": (("kl_calibrated",), ("--calibration", "matrix")),
    "more": (("ptloss_calibrated", "temperature", "dkd", "dist"),
             ("--calibration", "vector", "--criterion", "brier", "--temperature", "2.0")),
}
#: The report's columns: label -> (group, method).
COLUMNS = {
    "KL": ("main", "kl"),
    "KL, recal. (vector)": ("main", "kl_calibrated"),
    "KL, recal. (matrix)": ("matrix", "kl_calibrated"),
    "PTLoss (brier)": ("main", "ptloss"),
    "PTLoss, recal. (vector)": ("more", "ptloss_calibrated"),
    "Temperature (T=2)": ("more", "temperature"),
    "DKD": ("more", "dkd"),
    "DIST": ("more", "dist"),
}
#: per seed, the recalibration with the better validation accuracy
BEST_RECAL = "KL, best recal. (val.)"
HEAD_TO_HEAD = (("KL, recal. (matrix)", "KL, recal. (vector)"),
                ("PTLoss (brier)", BEST_RECAL),
                ("PTLoss (brier)", "KL, recal. (vector)"),
                ("PTLoss, recal. (vector)", "KL, recal. (vector)"))
TASK_SIZE = ("--synthetic-train", "2000", "--synthetic-validation", "500",
             "--synthetic-test", "2000", "--epochs", "6")


def planned(tiny=False):
    """The calls in the order they run: `(K, bias, strength, seed, group)`."""
    if tiny:
        return [(3, "confusion", "strong", 0, "main"), (3, "confusion", "strong", 0, "matrix")]
    biases = list(BIASES)
    calls = []

    def add(K, strength, seeds, groups):
        for seed in seeds:
            for bias in biases:
                for group in groups:
                    call = (K, bias, strength, seed, group)
                    if call not in calls:
                        calls.append(call)

    add(3, "strong", range(3), ("main", "matrix"))
    add(3, "strong", range(3), ("more",))
    add(3, "strong", range(3, 5), ("main", "matrix"))
    add(5, "strong", range(3), ("main", "matrix"))
    add(3, "strong", range(3, 5), ("more",))
    add(3, "weak", range(5), ("main", "matrix"))
    add(3, "weak", range(5), ("more",))
    add(5, "strong", range(3, 5), ("main", "matrix"))
    add(5, "weak", range(5), ("main", "matrix"))
    return calls


def key_of(K, bias, strength, seed, group):
    return f"K{K}/{bias}/{strength}/seed{seed}/{group}"


def call_flags(K, bias, strength, seed, group, tiny=False):
    shift, scale, confusion = BIASES[bias][strength]
    methods, flags = GROUPS[group]
    size = (("--synthetic-train", "200", "--synthetic-validation", "100",
             "--synthetic-test", "100", "--epochs", "1") if tiny else TASK_SIZE)
    return ["--task", "synthetic", "--synthetic-classes", str(K), *size,
            "--prior-shift", str(shift), "--prior-shift-class", "0",
            "--overconfidence", str(scale), "--teacher-confusion", str(confusion),
            "--confusion-classes", "1", "2", "--loss", *methods, *flags,
            "--seed", str(seed), "--verbose", "2"]


def run_study(args):
    state, save = text_studies.load_state(args.out, {"config": {
        "task_size": list(TASK_SIZE), "biases": BIASES, "groups": {
            g: [list(m), list(f)] for g, (m, f) in GROUPS.items()}}, "runs": {}})
    deadline = dt.datetime.fromisoformat(args.deadline) if args.deadline else None
    for call in planned(args.tiny):
        key = key_of(*call)
        if key in state["runs"]:
            continue
        if deadline and dt.datetime.utcnow() >= deadline:
            print(f"deadline {args.deadline} UTC reached: no new calls.", flush=True)
            break
        out = os.path.join(args.work_dir, key.replace("/", "_"))
        if os.path.exists(out):
            shutil.rmtree(out)  # an interrupted call: its students restart
        os.makedirs(args.work_dir, exist_ok=True)
        step = cli_runs.run_cli(key, call_flags(*call, tiny=args.tiny) + ["--output-dir", out],
                                out + ".log")
        report = cli_runs.read_report(out) if step["returncode"] == 0 else None
        if report is None:
            print(f"[{key}] failed; not recorded (log: {out}.log)", flush=True)
            continue
        K, bias, strength, seed, group = call
        state["runs"][key] = {
            "K": K, "bias": bias, "strength": strength, "seed": seed, "group": group,
            "wall_s": step["wall_s"], "cpu_s": step["cpu_s"],
            "results": {r["method"]: _slim(r) for r in report["results"]},
            "teacher_result": _slim(report["teacher"]),
            "calibrated_teacher": _slim(report.get("calibrated_teacher")),
            "bayes_accuracy": report.get("bayes_accuracy"),
            "calibration": report.get("calibration"),
            "coefficients": report.get("coefficients"),
            "finished_utc": cli_runs.utc_now()}
        save()
        accs = ", ".join(f"{r['method']} {r['accuracy']:.4f}" for r in report["results"])
        print(f"[{key}] {accs} ({step['wall_s']:.0f} s)", flush=True)


def _slim(result):
    """A result without its bulky per-bin entries."""
    if not result:
        return result
    return {k: v for k, v in result.items() if k not in ("reliability", "reliability_bins")}


# -- report --------------------------------------------------------------------

def per_seed(runs, K, bias, strength, label):
    """{seed: result} of one column."""
    out = {}
    if label == BEST_RECAL:
        vec = per_seed(runs, K, bias, strength, "KL, recal. (vector)")
        mat = per_seed(runs, K, bias, strength, "KL, recal. (matrix)")
        for s in set(vec) & set(mat):
            out[s] = max((vec[s], mat[s]), key=lambda r: r["best_val_accuracy"])
        return out
    group, method = COLUMNS[label]
    for run in runs.values():
        if (run["K"], run["bias"], run["strength"], run["group"]) == (K, bias, strength, group):
            if method in run["results"]:
                out[run["seed"]] = run["results"][method]
    return out


def paired(a_runs, b_runs, metric):
    """(mean difference, per-seed differences, paired t p, Wilcoxon p); accuracy in points."""
    import numpy as np
    from scipy import stats

    common = sorted(set(a_runs) & set(b_runs))
    a = np.array([a_runs[s][metric] for s in common], dtype=float)
    b = np.array([b_runs[s][metric] for s in common], dtype=float)
    scale = 100.0 if metric == "accuracy" else 1.0
    diff = scale * (a - b)
    nan = float("nan")
    t_p = (float(stats.ttest_rel(a, b).pvalue) if len(common) >= 2 and np.ptp(diff) > 1e-12
           else nan)
    w_p = float(stats.wilcoxon(diff).pvalue) if len(common) >= 2 and np.any(diff != 0) else nan
    return (float(diff.mean()) if len(diff) else nan), diff, t_p, w_p


def _p(p):
    import math

    return "-" if math.isnan(p) else f"{p:.3f}"


def _settings(runs):
    return sorted({(r["K"], r["strength"]) for r in runs.values()},
                  key=lambda s: (s[0], s[1] != "strong"))


def report(path):
    """Markdown tables of a recorded study (no training)."""
    import numpy as np

    with open(path) as f:
        state = json.load(f)
    runs = state["runs"]
    lines = []
    labels = list(COLUMNS) + [BEST_RECAL]
    for K, strength in _settings(runs):
        lines += [f"### K = {K}, {strength} biases", ""]
        summary = ["| bias | " + " | ".join(lb for lb in labels if lb != "KL") + " |",
                   "|---" * len(labels) + "|"]
        for bias in BIASES:
            b_runs = {k: r for k, r in runs.items() if (r["K"], r["bias"], r["strength"]) == (
                K, bias, strength)}
            if not b_runs:
                continue
            shift, scale, confusion = BIASES[bias][strength]
            main = [r for r in b_runs.values() if r["group"] == "main"]
            mat = [r for r in b_runs.values() if r["group"] == "matrix"]
            head = [f"#### K = {K}, `{bias}` ({strength}: prior shift {shift:g} on class 0, "
                    f"over-confidence x{scale:g}, confusion {confusion:g} of class 1 to 2)", ""]
            if main:
                t = [r["teacher_result"] for r in main]
                c = [r["calibrated_teacher"] for r in main if r.get("calibrated_teacher")]
                bayes = [r["bayes_accuracy"] for r in main if r.get("bayes_accuracy")]
                head.append(
                    f"Teacher (mean over {len(t)} seeds): test accuracy "
                    f"{100 * np.mean([x['accuracy'] for x in t]):.1f}, KL(p*‖teacher) "
                    f"{np.mean([x['kl_to_p_star'] for x in t]):.3f}"
                    + (f"; recalibrated (vector) {100 * np.mean([x['accuracy'] for x in c]):.1f}"
                       f" / {np.mean([x['kl_to_p_star'] for x in c]):.3f}" if c else "")
                    + (f"; recalibrated (matrix) "
                       f"{100 * np.mean([r['calibrated_teacher']['accuracy'] for r in mat]):.1f}"
                       f" / {np.mean([r['calibrated_teacher']['kl_to_p_star'] for r in mat]):.3f}"
                       if mat and all(r.get("calibrated_teacher") for r in mat) else "")
                    + (f"; Bayes accuracy {100 * np.mean(bayes):.1f}" if bayes else "") + ".")
            lines += head + ["",
                             "| method | seeds | test acc. (mean ± sd) | Δ acc. vs KL (points) "
                             "| per seed | paired t p | Wilcoxon p | KL(p*‖s) (mean ± sd) "
                             "| Δ KL(p*‖s) | paired t p |",
                             "|---|---|---|---|---|---|---|---|---|---|"]
            kl = per_seed(runs, K, bias, strength, "KL")
            cells_summary = [f"`{bias}`"]
            for label in labels:
                chosen = per_seed(runs, K, bias, strength, label)
                if not chosen:
                    if label != "KL":
                        cells_summary.append("-")
                    continue
                acc = np.array([100 * chosen[s]["accuracy"] for s in sorted(chosen)])
                kls = np.array([chosen[s]["kl_to_p_star"] for s in sorted(chosen)])

                def ms(x, fmt):
                    return (f"{x.mean():{fmt}} ± {x.std(ddof=1):{fmt}}" if len(x) > 1
                            else f"{x.mean():{fmt}}")

                cells = [label, str(len(acc)), ms(acc, ".1f")]
                if label == "KL":
                    cells += ["-", "-", "-", "-", ms(kls, ".3f"), "-", "-"]
                else:
                    d, diff, t_p, w_p = paired(chosen, kl, "accuracy")
                    dk, _, tk_p, _ = paired(chosen, kl, "kl_to_p_star")
                    cells += [f"{d:+.2f}", ", ".join(f"{x:+.1f}" for x in diff), _p(t_p),
                              _p(w_p), ms(kls, ".3f"), f"{dk:+.3f}", _p(tk_p)]
                    cells_summary.append(f"{d:+.1f} ({_p(t_p)}) / {dk:+.3f}")
                lines.append("| " + " | ".join(cells) + " |")
            summary.append("| " + " | ".join(cells_summary) + " |")
            for a, b in HEAD_TO_HEAD:
                A, B = per_seed(runs, K, bias, strength, a), per_seed(runs, K, bias, strength, b)
                d, diff, t_p, w_p = paired(A, B, "accuracy")
                dk, _, tk_p, _ = paired(A, B, "kl_to_p_star")
                if len(diff):
                    lines += ["", f"{a} minus {b}: {d:+.2f} points (per seed "
                                  f"{', '.join(f'{x:+.1f}' for x in diff)}; paired t p = "
                                  f"{_p(t_p)}, Wilcoxon p = {_p(w_p)}); KL(p*‖s) {dk:+.3f} "
                                  f"(paired t p = {_p(tk_p)})."]
            if BEST_RECAL in labels:
                picks = per_seed(runs, K, bias, strength, BEST_RECAL)
                vec = per_seed(runs, K, bias, strength, "KL, recal. (vector)")
                if picks:
                    lines += ["", "Better recalibration on validation accuracy, per seed: "
                              + ", ".join(f"seed {s}: "
                                          + ("vector" if picks[s] is vec.get(s) else "matrix")
                                          for s in sorted(picks)) + "."]
            collapsed = [f"{label} seed {s} ({n} of {K})" for label in labels
                         if label != BEST_RECAL
                         for s, r in sorted(per_seed(runs, K, bias, strength, label).items())
                         for n in [sum(1 for v in (r.get("prediction_counts") or {}).values()
                                       if v)] if n < K]
            if collapsed:
                lines += ["", "Students that never predict some class on the test split "
                          "(classes predicted): " + ", ".join(collapsed) + "."]
            wall = sum(r["wall_s"] for r in b_runs.values())
            lines += ["", f"{len(b_runs)} CLI calls, {wall / 60:.1f} min of summed wall time.",
                      ""]
        lines += [f"#### K = {K}, {strength}: Δ vs KL at a glance (accuracy points (paired t p) "
                  "/ Δ KL(p*‖s) in nats; negative KL is better)", ""] + summary + [""]
    lines += pooled(runs)
    return "\n".join(lines)


def pooled(runs):
    """Paired differences pooled over the biases' (bias, seed) pairs, per (K, strength)."""
    import numpy as np
    from scipy import stats

    pairs = [("KL, recal. (vector)", "KL"), ("KL, recal. (matrix)", "KL"),
             ("PTLoss (brier)", "KL"), *HEAD_TO_HEAD, ("PTLoss, recal. (vector)", "KL"),
             ("DKD", "KL"), ("DIST", "KL"), ("Temperature (T=2)", "KL")]
    lines = ["### Pooled over the four biases ((bias, seed) pairs; accuracy points)", "",
             "| setting | comparison | pairs | mean Δ acc. | paired t p | Wilcoxon p "
             "| mean Δ KL(p*‖s) | Wilcoxon p |", "|---|---|---|---|---|---|---|---|"]
    for K, strength in _settings(runs):
        for a, b in pairs:
            da, dk = [], []
            for bias in BIASES:
                A = per_seed(runs, K, bias, strength, a)
                B = per_seed(runs, K, bias, strength, b)
                da.append(paired(A, B, "accuracy")[1])
                dk.append(paired(A, B, "kl_to_p_star")[1])
            da, dk = np.concatenate(da), np.concatenate(dk)
            if len(da) < 2:
                continue
            t_p = stats.ttest_1samp(da, 0.0).pvalue if np.ptp(da) > 1e-12 else float("nan")
            w_p = stats.wilcoxon(da).pvalue if np.any(da != 0) else float("nan")
            wk_p = stats.wilcoxon(dk).pvalue if np.any(dk != 0) else float("nan")
            lines.append(f"| K = {K}, {strength} | {a} − {b} | {len(da)} | {da.mean():+.2f} | "
                         f"{_p(t_p)} | {_p(w_p)} | {dk.mean():+.3f} | {_p(wk_p)} |")
    return lines


def figure(path, png):
    """Per setting (K, strength) with runs: Δ test accuracy and Δ KL(p*‖s)
    against KL, per method (bars: means; dots: seeds) and bias (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    with open(path) as f:
        runs = json.load(f)["runs"]
    settings = _settings(runs)
    rows = [(s, m) for s in settings for m in ("accuracy", "kl_to_p_star")]
    labels = [c for c in list(COLUMNS) + [BEST_RECAL] if c != "KL"]
    biases = list(BIASES)
    fig, axes = plt.subplots(len(rows), len(biases), figsize=(3.6 * len(biases), 3.3 * len(rows)),
                             squeeze=False)

    def colour(label):
        return ("C0" if label.startswith("PTLoss") else "C1" if "recal" in label else "C2")

    for r, ((K, strength), metric) in enumerate(rows):
        for c, bias in enumerate(biases):
            ax = axes[r][c]
            kl = per_seed(runs, K, bias, strength, "KL")
            for i, label in enumerate(labels):
                _, diff, _, _ = paired(per_seed(runs, K, bias, strength, label), kl, metric)
                if len(diff):
                    ax.bar(i, diff.mean(), color=colour(label), alpha=0.5)
                    ax.plot(np.full(len(diff), i), diff, "k.", ms=4)
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xticks(range(len(labels)), labels if r == len(rows) - 1 else [""] * len(labels),
                          rotation=60, ha="right", fontsize=7)
            ax.set_title(f"K={K}, {bias} ({strength})", fontsize=9)
            if c == 0:
                ax.set_ylabel("Δ test acc. vs KL (points)" if metric == "accuracy"
                              else "Δ KL(p*‖s) vs KL (nats)", fontsize=8)
    fig.tight_layout()
    text_studies.save_figure(fig, png, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="/tmp/study_multiclass_synthetic")
    parser.add_argument("--out", default=os.path.join(text_studies.RESULTS,
                                                      "study_multiclass_synthetic.json"))
    parser.add_argument("--deadline", help="UTC time (ISO, e.g. 2026-12-07T16:30) after "
                                           "which no new call starts")
    parser.add_argument("--tiny", action="store_true",
                        help="a dry run: 2 calls of 200 training rows, 1 epoch (state in "
                             "--out, default under /tmp)")
    text_studies.add_report_options(parser)
    args = parser.parse_args()
    if text_studies.reported(args, report, figure):
        return
    if args.tiny and "--out" not in sys.argv:
        args.out = "/tmp/study_multiclass_synthetic_tiny.json"
        args.work_dir += "_tiny"
    run_study(args)


if __name__ == "__main__":
    main()
