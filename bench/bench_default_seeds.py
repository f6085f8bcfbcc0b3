"""The main job on seeds 0-4: does the default `ptloss-distill` show what PTLoss
is for, on every seed and not only the default one?

Runs the installed `ptloss-distill` with no options but `--seed S` and
`--output-dir` (the embedded default: the synthetic task and its biased
teacher) for each seed, and prints per seed and method the test accuracy
and KL(p* || student), the wall time, the teacher and Bayes values, how often
PTLoss beats KL on both, and paired tests over the seeds (t-test and
Wilcoxon signed-rank, scipy). Each seed's run directory is kept, so an
interrupted bench resumes (finished seeds are read back, not rerun).

    python bench/bench_default_seeds.py                   # seeds 0-4
    python bench/bench_default_seeds.py --seeds 0 1 --out /tmp/seeds
    python bench/bench_default_seeds.py -- --epochs 2     # extra CLI options after --

Writes `OUT/seeds.json` (every number printed, plus the commands).
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import scipy.stats

import cli_runs

METRICS = ("accuracy", "kl_to_p_star")


def run_seed(seed, out, extra):
    run_dir = os.path.join(out, f"seed{seed}")
    report = cli_runs.read_report(run_dir)
    if report is None:
        step = cli_runs.run_cli(f"seed {seed}", ["--seed", seed, "--output-dir", run_dir,
                                                 *extra],
                                os.path.join(out, f"seed{seed}.log"))
        if step["returncode"]:
            raise SystemExit(f"seed {seed}: ptloss-distill failed; see {step['log']}")
        report = cli_runs.read_report(run_dir)
    return report


def paired(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = {"mean_difference": float(np.mean(a - b)), "std_difference": float(np.std(a - b, ddof=1))
           if len(a) > 1 else None}
    if len(a) > 1 and np.any(a != b):
        out["t_test_p"] = float(scipy.stats.ttest_rel(a, b).pvalue)
        out["wilcoxon_p"] = float(scipy.stats.wilcoxon(a, b).pvalue)
    return out


def summarise(reports):
    methods = [r["method"] for r in reports[0]["results"]]
    rows = {m: {k: [] for k in METRICS} for m in methods}
    teacher = {k: [] for k in ("accuracy", "kl_to_p_star")}
    bayes, walls = [], []
    for report in reports:
        by_method = {r["method"]: r for r in report["results"]}
        for m in methods:
            for k in METRICS:
                rows[m][k].append(by_method[m].get(k, np.nan))
        for k in teacher:
            teacher[k].append(report["teacher"].get(k, np.nan))
        bayes.append(report.get("bayes_accuracy", report["teacher"].get("bayes_accuracy")))
        walls.append(report["wall_seconds"])
    summary = {"methods": methods, "per_method": rows, "teacher": teacher, "bayes": bayes,
               "wall_seconds": walls, "comparisons": {}}
    for m in methods:
        if m == "kl" or "kl" not in methods:
            continue
        acc_wins = [a > b for a, b in zip(rows[m]["accuracy"], rows["kl"]["accuracy"])]
        kl_wins = [a < b for a, b in zip(rows[m]["kl_to_p_star"], rows["kl"]["kl_to_p_star"])]
        summary["comparisons"][m] = {
            "accuracy_wins": int(sum(acc_wins)), "kl_to_p_star_wins": int(sum(kl_wins)),
            "both_wins": int(sum(a and b for a, b in zip(acc_wins, kl_wins))),
            "accuracy": paired(rows[m]["accuracy"], rows["kl"]["accuracy"]),
            "kl_to_p_star": paired(rows[m]["kl_to_p_star"], rows["kl"]["kl_to_p_star"]),
        }
    return summary


def print_summary(seeds, summary):
    methods = summary["methods"]
    head = f"{'seed':>4} {'wall s':>7} " + "".join(
        f"{m + ' acc':>22}{m + ' KL*':>20}" for m in methods) + f"{'teacher acc':>13}{'Bayes':>8}"
    print("\n" + head + "\n" + "-" * len(head))
    for i, seed in enumerate(seeds):
        cells = "".join(f"{summary['per_method'][m]['accuracy'][i]:>22.4f}"
                        f"{summary['per_method'][m]['kl_to_p_star'][i]:>20.4f}" for m in methods)
        print(f"{seed:>4} {summary['wall_seconds'][i]:>7.0f} {cells}"
              f"{summary['teacher']['accuracy'][i]:>13.4f}{summary['bayes'][i]:>8.4f}")
    means = "".join(f"{np.mean(summary['per_method'][m]['accuracy']):>22.4f}"
                    f"{np.mean(summary['per_method'][m]['kl_to_p_star']):>20.4f}"
                    for m in methods)
    print(f"{'mean':>4} {np.mean(summary['wall_seconds']):>7.0f} {means}"
          f"{np.mean(summary['teacher']['accuracy']):>13.4f}{np.mean(summary['bayes']):>8.4f}")
    n = len(seeds)
    for m, c in summary["comparisons"].items():
        acc, kl = c["accuracy"], c["kl_to_p_star"]
        print(f"\n{m} vs kl over {n} seeds: higher accuracy on {c['accuracy_wins']}/{n} "
              f"(mean {100 * acc['mean_difference']:+.2f} points, t-test p="
              f"{acc.get('t_test_p', float('nan')):.3g}, Wilcoxon p="
              f"{acc.get('wilcoxon_p', float('nan')):.3g}); lower KL(p*||student) on "
              f"{c['kl_to_p_star_wins']}/{n} (mean {kl['mean_difference']:+.4f}, t-test p="
              f"{kl.get('t_test_p', float('nan')):.3g}); both on {c['both_wins']}/{n}")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", default=None,
                        help="where the runs go (default: a new temporary folder)")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="bench_default_seeds_")
    os.makedirs(out, exist_ok=True)
    print(f"ptloss-distill default on seeds {args.seeds}; runs in {out}", flush=True)
    reports = [run_seed(seed, out, extra) for seed in args.seeds]
    summary = summarise(reports)
    print_summary(args.seeds, summary)
    summary.update(seeds=args.seeds, extra_options=extra, commands=[
        f"ptloss-distill --seed {s} --output-dir {os.path.join(out, f'seed{s}')} "
        + " ".join(extra) for s in args.seeds], load_average=cli_runs.load_average())
    path = os.path.join(out, "seeds.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    print(f"\nWrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
