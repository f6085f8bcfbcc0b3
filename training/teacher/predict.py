"""The teacher's forward pass over a split: `predict_logits`.

Every prediction of the teacher stage (a whole split, or one shard's rows of
it) goes through `predict_logits`. Under TensorFlow it runs one
`tf.function`; under JAX it runs `Model.predict`, on a `keras.distribution`
data-parallel mesh when one is given (`--distribution data_parallel`: each
batch is split over the devices; the teacher must be loaded onto the mesh,
`load_teacher`), one window of batches at a time, so that memory holds a
window's token ids, not the split's (1.5 GB for a million rows of 128
tokens).
"""

import numpy as np


def prediction_distribution(kind="none", devices=None):
    """The mesh `--distribution KIND --devices N` asks the teacher's
    prediction to run on: None for `"none"`, else a data-parallel
    `keras.distribution` over N local devices (default all); a one-line
    ValueError for a combination that cannot run.

    Example:
    >>> prediction_distribution("none") is None
    True
    """
    if kind == "none":
        if devices is not None:
            raise ValueError("--devices applies with --distribution data_parallel.")
        return None
    import keras

    if kind != "data_parallel":
        raise ValueError(f"--distribution must be none or data_parallel, got {kind!r}.")
    if keras.backend.backend() != "jax":
        raise ValueError(f"--distribution data_parallel runs the teacher's prediction on a "
                         f"keras.distribution mesh under JAX (KERAS_BACKEND=jax; this is "
                         f"{keras.backend.backend()}); under TensorFlow split the pass "
                         "with --shard I/N instead.")
    from ptloss_tf.distribution import make_distribution

    return make_distribution("data_parallel", devices=devices)


def load_teacher(path, distribution=None):
    """`keras.saving.load_model(path)`, its weights placed on `distribution`'s
    mesh (replicated, for data parallelism) when one is given: variables
    take their layout when they are created, so the mesh must be in scope
    while the model is built."""
    import keras

    if distribution is None:
        return keras.saving.load_model(path)
    with distribution.scope():
        return keras.saving.load_model(path)


WINDOW_BATCHES = 64


def predict_logits(model, examples, preprocessor, batch_size, bucket_boundaries="auto",
                   distribution=None, window_batches=WINDOW_BATCHES):
    """Logits `[N, K]` in the examples' order, from length-bucketed batches.

    Buckets reorder examples, so each carries its row index; padding every
    row to the full sequence length instead made prediction 3-5x slower.

    Args:
        model: the teacher (token ids in, logits out).
        examples: `Examples` to predict (at least one).
        preprocessor: its keras-hub preprocessor (tokenises in tf.data).
        batch_size: rows per batch.
        bucket_boundaries: `"auto"` (from these rows' lengths) or a list:
            a shard passes the whole split's, and its rows in the order of
            the unsharded pass's batches (`shards.shard_batches`), so that
            every batch is formed, padded and computed as in that pass.
        distribution: JAX only: a `keras.distribution` data-parallel
            distribution (the model loaded under it, `load_teacher`); each
            batch is padded to a multiple of its devices by repeating its
            first row, and the padding rows' logits are dropped.
        window_batches: JAX only: batches tokenised and held in memory at
            once, each window one `Model.predict` call (the compiled
            program is reused across windows, so the logits do not depend
            on it).
    """
    import keras

    from ptloss_tf.training.data.input_pipeline import make_dataset

    dataset = make_dataset(examples, preprocessor, batch_size,
                           targets={"index": np.arange(len(examples))},
                           bucket_boundaries=bucket_boundaries, static_shapes=True)
    if keras.backend.backend() == "tensorflow":
        if distribution is not None:
            raise ValueError("a keras.distribution mesh runs the teacher under JAX only "
                             "(KERAS_BACKEND=jax); under TensorFlow use --shard I/N.")
        batches = _tensorflow_batches(model, dataset)
    else:
        if window_batches < 1:
            raise ValueError(f"window_batches must be at least 1, got {window_batches}.")
        batches = _keras_batches(model, dataset, distribution, window_batches)
    logits = None
    for index, batch in batches:
        if logits is None:
            logits = np.full((len(examples), batch.shape[1]), np.nan, np.float32)
        logits[index] = batch
    if logits is None or np.isnan(logits).any():
        raise RuntimeError("teacher prediction did not cover every example")
    return logits


def _tensorflow_batches(model, dataset):
    """(row indices, logits) of each batch, through one `tf.function`."""
    import tensorflow as tf

    # One trace for every batch shape: a function traced for a concrete shape
    # may compute in other kernels than the shape-generic one, so a batch's
    # logits would depend, in their last bits, on the batches run before it
    # (and a shard's could differ from the unsharded pass's).
    spec = tf.nest.map_structure(lambda s: tf.TensorSpec([None] * s.shape.rank, s.dtype),
                                 dataset.element_spec[0])
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    for inputs, targets in dataset:
        yield targets["index"].numpy(), np.asarray(forward(inputs), np.float32)


def _keras_batches(model, dataset, distribution, window_batches):
    """(row indices, logits) of each batch, through `Model.predict` on
    windows of `window_batches` batches (one compiled program per batch
    shape, reused by every window; on the mesh when one is given)."""
    import contextlib

    import keras

    from ptloss_tf.distribution import axis_size

    multiple = 1 if distribution is None else axis_size(distribution, "batch")

    class Window(keras.utils.PyDataset):
        def __init__(self, inputs):
            super().__init__()
            self.inputs = inputs

        def __len__(self):
            return len(self.inputs)

        def __getitem__(self, i):
            return self.inputs[i]

    def predict(inputs):
        with distribution.scope() if distribution is not None else contextlib.nullcontext():
            # The batches are token ids already: Keras' own predict, not the
            # keras-hub task's, which would run the attached preprocessor on them.
            return np.asarray(keras.Model.predict(model, Window(inputs), verbose=0), np.float32)

    padded = (_padded(x, targets["index"], multiple) for x, targets in dataset.as_numpy_iterator())
    for window in _windows(padded, window_batches):
        logits = predict([x for x, _ in window])
        start = 0
        for x, index in window:
            yield index, logits[start:start + len(index)]
            start += len(next(iter(x.values())))


def _padded(x, index, multiple):
    """The batch `x` with its first row repeated up to a multiple of
    `multiple` rows (the mesh splits a batch evenly over its devices), and
    the row indices of its real rows."""
    rows = len(index)
    take = np.r_[np.arange(rows), np.zeros(-(-rows // multiple) * multiple - rows, int)]
    return {k: v[take] for k, v in x.items()}, index


def _windows(items, size):
    """`items` in lists of `size` (the last one shorter).

    Example:
    >>> [len(w) for w in _windows(range(5), 2)]
    [2, 2, 1]
    """
    window = []
    for item in items:
        window.append(item)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window
