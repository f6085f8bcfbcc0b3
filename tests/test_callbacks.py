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
