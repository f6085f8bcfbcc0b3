"""Helper for tests/test_backup_restore.py: a resumable Distiller training.

Run as::

    python tests/helpers/backup_restore_worker.py BACKUP_DIR PROGRESS_FILE OUT.npz [SLEEP_S]

It trains a small `ptloss_tf.Distiller` for EPOCHS epochs of STEPS_PER_EPOCH
steps with `keras.callbacks.BackupAndRestore(BACKUP_DIR, save_freq=SAVE_FREQ)`
and appends one JSON line per event to PROGRESS_FILE:

* ``{"event": "begin", "iterations": ...}`` at `on_train_begin`, after the
  backup (if any) was restored: `optimizer.iterations` is then the step the
  run resumes from (0 for a fresh start);
* ``{"event": "epoch", "epoch": e}`` at each `on_epoch_begin` (the first one
  of a resumed run is the epoch it resumes in);
* ``{"event": "batch", "epoch": e, "batch": b, "iterations": i}`` after each
  step (then it sleeps SLEEP_S seconds, so a test can kill it mid-epoch);
* ``{"event": "end", ...}`` when `fit` returns and OUT.npz (the student's
  weights) is written.

Running the same command again after the process was killed resumes from the
last backup. The module is also imported by the test for `build_distiller`,
`make_dataset` and `train_reference` (same data, same initial weights), so
only cheap imports happen at module level (pytest's --doctest-modules imports
it too).
"""

import json
import os
import sys
import time

BATCH = 8
STEPS_PER_EPOCH = 10
EPOCHS = 5
SAVE_FREQ = 3
FEATURES = 5
CLASSES = 3
ETA = [[0.4, -0.2, 0.1]]


def make_arrays():
    import numpy as np

    rng = np.random.default_rng(99)
    n = BATCH * STEPS_PER_EPOCH
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    logits = rng.normal(scale=2.0, size=(n, CLASSES))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype("float32")
    labels = rng.integers(0, CLASSES, size=n).astype("int32")
    return x, {"teacher_probs": probs, "labels": labels}


def make_dataset():
    """Deterministic, unshuffled: every epoch sees the same batches."""
    import tensorflow as tf

    x, targets = make_arrays()
    return tf.data.Dataset.from_tensor_slices((x, targets)).batch(
        BATCH, drop_remainder=True
    )


def initial_weights():
    import numpy as np

    rng = np.random.default_rng(5)
    return [
        rng.normal(scale=0.5, size=(FEATURES, CLASSES)).astype("float32"),
        rng.normal(scale=0.1, size=(CLASSES,)).astype("float32"),
    ]


def build_distiller():
    import keras

    import ptloss_tf

    student = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)]
    )
    student.set_weights(initial_weights())
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.1),
        distillation_loss=ptloss_tf.PTLoss(ETA, from_logits=True),
        student_loss_weight=0.2,
        jit_compile=False,
    )
    # BackupAndRestore needs a built model at on_train_begin: a Distiller
    # around a built student is built (no extra call needed).
    assert distiller.built
    return distiller


def student_weights(distiller):
    import numpy as np

    return [np.asarray(w.numpy()) for w in distiller.student.weights]


def train_reference(resume_iterations=None, resume_epoch=None):
    """In-process training without interruption; returns (weights, iterations).

    Without arguments: the plain uninterrupted run. With the step
    `resume_iterations` the backup held and the epoch `resume_epoch` the
    resumed run started in: what Keras' BackupAndRestore does after a
    mid-epoch kill, i.e. the first `resume_iterations` steps, then the
    epochs `resume_epoch .. EPOCHS-1` in full (the partial epoch is replayed
    from its first batch on the backed-up weights).
    """
    distiller = build_distiller()
    ds = make_dataset()
    if resume_iterations is None:
        distiller.fit(ds, epochs=EPOCHS, shuffle=False, verbose=0)
    else:
        if resume_iterations:
            distiller.fit(
                ds.repeat(),
                steps_per_epoch=resume_iterations,
                epochs=1,
                shuffle=False,
                verbose=0,
            )
        distiller.fit(
            ds, epochs=EPOCHS - resume_epoch, shuffle=False, verbose=0
        )
    return student_weights(distiller), int(distiller.optimizer.iterations.numpy())


def _progress_callback(path, sleep_s):
    import keras

    def write(record):
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    class Progress(keras.callbacks.Callback):
        def _iterations(self):
            return int(self.model.optimizer.iterations.numpy())

        def on_train_begin(self, logs=None):
            write({"event": "begin", "pid": os.getpid(),
                   "iterations": self._iterations()})

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch
            write({"event": "epoch", "epoch": epoch})

        def on_train_batch_end(self, batch, logs=None):
            write({"event": "batch", "epoch": self._epoch, "batch": batch,
                   "iterations": self._iterations()})
            if sleep_s:
                time.sleep(sleep_s)

    return Progress(), write


def main(backup_dir, progress_path, out_path, sleep_s=0.0):
    import keras
    import numpy as np

    distiller = build_distiller()
    progress, write = _progress_callback(progress_path, sleep_s)
    backup = keras.callbacks.BackupAndRestore(
        backup_dir, save_freq=SAVE_FREQ, double_checkpoint=True
    )
    # Order matters: BackupAndRestore restores in its on_train_begin, before
    # Progress reports the iteration it resumes from.
    history = distiller.fit(
        make_dataset(),
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[backup, progress],
    )
    weights = student_weights(distiller)
    np.savez(out_path, *weights)
    write({
        "event": "end",
        "iterations": int(distiller.optimizer.iterations.numpy()),
        "epochs_run": len(history.history["loss"]),
        "finite": bool(all(np.isfinite(w).all() for w in weights)),
    })


if __name__ == "__main__":
    main(*sys.argv[1:4], *(float(a) for a in sys.argv[4:5]))
