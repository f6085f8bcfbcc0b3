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

Two local layouts lack splits the experiments need; their `derived_splits`
(`HeldOutRows`, `FractionSplit`: data, not code paths) say how
`ptloss_tf.training.data.sources.load_split` derives them from one file with
a fixed seed (also in each loaded `Examples.note`):

* SST-2: GLUE hides the test labels. `"test"` is `dev.tsv` (the test set of
  the papers) and `"validation"` 872 rows held out of `train.tsv` (seed 0),
  `"train"` the other 66,477 rows.
* BoolQ: only `dev.jsonl` is available here, split 60/20/20 (seed 0) into
  `"train"` / `"validation"` / `"test"`.
* CB (SuperGLUE; its test labels are hidden): `"test"` is `val.jsonl` (56
  pairs), `"validation"` 25 rows held out of `train.jsonl` (seed 0),
  `"train"` the other 225.
* TREC-6 (train and test only): `"validation"` 545 rows held out of
  `train.tsv` (seed 0), `"train"` the other 4,907.

The multi-class tasks `cb`, `sst5`, `trec` are local files only
(`tfds_name` None: `files_only`), under `multiclass/` of the data root;
see `data/multiclass/README.md`. Their held-out validation rows are the
ones `--task file` holds out of the same training file (10 %, seed 0).

Example:
>>> get_task("sst2").class_names
('negative', 'positive')
>>> get_task("SST-2").tfds_name
'glue/sst2'
>>> get_task("mnli").tfds_splits["validation"]
'validation_matched'
>>> get_task("SST-5").class_names[0], get_task("trec").files_only
('very negative', True)
"""

import dataclasses
import os

import numpy as np

# Repository root: training/data/tasks.py -> training/data -> training -> repo.
_REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)

DATA_DIR_ENV = "PTLOSS_DATA_DIR"
#: The repository's own data folder: searched after the default data root
#: when no data root is given (`data_roots`).
REPO_DATA_DIR = os.path.join(_REPO_ROOT, "data")


@dataclasses.dataclass(frozen=True)
class HeldOutRows:
    """`"validation"` is `size` rows of the training file drawn with `seed`,
    `"train"` the other rows; other splits use their own file whole.

    Example:
    >>> derive = HeldOutRows(size=2, seed=0)  # rows 2 and 4 of rng(0).permutation(5)
    >>> derive.rows("validation", 5).tolist(), derive.rows("train", 5).tolist()
    ([2, 4], [0, 1, 3])
    >>> derive.rows("test", 5) is None
    True
    """

    size: int
    seed: int = 0

    def rows(self, split, num_rows):
        """Sorted row indices of `split` in its file, or None (every row)."""
        if split not in ("train", "validation"):
            return None
        held = np.zeros(num_rows, dtype=bool)
        held[np.random.default_rng(self.seed).permutation(num_rows)[:self.size]] = True
        return np.flatnonzero(held if split == "validation" else ~held)

    def note(self, task, split, file, num_rows):
        """Where `split`'s rows come from, for `Examples.note`."""
        if split == "validation":
            return f"{task} validation: {self.size} rows of {file} held out with seed {self.seed}"
        if split == "train":
            return (f"{task} train: {file} without the {self.size} rows held out with "
                    f"seed {self.seed} for validation")
        return f"{task} {split}: {file}"


@dataclasses.dataclass(frozen=True)
class FractionSplit:
    """`"train"`, `"validation"`, `"test"` are consecutive parts (`fractions`,
    rounded) of one seeded permutation of a single file's rows.

    Example:
    >>> derive = FractionSplit((0.6, 0.2, 0.2), seed=0)
    >>> sorted(sum((derive.rows(s, 10).tolist() for s in derive.SPLITS), [])) == list(range(10))
    True
    >>> [len(derive.rows(s, 10)) for s in derive.SPLITS]
    [6, 2, 2]
    """

    fractions: tuple
    seed: int = 0
    SPLITS = ("train", "validation", "test")

    def rows(self, split, num_rows):
        perm = np.random.default_rng(self.seed).permutation(num_rows)
        n_train = int(round(self.fractions[0] * num_rows))
        n_val = int(round(self.fractions[1] * num_rows))
        parts = {"train": perm[:n_train], "validation": perm[n_train:n_train + n_val],
                 "test": perm[n_train + n_val:]}
        return np.sort(parts[split])

    def note(self, task, split, file, num_rows):
        """Where `split`'s rows come from, for `Examples.note`."""
        percent = "/".join(str(int(round(100 * f))) for f in self.fractions)
        return (f"{task} {split}: {len(self.rows(split, num_rows))} of the {num_rows} rows "
                f"of {file}, a {percent} train/validation/test split with seed {self.seed}")


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
        derived_splits: None, or how the local layout derives splits that
            share one file (`HeldOutRows`, `FractionSplit`).

    A task with `tfds_name=None` is read from its local files only
    (`files_only`): every split's file must exist.
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
    derived_splits: object = None

    @property
    def files_only(self):
        """No TFDS source: the local files are the only source."""
        return self.tfds_name is None

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
        derived_splits=HeldOutRows(size=872, seed=0),
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
        derived_splits=FractionSplit((0.6, 0.2, 0.2), seed=0),
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
    # Multi-class text, local files only (data/multiclass/README.md).
    "cb": TaskSpec(
        name="cb",
        text_fields=("premise", "hypothesis"),
        label_field="label",
        class_names=("entailment", "contradiction", "neutral"),  # TFDS super_glue/cb order
        tfds_name=None,
        tfds_splits={},
        local_files={
            "train": "multiclass/cb/train.jsonl",       # minus the 25 held-out rows
            "validation": "multiclass/cb/train.jsonl",  # 25 rows held out, seed 0
            "test": "multiclass/cb/val.jsonl",          # SuperGLUE validation (test labels hidden)
        },
        derived_splits=HeldOutRows(size=25, seed=0),
    ),
    "sst5": TaskSpec(
        name="sst5",
        text_fields=("sentence",),
        label_field="label",
        class_names=("very negative", "negative", "neutral", "positive", "very positive"),
        tfds_name=None,
        tfds_splits={},
        local_files={
            "train": "multiclass/sst5/train.tsv",
            "validation": "multiclass/sst5/dev.tsv",
            "test": "multiclass/sst5/test.tsv",
        },
    ),
    "trec": TaskSpec(
        name="trec",
        text_fields=("question",),
        label_field="label",
        class_names=("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"),
        tfds_name=None,
        tfds_splits={},
        local_files={
            "train": "multiclass/trec/train.tsv",       # minus the 545 held-out rows
            "validation": "multiclass/trec/train.tsv",  # 545 rows held out, seed 0
            "test": "multiclass/trec/test.tsv",         # TREC_10.label
        },
        derived_splits=HeldOutRows(size=545, seed=0),
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


def data_roots(data_root=None):
    """The data roots a local file is looked for in, in order: `data_root`
    alone when given, else `default_data_root()` then the repository's
    `data/` folder (`REPO_DATA_DIR`, where `data/multiclass/` lives).

    Example:
    >>> data_roots("/d")
    ('/d',)
    """
    if data_root is not None:
        return (os.fspath(data_root),)
    roots = (default_data_root(), REPO_DATA_DIR)
    return roots if roots[0] != os.path.normpath(roots[1]) else roots[:1]
