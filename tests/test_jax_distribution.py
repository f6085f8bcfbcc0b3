"""`keras.distribution` under JAX (`ptloss_tf.distribution`): one epoch of
the `Distiller` on a device mesh, or in two processes on a loopback
coordinator, ends at the single-device weights; `PreparedBatches` gives
every process its slice of the same global batches; a bad mesh is a
one-line error before training.

Tolerance of the weight comparisons: 1e-5 absolute. The runs see the same
global batches and the same initial weights; a mesh only changes the order
of float32 sums (the all-reduce of the gradients, the sharded matmuls), a
relative 1e-7 per step (measured: 1.2e-7, one unit in the last place at
the weights' magnitude of about 1). Five AdamW steps at 1e-2 cannot grow
that past 1e-5, while one different batch or a wrongly weighted padded
row moves weights by 1e-3 or more.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from ptloss_tf.training.data.prepared_batches import PreparedBatches
from tests.helpers import free_port
from tests.helpers import jax_env

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")
WORKER = os.path.join(HELPERS, "jax_mesh_worker.py")
ATOL = 1e-5


def _train(tmp_path, name, *args, devices=None):
    out = tmp_path / f"{name}.npz"
    result = subprocess.run([sys.executable, WORKER, str(out), *args], capture_output=True,
                            text=True, env=jax_env(devices), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(out))


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for path in a:
        np.testing.assert_allclose(a[path], b[path], rtol=0, atol=ATOL, err_msg=path)


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("single"), "single")


@pytest.mark.slow
def test_data_parallel_on_two_devices_ends_at_the_single_device_weights(single_device,
                                                                       tmp_path):
    import jax  # noqa: F401  (the test extra installs it: a missing JAX fails)

    weights = _train(tmp_path, "dp", "--distribution", "data_parallel", devices=2)
    _assert_same_weights(weights, single_device)


@pytest.mark.slow
def test_dist_on_two_devices_ignores_the_padding_rows_of_its_batch_term(tmp_path):
    # 37 rows in batches of 8: the last batch (5 rows) gets one padding row
    # on 2 devices. DIST correlates over the batch, so the padding row
    # would change every weight unless its sample weight 0 removes it.
    single = _train(tmp_path, "dist_single", "--loss", "dist")
    weights = _train(tmp_path, "dist_dp", "--distribution", "data_parallel", "--loss", "dist",
                     devices=2)
    _assert_same_weights(weights, single)


@pytest.mark.slow
def test_model_parallel_mesh_ends_at_the_single_device_weights(single_device, tmp_path):
    weights = _train(tmp_path, "mp", "--distribution", "model_parallel", "--devices", "4",
                     "--model-parallel", "2", devices=4)
    _assert_same_weights(weights, single_device)


@pytest.mark.slow
def test_two_processes_on_a_loopback_coordinator_give_the_one_process_weights(
        single_device, tmp_path):
    coordinator = f"127.0.0.1:{free_port()}"
    procs = [subprocess.Popen(
        [sys.executable, WORKER, str(tmp_path / f"p{i}.npz"), "--distribution",
         "data_parallel", "--coordinator", coordinator, "--num-processes", "2",
         "--process-id", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=jax_env()) for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    # Only process 0 writes.
    assert not (tmp_path / "p1.npz").exists()
    _assert_same_weights(dict(np.load(tmp_path / "p0.npz")), single_device)


@pytest.mark.slow
@pytest.mark.parametrize("args, devices, message", [
    (["--distribution", "data_parallel", "--batch-size", "7"], 2,
     "`batch_size` 7 does not divide over the 2 devices"),
    (["--distribution", "model_parallel", "--devices", "4", "--model-parallel", "4"], 4,
     "the student's num_heads (2) does not divide over the 4 devices"),
    (["--distribution", "model_parallel", "--devices", "4", "--model-parallel", "3"], 4,
     "must divide the 4 devices"),
    (["--distribution", "data_parallel", "--devices", "3"], 2, "`devices` must lie in [1, 2]"),
])
def test_a_bad_mesh_is_a_one_line_error_before_training(tmp_path, args, devices, message):
    result = subprocess.run([sys.executable, WORKER, str(tmp_path / "w.npz"), *args],
                            capture_output=True, text=True, env=jax_env(devices), timeout=600)
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.slow
def test_a_layout_key_that_matches_no_variable_is_refused():
    code = (
        "import keras, keras_hub\n"
        "from ptloss_tf.distribution import bert_layout_map, check_layout, make_distribution\n"
        "mesh = make_distribution('model_parallel').device_mesh\n"
        "bad = keras.distribution.ModelParallel(layout_map=bert_layout_map(\n"
        "    mesh, {'.*encoder_block/kernel': (None, 'model')}), batch_dim_name='batch')\n"
        "model = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=1, num_heads=2,\n"
        "    hidden_dim=8, intermediate_dim=16, max_sequence_length=8)\n"
        "check_layout(bad, model)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=jax_env(2), timeout=600)
    assert result.returncode != 0
    assert ("layout key '.*encoder_block/kernel' matches no variable"
            in result.stderr.strip().splitlines()[-1])


def _tokens(n, length=6, seed=0):
    rng = np.random.default_rng(seed)
    mask = (np.arange(length)[None] < rng.integers(2, length + 1, n)[:, None]).astype(np.int32)
    return {"token_ids": rng.integers(5, 50, (n, length)) * mask,
            "segment_ids": np.zeros((n, length), np.int32), "padding_mask": mask}


@pytest.mark.parametrize("processes, multiple", [(1, 2), (2, 2), (2, 4), (4, 4)])
def test_every_process_gets_its_slice_of_the_same_global_batches(processes, multiple):
    n, batch = 29, 8
    tokens = _tokens(n)
    row = {"row": np.arange(n)}
    reference = PreparedBatches(tokens, row, batch, shuffle=True, seed=4, bucket_boundaries="auto")
    shards = [PreparedBatches(tokens, row, batch, shuffle=True, seed=4, bucket_boundaries="auto",
                              pad_to_multiple=multiple, process_index=i,
                              process_count=processes) for i in range(processes)]
    for epoch in range(2):
        assert all(len(s) == len(reference) for s in shards)
        for b in range(len(reference)):
            x_ref, y_ref = reference[b]
            pieces = [s[b] for s in shards]
            rows = np.concatenate([y["row"] for _, y, _ in pieces])
            weights = np.concatenate([w for _, _, w in pieces])
            real = len(y_ref["row"])
            padded = -(-real // multiple) * multiple
            assert len(rows) == padded and all(len(y["row"]) == padded // processes
                                               for _, y, _ in pieces)
            # The real rows, in order, are the unpadded batch; pads weigh 0.
            np.testing.assert_array_equal(rows[:real], y_ref["row"])
            np.testing.assert_array_equal(weights[:real], 1.0)
            np.testing.assert_array_equal(weights[real:], 0.0)
            # A mean_with_sample_weight over the padded batch is the unpadded mean.
            values = np.random.default_rng(b).normal(size=n)
            assert np.sum(weights * values[rows]) / np.sum(weights) == pytest.approx(
                values[y_ref["row"]].mean())
            for key in x_ref:
                got = np.concatenate([x[key] for x, _, _ in pieces])
                np.testing.assert_array_equal(got[:real], x_ref[key])
        reference.on_epoch_end()
        for s in shards:
            s.on_epoch_end()


def test_real_rows_drop_the_padding_of_predictions():
    tokens = _tokens(11)
    batches = PreparedBatches(tokens, None, 4, pad_to_multiple=4)
    ids = np.concatenate([batches[i]["token_ids"][:, 0] for i in range(len(batches))])
    np.testing.assert_array_equal(ids[batches.real_rows()], tokens["token_ids"][:, 0])
    assert len(ids) == 12 and batches.real_rows().sum() == 11


@pytest.mark.parametrize("kwargs, message", [
    ({"process_index": 2, "process_count": 2}, "process_index 2 must lie in [0, 2)"),
    ({"pad_to_multiple": 3, "process_count": 2}, "must be a positive multiple of process_count"),
])
def test_bad_process_slices_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        PreparedBatches(_tokens(5), None, 4, **kwargs)
