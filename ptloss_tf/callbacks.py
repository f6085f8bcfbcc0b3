"""`AtomicBackupAndRestore`: `BackupAndRestore` whose backups survive a kill."""

import json
import os

import keras


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that writes every backup atomically.

    Keras writes `latest.weights.h5` in place: a process killed during that
    write (SIGKILL, preemption) leaves a truncated HDF5 file, and the restart
    fails with "Unable to synchronously open file" (Keras' own fallback,
    `double_checkpoint`, cannot help on the first backup). Here weights and
    metadata go to temporary files in the backup directory and are renamed
    into place, so a backup is either the old one or the new one, never half
    of one. (A kill between the two renames leaves new weights with the old
    epoch count: the restart repeats at most one epoch.)

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
        tmp_weights = os.path.join(self.backup_dir, "writing.weights.h5")
        tmp_metadata = os.path.join(self.backup_dir, "writing_metadata.json")
        self.model.save_weights(filepath=tmp_weights, overwrite=True)
        with open(tmp_metadata, "w") as f:
            json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_weights, self._weights_path)
        os.replace(tmp_metadata, self._training_metadata_path)
