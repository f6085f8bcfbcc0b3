"""`verify_export`: does an exported version serve what the Keras student predicts?

The checks run in a fresh Python process (`export/serving_check.py`) that
can import TensorFlow, TF Text's op kernels and the tensorflow-serving-api
protos, and nothing else of note: not keras, not keras-hub, not this
project. That is the server's situation; a SavedModel that still needs
Python code from those packages fails there.

Checked here, before that process: the number of text inputs against the
segments the model was trained on (the metadata, the run's `report.json` /
`teacher_run.json` beside the student, and the segment ids of the reference
tokens): a sentence-pair model exported as single-text passes every other
check. Checked there: signature names, input and output names / dtypes / shapes; both
signatures on the sample inputs against the Keras student's probabilities
(max abs difference <= `atol`, labels = class names of the argmax); every
warmup record; REST `:predict` bodies in the row (`instances`) and columnar
(`inputs`) formats and a gRPC `PredictRequest`, written to disk and read
back as the server would.
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from ptloss_tf.export import metadata as md
from ptloss_tf.io_utils import file_sha256
from ptloss_tf.export.signatures import PREDICT_TOKEN_IDS, SERVING_DEFAULT

CHECK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serving_check.py")


@dataclasses.dataclass
class VerificationReport:
    """The outcome of `verify_export`: one dict per check
    (`check`, `ok`, `detail`) and where the reference came from."""

    version_dir: str
    checks: list
    reference: str
    requests_dir: str

    @property
    def passed(self):
        return bool(self.checks) and all(c["ok"] for c in self.checks)

    def summary(self):
        lines = [f"Verifying {self.version_dir} (reference: {self.reference})"]
        for c in self.checks:
            lines.append(f"  [{'PASS' if c['ok'] else 'FAIL'}] {c['check']}"
                         + (f": {c['detail']}" if c["detail"] else ""))
        failed = sum(not c["ok"] for c in self.checks)
        lines.append("PASSED: all {} checks".format(len(self.checks)) if self.passed
                     else f"FAILED: {failed} of {len(self.checks)} checks")
        return "\n".join(lines)


def _keras_reference(student_path, tokens):
    from ptloss_tf.export.student import keras_logits
    from ptloss_tf.export.student import load_student
    from ptloss_tf.probabilities import softmax

    classifier, _ = load_student(student_path)
    return softmax(keras_logits(classifier, {k: np.asarray(v, np.int32)
                                              for k, v in tokens.items()}))


def _reference(metadata, student):
    """Keras probabilities on the sample inputs, recomputed from the student
    file when there is one, else those recorded at export time."""
    recorded = metadata["reference"]
    path = student or metadata["student"]["path"]
    if student is None and not (os.path.isfile(path)
                                and file_sha256(path) == metadata["student"]["sha256"]):
        return np.asarray(recorded["probabilities"]), "Keras outputs recorded at export"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"student file not found: {path}")
    return _keras_reference(path, recorded["tokens"]), f"Keras student {path}"


def segment_check(metadata):
    """The check that the export takes as many texts as the model was trained on.

    Three records must agree with the number of text inputs of
    `serving_default` (which the serving check compares with
    `metadata["text_inputs"]`): the metadata's `num_segments`, the run's
    files beside the student if they still exist (`recorded_segments`), and
    the reference tokens (a pair has segment id 1 in every row, a single
    text nowhere).

    Returns:
        One check dict (`check`, `ok`, `detail`).
    """
    inputs = list(metadata["text_inputs"])
    count = len(inputs)
    problems = []
    if metadata.get("num_segments") != count:
        problems.append(f"metadata num_segments is {metadata.get('num_segments')}")
    recorded, source = md.recorded_segments(metadata["student"]["path"])
    if recorded is not None and recorded != count:
        problems.append(f"{source} records {recorded} segment(s)")
    segment_ids = np.asarray(metadata["reference"]["tokens"]["segment_ids"])
    second = (segment_ids == 1).any(axis=-1)
    if (count == 2 and not second.all()) or (count == 1 and second.any()):
        problems.append("the reference tokens were not packed as "
                        + ("pairs" if count == 2 else "single texts"))
    detail = f"{count} text input(s) {inputs}"
    if recorded is not None:
        detail += f"; {source} records {recorded}"
    if problems:
        detail += ": " + "; ".join(problems) + " (re-export with the right segment count)"
    return {"check": "text inputs = segments the model was trained on", "ok": not problems,
            "detail": detail}


def write_requests(directory, metadata):
    """The REST bodies and the gRPC request for the sample inputs."""
    from ptloss_tf.export.serving_requests import (predict_request, rest_columnar_request,
                                         rest_row_request)

    texts = metadata["reference"]["texts"]
    inputs = {n: [row[i] for row in texts] for i, n in enumerate(metadata["text_inputs"])}
    tokens = metadata["reference"]["tokens"]
    os.makedirs(directory, exist_ok=True)
    paths = {
        "row": os.path.join(directory, "rest_row.json"),
        "columnar": os.path.join(directory, "rest_columnar.json"),
        "row token ids": os.path.join(directory, "rest_row_token_ids.json"),
    }
    bodies = {"row": rest_row_request(SERVING_DEFAULT, inputs),
              "columnar": rest_columnar_request(SERVING_DEFAULT, inputs),
              "row token ids": rest_row_request(PREDICT_TOKEN_IDS, tokens)}
    for kind, path in paths.items():
        with open(path, "w") as f:
            f.write(bodies[kind])
    grpc = os.path.join(directory, "grpc_predict_request.pb")
    with open(grpc, "wb") as f:
        f.write(predict_request(metadata["model_name"], SERVING_DEFAULT,
                                inputs).SerializeToString())
    return paths, grpc


def verify_export(version_dir, student=None, requests_dir=None, atol=1e-5, timeout=600):
    """Verifies `version_dir` (`BASE/NAME/N`) in a fresh process.

    Args:
        version_dir: an exported version.
        student: the Keras student to compare with (default: the exported
            file if unchanged, else the outputs recorded at export time).
        requests_dir: keep the REST/gRPC request files there (default: a
            temporary directory).
        atol: tolerance on probabilities.

    Returns:
        A `VerificationReport` (`.passed`, `.summary()`).

    Raises:
        FileNotFoundError / ValueError: not a SavedModel export.
    """
    version_dir = os.path.abspath(version_dir)
    if not os.path.isdir(version_dir):
        raise FileNotFoundError(f"export not found: {version_dir}")
    if not os.path.isfile(os.path.join(version_dir, "saved_model.pb")):
        raise ValueError(f"{version_dir} has no saved_model.pb: not a SavedModel.")
    metadata = md.read_metadata(version_dir)
    expected, reference = _reference(metadata, student)
    keep = requests_dir is not None
    requests_dir = requests_dir or tempfile.mkdtemp(prefix="ptloss-verify-")
    rest, grpc = write_requests(requests_dir, metadata)
    config = {
        "saved_model": version_dir,
        "signatures": metadata["signatures"],
        "text_inputs": metadata["text_inputs"],
        "class_names": metadata["class_names"],
        "texts": metadata["reference"]["texts"],
        "tokens": metadata["reference"]["tokens"],
        "expected_probabilities": np.asarray(expected).tolist(),
        "warmup": os.path.join(version_dir, md.ASSETS_EXTRA, md.WARMUP_FILE),
        "rest": rest,
        "grpc": grpc,
        "atol": atol,
    }
    config_path = os.path.join(requests_dir, "check_config.json")
    result_path = os.path.join(requests_dir, "check_result.json")
    with open(config_path, "w") as f:
        json.dump(config, f)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    proc = subprocess.run([sys.executable, "-I", CHECK_SCRIPT, config_path, result_path],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if os.path.exists(result_path):
        with open(result_path) as f:
            checks = json.load(f)
    else:
        tail = " ".join((proc.stderr or proc.stdout).split())[-500:]
        checks = [{"check": "serving check process", "ok": False,
                   "detail": f"exit code {proc.returncode}: {tail}"}]
    checks.insert(0, segment_check(metadata))
    if not keep:
        import shutil

        shutil.rmtree(requests_dir, ignore_errors=True)
    return VerificationReport(version_dir, checks, reference,
                              requests_dir if keep else None)
