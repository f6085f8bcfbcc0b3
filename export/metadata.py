"""What an export records about itself, and where it finds its inputs.

The metadata asset (`assets.extra/ptloss_metadata.json` in each version)
holds the task, the class names, the tokenizer's sequence length and
vocabulary hash, the PTLoss coefficients and a summary of the training
report, plus reference outputs of the Keras student on sample inputs (what
`ptloss-export verify` compares the SavedModel against).

A student inside a `ptloss-distill` output directory
(`RUN/<method>/student.keras`) gets its class names, segment count,
coefficients and sample inputs from `RUN/report.json` and
`RUN/samples.json`; a teacher beside its `teacher_run.json` gets what that
file records; flags supply them for any other model.

The segment count (one text, or a sentence pair) cannot be read from the
model: keras-hub's `TextClassifierPreprocessor` packs whatever number of
segments each call passes, and BERT's segment embedding has two rows either
way. So it comes from the run's files, or the caller says it; a model with
neither is refused rather than exported as single-text by default (a pair
model fed one text serves wrong answers and still passes every check).
"""

import hashlib
import json
import os

METADATA_FILE = "ptloss_metadata.json"
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
REPORT_FILE = "report.json"
SAMPLES_FILE = "samples.json"
TEACHER_RUN_FILE = "teacher_run.json"

# Used only when neither --samples nor the run's samples.json exists.
GENERIC_SAMPLES = (
    "a gripping, beautifully acted film.",
    "the plot never comes together and the ending is a mess.",
    "it is fine.",
    "not bad at all",
)


def run_directory(student_path):
    """`RUN` for `RUN/<method>/student.keras` when `RUN/report.json` exists."""
    run = os.path.dirname(os.path.dirname(os.path.abspath(student_path)))
    return run if os.path.isfile(os.path.join(run, REPORT_FILE)) else None


def recorded_segments(model_path):
    """The segment count the run's files record for a model, and where.

    Looked up, in order: `RUN/report.json` (`num_segments`) and
    `RUN/samples.json` (texts per row) for `RUN/<method>/student.keras`;
    `teacher_run.json` beside the model (`num_segments`, or its
    `text_fields`) for a teacher of `ptloss-distill teacher`.

    Returns:
        `(num_segments, source)`, or `(None, None)` when nothing records it.

    Example:
    >>> import tempfile
    >>> recorded_segments(os.path.join(tempfile.mkdtemp(), "m", "student.keras"))
    (None, None)
    """
    run = run_directory(model_path)
    if run:
        report_path = os.path.join(run, REPORT_FILE)
        count = _read_json(report_path).get("num_segments")
        if count is not None:
            return int(count), report_path
        samples_path = os.path.join(run, SAMPLES_FILE)
        if os.path.isfile(samples_path):
            texts = _read_json(samples_path).get("texts") or []
            if texts:
                return len(texts[0]), samples_path
    teacher_run = os.path.join(os.path.dirname(os.path.abspath(model_path)), TEACHER_RUN_FILE)
    if os.path.isfile(teacher_run):
        record = _read_json(teacher_run)
        if record.get("num_segments") is not None:
            return int(record["num_segments"]), teacher_run
        if record.get("text_fields"):
            return len(record["text_fields"]), teacher_run
    return None, None


def resolve_num_segments(model_path, num_segments=None):
    """The segment count to export: the caller's, checked against the run's.

    Args:
        model_path: the `.keras` file.
        num_segments: 1, 2 or None (take the run's record).

    Returns:
        `(num_segments, source)`; `(None, None)` when neither the caller
        nor the run's files say it (the caller must then refuse).

    Raises:
        ValueError: `num_segments` is not 1 or 2, or differs from the run's
            record.
    """
    recorded, source = recorded_segments(model_path)
    if num_segments is None:
        return recorded, source
    if num_segments not in (1, 2):
        raise ValueError(f"`num_segments` must be 1 or 2, got {num_segments}.")
    if recorded is not None and recorded != num_segments:
        raise ValueError(
            f"`num_segments` {num_segments} given, but {source} records that "
            f"{os.path.basename(model_path)} was trained on {recorded} text "
            f"segment(s); omit it (or `pair`) to export what the run trained."
        )
    return num_segments, "the caller"


def recorded_tokenizer(student_path):
    """`(vocabulary, sequence_length)` that `RUN/report.json` records for a
    student trained from prepared data (saved without a preprocessor: the
    keras-hub tokenizer needs TensorFlow); `(None, None)` otherwise. The
    vocabulary is `RUN/prepared` data's `vocab.txt`; a relative or moved
    path is also looked for in `RUN/`."""
    run = run_directory(student_path)
    if run is None:
        return None, None
    tokenizer = _read_json(os.path.join(run, REPORT_FILE)).get("tokenizer") or {}
    vocabulary = tokenizer.get("vocabulary")
    if vocabulary and not os.path.isfile(vocabulary):
        beside = os.path.join(run, os.path.basename(vocabulary))
        vocabulary = beside if os.path.isfile(beside) else vocabulary
    return vocabulary, tokenizer.get("sequence_length")


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def vocabulary_hash(tokens):
    """sha256 of the vocabulary, one token per line (as in vocab.txt)."""
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def read_samples(path, num_segments):
    """Sample inputs: a `samples.json` (`{"texts": [[...], ...]}`) or a text
    file with one example per line (pairs separated by a tab)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"samples file not found: {path}")
    if path.endswith(".json"):
        rows = _read_json(path).get("texts", [])
    else:
        with open(path, encoding="utf-8") as f:
            rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    rows = [[str(t) for t in row] for row in rows]
    bad = [i for i, row in enumerate(rows) if len(row) != num_segments]
    if not rows or bad:
        raise ValueError(
            f"{path}: need examples of {num_segments} text segment(s)"
            + (f"; row {bad[0] + 1} has {len(rows[bad[0]])}" if bad else ", found none")
        )
    return rows


def gather_run_info(student_path, class_names=None, num_segments=None, samples=None):
    """Class names, segment count, samples and training summary of a student.

    Flags win over the run directory's files, except the segment count: a
    `num_segments` that differs from the run's record raises ValueError
    (`resolve_num_segments`). Returns a dict with `class_names`,
    `num_segments` (None when neither the caller nor the run says it; no
    samples are read then), `num_segments_from`, `samples` (rows of texts),
    `samples_from`, and `report` (the summary, or None outside a run
    directory).
    """
    run = run_directory(student_path)
    report = _read_json(os.path.join(run, REPORT_FILE)) if run else {}
    run_samples = os.path.join(run, SAMPLES_FILE) if run else None
    num_segments, segments_from = resolve_num_segments(student_path, num_segments)
    teacher_run = os.path.join(os.path.dirname(os.path.abspath(student_path)), TEACHER_RUN_FILE)
    recorded_names = report.get("class_names")
    if not recorded_names and os.path.isfile(teacher_run):
        recorded_names = _read_json(teacher_run).get("class_names")
    class_names = list(class_names or recorded_names or [])
    if num_segments is None:
        rows, origin = [], None
    elif samples:
        rows, origin = read_samples(samples, num_segments), samples
    elif run_samples and os.path.isfile(run_samples):
        rows, origin = read_samples(run_samples, num_segments), run_samples
    elif num_segments == 1:
        rows, origin = [[t] for t in GENERIC_SAMPLES], "built-in generic sentences"
    else:
        rows = [[t, t] for t in GENERIC_SAMPLES]
        origin = "built-in generic sentences (as both segments)"
    return {
        "class_names": class_names,
        "num_segments": num_segments,
        "num_segments_from": segments_from,
        "samples": rows,
        "samples_from": origin,
        "report": summarise_report(report, student_path) if report else None,
        "run_directory": run,
    }


def summarise_report(report, student_path):
    """The training report's essentials for this student's method."""
    method = os.path.basename(os.path.dirname(os.path.abspath(student_path)))
    result = next((r for r in report.get("results", []) if r.get("method") == method), None)
    return {
        "task": report.get("task"),
        "method": method,
        "result": result,
        "teacher": report.get("teacher"),
        "coefficients": report.get("coefficients"),
        "criterion": (report.get("config") or {}).get("criterion"),
        "notes": report.get("notes"),
    }


def read_metadata(version_dir):
    """The metadata asset of an exported version."""
    path = os.path.join(version_dir, ASSETS_EXTRA, METADATA_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{version_dir} has no {ASSETS_EXTRA}/{METADATA_FILE}: "
                         "not a ptloss-export SavedModel.")
    return _read_json(path)
