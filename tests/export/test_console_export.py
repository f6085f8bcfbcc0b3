"""`ptloss-export` in a user's terminal: one line per error, no TensorFlow
start-up logging unless `--verbose`."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # subprocesses


def run_export(*argv, cwd):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "ptloss_tf.export", *argv],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("argv, message", [
    (["student.keras", "--base-path"], "argument --base-path: expected one argument"),
    (["predict", "nowhere/1", "--input", "a.tsv", "--output", "b.jsonl"],
     "not a ptloss-export SavedModel"),
    (["missing.keras", "--base-path", "serving", "--name", "m"], "missing.keras"),
])
def test_errors_are_one_line(tmp_path, argv, message):
    result = run_export(*argv, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ptloss-export: error: ") and message in lines[0]
    assert not (tmp_path / "serving").exists() and not (tmp_path / "b.jsonl").exists()


def test_help_shows_defaults_and_the_verbose_flag(tmp_path):
    result = run_export("predict", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "(default: 64)" in result.stdout and "--verbose" in result.stdout
    assert result.stderr.strip() == ""
