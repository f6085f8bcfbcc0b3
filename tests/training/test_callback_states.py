"""A run killed right after an epoch's backup resumes with that epoch's
early-stopping and best-checkpoint state and history: the CLI's callbacks
write `callback_states.json` before the backup (`train_method.
training_callbacks`), and a resume that finds no state for an epoch the
backup holds is a one-line error instead of a run that forgets them.

(Found by tests/training/test_cli_mesh.py under load: killed between the
backup and the states file, a resumed run restarted its best checkpoint
from nothing, kept another epoch's weights and lost epoch 1's history.)"""

import types

import keras
import numpy as np
import pytest

import ptloss_tf
from ptloss_tf.callbacks import AtomicBackupAndRestore
from ptloss_tf.training.callback_states import CallbackStates
from ptloss_tf.training.train_method import training_callbacks

RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 4)).astype("float32")
TARGETS = {"teacher_probs": RNG.dirichlet([1.0, 1.0, 1.0], size=32).astype("float32"),
           "labels": RNG.integers(0, 3, size=32).astype("int32")}
CONFIG = types.SimpleNamespace(epochs=4, verbose=0, early_stopping_patience=2)


def _fit(method_dir, epochs=CONFIG.epochs):
    """A fresh "process": seeds, model, the CLI's callbacks, `fit`."""
    keras.utils.set_random_seed(0)
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.5),
                      distillation_loss=ptloss_tf.KLDivergence(from_logits=True))
    callbacks = training_callbacks(CONFIG, str(method_dir), [], method="kl", log=lambda _: None)
    history = distiller.fit(X, TARGETS, validation_data=(X, TARGETS), batch_size=8,
                            epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    states = next(c for c in callbacks if isinstance(c, CallbackStates))
    return states.full_history(history.history), student


def test_killed_right_after_a_backup_the_run_resumes_with_every_state(tmp_path, monkeypatch):
    want, uninterrupted = _fit(tmp_path / "whole")
    written = []
    write_backup = AtomicBackupAndRestore._write_backup

    def killed_after_the_second_backup(self):
        write_backup(self)
        written.append(self._current_epoch)
        if len(written) == 2:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(AtomicBackupAndRestore, "_write_backup", killed_after_the_second_backup)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "run")
    monkeypatch.undo()
    got, resumed = _fit(tmp_path / "run")
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6, err_msg=key)
    for a, b in zip(resumed.weights, uninterrupted.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)


def test_a_backup_without_the_states_of_its_epochs_is_refused(tmp_path):
    states = CallbackStates(str(tmp_path / "callback_states.json"),
                            [keras.callbacks.EarlyStopping()])
    with pytest.raises(ValueError, match="callback_states.json holds no callback state for "
                                         "epoch 0, before the one the run resumes at"):
        states.on_epoch_begin(2)
