"""A resumed `fit` trains on the uninterrupted run's batches: the callback
of `datasets.data_order_callback` puts a restarted process's reshuffled
`tf.data` pipeline at the epoch it resumes at (`PreparedBatches`' own
resume is tested in tests/training/test_prepared_data.py and
test_cli_mesh.py).

Each "process" builds its own dataset and model from the same seeds, as a
killed and restarted `ptloss-distill` does; the reference is one
uninterrupted three-epoch fit. SGD on a linear student makes the weights a
function of the batch order, so the weights agree exactly only when every
resumed epoch saw the uninterrupted run's batches in its order."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import ptloss_tf
from ptloss_tf.callbacks import AtomicBackupAndRestore
from ptloss_tf.training.datasets import data_order_callback

ROWS, BATCH, EPOCHS = 24, 4, 3
RNG = np.random.default_rng(0)
X = RNG.normal(size=(ROWS, 4)).astype("float32")
PROBS = RNG.dirichlet([1.0, 1.0, 1.0], size=ROWS).astype("float32")


def _tf_data(known_cardinality):
    ds = tf.data.Dataset.from_tensor_slices((X, {"teacher_probs": PROBS}))
    ds = ds.shuffle(ROWS, seed=7, reshuffle_each_iteration=True).batch(BATCH)
    if not known_cardinality:  # as a bucketed pipeline without assert_cardinality
        ds = ds.filter(lambda x, y: True)
        assert int(ds.cardinality()) < 0
    return ds


def _process(make_data, epochs, backup, with_callback=True, strategy=None):
    """A fresh "process": seeds, dataset, model, then `fit` to `epochs`."""
    keras.utils.set_random_seed(0)
    data = make_data()
    with (strategy or tf.distribute.get_strategy()).scope():
        student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        distiller = ptloss_tf.Distiller(student)
        distiller.compile(optimizer=keras.optimizers.SGD(0.5),
                          distillation_loss=ptloss_tf.KLDivergence(from_logits=True))
    callbacks = [data_order_callback(data)] if with_callback else []
    if backup is not None:
        callbacks.append(AtomicBackupAndRestore(str(backup), delete_checkpoint=False))
    distiller.fit(data, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)
    return [w.numpy() for w in student.weights]


def _resumed(make_data, backup, with_callback=True, strategy=None):
    _process(make_data, 1, backup, with_callback, strategy)  # killed after epoch 1
    return _process(make_data, EPOCHS, backup, with_callback, strategy)  # the same command again


@pytest.mark.parametrize("make_data", [
    pytest.param(lambda: _tf_data(True), id="tf.data, known cardinality"),
    pytest.param(lambda: _tf_data(False), id="tf.data, unknown cardinality"),
])
def test_a_resumed_fit_ends_at_the_uninterrupted_weights(make_data, tmp_path):
    whole = _process(make_data, EPOCHS, None)
    resumed = _resumed(make_data, tmp_path / "backup")
    for got, want in zip(resumed, whole):
        np.testing.assert_array_equal(got, want)
    # Without the callback the restarted process trains on other orders.
    other = _resumed(make_data, tmp_path / "backup_without", with_callback=False)
    assert max(np.abs(g - w).max() for g, w in zip(other, whole)) > 1e-4


def test_under_a_mirrored_strategy_too(mirrored_strategy, tmp_path):
    # Keras iterates the distributed dataset, built from `train`: the
    # iterators the callback makes of `train` advance the same orders.
    make_data = lambda: _tf_data(True)  # noqa: E731
    whole = _process(make_data, EPOCHS, None, strategy=mirrored_strategy)
    resumed = _resumed(make_data, tmp_path / "backup", strategy=mirrored_strategy)
    for got, want in zip(resumed, whole):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    other = _resumed(make_data, tmp_path / "backup_without", with_callback=False,
                     strategy=mirrored_strategy)
    assert max(np.abs(g - w).max() for g, w in zip(other, whole)) > 1e-4
