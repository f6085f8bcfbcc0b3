"""The teacher's forward pass over a split: `predict_logits`.

Every prediction of the teacher stage (a whole split, or one shard's rows of
it) goes through `predict_logits`, so a distributed forward pass (a
`keras.distribution` data-parallel mesh under JAX) replaces it in one place.
"""

import numpy as np


def predict_logits(model, examples, preprocessor, batch_size, bucket_boundaries="auto"):
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
    """
    import tensorflow as tf

    from ptloss_tf.training.data.input_pipeline import make_dataset

    dataset = make_dataset(examples, preprocessor, batch_size,
                           targets={"index": np.arange(len(examples))},
                           bucket_boundaries=bucket_boundaries, static_shapes=True)
    # One trace for every batch shape: a function traced for a concrete shape
    # may compute in other kernels than the shape-generic one, so a batch's
    # logits would depend, in their last bits, on the batches run before it
    # (and a shard's could differ from the unsharded pass's).
    spec = tf.nest.map_structure(lambda s: tf.TensorSpec([None] * s.shape.rank, s.dtype),
                                 dataset.element_spec[0])
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    logits = None
    for inputs, targets in dataset:
        batch = np.asarray(forward(inputs), np.float32)
        if logits is None:
            logits = np.full((len(examples), batch.shape[1]), np.nan, np.float32)
        logits[targets["index"].numpy()] = batch
    if logits is None or np.isnan(logits).any():
        raise RuntimeError("teacher prediction did not cover every example")
    return logits
