"""What an export records about itself, and where it finds its inputs.

The metadata asset (`assets.extra/ptloss_metadata.json` in each version)
holds the task, the class names, the tokenizer's sequence length and
vocabulary hash, the PTLoss coefficients and a summary of the training
report, plus reference outputs of the Keras student on sample inputs (what
`ptloss-export verify` compares the SavedModel against).

A student inside a `ptloss-distill` output directory
(`RUN/<method>/student.keras`) gets its class names, segment count,
coefficients and sample inputs from `RUN/report.json` and
`RUN/samples.json`; flags supply them for any other student.
"""

import hashlib
import json
import os

METADATA_FILE = "ptloss_metadata.json"
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"

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
    return run if os.path.isfile(os.path.join(run, "report.json")) else None


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def vocabulary_hash(tokens):
    """sha256 of the vocabulary, one token per line (as in vocab.txt)."""
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def file_hash(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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

    Flags win over the run directory's files. Returns a dict with
    `class_names`, `num_segments`, `samples` (rows of texts), `samples_from`,
    and `report` (the summary, or None outside a run directory).
    """
    run = run_directory(student_path)
    report = _read_json(os.path.join(run, "report.json")) if run else {}
    run_samples = os.path.join(run, "samples.json") if run else None
    if num_segments is None:
        num_segments = report.get("num_segments")
    if num_segments is None and run_samples and os.path.isfile(run_samples):
        texts = _read_json(run_samples).get("texts") or [[""]]
        num_segments = len(texts[0])
    num_segments = int(num_segments or 1)
    class_names = list(class_names or report.get("class_names") or [])
    if samples:
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
