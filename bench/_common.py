"""Helpers shared by the benchmark scripts in `bench/` (not part of the library).

Import this module *before* TensorFlow: it quietens TensorFlow's C++ start-up
logging and puts the repository root on `sys.path`, so the scripts run as
`.venv/bin/python bench/<script>.py` without installing the package.
"""

import datetime
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


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
