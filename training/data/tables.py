"""Reading TSV, CSV and JSON Lines tables: the one reader behind the example
loader (`examples.load_file`) and the teacher-output import
(`teacher_import.import_table`).

Formats, from `format` or the file name:

* `"tsv"` (`.tsv`, `.tab`, `.txt`): a header row, then rows split on tabs.
  By default nothing is unquoted: GLUE's TSVs hold quote characters as text.
  `tsv_quoting=True` reads CSV-style quoting with a tab delimiter instead.
* `"csv"` (`.csv`): a header row, standard CSV quoting.
* `"jsonl"` (`.jsonl`, `.ndjson`, `.json`): one JSON object per line; the
  columns are the keys of the first object.

A UTF-8 byte-order mark is removed. Blank lines are skipped. A delimited row
with more fields than the header is an error naming the file and line
(fewer fields are reported by the caller, which knows the columns it needs).
`header=False` reads a TSV/CSV without a header row (several GLUE tasks ship
that way): the columns are then named by their 0-based numbers, `"0"`,
`"1"`, ..., as many as the first row has fields.

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "d.tsv")
>>> _ = open(path, "w", encoding="utf-8-sig").write('sentence\\tlabel\\n"so" good\\t1\\n')
>>> table = read_table(path)
>>> table.columns, table.records
(['sentence', 'label'], [(2, {'sentence': '"so" good', 'label': '1'})])
"""

import csv
import dataclasses
import json
import os

FORMATS = ("tsv", "csv", "jsonl")
_EXTENSIONS = {".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".csv": "csv",
               ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclasses.dataclass
class Table:
    """A table read into memory.

    Attributes:
        path: the file.
        format: `"tsv"`, `"csv"` or `"jsonl"`.
        columns: the header's column names (JSONL: the first object's keys).
        records: `(line_number, {column: value})` per data row, 1-based
            line numbers of the file. Delimited values are str; a short row
            lacks the columns past its last field.
        header: whether the columns were named by a header row (False: by
            number).
    """

    path: str
    format: str
    columns: list
    records: list
    header: bool = True


def infer_format(path, format=None):
    """`format` checked, or the format named by `path`'s extension.

    Example:
    >>> infer_format("teacher/Train.TSV"), infer_format("x.data", "jsonl")
    ('tsv', 'jsonl')
    """
    if format is not None:
        fmt = str(format).lower().lstrip(".")
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {format!r} for {path}; use 'tsv', 'csv' or 'jsonl'.")
        return fmt
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in _EXTENSIONS:
        raise ValueError(
            f"{path}: cannot tell the format from the extension {ext!r}; "
            "pass format='tsv', 'csv' or 'jsonl'."
        )
    return _EXTENSIONS[ext]


def read_table(path, format=None, tsv_quoting=False, header=True):
    """Reads a TSV, CSV or JSONL table (see the module docstring).

    Args:
        path: the file.
        format: `"tsv"`, `"csv"`, `"jsonl"`, or None (from the extension).
        tsv_quoting: read CSV-style quotes in a TSV.
        header: whether the first row of a TSV/CSV names the columns; False
            names them `"0"`, `"1"`, ... (JSONL always has names: False is
            refused).

    Example (no header row):
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "cola.tsv")
    >>> _ = open(path, "w").write("gj04\\t1\\tOur friends won't buy this.\\n")
    >>> table = read_table(path, header=False)
    >>> table.columns, table.records[0][1]["2"]
    (['0', '1', '2'], "Our friends won't buy this.")

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown format, no header row, a row with more fields
            than the header, invalid JSON or a JSON line that is not an
            object (each naming the file and line).
    """
    path = os.fspath(path)
    fmt = infer_format(path, format)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    if fmt == "jsonl":
        if not header:
            raise ValueError(f"{path}: `no_header` applies to TSV/CSV files; JSON Lines "
                             "rows name their fields")
        return _read_jsonl(path)
    return _read_delimited(path, fmt, tsv_quoting, header)


def _delimited_rows(f, fmt, tsv_quoting):
    if fmt == "csv" or tsv_quoting:
        reader = csv.reader(f, delimiter="," if fmt == "csv" else "\t")
        return ((reader.line_num, row) for row in reader)
    return ((i, line.rstrip("\r\n").split("\t")) for i, line in enumerate(f, start=1))


def _read_delimited(path, fmt, tsv_quoting, has_header=True):
    quoted = fmt == "csv" or tsv_quoting
    header, records = None, []
    # Unquoted TSV: split lines on "\n" only, so a stray "\r" stays text.
    with open(path, encoding="utf-8-sig", newline="" if quoted else "\n") as f:
        for line_no, row in _delimited_rows(f, fmt, tsv_quoting):
            if not row or row == [""]:
                continue
            if header is None:
                if has_header:
                    header = [h.strip() for h in row]
                    continue
                header = [str(i) for i in range(len(row))]
            if len(row) > len(header):
                columns = "header columns" if has_header else "fields of the first row"
                raise ValueError(
                    f"{path}:{line_no}: {len(row)} fields, more than the "
                    f"{len(header)} {columns}"
                )
            records.append((line_no, dict(zip(header, row))))
    if header is None:
        raise ValueError(f"{path}: empty file" + (" (no header row)" if has_header else ""))
    return Table(path, fmt, header, records, header=has_header)


def _read_jsonl(path):
    columns, records = None, []
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path}:{line_no}: not valid JSON ({e.msg}); truncated or corrupted? "
                    f"{line.strip()[:80]!r}"
                ) from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object per line, "
                                 f"got {line.strip()[:80]!r}")
            if columns is None:
                columns = list(record)
            records.append((line_no, record))
    return Table(path, "jsonl", columns or [], records)


def format_columns(columns):
    """Column names for an error message, invisible characters shown
    (`repr`): a stray byte-order mark or space is then visible.

    Example:
    >>> format_columns(["\\ufeffid", "label "])
    "'\\\\ufeffid', 'label '"
    """
    return ", ".join(repr(c) for c in columns)
