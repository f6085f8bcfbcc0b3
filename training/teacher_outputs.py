"""Cached teacher outputs: one file format, import from any teacher, join to examples.

Distillation here never runs the teacher: its outputs are computed once (by
this project, or by any external model such as the paper's T5 teachers),
stored per split, and joined to the examples by id.

File format `ptloss-teacher-outputs`, version 1
------------------------------------------------
A UTF-8 JSON Lines file: one JSON object per line, lines separated by `"\\n"`,
no blank lines (a final newline after the last line is optional).

Line 1 is the header object::

    {"format": "ptloss-teacher-outputs", "version": 1, "kind": "probs",
     "class_names": ["negative", "positive"], "split": "train",
     "teacher": "t5-xl", "num_examples": 67349, "metadata": {...}}

- `format`: the string `"ptloss-teacher-outputs"` (identifies the file).
- `version`: the integer `1`.
- `kind`: `"probs"` (rows are probabilities, each sums to 1) or `"logits"`
  (unnormalised log-probabilities; readers apply a softmax).
- `class_names`: the `K >= 2` distinct class names, in the order of the
  columns of `values`; it must equal the examples' `class_names`, order
  included.
- `split`: the split the rows belong to (`"train"`, `"validation"`,
  `"test"`, ...).
- `teacher`: a free-form teacher name (e.g. `"t5-xl"`).
- `num_examples`: `N`, the number of example lines that follow.
- `metadata` (optional): a free-form JSON object (provenance: source file,
  checkpoint, date, ...). Readers ignore other unknown header keys.

Lines 2 to N+1, one per example, in any order::

    {"id": "sst2/train/000017", "values": [0.0123, 0.9877]}

- `id`: the example id, a string (ids are unique within a file).
- `values`: `K` JSON numbers (finite: no `NaN`/`Infinity`), in the
  `class_names` order. Writers store float32 values with the shortest decimal
  that reads back to the same float32, so a save/load round trip is exact.

`TeacherOutputs.load` checks the structure (header, JSON of every line, `id`
and `values` of each line, `N`); `join` checks everything that depends on
the examples (split, ids, classes) and the values themselves (finite;
probability rows sum to 1 within `ptloss_tf.validation.PROBABILITY_SUM_TOLERANCE`
= 1e-2), and says exactly what is wrong.

Example:
>>> import os, tempfile, numpy as np
>>> out = TeacherOutputs(ids=np.array(["b", "a"]), values=np.array([[0.25, 0.75], [0.9, 0.1]]),
...                      kind="probs", class_names=("neg", "pos"), split="train", teacher="t5-xl")
>>> path = os.path.join(tempfile.mkdtemp(), "train.jsonl")
>>> out.save(path)
>>> print(open(path).read().splitlines()[1])
{"id": "b", "values": [0.25, 0.75]}
>>> back = TeacherOutputs.load(path)
>>> back.teacher, back.values.dtype, bool((back.values == out.values).all())
('t5-xl', dtype('float32'), True)
>>> class _Examples:  # stands in for training.data.examples.Examples
...     ids = np.array(["a", "b"]); class_names = ("neg", "pos")
>>> join(back, _Examples(), "train").astype(float).round(4).tolist()
[[0.9, 0.1], [0.25, 0.75]]
"""

import csv
import dataclasses
import json
import os
import tempfile

import numpy as np

FORMAT = "ptloss-teacher-outputs"
VERSION = 1
KINDS = ("probs", "logits")
#: How many offending ids an error message quotes.
_FIRST_FEW = 5


def _softmax(x):
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _first_few(items, n=_FIRST_FEW):
    items = [str(i) for i in items]
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (", ..." if len(items) > n else "")


@dataclasses.dataclass
class TeacherOutputs:
    """A teacher's outputs for one split, keyed by example id.

    Attributes:
        ids: `[N]` str, the example ids (row order is arbitrary).
        values: `[N, K]` float32 probabilities or logits.
        kind: `"probs"` or `"logits"`.
        class_names: the `K` class names, in column order.
        split: the split name, e.g. `"train"`.
        teacher: the teacher's name, e.g. `"t5-xl"`.
        metadata: free-form JSON-serialisable provenance (optional).

    Construction normalises types (ids to str, values to float32,
    class_names to a tuple of str) and checks shapes; values are checked by
    `join`.
    """

    ids: np.ndarray
    values: np.ndarray
    kind: str
    class_names: tuple
    split: str
    teacher: str
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.ids = np.asarray([str(i) for i in np.asarray(self.ids).reshape(-1)], dtype=str)
        values = np.asarray(self.values)
        if values.ndim != 2:
            raise ValueError(f"values must be [num_examples, num_classes], got shape {values.shape}.")
        if not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"values must be numeric, got dtype {values.dtype}.")
        self.values = values.astype(np.float32)
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}.")
        self.class_names = tuple(str(c) for c in self.class_names)
        if len(self.class_names) < 2:
            raise ValueError(f"need at least 2 class names, got {self.class_names}.")
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"class_names must be distinct, got {self.class_names}.")
        if self.values.shape[1] != len(self.class_names):
            raise ValueError(
                f"values have {self.values.shape[1]} columns but there are "
                f"{len(self.class_names)} class names {self.class_names}."
            )
        if len(self.ids) != self.values.shape[0]:
            raise ValueError(f"{len(self.ids)} ids but {self.values.shape[0]} rows of values.")
        self.split = str(self.split)
        self.teacher = str(self.teacher)
        self.metadata = dict(self.metadata or {})

    def __len__(self):
        return len(self.ids)

    def probabilities(self):
        """`[N, K]` float32 probabilities: the values, or their softmax for logits.

        Example:
        >>> TeacherOutputs(["x"], [[0.0, 0.0]], "logits", ("a", "b"), "test", "t").probabilities()
        array([[0.5, 0.5]], dtype=float32)
        """
        if self.kind == "logits":
            return _softmax(self.values).astype(np.float32)
        return self.values.copy()

    def header(self):
        """The header object of the file format (line 1)."""
        header = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "class_names": list(self.class_names),
            "split": self.split,
            "teacher": self.teacher,
            "num_examples": int(len(self.ids)),
        }
        if self.metadata:
            header["metadata"] = self.metadata
        return header

    def save(self, path, overwrite=False):
        """Writes the file format atomically.

        The file is written to a temporary file in the same directory, flushed
        and fsynced, then moved into place, so readers never see a partial
        file. Parent directories are created.

        Args:
            path: destination (conventionally `<dir>/<split>.jsonl`).
            overwrite: replace an existing file. Without it an existing file
                is never touched.

        Raises:
            FileExistsError: `path` exists and `overwrite` is False.
            ValueError: values contain NaN or inf (not representable in JSON).
        """
        path = os.fspath(path)
        if not overwrite and os.path.lexists(path):
            raise FileExistsError(
                f"{path} already exists; pass overwrite=True to replace it."
            )
        bad = ~np.isfinite(self.values)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            raise ValueError(
                f"cannot save teacher outputs with NaN or inf values ({len(rows)} rows, "
                f"first few ids: {_first_few(self.ids[rows])})."
            )
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(json.dumps(self.header(), ensure_ascii=False) + "\n")
                for i, row in zip(self.ids, self.values):
                    # str(np.float32) is the shortest decimal that reads back
                    # to the same float32 (e.g. "0.1", "1e-08"): valid JSON.
                    numbers = ", ".join(str(v) for v in row)
                    f.write('{"id": ' + json.dumps(str(i), ensure_ascii=False)
                            + ', "values": [' + numbers + "]}\n")
                f.flush()
                os.fsync(f.fileno())
            if overwrite:
                os.replace(tmp, path)
            else:
                _move_no_clobber(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path):
        """Reads the file format (see the module docstring).

        Raises:
            FileNotFoundError: no such file.
            ValueError: empty file, line 1 not a header, unsupported version,
                a line that is not valid JSON (truncated or corrupted; the
                message gives its line number), a line without `id`/`values`
                or with the wrong number of values, or a number of example
                lines different from the header's `num_examples`.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"teacher outputs file not found: {path}")
        with open(path, encoding="utf-8") as f:
            first = f.readline()
            if not first:
                raise ValueError(f"{path} is empty; expected a {FORMAT} header on line 1.")
            try:
                header = json.loads(first)
            except json.JSONDecodeError:
                header = None
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ValueError(
                    f"{path}: line 1 is not a {FORMAT} header (expected an object "
                    f'starting {{"format": "{FORMAT}", "version": {VERSION}, ...}}), '
                    f"got: {first.strip()[:120]!r}. To read another teacher's "
                    "CSV/TSV/JSONL, use import_table()."
                )
            if header.get("version") != VERSION:
                raise ValueError(
                    f"{path}: unsupported {FORMAT} version {header.get('version')!r} "
                    f"(this reader knows version {VERSION})."
                )
            missing = [k for k in ("kind", "class_names", "split", "teacher", "num_examples")
                       if k not in header]
            if missing:
                raise ValueError(f"{path}: the header (line 1) lacks {missing}.")
            num_classes = len(header["class_names"])
            ids, rows = [], []
            for lineno, line in enumerate(f, start=2):
                if not line.strip():
                    raise ValueError(f"{path}, line {lineno}: blank line.")
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(
                        f"{path}, line {lineno}: not valid JSON ({e.msg}); the file "
                        f"is truncated or corrupted: {line.strip()[:80]!r}"
                    ) from None
                if not isinstance(obj, dict) or "id" not in obj or "values" not in obj:
                    raise ValueError(
                        f'{path}, line {lineno}: expected {{"id": ..., "values": [...]}}, '
                        f"got {line.strip()[:80]!r}"
                    )
                if not isinstance(obj["id"], str):
                    raise ValueError(f"{path}, line {lineno}: id must be a string, got {obj['id']!r}.")
                values = obj["values"]
                if (not isinstance(values, list) or len(values) != num_classes
                        or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                   for v in values)):
                    raise ValueError(
                        f"{path}, line {lineno}: values must be a list of {num_classes} "
                        f"numbers (one per class), got {values!r}"[:300]
                    )
                ids.append(obj["id"])
                rows.append(values)
        if len(ids) != header["num_examples"]:
            raise ValueError(
                f"{path}: the header says {header['num_examples']} examples but the file "
                f"has {len(ids)} example lines (truncated?)."
            )
        values = np.asarray(rows, dtype=np.float64).reshape(len(rows), num_classes)
        return cls(
            ids=np.asarray(ids, dtype=str),
            values=values.astype(np.float32),
            kind=header["kind"],
            class_names=tuple(header["class_names"]),
            split=header["split"],
            teacher=header["teacher"],
            metadata=header.get("metadata") or {},
        )


def _move_no_clobber(tmp, path):
    """Moves `tmp` to `path` atomically unless `path` exists (then FileExistsError)."""
    try:
        os.link(tmp, path)  # atomic, fails if `path` exists
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.") from None
    except OSError:  # file system without hard links: check, then replace
        if os.path.lexists(path):
            raise FileExistsError(
                f"{path} already exists; pass overwrite=True to replace it."
            ) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _infer_format(path):
    name = os.fspath(path).lower()
    for suffixes, fmt in (((".csv",), "csv"), ((".tsv", ".tab"), "tsv"),
                          ((".jsonl", ".ndjson", ".json"), "jsonl")):
        if name.endswith(suffixes):
            return fmt
    raise ValueError(
        f"cannot tell the format of {path} from its name; pass format='csv', 'tsv' or 'jsonl'."
    )


def _read_records(path, fmt):
    """Yields `(line_number, record dict)` and returns the header columns (CSV/TSV)."""
    if fmt in ("csv", "tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="," if fmt == "csv" else "\t")
            if not reader.fieldnames:
                raise ValueError(f"{path} is empty; expected a header row of column names.")
            columns = list(reader.fieldnames)
            records = []
            for rec in reader:
                if None in rec:
                    raise ValueError(
                        f"{path}, line {reader.line_num}: more fields than the "
                        f"{len(columns)} header columns."
                    )
                records.append((reader.line_num, rec))
        return columns, records
    if fmt == "jsonl":
        records, columns = [], []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(
                        f"{path}, line {lineno}: not valid JSON ({e.msg}); truncated or "
                        f"corrupted? {line.strip()[:80]!r}"
                    ) from None
                if not isinstance(rec, dict):
                    raise ValueError(f"{path}, line {lineno}: expected a JSON object, got {line.strip()[:80]!r}")
                if not columns:
                    columns = list(rec)
                records.append((lineno, rec))
        return columns, records
    raise ValueError(f"format must be 'csv', 'tsv' or 'jsonl', got {fmt!r}.")


def _number(value, path, lineno, column):
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{path}, line {lineno}: column {column!r} is empty or not a number: {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}, line {lineno}: column {column!r} is not a number: {value!r}.") from None


def import_table(path, split, teacher, id_column="id", prob_columns=None, logit_columns=None,
                 class_names=None, format=None):
    """Reads an external teacher's CSV/TSV (with a header row) or JSONL outputs.

    The values come either from per-class columns/fields (one number each) or
    from one list-valued column/field (`"probs": [0.1, 0.9]`; in CSV/TSV the
    cell holds a JSON list, e.g. `"[0.1, 0.9]"`).

    Args:
        path: the table.
        split: the split name to record (e.g. `"train"`).
        teacher: the teacher name to record (e.g. `"t5-xl"`).
        id_column: the column/field holding the example id (numbers are
            converted to strings: `17` -> `"17"`).
        prob_columns: probabilities. A list of per-class column names (in
            class order), a dict `{class_name: column}`, or a single string
            (or a one-element list, as a CLI's `nargs="+"` gives) naming a
            list-valued column.
        logit_columns: the same, for logits. Give at most one of the two;
            with neither, a list-valued `"probs"` or `"logits"` column is used.
        class_names: the class names in column order. Defaults to the dict's
            keys, or to the per-class column names; required with a
            list-valued column.
        format: `"csv"`, `"tsv"` or `"jsonl"`; default from the file name
            (`.csv`; `.tsv`/`.tab`; `.jsonl`/`.ndjson`/`.json`).

    Returns:
        `TeacherOutputs` (its `metadata` records the source file and columns).
        Ids, classes and values are checked by `join`.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t5.csv")
    >>> _ = open(path, "w").write("idx,p_neg,p_pos\\n7,0.2,0.8\\n3,0.6,0.4\\n")
    >>> out = import_table(path, "validation", "t5-xl", id_column="idx",
    ...                    prob_columns=["p_neg", "p_pos"], class_names=["negative", "positive"])
    >>> out.ids.tolist(), out.values.tolist()[0], out.kind
    (['7', '3'], [0.20000000298023224, 0.800000011920929], 'probs')
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"teacher table not found: {path}")
    fmt = format or _infer_format(path)
    if prob_columns is not None and logit_columns is not None:
        raise ValueError("give prob_columns or logit_columns, not both.")
    columns, records = _read_records(path, fmt)
    if prob_columns is not None:
        kind, spec = "probs", prob_columns
    elif logit_columns is not None:
        kind, spec = "logits", logit_columns
    else:
        found = [c for c in ("probs", "logits") if c in columns]
        if len(found) != 1:
            raise ValueError(
                f"{path}: pass prob_columns= or logit_columns= (columns found: {columns}); "
                "without them a single list-valued 'probs' or 'logits' column is needed."
            )
        kind, spec = ("probs" if found[0] == "probs" else "logits"), found[0]

    if isinstance(spec, dict):
        if class_names is None:
            class_names = list(spec)
        elif list(class_names) != list(spec):
            raise ValueError(f"class_names {list(class_names)} differ from the keys of the column dict {list(spec)}.")
        spec = list(spec.values())
    if not isinstance(spec, str) and len(spec) == 1:
        spec = spec[0]  # one column for K >= 2 classes: a list-valued column
    list_valued = isinstance(spec, str)
    wanted = [spec] if list_valued else list(spec)
    if not list_valued and len(wanted) < 2:
        raise ValueError(f"need one column per class (at least 2), got {wanted}.")
    if list_valued and class_names is None:
        raise ValueError(
            f"class_names is required with the list-valued column {spec!r} "
            "(the file does not name the classes)."
        )
    if class_names is None:
        class_names = list(wanted)
    class_names = [str(c) for c in class_names]
    if not list_valued and len(class_names) != len(wanted):
        raise ValueError(
            f"{len(wanted)} value columns {wanted} but {len(class_names)} class names {class_names}."
        )
    missing = [c for c in [id_column] + wanted if c not in columns]
    if missing and fmt != "jsonl":
        raise ValueError(f"{path}: column(s) {missing} not found; the columns are {columns}.")

    K = len(class_names)
    ids, rows = [], []
    for lineno, rec in records:
        if id_column not in rec:
            raise ValueError(f"{path}, line {lineno}: no {id_column!r} field; fields: {list(rec)}.")
        ident = rec[id_column]
        if ident is None or (isinstance(ident, str) and not ident.strip()):
            raise ValueError(f"{path}, line {lineno}: empty id in column {id_column!r}.")
        ids.append(str(ident))
        if list_valued:
            if spec not in rec:
                raise ValueError(f"{path}, line {lineno}: no {spec!r} field; fields: {list(rec)}.")
            cell = rec[spec]
            if isinstance(cell, str):
                try:
                    cell = json.loads(cell)
                except json.JSONDecodeError:
                    raise ValueError(
                        f"{path}, line {lineno}: column {spec!r} must hold a JSON list "
                        f"like [0.1, 0.9], got {cell!r}."
                    ) from None
            if not isinstance(cell, list) or len(cell) != K:
                raise ValueError(
                    f"{path}, line {lineno}: {spec!r} must be a list of {K} numbers "
                    f"(classes {class_names}), got {cell!r}."
                )
            rows.append([_number(v, path, lineno, spec) for v in cell])
        else:
            row = []
            for c in wanted:
                if c not in rec:
                    raise ValueError(f"{path}, line {lineno}: no {c!r} field; fields: {list(rec)}.")
                row.append(_number(rec[c], path, lineno, c))
            rows.append(row)
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), K)
    return TeacherOutputs(
        ids=np.asarray(ids, dtype=str),
        values=values.astype(np.float32),
        kind=kind,
        class_names=tuple(class_names),
        split=split,
        teacher=teacher,
        metadata={"source": os.path.abspath(path), "source_format": fmt,
                  "id_column": id_column, "value_columns": spec if list_valued else wanted},
    )


def join(outputs, examples, split, allow_extra=False):
    """The teacher's probabilities aligned to `examples.ids`, after checking everything.

    Args:
        outputs: `TeacherOutputs`.
        examples: `ptloss_tf.training.data.examples.Examples` (uses `ids`, `class_names`).
        split: the examples' split name.
        allow_extra: ignore teacher rows whose ids are not among the examples
            (e.g. a teacher file for the full split joined to a subsample).
            Off by default: extra rows usually mean the wrong file.

    Returns:
        `[len(examples), K]` float32 probabilities (softmax applied to logits),
        row `i` for `examples.ids[i]`. Probability rows are returned as stored
        (not renormalised).

    Raises:
        ValueError: one message listing every structural problem found: wrong
            split, class count or class names/order different from the
            examples', duplicated ids (in the file or the examples), example
            ids missing from the file, extra ids (unless `allow_extra`);
            otherwise NaN/inf values, or probability rows that are negative
            or do not sum to 1 (tolerance 1e-2, checked by
            `ptloss_tf.validation.check_probabilities`), quoting the ids.
    """
    from ptloss_tf.validation import PROBABILITY_SUM_TOLERANCE, check_probabilities

    file_ids = [str(i) for i in outputs.ids]
    ex_ids = [str(i) for i in np.asarray(examples.ids).reshape(-1)]
    ex_classes = tuple(str(c) for c in examples.class_names)
    out_classes = tuple(outputs.class_names)
    problems = []
    if outputs.split != split:
        problems.append(f"teacher file is for split '{outputs.split}' but the examples are '{split}'")
    if len(out_classes) != len(ex_classes):
        problems.append(
            f"class count mismatch: the teacher file has {len(out_classes)} classes "
            f"{out_classes} but the examples have {len(ex_classes)} {ex_classes}"
        )
    elif out_classes != ex_classes:
        if sorted(out_classes) == sorted(ex_classes):
            problems.append(
                f"class order mismatch: the teacher's columns are {out_classes} but the "
                f"examples' classes are {ex_classes}; re-export or re-import the teacher "
                "with the columns in the examples' order"
            )
        else:
            problems.append(
                f"class names differ: the teacher file has {out_classes} but the examples "
                f"have {ex_classes}"
            )

    def duplicates(ids):
        uniq, counts = np.unique(np.asarray(ids, dtype=str), return_counts=True)
        dup = {u: int(c) for u, c in zip(uniq, counts) if c > 1}
        order = [i for i in dict.fromkeys(ids) if i in dup]  # first-seen order
        return order, dup

    dup_order, dup = duplicates(file_ids)
    if dup:
        problems.append(
            f"{len(dup)} ids appear more than once in the teacher file (first few: "
            + ", ".join(f"{i!r} x{dup[i]}" for i in dup_order[:_FIRST_FEW])
            + (", ..." if len(dup) > _FIRST_FEW else "") + ")"
        )
    ex_dup_order, ex_dup = duplicates(ex_ids)
    if ex_dup:
        problems.append(
            f"{len(ex_dup)} ids appear more than once among the examples (first few: "
            f"{_first_few(ex_dup_order)})"
        )
    file_set, ex_set = set(file_ids), set(ex_ids)
    missing = [i for i in dict.fromkeys(ex_ids) if i not in file_set]
    if missing:
        problems.append(
            f"{len(missing)} of the {len(ex_set)} example ids are missing from the teacher "
            f"file (first few: {_first_few(missing)})"
        )
    extra = [i for i in dict.fromkeys(file_ids) if i not in ex_set]
    if extra and not allow_extra:
        problems.append(
            f"{len(extra)} ids in the teacher file are not among the examples (first few: "
            f"{_first_few(extra)}); pass allow_extra=True to ignore them"
        )
    if problems:
        raise ValueError(
            f"teacher outputs of {outputs.teacher!r} (split {outputs.split!r}, "
            f"{len(file_ids)} rows) do not match the {split!r} examples "
            f"({len(ex_ids)} examples):\n" + "\n".join(f"- {p}" for p in problems)
        )

    position = {i: n for n, i in enumerate(file_ids)}
    index = np.asarray([position[i] for i in ex_ids], dtype=np.int64)
    values = np.asarray(outputs.values)[index].reshape(len(index), len(out_classes))
    where = f"teacher outputs of {outputs.teacher!r} (split {split!r})"
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        ids = np.asarray(ex_ids)[bad]
        raise ValueError(
            f"{where}: {int(bad.sum())} rows contain NaN or inf (first few ids: {_first_few(ids)})"
        )
    if outputs.kind == "logits":
        return _softmax(values).astype(np.float32)
    try:
        check_probabilities(values, name=f"{where} ({outputs.kind})")
    except ValueError as e:
        wrong = (values < 0).any(axis=1) | (
            np.abs(values.astype(np.float64).sum(axis=1) - 1.0) > PROBABILITY_SUM_TOLERANCE
        )
        ids = np.asarray(ex_ids)[wrong]
        raise ValueError(
            f"{e} Offending ids ({int(wrong.sum())}; first few): {_first_few(ids)}."
            + (" If the file holds logits, import it with logit_columns=." if len(ids) else "")
        ) from None
    return values.astype(np.float32)
