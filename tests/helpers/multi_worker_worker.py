"""Helper for tests/test_multi_worker.py: one worker of a multi-worker run.

Run as ``python tests/helpers/multi_worker_worker.py OUT.npz`` with `TF_CONFIG` set
(one process per worker). It creates `make_strategy("multi_worker")` first,
builds the student and `ptloss_tf.Distiller` inside its scope, trains on the
deterministic dataset below and writes the student's final weights to
OUT.npz. Imported (not run) by the test, which trains the same model in one
process without a strategy through `train_single_process`.

Data sharding: the dataset is batched with the GLOBAL batch size and carries
`AutoShardPolicy.DATA`. `experimental_distribute_dataset` (which Keras'
`fit` calls) then splits every global batch into per-replica batches of
GLOBAL_BATCH / num_workers and gives worker i the i-th of them, so one
multi-worker step sees exactly the global batch a single process sees in its
step. (`OFF` would give every worker the whole dataset: each global step
would then see the first half of a global batch twice and the batches would
drift apart; `FILE` needs file-based sources, which
`from_tensor_slices` is not. `AUTO` falls back to DATA here, with a warning.)
No shuffling, so the batches are identical in every process.

Only safe, cheap imports at module level: pytest's --doctest-modules imports
this file.
"""

import sys

GLOBAL_BATCH = 8
STEPS_PER_EPOCH = 4
EPOCHS = 2
FEATURES = 6
HIDDEN = 5
CLASSES = 3
STUDENT_LOSS_WEIGHT = 0.3
LEARNING_RATE = 0.1
# PTLoss coefficients, order M=2 x K=3 classes.
ETA = [[0.5, -0.3, 0.2], [0.1, 0.0, -0.1]]


def make_arrays():
    """Deterministic inputs, teacher probabilities and labels (numpy)."""
    import numpy as np

    rng = np.random.default_rng(2024)
    n = GLOBAL_BATCH * STEPS_PER_EPOCH
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    teacher_logits = rng.normal(scale=2.0, size=(n, CLASSES))
    probs = np.exp(teacher_logits - teacher_logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype("float32")
    labels = rng.integers(0, CLASSES, size=n).astype("int32")
    return x, {"teacher_probs": probs, "labels": labels}


def make_dataset():
    """(x, targets) batched with the GLOBAL batch size, sharded by DATA."""
    import tensorflow as tf

    x, targets = make_arrays()
    ds = tf.data.Dataset.from_tensor_slices((x, targets)).batch(
        GLOBAL_BATCH, drop_remainder=True
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    options.deterministic = True
    return ds.with_options(options)


def initial_weights():
    import numpy as np

    rng = np.random.default_rng(7)
    return [
        rng.normal(scale=0.5, size=(FEATURES, HIDDEN)).astype("float32"),
        rng.normal(scale=0.1, size=(HIDDEN,)).astype("float32"),
        rng.normal(scale=0.5, size=(HIDDEN, CLASSES)).astype("float32"),
        rng.normal(scale=0.1, size=(CLASSES,)).astype("float32"),
    ]


def build_distiller():
    """Student + Distiller, compiled; call inside `strategy.scope()`.

    The initial weights are set from numpy so that every process starts from
    the same point whatever Keras' random state is.
    """
    import keras

    import ptloss_tf

    keras.utils.set_random_seed(0)
    student = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(HIDDEN, activation="tanh"),
            keras.layers.Dense(CLASSES),
        ]
    )
    student.set_weights(initial_weights())
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        distillation_loss=ptloss_tf.PTLoss(ETA, from_logits=True),
        student_loss_weight=STUDENT_LOSS_WEIGHT,
        # XLA is not needed for these tiny models; plain tf.function keeps
        # the single-process and multi-worker runs on the same kernels.
        jit_compile=False,
    )
    return distiller


def train(distiller):
    history = distiller.fit(
        make_dataset(), epochs=EPOCHS, shuffle=False, verbose=0
    )
    return history


def student_weights(distiller):
    import numpy as np

    return [np.asarray(w.numpy()) for w in distiller.student.weights]


def train_single_process():
    """The reference: same data and model, no strategy. Returns weights."""
    distiller = build_distiller()
    train(distiller)
    return student_weights(distiller), int(distiller.optimizer.iterations.numpy())


def main(out_path):
    # The strategy must exist before any other TensorFlow op runs.
    from ptloss_tf.strategy import make_strategy

    strategy = make_strategy("multi_worker")
    import numpy as np

    with strategy.scope():
        distiller = build_distiller()
    history = train(distiller)
    weights = student_weights(distiller)
    np.savez(
        out_path,
        *weights,
        replicas=np.int64(strategy.num_replicas_in_sync),
        iterations=np.int64(distiller.optimizer.iterations.numpy()),
        loss=np.asarray(history.history["loss"], np.float64),
    )
    print(f"worker done: replicas={strategy.num_replicas_in_sync}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
