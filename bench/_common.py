"""Helpers shared by the benchmark scripts in `bench/` (not part of the library).

A script imports it as `import _common` (its own folder is `sys.path[0]` for
`python bench/<script>.py`), *before* TensorFlow: it quietens TensorFlow's C++
start-up logging. `ptloss_tf` comes from the installed project
(`pip install -e .`). Here: environment capture, timers, tables, JSON, the
argument-parser pieces every `bench_*` script shares, the losses by registry
name, and the `fit` timing of `bench_distiller.py` / `bench_input_pipeline.py`
(`EpochTimer`, `SteadyStateTimer`, `FitRun`). Running the installed CLIs is in
`cli_runs.py`.
"""

import datetime
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO_ROOT, "bench", "results")


def quiet_tensorflow():
    """Silences Python-side TensorFlow / absl logging (call after importing tf)."""
    import logging

    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with tensorflow
        pass


def environment():
    """Versions and machine facts worth recording next to timings."""
    import keras
    import numpy as np
    import tensorflow as tf

    info = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }
    try:
        import scipy

        info["scipy"] = scipy.__version__
    except ImportError:
        info["scipy"] = None
    try:
        import ptloss_tf

        info["ptloss_tf"] = ptloss_tf.__version__
    except ImportError:  # pragma: no cover
        info["ptloss_tf"] = None
    return info


def print_environment(info):
    threads = (
        f"intra={info['tf_intra_op_threads'] or 'default'}, "
        f"inter={info['tf_inter_op_threads'] or 'default'}"
    )
    print(
        f"# python {info['python']}  tensorflow {info['tensorflow']}  "
        f"keras {info['keras']}  numpy {info['numpy']}  scipy {info['scipy']}"
    )
    print(
        f"# {info['platform']}  cpus={info['cpu_count']}  "
        f"tf threads: {threads}  gpus={info['gpus'] or 'none'}"
    )


def timer():
    return time.perf_counter()


def median(values):
    return statistics.median(values)


def format_table(headers, rows, align=None):
    """Plain-text table; `align` is a string of 'l'/'r' per column."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    align = align or ("l" + "r" * (len(headers) - 1))

    def fmt(row):
        out = []
        for i, c in enumerate(row):
            out.append(c.ljust(widths[i]) if align[i] == "l" else c.rjust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), sep] + [fmt(r) for r in cells])


def write_json(path, payload):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=False, default=_jsonable)
        f.write("\n")
    print(f"# results written to {path}")


def _jsonable(x):
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(x)!r}")


def benchmark_parser(doc, quick_help):
    """The argument parser of a `bench_*` script: its docstring's first
    paragraph as description and `--quick` (a smoke run) with `quick_help`."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    return parser


def add_run_args(parser, seed_help=None, strict_help="exit 1 if the target is missed"):
    """`--seed`, `--json`, `--strict` and the thread counts."""
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the results as JSON to PATH")
    parser.add_argument("--strict", action="store_true", help=strict_help)
    add_thread_args(parser)


def start_run(args, quiet=True):
    """Applies the thread counts (before TensorFlow's first op), quietens
    TensorFlow's logging and returns `environment()` with the load average."""
    apply_thread_args(args)
    if quiet:
        quiet_tensorflow()
    env = environment()
    env["load_average_at_start"] = os.getloadavg()
    return env


def add_thread_args(parser):
    parser.add_argument(
        "--intra-op-threads", type=int, default=0,
        help="TensorFlow intra-op thread count (0 = TensorFlow's default)")
    parser.add_argument(
        "--inter-op-threads", type=int, default=0,
        help="TensorFlow inter-op thread count (0 = TensorFlow's default)")


def apply_thread_args(args):
    """Must run before TensorFlow executes its first op."""
    import tensorflow as tf

    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    if args.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)


def add_data_args(parser, examples_help, seq_len_default, seq_len_help):
    """`--examples`, `--batch-size` (32) and `--seq-len`."""
    parser.add_argument("--examples", type=int, default=None, help=examples_help)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=seq_len_default, help=seq_len_help)


def add_bert_args(parser, intermediate_dim):
    """The width of the benchmarks' keras-hub `BertBackbone`s: `--hidden-dim`
    (64), `--num-heads` (2), `--intermediate-dim`."""
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument("--num-heads", type=int, default=2)
    parser.add_argument("--intermediate-dim", type=int, default=intermediate_dim)


def add_jit_arg(parser, help):
    """`--jit-compile auto|true|false`; `resolve_jit(args)` gives the value for `compile`."""
    parser.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto",
                        help=help)


def resolve_jit(args):
    return {"auto": "auto", "true": True, "false": False}[args.jit_compile]


def quick_defaults(args, defaults):
    """Fills every option still None from `defaults`: `{name: (quick, full)}`."""
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)


def finish_run(env, start):
    """Records the load average at the end, prints the wall time since
    `start` with the load averages and returns that wall time."""
    elapsed = timer() - start
    env["load_average_at_end"] = os.getloadavg()
    print(f"# benchmark wall time {elapsed:.1f} s; load avg start "
          f"{env['load_average_at_start'][0]:.2f}, end "
          f"{env['load_average_at_end'][0]:.2f} on {env['cpu_count']} cpus")
    return elapsed


# -- losses ----------------------------------------------------------------------

def make_loss(name, **params):
    """The loss registered as `name` ("kl", "ptloss", ...) with the keyword
    arguments of its constructor: `ptloss_tf.losses.get(name, **params)`."""
    import ptloss_tf.losses

    return ptloss_tf.losses.get(name, **params)


# -- fit timing ------------------------------------------------------------------

def _timer_classes():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall and process-CPU clock at `on_epoch_begin` and `on_epoch_end`.

        It overrides no batch hook, so Keras keeps dispatching callbacks
        asynchronously: the timer does not slow the epoch it times."""

        def __init__(self):
            super().__init__()
            self.marks = {}

        def _mark(self, name):
            self.marks[name] = (timer(), time.process_time())

        def on_epoch_begin(self, epoch, logs=None):
            self._mark("epoch_begin")

        def on_epoch_end(self, epoch, logs=None):
            self._mark("epoch_end")

        def span(self, begin="epoch_begin", end="epoch_end"):
            """(wall, cpu) seconds from mark `begin` to mark `end`."""
            (w0, c0), (w1, c1) = self.marks[begin], self.marks[end]
            return w1 - w0, c1 - c0

    class SteadyStateTimer(EpochTimer):
        """`EpochTimer` that also marks the end of batch 0 ("batch0_end"): the
        steady state of a `fit` call is batches 2..n, the first carries the
        call's one-off costs. (A batch hook turns Keras' asynchronous
        callback dispatch off.)"""

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                self._mark("batch0_end")

    return {"EpochTimer": EpochTimer, "SteadyStateTimer": SteadyStateTimer}


_LAZY = {}


def __getattr__(name):
    # The timers subclass keras.callbacks.Callback: built on first use, so
    # that importing this module does not import Keras (bench_loss, ...).
    if name in ("EpochTimer", "SteadyStateTimer"):
        if not _LAZY:
            _LAZY.update(_timer_classes())
        return _LAZY[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class FitRun:
    """One model and its dataset, timed one `fit(epochs=1)` call at a time.

    Per timed call it records the whole call (`fit_s`), the epoch
    (`epoch_s`, `on_epoch_begin` .. `on_epoch_end`) and the last loss; with
    `steady=True` also the steady state, batches 2..n (`steady_s`,
    `steady_cpu_s`, process CPU time). `fit_kwargs` go to every `fit` call.
    """

    def __init__(self, key, model, dataset, examples, batch_size=None, steady=False,
                 **fit_kwargs):
        self.key = key
        self.model = model
        self.dataset = dataset
        self.examples = examples
        self.steady = steady
        self.fit_kwargs = fit_kwargs
        if steady:
            self.steps = -(-examples // batch_size)
            # The first batch of a fit call carries per-call costs (a new
            # tf.data iterator, ...), so the steady state is batches 2..n.
            self.steady_examples = examples - min(batch_size, examples)
        self.fit_s, self.epoch_s, self.steady_s, self.steady_cpu_s = [], [], [], []
        self.losses = []
        self.warmup_s = None

    def fit_epoch(self):
        """One `fit(epochs=1)` call: (its wall seconds, its timer)."""
        timer_ = (__getattr__("SteadyStateTimer") if self.steady
                  else __getattr__("EpochTimer"))()
        start = timer()
        history = self.model.fit(self.dataset, epochs=1, verbose=0, callbacks=[timer_],
                                 **self.fit_kwargs)
        total = timer() - start
        self.losses.append(float(history.history["loss"][-1]))
        return total, timer_

    def warm_up(self):
        self.warmup_s, _ = self.fit_epoch()

    def timed(self):
        total, timer_ = self.fit_epoch()
        self.fit_s.append(total)
        self.epoch_s.append(timer_.span()[0])
        if self.steady:
            wall, cpu = timer_.span("batch0_end", "epoch_end")
            self.steady_s.append(wall)
            self.steady_cpu_s.append(cpu)

    def per_round(self, what="epoch"):
        """Examples/s per timed call: 'steady', 'epoch' or 'fit'."""
        if what == "steady":
            return [self.steady_examples / s for s in self.steady_s]
        seconds = self.epoch_s if what == "epoch" else self.fit_s
        return [self.examples / s for s in seconds]
