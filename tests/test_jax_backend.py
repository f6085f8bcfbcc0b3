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
