"""`ptloss-distill teacher`: fine-tune a keras-hub BERT teacher with
cross-entropy and write its outputs for train / validation / test in the
teacher-outputs format (`training/teacher_outputs.py`).

The teacher comes from `--preset`: a keras-hub preset name (downloads; users
with internet) or a local keras-hub / HuggingFace BERT folder (e.g. the
offline all-MiniLM-L6-v2 of `../shared/docs/DATA.md`). For the paper's T5
teachers, produce the outputs elsewhere and use `import-teacher`.
"""

import argparse
import os
import time

import numpy as np


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ptloss-distill teacher",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--task", required=True, choices=("sst2", "mnli", "boolq", "rte", "file"))
    parser.add_argument("--preset", required=True,
                        help="keras-hub preset name or local keras-hub/HuggingFace BERT folder")
    parser.add_argument("--output-dir", required=True,
                        help="writes train.jsonl, validation.jsonl, test.jsonl here")
    parser.add_argument("--teacher-name", default=None,
                        help="recorded in the files (default: the preset's folder name)")
    parser.add_argument("--source", default="auto", choices=("auto", "tfds", "files"))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--tfds-data-dir", default=None)
    parser.add_argument("--train-file", default=None)
    parser.add_argument("--validation-file", default=None)
    parser.add_argument("--test-file", default=None)
    parser.add_argument("--text-fields", nargs="+", default=["sentence"])
    parser.add_argument("--label-field", default="label")
    parser.add_argument("--class-names", nargs="+", default=None)
    parser.add_argument("--max-train-examples", type=int, default=None,
                        help="fine-tune on a fixed-seed subsample (outputs still cover every example)")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing teacher-output files")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    return parser


def load_examples(args):
    if args.task == "file":
        from training.data.examples import load_file

        out = {}
        for split in ("train", "validation", "test"):
            path = getattr(args, f"{split}_file")
            if not path:
                raise ValueError(f"--task file needs --{split}-file.")
            out[split] = load_file(path, tuple(args.text_fields), args.label_field,
                                   class_names=tuple(args.class_names) if args.class_names else None)
        return out
    from training.data.examples import load_split
    from training.data.tasks import get_task

    task = get_task(args.task)
    return {split: load_split(task, split, source=args.source, data_root=args.data_root,
                              tfds_data_dir=args.tfds_data_dir)
            for split in ("train", "validation", "test")}


def predict_logits(model, examples, preprocessor, batch_size):
    """Logits `[N, K]` in the examples' order, from length-bucketed batches.

    Buckets reorder examples, so each carries its row index; padding every
    row to the full sequence length instead made prediction 3-5x slower.
    """
    import tensorflow as tf

    from training.data.pipeline import make_dataset

    dataset = make_dataset(examples, preprocessor, batch_size,
                           targets={"index": np.arange(len(examples))},
                           bucket_boundaries="auto", static_shapes=True)
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    logits = None
    for inputs, targets in dataset:
        batch = np.asarray(forward(inputs), np.float32)
        if logits is None:
            logits = np.full((len(examples), batch.shape[1]), np.nan, np.float32)
        logits[targets["index"].numpy()] = batch
    if logits is None or np.isnan(logits).any():
        raise RuntimeError("teacher prediction did not cover every example")
    return logits


def run(args):
    import keras

    from training.data.pipeline import make_dataset
    from training.student import build_classifier
    from training.teacher_outputs import TeacherOutputs

    paths = {s: os.path.join(args.output_dir, f"{s}.jsonl")
             for s in ("train", "validation", "test")}
    existing = [p for p in paths.values() if os.path.exists(p)]
    if existing and not args.overwrite:
        raise ValueError(f"teacher outputs already exist ({existing[0]}); pass --overwrite "
                         "to replace them or choose another --output-dir.")
    examples = load_examples(args)
    class_names = tuple(examples["train"].class_names)
    teacher, preprocessor = build_classifier(
        len(class_names), sequence_length=args.sequence_length, preset=args.preset,
        seed=args.seed,
    )
    teacher.compile(
        optimizer=keras.optimizers.AdamW(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train = examples["train"]
    if args.max_train_examples and len(train) > args.max_train_examples:
        rng = np.random.default_rng(args.seed)
        train = train.subset(np.sort(rng.choice(len(train), args.max_train_examples,
                                                replace=False)))
    def labels_only(x, y):
        return x, y["labels"]

    train_ds = make_dataset(train, preprocessor, args.batch_size, shuffle=True,
                            seed=args.seed, bucket_boundaries="auto",
                            static_shapes=True).map(labels_only)
    val_ds = make_dataset(examples["validation"], preprocessor, args.batch_size,
                          bucket_boundaries="auto", static_shapes=True).map(labels_only)
    print(f"Fine-tuning teacher {args.preset} on {len(train)} {args.task} examples "
          f"({teacher.count_params():,} parameters).", flush=True)
    start = time.time()
    teacher.fit(train_ds, validation_data=val_ds, epochs=args.epochs,
                verbose=args.verbose, shuffle=False)
    name = args.teacher_name or os.path.basename(os.path.normpath(args.preset))
    os.makedirs(args.output_dir, exist_ok=True)
    summary = {}
    for split, ex in examples.items():
        logits = predict_logits(teacher, ex, preprocessor, args.batch_size)
        outputs = TeacherOutputs(ids=np.asarray(ex.ids), values=np.asarray(logits, np.float32),
                                 kind="logits", class_names=class_names, split=split,
                                 teacher=name)
        outputs.save(paths[split], overwrite=args.overwrite)
        labels = np.asarray(ex.labels)
        if np.all(labels >= 0):
            summary[split] = float(np.mean(np.argmax(logits, 1) == labels))
    print(f"Wrote {', '.join(paths.values())} in {time.time() - start:.0f} s; teacher "
          f"accuracy: {summary}", flush=True)
    return summary


def main(argv):
    return run(build_parser().parse_args(argv))
