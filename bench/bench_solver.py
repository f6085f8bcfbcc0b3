"""Benchmark: Proxy Teacher solver and coefficient-search speed.

The paper's search on an MNLI-sized validation set: N = 10,000 examples,
S = 100 candidate coefficient sets of order M = 5, for K = 3 and K = 2.
Candidates are `ptloss_tf.sample_candidates(5, K, 100, seed=0)` (the convex
box, the same sets `search_coefficients` draws with its default seed);
teacher probabilities are Dirichlet(1), labels are drawn from them.

Per K it measures, in one process:

* `proxy_teacher(p, candidates)` first call (trace + XLA compile + run; XLA
  compiles once per input shape) and then the median of `--repeats` warm
  calls;
* `search_coefficients(p, labels, order=5, num_candidates=100)` wall time,
  warm (median of `--repeats`), and cold: the first call in a fresh Python
  process (a child process; includes the XLA compile, excludes imports);
* a per-example scipy reference: for `--scipy-pairs` random (example,
  candidate) pairs it solves
  `argmin_{q in simplex} sum_k p_k [-log q_k + sum_m eta[m,k] (1-q_k)^m]`
  with `scipy.optimize.minimize(method="SLSQP")` (analytic gradient, equality
  constraint sum q = 1, bounds q >= 0, ftol 1e-16, started at q = p), times
  it, extrapolates to the N * S solves of the search, and reports the
  speed-up over the warm `proxy_teacher` call and the max |q_scipy - q_proxy|
  over those pairs (plus the objective gap, positive when the proxy solution
  is better).

Targets: warm search <= 2 s wall on the 2-core CPU machine; >= 1000x faster
than per-example scipy; max |q_scipy - q_proxy| <= 1e-5.

Usage:
    .venv/bin/python bench/bench_solver.py                # full run
    .venv/bin/python bench/bench_solver.py --quick        # smoke run
    .venv/bin/python bench/bench_solver.py --json bench/results/solver.json

Exit status is 0 unless `--strict` is given and a target is missed.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import _common  # (TF log level, before TensorFlow)

import numpy as np
from scipy import optimize

import ptloss_tf


def parse_args(argv=None):
    parser = _common.benchmark_parser(
        __doc__, "smoke run: N=1000, S=10, 20 scipy pairs, no cold run")
    parser.add_argument("--num-examples", type=int, default=None,
                        help="N (default 10000)")
    parser.add_argument("--num-candidates", type=int, default=None,
                        help="S (default 100)")
    parser.add_argument("--order", type=int, default=5, help="M (default 5)")
    parser.add_argument("--classes", type=int, nargs="+", default=[3, 2],
                        help="class counts K (default 3 2)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="warm repeats, median reported (default 3)")
    parser.add_argument("--scipy-pairs", type=int, default=None,
                        help="(example, candidate) pairs solved by scipy (default 200)")
    parser.add_argument("--no-cold", action="store_true",
                        help="skip the fresh-process (cold) search timing")
    parser.add_argument("--target-search-s", type=float, default=2.0)
    parser.add_argument("--target-speedup", type=float, default=1000.0)
    parser.add_argument("--target-max-diff", type=float, default=1e-5)
    _common.add_run_args(parser, seed_help="data seed (candidates always use seed 0)",
                         strict_help="exit 1 if a target is missed")
    parser.add_argument("--cold-child", nargs=3, type=int, default=None,
                        metavar=("K", "N", "S"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _common.quick_defaults(args, {"num_examples": (1000, 10_000), "num_candidates": (10, 100),
                                  "repeats": (1, 3), "scipy_pairs": (20, 200)})
    if args.quick:
        args.no_cold = True
    return args


def make_data(num_examples, num_classes, seed):
    """Dirichlet(1) teacher probabilities and labels drawn from them."""
    rng = np.random.default_rng([seed, num_classes])
    p = rng.dirichlet(np.ones(num_classes), size=num_examples)
    cumulative = np.cumsum(p, axis=1)
    u = rng.uniform(size=(num_examples, 1))
    labels = np.minimum((u > cumulative).sum(axis=1), num_classes - 1)
    return p, labels


# --------------------------------------------------------------------------
# scipy reference


def objective_and_gradient(q, p, eta):
    """`sum_k p_k [-log q_k + sum_m eta[m,k] (1-q_k)^m]` and its gradient."""
    u = 1.0 - q
    orders = np.arange(1, eta.shape[0] + 1)[:, None]  # [M, 1]
    powers = u[None, :] ** (orders - 1)  # u^(m-1), [M, K]
    value_poly = np.sum(eta * powers * u, axis=0)  # sum_m eta_m u^m
    deriv_poly = np.sum(orders * eta * powers, axis=0)  # its u-derivative
    value = np.sum(p * (-np.log(q) + value_poly))
    grad = p * (-1.0 / q - deriv_poly)
    return value, grad


def scipy_proxy_teacher(p, eta):
    """Per-example reference solve with SLSQP on the simplex."""
    k = len(p)
    constraint = {
        "type": "eq",
        "fun": lambda q: np.sum(q) - 1.0,
        "jac": lambda q: np.ones(k),
    }
    result = optimize.minimize(
        objective_and_gradient,
        p.copy(),
        args=(p, eta),
        jac=True,
        method="SLSQP",
        bounds=[(1e-300, 1.0)] * k,
        constraints=[constraint],
        options={"ftol": 1e-16, "maxiter": 1000},
    )
    q = np.clip(result.x, 0.0, None)
    return q / q.sum(), result


def scipy_reference(p, candidates, proxies, num_pairs, seed):
    rng = np.random.default_rng([seed, 12345])
    n_index = rng.integers(0, p.shape[0], size=num_pairs)
    s_index = rng.integers(0, candidates.shape[0], size=num_pairs)
    times, diffs, gaps, iterations, failures = [], [], [], [], 0
    for n, s in zip(n_index, s_index):
        start = _common.timer()
        q_ref, result = scipy_proxy_teacher(p[n], candidates[s])
        times.append(_common.timer() - start)
        q_fast = proxies[s, n]
        diffs.append(float(np.max(np.abs(q_ref - q_fast))))
        f_ref, _ = objective_and_gradient(q_ref, p[n], candidates[s])
        f_fast, _ = objective_and_gradient(q_fast, p[n], candidates[s])
        gaps.append(float(f_ref - f_fast))
        iterations.append(int(result.nit))
        failures += int(not result.success)
    worst = int(np.argmax(diffs))
    return {
        "pairs": num_pairs,
        "total_s": float(np.sum(times)),
        "mean_solve_s": float(np.mean(times)),
        "median_solve_s": float(np.median(times)),
        "mean_iterations": float(np.mean(iterations)),
        "failures": failures,
        "max_abs_diff": float(np.max(diffs)),
        "mean_abs_diff": float(np.mean(diffs)),
        "worst_pair": {"example": int(n_index[worst]),
                       "candidate": int(s_index[worst])},
        "max_objective_gap": float(np.max(gaps)),
        "min_objective_gap": float(np.min(gaps)),
    }


# --------------------------------------------------------------------------
# timings


def cold_search_seconds(num_classes, num_examples, num_candidates, args):
    """Whole-search wall time as the first call in a fresh process."""
    cmd = [sys.executable, os.path.abspath(__file__),
           "--cold-child", str(num_classes), str(num_examples),
           str(num_candidates), "--order", str(args.order),
           "--seed", str(args.seed),
           "--intra-op-threads", str(args.intra_op_threads),
           "--inter-op-threads", str(args.inter_op_threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("COLD_SEARCH_S="):
            return float(line.split("=", 1)[1])
    raise RuntimeError(f"cold-search child failed:\n{out.stdout}\n{out.stderr}")


def run_cold_child(args):
    _common.apply_thread_args(args)
    _common.quiet_tensorflow()
    num_classes, num_examples, num_candidates = args.cold_child
    p, labels = make_data(num_examples, num_classes, args.seed)
    start = _common.timer()
    ptloss_tf.search_coefficients(p, labels, order=args.order,
                                  num_candidates=num_candidates)
    print(f"COLD_SEARCH_S={_common.timer() - start!r}")
    return 0


def bench_k(num_classes, args):
    n, s, order = args.num_examples, args.num_candidates, args.order
    p, labels = make_data(n, num_classes, args.seed)
    candidates = ptloss_tf.sample_candidates(order, num_classes, s, seed=0)

    start = _common.timer()
    proxies = ptloss_tf.proxy_teacher(p, candidates).numpy()
    first_s = _common.timer() - start

    warm, warm_cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = _common.timer(), time.process_time()
        proxies = ptloss_tf.proxy_teacher(p, candidates).numpy()
        warm.append(_common.timer() - start)
        warm_cpu.append(time.process_time() - start_cpu)

    search_times, search_cpu, result = [], [], None
    for _ in range(args.repeats):
        start, start_cpu = _common.timer(), time.process_time()
        result = ptloss_tf.search_coefficients(p, labels, order=order,
                                               num_candidates=s)
        search_times.append(_common.timer() - start)
        search_cpu.append(time.process_time() - start_cpu)
    same_candidates = bool(np.array_equal(result.candidates, candidates))

    cold_s = None if args.no_cold else cold_search_seconds(num_classes, n, s, args)

    ref = scipy_reference(p, candidates, proxies, args.scipy_pairs, args.seed)
    warm_s = _common.median(warm)
    search_s = _common.median(search_times)
    scipy_total_s = ref["mean_solve_s"] * n * s
    return {
        "num_classes": num_classes,
        "num_examples": n,
        "num_candidates": s,
        "order": order,
        "proxy_first_call_s": first_s,
        "proxy_compile_estimate_s": first_s - warm_s,
        "proxy_warm_s": warm_s,
        "proxy_warm_samples_s": warm,
        "proxy_warm_cpu_s": _common.median(warm_cpu),
        "proxy_us_per_solve": warm_s / (n * s) * 1e6,
        "search_warm_s": search_s,
        "search_warm_samples_s": search_times,
        "search_warm_cpu_s": _common.median(search_cpu),
        "search_cold_fresh_process_s": cold_s,
        "search_uses_same_candidates": same_candidates,
        "scipy": ref,
        "scipy_extrapolated_s": scipy_total_s,
        "speedup_vs_proxy_warm": scipy_total_s / warm_s,
        "speedup_vs_search_warm": scipy_total_s / search_s,
        "speedup_vs_proxy_first_call": scipy_total_s / first_s,
    }


def checks_for(row, args):
    return {
        "search_warm_s": (row["search_warm_s"], "<=", args.target_search_s,
                          row["search_warm_s"] <= args.target_search_s),
        "speedup_vs_proxy_warm": (row["speedup_vs_proxy_warm"], ">=",
                                  args.target_speedup,
                                  row["speedup_vs_proxy_warm"] >= args.target_speedup),
        "max_abs_diff": (row["scipy"]["max_abs_diff"], "<=",
                         args.target_max_diff,
                         row["scipy"]["max_abs_diff"] <= args.target_max_diff),
    }


def print_tables(rows, args):
    def f(x, spec):
        return "n/a" if x is None else format(x, spec)

    print(f"\n## proxy_teacher and search_coefficients wall time "
          f"(warm = median of {args.repeats})")
    print(_common.format_table(
        ["K", "N", "S", "M", "proxy 1st call(s)", "proxy warm(s)",
         "proxy cpu(s)", "us/solve", "search warm(s)", "search cpu(s)",
         "search cold(s)"],
        [[r["num_classes"], r["num_examples"], r["num_candidates"], r["order"],
          f(r["proxy_first_call_s"], ".2f"), f(r["proxy_warm_s"], ".3f"),
          f(r["proxy_warm_cpu_s"], ".3f"),
          f(r["proxy_us_per_solve"], ".3f"), f(r["search_warm_s"], ".3f"),
          f(r["search_warm_cpu_s"], ".3f"),
          f(r["search_cold_fresh_process_s"], ".2f")] for r in rows],
        align="rrrrrrrrrrr"))
    print("   proxy 1st call = trace + XLA compile + run; search cold = first "
          "call in a fresh process (wall);\n   cpu = process CPU time, all "
          "threads (wall < cpu when both cores work; wall >> cpu/2 hints at "
          "contention)")

    print(f"\n## per-example scipy reference (SLSQP) on random "
          f"(example, candidate) pairs")
    print(_common.format_table(
        ["K", "pairs", "ms/solve(mean)", "ms/solve(med)", "iters", "fails",
         "scipy N*S extrap(s)", "x vs proxy warm", "x vs search warm",
         "x vs proxy 1st", "max|dq|", "max obj gap"],
        [[r["num_classes"], r["scipy"]["pairs"],
          f(r["scipy"]["mean_solve_s"] * 1e3, ".3f"),
          f(r["scipy"]["median_solve_s"] * 1e3, ".3f"),
          f(r["scipy"]["mean_iterations"], ".1f"), r["scipy"]["failures"],
          f(r["scipy_extrapolated_s"], ".0f"),
          f(r["speedup_vs_proxy_warm"], ".0f"),
          f(r["speedup_vs_search_warm"], ".0f"),
          f(r["speedup_vs_proxy_first_call"], ".0f"),
          f(r["scipy"]["max_abs_diff"], ".2e"),
          f(r["scipy"]["max_objective_gap"], ".1e")] for r in rows],
        align="rrrrrrrrrrrr"))
    print("   max obj gap = max over pairs of f(q_scipy) - f(q_proxy) "
          "(> 0: proxy_teacher found the lower objective)")


def main(argv=None):
    args = parse_args(argv)
    if args.cold_child is not None:
        return run_cold_child(args)
    env = _common.start_run(args)
    print("# bench_solver: proxy_teacher / search_coefficients vs per-example scipy")
    _common.print_environment(env)
    print(f"# N={args.num_examples} S={args.num_candidates} M={args.order} "
          f"K={args.classes} repeats={args.repeats} scipy_pairs="
          f"{args.scipy_pairs} load avg={env['load_average_at_start'][0]:.2f}"
          f"{'  (QUICK smoke run)' if args.quick else ''}")
    total_start = _common.timer()
    rows = [bench_k(k, args) for k in args.classes]
    print_tables(rows, args)

    checks = {r["num_classes"]: checks_for(r, args) for r in rows}
    passed = all(ok for c in checks.values() for (_, _, _, ok) in c.values())
    print("\n## targets")
    for k, c in checks.items():
        for name, (value, op, target, ok) in c.items():
            print(f"   K={k}  {name:22s} {value:12.4g} {op} {target:<8g} "
                  f"{'PASS' if ok else 'FAIL'}")
    if args.quick or args.num_examples * args.num_candidates != 1_000_000:
        print("   (shapes differ from N*S = 10,000 * 100: verdicts indicative only)")
    print(f"   overall: {'PASS' if passed else 'FAIL'}")
    for r in rows:
        if not r["search_uses_same_candidates"]:
            print(f"   NOTE K={r['num_classes']}: search_coefficients drew "
                  "different candidates than sample_candidates(seed=0)")
    elapsed = _common.timer() - total_start
    env["load_average_at_end"] = os.getloadavg()
    print(f"# benchmark wall time {elapsed:.1f} s; load avg at end "
          f"{env['load_average_at_end'][0]:.2f} on {env['cpu_count']} cpus")
    if args.json:
        _common.write_json(args.json, {
            "benchmark": "bench_solver",
            "config": {k: v for k, v in vars(args).items()
                       if k not in ("json", "cold_child")},
            "environment": env,
            "targets": {
                "search_warm_s_max": args.target_search_s,
                "speedup_vs_scipy_min": args.target_speedup,
                "max_abs_diff_max": args.target_max_diff,
                "pass": passed,
                "checks": {str(k): {n: {"value": v, "op": o, "target": t,
                                        "pass": ok}
                                    for n, (v, o, t, ok) in c.items()}
                           for k, c in checks.items()},
            },
            "results": rows,
            "wall_time_s": elapsed,
        })
    return 1 if (args.strict and not passed) else 0


if __name__ == "__main__":
    sys.exit(main())
