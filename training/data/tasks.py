"""The registry of supported text-classification tasks.

A `TaskSpec` says where a task's data comes from in two layouts:

* TFDS (`tfds_name`, `tfds_splits`): the primary path for users with
  internet (`tfds.load` downloads and prepares the data once).
* Local files (`local_files`, relative to a data root, see
  `default_data_root`): the GLUE / BoolQ release layout, e.g.
  `glue/SST-2/train.tsv`, `boolq/dev.jsonl`.

Field names (`text_fields`, `label_field`) are the TFDS feature names;
`local_columns` maps them to the column names of the local files where those
differ (MNLI's `sentence1`/`sentence2`/`gold_label`, BoolQ's `answer`).

Two local layouts lack splits the experiments need; `ptloss_tf.training.data.examples`
derives them with a fixed seed (documented in `load_split` and in each
loaded `Examples.note`):

* SST-2: GLUE hides the test labels. `"test"` is `dev.tsv` (the test set of
  the papers) and `"validation"` 872 rows held out of `train.tsv` (seed 0),
  `"train"` the other 66,477 rows.
* BoolQ: only `dev.jsonl` is available here, split 60/20/20 (seed 0) into
  `"train"` / `"validation"` / `"test"`.

Example:
>>> get_task("sst2").class_names
('negative', 'positive')
>>> get_task("SST-2").tfds_name
'glue/sst2'
>>> get_task("mnli").tfds_splits["validation"]
'validation_matched'
"""

import dataclasses
import os

# Repository root: training/data/tasks.py -> training/data -> training -> repo.
_REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)

DATA_DIR_ENV = "PTLOSS_DATA_DIR"


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A text-classification task (see the module docstring).

    Attributes:
        name: short name, e.g. `"sst2"`.
        text_fields: the TFDS text feature names, one (single sentence) or two
            (sentence pair, in model order: first segment first).
        label_field: the TFDS label feature name.
        class_names: label index -> name, in the TFDS `ClassLabel` order.
        tfds_name: e.g. `"glue/sst2"`.
        tfds_splits: logical split -> TFDS split name.
        local_files: logical split -> file path relative to the data root.
        local_columns: TFDS field name -> local file column, where they differ.
        local_id_field: the local files' id column (None: row numbers).
        local_unlabeled: logical splits whose local file has no labels (GLUE
            test files).
        derived_splits: "" (none), "sst2_holdout" or "boolq_dev_60_20_20":
            the fixed-seed local split derivations described above.
    """

    name: str
    text_fields: tuple
    label_field: str
    class_names: tuple
    tfds_name: str
    tfds_splits: dict
    local_files: dict
    local_columns: dict = dataclasses.field(default_factory=dict)
    local_id_field: str = None
    local_unlabeled: tuple = ()
    derived_splits: str = ""

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def is_pair(self):
        return len(self.text_fields) == 2

    @property
    def splits(self):
        """The logical split names this task knows (any source)."""
        names = list(self.tfds_splits)
        names += [s for s in self.local_files if s not in names]
        return tuple(names)

    def local_column(self, field):
        """The local files' column name of TFDS field `field`."""
        return self.local_columns.get(field, field)


TASKS = {
    "sst2": TaskSpec(
        name="sst2",
        text_fields=("sentence",),
        label_field="label",
        class_names=("negative", "positive"),
        tfds_name="glue/sst2",
        tfds_splits={"train": "train", "validation": "validation", "test": "test"},
        local_files={
            "train": "glue/SST-2/train.tsv",       # minus the 872 held-out rows
            "validation": "glue/SST-2/train.tsv",  # 872 rows held out, seed 0
            "test": "glue/SST-2/dev.tsv",          # the papers' test set
        },
        derived_splits="sst2_holdout",
    ),
    "mnli": TaskSpec(
        name="mnli",
        text_fields=("premise", "hypothesis"),
        label_field="label",
        class_names=("entailment", "neutral", "contradiction"),
        tfds_name="glue/mnli",
        tfds_splits={
            "train": "train",
            "validation": "validation_matched",
            "validation_mismatched": "validation_mismatched",
            "test": "test_matched",
            "test_mismatched": "test_mismatched",
        },
        local_files={
            "train": "glue/MNLI/train.tsv",
            "validation": "glue/MNLI/dev_matched.tsv",
            "validation_mismatched": "glue/MNLI/dev_mismatched.tsv",
            "test": "glue/MNLI/test_matched.tsv",
            "test_mismatched": "glue/MNLI/test_mismatched.tsv",
        },
        local_columns={"premise": "sentence1", "hypothesis": "sentence2",
                       "label": "gold_label"},
        local_id_field="index",
        local_unlabeled=("test", "test_mismatched"),
    ),
    "boolq": TaskSpec(
        name="boolq",
        text_fields=("question", "passage"),
        label_field="label",
        class_names=("False", "True"),
        tfds_name="super_glue/boolq",
        tfds_splits={"train": "train", "validation": "validation", "test": "test"},
        local_files={
            "train": "boolq/dev.jsonl",       # 60 % of dev.jsonl, seed 0
            "validation": "boolq/dev.jsonl",  # 20 %
            "test": "boolq/dev.jsonl",        # 20 %
        },
        local_columns={"label": "answer"},
        derived_splits="boolq_dev_60_20_20",
    ),
    "rte": TaskSpec(
        name="rte",
        text_fields=("sentence1", "sentence2"),
        label_field="label",
        class_names=("entailment", "not_entailment"),
        tfds_name="glue/rte",
        tfds_splits={"train": "train", "validation": "validation", "test": "test"},
        local_files={
            "train": "glue/RTE/train.tsv",
            "validation": "glue/RTE/dev.tsv",
            "test": "glue/RTE/test.tsv",
        },
        local_id_field="index",
        local_unlabeled=("test",),
    ),
}


def get_task(name):
    """The `TaskSpec` named `name` (case-insensitive; "SST-2" == "sst2").

    A `TaskSpec` is returned unchanged. Raises ValueError listing the known
    tasks for an unknown name.
    """
    if isinstance(name, TaskSpec):
        return name
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key.startswith("glue/") or key.startswith("superglue/"):
        key = key.split("/", 1)[1]
    if key not in TASKS:
        raise ValueError(
            f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}"
        )
    return TASKS[key]


def default_data_root():
    """`$PTLOSS_DATA_DIR` if set, else `<repo>/../shared/data` (absolute)."""
    root = os.environ.get(DATA_DIR_ENV)
    if root:
        return os.path.abspath(os.path.expanduser(root))
    return os.path.normpath(os.path.join(_REPO_ROOT, "..", "shared", "data"))
