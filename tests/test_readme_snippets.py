"""The README's Python snippets run as written (issue 12's smaller points).

Each snippet is read from README.md itself, so the test fails when the text
changes in a way that no longer runs; the names a snippet leaves to the
reader (`teacher`, `student`, `eta`, data) are supplied here, small.
"""

import os
import re

import keras
import numpy as np

import ptloss_tf

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _python_blocks():
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def _block_with(text):
    blocks = [b for b in _python_blocks() if text in b]
    assert len(blocks) == 1, f"{len(blocks)} README python blocks contain {text!r}"
    return blocks[0]


def test_keras_distiller_snippet_runs_and_trains():
    # Before: the snippet built the Distiller but a user's next step,
    # `compile(optimizer=...)`, failed with "'loss' cannot be `None`".
    code = _block_with("keras.distillation.Distiller")
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    before = [w.copy() for w in student.get_weights()]
    rng = np.random.default_rng(0)
    namespace = {
        "keras": keras, "ptloss_tf": ptloss_tf, "np": np,
        "teacher": teacher, "student": student,
        "eta": ptloss_tf.Coefficients([[1.0, 1.0], [0.5, 0.5]]),
        "x_train": rng.normal(size=(32, 4)).astype("float32"),
        "y_train": rng.integers(0, 2, size=32),
    }
    exec(compile(code, "README.md (keras.distillation.Distiller)", "exec"), namespace)
    history = namespace["distiller"].history.history
    assert np.all(np.isfinite(history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, student.get_weights()))


def test_proxy_teacher_line_gives_the_array_it_documents():
    # Before: the README showed `proxy_teacher(...)` as an [N, K] float64
    # array; it returns a tf.Tensor.
    line = next(l for l in _block_with("ptloss_tf.proxy_teacher(").splitlines()
                if l.startswith("proxy = ptloss_tf.proxy_teacher("))
    rng = np.random.default_rng(0)
    namespace = {"ptloss_tf": ptloss_tf,
                 "val_teacher_probs": rng.dirichlet([1.0, 1.0, 1.0], size=5),
                 "eta": ptloss_tf.Coefficients(np.full((2, 3), 0.5))}
    exec(line, namespace)
    proxy = namespace["proxy"]
    assert isinstance(proxy, np.ndarray) and proxy.dtype == np.float64
    assert proxy.shape == (5, 3)
    np.testing.assert_allclose(proxy.sum(1), 1.0, atol=1e-12)


def test_calibration_snippet_runs_and_writes_its_json(tmp_path, monkeypatch):
    code = _block_with("ptloss_tf.calibrate_teacher(")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 2)) * 2.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = (rng.random(400) < probs[:, 1]).astype(int)
    over = np.exp(2.5 * logits) / np.exp(2.5 * logits).sum(1, keepdims=True)
    namespace = {"ptloss_tf": ptloss_tf, "val_teacher_probs": over, "val_labels": labels,
                 "train_teacher_probs": over[:50]}
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (calibrate_teacher)", "exec"), namespace)
    targets = namespace["targets"]
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-12)
    calibration = namespace["calibration"]
    assert calibration.validation_nll_after < calibration.validation_nll_before
    restored = ptloss_tf.TeacherCalibration.from_json((tmp_path / "calibration.json").read_text())
    assert restored == calibration
