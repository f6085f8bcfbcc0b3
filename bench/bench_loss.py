"""Benchmark: PTLoss overhead over the plain KL distillation loss.

For every batch size B and class count K it times forward + backward
(`tf.GradientTape` gradient of the loss w.r.t. the student logits) of

* `ptloss_tf.KLDivergence(from_logits=True)` (the baseline), and
* `ptloss_tf.PTLoss(eta, from_logits=True)` with order M in {1, 5, 10}
  (`eta` uniform in [0, 2], shape [M, K]),

all inside `tf.function(jit_compile=True)`, on Dirichlet(1) teacher
probabilities and N(0, 2^2) student logits, and reports microseconds per
call and the ratio PTLoss / KL. Target: PTLoss with M = 5 costs <= 1.3x KL.

Two timing modes (both measured by default):

* `graph`: one XLA program runs `--graph-calls` (2000) forward+backward
  steps in a `tf.while_loop`; each step feeds the next (`z <- z - 0.1 *
  grad`, loss accumulated) so XLA can neither hoist nor drop work, and the
  single dispatch is amortised over the steps. This is the cost the loss adds
  inside a compiled training step (the primary number).
* `dispatch`: a Python loop makes `--calls` (200) calls of a compiled
  forward+backward function. Includes TensorFlow's per-call dispatch
  overhead (hundreds of microseconds on the 2-core machine), which hides the
  loss's own cost at these sizes.

Per mode, every (B, K) case is warmed up (compiled) first, then `--repeats`
rounds are run; inside a round the losses are timed one after another in a
rotating order, so all losses of a case are measured side by side under the
same machine conditions. The median over rounds is reported.

Usage:
    .venv/bin/python bench/bench_loss.py                # full run
    .venv/bin/python bench/bench_loss.py --quick        # smoke run (seconds)
    .venv/bin/python bench/bench_loss.py --json bench/results/loss.json

Exit status is 0 unless `--strict` is given and the target is missed.
"""

import sys

import _common  # (TF log level, before TensorFlow)

import numpy as np
import tensorflow as tf

TARGET_ORDER = 5


def parse_args(argv=None):
    parser = _common.benchmark_parser(
        __doc__, "smoke run: B=256 only, few calls and repeats")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="batch sizes B (default 256 4096)")
    parser.add_argument("--classes", type=int, nargs="+", default=[2, 3],
                        help="class counts K (default 2 3)")
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 5, 10],
                        help="PTLoss orders M (default 1 5 10)")
    parser.add_argument("--calls", type=int, default=None,
                        help="dispatch mode: Python calls per timed loop (default 200)")
    parser.add_argument("--graph-calls", type=int, default=None,
                        help="graph mode: chained steps per XLA call, so the "
                             "one dispatch is amortised (default 2000)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed loops per loss; the median is reported (default 15)")
    parser.add_argument("--modes", nargs="+", choices=["graph", "dispatch"],
                        default=["graph", "dispatch"],
                        help="timing modes (default both)")
    parser.add_argument("--target", type=float, default=1.3,
                        help=f"max allowed PTLoss(M={TARGET_ORDER}) / KL ratio")
    _common.add_run_args(parser)
    args = parser.parse_args(argv)
    _common.quick_defaults(args, {"batch_sizes": ([256], [256, 4096]), "calls": (20, 200),
                                  "graph_calls": (200, 2000), "repeats": (3, 15)})
    return args


def make_losses(orders, num_classes, rng):
    """`[(label, M or None, loss, eta or None)]`, KL first."""
    losses = [("KL", None, _common.make_loss("kl", from_logits=True), None)]
    for order in orders:
        eta = rng.uniform(0.0, 2.0, size=(order, num_classes))
        losses.append(
            (f"PTLoss M={order}", order,
             _common.make_loss("ptloss", coefficients=eta, from_logits=True), eta)
        )
    return losses


def graph_runner(loss, calls):
    """One XLA program that runs `calls` chained forward+backward steps."""

    @tf.function(jit_compile=True)
    def run(p, z):
        total = tf.zeros([], tf.float32)
        for _ in tf.range(calls):
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = loss(p, z)
            grad = tape.gradient(value, z)
            z = z - 0.1 * grad
            total = total + value
        return z, total

    def timed(p, z):
        start = _common.timer()
        out_z, total = run(p, z)
        out_z.numpy()
        total.numpy()
        return _common.timer() - start

    return timed


def dispatch_runner(loss, calls):
    """A compiled forward+backward step, called `calls` times from Python."""

    @tf.function(jit_compile=True)
    def step(p, z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = loss(p, z)
        return value, tape.gradient(value, z)

    def timed(p, z):
        start = _common.timer()
        for _ in range(calls):
            value, grad = step(p, z)
        value.numpy()
        grad.numpy()
        return _common.timer() - start

    return timed


RUNNERS = {"graph": graph_runner, "dispatch": dispatch_runner}


def bench_case(mode, batch_size, num_classes, args, rng):
    p_np = rng.dirichlet(np.ones(num_classes), size=batch_size).astype(np.float32)
    z_np = rng.normal(0.0, 2.0, size=(batch_size, num_classes)).astype(np.float32)
    p, z = tf.constant(p_np), tf.constant(z_np)
    losses = make_losses(args.orders, num_classes, rng)
    calls = args.graph_calls if mode == "graph" else args.calls
    runners = []
    for label, order, loss, eta in losses:
        run = RUNNERS[mode](loss, calls)
        start = _common.timer()
        run(p, z)  # trace + XLA compile + first execution
        runners.append((label, order, eta, run, _common.timer() - start))
    for _, _, _, run, _ in runners:  # one untimed warm pass each
        run(p, z)
    samples = [[] for _ in runners]
    for r in range(args.repeats):
        shift = r % len(runners)
        for i in list(range(shift, len(runners))) + list(range(shift)):
            samples[i].append(runners[i][3](p, z) / calls * 1e6)
    kl_us = _common.median(samples[0])
    kl_min = min(samples[0])
    rows = []
    for (label, order, eta, _, first_s), us in zip(runners, samples):
        med = _common.median(us)
        rows.append({
            "mode": mode,
            "batch_size": batch_size,
            "num_classes": num_classes,
            "loss": label,
            "order": order,
            "calls_per_loop": calls,
            "eta": None if eta is None else eta.tolist(),
            "us_per_call": med,
            "us_per_call_min": min(us),
            "us_per_call_samples": us,
            "ratio_to_kl": med / kl_us,
            "ratio_to_kl_of_mins": min(us) / kl_min,
            "first_call_s": first_s,
        })
    return rows


def verdicts(rows, target):
    out = []
    for row in rows:
        if row["order"] == TARGET_ORDER:
            out.append({
                "mode": row["mode"],
                "batch_size": row["batch_size"],
                "num_classes": row["num_classes"],
                "ratio": row["ratio_to_kl"],
                "pass": row["ratio_to_kl"] <= target,
            })
    return out


def print_mode_table(mode, rows, args):
    title = {
        "graph": f"in-graph loop ({args.graph_calls} chained fwd+bwd steps per XLA call)",
        "dispatch": f"dispatch ({args.calls} Python calls of a compiled fwd+bwd step)",
    }[mode]
    print(f"\n## mode = {mode}: {title}; median of {args.repeats} rounds")
    table = []
    for row in rows:
        if row["mode"] != mode:
            continue
        mark = ""
        if row["order"] == TARGET_ORDER:
            mark = "PASS" if row["ratio_to_kl"] <= args.target else "FAIL"
        table.append([
            row["batch_size"], row["num_classes"], row["loss"],
            f"{row['us_per_call']:.2f}", f"{row['us_per_call_min']:.2f}",
            f"{row['ratio_to_kl']:.3f}", f"{row['ratio_to_kl_of_mins']:.3f}",
            f"{row['first_call_s']:.2f}", mark,
        ])
    print(_common.format_table(
        ["B", "K", "loss", "us/call(med)", "us/call(min)", "x KL(med)",
         "x KL(min)", "compile+1st(s)", f"<= {args.target}x? (med)"],
        table, align="rrlrrrrrl"))


def main(argv=None):
    args = parse_args(argv)
    env = _common.start_run(args)
    print("# bench_loss: forward+backward of PTLoss vs KL, tf.function(jit_compile=True)")
    _common.print_environment(env)
    print(f"# B={args.batch_sizes} K={args.classes} M={args.orders} "
          f"graph_calls={args.graph_calls} calls={args.calls} repeats={args.repeats} modes={args.modes}"
          f"{'  (QUICK smoke run)' if args.quick else ''}")
    rng = np.random.default_rng(args.seed)
    rows = []
    total_start = _common.timer()
    for mode in args.modes:
        for batch_size in args.batch_sizes:
            for num_classes in args.classes:
                rows.extend(bench_case(mode, batch_size, num_classes, args, rng))
        print_mode_table(mode, rows, args)
    checks = verdicts(rows, args.target)
    primary = "graph" if "graph" in args.modes else args.modes[0]
    primary_checks = [c for c in checks if c["mode"] == primary]
    passed = bool(primary_checks) and all(c["pass"] for c in primary_checks)
    print(f"\n## target: PTLoss M={TARGET_ORDER} <= {args.target}x KL "
          f"(judged on mode '{primary}')")
    if not primary_checks:
        print(f"   no M={TARGET_ORDER} rows measured: target not evaluated")
    for mode in args.modes:
        mode_checks = [c for c in checks if c["mode"] == mode]
        if not mode_checks:
            continue
        worst = max(mode_checks, key=lambda c: c["ratio"])
        ok = all(c["pass"] for c in mode_checks)
        print(f"   {mode:9s}: {'PASS' if ok else 'FAIL'}  "
              f"(worst ratio {worst['ratio']:.3f}x at B={worst['batch_size']}, "
              f"K={worst['num_classes']})")
    print(f"   overall: {'PASS' if passed else 'FAIL'}")
    elapsed = _common.finish_run(env, total_start)
    if args.json:
        _common.write_json(args.json, {
            "benchmark": "bench_loss",
            "config": {k: v for k, v in vars(args).items() if k != "json"},
            "environment": env,
            "target": {"order": TARGET_ORDER, "max_ratio_to_kl": args.target,
                       "judged_on_mode": primary, "pass": passed,
                       "checks": checks},
            "results": rows,
            "wall_time_s": elapsed,
        })
    return 1 if (args.strict and not passed) else 0


if __name__ == "__main__":
    sys.exit(main())
