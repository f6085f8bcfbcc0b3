"""`ptloss-distill` on TFDS (mocked: no download) and on RTE's local files,
whose test labels are hidden."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ptloss_tf.training.cli import main
from ptloss_tf.training.data.sources import load_split
from ptloss_tf.training.data.tasks import get_task
from ptloss_tf.training.teacher.outputs import TeacherOutputs
from tests.helpers import vocabulary

pytestmark = pytest.mark.slow  # end-to-end / subprocess runs

VOCAB = vocabulary("abcdefghijklmnopqrstuvwxyz")
TINY = ["--student-layers", "1", "--hidden", "16", "--heads", "2", "--intermediate", "32",
        "--epochs", "1", "--batch-size", "16", "--candidates", "4", "--order", "2",
        "--verbose", "0", "--no-xla", "--sequence-length", "24", "--loss", "ptloss"]


def _stand_in_teacher(examples, split, directory, rng):
    k = len(examples.class_names)
    labels = np.where(examples.labels >= 0, examples.labels, rng.integers(0, k, len(examples)))
    probs = rng.dirichlet(np.ones(k), size=len(examples)) * 0.3
    probs[np.arange(len(examples)), labels] += 0.7
    TeacherOutputs(ids=np.asarray(examples.ids), values=probs.astype(np.float32), kind="probs",
                   class_names=tuple(examples.class_names), split=split,
                   teacher="stand-in").save(str(directory / f"{split}.jsonl"))
    return probs


@pytest.mark.parametrize("task_name, num_classes", [("sst2", 2), ("mnli", 3), ("boolq", 2)])
def test_tfds_tasks_end_to_end_with_mock_data(tmp_path, task_name, num_classes):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    rng = np.random.default_rng(0)
    teacher_dir = tmp_path / "teacher"
    teacher_dir.mkdir()
    with tfds.testing.mock_data(num_examples=24, data_dir=str(tmp_path / "tfds")):
        for split in ("train", "validation", "test"):
            ex = load_split(get_task(task_name), split, source="tfds",
                            tfds_data_dir=str(tmp_path / "tfds"))
            _stand_in_teacher(ex, split, teacher_dir, rng)
        out = tmp_path / "run"
        code = main(["--task", task_name, "--source", "tfds",
                     "--tfds-data-dir", str(tmp_path / "tfds"),
                     "--teacher-outputs", str(teacher_dir), "--vocabulary", str(vocab),
                     "--output-dir", str(out), *TINY])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == task_name
    assert np.asarray(report["coefficients"]).shape == (2, num_classes)
    assert 0.0 <= report["results"][0]["accuracy"] <= 1.0


def test_rte_hidden_test_labels_use_validation_as_test(tmp_path):
    task = get_task("rte")
    rng = np.random.default_rng(1)
    teacher_dir = tmp_path / "teacher"
    teacher_dir.mkdir()
    probs = {}
    examples = {}
    # RTE's test labels are hidden (here the file is absent altogether).
    for split in ("train", "validation"):
        examples[split] = load_split(task, split, source="files")
        probs[split] = _stand_in_teacher(examples[split], split, teacher_dir, rng)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    out = tmp_path / "run"
    assert main(["--task", "rte", "--source", "files", "--teacher-outputs", str(teacher_dir),
                 "--vocabulary", str(vocab), "--max-train-examples", "64",
                 "--output-dir", str(out), *TINY]) == 0
    report = json.loads((out / "report.json").read_text())
    assert any("test labels are hidden" in n for n in report["notes"])
    assert report["results"][0]["method"] == "ptloss"
    expected = np.mean(probs["validation"].argmax(1) == examples["validation"].labels)
    assert report["teacher"]["accuracy"] == pytest.approx(expected)


@pytest.mark.parametrize("max_train_examples", [None, 100])
def test_rte_teacher_never_fine_tunes_on_the_coefficient_search_rows(max_train_examples):
    """With hidden test labels distillation holds training rows out for the
    coefficient search; the teacher must not have trained on them."""
    from ptloss_tf.training.teacher.options import TeacherConfig
    from ptloss_tf.training.teacher.run import training_rows

    examples = {split: load_split("rte", split, source="files")
                for split in ("train", "validation")}
    examples["test"] = None  # RTE's test file is absent here
    n, n_val = len(examples["train"]), len(examples["validation"])
    args = TeacherConfig(task="rte", preset="unused", output_dir="unused",
                         max_train_examples=max_train_examples, seed=5)
    fit_rows, predicted_rows, _ = training_rows(args, examples)
    # Independently: the first min(277, 2490 // 10) rows of a seed-0 permutation.
    held = np.sort(np.random.default_rng(0).permutation(n)[:min(n_val, n // 10)])
    assert len(held) == 249
    assert not np.intersect1d(fit_rows, held).size
    assert np.isin(held, predicted_rows).all()
    if max_train_examples is None:
        np.testing.assert_array_equal(fit_rows, np.setdiff1d(np.arange(n), held))
        np.testing.assert_array_equal(predicted_rows, np.arange(n))
    else:
        assert len(fit_rows) == max_train_examples
        np.testing.assert_array_equal(predicted_rows, np.union1d(fit_rows, held))
