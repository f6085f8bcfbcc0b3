"""The main job's report: report.png, the Bayes ceiling, reliability bins,
the learning-rate schedule and the terminal's last lines. Golden values are
computed here (numpy) or by an independent implementation (the Keras ECE
metric)."""

import json
import math

import numpy as np
import pytest

import ptloss_tf
from ptloss_tf.classification_report import reliability_bins
from ptloss_tf.training.config import DistillConfig
from ptloss_tf.training.distill import where_and_what_next
from ptloss_tf.training.train_method import learning_rate_schedule
from tests.helpers import tiny_synthetic_task


@pytest.mark.slow
def test_tiny_run_writes_report_png_and_the_bayes_ceiling(tiny_run):
    report = json.loads((tiny_run / "report.json").read_text())
    task = tiny_synthetic_task()
    bayes = np.mean(task.test.p_star.argmax(1) == task.test.examples.labels)
    assert report["bayes_accuracy"] == pytest.approx(bayes, abs=1e-12)
    assert report["teacher"]["bayes_accuracy"] == report["bayes_accuracy"]
    png = (tiny_run / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    for result in report["results"]:
        bins = result["reliability"]
        assert sum(bins["count"]) == len(task.test.examples.labels)


def test_reliability_bins_against_numpy_and_the_keras_ece(rng):
    probs = rng.dirichlet([0.7, 0.7, 0.7], size=500)
    labels = rng.integers(0, 3, size=500)
    bins = reliability_bins(probs, labels, num_bins=10)
    confidence = probs.max(1)
    index = np.minimum(np.floor(confidence * 10).astype(int), 9)
    correct = probs.argmax(1) == labels
    for b in range(10):
        members = index == b
        assert bins["count"][b] == members.sum()
        if members.any():
            assert bins["confidence"][b] == pytest.approx(confidence[members].mean())
            assert bins["accuracy"][b] == pytest.approx(correct[members].mean())
        else:
            assert bins["confidence"][b] is None and bins["accuracy"][b] is None
    # The count-weighted gap is the ECE of the library's Keras metric.
    ece = sum(n * abs(a - c) for n, a, c in zip(bins["count"], bins["accuracy"],
                                                bins["confidence"]) if n) / 500
    metric = ptloss_tf.metrics.ExpectedCalibrationError(num_bins=10)
    metric.update_state(labels, probs.astype(np.float32))
    assert ece == pytest.approx(float(metric.result()), abs=1e-5)
    unlabeled = reliability_bins(probs, np.where(np.arange(500) < 100, -1, labels), 10)
    assert sum(unlabeled["count"]) == 400


def test_cosine_schedule_with_warmup_against_its_formula():
    config = DistillConfig(epochs=3, batch_size=8, learning_rate=1e-3, warmup_fraction=0.2)
    schedule = learning_rate_schedule(config, num_train=100)   # 13 steps an epoch
    steps, warmup = 3 * 13, round(0.2 * 39)
    for step in range(0, steps + 5):
        if step < warmup:
            expected = 1e-3 * step / warmup
        else:
            progress = min(step - warmup, steps - warmup) / (steps - warmup)
            expected = 1e-3 * 0.5 * (1 + math.cos(math.pi * progress))
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-9), step
    assert learning_rate_schedule(config.replace(lr_schedule="constant"), 100) == 1e-3


def test_the_last_lines_name_the_files_and_the_export_of_the_best_validation_student():
    report = {"task": "synthetic", "wall_seconds": 97.0, "results": [
        {"method": "kl", "best_val_accuracy": 0.74, "accuracy": 0.99},   # best on test
        {"method": "ptloss", "best_val_accuracy": 0.77, "accuracy": 0.80}]}
    text = where_and_what_next("runs/x", report)
    assert "runs/x/report.json" in text and "runs/x/report.png" in text
    assert "Best validation accuracy: ptloss (0.7700)" in text
    assert text.splitlines()[-1] == (
        "  ptloss-export runs/x/ptloss/student.keras --base-path serving --name synthetic")
