"""`ptloss-distill` end to end under `--strategy mirrored` and
`--mixed-precision`, on the tiny synthetic settings of test_cli.py."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.helpers import TINY_RUN as TINY
from ptloss_tf.training.cli import main

pytestmark = pytest.mark.slow  # end-to-end / subprocess runs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WRAPPER = os.path.join(ROOT, "tests", "helpers", "logical_cpus_cli.py")
# Deterministic and evenly divisible: no dropout, and 160 training rows
# padded to one length (--no-bucketing) form 5 full batches of 32, which a
# 2-replica MirroredStrategy splits into 2 x 16 (uneven splits of partial
# bucket batches weight the per-replica means differently, as Keras does).
EXACT = ["--dropout", "0", "--no-bucketing"]
# The first-epoch training loss of the two runs: the mean over 5 AdamW steps
# (lr 2e-3) from the same initial weights on the same batches. The only
# difference left is float32 summation order (the mirrored step all-reduces
# two 16-example gradients instead of summing 32 per-example terms): about
# 1e-7 relative per step, which moved the weights by ~1e-7 and the losses by
# less than 1e-6 in a side-by-side check. A real difference is far larger:
# batches in another order (Keras' `fit` under a strategy draws an extra
# shuffle, see `align_data_order_across_strategies`) moved this loss by
# 9e-4 and the first step's loss by 0.045; a loss summed instead of
# averaged over replicas doubles it. 1e-5 separates the two.
LOSS_TOLERANCE = 1e-5


def _report(out):
    return json.loads((out / "report.json").read_text())


def _history(out, method):
    return json.loads((out / method / "history.json").read_text())


def _assert_finite_report(report):
    for r in report["results"]:
        for key in ("accuracy", "nll", "ece", "teacher_agreement", "kl_to_p_star"):
            assert np.isfinite(r[key]), (r["method"], key)


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    """`--strategy mirrored` with 2 methods in a subprocess with 2 logical CPUs."""
    out = tmp_path_factory.mktemp("mirrored") / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, WRAPPER, *TINY, *EXACT, "--strategy", "mirrored",
         "--loss", "kl", "ptloss", "--output-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=420,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


def test_mirrored_run_uses_two_replicas_for_every_method(mirrored_run):
    out, stdout = mirrored_run
    report = _report(out)
    assert report["hardware"]["strategy"] == "MirroredStrategy"
    assert report["hardware"]["replicas"] == 2
    assert [r["method"] for r in report["results"]] == ["kl", "ptloss"]
    # One strategy for the whole run: the second method trains under it too
    # (a second MirroredStrategy in the same process would clash).
    assert [r["replicas"] for r in report["results"]] == [2, 2]
    assert stdout.count("on 2 replica(s) (MirroredStrategy") == 2
    _assert_finite_report(report)
    student = keras.saving.load_model(out / "ptloss" / "student.keras")
    assert student.preprocessor is not None and student.output_shape[-1] == 2


def test_mirrored_first_epoch_loss_matches_the_default_strategy(mirrored_run, tmp_path):
    out_mirrored, _ = mirrored_run
    out_default = tmp_path / "default"
    assert main(TINY + EXACT + ["--loss", "kl", "--output-dir", str(out_default)]) == 0
    assert _report(out_default)["hardware"]["replicas"] == 1
    mirrored, default = _history(out_mirrored, "kl"), _history(out_default, "kl")
    assert mirrored["loss"][0] == pytest.approx(default["loss"][0], abs=LOSS_TOLERANCE)
    assert mirrored["distillation_loss"][0] == pytest.approx(
        default["distillation_loss"][0], abs=LOSS_TOLERANCE)
    # After the epoch the weights agree too: the validation loss matches.
    assert mirrored["val_loss"][0] == pytest.approx(default["val_loss"][0],
                                                    abs=LOSS_TOLERANCE)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_run_saves_float32_variables(tmp_path, precision):
    out = tmp_path / "out"
    assert main(TINY + ["--mixed-precision", precision, "--loss", "kl",
                        "--output-dir", str(out)]) == 0
    # The run's global dtype policy does not leak into the rest of the process.
    assert keras.config.dtype_policy().name == "float32"
    report = _report(out)
    assert report["hardware"]["dtype_policy"] == f"mixed_{precision}"
    _assert_finite_report(report)
    assert np.isfinite(_history(out, "kl")["loss"]).all()
    student = keras.saving.load_model(out / "kl" / "student.keras")
    # Mixed precision really was on (bfloat16/float16 compute)...
    assert student.backbone.dtype_policy.name == f"mixed_{precision}"
    assert student.backbone.compute_dtype == precision
    # ... and every saved variable is float32.
    assert student.weights
    assert {w.dtype for w in student.weights} == {"float32"}
    samples = json.loads((out / "samples.json").read_text())
    logits = student.predict(np.asarray([t[0] for t in samples["texts"]]), verbose=0)
    assert np.isfinite(np.asarray(logits, np.float32)).all()
