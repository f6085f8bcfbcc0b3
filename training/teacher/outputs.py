"""Cached teacher outputs: the file format (`TeacherOutputs`).

Distillation here never runs the teacher: its outputs are computed once (by
this project, `ptloss-distill teacher`, or by any external model such as the
paper's T5 teachers, `teacher.table_import.import_table`), stored per split,
and joined to the examples by id (`teacher.join.join`).

File format `ptloss-teacher-outputs`, version 2
------------------------------------------------
A UTF-8 JSON Lines file: one JSON object per line, lines separated by `"\\n"`,
no blank lines (a final newline after the last line is optional).

Line 1 is the header object::

    {"format": "ptloss-teacher-outputs", "version": 2, "kind": "probs",
     "class_names": ["negative", "positive"], "split": "train",
     "teacher": "t5-xl", "num_examples": 67349,
     "fingerprint": "blake2b-64/text-v1", "metadata": {...}}

- `format`: the string `"ptloss-teacher-outputs"` (identifies the file).
- `version`: the integer `2` (readers also accept version `1`, the same
  format without fingerprints).
- `kind`: `"probs"` (rows are probabilities, each sums to 1) or `"logits"`
  (unnormalised log-probabilities; readers apply a softmax).
- `class_names`: the `K >= 2` distinct class names, in the order of the
  columns of `values`; it must equal the examples' `class_names`, order
  included.
- `split`: the split the rows belong to (`"train"`, `"validation"`,
  `"test"`, ...).
- `teacher`: a free-form teacher name (e.g. `"t5-xl"`).
- `num_examples`: `N`, the number of example lines that follow.
- `fingerprint` (optional): the scheme of the per-row fingerprints, the
  string `"blake2b-64/text-v1"` (see `text_fingerprints`); present exactly
  when every example line has a `fingerprint`.
- `metadata` (optional): a free-form JSON object (provenance: source file,
  checkpoint, date, ...). Readers ignore other unknown header keys.

Lines 2 to N+1, one per example, in any order::

    {"id": "sst2/train/000017", "values": [0.0123, 0.9877], "fingerprint": "9f2c4e0a1b3d5f67"}

- `id`: the example id, a string (ids are unique within a file).
- `values`: `K` JSON numbers (finite: no `NaN`/`Infinity`), in the
  `class_names` order. Writers store float32 values with the shortest decimal
  that reads back to the same float32, so a save/load round trip is exact.
- `fingerprint` (with the header's `fingerprint`): 16 hex digits, a hash of
  the example's text segments (`text_fingerprints`). Ids alone cannot tell two
  datasets apart: a `--task file` id is the row number (`"train/000017"`), so
  the outputs of another file with as many rows, or of a reshuffled copy of
  the same file, have exactly the expected ids. `join` compares the
  fingerprints with the examples' texts and refuses the file when they differ.

Version history: version 1 had no fingerprints. Files of version 1, and
version 2 files without fingerprints (an external teacher's table imported
without its text columns), still load and join; `join` then emits an
`UncheckedAlignmentWarning` (a Python `warnings.warn`; `ptloss-distill` also
logs it as a note in the run's log and `report.json`) saying that the rows'
alignment to the examples could not be checked.

`TeacherOutputs.load` checks the structure (header, JSON of every line, `id`
and `values` of each line, `N`); `teacher.join.join` checks everything that
depends on the examples (split, ids, classes) and the values themselves (finite;
probability rows sum to 1 within `ptloss_tf.validation.PROBABILITY_SUM_TOLERANCE`
= 1e-2), and says exactly what is wrong.

Example:
>>> import os, tempfile, numpy as np
>>> texts = (np.array(["a fine film", "dull"], dtype=object),)
>>> out = TeacherOutputs(ids=np.array(["b", "a"]), values=np.array([[0.25, 0.75], [0.9, 0.1]]),
...                      kind="probs", class_names=("neg", "pos"), split="train", teacher="t5-xl",
...                      fingerprints=text_fingerprints(texts)[::-1])
>>> path = os.path.join(tempfile.mkdtemp(), "train.jsonl")
>>> out.save(path)
>>> print(open(path).read().splitlines()[1])
{"id": "b", "values": [0.25, 0.75], "fingerprint": "1e084b868b472833"}
>>> back = TeacherOutputs.load(path)
>>> back.teacher, back.values.dtype, bool((back.values == out.values).all())
('t5-xl', dtype('float32'), True)
>>> class _Examples:  # stands in for training.data.examples.Examples
...     ids = np.array(["a", "b"]); class_names = ("neg", "pos"); texts = texts
>>> from ptloss_tf.training.teacher.join import join
>>> join(back, _Examples(), "train").astype(float).round(4).tolist()
[[0.9, 0.1], [0.25, 0.75]]
"""

import dataclasses
import json
import os
import tempfile

import numpy as np

from ptloss_tf.io_utils import current_umask
from ptloss_tf.probabilities import softmax
# The per-row fingerprints are part of the format; their names are used
# from here too (`outputs.text_fingerprints`).
from ptloss_tf.training.teacher.fingerprints import FINGERPRINT_SCHEME
from ptloss_tf.training.teacher.fingerprints import FIRST_FEW  # noqa: F401
from ptloss_tf.training.teacher.fingerprints import UncheckedAlignmentWarning  # noqa: F401
from ptloss_tf.training.teacher.fingerprints import first_few
from ptloss_tf.training.teacher.fingerprints import text_fingerprints  # noqa: F401

FORMAT = "ptloss-teacher-outputs"
VERSION = 2
#: Versions `TeacherOutputs.load` reads (1: the same format without fingerprints).
READABLE_VERSIONS = (1, 2)
KINDS = ("probs", "logits")


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
        fingerprints: `[N]` str, row `i`'s `text_fingerprints` of the texts it
            was computed from, or None (unknown: `join` cannot check that the
            rows belong to the examples, and warns).

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
    fingerprints: np.ndarray = None

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
        if self.fingerprints is not None:
            fingerprints = np.asarray(self.fingerprints).reshape(-1)
            self.fingerprints = np.asarray([str(f) for f in fingerprints], dtype=str)
            if len(self.fingerprints) != len(self.ids):
                raise ValueError(f"{len(self.ids)} ids but {len(self.fingerprints)} fingerprints.")

    def __len__(self):
        return len(self.ids)

    def probabilities(self):
        """`[N, K]` float32 probabilities: the values, or their softmax for logits.

        Example:
        >>> TeacherOutputs(["x"], [[0.0, 0.0]], "logits", ("a", "b"), "test", "t").probabilities()
        array([[0.5, 0.5]], dtype=float32)
        """
        if self.kind == "logits":
            return softmax(self.values).astype(np.float32)
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
        if self.fingerprints is not None:
            header["fingerprint"] = FINGERPRINT_SCHEME
        if self.metadata:
            header["metadata"] = self.metadata
        return header

    def save(self, path, overwrite=False):
        """Writes the file format atomically.

        The file is written to a temporary file in the same directory, flushed
        and fsynced, then moved into place, so readers never see a partial
        file. It gets the permissions of an ordinary `open(path, "w")`,
        `0o666 & ~umask` (0o644 under the usual umask 0o022), not the 0o600
        of the temporary file: another user (a serving container, a
        colleague) can read it. Parent directories are created.

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
                f"first few ids: {first_few(self.ids[rows])})."
            )
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(json.dumps(self.header(), ensure_ascii=False) + "\n")
                fingerprints = (self.fingerprints if self.fingerprints is not None
                                else [None] * len(self.ids))
                for i, row, fingerprint in zip(self.ids, self.values, fingerprints):
                    # str(np.float32) is the shortest decimal that reads back
                    # to the same float32 (e.g. "0.1", "1e-08"): valid JSON.
                    numbers = ", ".join(str(v) for v in row)
                    tail = ("" if fingerprint is None
                            else ', "fingerprint": ' + json.dumps(str(fingerprint)))
                    f.write('{"id": ' + json.dumps(str(i), ensure_ascii=False)
                            + ', "values": [' + numbers + "]" + tail + "}\n")
                f.flush()
                os.fsync(f.fileno())
            # mkstemp creates 0o600; give the file the mode open() would.
            os.chmod(tmp, 0o666 & ~current_umask())
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
            if header.get("version") not in READABLE_VERSIONS:
                raise ValueError(
                    f"{path}: unsupported {FORMAT} version {header.get('version')!r} "
                    f"(this reader knows versions {list(READABLE_VERSIONS)})."
                )
            scheme = header.get("fingerprint")
            if scheme is not None and scheme != FINGERPRINT_SCHEME:
                raise ValueError(
                    f"{path}: unknown fingerprint scheme {scheme!r} in the header "
                    f"(this reader knows {FINGERPRINT_SCHEME!r})."
                )
            missing = [k for k in ("kind", "class_names", "split", "teacher", "num_examples")
                       if k not in header]
            if missing:
                raise ValueError(f"{path}: the header (line 1) lacks {missing}.")
            num_classes = len(header["class_names"])
            ids, rows, fingerprints = [], [], []
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
                if scheme is not None:
                    fingerprint = obj.get("fingerprint")
                    if not isinstance(fingerprint, str):
                        raise ValueError(
                            f"{path}, line {lineno}: the header declares fingerprints "
                            f"but this line has none (got {fingerprint!r})."
                        )
                    fingerprints.append(fingerprint)
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
            fingerprints=np.asarray(fingerprints, dtype=str) if scheme is not None else None,
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
