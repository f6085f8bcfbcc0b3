"""Length bucketing without TensorFlow: the bucket boundaries and the batch
plan shared by the `tf.data` pipeline (`input_pipeline.make_dataset`) and
the prepared-data batches (`prepared_batches.PreparedBatches`).

Bucket `i` holds the examples whose token count lies in `(b[i-1], b[i]]`;
the last boundary is always the sequence length.
"""

import numpy as np


def auto_bucket_boundaries(lengths, sequence_length,
                           quantiles=(0.5, 0.75, 0.9, 0.98), multiple=8):
    """A few bucket boundaries from a length distribution.

    The `quantiles` of `lengths`, rounded up to a multiple of `multiple`
    (hardware-friendly shapes), capped at `sequence_length`, deduplicated,
    with `sequence_length` always last.

    >>> auto_bucket_boundaries([10] * 60 + [20] * 25 + [40] * 15, 128)
    [16, 24, 40, 128]
    """
    sequence_length = int(sequence_length)
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        return [sequence_length]
    qs = np.quantile(lengths, quantiles, method="higher")
    bounds = {min(sequence_length, int(-(-int(q) // multiple) * multiple)) for q in qs}
    bounds.add(sequence_length)
    return sorted(b for b in bounds if b >= 1)


def normalise_boundaries(boundaries, sequence_length):
    """Sorted unique positive ints, capped at `sequence_length`, which is
    always last.

    >>> normalise_boundaries([64, 16, 16, 300], 128)
    [16, 64, 128]
    """
    try:
        values = sorted({int(b) for b in boundaries})
    except (TypeError, ValueError):
        raise ValueError(
            f"bucket_boundaries must be a list of ints or 'auto', got {boundaries!r}"
        ) from None
    if not values or values[0] < 1:
        raise ValueError(f"bucket_boundaries must be positive ints, got {boundaries!r}")
    return sorted({min(v, sequence_length) for v in values} | {sequence_length})


def bucket_of(lengths, boundaries):
    """The bucket index of each length (`(b[i-1], b[i]]` -> i).

    >>> bucket_of([1, 16, 17, 128], [16, 64, 128]).tolist()
    [0, 0, 1, 2]
    """
    return np.searchsorted(np.asarray(boundaries), np.asarray(lengths), side="left")


def number_of_batches(lengths, boundaries, batch_size, drop_remainder=False):
    """How many batches bucketing `lengths` gives (the same in every epoch:
    the order does not change how many examples each bucket holds).

    >>> number_of_batches([3] * 5 + [30] * 2, [8, 32], batch_size=2)
    4
    """
    per_bucket = np.bincount(bucket_of(lengths, boundaries), minlength=len(boundaries))
    if drop_remainder:
        return int((per_bucket // batch_size).sum())
    return int((-(-per_bucket // batch_size)).sum())


def plan_batches(order, lengths, boundaries, batch_size, drop_remainder=False):
    """The batches of one epoch: lists of example indices.

    The examples arrive in `order`; each joins its bucket's window, and a
    window that reaches `batch_size` is emitted as a batch (what
    `tf.data.Dataset.group_by_window` does). At the end the partial windows
    follow in bucket order (dropped with `drop_remainder`).

    Returns `(batches, widths)`: index arrays and each batch's padded
    length (its bucket's boundary).

    Example:
    >>> batches, widths = plan_batches([0, 1, 2, 3, 4], [5, 20, 6, 7, 21], [8, 32], 2)
    >>> [b.tolist() for b in batches], widths
    ([[0, 2], [1, 4], [3]], [8, 32, 8])
    """
    buckets = bucket_of(np.asarray(lengths)[np.asarray(order, dtype=np.int64)], boundaries)
    windows = [[] for _ in boundaries]
    batches, widths = [], []
    for index, bucket in zip(np.asarray(order, dtype=np.int64), buckets):
        windows[bucket].append(int(index))
        if len(windows[bucket]) == batch_size:
            batches.append(np.asarray(windows[bucket], np.int64))
            widths.append(int(boundaries[bucket]))
            windows[bucket] = []
    if not drop_remainder:
        for bucket, window in enumerate(windows):
            if window:
                batches.append(np.asarray(window, np.int64))
                widths.append(int(boundaries[bucket]))
    return batches, widths
