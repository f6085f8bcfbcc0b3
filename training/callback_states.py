"""`CallbackStates`: the state of the early stopping and of the best-weights
checkpoint, kept across a resumed `fit`.

Keras' `BackupAndRestore` brings back the weights, the optimizer and the
epoch, but not the other callbacks: after a restart `EarlyStopping` would
count its patience from zero and `ModelCheckpoint(save_best_only=True)`
would take the first resumed epoch as the best so far, even when an epoch
before the interruption was better. A resumed run would then stop at
another epoch and keep other weights than the uninterrupted run.
"""

import json
import os

import keras

from ptloss_tf.io_utils import atomic_write_json

#: What each kind of callback needs to continue as if never stopped.
STATE_ATTRIBUTES = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch"),
    keras.callbacks.ModelCheckpoint: ("best",),
}


class CallbackStates(keras.callbacks.Callback):
    """Records `callbacks`' states and the epoch's logs after every epoch in
    `path` (a JSON file, one entry per epoch, written atomically) and puts
    the states back when `fit` starts past epoch 0 (resumed by
    `BackupAndRestore`); `full_history` gives the whole run's history,
    the epochs before the restart included.

    The entry read is the one of the epoch before the first resumed one, so
    a kill between this file's write and the backup's cannot mix two epochs.
    Place it after the callbacks it records (their `on_epoch_end` runs
    first) and before the `BackupAndRestore`: then every epoch the backup
    holds has its entry here, and a resumed fit without one (a backup
    written before this file) is an error, not a run that silently forgets
    the epochs before the restart.

    Args:
        path: the JSON file.
        callbacks: `EarlyStopping` and `ModelCheckpoint` instances.
        write: False where another process writes the file (a mesh's
            processes other than 0); every process reads it.

    Example:
    >>> import os, tempfile
    >>> stop = keras.callbacks.EarlyStopping(patience=3)
    >>> path = os.path.join(tempfile.mkdtemp(), "states.json")
    >>> states = CallbackStates(path, [stop])
    >>> stop.wait, stop.best, stop.best_epoch = 2, 0.25, 4
    >>> for epoch in range(7):
    ...     states.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    >>> stop.wait, stop.best = 0, float("inf")  # a restart resets them
    >>> states = CallbackStates(path, [stop])
    >>> states.on_epoch_begin(7)
    >>> stop.wait, stop.best, stop.best_epoch
    (2, 0.25, 4)
    >>> states.full_history({"loss": [0.125]})["loss"][-2:]
    [0.14285714285714285, 0.125]
    """

    def __init__(self, path, callbacks, write=True):
        super().__init__()
        self.path = path
        self.recorded = [c for c in callbacks if _attributes(c)]
        self.write = write
        self._first_epoch = True
        self.earlier_logs = []

    def on_epoch_begin(self, epoch, logs=None):
        if not self._first_epoch:
            return
        self._first_epoch = False
        if epoch == 0:
            return
        states = {}
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                states = json.load(f)
        missing = [e for e in range(epoch) if str(e) not in states]
        if missing:
            raise ValueError(f"{self.path} holds no callback state for epoch {missing[0]}, "
                             f"before the one the run resumes at ({epoch}); delete the "
                             "method's directory to restart it.")
        for callback, values in zip(self.recorded, states[str(epoch - 1)]["callbacks"]):
            for name, value in values.items():
                setattr(callback, name, value)
        self.earlier_logs = [states[str(e)]["logs"] for e in range(epoch)]

    def on_epoch_end(self, epoch, logs=None):
        if not self.write:
            return
        states = {}
        if epoch > 0 and os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                states = json.load(f)
        states[str(epoch)] = {
            "callbacks": [{name: _plain(getattr(callback, name))
                           for name in _attributes(callback)} for callback in self.recorded],
            "logs": {k: _plain(v) for k, v in (logs or {}).items()},
        }
        atomic_write_json(self.path, states)

    def full_history(self, history):
        """`history` (a `History.history` dict of this `fit`) with the epochs
        before a restart in front: the uninterrupted run's history."""
        keys = list(history) or sorted({k for logs in self.earlier_logs for k in logs})
        return {k: [logs.get(k) for logs in self.earlier_logs] + list(history.get(k, []))
                for k in keys}


def _attributes(callback):
    for kind, names in STATE_ATTRIBUTES.items():
        if isinstance(callback, kind):
            return names
    return ()


def _plain(value):
    """A JSON number (numpy scalars and infinities included: Python's json
    writes `Infinity`, which it reads back)."""
    return None if value is None else float(value) if not isinstance(value, int) else value
