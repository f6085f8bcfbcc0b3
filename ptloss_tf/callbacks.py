"""`AtomicBackupAndRestore`: `BackupAndRestore` whose backups survive a kill
and resume with the dropout masks of an uninterrupted run."""

import json
import os

import keras
import numpy as np

from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.io_utils import save_atomically


#: The two weight files a backup alternates between (see `AtomicBackupAndRestore`).
WEIGHT_FILES = ("backup_a.weights.h5", "backup_b.weights.h5")


def seed_generator_states(model):
    """The states of `model`'s random generators (its dropout layers'), in
    `model.variables` order, as JSON-ready lists.

    `save_weights` does not store them (they are not weights), so a model
    restored from weights alone draws other dropout masks than the run it
    was saved from; store these as well and put them back with
    `restore_seed_generator_states` to resume that run.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5, seed=1)])
    >>> [len(state) for state in seed_generator_states(model)]
    [2]
    """
    return [keras.ops.convert_to_numpy(v.value).tolist() for v in _seed_generator_variables(model)]


def restore_seed_generator_states(model, states, source):
    """Assigns `states` (from `seed_generator_states`) to `model`'s random
    generators; None (a backup written before they were kept) changes
    nothing. A ValueError names `source` when the counts differ.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5, seed=1)])
    >>> restore_seed_generator_states(model, [[7, 3]], "backup.json")
    >>> seed_generator_states(model)
    [[7, 3]]
    """
    if states is None:
        return
    variables = _seed_generator_variables(model)
    if len(states) != len(variables):
        raise ValueError(f"{source} holds {len(states)} random-generator states; this model "
                         f"has {len(variables)}: the backup is another model's (remove it to "
                         "start afresh).")
    for variable, value in zip(variables, states):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _seed_generator_variables(model):
    return [v for v in model.variables if "seed_generator_state" in v.path]


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that writes every backup atomically.

    Keras writes `latest.weights.h5` in place: a process killed during that
    write (SIGKILL, preemption) leaves a truncated HDF5 file, and the restart
    fails with "Unable to synchronously open file" (Keras' own fallback,
    `double_checkpoint`, cannot help on the first backup). Here the weights
    go to whichever of two files (`backup_a` / `backup_b.weights.h5`) the
    current backup does not use, and the metadata, which names that file,
    is written to a temporary file and renamed into place: that rename is
    the only commit, so a backup is either the old one or the new one, never
    half of one, and never new weights with the old epoch count.

    The metadata also holds the model's random-generator states
    (`seed_generator_states`), which `save_weights` leaves out: restored,
    the resumed epochs draw the same dropout masks as an uninterrupted run,
    so they train on the same steps (Keras' own callback restarts the
    generators from their initial state).

    Args:
        backup_dir, save_freq, delete_checkpoint: as for
            `keras.callbacks.BackupAndRestore`.
        read_only: restore the backup but never write or delete it (the
            processes of a multi-process job other than the one that writes
            it; they share its directory).
        save_outside_distribution: write the backup with no
            `keras.distribution` set (`ptloss_tf.distribution.
            outside_distribution`): process 0 of a multi-process job.

    Example:
    ```python
    distiller.fit(ds, epochs=10,
                  callbacks=[ptloss_tf.callbacks.AtomicBackupAndRestore("backup/")])
    ```
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True,
                 read_only=False, save_outside_distribution=False):
        super().__init__(backup_dir, save_freq=save_freq, double_checkpoint=False,
                         delete_checkpoint=delete_checkpoint and not read_only)
        self.read_only = read_only
        self.save_outside_distribution = save_outside_distribution

    def _save_model(self):
        if self.read_only:
            return
        if self.save_outside_distribution:
            from ptloss_tf.distribution import outside_distribution

            with outside_distribution():
                return self._write_backup()
        return self._write_backup()

    def _write_backup(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        current = (self._read_metadata() or {}).get("weights")
        weights = WEIGHT_FILES[1] if current == WEIGHT_FILES[0] else WEIGHT_FILES[0]
        # Both synced to disk; the metadata's rename is the commit.
        save_atomically(lambda tmp: self.model.save_weights(filepath=tmp, overwrite=True),
                        os.path.join(self.backup_dir, "writing.weights.h5"),
                        os.path.join(self.backup_dir, weights))
        atomic_write_json(self._training_metadata_path,
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen,
                           "weights": weights, "seed_states": seed_generator_states(self.model)})

    def _read_metadata(self):
        if not os.path.exists(self._training_metadata_path):
            return None
        with open(self._training_metadata_path) as f:
            return json.load(f)

    def _load_model(self):
        metadata = self._read_metadata()
        if metadata is None or "weights" not in metadata:
            super()._load_model()  # nothing yet, or Keras' own layout
        else:
            if not self.model.built:
                super()._load_model()  # Keras' "must be built" error
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
            self.model._initial_epoch = metadata["epoch"]
        if metadata is not None:
            restore_seed_generator_states(self.model, metadata.get("seed_states"),
                                          self._training_metadata_path)
