"""Fault tolerance: SIGKILL a Distiller run mid-epoch, rerun, it resumes.

tests/helpers/backup_restore_worker.py trains with
`keras.callbacks.BackupAndRestore(save_freq=3)` (steps) and logs progress; the
test kills it with SIGKILL in the middle of epoch 1, runs the very same
command again and checks that the second run resumes from the backup (not
from step 0), finishes, and ends with finite weights.

Exactness. Keras 3.15's BackupAndRestore stores the weights (with the
optimizer state, `iterations` included) at the backed-up step, but only the
*epoch* is used to resume: the interrupted epoch restarts from its first
batch on the backed-up weights, so the batches of that epoch before the
backup are trained twice. The resumed run therefore does NOT equal the
uninterrupted run; it equals, exactly (deterministic data, no shuffle, same
kernels), "the first `s` steps, then epochs `e..EPOCHS-1`", where `s` is the
backed-up step and `e` the epoch the rerun starts in. The test checks that
equality, and if a future Keras resumes mid-epoch exactly (the final step
count equals EPOCHS * STEPS_PER_EPOCH), equality with the uninterrupted run
instead.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers import backup_restore_worker as worker

pytestmark = pytest.mark.slow  # end-to-end / subprocess runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELPER = os.path.join(ROOT, "tests", "helpers", "backup_restore_worker.py")
SLEEP_S = 0.08  # per step, so the kill lands mid-epoch
KILL_AT_ITERATION = 14  # epoch 1, batch 3 (10 steps per epoch)
RUN_TIMEOUT_S = 60


def _read_progress(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read()
    # Only complete lines: the writer may be killed mid-line.
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def _runs(records):
    """Splits the progress records into runs (each starts with "begin")."""
    runs = []
    for r in records:
        if r["event"] == "begin":
            runs.append([])
        if runs:
            runs[-1].append(r)
    return runs


def _start(cmd, log_path):
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    log = open(log_path, "w")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT), log


def _log_tail(log_path):
    with open(log_path) as f:
        return f.read()[-4000:]


def test_sigkill_mid_epoch_then_resume(tmp_path):
    backup_dir = tmp_path / "backup"
    progress = tmp_path / "progress.jsonl"
    out = tmp_path / "weights.npz"
    cmd = [sys.executable, HELPER, str(backup_dir), str(progress), str(out),
           str(SLEEP_S)]

    # 1. First run: kill it with SIGKILL once it is past KILL_AT_ITERATION.
    log1 = tmp_path / "run1.log"
    proc, log = _start(cmd, log1)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            batches = [r for r in _read_progress(progress) if r["event"] == "batch"]
            if batches and batches[-1]["iterations"] >= KILL_AT_ITERATION:
                proc.send_signal(signal.SIGKILL)
                break
            if proc.poll() is not None:
                pytest.fail(f"run 1 exited (rc={proc.returncode}) before the "
                            f"kill\n{_log_tail(log1)}")
            if time.monotonic() > deadline:
                pytest.fail(f"run 1 too slow to reach step {KILL_AT_ITERATION}"
                            f"\n{_log_tail(log1)}")
            time.sleep(0.01)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    runs = _runs(_read_progress(progress))
    assert len(runs) == 1 and runs[0][0]["iterations"] == 0
    killed_at = [r for r in runs[0] if r["event"] == "batch"][-1]
    assert killed_at["epoch"] >= 1
    assert killed_at["batch"] < worker.STEPS_PER_EPOCH - 1, "killed at an epoch end"
    assert not any(r["event"] == "end" for r in runs[0])
    assert not out.exists()
    assert (backup_dir / "latest.weights.h5").exists()

    # 2. The same command again: it must resume from the backup and finish.
    log2 = tmp_path / "run2.log"
    proc, log = _start(cmd, log2)
    try:
        rc = proc.wait(RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(f"resumed run timed out\n{_log_tail(log2)}")
    finally:
        log.close()
    assert rc == 0, _log_tail(log2)
    runs = _runs(_read_progress(progress))
    assert len(runs) == 2, _log_tail(log2)
    resumed = runs[1]
    resumed_from = resumed[0]["iterations"]
    resumed_epoch = next(r["epoch"] for r in resumed if r["event"] == "epoch")
    first_batch = next(r for r in resumed if r["event"] == "batch")
    # Not from zero: the optimizer step and the epoch come from the backup.
    assert resumed_from > 0
    assert resumed_epoch >= 1
    assert first_batch["iterations"] == resumed_from + 1
    # The backup the run resumed from is the last one before the kill,
    # i.e. taken mid-epoch, and not after the kill point.
    assert resumed_from <= killed_at["iterations"] + 1  # +1: kill between save and log
    assert killed_at["iterations"] - resumed_from < worker.SAVE_FREQ
    assert resumed_from % worker.STEPS_PER_EPOCH != 0
    assert resumed_epoch == resumed_from // worker.STEPS_PER_EPOCH
    end = resumed[-1]
    assert end["event"] == "end" and end["finite"], resumed[-3:]
    assert end["epochs_run"] == worker.EPOCHS - resumed_epoch
    # BackupAndRestore deletes its backup when training completes.
    assert not backup_dir.exists()
    with np.load(out) as f:
        final = [f[f"arr_{i}"] for i in range(len(f.files))]
    assert all(np.isfinite(w).all() for w in final)

    # 3. Compare with uninterrupted in-process training (see module docstring).
    full_steps = worker.EPOCHS * worker.STEPS_PER_EPOCH
    uninterrupted, steps = worker.train_reference()
    assert steps == full_steps
    if end["iterations"] == full_steps:
        expected = uninterrupted  # exact mid-epoch resume
    else:
        # Keras 3.15: the interrupted epoch is replayed from its start.
        assert end["iterations"] == resumed_from + (
            worker.EPOCHS - resumed_epoch) * worker.STEPS_PER_EPOCH
        expected, steps = worker.train_reference(resumed_from, resumed_epoch)
        assert steps == end["iterations"]
        # ... which is a different trajectory from the uninterrupted one.
        assert max(np.abs(a - b).max() for a, b in zip(expected, uninterrupted)) > 1e-4
    for a, b in zip(final, expected):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
