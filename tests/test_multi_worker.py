"""Two-worker `MultiWorkerMirroredStrategy` training on loopback.

Two processes (tests/helpers/multi_worker_worker.py) form a cluster through
`TF_CONFIG`, each trains the same Distiller on its half of every global batch
(AutoShardPolicy.DATA, see the helper's docstring), and the test checks that
both end with the same weights, equal to one process training on the global
batches without any strategy.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers import multi_worker_worker as worker

pytestmark = pytest.mark.slow  # end-to-end / subprocess runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELPER = os.path.join(ROOT, "tests", "helpers", "multi_worker_worker.py")
TIMEOUT_S = 75


def _free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("localhost", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _run_workers(tmp_path, num_workers=2):
    ports = _free_ports(num_workers)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs, logs, outs = [], [], []
    for i in range(num_workers):
        env = dict(os.environ)
        env.update(
            TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}}
            ),
            TF_CPP_MIN_LOG_LEVEL="2",
            CUDA_VISIBLE_DEVICES="",
            PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""),
        )
        out = tmp_path / f"worker{i}.npz"
        log = open(tmp_path / f"worker{i}.log", "w+")
        procs.append(
            subprocess.Popen(
                [sys.executable, HELPER, str(out)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        logs.append(log)
        outs.append(out)

    def report():
        parts = []
        for i, log in enumerate(logs):
            log.flush()
            log.seek(0)
            parts.append(f"--- worker {i} (rc={procs[i].poll()}) ---\n{log.read()[-4000:]}")
        return "\n".join(parts)

    deadline = time.monotonic() + TIMEOUT_S
    try:
        while any(p.poll() is None for p in procs):
            # A worker that dies leaves the other waiting on collectives.
            if any(p.poll() not in (None, 0) for p in procs):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"workers timed out after {TIMEOUT_S}s\n{report()}")
            time.sleep(0.2)
        if any(p.poll() != 0 for p in procs):
            pytest.fail(f"a worker failed\n{report()}")
        return [np.load(o) for o in outs], report()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for log in logs:
            log.close()


def test_two_workers_match_single_process(tmp_path):
    results, log_text = _run_workers(tmp_path)
    expected_steps = worker.EPOCHS * worker.STEPS_PER_EPOCH
    for i, res in enumerate(results):
        assert int(res["replicas"]) == 2, log_text
        assert int(res["iterations"]) == expected_steps, log_text
        assert np.isfinite(res["loss"]).all()

    names = [f"arr_{i}" for i in range(4)]
    w0 = [results[0][n] for n in names]
    w1 = [results[1][n] for n in names]
    # The workers hold replicas of the same mirrored variables.
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)

    single, iterations = worker.train_single_process()
    assert iterations == expected_steps
    # Training moved the weights (otherwise equality would prove nothing).
    assert max(
        np.abs(a - b).max() for a, b in zip(single, worker.initial_weights())
    ) > 1e-2
    for a, b in zip(w0, single):
        # The all-reduce sums two half-batch gradients where the single
        # process sums one full batch: equal up to float rounding.
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
