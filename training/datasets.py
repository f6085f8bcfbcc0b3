"""The datasets of one method's training over a run's `Splits`, with teacher
probabilities and labels as targets: length-bucketed `tf.data` pipelines
(`data.input_pipeline.make_dataset`), or, from prepared tokens and without
TensorFlow, `data.prepared_batches.PreparedBatches` (a `keras.utils.PyDataset`
with the same buckets)."""

import numpy as np

from ptloss_tf.training.data.prepared_batches import PreparedBatches


def _targets(splits, split):
    return {"teacher_probs": splits.teacher_probs[split],
            "labels": np.asarray(splits.examples[split].labels, np.int32)}


def run_datasets(config, splits, preprocessor, tokens=None, strategy=None):
    """`(train, validation, evaluations)`: the training and validation
    datasets and `{split: dataset}` of the test split and any extra test
    split (MNLI's `validation_mismatched`), unbucketed so that predictions
    keep the examples' order.

    With `tokens` (`{split: {"token_ids", ...}}` of a prepared-data
    directory) they are `PreparedBatches`, and `preprocessor` is unused; on a
    device mesh (`strategy` a `MeshStrategy`) each is padded to the mesh's
    batch axis and this process's slice of every global batch."""
    if tokens is not None:
        return prepared_datasets(config, splits, tokens, strategy)
    from ptloss_tf.training.data.input_pipeline import make_dataset

    boundaries = None if config.no_bucketing else "auto"
    # Buckets padded to their boundary: a handful of shapes, so XLA compiles
    # a handful of programs (dynamic padding would recompile per length).
    static = True

    train = make_dataset(splits.examples["train"], preprocessor, config.batch_size,
                         targets=_targets(splits, "train"), shuffle=True, seed=config.seed,
                         bucket_boundaries=boundaries, static_shapes=static,
                         drop_remainder=config.strategy == "tpu")
    validation = make_dataset(splits.examples["validation"], preprocessor, config.batch_size,
                              targets=_targets(splits, "validation"), bucket_boundaries=boundaries,
                              static_shapes=static)
    evaluations = {split: make_dataset(splits.examples[split], preprocessor,
                                       config.batch_size, targets=_targets(splits, split))
                   for split in ("test", *splits.extra_test_splits)}
    return train, validation, evaluations


def prepared_datasets(config, splits, tokens, strategy=None):
    """`run_datasets` from prepared tokens: `PreparedBatches`.

    Under the TensorFlow backend Keras turns a `PyDataset` into a
    `tf.data` generator whose shapes it fixes from the first batches, so
    the buckets (batches of several lengths) are used only on the other
    backends; TensorFlow users have the `tf.data` path anyway."""
    import keras

    bucketing = not config.no_bucketing and keras.backend.backend() != "tensorflow"
    boundaries = "auto" if bucketing else None
    mesh = strategy.batch_options() if hasattr(strategy, "batch_options") else {}
    train = PreparedBatches(tokens["train"], _targets(splits, "train"), config.batch_size,
                            shuffle=True, seed=config.seed, bucket_boundaries=boundaries,
                            drop_remainder=config.strategy == "tpu", **mesh)
    validation = PreparedBatches(tokens["validation"], _targets(splits, "validation"),
                                 config.batch_size, bucket_boundaries=boundaries, **mesh)
    evaluations = {split: PreparedBatches(tokens[split], _targets(splits, split),
                                          config.batch_size, **mesh)
                   for split in ("test", *splits.extra_test_splits)}
    return train, validation, evaluations


def inputs_only(dataset):
    """`dataset` without its targets, for `predict`."""
    if isinstance(dataset, PreparedBatches):
        return dataset.inputs_only()
    return dataset.map(lambda x, y: x)


def align_data_order_across_strategies(train, config):
    """Makes the training batches independent of `--strategy`.

    Under a non-default strategy (mirrored, multi-worker, TPU) Keras 3.15's
    `fit` iterates the training dataset once before the first epoch, to
    build the model from a batch (`TensorFlowTrainer._maybe_symbolic_build`);
    each iteration of the dataset draws a new shuffle order, so epoch 1 then
    trains on the dataset's second order. Under the default strategy this
    starts one iteration here too, so the same `--seed` gives the same
    batches in every epoch on every strategy (tested: a mirrored run's
    first-epoch loss equals the default run's).
    """
    if config.strategy == "default" and not isinstance(train, PreparedBatches):
        iter(train)


def data_order_callback(train):
    """A callback that gives a resumed `fit` the uninterrupted run's batch
    order from the epoch it resumes at.

    `PreparedBatches` draws epoch `e`'s order from `(seed, e)`: the
    callback tells it the epoch. A `tf.data` pipeline reshuffled on every
    iteration (`make_dataset(shuffle=True)`) draws its k-th order for the
    k-th iterator made of it, so a restarted process would begin at the
    first order again: at the first epoch `e` of a resumed fit the callback
    makes (and drops) the iterators the uninterrupted run made in epochs
    0 .. e-1 first. Keras 3's `EpochIterator` makes two per epoch when the
    dataset's cardinality is known (the epoch's and, at its end, one for the
    next epoch that the next epoch replaces) and one when it is not; a fit
    with `steps_per_epoch` keeps one iterator and is not covered. A dropped
    iterator costs what Keras' own end-of-epoch one does: its shuffle
    seeds and, through the prefetch, a first fill of the shuffle buffer
    from the already filled cache (nothing is tokenised again).
    Tested: a kill-and-resume ends at the uninterrupted run's weights
    (`tests/training/test_data_order.py`).
    """
    import keras

    if isinstance(train, PreparedBatches):
        return keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: train.set_epoch(epoch))
    per_epoch = 2 if int(train.cardinality()) >= 0 else 1
    first = []

    def skip_earlier_orders(epoch, logs):
        if not first:
            first.append(epoch)
            for _ in range(per_epoch * epoch):
                iter(train)

    return keras.callbacks.LambdaCallback(on_epoch_begin=skip_earlier_orders)
