"""Keras 3's JAX backend: the same training step as under TensorFlow, and
`ptloss-distill` end to end, its student exported under TensorFlow."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import TINY_RUN

pytestmark = pytest.mark.slow  # subprocesses

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")


def backend_env(backend):
    return dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")


def test_one_distiller_ptloss_step_is_the_same_under_jax_and_tensorflow(tmp_path, rng):
    import jax  # noqa: F401  (the test extra installs it: a missing JAX fails, never skips)
    sizes = [(5, 8), (8,), (8, 3), (3,)]
    batch = {f"w{i}": rng.normal(scale=0.5, size=s).astype(np.float32)
             for i, s in enumerate(sizes)}
    teacher_logits = rng.normal(size=(16, 3)) * 2
    batch.update(
        x=rng.normal(size=(16, 5)).astype(np.float32),
        teacher_probs=(np.exp(teacher_logits) / np.exp(teacher_logits).sum(1, keepdims=True)
                       ).astype(np.float32),
        labels=rng.integers(0, 3, size=16).astype(np.int32),
        eta=np.array([[1.0, 0.5, 2.0], [0.2, 0.1, 0.3]]))
    source = tmp_path / "in.npz"
    np.savez(source, **batch)
    out = {}
    for backend in ("tensorflow", "jax"):
        target = tmp_path / f"{backend}.npz"
        result = subprocess.run([sys.executable, os.path.join(HELPERS, "backend_step_worker.py"),
                                 str(source), str(target)], capture_output=True, text=True,
                                env=backend_env(backend), timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        out[backend] = np.load(target)
        assert str(out[backend]["backend"]) == backend
    for i in range(len(sizes)):
        assert not np.allclose(out["jax"][f"w{i}"], batch[f"w{i}"])  # the step moved it
        np.testing.assert_allclose(out["jax"][f"w{i}"], out["tensorflow"][f"w{i}"], atol=1e-5)
    assert float(out["jax"]["loss"]) == pytest.approx(float(out["tensorflow"]["loss"]), abs=1e-5)


def test_ptloss_distill_under_jax_then_ptloss_export_under_tensorflow(tmp_path):
    import jax  # noqa: F401  (the test extra installs it: a missing JAX fails, never skips)
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "ptloss_tf.training", *TINY_RUN,
                             "--loss", "kl", "ptloss", "--output-dir", str(run)],
                            capture_output=True, text=True, env=backend_env("jax"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((run / "report.json").read_text())
    assert report["hardware"]["keras_backend"] == "jax"
    assert [r["method"] for r in report["results"]] == ["kl", "ptloss"]
    for r in report["results"]:
        assert np.isfinite(r["accuracy"]) and np.isfinite(r["kl_to_p_star"])
    exported = subprocess.run([sys.executable, "-m", "ptloss_tf.export",
                               str(run / "ptloss" / "student.keras"), "--base-path",
                               str(tmp_path / "serving"), "--name", "jaxstudent"],
                              capture_output=True, text=True,
                              env=backend_env("tensorflow"), timeout=900)
    assert exported.returncode == 0, exported.stdout[-2000:] + exported.stderr[-2000:]
    assert (tmp_path / "serving" / "jaxstudent" / "1" / "saved_model.pb").exists()


def test_a_file_task_from_teacher_outputs_with_a_pretrained_student_under_jax(tmp_path):
    """A user's own files, an external teacher's probabilities (imported),
    a student initialised from a pretrained (HuggingFace-layout) BERT:
    `ptloss-distill` under JAX, then its test accuracy checked against the
    saved student's own predictions under TensorFlow."""
    import jax  # noqa: F401  (the test extra installs it: a missing JAX fails, never skips)
    import keras

    from tests.helpers import vocabulary
    from tests.helpers.hf_bert import write_tiny_hf_bert

    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(24)]
    splits = {}
    for split, n in (("train", 96), ("dev", 40), ("test", 40)):
        rows = []
        for _ in range(n):
            ids = rng.integers(0, 24, size=rng.integers(2, 6))
            rows.append((" ".join(words[i] for i in ids), "good" if ids.mean() >= 12 else "bad"))
        splits[split] = rows
        lines = ["sentence\tlabel"] + [f"{s}\t{y}" for s, y in rows]
        (tmp_path / f"{split}.tsv").write_text("\n".join(lines) + "\n")
        # An external teacher: noisy probabilities of the true class, as a CSV.
        p_good = np.clip([0.8 if y == "good" else 0.3 for _, y in rows]
                         + rng.normal(0, 0.1, n), 0.02, 0.98)
        table = ["id,p_bad,p_good,sentence"] + [
            f"{split}/{i:06d},{1 - p:.6f},{p:.6f},{s}" for i, ((s, _), p) in
            enumerate(zip(rows, p_good))]
        (tmp_path / f"teacher_{split}.csv").write_text("\n".join(table) + "\n")
        (tmp_path / "teacher").mkdir(exist_ok=True)
        target = {"train": "train", "dev": "validation", "test": "test"}[split]
        step = subprocess.run([sys.executable, "-m", "ptloss_tf.training", "import-teacher",
                               str(tmp_path / f"teacher_{split}.csv"),
                               str(tmp_path / "teacher" / f"{target}.jsonl"), "--split", target,
                               "--teacher", "external", "--prob-columns", "p_bad", "p_good",
                               "--class-names", "bad", "good", "--text-columns", "sentence"],
                              capture_output=True, text=True, env=backend_env("tensorflow"),
                              timeout=300)
        assert step.returncode == 0, step.stderr[-2000:]
    write_tiny_hf_bert(str(tmp_path / "bert"), vocabulary(words), layers=2)
    run = tmp_path / "run"
    step = subprocess.run([sys.executable, "-m", "ptloss_tf.training", "--task", "file",
                           "--train-file", str(tmp_path / "train.tsv"),
                           "--validation-file", str(tmp_path / "dev.tsv"),
                           "--test-file", str(tmp_path / "test.tsv"),
                           "--teacher-outputs", str(tmp_path / "teacher"),
                           "--preset", str(tmp_path / "bert"), "--init-from-layers", "1",
                           "--sequence-length", "16", "--loss", "kl", "ptloss",
                           "--epochs", "1", "--candidates", "6", "--order", "2",
                           "--verbose", "0", "--output-dir", str(run)],
                          capture_output=True, text=True, env=backend_env("jax"), timeout=900)
    assert step.returncode == 0, step.stderr[-3000:]
    report = json.loads((run / "report.json").read_text())
    assert report["hardware"]["keras_backend"] == "jax"
    assert report["class_names"] == ["bad", "good"]
    labels = np.array([y == "good" for _, y in splits["test"]], int)
    teacher = np.array([float(line.split(",")[2]) for line in
                        (tmp_path / "teacher_test.csv").read_text().splitlines()[1:]])
    assert report["teacher"]["accuracy"] == pytest.approx(
        float(np.mean((teacher > 0.5) == labels)), abs=1e-6)
    student = keras.saving.load_model(run / "ptloss" / "student.keras",  # with its preprocessor
                                      compile=False)
    predicted = np.asarray(student.predict([s for s, _ in splits["test"]], verbose=0)).argmax(1)
    ptloss = next(r for r in report["results"] if r["method"] == "ptloss")
    assert ptloss["accuracy"] == pytest.approx(float(np.mean(predicted == labels)), abs=1e-6)
