"""`tf.data` input pipelines for keras-hub BERT classifiers.

`make_dataset` turns `Examples` (plus per-example target arrays, e.g. teacher
probabilities) into batches of `(inputs, targets)`:

    texts --batch(1024)--> preprocessor (keras-hub tokenisation, in tf.data)
          --unbatch--> [trim to the real length, if bucketing] --cache()-->
          [shuffle(seed)] --> batch (fixed max-length padding)
                              or length buckets (dynamic / per-bucket padding)
          --> prefetch(AUTOTUNE)

`inputs` is `{"token_ids", "segment_ids", "padding_mask"}`, all int32:
keras-hub's preprocessor emits a bool `padding_mask`, which breaks `fit`
under `tf.distribute.MirroredStrategy` (`AddN` has no bool kernel), so it is
cast here.

Length bucketing (`bucket_boundaries`) groups examples of similar token
length so a batch is padded only to its own longest example (or, with
`static_shapes=True`, to its bucket's boundary: a handful of fixed shapes for
XLA / TPU). Short-text tasks like SST-2 (train: median 9, p90 26 tokens)
then train several times faster than with 128-token padding (5.5x for a
2-layer, hidden-64 student on 2 CPU cores); see
`bench/bench_input_pipeline.py`.

Note on order: bucketing reorders examples even without `shuffle`. To match
predictions to examples, predict on an unbucketed, unshuffled dataset (which
keeps the examples' order) or carry an index in `targets`.
"""

import weakref

import numpy as np
import tensorflow as tf

from ptloss_tf.training.data.buckets import auto_bucket_boundaries  # noqa: F401  (re-exported)
from ptloss_tf.training.data.buckets import normalise_boundaries
from ptloss_tf.training.data.buckets import number_of_batches
from ptloss_tf.training.data.tokenization import INPUT_KEYS  # noqa: F401  (re-exported)
from ptloss_tf.training.data.tokenization import preprocess

TOKENIZE_BATCH = 1024


# preprocessor -> {(sequence_length, num_segments): tf.function}. Tracing a
# keras-hub preprocessor costs ~2 s (about a thousand graph ops); caching the
# traced function lets every dataset / `sequence_lengths` call on the same
# preprocessor reuse it.
_TOKENIZE_FNS = weakref.WeakKeyDictionary()


def _tokenize_fn(preprocessor, num_segments):
    try:
        cache = _TOKENIZE_FNS.setdefault(preprocessor, {})
    except TypeError:  # not weak-referenceable / hashable: no caching
        cache = {}
    key = (getattr(preprocessor, "sequence_length", None), num_segments)
    fn = cache.get(key)
    if fn is None:
        spec = tuple(tf.TensorSpec([None], tf.string) for _ in range(num_segments))
        try:  # a weak reference: the cached function must not keep its key alive
            ref = weakref.ref(preprocessor)
        except TypeError:
            ref = lambda: preprocessor  # noqa: E731
        fn = tf.function(lambda *texts: preprocess(ref(), texts), input_signature=spec)
        cache[key] = fn
    return fn


def _text_tensors(examples):
    return tuple(tf.constant(np.asarray(t), dtype=tf.string) for t in examples.texts)


def _sequence_length(preprocessor):
    length = getattr(preprocessor, "sequence_length", None)
    if length is None:
        raise ValueError("the preprocessor has no `sequence_length`.")
    return int(length)


def _pad_token_id(preprocessor):
    tokenizer = getattr(preprocessor, "tokenizer", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    return 0 if pad is None else int(pad)


def sequence_lengths(examples, preprocessor):
    """`[N]` int64 token counts (incl. [CLS]/[SEP], after the preprocessor's
    truncation to its `sequence_length`), in the examples' order.

    Use it to choose `bucket_boundaries` (see `auto_bucket_boundaries`).
    """
    if len(examples) == 0:
        return np.zeros(0, dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices(_text_tensors(examples))
    fn = _tokenize_fn(preprocessor, len(examples.texts))
    ds = ds.batch(TOKENIZE_BATCH).map(
        lambda *t: tf.reduce_sum(fn(*t)["padding_mask"], axis=1),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return np.concatenate([b.numpy() for b in ds]).astype(np.int64)


def tokenize_examples(examples, preprocessor):
    """The preprocessor's int32 `INPUT_KEYS` arrays `[N, sequence_length]`
    for `examples` (padded to the full length, in the examples' order):
    what `ptloss-distill prepare` stores for training without TensorFlow.
    """
    fn = _tokenize_fn(preprocessor, len(examples.texts))
    ds = tf.data.Dataset.from_tensor_slices(_text_tensors(examples)).batch(TOKENIZE_BATCH)
    parts = [fn(*texts) for texts in ds]
    return {k: np.concatenate([p[k].numpy() for p in parts]).astype(np.int32)
            for k in INPUT_KEYS}


def _prepare_targets(examples, targets):
    """dict of [N, ...] arrays (float64 -> float32), or None for no targets."""
    n = len(examples)
    if targets is None:
        labels = np.asarray(examples.labels)
        if n and (labels >= 0).all():
            return {"labels": labels.astype(np.int64)}
        return None
    if not isinstance(targets, dict):
        raise ValueError(f"targets must be a dict of arrays, got {type(targets).__name__}")
    out = {}
    for key, value in targets.items():
        arr = np.asarray(value)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(
                f"targets[{key!r}] has shape {arr.shape}; its first dimension must be "
                f"the number of examples ({n})."
            )
        out[str(key)] = arr
    return out


def make_dataset(examples, preprocessor, batch_size, targets=None, shuffle=False, seed=0,
                 bucket_boundaries=None, static_shapes=False, drop_remainder=False,
                 shuffle_buffer_size=None):
    """A batched `tf.data.Dataset` of `(inputs, targets)` (see module docstring).

    Args:
        examples: `ptloss_tf.training.data.examples.Examples`.
        preprocessor: a keras-hub `BertTextClassifierPreprocessor` (or one
            with the same call / outputs); its `sequence_length` is the
            maximum length. Tokenisation runs in the pipeline (`map`).
        batch_size: examples per batch.
        targets: dict name -> `[N, ...]` array aligned with `examples`
            (float64 is cast to float32), e.g. `{"teacher_probs": p,
            "labels": y}`; sliced per example. None: `{"labels":
            examples.labels}` if every example is labelled, else the dataset
            yields `inputs` alone (for `predict`).
        shuffle: reshuffle every epoch (after the cache), deterministically
            from `seed`.
        seed: the shuffle seed.
        bucket_boundaries: None (pad every batch to `sequence_length`), a
            list of ints, or "auto" (`auto_bucket_boundaries` of the token
            lengths). Bucket i holds lengths in `(b[i-1], b[i]]`;
            `sequence_length` is always the last boundary and larger values
            are capped to it. With buckets, `make_dataset` tokenises the
            examples once right away (this fills the cache, so the first
            epoch does not tokenise again) to measure the lengths: for
            "auto" and for the exact number of batches, which the dataset
            reports as its cardinality.
        static_shapes: with buckets, pad each batch to its bucket's boundary
            (a few fixed sequence lengths, for XLA / TPU) instead of to its
            longest example. Use with `drop_remainder=True` for fully static
            batch shapes.
        drop_remainder: drop partial batches (per bucket when bucketing).
        shuffle_buffer_size: default: the whole dataset (a full shuffle).

    Returns:
        `tf.data.Dataset` of `(inputs, targets)`, or of `inputs` when there
        are no targets, with a known cardinality (number of batches).
        `inputs` values are int32 `[B, L]`: `L = sequence_length` without
        buckets; with buckets the static shape is `[None, None]`.
    """
    n = len(examples)
    if n == 0:
        raise ValueError("make_dataset: no examples.")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sequence_length = _sequence_length(preprocessor)
    target_arrays = _prepare_targets(examples, targets)
    has_targets = target_arrays is not None
    bucketing = bucket_boundaries is not None
    if isinstance(bucket_boundaries, str) and bucket_boundaries != "auto":
        raise ValueError(
            f"bucket_boundaries must be a list of ints or 'auto', got {bucket_boundaries!r}"
        )
    auto = isinstance(bucket_boundaries, str)
    if bucketing and not auto:
        boundaries = normalise_boundaries(bucket_boundaries, sequence_length)

    texts = _text_tensors(examples)
    if has_targets:
        ds = tf.data.Dataset.from_tensor_slices((texts, target_arrays))
    else:
        ds = tf.data.Dataset.from_tensor_slices((texts,))
    tokenize_fn = _tokenize_fn(preprocessor, len(texts))

    def tokenize(texts, *rest):
        return (tokenize_fn(*texts),) + rest

    ds = ds.batch(TOKENIZE_BATCH).map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.unbatch().apply(tf.data.experimental.assert_cardinality(n))
    if bucketing:
        def trim(x, *rest):
            length = tf.reduce_sum(x["padding_mask"])
            return ({k: v[:length] for k, v in x.items()},) + rest

        ds = ds.map(trim, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.cache()
    # One pass now fills the (shared, in-memory) cache and gives the lengths
    # (for "auto" boundaries and the exact number of batches). Keras reads
    # exactly `cardinality` batches and never asks for the end of the data, so
    # a cache filled by its first epoch would stay unfinished: TensorFlow
    # would discard it (with a "did not fully read the dataset being cached"
    # warning) and tokenise again in every epoch.
    lengths = np.concatenate([
        b.numpy() for b in
        ds.map(lambda x, *rest: tf.shape(x["token_ids"])[0]).batch(8192)
    ])
    if bucketing:
        if auto:
            boundaries = auto_bucket_boundaries(lengths, sequence_length)
        num_batches = number_of_batches(lengths, boundaries, batch_size, drop_remainder)
    if shuffle:
        buffer = n if shuffle_buffer_size is None else int(shuffle_buffer_size)
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

    if not bucketing:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    else:
        bounds = tf.constant(boundaries, dtype=tf.int32)
        pad_id = _pad_token_id(preprocessor)
        spec = ds.element_spec

        def key_func(x, *rest):
            length = tf.shape(x["token_ids"])[0]
            return tf.reduce_sum(tf.cast(length > bounds, tf.int64))

        def padding_values():
            x = {"token_ids": tf.constant(pad_id, tf.int32),
                 "segment_ids": tf.constant(0, tf.int32),
                 "padding_mask": tf.constant(0, tf.int32)}
            rest = tuple(
                tf.nest.map_structure(lambda s: tf.zeros([], s.dtype), r) for r in spec[1:]
            )
            return (x,) + rest

        def reduce_func(key, window):
            if static_shapes:
                length = tf.reshape(tf.cast(tf.gather(bounds, key), tf.int64), [1])
                shapes = ({k: length for k in INPUT_KEYS},) + tuple(
                    tf.nest.map_structure(lambda s: s.shape, r) for r in spec[1:]
                )
            else:
                shapes = None
            return window.padded_batch(
                batch_size, padded_shapes=shapes, padding_values=padding_values(),
                drop_remainder=drop_remainder,
            )

        ds = ds.group_by_window(key_func, reduce_func, window_size=batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))

    if not has_targets:
        ds = ds.map(lambda x: x)
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)
