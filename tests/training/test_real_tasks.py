"""The real-task path: teacher subcommand, teacher files, SST-2 from ../shared/data."""

import json
import os

import numpy as np
import pytest

from tests.helpers.hf_bert import write_tiny_hf_bert
from ptloss_tf.training.cli import main
from tests.helpers import vocabulary

pytestmark = pytest.mark.slow  # end-to-end / subprocess runs

VOCAB = vocabulary(f"w{i}" for i in range(40))
STUDENT = ["--student-layers", "1", "--hidden", "16", "--heads", "2",
           "--intermediate", "32", "--epochs", "1", "--batch-size", "32",
           "--candidates", "6", "--order", "2", "--verbose", "0", "--no-xla"]


def _write_tsv(path, rng, n):
    with open(path, "w") as f:
        f.write("sentence\tlabel\n")
        for _ in range(n):
            words = rng.integers(0, 40, size=rng.integers(2, 9))
            label = int(np.mean(words) > 20)
            f.write(" ".join(f"w{w}" for w in words) + f"\t{label}\n")


@pytest.fixture(scope="module")
def file_task(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    rng = np.random.default_rng(0)
    for split, n in (("train", 96), ("validation", 48), ("test", 48)):
        _write_tsv(root / f"{split}.tsv", rng, n)
    write_tiny_hf_bert(str(root / "bert"), VOCAB, layers=2)
    return root


def test_teacher_subcommand_then_distillation_from_its_outputs(file_task):
    root = file_task
    files = ["--task", "file", "--train-file", str(root / "train.tsv"),
             "--validation-file", str(root / "validation.tsv"),
             "--test-file", str(root / "test.tsv"), "--class-names", "0", "1"]
    teacher_dir = root / "teacher"
    assert main(["teacher", *files, "--preset", str(root / "bert"),
                 "--output-dir", str(teacher_dir), "--epochs", "1",
                 "--sequence-length", "16", "--verbose", "0"]) == 0
    from ptloss_tf.training.teacher.outputs import TeacherOutputs

    for split, n in (("train", 96), ("validation", 48), ("test", 48)):
        outputs = TeacherOutputs.load(str(teacher_dir / f"{split}.jsonl"))
        assert outputs.split == split and len(outputs.ids) == n
        assert outputs.kind == "logits" and outputs.teacher == "bert"
        np.testing.assert_allclose(outputs.probabilities().sum(1), 1.0, atol=1e-5)
    assert (teacher_dir / "teacher.keras").exists()
    assert "metadata" not in json.loads((teacher_dir / "test.jsonl").read_text().split("\n")[0])
    # Refuses to overwrite existing outputs.
    assert main(["teacher", *files, "--preset", str(root / "bert"),
                 "--output-dir", str(teacher_dir), "--epochs", "1"]) == 2
    out = root / "run"
    assert main([*files, "--teacher-outputs", str(teacher_dir),
                 "--preset", str(root / "bert"), "--init-from-layers", "1",
                 "--sequence-length", "16", "--loss", "ptloss",
                 "--output-dir", str(out), *STUDENT[8:]]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["method"] for r in report["results"]] == ["ptloss"]
    assert report["task"] == "file"


def test_bucketed_teacher_prediction_keeps_example_order(file_task):
    from ptloss_tf.training.data.examples import load_file
    from ptloss_tf.training.data.input_pipeline import make_dataset
    from ptloss_tf.training.student import build_classifier
    from ptloss_tf.training.teacher.predict import predict_logits

    root = file_task
    examples = load_file(str(root / "test.tsv"), ("sentence",), "label", class_names=("0", "1"))
    model, preprocessor = build_classifier(2, sequence_length=16, preset=str(root / "bert"),
                                           dropout=0.0)
    bucketed = predict_logits(model, examples, preprocessor, batch_size=8)
    plain = model.predict(make_dataset(examples, preprocessor, 8).map(lambda x, y: x),
                          verbose=0)
    np.testing.assert_allclose(bucketed, plain, atol=1e-5)


def test_teacher_file_for_the_wrong_split_is_refused(file_task, capsys):
    root = file_task
    teacher_dir = root / "teacher"
    if not teacher_dir.exists():
        pytest.skip("needs the teacher outputs of the previous test")
    swapped = root / "swapped"
    swapped.mkdir(exist_ok=True)
    for split in ("train", "validation", "test"):
        source = "validation" if split == "test" else split
        (swapped / f"{split}.jsonl").write_text((teacher_dir / f"{source}.jsonl").read_text())
    files = ["--task", "file", "--train-file", str(root / "train.tsv"),
             "--validation-file", str(root / "validation.tsv"),
             "--test-file", str(root / "test.tsv"), "--class-names", "0", "1"]
    assert main([*files, "--teacher-outputs", str(swapped), *STUDENT,
                 "--vocabulary", str(root / "bert" / "vocab.txt"),
                 "--output-dir", str(root / "bad")]) == 2
    err = capsys.readouterr().err
    assert "split" in err and "validation" in err


def test_sst2_subset_from_shared_data(tmp_path):
    from ptloss_tf.training.data.sources import load_split
    from ptloss_tf.training.data.tasks import default_data_root
    from ptloss_tf.training.data.tasks import get_task
    from ptloss_tf.training.teacher.outputs import TeacherOutputs

    if not os.path.exists(os.path.join(default_data_root(), "glue", "SST-2", "dev.tsv")):
        pytest.fail(f"SST-2 files missing under {default_data_root()} (set PTLOSS_DATA_DIR)")
    task = get_task("sst2")
    rng = np.random.default_rng(0)
    teacher_dir = tmp_path / "teacher"
    teacher_dir.mkdir()
    for split in ("train", "validation", "test"):
        ex = load_split(task, split, source="files")
        # A stand-in teacher: right 80% of the time, confidence 0.9.
        right = rng.uniform(size=len(ex)) < 0.8
        predicted = np.where(right, ex.labels, 1 - ex.labels)
        probs = np.where(np.eye(2)[predicted] > 0, 0.9, 0.1).astype(np.float32)
        TeacherOutputs(ids=np.asarray(ex.ids), values=probs, kind="probs",
                       class_names=tuple(ex.class_names), split=split,
                       teacher="stand-in").save(str(teacher_dir / f"{split}.jsonl"))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(vocabulary(["the", "a", "good", "bad", "movie", "film",
                                            "is", "not"])) + "\n")
    out = tmp_path / "run"
    assert main(["--task", "sst2", "--source", "files", "--teacher-outputs", str(teacher_dir),
                 "--max-train-examples", "256", "--vocabulary", str(vocab),
                 "--sequence-length", "32", "--loss", "ptloss", "--output-dir", str(out),
                 *STUDENT]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "sst2"
    # The stand-in teacher's test accuracy is reported from the joined file.
    assert report["teacher"]["accuracy"] == pytest.approx(0.8, abs=0.05)
