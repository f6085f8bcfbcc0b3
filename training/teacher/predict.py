"""The teacher's forward pass over a split: `predict_logits`.

Every prediction of the teacher stage (the whole split, or one shard's rows)
goes through this one function, so a distributed forward pass (a
`keras.distribution` data-parallel mesh under JAX) replaces it in one place.
"""

import numpy as np


def predict_logits(model, examples, preprocessor, batch_size):
    """Logits `[N, K]` in the examples' order, from length-bucketed batches.

    Buckets reorder examples, so each carries its row index; padding every
    row to the full sequence length instead made prediction 3-5x slower.
    """
    import tensorflow as tf

    from ptloss_tf.training.data.input_pipeline import make_dataset

    dataset = make_dataset(examples, preprocessor, batch_size,
                           targets={"index": np.arange(len(examples))},
                           bucket_boundaries="auto", static_shapes=True)
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    logits = None
    for inputs, targets in dataset:
        batch = np.asarray(forward(inputs), np.float32)
        if logits is None:
            logits = np.full((len(examples), batch.shape[1]), np.nan, np.float32)
        logits[targets["index"].numpy()] = batch
    if logits is None or np.isnan(logits).any():
        raise RuntimeError("teacher prediction did not cover every example")
    return logits
