import os

import keras
import numpy as np
import pytest

import ptloss_tf


def _distiller():
    keras.utils.set_random_seed(0)
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(optimizer="sgd", distillation_loss=ptloss_tf.KLDivergence(from_logits=True))
    return distiller


def test_a_kill_during_a_backup_write_keeps_the_previous_backup(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = {"teacher_probs": np.full((16, 2), 0.5, "float32")}
    backup = ptloss_tf.callbacks.AtomicBackupAndRestore(str(tmp_path), delete_checkpoint=False)
    distiller = _distiller()
    distiller.fit(x, y, epochs=1, verbose=0, callbacks=[backup])
    saved = [w.numpy().copy() for w in distiller.weights]
    good = (tmp_path / "latest.weights.h5").read_bytes()

    def dies_mid_write(filepath, overwrite=True):
        with open(filepath, "wb") as f:
            f.write(good[: len(good) // 3])  # a truncated HDF5 file
        raise KeyboardInterrupt("killed")

    distiller.save_weights = dies_mid_write
    with pytest.raises(KeyboardInterrupt):
        backup.set_model(distiller)
        backup._current_epoch = 1
        backup._save_model()
    assert (tmp_path / "latest.weights.h5").read_bytes() == good
    restarted = _distiller()
    restarted.fit(x, y, epochs=1, verbose=0,
                  callbacks=[ptloss_tf.callbacks.AtomicBackupAndRestore(str(tmp_path))])
    # Epoch 1 was already done: nothing trains, the weights are the backup's.
    for a, b in zip(saved, restarted.weights):
        np.testing.assert_allclose(a, b.numpy())
    assert not os.path.exists(tmp_path / "latest.weights.h5")  # deleted at the end


def _dropout_distiller():
    keras.utils.set_random_seed(0)
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
                                keras.layers.Dropout(0.5, seed=3), keras.layers.Dense(2)])
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.5),
                      distillation_loss=ptloss_tf.KLDivergence(from_logits=True))
    return distiller


def _fit_resumed(backup_dir, callback, x, y):
    """Two epochs, stopped after the first and resumed by a new model."""
    first = _dropout_distiller()
    first.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0,
              callbacks=[callback(str(backup_dir), delete_checkpoint=False)])
    resumed = _dropout_distiller()
    history = resumed.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0,
                          callbacks=[callback(str(backup_dir))])
    assert history.epoch == [1]
    return [w.numpy() for w in resumed.student.weights]


def test_a_resumed_fit_draws_the_uninterrupted_runs_dropout_masks(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = {"teacher_probs": rng.dirichlet([1.0, 1.0], size=16).astype("float32")}
    whole = _dropout_distiller()
    whole.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    expected = [w.numpy() for w in whole.student.weights]

    resumed = _fit_resumed(tmp_path / "atomic", ptloss_tf.callbacks.AtomicBackupAndRestore, x, y)
    for got, want in zip(resumed, expected):
        np.testing.assert_array_equal(got, want)
    # Keras' own callback restarts the dropout generator: other masks, other steps.
    keras_resumed = _fit_resumed(tmp_path / "keras", keras.callbacks.BackupAndRestore, x, y)
    assert max(np.abs(g - w).max() for g, w in zip(keras_resumed, expected)) > 1e-3


def test_a_backup_of_another_model_is_refused_by_name(tmp_path):
    x = np.zeros((4, 4), "float32")
    y = {"teacher_probs": np.full((4, 2), 0.5, "float32")}
    _dropout_distiller().fit(x, y, epochs=1, verbose=0, callbacks=[
        ptloss_tf.callbacks.AtomicBackupAndRestore(str(tmp_path), delete_checkpoint=False)])
    no_dropout = _distiller()
    no_dropout.load_weights = lambda path: None  # the weights' own check comes first in Keras
    with pytest.raises(ValueError, match="training_metadata.json holds 1 random-generator states; "
                                         "this model has 0"):
        no_dropout.fit(x, y, epochs=2, verbose=0, callbacks=[
            ptloss_tf.callbacks.AtomicBackupAndRestore(str(tmp_path))])
