"""The examples a run reads: a registered task's splits or a user's files.

`DataSource` holds the data options shared by `ptloss-distill` and
`ptloss-distill teacher` (both configs inherit them), so both read the same
rows for the same options.
"""

import dataclasses

#: MNLI's second (mismatched) validation set: an extra test set.
MISMATCHED = "validation_mismatched"
SPLITS = ("train", "validation", "test")
#: `--task file` without a validation file: this fraction of the training
#: rows (at least 1, at most `MAX_HELD_OUT`) is held out with `HOLDOUT_SEED`
#: for the coefficient search and early stopping.
HELD_OUT_FRACTION = 0.1
MAX_HELD_OUT = 2000
HOLDOUT_SEED = 0


@dataclasses.dataclass(frozen=True)
class DataSource:
    """Where a run's examples come from.

    Attributes:
        task: a registered task name (`"sst2"`, `"mnli"`, ...) or `"file"`.
        source: `"auto"`, `"files"` or `"tfds"` (registered tasks).
        data_root: the local data root (None: the default).
        tfds_data_dir: TFDS's `data_dir`.
        train_file, validation_file, test_file: the files of `task="file"`.
        text_fields: the text columns (1, or 2 for sentence pairs).
        label_field: the label column.
        class_names: label index -> name, or None: the sorted label values
            of the training file (see `load_task_examples`).
        no_header: the files of `task="file"` have no header row; the
            fields are then 0-based column numbers.
    """

    task: str
    source: str = "auto"
    data_root: str = None
    tfds_data_dir: str = None
    train_file: str = None
    validation_file: str = None
    test_file: str = None
    text_fields: tuple = ("sentence",)
    label_field: str = "label"
    class_names: tuple = None
    no_header: bool = False

    def __post_init__(self):
        for name in ("text_fields", "class_names"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @classmethod
    def from_config(cls, config):
        """The data options of a config object (fields it lacks: defaults)."""
        return cls(**{f.name: getattr(config, f.name, f.default)
                      for f in dataclasses.fields(cls)})


def load_task_examples(data, notes=None, log=None):
    """`{"train", "validation", "test"}` Examples of `data.task`. A
    registered task's missing local test file (RTE) gives `"test": None`
    unless `source="tfds"`.

    `task="file"`: one label vocabulary for the run, `data.class_names` or
    else the sorted label values of the training file, used for every split:
    a validation or test label outside it is an error naming the file, line
    and value (never a silently different encoding). Without a
    `validation_file`, `"validation"` is None: `splits.plan_train_rows`
    then holds out `held_out_rows(len(train))` training rows drawn with
    `HOLDOUT_SEED` as the validation split; the note saying so is appended
    to `notes` and logged.
    """
    if data.task == "file":
        return load_file_task(data, notes=notes, log=log)
    examples = {}
    for split in SPLITS:
        try:
            examples[split] = load_registered_split(data, split)
        except FileNotFoundError:
            if split != "test" or data.source == "tfds":
                raise
            examples["test"] = None  # e.g. RTE: no test file locally
    return examples


def held_out_rows(num_train):
    """How many training rows a file task without a validation file holds out.

    Example:
    >>> held_out_rows(50), held_out_rows(6000), held_out_rows(10**6)
    (5, 600, 2000)
    """
    return int(min(max(1, num_train * HELD_OUT_FRACTION), MAX_HELD_OUT))


def load_file_task(data, notes=None, log=None):
    """The splits of `task="file"` (see `load_task_examples`)."""
    from ptloss_tf.training.data.examples import load_file

    for split in ("train", "test"):
        if not getattr(data, f"{split}_file"):
            raise ValueError(f"--task file needs `{split}_file`.")

    def load(split, class_names, accept_indices):
        return load_file(getattr(data, f"{split}_file"), tuple(data.text_fields),
                         data.label_field, class_names=class_names,
                         header=not data.no_header, accept_indices=accept_indices)

    train = load("train", data.class_names, accept_indices=True)
    if train.num_classes < 2:
        raise ValueError(
            f"{data.train_file}: the labels hold {train.num_classes} distinct value(s) "
            f"{list(train.class_names)}; a classifier needs 2 or more classes (give all "
            "of them with `class_names`)."
        )
    # The other files must use the training file's vocabulary: encoding each
    # file by its own sorted values would turn a test file holding only label
    # "1" into class 0. Indices are accepted only for names the user gave.
    vocabulary, by_index = train.class_names, data.class_names is not None
    examples = {"train": train, "test": load("test", vocabulary, by_index)}
    if data.validation_file:
        examples["validation"] = load("validation", vocabulary, by_index)
    else:
        # Held out of train by `splits.plan_train_rows`, so that its teacher
        # outputs come from train.jsonl, as for tasks with hidden test labels.
        examples["validation"] = None
        note = (f"no validation file: {held_out_rows(len(train))} of the {len(train)} "
                f"rows of {data.train_file} held out with seed {HOLDOUT_SEED} as the "
                "validation split (coefficient search, early stopping); the students "
                "train on the others")
        if notes is not None:
            notes.append(note)
        if log is not None:
            log("Note: " + note + ".")
    return {split: examples[split] for split in SPLITS}


def load_registered_split(data, split):
    """One split (e.g. MNLI's `validation_mismatched`) of a registered task."""
    from ptloss_tf.training.data.sources import load_split
    from ptloss_tf.training.data.tasks import get_task

    return load_split(get_task(data.task), split, source=data.source,
                      data_root=data.data_root, tfds_data_dir=data.tfds_data_dir)


def extra_test_splits(task_name):
    """Additional labelled evaluation splits of a task: MNLI's mismatched
    validation set (`("validation_mismatched",)`), else `()`.

    Example:
    >>> extra_test_splits("mnli"), extra_test_splits("sst2"), extra_test_splits("file")
    (('validation_mismatched',), (), ())
    """
    if task_name in ("synthetic", "file"):
        return ()
    from ptloss_tf.training.data.tasks import get_task

    return tuple(s for s in (MISMATCHED,) if s in get_task(task_name).splits)
