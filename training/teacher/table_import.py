"""Importing an external teacher's outputs (CSV, TSV or JSONL with one
column per class or one list-valued column) into `TeacherOutputs`:
`import_table`, and `import_pieces` for outputs made elsewhere in pieces,
behind `ptloss-distill import-teacher`."""

import json
import os

import numpy as np

from ptloss_tf.training.data.tables import format_columns
from ptloss_tf.training.data.tables import infer_format
from ptloss_tf.training.data.tables import read_table
from ptloss_tf.training.teacher.outputs import TeacherOutputs
from ptloss_tf.training.teacher.outputs import first_few
from ptloss_tf.training.teacher.outputs import text_fingerprints


def _number(value, path, lineno, column):
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{path}, line {lineno}: column {column!r} is empty or not a number: {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}, line {lineno}: column {column!r} is not a number: {value!r}.") from None


def import_table(path, split, teacher, id_column="id", prob_columns=None, logit_columns=None,
                 class_names=None, format=None, text_columns=None):
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
            (`.csv`; `.tsv`/`.tab`/`.txt`; `.jsonl`/`.ndjson`/`.json`).
        text_columns: the column(s) holding the example's text segments, in
            model order (1 or 2), when the table has them. Their
            `text_fingerprints` are stored, and `join` then checks that every
            row belongs to its example's text. Without them the outputs have
            no fingerprints and `join` warns that it could not check this.

    Returns:
        `TeacherOutputs` (its `metadata` records the source file and columns).
        Ids, classes, fingerprints and values are checked by `join`.

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
    fmt = infer_format(path, format)
    if prob_columns is not None and logit_columns is not None:
        raise ValueError("give prob_columns or logit_columns, not both.")
    # CSV-style quoting in TSVs too: teacher tables come from csv/pandas writers.
    table = read_table(path, fmt, tsv_quoting=True)
    columns, records = table.columns, table.records
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
    if isinstance(text_columns, str):
        text_columns = [text_columns]
    text_columns = list(text_columns or ())
    if len(text_columns) > 2:
        raise ValueError(f"text_columns must name 1 or 2 columns, got {text_columns}.")
    missing = [c for c in [id_column] + wanted + text_columns if c not in columns]
    if missing and fmt != "jsonl":
        raise ValueError(f"{path}: column(s) {missing} not found; the columns are "
                         f"[{format_columns(columns)}].")

    K = len(class_names)
    ids, rows, texts = [], [], [[] for _ in text_columns]
    for lineno, rec in records:
        if id_column not in rec:
            raise ValueError(f"{path}, line {lineno}: no {id_column!r} field; fields: {list(rec)}.")
        ident = rec[id_column]
        if ident is None or (isinstance(ident, str) and not ident.strip()):
            raise ValueError(f"{path}, line {lineno}: empty id in column {id_column!r}.")
        ids.append(str(ident))
        for segment, c in zip(texts, text_columns):
            if rec.get(c) is None:
                raise ValueError(f"{path}, line {lineno}: no text in column {c!r}.")
            segment.append(str(rec[c]))
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
                  "id_column": id_column, "value_columns": spec if list_valued else wanted,
                  **({"text_columns": text_columns} if text_columns else {})},
        fingerprints=text_fingerprints(tuple(texts)) if text_columns else None,
    )


def import_pieces(paths, **kwargs):
    """`import_table` of every piece of a table made elsewhere in pieces
    (one per machine, say), as one `TeacherOutputs`, rows in piece order.

    The pieces share the columns and `import_table`'s keyword arguments.
    Which rows belong to the split is `join`'s check (ids and content
    fingerprints); a row in two pieces is refused here, naming them.

    Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name, rows in (("a.csv", "7,0.2,0.8\\n"), ("b.csv", "3,0.6,0.4\\n")):
    ...     _ = open(os.path.join(folder, name), "w").write("id,p0,p1\\n" + rows)
    >>> out = import_pieces([os.path.join(folder, n) for n in ("a.csv", "b.csv")],
    ...                     split="test", teacher="t5", prob_columns=["p0", "p1"])
    >>> out.ids.tolist(), len(out.metadata["pieces"])
    (['7', '3'], 2)
    """
    paths = [os.fspath(p) for p in paths]
    if len(paths) == 1:
        return import_table(paths[0], **kwargs)
    pieces = [import_table(p, **kwargs) for p in paths]
    owner = {}
    for path, piece in zip(paths, pieces):
        for i in piece.ids:
            owner.setdefault(str(i), []).append(path)
    shared = {i: ps for i, ps in owner.items() if len(ps) > 1}
    if shared:
        files = sorted({p for ps in shared.values() for p in ps})
        raise ValueError(f"overlapping pieces: {len(shared)} ids are in more than one of "
                         f"{', '.join(files)} (first few: {first_few(shared)}).")
    first = pieces[0]
    fingerprints = ([p.fingerprints for p in pieces]
                    if all(p.fingerprints is not None for p in pieces) else None)
    return TeacherOutputs(
        ids=np.concatenate([p.ids for p in pieces]),
        values=np.concatenate([p.values for p in pieces]),
        kind=first.kind, class_names=first.class_names, split=first.split,
        teacher=first.teacher,
        metadata={**{k: v for k, v in first.metadata.items() if k != "source"},
                  "pieces": [p.metadata["source"] for p in pieces]},
        fingerprints=None if fingerprints is None else np.concatenate(fingerprints),
    )
