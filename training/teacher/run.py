"""`ptloss-distill teacher`: fine-tune a keras-hub BERT teacher with
cross-entropy, write its outputs for train / validation / test (MNLI also
validation_mismatched) in the teacher-outputs format
(`training/teacher/outputs.py`) and save it as `teacher.keras`.

The teacher comes from `--preset`: a keras-hub preset name (downloads; users
with internet) or a local keras-hub / HuggingFace BERT folder (e.g. the
offline all-MiniLM-L6-v2 of `../shared/docs/DATA.md`). For the paper's T5
teachers, produce the outputs elsewhere and use `import-teacher`.

Files written to `--output-dir`:

* `<split>.jsonl` for train, validation, test (a registered task's absent
  local test file, e.g. RTE's, is skipped) and, for MNLI,
  `validation_mismatched.jsonl`: logits, one row per example, each with the
  content fingerprint of its texts (`teacher.fingerprints.text_fingerprints`), so
  `ptloss-distill` refuses them for other data of the same size.
* `teacher.keras`: the fine-tuned teacher with its keras-hub preprocessor
  attached, so `keras.saving.load_model("teacher.keras").predict(texts)`
  takes raw text (a tuple of two arrays for sentence pairs) and returns the
  logits written to the files; it can be exported to a SavedModel later.
* `teacher_run.json`: the teacher's name, timings, rows and accuracies.
* `teacher_state.json` (and, while fine-tuning, `teacher_backup/`): the
  run's options and progress, for resuming.

Every file is written to a temporary file and renamed into place (with the
user's umask permissions), so none is ever partial under its final name.
Interrupted (Ctrl-C, a kill), the same command resumes the run: fine-tuning
after the last finished epoch (weights, optimizer and dropout states are
backed up after every epoch, and epoch `e`'s data order depends on `--seed`
and `e` only, so the result is the uninterrupted run's), then prediction of
the splits not yet written; `teacher.keras` is saved before the predictions.

On several machines (`teacher.shards`): `--fine-tune-only` stops after
`teacher.keras`; `--shard I/N` with the same flags predicts shard I of N of
every split from it into `shards/`, and `ptloss-distill teacher merge`
assembles the shards into the files above, equal to one process's.

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

import os
import shutil
import time

import numpy as np

from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.io_utils import file_sha256
from ptloss_tf.training.preflight import check_preset
from ptloss_tf.training.splits import held_out_validation_rows
from ptloss_tf.training.splits import hidden_test_labels
from ptloss_tf.training.splits import plan_train_rows
from ptloss_tf.training.splits import rows_read
from ptloss_tf.training.task_examples import DataSource
from ptloss_tf.training.task_examples import extra_test_splits
from ptloss_tf.training.task_examples import load_registered_split
from ptloss_tf.training.task_examples import load_task_examples
from ptloss_tf.training.teacher.fine_tune import default_teacher_name
from ptloss_tf.training.teacher.fine_tune import fine_tune
from ptloss_tf.training.teacher.fine_tune import save_teacher
from ptloss_tf.training.teacher.options import TeacherConfig  # noqa: F401  (the stage's config)
from ptloss_tf.training.teacher.options import parse_args
from ptloss_tf.training.teacher.predict import load_teacher
from ptloss_tf.training.teacher.predict import predict_logits
from ptloss_tf.training.teacher.predict import prediction_distribution
from ptloss_tf.training.teacher.run_state import BACKUP_DIR
from ptloss_tf.training.teacher.run_state import kept_outputs
from ptloss_tf.training.teacher.run_state import open_run_state
from ptloss_tf.training.teacher.run_state import write_state

TEACHER_FILE = "teacher.keras"
#: Timings and accuracies of the teacher run, for benchmarks.
RUN_FILE = "teacher_run.json"


def load_examples(config):
    """`{split: Examples}` to predict: train, validation, test (absent where a
    registered task has no local test file) and MNLI's validation_mismatched."""
    data = DataSource.from_config(config)
    examples = load_task_examples(data, log=lambda m: print(m, flush=True))
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
    validation = examples.get("validation")  # None: held out of train (a file task)
    if not config.max_train_examples and not hidden and validation is not None:
        return np.arange(n), np.arange(n), {"train_rows": "all"}
    plan = plan_train_rows(n, None if validation is None else len(validation), hidden,
                           config.max_train_examples, config.seed)
    if not config.max_train_examples or config.predict_all_train:
        # Hidden test labels or no validation file: never fine-tune on the
        # rows distillation holds out for the coefficient search, whose
        # teacher outputs must be those of unseen examples (MATH.md: the
        # search runs on held-out data).
        return plan["train"], np.arange(n), {"train_rows": "all"}
    predicted = rows_read(plan)
    meta = {"train_rows": "subset" if len(predicted) < n else "all",
            "max_train_examples": int(config.max_train_examples), "seed": int(config.seed),
            "train_split_rows": n}
    return plan["train"], predicted, meta


def prediction_splits(examples, predicted_rows, train_meta):
    """`{split: (examples, metadata)}`: the rows each split's outputs file
    holds (train: `predicted_rows` only) and its header metadata."""
    return {split: (ex.subset(predicted_rows), train_meta) if split == "train" else (ex, {})
            for split, ex in examples.items()}


def run(config):
    """Fine-tunes the teacher, writes its outputs and `teacher.keras` (see
    the module docstring); returns `{split: accuracy}` of labelled splits.

    Resumable: every file is written atomically (a temporary file renamed
    into place), so no file under its final name is ever partial, and
    `--output-dir/teacher_state.json` records the progress. Interrupted
    (Ctrl-C, a kill), the same command resumes: fine-tuning from the last
    epoch backed up, then only the splits whose outputs are not written yet
    (`teacher.keras` is saved before the predictions).
    """
    from ptloss_tf.training.teacher.outputs import TeacherOutputs
    from ptloss_tf.training.teacher.outputs import text_fingerprints

    if config.max_train_examples is not None and config.max_train_examples < 1:
        raise ValueError(f"`max_train_examples` must be at least 1, got "
                         f"{config.max_train_examples} (omit it to use every row).")
    if config.predict_all_train and not config.max_train_examples:
        raise ValueError("--predict-all-train only applies with --max-train-examples.")
    if config.no_header and config.task != "file":
        raise ValueError("`no_header` applies to `task` file.")
    if config.shard is not None:
        from ptloss_tf.training.teacher.shards import parse_shard

        shard = parse_shard(config.shard)
        if config.fine_tune_only:
            raise ValueError("--shard predicts and --fine-tune-only does not: give one of them.")
    check_preset(config.preset)
    distribution = prediction_distribution(config.distribution, config.devices)
    # The data (labels included) are checked before anything is written, and
    # the run directory before the (long) fine-tuning.
    examples = load_examples(config)
    class_names = tuple(examples["train"].class_names)
    fit_rows, predicted_rows, train_meta = training_rows(config, examples)
    if examples.get("validation") is None:
        # No validation file: early stopping watches the rows distillation
        # holds out of train; their outputs are in train.jsonl.
        held = held_out_validation_rows(len(examples["train"]), None, False)
        examples.pop("validation")
        validation_for_fit = examples["train"].subset(held)
    else:
        validation_for_fit = examples["validation"]
    name = config.teacher_name or default_teacher_name(config.preset)
    if config.shard is not None:
        from ptloss_tf.training.teacher.shards import predict_shard

        return predict_shard(config, shard, prediction_splits(examples, predicted_rows,
                                                              train_meta), name, distribution)
    state = open_run_state(config, [f"{s}.jsonl" for s in (
        "train", "validation", "test", "validation_mismatched")] + [TEACHER_FILE])
    os.makedirs(config.output_dir, exist_ok=True)
    backup_dir = os.path.join(config.output_dir, BACKUP_DIR)
    if state["resumed"]:
        print(f"Resuming the unfinished teacher run in {config.output_dir}.", flush=True)
    else:
        shutil.rmtree(backup_dir, ignore_errors=True)  # another run's
    write_state(config, state)

    start = time.time()
    model_path = os.path.join(config.output_dir, TEACHER_FILE)
    fitted_before = (state.get("teacher_file") and os.path.exists(model_path)
                     and file_sha256(model_path) == state["teacher_file"])
    if config.fine_tune_only and fitted_before:
        print(f"{model_path} is this run's fine-tuned teacher already.", flush=True)
    elif fitted_before:
        print(f"Fine-tuning done before the interruption: loading {model_path}.", flush=True)
        teacher = load_teacher(model_path, distribution)
        preprocessor = teacher.preprocessor
    else:
        teacher, preprocessor = fine_tune(config, {**examples, "validation": validation_for_fit},
                                          fit_rows, class_names, state)
        # Saved before predicting: an interrupted prediction resumes from it.
        save_teacher(teacher, preprocessor, model_path)
        state.update(teacher_file=file_sha256(model_path), backup=None, seed_states=None)
        write_state(config, state)
        shutil.rmtree(backup_dir, ignore_errors=True)
        if distribution is not None:  # fine-tuned on one device; predicts on the mesh
            teacher = load_teacher(model_path, distribution)
            preprocessor = teacher.preprocessor
    if config.fine_tune_only:
        # The run stays unfinished: `--shard I/N` processes predict from
        # teacher.keras, and the command without --fine-tune-only resumes.
        print(f"Fine-tuned teacher in {model_path}; predict with --shard I/N (see "
              "`ptloss-distill teacher merge`) or rerun without --fine-tune-only.", flush=True)
        return {}
    fitted = time.time()
    summary, written, rows = {}, [], {}
    for split, (ex, meta) in prediction_splits(examples, predicted_rows, train_meta).items():
        fingerprints = text_fingerprints(ex.texts)
        path = os.path.join(config.output_dir, f"{split}.jsonl")
        outputs = kept_outputs(config, state, split, ex, fingerprints, name)
        if outputs is not None:
            print(f"Keeping {path}, written before the interruption.", flush=True)
            logits = outputs.values
        else:
            logits = predict_logits(teacher, ex, preprocessor, config.batch_size,
                                    distribution=distribution)
            TeacherOutputs(ids=np.asarray(ex.ids), values=np.asarray(logits, np.float32),
                           kind="logits", class_names=class_names, split=split,
                           teacher=name, metadata=meta, fingerprints=fingerprints,
                           ).save(path, overwrite=True)  # this run's directory (checked above)
            state["outputs"][split] = {"sha256": file_sha256(path), "rows": len(ex)}
            write_state(config, state)
        written.append(f"{path} ({len(ex)} rows)")
        rows[split] = len(ex)
        labels = np.asarray(ex.labels)
        if np.all(labels >= 0):
            summary[split] = float(np.mean(np.argmax(logits, 1) == labels))
    predicted = time.time()
    atomic_write_json(os.path.join(config.output_dir, RUN_FILE), {
        "teacher": name, "fit_seconds": fitted - start, "predict_seconds": predicted - fitted,
        "wall_seconds": time.time() - start, "epochs": int(config.epochs),
        "resumed": bool(state["resumed"]), "rows": rows, "accuracy": summary,
        # What ptloss-export needs to serve teacher.keras without flags.
        "class_names": list(class_names), "num_segments": len(examples["train"].texts),
        "text_fields": list(config.text_fields) if config.task == "file" else None,
    })
    state["finished"] = True
    write_state(config, state)
    print(f"Wrote {', '.join(written)} and {model_path} in {time.time() - start:.0f} s; "
          f"teacher accuracy: {summary}", flush=True)
    return summary


def main(argv):
    return run(parse_args(argv))
