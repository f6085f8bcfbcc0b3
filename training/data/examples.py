"""Loading text-classification examples into memory (`Examples`).

Two sources:

* `load_split(task, split, source=...)`: a registered task (see
  `ptloss_tf.training.data.tasks`) from TFDS or from the local GLUE / BoolQ files.
* `load_file(path, text_fields, ...)`: any GLUE-style TSV (header row), CSV or
  JSONL file.

Ids name the *source row*, independent of how a logical split is derived:
`"<task>/<source split>/<row>"`, e.g. `"sst2/train/000123"` (row 123 of
SST-2's `train.tsv`, or TFDS `idx` 123 of `glue/sst2` `train`),
`"rte/dev/000012"` (RTE `dev.tsv`, `index` 12), `"boolq/dev/001234"`. So
teacher outputs keyed by id join correctly whatever split a row ends up in.

Local split derivations (fixed seed, the same on every machine):

* SST-2 (GLUE hides the test labels): `"test"` = `dev.tsv` (872 rows, the
  test set of the papers); `"validation"` = 872 rows of `train.tsv` chosen
  with `np.random.default_rng(0)`; `"train"` = the other 66,477 rows, so
  validation, test and train are disjoint.
* BoolQ (only `dev.jsonl` here, 3,270 rows): a seed-0 permutation split
  60/20/20 into `"train"` (1,962) / `"validation"` (654) / `"test"` (654).

Each loaded `Examples` says where it came from in `Examples.note`. Through
TFDS the splits are the TFDS ones (`tasks.TaskSpec.tfds_splits`): there SST-2
`"validation"` is GLUE dev and `"test"` the unlabeled GLUE test.

Texts are object arrays of Python `str`; labels int64 with -1 = unlabeled.
"""

import csv
import dataclasses
import json
import os

import numpy as np

from ptloss_tf.training.data import tasks as _tasks

SST2_HOLDOUT_SIZE = 872
SPLIT_SEED = 0
BOOLQ_FRACTIONS = (0.6, 0.2, 0.2)

_SOURCES = ("auto", "files", "tfds")


def _one_line(message):
    return " ".join(str(message).split())


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

def _infer_format(path, fmt):
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in ("tsv", "csv", "jsonl"):
            raise ValueError(f"unknown format {fmt!r} for {path}; use 'tsv', 'csv' or 'jsonl'.")
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext in (".tsv", ".tab", ".txt"):
        return "tsv"
    if ext == ".csv":
        return "csv"
    if ext in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    raise ValueError(
        f"{path}: cannot tell the format from the extension {ext!r}; "
        "pass format='tsv', 'csv' or 'jsonl'."
    )


def _missing_file_error(path):
    return FileNotFoundError(
        f"{path}: file not found (local data root: set ${_tasks.DATA_DIR_ENV} or "
        "--data-root; or load from TFDS with --source tfds --tfds-data-dir DIR)"
    )


def _read_delimited(path, fields, delimiter):
    """Yields (line_number, {field: str}) for the data rows; checks columns."""
    with open(path, encoding="utf-8", newline="" if delimiter == "," else "\n") as f:
        if delimiter == ",":
            reader = csv.reader(f)
            lines = ((reader.line_num, row) for row in reader)
        else:
            # GLUE TSVs are not CSV-quoted (quotes are text): split on tabs only.
            lines = (
                (i, line.rstrip("\r\n").split("\t")) for i, line in enumerate(f, start=1)
            )
        header = None
        for line_no, row in lines:
            if header is None:
                if not row or row == [""]:
                    continue
                header = [h.strip() for h in row]
                missing = [c for c in fields if c not in header]
                if missing:
                    raise ValueError(
                        f"{path}: missing column {missing[0]!r} "
                        f"(columns: {', '.join(header)})"
                    )
                cols = {c: header.index(c) for c in fields}
                need = max(cols.values()) + 1 if cols else 0
                continue
            if row == [""] or not row:
                continue
            if len(row) < need:
                raise ValueError(
                    f"{path}:{line_no}: {len(row)} fields, the header has {len(header)}"
                )
            yield line_no, {c: row[j] for c, j in cols.items()}
        if header is None:
            raise ValueError(f"{path}: empty file (no header row)")


def _read_jsonl(path, fields):
    first = True
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line_no}: invalid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object per line")
            missing = [c for c in fields if c not in record]
            if missing:
                where = f"{path}" if first else f"{path}:{line_no}"
                raise ValueError(
                    f"{where}: missing column {missing[0]!r} "
                    f"(keys: {', '.join(map(str, record))})"
                )
            first = False
            yield line_no, {c: record[c] for c in fields}


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


def _encode_labels(raw, line_numbers, class_names, path, field):
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
    labels = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v is None or v == -1:
            labels[i] = -1
        elif str(v) in index:
            labels[i] = index[str(v)]
        elif isinstance(v, int) and 0 <= v < len(class_names):
            labels[i] = v
        else:
            raise ValueError(
                f"{path}:{line_numbers[i]}: label {raw[i]!r} in column {field!r} is "
                f"not one of the class names {class_names}"
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
              format=None, *, id_prefix=None, note=None):
    """Examples from a GLUE-style TSV (header row), a CSV or a JSONL file.

    Args:
        path: the file. Its format comes from `format` ("tsv", "csv",
            "jsonl") or the extension (.tsv/.tab/.txt, .csv, .jsonl/.json).
            TSVs are split on tabs only (no quoting, as GLUE's files need).
        text_fields: 1 or 2 column names (a str is one column), in model order.
        label_field: the label column, or None (all labels -1). Labels may be
            class names (str; JSON booleans read as "True"/"False") or
            integer indices; empty / null / -1 means unlabeled (-1).
        id_field: a column of unique ids; None numbers the data rows
            (`"<prefix>/000000"`, ...).
        class_names: label index -> name. A label that is neither a class
            name nor an index in range raises ValueError naming the value, the
            file and the line. None: the sorted distinct values (numerically
            if all are integers, so 0..K-1 keep their index).
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
    if isinstance(text_fields, str):
        text_fields = (text_fields,)
    text_fields = tuple(text_fields)
    if not 1 <= len(text_fields) <= 2:
        raise ValueError(f"text_fields must name 1 or 2 columns, got {text_fields}")
    fmt = _infer_format(path, format)
    if not os.path.isfile(path):
        raise _missing_file_error(path)
    fields = list(dict.fromkeys(
        text_fields + tuple(f for f in (label_field, id_field) if f is not None)
    ))
    if fmt == "jsonl":
        rows = _read_jsonl(path, fields)
    else:
        rows = _read_delimited(path, fields, "\t" if fmt == "tsv" else ",")
    line_numbers, columns = [], {f: [] for f in fields}
    for line_no, row in rows:
        line_numbers.append(line_no)
        for f in fields:
            columns[f].append(row[f])
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
            columns[label_field], line_numbers, class_names, path, label_field
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


# -- registered tasks ---------------------------------------------------------

def _local_path(task, split, data_root):
    return os.path.join(data_root, task.local_files[split])


def _load_local(task, split, data_root):
    path = _local_path(task, split, data_root)
    stem = os.path.splitext(os.path.basename(path))[0]
    label_field = None if split in task.local_unlabeled else task.local_column(task.label_field)
    full = load_file(
        path,
        tuple(task.local_column(f) for f in task.text_fields),
        label_field=label_field,
        id_field=task.local_id_field,
        class_names=task.class_names,
        id_prefix=f"{task.name}/{stem}",
    )
    rel = task.local_files[split]
    if task.derived_splits == "sst2_holdout" and split in ("train", "validation"):
        n = len(full)
        held = np.zeros(n, dtype=bool)
        held[np.random.default_rng(SPLIT_SEED).permutation(n)[:SST2_HOLDOUT_SIZE]] = True
        part = full.subset(held if split == "validation" else ~held)
        part.note = (
            f"SST-2 {split}: {'the' if split == 'validation' else 'all but the'} "
            f"{SST2_HOLDOUT_SIZE} rows of {rel} held out with seed {SPLIT_SEED} "
            f"(local layout; 'test' is GLUE dev.tsv)"
        )
        return part
    if task.derived_splits == "sst2_holdout" and split == "test":
        full.note = f"SST-2 test: GLUE {rel} (GLUE test labels are hidden; local layout)"
        return full
    if task.derived_splits == "boolq_dev_60_20_20":
        n = len(full)
        perm = np.random.default_rng(SPLIT_SEED).permutation(n)
        n_train = int(round(BOOLQ_FRACTIONS[0] * n))
        n_val = int(round(BOOLQ_FRACTIONS[1] * n))
        parts = {
            "train": perm[:n_train],
            "validation": perm[n_train:n_train + n_val],
            "test": perm[n_train + n_val:],
        }
        part = full.subset(np.sort(parts[split]))
        part.note = (
            f"BoolQ {split}: {len(part)} of the {n} rows of {rel}, a 60/20/20 "
            f"train/validation/test split with seed {SPLIT_SEED} (BoolQ train is not "
            "available locally)"
        )
        return part
    full.note = f"{task.name} {split}: {rel}"
    return full


def _ensure_importlib_resources():
    """tensorflow-datasets 4.9.10 imports `importlib_resources` when it
    downloads and prepares a dataset, but declares that dependency only for
    Python < 3.9: without the backport `tfds.load` fails with
    `ModuleNotFoundError: No module named 'importlib_resources'`. The
    standard library's `importlib.resources` (3.11+: with `.abc.Traversable`)
    serves the same purpose."""
    try:
        import importlib_resources  # noqa: F401
    except ImportError:
        import importlib.resources
        import importlib.resources.abc  # noqa: F401
        import sys

        sys.modules.setdefault("importlib_resources", importlib.resources)


def _load_tfds(task, split, tfds_data_dir, limit):
    _ensure_importlib_resources()
    import tensorflow_datasets as tfds

    tfds_split = task.tfds_splits[split]
    ds, info = tfds.load(task.tfds_name, split=tfds_split, data_dir=tfds_data_dir,
                         with_info=True, shuffle_files=False)
    features = info.features
    wanted = list(task.text_fields) + [task.label_field]
    missing = [f for f in wanted if f not in features]
    if missing:
        raise ValueError(
            f"TFDS {task.tfds_name}: missing feature {missing[0]!r} "
            f"(features: {', '.join(features.keys())})"
        )
    names = getattr(features[task.label_field], "names", None)
    if names and tuple(names) != task.class_names:
        raise ValueError(
            f"TFDS {task.tfds_name}: label names {tuple(names)} differ from the "
            f"task's {task.class_names}"
        )
    keys = wanted + (["idx"] if "idx" in features else [])
    ds = ds.map(lambda ex: {k: ex[k] for k in keys})
    if limit is not None:
        ds = ds.take(int(limit))
    columns = {k: [] for k in keys}
    for batch in tfds.as_numpy(ds.batch(4096)):
        for k in keys:
            columns[k].append(np.asarray(batch[k]).reshape(-1))
    columns = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in columns.items()}
    texts = tuple(
        np.asarray([b.decode("utf-8") if isinstance(b, bytes) else str(b)
                    for b in columns[f]], dtype=object)
        for f in task.text_fields
    )
    n = len(texts[0])
    idx = columns.get("idx")
    if idx is None:
        idx = np.arange(n)  # no idx feature: the row number
    # GLUE's idx is unique per split; mocked data repeats some: the k-th
    # repeat gets "-k" (so ids of the first m rows do not depend on `limit`).
    ids, seen = [], {}
    for i in idx:
        base = f"{task.name}/{tfds_split}/{int(i):06d}"
        k = seen.get(base, 0)
        seen[base] = k + 1
        ids.append(base if k == 0 else f"{base}-{k}")
    ids = np.asarray(ids)
    labels = columns[task.label_field].astype(np.int64)
    note = f"TFDS {task.tfds_name} split {tfds_split!r}"
    if n and (labels < 0).all():
        note += " (unlabeled: test labels are hidden)"
    return Examples(ids=ids, texts=texts, labels=labels,
                    class_names=task.class_names, note=note)


def load_split(task, split, source="auto", data_root=None, tfds_data_dir=None, limit=None):
    """One split of a registered task as `Examples`.

    Args:
        task: a `TaskSpec` or a task name ("sst2", "mnli", "boolq", "rte").
        split: a logical split: "train", "validation", "test" (mnli also
            "validation_mismatched", "test_mismatched").
        source: "tfds" (`tfds.load(task.tfds_name, split=task.tfds_splits[split],
            data_dir=tfds_data_dir)`, downloads if needed), "files" (the
            local GLUE / BoolQ layout under `data_root`), or "auto" (files if
            the split's file exists, else TFDS).
        data_root: default `tasks.default_data_root()` (`$PTLOSS_DATA_DIR`,
            else `<repo>/../shared/data`).
        tfds_data_dir: TFDS's `data_dir` (None: TFDS's default).
        limit: keep only the first `limit` examples of the split.

    Local split derivations (seed 0; also in the returned `Examples.note`):
    SST-2 "test" = GLUE `dev.tsv`, "validation" = 872 rows held out of
    `train.tsv`, "train" = the rest of `train.tsv`. BoolQ: `dev.jsonl` split
    60/20/20 into "train"/"validation"/"test" (BoolQ train is absent here).
    Through TFDS the splits are TFDS's own (`task.tfds_splits`).

    Raises:
        ValueError: unknown task, split or source.
        FileNotFoundError: no local file (and, for "auto", TFDS failed too).
    """
    task = _tasks.get_task(task)
    if split not in task.splits:
        raise ValueError(
            f"unknown split {split!r} for task {task.name}; known: {', '.join(task.splits)}"
        )
    if source not in _SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {', '.join(_SOURCES)}")
    if limit is not None and int(limit) < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    data_root = _tasks.default_data_root() if data_root is None else os.fspath(data_root)
    local = _local_path(task, split, data_root) if split in task.local_files else None

    if source == "files" or (source == "auto" and local and os.path.isfile(local)):
        if local is None:
            raise ValueError(
                f"task {task.name} has no local file for split {split!r}; "
                "use --source tfds"
            )
        if not os.path.isfile(local):
            raise _missing_file_error(local)
        examples = _load_local(task, split, data_root)
        return examples if limit is None else examples.take(limit)

    if split not in task.tfds_splits:
        raise ValueError(f"task {task.name} has no TFDS split for {split!r}")
    if source == "tfds":
        return _load_tfds(task, split, tfds_data_dir, limit)
    try:
        return _load_tfds(task, split, tfds_data_dir, limit)
    except Exception as e:  # auto: neither source worked; say both.
        raise FileNotFoundError(
            f"{task.name} {split}: no local file {local} (data root {data_root}: set "
            f"${_tasks.DATA_DIR_ENV} or --data-root) and TFDS {task.tfds_name} failed "
            f"({type(e).__name__}: {_one_line(e)[:300]}; prepare it with internet or "
            "pass --tfds-data-dir)"
        ) from e
