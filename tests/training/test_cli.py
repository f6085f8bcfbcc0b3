"""End-to-end runs of `ptloss-distill` on tiny settings."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import ptloss_tf
from ptloss_tf.training.cli import main

pytestmark = pytest.mark.slow  # end-to-end / subprocess runs

from tests.helpers import TINY_RUN as TINY
from tests.helpers import tiny_synthetic_task


@pytest.fixture
def finished_run(tiny_run):
    return tiny_run


def test_output_directory_contract(finished_run):
    with open(finished_run / "report.json") as f:
        report = json.load(f)
    assert report["task"] == "synthetic"
    methods = [r["method"] for r in report["results"]]
    assert methods == ["kl", "kl_calibrated", "ptloss"]
    for r in report["results"]:
        for key in ("accuracy", "nll", "ece", "teacher_agreement", "kl_to_p_star"):
            assert np.isfinite(r[key]), (r["method"], key)
        assert 0.0 <= r["accuracy"] <= 1.0
        student = keras.saving.load_model(finished_run / r["method"] / "student.keras")
        assert student.output_shape[-1] == 2
    assert np.asarray(report["coefficients"]).shape == (2, 2)
    with open(finished_run / "coefficients.json") as f:
        saved = ptloss_tf.Coefficients.from_dict(json.load(f))
    assert saved.values.tolist() == report["coefficients"]
    assert (finished_run / "learning_curves.png").stat().st_size > 1000
    assert (finished_run / "search.png").exists()


def test_saved_student_carries_its_preprocessor_and_samples_are_test_rows(finished_run):
    with open(finished_run / "report.json") as f:
        report = json.load(f)
    with open(finished_run / "samples.json") as f:
        samples = json.load(f)
    task = tiny_synthetic_task()
    assert samples["texts"] == [[t] for t in task.test.examples.texts[0][:8]]
    assert samples["labels"] == task.test.examples.labels[:8].tolist()
    assert report["class_names"] == list(task.test.examples.class_names)
    assert report["num_segments"] == 1
    student = keras.saving.load_model(finished_run / "kl" / "student.keras")
    assert student.preprocessor is not None
    texts = [t[0] for t in samples["texts"]]
    # Raw text through the saved preprocessor equals token ids fed directly.
    tokens = student.preprocessor(np.asarray(texts))
    np.testing.assert_allclose(student.predict(np.asarray(texts), verbose=0),
                               student(tokens), atol=1e-5)


def test_coefficients_are_the_search_optimum_on_the_validation_split(finished_run):
    task = tiny_synthetic_task()
    result = ptloss_tf.search_coefficients(
        task.validation.teacher_probs, task.validation.examples.labels,
        order=2, num_candidates=8, seed=0, criterion="brier",
    )
    with open(finished_run / "report.json") as f:
        report = json.load(f)
    np.testing.assert_allclose(report["coefficients"], result.best.values)
    teacher = report["teacher"]
    labels = task.test.examples.labels
    assert teacher["accuracy"] == pytest.approx(
        np.mean(task.test.teacher_probs.argmax(1) == labels)
    )


def test_refuses_a_finished_run_and_overwrite_keeps_foreign_files(finished_run, tmp_path,
                                                                  capsys):
    finished_run = shutil.copytree(finished_run, tmp_path / "run")  # the shared run stays
    assert main(TINY + ["--output-dir", str(finished_run)]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    foreign = finished_run / "my_notes.txt"
    foreign.write_text("keep me")
    assert main(TINY + ["--output-dir", str(finished_run), "--overwrite",
                        "--loss", "kl"]) == 0
    assert foreign.read_text() == "keep me"
    with open(finished_run / "report.json") as f:
        assert [r["method"] for r in json.load(f)["results"]] == ["kl"]


def test_resume_skips_finished_methods(tmp_path, capsys):
    out = tmp_path / "out"
    args = TINY + ["--output-dir", str(out)]
    assert main(args) == 0
    # Simulate an interruption during the second method.
    os.unlink(out / "report.json")
    state = json.loads((out / "run_state.json").read_text())
    state["finished"] = ["kl"]
    (out / "run_state.json").write_text(json.dumps(state))
    kl_model = (out / "kl" / "student.keras").stat().st_mtime
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Resuming" in printed and "kl: already finished" in printed
    assert (out / "kl" / "student.keras").stat().st_mtime == kl_model
    assert (out / "report.json").exists()
    # Other options on the same unfinished directory are refused.
    os.unlink(out / "report.json")
    assert main(args[:-2] + ["--output-dir", str(out), "--epochs", "2"]) == 2
    assert "different options" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "sst2", "--data-root", "/nonexistent", "--source", "files"], ""),
        (["--task", "sst2", "--source", "files"], "--teacher-outputs"),
        (["--coefficients", "/nonexistent.json"], "--coefficients /nonexistent.json: file not found"),
        (["--task", "file"], "--train-file"),
        (["--strategy", "tpu"], "No TPU was found"),
    ],
)
def test_bad_input_gives_one_line_errors(tmp_path, capsys, argv, message):
    code = main(TINY + argv + ["--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ptloss-distill: error:")
    assert message in err
    assert "Traceback" not in err


def test_non_empty_foreign_directory_is_refused(tmp_path, capsys):
    (tmp_path / "data.csv").write_text("x")
    assert main(TINY + ["--output-dir", str(tmp_path)]) == 2
    assert "holds no ptloss-distill run" in capsys.readouterr().err
    assert (tmp_path / "data.csv").read_text() == "x"


def test_config_file_and_flag_precedence(tmp_path):
    from ptloss_tf.training.config import parse_args

    config = tmp_path / "c.yaml"
    config.write_text("epochs: 7\norder: 3\nloss: [kl, focal]\n")
    args = parse_args(["--config", str(config), "--order", "4"])
    assert args.epochs == 7 and args.order == 4 and args.loss == ("kl", "focal")
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochz": 3}')
    with pytest.raises(ValueError, match="unknown option"):
        parse_args(["--config", str(bad)])


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "ptloss_tf.training", "--help"], capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0
    for group in ("task and data", "PTLoss coefficients", "student", "distillation",
                  "hardware", "output"):
        assert group in result.stdout


def test_run_keeps_its_dataset_caches(tmp_path):
    """Keras reads exactly `cardinality` batches and never the end of a
    dataset; a `cache()` that this leaves unfinished is discarded by
    TensorFlow (texts tokenised again) with a C++ warning. `make_dataset`
    fills its caches first, so a run prints no such warning."""
    command = [sys.executable, "-m", "ptloss_tf.training", *TINY, "--loss", "kl",
               "--output-dir", str(tmp_path / "out")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="1")  # show TensorFlow's warnings
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "did not fully read the dataset being cached" not in result.stderr


def test_killed_run_resumes_with_the_same_command(tmp_path):
    """SIGKILL during the second method; the same command then finishes it,
    at the uninterrupted run's numbers: the resumed epochs draw the same
    shuffle orders and dropout masks (`datasets.data_order_callback`,
    `AtomicBackupAndRestore`), so only float32 summation order may differ
    (ATOL 1e-5, as tests/training/test_cli_mesh.py; another batch order moves
    the logged losses by 1e-3 or more)."""
    import signal
    import time

    out = tmp_path / "out"
    arguments = [sys.executable, "-m", "ptloss_tf.training", *TINY, "--epochs", "3",
                 "--loss", "kl", "ptloss", "--output-dir"]
    command = arguments + [str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    reference = subprocess.run(arguments + [str(tmp_path / "reference")], capture_output=True,
                               text=True, env=env, timeout=300)
    assert reference.returncode == 0, reference.stderr[-2000:]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 240
    # Kill once the first method is finished and the second one has a backup.
    while time.time() < deadline and process.poll() is None:
        if ((out / "kl" / "result.json").exists()
                and (out / "ptloss" / "backup" / "training_metadata.json").exists()):
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (out / "report.json").exists()
    state = json.loads((out / "run_state.json").read_text())
    assert state["finished"] == ["kl"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kl: already finished" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert [r["method"] for r in report["results"]] == ["kl", "ptloss"]
    # Killed after at least one ptloss epoch: its result and history still
    # count every epoch (3, or fewer only by early stopping), not only those
    # after the restart, and the best validation accuracy is over all of them.
    ptloss = report["results"][1]
    history = json.loads((out / "ptloss" / "history.json").read_text())
    assert ptloss["epochs_run"] == len(history["loss"]) == len(history["val_accuracy"]) == 3
    assert ptloss["best_val_accuracy"] == pytest.approx(max(history["val_accuracy"]))
    uninterrupted = json.loads((tmp_path / "reference" / "ptloss" / "history.json").read_text())
    assert history.keys() == uninterrupted.keys()
    for key in uninterrupted:
        np.testing.assert_allclose(history[key], uninterrupted[key], rtol=0, atol=1e-5,
                                   err_msg=key)
    expected = json.loads((tmp_path / "reference" / "report.json").read_text())["results"][1]
    assert ptloss["accuracy"] == expected["accuracy"]
    assert ptloss["nll"] == pytest.approx(expected["nll"], abs=1e-5)
