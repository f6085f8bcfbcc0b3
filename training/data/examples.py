"""Loading text-classification examples into memory (`Examples`).

`load_file(path, text_fields, ...)` reads any GLUE-style TSV (header row),
CSV or JSONL file (through `tables.read_table`); a registered task's splits
come from `sources.load_split`.

Ids name the *source row*, independent of how a logical split is derived:
`"<task>/<source split>/<row>"`, e.g. `"sst2/train/000123"` (row 123 of
SST-2's `train.tsv`, or TFDS `idx` 123 of `glue/sst2` `train`),
`"rte/dev/000012"` (RTE `dev.tsv`, `index` 12), `"boolq/dev/001234"`. So
teacher outputs keyed by id join correctly whatever split a row ends up in.

Texts are object arrays of Python `str`; labels int64 with -1 = unlabeled.
"""

import dataclasses
import os

import numpy as np

from ptloss_tf.training.data.tables import format_columns
from ptloss_tf.training.data.tables import infer_format
from ptloss_tf.training.data.tables import read_table
from ptloss_tf.training.data.tasks import DATA_DIR_ENV


@dataclasses.dataclass
class Examples:
    """Examples of one split, held in memory.

    Attributes:
        ids: `[N]` str, unique, stable ids (see the module docstring).
        texts: a tuple of 1 or 2 `[N]` arrays of str (the segments in model
            order: premise/hypothesis, question/passage, ...).
        labels: `[N]` int64 class indices, -1 where unlabeled.
        class_names: label index -> name.
        note: where the examples came from, incl. any split derivation.
    """

    ids: np.ndarray
    texts: tuple
    labels: np.ndarray
    class_names: tuple
    note: str = ""

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=str)
        if isinstance(self.texts, np.ndarray) and self.texts.ndim == 1:
            self.texts = (self.texts,)
        self.texts = tuple(
            t if isinstance(t, np.ndarray) else np.asarray(list(t), dtype=object)
            for t in self.texts
        )
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.class_names = tuple(str(c) for c in self.class_names)
        n = len(self.ids)
        if self.ids.ndim != 1 or self.labels.shape != (n,):
            raise ValueError(
                f"Examples: ids and labels must be [N] arrays of the same length, "
                f"got {self.ids.shape} and {self.labels.shape}."
            )
        if not 1 <= len(self.texts) <= 2:
            raise ValueError(f"Examples: need 1 or 2 text fields, got {len(self.texts)}.")
        for t in self.texts:
            if t.shape != (n,):
                raise ValueError(
                    f"Examples: every text array must have shape ({n},), got {t.shape}."
                )
        if n and self.labels.max(initial=-1) >= len(self.class_names):
            raise ValueError(
                f"Examples: label {int(self.labels.max())} out of range for "
                f"{len(self.class_names)} classes {self.class_names}."
            )

    def __len__(self):
        return len(self.ids)

    def __repr__(self):
        return (
            f"Examples(n={len(self)}, texts={len(self.texts)}, "
            f"classes={self.class_names}, labelled={int((self.labels >= 0).sum())}"
            + (f", note={self.note!r}" if self.note else "") + ")"
        )

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def is_pair(self):
        return len(self.texts) == 2

    def label_counts(self):
        """`[K]` int64 count of each class (unlabeled rows not counted)."""
        labelled = self.labels[self.labels >= 0]
        return np.bincount(labelled, minlength=self.num_classes).astype(np.int64)

    def subset(self, indices):
        """The examples at `indices` (int array or boolean mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean mask of shape {idx.shape} for {len(self)} examples")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        return Examples(
            ids=self.ids[idx],
            texts=tuple(t[idx] for t in self.texts),
            labels=self.labels[idx],
            class_names=self.class_names,
            note=self.note,
        )

    def take(self, n):
        """The first `n` examples (all of them if there are fewer)."""
        return self.subset(np.arange(min(int(n), len(self))))


# -- files --------------------------------------------------------------------

def missing_file_error(path):
    return FileNotFoundError(
        f"{path}: file not found (local data root: set ${DATA_DIR_ENV} or "
        "--data-root; or load from TFDS with --source tfds --tfds-data-dir DIR)"
    )


def _columns(table, fields):
    """`(line_numbers, {field: [values]})` of `fields`, checked present."""
    where = "columns" if table.format != "jsonl" else "keys"
    missing = [c for c in fields if c not in table.columns]
    if missing:
        hint = ""
        if table.format != "jsonl" and all(c.isdigit() for c in missing):
            hint = ("; column numbers need a file without a header row: pass "
                    "`no_header`")
        raise ValueError(f"{table.path}: missing column {missing[0]!r} "
                         f"({where}: {format_columns(table.columns)}){hint}")
    line_numbers, columns = [], {f: [] for f in fields}
    for line_no, record in table.records:
        absent = [c for c in fields if c not in record]
        if absent:
            if table.format == "jsonl":
                raise ValueError(f"{table.path}:{line_no}: missing column {absent[0]!r} "
                                 f"(keys: {format_columns(record)})")
            first = "the header has" if table.header else "the first row has"
            raise ValueError(f"{table.path}:{line_no}: {len(record)} fields, {first} "
                             f"{len(table.columns)}")
        line_numbers.append(line_no)
        for f in fields:
            columns[f].append(record[f])
    return line_numbers, columns


def _normalise_label(value):
    """None (unlabeled), an int, or a stripped str."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))  # "True" / "False"
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    s = str(value).strip()
    if s == "":
        return None
    try:
        return int(s)
    except ValueError:
        return s


def _is_integer_name(name):
    return str(name).lstrip("-").isdigit()


def _encode_labels(raw, line_numbers, class_names, path, field, accept_indices=True):
    values = [_normalise_label(v) for v in raw]
    if class_names is None:
        present = {v for v in values if v is not None and v != -1}
        if all(isinstance(v, int) for v in present):
            ordered = sorted(present)
        else:
            ordered = sorted(str(v) for v in present)
            values = [v if v is None or v == -1 else str(v) for v in values]
        class_names = tuple(str(v) for v in ordered)
        index = {v: i for i, v in enumerate(ordered)}
        labels = [-1 if v is None or v == -1 else index[v] for v in values]
        return np.asarray(labels, dtype=np.int64), class_names
    class_names = tuple(str(c) for c in class_names)
    index = {c: i for i, c in enumerate(class_names)}
    # An integer label is read as a class index only where it cannot be a
    # class name: with names "1", "2", "3" the value 1 is the name "1".
    by_index = accept_indices and not any(_is_integer_name(c) for c in class_names)
    labels = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v is None or v == -1:
            labels[i] = -1
        elif str(v) in index:
            labels[i] = index[str(v)]
        elif by_index and isinstance(v, int) and 0 <= v < len(class_names):
            labels[i] = v
        else:
            raise ValueError(
                f"{path}:{line_numbers[i]}: label {raw[i]!r} in column {field!r} is "
                f"not one of the class names {list(class_names)}"
            )
    return labels, class_names


def _format_id(value, prefix):
    s = str(value).strip()
    if prefix is None:
        return s
    if s.isdigit():
        s = f"{int(s):06d}"
    return f"{prefix}/{s}"


def load_file(path, text_fields, label_field=None, id_field=None, class_names=None,
              format=None, *, header=True, accept_indices=True, id_prefix=None, note=None):
    """Examples from a GLUE-style TSV (header row), a CSV or a JSONL file.

    Args:
        path: the file. Its format comes from `format` ("tsv", "csv",
            "jsonl") or the extension (.tsv/.tab/.txt, .csv, .jsonl/.json).
            TSVs are split on tabs only (no quoting, as GLUE's files need).
        text_fields: 1 or 2 column names (a str is one column), in model
            order; with `header=False`, 0-based column numbers (int or str).
        label_field: the label column, or None (all labels -1). Labels may be
            class names (str; JSON booleans read as "True"/"False") or
            integer indices; empty / null / -1 means unlabeled (-1).
        id_field: a column of unique ids; None numbers the data rows
            (`"<prefix>/000000"`, ...).
        class_names: label index -> name. A label that is neither a class
            name nor (with `accept_indices`, and only where no class name is
            an integer) an index in range raises ValueError naming the value,
            the file and the line. None: the sorted distinct values
            (numerically if all are integers, so 0..K-1 keep their index).
            Several files of one run must share one vocabulary: pass the
            training file's `Examples.class_names` when loading the others
            (`task_examples.load_task_examples` does).
        header: whether the first row names the columns (TSV/CSV); False
            names them by 0-based number (`"0"`, `"1"`, ...).
        accept_indices: whether integer labels may be class indices.
        id_prefix: prepended to the ids as `"<prefix>/<id>"` (numeric ids
            zero-padded to 6 digits); default: none with `id_field`, else the
            file name without extension.
        note: stored in `Examples.note` (default: the path).

    Raises:
        FileNotFoundError: missing file (with a hint on the data root / TFDS).
        ValueError: unknown format, empty file, missing column, bad row or
            label, duplicate ids (one line, naming the file and line).

    Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "d.tsv")
    >>> _ = open(p, "w").write("sentence\\tlabel\\ngood film\\tpositive\\nbad\\tnegative\\n")
    >>> ex = load_file(p, "sentence", "label", class_names=("negative", "positive"))
    >>> ex.labels.tolist(), ex.ids.tolist()
    ([1, 0], ['d/000000', 'd/000001'])
    """
    path = os.fspath(path)
    if isinstance(text_fields, (str, int)):
        text_fields = (text_fields,)
    text_fields = tuple(str(f) for f in text_fields)
    label_field = None if label_field is None else str(label_field)
    id_field = None if id_field is None else str(id_field)
    if not 1 <= len(text_fields) <= 2:
        raise ValueError(f"text_fields must name 1 or 2 columns, got {text_fields}")
    infer_format(path, format)
    if not os.path.isfile(path):
        raise missing_file_error(path)
    fields = list(dict.fromkeys(
        text_fields + tuple(f for f in (label_field, id_field) if f is not None)
    ))
    line_numbers, columns = _columns(read_table(path, format, header=header), fields)
    if not line_numbers:
        raise ValueError(f"{path}: no data rows (empty file)")

    texts = []
    for f in text_fields:
        col = columns[f]
        for i, v in enumerate(col):
            if v is None:
                raise ValueError(f"{path}:{line_numbers[i]}: text column {f!r} is null")
        texts.append(np.asarray([str(v) for v in col], dtype=object))
    if label_field is None:
        labels = np.full(len(line_numbers), -1, dtype=np.int64)
        class_names = tuple(class_names) if class_names is not None else ()
    else:
        labels, class_names = _encode_labels(
            columns[label_field], line_numbers, class_names, path, label_field,
            accept_indices=accept_indices,
        )
    if id_field is None:
        prefix = id_prefix if id_prefix is not None else os.path.splitext(
            os.path.basename(path))[0]
        ids = np.asarray([f"{prefix}/{i:06d}" for i in range(len(line_numbers))])
    else:
        ids = np.asarray([_format_id(v, id_prefix) for v in columns[id_field]])
        uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1][0]
            lines = [line_numbers[i] for i in np.flatnonzero(ids == dup)[:2]]
            raise ValueError(
                f"{path}:{lines[1]}: duplicate id {str(dup)!r} in column {id_field!r} "
                f"(first on line {lines[0]})"
            )
    return Examples(ids=ids, texts=tuple(texts), labels=labels,
                    class_names=class_names, note=path if note is None else note)


