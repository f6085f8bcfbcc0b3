"""What a user sees in the terminal: one line per error, no framework
start-up noise unless asked for (`--verbose 3`), nothing written on bad
input. Run as console scripts in fresh processes, with the user's
environment (no TF_CPP_MIN_LOG_LEVEL)."""

import pytest

from ptloss_tf.console import framework_logging_requested
from tests.helpers import run_training_cli

pytestmark = pytest.mark.slow  # subprocesses


def run_cli(*argv, cwd=None):
    return run_training_cli(*argv, cwd=cwd, timeout=300)


def test_framework_logging_requested():
    assert framework_logging_requested(["--verbose"])
    assert framework_logging_requested(["--verbose", "--epochs", "2"])
    assert framework_logging_requested(["--verbose=3"])
    assert not framework_logging_requested(["--verbose", "2"])
    assert not framework_logging_requested(["--epochs", "3"])


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
    (["--max-train-examples", "0"], "--max-train-examples must be at least 1"),
    (["--preset", "./no/such/model"], "--preset ./no/such/model: no such folder"),
    (["--task", "file", "--train-file", "missing.tsv", "--test-file", "missing.tsv"],
     "--train-file missing.tsv: file not found"),
    (["--prepared-data", "no_such_dir"], "--prepared-data no_such_dir: directory not found"),
])
def test_bad_input_is_one_line_on_stderr_and_writes_nothing(tmp_path, argv, message):
    out = tmp_path / "run"
    result = run_cli(*argv, "--output-dir", str(out), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ptloss-distill: error: ") and message in lines[0]
    assert not out.exists()


def test_a_bad_label_is_found_before_the_output_directory_exists(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\na\tneg\nb\tpos\n")
    (tmp_path / "test.tsv").write_text("sentence\tlabel\nc\tpos\nd\tpositive\n")
    (tmp_path / "teacher").mkdir()
    result = run_cli("--task", "file", "--train-file", "train.tsv", "--test-file", "test.tsv",
                     "--teacher-outputs", "teacher", "--output-dir", "run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "ptloss-distill: error: test.tsv:3: label 'positive' in column 'label' is not one "
        "of the class names ['neg', 'pos']")
    assert not (tmp_path / "run").exists()


def test_help_shows_every_default():
    from ptloss_tf.training.config import build_parser
    from ptloss_tf.training.teacher.options import build_parser as teacher_parser

    text = " ".join(build_parser().format_help().split())
    for expected in ("--task {synthetic,sst2,mnli,boolq,rte,cb,sst5,trec,file} (default: synthetic)",
                     "--synthetic-train SYNTHETIC_TRAIN (default: 4000)",
                     "--label-field LABEL_FIELD --task file: the label column (default: label)",
                     "--calibration {temperature,bias,vector,matrix}",
                     "--max-teacher-gap MAX_TEACHER_GAP",
                     "--distribution {data_parallel,model_parallel}"):
        assert expected in text, expected
    teacher = " ".join(teacher_parser().format_help().split())
    assert "--epochs EPOCHS (default: " in teacher and "--no-header" in teacher
