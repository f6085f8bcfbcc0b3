"""Full SST-2 on a GPU host without TensorFlow (issue 15, section 3b).

All 67,349 SST-2 training sentences (less the 872 the CLI holds out for
validation), GLUE dev as the test set: the all-MiniLM-L6-v2 teacher
fine-tuned on the GPU, then 2-layer students with `kl`, `ptloss` (brier) and
`kl_calibrated`, 5 seeds each. The device host has JAX, Keras and keras-hub
but no TensorFlow, so the work alternates between the two machines; the
TensorFlow half runs here (`bench/device/carry.py`):

    here:   python -m bench.device.carry teacher-tokens      # -> bench/device/carry/
    device: KERAS_BACKEND=jax python -m bench.device.sst2_full teacher \\
                --carry bench/device/carry --out $OUT          # -> $OUT/teacher_probs.npz
    here:   python -m bench.device.carry prepare --teacher-probs DIR/teacher_probs.npz
            # (imports them as teacher outputs, Proxy Teacher search + calibration on CPU)
    device: KERAS_BACKEND=jax python -m bench.device.sst2_full students \\
                --carry bench/device/carry --out $OUT          # -> $OUT/students.json
    here:   python -m bench.device.sst2_full report DIR/students.json

`--tiny` (any phase) runs a few hundred rows for 1 epoch: the CPU dry run
of the same code path (`python -m bench.device.carry --tiny ...` makes the
matching carry folder). Every phase prints its wall time and writes JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CARRY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "carry")
METHODS = ("kl", "ptloss", "kl_calibrated")


def log(*a):
    print(*a, flush=True)


def write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


def teacher(args):
    """Fine-tunes the MiniLM teacher on the carried tokens; writes its
    probabilities for every split (`teacher_probs.npz`: `<split>` [N, 2],
    `<split>_ids`) and `teacher.json` (accuracies, wall times)."""
    import keras
    import keras_hub

    from ptloss_tf.probabilities import softmax
    from ptloss_tf.training.data.prepared_batches import PreparedBatches

    start = time.perf_counter()
    if args.mixed_precision:
        keras.config.set_dtype_policy(f"mixed_{args.mixed_precision}")
    with np.load(os.path.join(args.carry, "teacher_tokens.npz"), allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    splits = [s for s in ("train", "validation", "test") if f"{s}_token_ids" in data]

    def inputs(split):
        ids = data[f"{split}_token_ids"].astype(np.int32)
        mask = np.arange(ids.shape[1])[None, :] < data[f"{split}_lengths"][:, None]
        return {"token_ids": ids, "segment_ids": np.zeros_like(ids),
                "padding_mask": mask.astype(np.int32)}

    keras.utils.set_random_seed(args.seed)
    backbone = keras_hub.models.BertBackbone.from_preset(os.path.join(args.carry, "minilm"))
    classifier = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    # A plain functional model: keras-hub's own `fit` converts a PyDataset
    # through tf.data or grain, neither of which is on the device host.
    symbolic = {k: keras.Input((None,), dtype="int32", name=k)
                for k in ("token_ids", "segment_ids", "padding_mask")}
    model = keras.Model(symbolic, classifier(symbolic))
    epochs = 1 if args.tiny else args.teacher_epochs
    train = PreparedBatches(inputs("train"), data["train_labels"], args.batch_size,
                            shuffle=True, seed=args.seed, bucket_boundaries="auto")
    validation = PreparedBatches(inputs("validation"), data["validation_labels"],
                                 args.batch_size, bucket_boundaries="auto")
    model.compile(optimizer=keras.optimizers.AdamW(args.teacher_learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=True)
    t = time.perf_counter()
    history = model.fit(train, validation_data=validation, epochs=epochs, verbose=2)
    fit_s = time.perf_counter() - t
    out, record = {}, {"fit_seconds": fit_s, "epochs": epochs,
                       "train_examples_per_s": len(data["train_labels"]) * epochs / fit_s,
                       "history": {k: [float(v) for v in vs] for k, vs in history.history.items()}}
    t = time.perf_counter()
    for split in splits:
        logits = model.predict(PreparedBatches(inputs(split), None, 256), verbose=0)
        probs = softmax(np.asarray(logits, np.float32))
        out[split], out[f"{split}_ids"] = probs, data[f"{split}_ids"]
        record[f"{split}_accuracy"] = float(np.mean(probs.argmax(1) == data[f"{split}_labels"]))
    record["predict_seconds"] = time.perf_counter() - t
    record["wall_seconds"] = time.perf_counter() - start
    np.savez_compressed(os.path.join(args.out, "teacher_probs.npz"), **out)
    write_json(os.path.join(args.out, "teacher.json"), record)
    log(json.dumps({k: v for k, v in record.items() if k != "history"}))


def students(args):
    """`ptloss-distill --prepared-data` for each seed (all methods in one
    call), on the carried prepared data; collects the reports in
    `students.json` as they finish."""
    prepared = os.path.join(args.carry, "prepared")
    path = os.path.join(args.out, "students.json")
    state = {"runs": {}}
    seeds = 1 if args.tiny else args.seeds
    for seed in range(seeds):
        run = os.path.join(args.work_dir, f"seed{seed}")
        # $PTLOSS_DISTILL: another command for the CLI (the dry run here
        # blocks TensorFlow with tests/helpers/without_tensorflow.py).
        command = os.environ.get("PTLOSS_DISTILL", f"{sys.executable} -m ptloss_tf.training")
        argv = [*command.split(), "--prepared-data", prepared,
                "--preset", os.path.join(args.carry, "minilm"),
                "--learning-rate", str(args.learning_rate),
                "--loss", *args.methods, "--epochs", str(1 if args.tiny else args.epochs),
                "--batch-size", str(args.batch_size), "--seed", str(seed),
                "--output-dir", run, "--overwrite", "--verbose", "2"]
        if args.mixed_precision:
            argv += ["--mixed-precision", args.mixed_precision]
        t = time.perf_counter()
        step = subprocess.run(argv, text=True)
        wall = time.perf_counter() - t
        if step.returncode:
            log(f"seed {seed}: ptloss-distill failed ({step.returncode})")
            continue
        with open(os.path.join(run, "report.json")) as f:
            report = json.load(f)
        state["runs"][f"seed{seed}"] = {
            "wall_seconds": wall, "hardware": report["hardware"],
            "timings": report["timings"], "teacher": report["teacher"],
            "results": [{k: r[k] for k in ("method", "accuracy", "nll", "ece", "macro_f1",
                                            "best_val_accuracy", "epochs_run", "train_seconds")
                         if k in r} for r in report["results"]]}
        write_json(path, state)
        log(f"seed {seed}: " + ", ".join(f"{r['method']} {r['accuracy']:.4f}"
                                         for r in report["results"]) + f" ({wall:.0f} s)")


def report(path):
    """Mean ± sd test accuracy per method, and the paired differences
    against KL with a paired t test."""
    from scipy import stats

    with open(path) as f:
        runs = json.load(f)["runs"]
    by_method = {}
    for run in runs.values():
        for r in run["results"]:
            by_method.setdefault(r["method"], []).append(100 * r["accuracy"])
    lines = ["| method | seeds | test acc. | Δ vs KL | paired t p |", "|---|---|---|---|---|"]
    kl = np.array(by_method.get("kl", []))
    for method, acc in by_method.items():
        acc = np.array(acc)
        cells = [method, str(len(acc)), f"{acc.mean():.2f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.2f}"]
        if method != "kl" and len(acc) == len(kl) and len(acc) > 1:
            cells += [f"{(acc - kl).mean():+.2f}", f"{stats.ttest_rel(acc, kl).pvalue:.3f}"]
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    wall = sum(r["wall_seconds"] for r in runs.values())
    lines.append(f"\n{len(runs)} calls, {wall / 60:.1f} min of wall time.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("teacher", "students", "report"))
    parser.add_argument("path", nargs="?", help="report: students.json")
    parser.add_argument("--carry", default=CARRY)
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--work-dir", default="/tmp/sst2_full")
    parser.add_argument("--seed", type=int, default=0, help="the teacher's")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--teacher-learning-rate", type=float, default=3e-5)
    parser.add_argument("--epochs", type=int, default=3, help="the students'")
    parser.add_argument("--learning-rate", type=float, default=1e-4,
                        help="the students' peak rate (the CPU study needed 3e-4 with 1,500 "
                             "rows; with 66k rows and 3 epochs 1e-4 gives 3,000 steps)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mixed-precision", choices=("bfloat16", "float16"), default="bfloat16")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    if args.phase == "report":
        print(report(args.path))
        return
    os.makedirs(args.out, exist_ok=True)
    if args.tiny:
        args.mixed_precision = None  # CPUs have no fast bfloat16
    {"teacher": teacher, "students": students}[args.phase](args)


if __name__ == "__main__":
    main()
