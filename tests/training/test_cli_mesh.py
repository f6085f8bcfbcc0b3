"""`ptloss-distill --prepared-data DIR --distribution ...` under JAX, as a
user runs it: on 2 forced host devices (data parallel, model parallel) and
in two processes on a loopback coordinator, one epoch ends at the
single-device student (the tolerance: tests/test_jax_distribution.py's
1e-5, for the same reason: only the order of float32 sums changes); two
processes killed mid-run resume to the uninterrupted run's students; a bad
mesh is a one-line error before anything is written."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.helpers import TINY_RUN
from tests.helpers import free_port
from tests.helpers import jax_env

pytestmark = pytest.mark.slow  # subprocesses

ATOL = 1e-5
CLI = [sys.executable, "-m", "ptloss_tf.training"]
# 150 training rows in batches of 32: a partial last batch per bucket, so
# padding rows of weight 0 are exercised.
SIZES = ["--synthetic-train", "150"]
METHODS = ["--loss", "kl", "ptloss", "--epochs", "1"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mesh") / "prepared"
    step = subprocess.run(CLI + ["prepare", *TINY_RUN, *SIZES, *METHODS, "--output-dir", str(folder)],
                          capture_output=True, text=True, timeout=600)
    assert step.returncode == 0, step.stderr[-2000:]
    return folder


def _distill(prepared, out, *args, devices=None):
    step = subprocess.run(CLI + ["--prepared-data", str(prepared), "--output-dir", str(out),
                                 "--verbose", "0", *METHODS, *args], capture_output=True,
                          text=True,
                          env=jax_env(devices), timeout=900)
    return step


@pytest.fixture(scope="module")
def single(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    step = _distill(prepared, out)
    assert step.returncode == 0, step.stderr[-2000:]
    return out


def _weights(run, method):
    model = keras.saving.load_model(run / method / "student.keras", compile=False)
    return {v.path: np.asarray(v) for v in model.weights}


def _assert_same_run(run, reference):
    report = json.loads((run / "report.json").read_text())
    expected = json.loads((reference / "report.json").read_text())
    for got, want in zip(report["results"], expected["results"]):
        assert got["method"] == want["method"]
        assert got["accuracy"] == want["accuracy"]
        assert got["prediction_counts"] == want["prediction_counts"]
        assert got["nll"] == pytest.approx(want["nll"], abs=1e-5)
        assert got["epochs_run"] == want["epochs_run"]
        assert got["best_val_accuracy"] == pytest.approx(want["best_val_accuracy"], abs=1e-6)
        # Every logged mean (loss, val_loss, the metrics) too: the running
        # means weigh a batch by its real rows, not the mesh's padding rows.
        history, history_want = (json.loads((r / got["method"] / "history.json").read_text())
                                 for r in (run, reference))
        assert history.keys() == history_want.keys()
        for key in history_want:
            np.testing.assert_allclose(history[key], history_want[key], rtol=0, atol=ATOL,
                                       err_msg=key)
        a, b = _weights(run, got["method"]), _weights(reference, got["method"])
        assert a.keys() == b.keys()
        for path in a:
            np.testing.assert_allclose(a[path], b[path], rtol=0, atol=ATOL, err_msg=path)
    return report


@pytest.mark.parametrize("args, shape", [
    (["--distribution", "data_parallel"], [2]),
    (["--distribution", "model_parallel"], [1, 2]),
])
def test_a_mesh_of_two_devices_ends_at_the_single_device_students(prepared, single, tmp_path,
                                                                  args, shape):
    step = _distill(prepared, tmp_path / "run", *args, devices=2)
    assert step.returncode == 0, step.stderr[-2000:]
    report = _assert_same_run(tmp_path / "run", single)
    mesh = report["hardware"]["mesh"]
    assert mesh["shape"] == shape and mesh["devices"] == 2 and mesh["processes"] == 1
    assert report["hardware"]["strategy"] == "MeshStrategy"


def test_two_processes_on_a_loopback_coordinator_give_the_one_process_students(
        prepared, single, tmp_path):
    out = tmp_path / "run"
    procs = _two_processes(prepared, out)
    outputs = [p.communicate(timeout=900) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    report = _assert_same_run(out, single)
    assert report["hardware"]["mesh"]["processes"] == 2
    # Process 0 alone writes: its log names the files, process 1's does not.
    assert "Wrote" in outputs[0][0] and "Wrote" not in outputs[1][0]


def _two_processes(prepared, out, *extra):
    args = CLI + ["--prepared-data", str(prepared), "--output-dir", str(out), "--verbose", "0",
                  *METHODS, *extra, "--distribution", "data_parallel", "--coordinator",
                  f"127.0.0.1:{free_port()}", "--num-processes", "2"]
    return [subprocess.Popen(args + ["--process-id", str(i)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=jax_env())
            for i in range(2)]


def test_two_processes_killed_mid_run_resume_from_the_same_backup(prepared, tmp_path):
    # Killed (both processes, SIGKILL) once the first method is finished and
    # the second has a backup; the same two commands then finish the run.
    # Every process must restart from that one backup (process 0 wrote it):
    # one restarting from scratch, or from another epoch, would give other
    # global batches and weights than the uninterrupted one-process run.
    import signal
    import time

    three_epochs = ["--epochs", "3"]
    reference = _distill(prepared, tmp_path / "reference", *three_epochs)
    assert reference.returncode == 0, reference.stderr[-2000:]
    out = tmp_path / "run"
    procs = _two_processes(prepared, out, *three_epochs)
    deadline = time.time() + 600
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if ((out / "kl" / "result.json").exists()
                and (out / "ptloss" / "backup" / "training_metadata.json").exists()):
            break
        time.sleep(0.1)
    assert all(p.poll() is None for p in procs), "the run ended before it could be interrupted"
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
    assert not (out / "report.json").exists()
    assert json.loads((out / "run_state.json").read_text())["finished"] == ["kl"]
    procs = _two_processes(prepared, out, *three_epochs)
    outputs = [p.communicate(timeout=900) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    assert "kl: already finished" in outputs[0][0]
    _assert_same_run(out, tmp_path / "reference")
    # The history spans the epochs before the kill too (_assert_same_run
    # compares every logged mean, all 3 epochs, at ATOL).
    got = json.loads((out / "ptloss" / "history.json").read_text())
    assert len(got["loss"]) == len(got["val_accuracy"]) == 3


@pytest.mark.parametrize("args, devices, message", [
    (["--distribution", "data_parallel", "--batch-size", "7"], 2,
     "--batch-size 7 does not divide over the 2 devices of the mesh's batch axis"),
    (["--distribution", "model_parallel", "--model-parallel", "2", "--devices", "1"], 2,
     "--model-parallel (2) must divide the 1 devices"),
    (["--distribution", "data_parallel", "--num-processes", "2"], 2,
     "--coordinator, --num-processes and --process-id go together"),
    (["--devices", "2"], 2, "--devices needs --distribution"),
])
def test_a_bad_mesh_is_a_one_line_error_and_writes_nothing(prepared, tmp_path, args, devices,
                                                           message):
    step = _distill(prepared, tmp_path / "run", *args, devices=devices)
    assert step.returncode == 2
    err = step.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0], step.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_distribution_needs_jax(prepared, tmp_path):
    step = subprocess.run(CLI + ["--prepared-data", str(prepared), "--output-dir",
                                 str(tmp_path / "run"), "--distribution", "data_parallel"],
                          capture_output=True, text=True,
                          env=dict(os.environ, KERAS_BACKEND="tensorflow"), timeout=600)
    assert step.returncode == 2
    assert "--distribution is keras.distribution, which runs under JAX" in step.stderr
