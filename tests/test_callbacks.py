import json
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


@pytest.mark.parametrize("dies", ["during the weights write", "before the metadata commit"])
def test_a_kill_during_a_backup_write_keeps_the_previous_backup(tmp_path, monkeypatch, dies):
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = {"teacher_probs": np.full((16, 2), 0.5, "float32")}
    backup = ptloss_tf.callbacks.AtomicBackupAndRestore(str(tmp_path), delete_checkpoint=False)
    distiller = _distiller()
    distiller.fit(x, y, epochs=1, verbose=0, callbacks=[backup])
    saved = [w.numpy().copy() for w in distiller.weights]
    metadata = (tmp_path / "training_metadata.json").read_text()
    weights_file = tmp_path / json.loads(metadata)["weights"]
    good = weights_file.read_bytes()
    distiller.fit(x, y, epochs=1, verbose=0)  # other weights for the next backup

    if dies == "during the weights write":
        def save_weights(filepath, overwrite=True):
            with open(filepath, "wb") as f:
                f.write(good[: len(good) // 3])  # a truncated HDF5 file
            raise KeyboardInterrupt("killed")

        distiller.save_weights = save_weights
    else:  # the new weights are complete; the metadata's rename never happens
        real_replace = os.replace

        def replace(src, dst):
            if str(dst).endswith("training_metadata.json"):
                raise KeyboardInterrupt("killed")
            real_replace(src, dst)

        monkeypatch.setattr(ptloss_tf.callbacks.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        backup.set_model(distiller)
        backup._current_epoch = 2
        backup._save_model()
    monkeypatch.undo()
    assert weights_file.read_bytes() == good
    assert (tmp_path / "training_metadata.json").read_text() == metadata
    restarted = _distiller()
    history = restarted.fit(x, y, epochs=1, verbose=0, callbacks=[
        ptloss_tf.callbacks.AtomicBackupAndRestore(str(tmp_path))])
    # Epoch 1 was already done: nothing trains, the weights are the backup's
    # (with Keras' in-place or two-rename writes, the second case restored
    # the new weights under epoch 1's count).
    assert history.epoch == []
    for a, b in zip(saved, restarted.weights):
        np.testing.assert_allclose(a, b.numpy())
    assert not os.path.exists(tmp_path / "training_metadata.json")  # deleted at the end


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
