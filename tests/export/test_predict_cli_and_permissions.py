"""`ptloss-export predict` from a shell, its accuracy on labelled input, and
the permissions of what an export writes (issue 12, items 4 and 13, and
"predict writes no accuracy when the input has labels")."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from ptloss_tf.export import metadata as md
from ptloss_tf.export.cli import main

pytestmark = pytest.mark.slow  # exports and fresh-process runs of the console script

CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "ptloss-export")


def _export_under_umask(student, base, mask):
    old = os.umask(mask)
    try:
        assert main([str(student), "--base-path", str(base), "--name", "m",
                     "--no-verify"]) == 0
    finally:
        os.umask(old)
    return base / "m"


@pytest.fixture(scope="module")
def export_022(tiny_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving022")
    return _export_under_umask(tiny_run / "ptloss" / "student.keras", base, 0o022)


def _modes(model_dir):
    """`{relative path: permission bits}` of `model_dir` and all below it."""
    modes = {".": stat.S_IMODE(os.stat(model_dir).st_mode)}
    for root, dirs, files in os.walk(model_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            modes[os.path.relpath(path, model_dir)] = stat.S_IMODE(os.stat(path).st_mode)
    return modes


@pytest.mark.parametrize("mask, file_mode, dir_mode", [
    (0o022, 0o644, 0o755),
    (0o077, 0o600, 0o700),
])
def test_every_exported_file_gets_the_umask_permissions(
        tiny_run, export_022, tmp_path, mask, file_mode, dir_mode):
    model_dir = (export_022 if mask == 0o022 else
                 _export_under_umask(tiny_run / "ptloss" / "student.keras", tmp_path, mask))
    modes = _modes(model_dir)
    # What the server reads: the config, the SavedModel, the assets.
    for required in ("models.config", "1/saved_model.pb", "1/variables",
                     f"1/{md.ASSETS_EXTRA}/{md.WARMUP_FILE}",
                     f"1/{md.ASSETS_EXTRA}/{md.METADATA_FILE}"):
        assert required in modes, sorted(modes)
    wrong = {path: oct(mode) for path, mode in modes.items()
             if mode != (dir_mode if os.path.isdir(model_dir / path) else file_mode)}
    assert not wrong, wrong
    # No temporary build directory is left beside the versions.
    assert sorted(os.listdir(model_dir)) == ["1", "models.config"]


def _write_labelled_tsv(path, texts, labels):
    with open(path, "w") as f:
        f.write("sentence\tlabel\n")
        for text, label in zip(texts, labels):
            f.write(f"{text}\t{label}\n")


def _run_console_script(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([CONSOLE_SCRIPT, *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_predict_console_script_in_a_fresh_process_reports_accuracy(export_022, tmp_path):
    # Before: `RuntimeError: Op type not registered 'RegexSplitWithOffsets'`
    # (TF Text's kernels were not loaded before the SavedModel), and with
    # labels no accuracy anywhere.
    version = export_022 / "1"
    meta = md.read_metadata(version)
    class_names = meta["class_names"]
    texts = [row[0] for row in meta["reference"]["texts"]]
    rng = np.random.default_rng(0)
    truth = rng.integers(0, len(class_names), size=len(texts))
    # Labels as class names and as class indices, and one unlabelled row.
    raw = [class_names[k] if i % 2 else str(k) for i, k in enumerate(truth)]
    raw[-1] = ""
    data = tmp_path / "in.tsv"
    _write_labelled_tsv(data, texts, raw)
    out = tmp_path / "scores.jsonl"
    proc = _run_console_script("predict", str(version), "--input", str(data),
                               "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = out.read_text().splitlines()
    header = json.loads(lines[0])
    logits = np.asarray([json.loads(line)["values"] for line in lines[1:]], np.float64)
    assert logits.shape == (len(texts), len(class_names))
    labelled = np.arange(len(texts)) < len(texts) - 1
    correct = int(np.sum(logits.argmax(1)[labelled] == truth[labelled]))
    expected = correct / int(labelled.sum())
    assert header["metadata"]["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert header["metadata"]["labelled_rows"] == len(texts) - 1
    assert header["metadata"]["correct"] == correct
    assert header["metadata"]["label_field"] == "label"
    assert (f"Accuracy: {expected:.4f} ({correct}/{len(texts) - 1} labelled rows, "
            "column 'label')") in proc.stdout


def test_predict_module_entry_point_refuses_an_unknown_label(export_022, tmp_path):
    version = export_022 / "1"
    texts = [row[0] for row in md.read_metadata(version)["reference"]["texts"]][:3]
    data = tmp_path / "in.tsv"
    _write_labelled_tsv(data, texts, ["0", "neither", "1"])
    out = tmp_path / "scores.jsonl"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "ptloss_tf.export", "predict", str(version),
                           "--input", str(data), "--output", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ptloss-export: error: ") and f"{data}:3" in last
    assert "'neither'" in last
    assert not out.exists()


def test_predict_without_labels_records_no_accuracy(export_022, tmp_path, capsys):
    version = export_022 / "1"
    texts = [row[0] for row in md.read_metadata(version)["reference"]["texts"]][:4]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"sentence": t}) + "\n" for t in texts))
    out = tmp_path / "scores.jsonl"
    assert main(["predict", str(version), "--input", str(data), "--output", str(out)]) == 0
    assert "Accuracy" not in capsys.readouterr().out
    assert "accuracy" not in json.loads(out.read_text().splitlines()[0])["metadata"]
    # An explicit --label-field that the file lacks is an error, not a silent skip.
    assert main(["predict", str(version), "--input", str(data), "--output", str(out),
                 "--overwrite", "--label-field", "gold"]) == 2
    assert "gold" in capsys.readouterr().err


def test_missing_tensorflow_text_is_a_clear_error(monkeypatch):
    from ptloss_tf.export.predict import load_serving_kernels

    monkeypatch.setitem(sys.modules, "tensorflow_text", None)  # import now fails
    with pytest.raises(ValueError, match=r"tensorflow-text==2\.21"):
        load_serving_kernels()
