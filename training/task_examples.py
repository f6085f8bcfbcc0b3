"""The examples a run reads: a registered task's splits or a user's files.

`DataSource` holds the data options shared by `ptloss-distill` and
`ptloss-distill teacher` (both configs have these fields), so both read the
same rows for the same options.
"""

import dataclasses

#: MNLI's second (mismatched) validation set: an extra test set.
MISMATCHED = "validation_mismatched"
SPLITS = ("train", "validation", "test")


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
        class_names: label index -> name, or None.
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

    @classmethod
    def from_config(cls, config):
        """The data options of any config object that has these fields."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


def load_task_examples(data):
    """`{"train", "validation", "test"}` Examples of `data.task`. A
    registered task's missing local test file (RTE) gives `"test": None`
    unless `source="tfds"`."""
    if data.task == "file":
        from ptloss_tf.training.data.examples import load_file

        examples = {}
        for split in SPLITS:
            path = getattr(data, f"{split}_file")
            if not path:
                raise ValueError(f"--task file needs `{split}_file`.")
            examples[split] = load_file(path, tuple(data.text_fields), data.label_field,
                                        class_names=data.class_names)
        return examples
    examples = {}
    for split in SPLITS:
        try:
            examples[split] = load_registered_split(data, split)
        except FileNotFoundError:
            if split != "test" or data.source == "tfds":
                raise
            examples["test"] = None  # e.g. RTE: no test file locally
    return examples


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
