"""`ptloss-distill teacher`: fine-tune a keras-hub BERT teacher with
cross-entropy, write its outputs for train / validation / test (MNLI also
validation_mismatched) in the teacher-outputs format
(`training/teacher_outputs.py`) and save it as `teacher.keras`.

The teacher comes from `--preset`: a keras-hub preset name (downloads; users
with internet) or a local keras-hub / HuggingFace BERT folder (e.g. the
offline all-MiniLM-L6-v2 of `../shared/docs/DATA.md`). For the paper's T5
teachers, produce the outputs elsewhere and use `import-teacher`.

Files written to `--output-dir`:

* `<split>.jsonl` for train, validation, test (a registered task's absent
  local test file, e.g. RTE's, is skipped) and, for MNLI,
  `validation_mismatched.jsonl`: logits, one row per example.
* `teacher.keras`: the fine-tuned teacher with its keras-hub preprocessor
  attached, so `keras.saving.load_model("teacher.keras").predict(texts)`
  takes raw text (a tuple of two arrays for sentence pairs) and returns the
  logits written to the files; it can be exported to a SavedModel later.

Training rows (`--max-train-examples N`): without it the teacher fine-tunes
on, and predicts, every training row, except that where the test labels are
hidden (GLUE test on TFDS, RTE) it does not fine-tune on the training rows
that `ptloss-distill` holds out for the coefficient search (predicted, not
trained on: the search needs the teacher's outputs on unseen examples, as the
paper's validation set is). With it the teacher fine-tunes on the
N rows that `ptloss-distill --max-train-examples N` with the same `--seed`
trains its students on, and `train.jsonl` holds exactly the training rows
that distillation reads: those N rows plus, where the test labels are hidden
(GLUE test on TFDS, RTE), the training rows it holds out for the coefficient
search (predicted, not trained on). The rule is
`ptloss_tf.training.splits.plan_train_rows`. Validation and test are always
predicted in full. `ptloss-distill` accepts such a partial `train.jsonl`
only with the same `--max-train-examples` and `--seed` (any other set of
ids is an error); `--predict-all-train` writes every training row instead,
which any distillation can use (slow: 67k rows on SST-2).
"""

import argparse
import dataclasses
import os
import time

import numpy as np

from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.training.splits import hidden_test_labels
from ptloss_tf.training.splits import plan_train_rows
from ptloss_tf.training.splits import rows_read
from ptloss_tf.training.task_examples import DataSource
from ptloss_tf.training.task_examples import extra_test_splits
from ptloss_tf.training.task_examples import load_registered_split
from ptloss_tf.training.task_examples import load_task_examples

TEACHER_FILE = "teacher.keras"
#: Timings and accuracies of the teacher run, for benchmarks.
RUN_FILE = "teacher_run.json"


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """Every option of `ptloss-distill teacher` (see `--help`); the data
    fields are those of `task_examples.DataSource`."""

    task: str
    preset: str
    output_dir: str
    teacher_name: str = None
    source: str = "auto"
    data_root: str = None
    tfds_data_dir: str = None
    train_file: str = None
    validation_file: str = None
    test_file: str = None
    text_fields: tuple = ("sentence",)
    label_field: str = "label"
    class_names: tuple = None
    max_train_examples: int = None
    predict_all_train: bool = False
    sequence_length: int = 128
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    seed: int = 0
    overwrite: bool = False
    verbose: int = 2

    def __post_init__(self):
        for name in ("text_fields", "class_names"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ptloss-distill teacher",
        description=__doc__.split("\n\n")[0],
        epilog="With --max-train-examples N the teacher fine-tunes on and predicts only "
               "the training rows that `ptloss-distill --max-train-examples N` with the "
               "same --seed reads (plus the rows it holds out for the coefficient search "
               "where test labels are hidden); distil with the same N and --seed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = TeacherConfig(task=None, preset=None, output_dir=None)

    def _add(group, flag, **kwargs):
        dest = flag.lstrip("-").replace("-", "_")
        if not kwargs.get("required"):
            value = getattr(defaults, dest)
            kwargs.setdefault("default", list(value) if isinstance(value, tuple) else value)
        return group.add_argument(flag, **kwargs)

    _add(parser, "--task", required=True, choices=("sst2", "mnli", "boolq", "rte", "file"))
    _add(parser, "--preset", required=True,
                        help="keras-hub preset name or local keras-hub/HuggingFace BERT folder")
    _add(parser, "--output-dir", required=True,
                        help="writes train.jsonl, validation.jsonl, test.jsonl (MNLI also "
                             "validation_mismatched.jsonl) and teacher.keras here")
    _add(parser, "--teacher-name",
                        help="recorded in the files (default: the preset's folder name)")
    _add(parser, "--source", choices=("auto", "tfds", "files"))
    _add(parser, "--data-root")
    _add(parser, "--tfds-data-dir")
    _add(parser, "--train-file")
    _add(parser, "--validation-file")
    _add(parser, "--test-file")
    _add(parser, "--text-fields", nargs="+")
    _add(parser, "--label-field")
    _add(parser, "--class-names", nargs="+")
    _add(parser, "--max-train-examples", type=int,
                        help="fine-tune on the fixed-seed subsample `ptloss-distill "
                             "--max-train-examples N --seed S` trains on, and predict only "
                             "the training rows that run reads")
    _add(parser, "--predict-all-train", action="store_true",
                        help="with --max-train-examples: still predict every training row")
    _add(parser, "--sequence-length", type=int)
    _add(parser, "--epochs", type=int)
    _add(parser, "--batch-size", type=int)
    _add(parser, "--learning-rate", type=float)
    _add(parser, "--seed", type=int,
                        help="fine-tuning seed and --max-train-examples subsample seed")
    _add(parser, "--overwrite", action="store_true",
                        help="replace existing teacher-output files and teacher.keras")
    _add(parser, "--verbose", type=int, choices=(0, 1, 2))
    return parser


def load_examples(config):
    """`{split: Examples}` to predict: train, validation, test (absent where a
    registered task has no local test file) and MNLI's validation_mismatched."""
    data = DataSource.from_config(config)
    examples = load_task_examples(data)
    if examples["test"] is None:
        print("Note: no test split for this task here; writing train and validation "
              "outputs only.", flush=True)
        del examples["test"]
    for split in extra_test_splits(config.task):
        examples[split] = load_registered_split(data, split)
    return examples


def training_rows(config, examples):
    """`(fit_rows, predicted_rows)`: indices into the training split of the
    rows to fine-tune on and the rows to write to train.jsonl (see the module
    docstring), and the `train.jsonl` metadata saying which rows it holds."""
    n = len(examples["train"])
    hidden = hidden_test_labels(examples.get("test"))
    if not config.max_train_examples and not hidden:
        return np.arange(n), np.arange(n), {"train_rows": "all"}
    plan = plan_train_rows(n, len(examples["validation"]), hidden,
                           config.max_train_examples, config.seed)
    if not config.max_train_examples or config.predict_all_train:
        # Hidden test labels: never fine-tune on the rows distillation holds
        # out for the coefficient search, whose teacher outputs must be those
        # of unseen examples (MATH.md: the search runs on held-out data).
        return plan["train"], np.arange(n), {"train_rows": "all"}
    predicted = rows_read(plan)
    meta = {"train_rows": "subset" if len(predicted) < n else "all",
            "max_train_examples": int(config.max_train_examples), "seed": int(config.seed),
            "train_split_rows": n}
    return plan["train"], predicted, meta


def predict_logits(model, examples, preprocessor, batch_size):
    """Logits `[N, K]` in the examples' order, from length-bucketed batches.

    Buckets reorder examples, so each carries its row index; padding every
    row to the full sequence length instead made prediction 3-5x slower.
    """
    import tensorflow as tf

    from ptloss_tf.training.data.input_pipeline import make_dataset

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


def save_teacher(model, preprocessor, path):
    """Saves the teacher for inference, with its preprocessor attached.

    An uncompiled copy is saved: a compiled model's `.keras` file carries its
    optimizer state (AdamW: twice the weights again), which loading skips
    with a warning. Written to a temporary file, then renamed.
    """
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.preprocessor = preprocessor
    tmp = path + ".tmp.keras"
    copy.save(tmp)
    os.replace(tmp, path)


def _refuse_existing(config, splits):
    paths = [os.path.join(config.output_dir, f"{s}.jsonl") for s in splits]
    paths.append(os.path.join(config.output_dir, TEACHER_FILE))
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not config.overwrite:
        raise ValueError(f"teacher outputs already exist ({existing[0]}); pass --overwrite "
                         "to replace them or choose another --output-dir.")


def fine_tune(config, examples, fit_rows, class_names):
    """`(teacher, preprocessor)`: the `preset` fine-tuned with cross-entropy
    on the training rows `fit_rows`, validated on the validation split."""
    import keras

    from ptloss_tf.training.data.input_pipeline import make_dataset
    from ptloss_tf.training.student import build_classifier

    teacher, preprocessor = build_classifier(
        len(class_names), sequence_length=config.sequence_length, preset=config.preset,
        seed=config.seed,
    )
    teacher.compile(
        optimizer=keras.optimizers.AdamW(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train = examples["train"].subset(fit_rows)

    def labels_only(x, y):
        return x, y["labels"]

    train_ds = make_dataset(train, preprocessor, config.batch_size, shuffle=True,
                            seed=config.seed, bucket_boundaries="auto",
                            static_shapes=True).map(labels_only)
    val_ds = make_dataset(examples["validation"], preprocessor, config.batch_size,
                          bucket_boundaries="auto", static_shapes=True).map(labels_only)
    held = len(examples["train"]) - len(train)
    print(f"Fine-tuning teacher {config.preset} on {len(train)} {config.task} examples "
          f"({teacher.count_params():,} parameters)"
          + (f"; {held} training rows not used" if held else "") + ".", flush=True)
    teacher.fit(train_ds, validation_data=val_ds, epochs=config.epochs,
                verbose=config.verbose, shuffle=False)
    return teacher, preprocessor


def run(config):
    """Fine-tunes the teacher, writes its outputs and `teacher.keras` (see
    the module docstring); returns `{split: accuracy}` of labelled splits."""
    from ptloss_tf.training.teacher_outputs import TeacherOutputs

    if config.max_train_examples is not None and config.max_train_examples < 1:
        raise ValueError(f"--max-train-examples must be >= 1, got {config.max_train_examples}.")
    if config.predict_all_train and not config.max_train_examples:
        raise ValueError("--predict-all-train only applies with --max-train-examples.")
    # Checked before the (long) fine-tuning; the .jsonl saves never clobber either.
    _refuse_existing(config, ("train", "validation", "test", "validation_mismatched"))
    examples = load_examples(config)
    class_names = tuple(examples["train"].class_names)
    fit_rows, predicted_rows, train_meta = training_rows(config, examples)
    start = time.time()
    teacher, preprocessor = fine_tune(config, examples, fit_rows, class_names)
    fitted = time.time()
    name = config.teacher_name or os.path.basename(os.path.normpath(config.preset))
    os.makedirs(config.output_dir, exist_ok=True)
    summary, written, rows = {}, [], {}
    for split, ex in examples.items():
        meta = {}
        if split == "train":
            ex, meta = ex.subset(predicted_rows), train_meta
        logits = predict_logits(teacher, ex, preprocessor, config.batch_size)
        outputs = TeacherOutputs(ids=np.asarray(ex.ids), values=np.asarray(logits, np.float32),
                                 kind="logits", class_names=class_names, split=split,
                                 teacher=name, metadata=meta)
        path = os.path.join(config.output_dir, f"{split}.jsonl")
        outputs.save(path, overwrite=config.overwrite)
        written.append(f"{path} ({len(ex)} rows)")
        rows[split] = len(ex)
        labels = np.asarray(ex.labels)
        if np.all(labels >= 0):
            summary[split] = float(np.mean(np.argmax(logits, 1) == labels))
    predicted = time.time()
    model_path = os.path.join(config.output_dir, TEACHER_FILE)
    save_teacher(teacher, preprocessor, model_path)
    atomic_write_json(os.path.join(config.output_dir, RUN_FILE), {
        "fit_seconds": fitted - start, "predict_seconds": predicted - fitted,
        "wall_seconds": time.time() - start, "epochs": int(config.epochs),
        "rows": rows, "accuracy": summary,
    })
    print(f"Wrote {', '.join(written)} and {model_path} in {time.time() - start:.0f} s; "
          f"teacher accuracy: {summary}", flush=True)
    return summary


def parse_args(argv):
    """The `TeacherConfig` of `ptloss-distill teacher` arguments."""
    return TeacherConfig(**vars(build_parser().parse_args(argv)))


def main(argv):
    return run(parse_args(argv))
