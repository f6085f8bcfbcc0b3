"""`PreparedBatches`: batches of tokenised examples as a
`keras.utils.PyDataset`, for training on any Keras backend without
TensorFlow (the prepared-data path, `training/prepared_data.py`).

It batches like `input_pipeline.make_dataset`: the same targets, the same
length buckets (`buckets.plan_batches`, what `group_by_window` does) padded
to their boundaries, a reshuffle every epoch. Only the shuffle order
differs (numpy's generator instead of `tf.data`'s), so with `shuffle=False`
the batches equal the `tf.data` pipeline's without buckets.
"""

import keras
import numpy as np

from ptloss_tf.training.data.buckets import auto_bucket_boundaries
from ptloss_tf.training.data.buckets import normalise_boundaries
from ptloss_tf.training.data.buckets import plan_batches
from ptloss_tf.training.data.tokenization import INPUT_KEYS


class PreparedBatches(keras.utils.PyDataset):
    """Batches of `(inputs, targets)` from token arrays.

    Args:
        inputs: dict of `INPUT_KEYS` -> `[N, L]` int arrays (padded to the
            sequence length `L`, as `ptloss-distill prepare` stores them).
        targets: dict name -> `[N, ...]` array (e.g. `{"teacher_probs": p,
            "labels": y}`), one `[N, ...]` array (e.g. labels for a plain
            classifier's `fit`), or None to yield `inputs` alone (`predict`).
        batch_size: examples per batch.
        shuffle: a new order every epoch, from `seed` and the epoch number.
        seed: the shuffle seed.
        bucket_boundaries: None (every batch padded to `L`), a list of ints
            or "auto" (`auto_bucket_boundaries` of the token counts); each
            batch is padded to its bucket's boundary.
        drop_remainder: drop partial batches (per bucket when bucketing).
        pad_to_multiple: for a device mesh (`ptloss_tf.distribution`): every
            global batch is padded to a multiple of this (the mesh's batch
            axis) with copies of its first row, of sample weight 0 (the real
            rows weigh 1): Keras' weighted metrics and a loss with reduction
            `"mean_with_sample_weight"` then equal the unpadded batch's.
            With a value above 1 each batch is `(x, y, sample_weight)`.
        process_index: this process's index in a multi-process job; it gets
            the `process_index`-th of `process_count` equal slices of every
            (padded) global batch, as `jax.make_array_from_process_local_data`
            expects. The global batches do not depend on the device or
            process count.
        process_count: the number of processes.
        **kwargs: `keras.utils.PyDataset`'s (`workers`, ...).

    Example:
    >>> ids = np.array([[2, 7, 3, 0], [2, 8, 9, 3]], np.int32)
    >>> batches = PreparedBatches({"token_ids": ids, "segment_ids": 0 * ids,
    ...                            "padding_mask": (ids > 0).astype(np.int32)},
    ...                           {"labels": np.array([0, 1])}, batch_size=2)
    >>> x, y = batches[0]
    >>> len(batches), x["token_ids"].shape, y["labels"].tolist()
    (1, (2, 4), [0, 1])
    >>> # 3 rows on 2 devices: padded to 4; process 1 of 2 gets rows 2, pad
    >>> ids3 = np.repeat(ids[:1], 3, axis=0)
    >>> shard = PreparedBatches({"token_ids": ids3, "segment_ids": 0 * ids3,
    ...                          "padding_mask": (ids3 > 0).astype(np.int32)},
    ...                         {"labels": np.array([0, 1, 2])}, batch_size=4,
    ...                         pad_to_multiple=2, process_index=1, process_count=2)
    >>> x, y, weight = shard[0]
    >>> y["labels"].tolist(), [round(float(w), 4) for w in weight]
    ([2, 0], [1.0, 0.0])
    """

    def __init__(self, inputs, targets, batch_size, shuffle=False, seed=0,
                 bucket_boundaries=None, drop_remainder=False, pad_to_multiple=1,
                 process_index=0, process_count=1, **kwargs):
        super().__init__(**kwargs)
        self.pad_to_multiple = int(pad_to_multiple)
        self.process_index, self.process_count = int(process_index), int(process_count)
        if self.process_count < 1 or not 0 <= self.process_index < self.process_count:
            raise ValueError(f"PreparedBatches: process_index {process_index} must lie in "
                             f"[0, {process_count}).")
        if self.pad_to_multiple < 1 or self.pad_to_multiple % self.process_count:
            raise ValueError(f"PreparedBatches: pad_to_multiple ({pad_to_multiple}) must "
                             f"be a positive multiple of process_count ({process_count}).")
        missing = [k for k in INPUT_KEYS if k not in inputs]
        if missing:
            raise ValueError(f"PreparedBatches: inputs lack {missing}.")
        self.inputs = {k: np.asarray(inputs[k], np.int32) for k in INPUT_KEYS}
        n, length = self.inputs["token_ids"].shape
        if n == 0:
            raise ValueError("PreparedBatches: no examples.")
        for k, v in self.inputs.items():
            if v.shape != (n, length):
                raise ValueError(f"PreparedBatches: inputs[{k!r}] has shape {v.shape}, "
                                 f"expected {(n, length)}.")
        self.targets = None
        self._single_target = targets is not None and not isinstance(targets, dict)
        if self._single_target:
            targets = {"y": targets}
        if targets is not None:
            self.targets = {}
            for k, v in targets.items():
                v = np.asarray(v)
                if v.dtype == np.float64:
                    v = v.astype(np.float32)
                if v.ndim == 0 or v.shape[0] != n:
                    raise ValueError(f"PreparedBatches: targets[{k!r}] has shape {v.shape}; "
                                     f"its first dimension must be {n}.")
                self.targets[str(k)] = v
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_remainder = bool(drop_remainder)
        self.lengths = self.inputs["padding_mask"].sum(axis=1)
        if bucket_boundaries is None:
            self.boundaries = [length]
        elif isinstance(bucket_boundaries, str):
            if bucket_boundaries != "auto":
                raise ValueError(f"bucket_boundaries must be a list of ints or 'auto', "
                                 f"got {bucket_boundaries!r}")
            self.boundaries = auto_bucket_boundaries(self.lengths, length)
        else:
            self.boundaries = normalise_boundaries(bucket_boundaries, length)
        self.epoch = 0
        self._plan()

    def _plan(self):
        n = len(self.lengths)
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(n)
                 if self.shuffle else np.arange(n))
        if len(self.boundaries) == 1:  # no buckets: consecutive batches
            stop = n - n % self.batch_size if self.drop_remainder else n
            self._batches = [order[i:i + self.batch_size]
                             for i in range(0, stop, self.batch_size)]
            self._widths = [self.boundaries[0]] * len(self._batches)
        else:
            self._batches, self._widths = plan_batches(
                order, self.lengths, self.boundaries, self.batch_size, self.drop_remainder)
        if not self._batches:
            raise ValueError(f"PreparedBatches: {n} examples give no batch of "
                             f"{self.batch_size} with drop_remainder.")

    def __len__(self):
        return len(self._batches)

    def _padded_rows(self, index):
        """The global batch `index` padded to `pad_to_multiple` (pad rows
        repeat its first row), this process's slice of it, and the slice's
        sample weights."""
        rows = self._batches[index]
        real = len(rows)
        padded = self._padded_size(real)
        rows = np.concatenate([rows, np.repeat(rows[:1], padded - real)])
        weights = (np.arange(padded) < real).astype(np.float32)
        per_process = padded // self.process_count
        piece = slice(self.process_index * per_process, (self.process_index + 1) * per_process)
        return rows[piece], weights[piece]

    def __getitem__(self, index):
        rows, weights = self._padded_rows(index)
        width = self._widths[index]
        x = {k: v[rows, :width] for k, v in self.inputs.items()}
        if self.targets is None:
            return x
        y = (self.targets["y"][rows] if self._single_target
             else {k: v[rows] for k, v in self.targets.items()})
        return (x, y) if self.pad_to_multiple == 1 else (x, y, weights)

    def real_rows(self):
        """Booleans over this process's rows, batch after batch: False for
        the padding rows (drop them from `predict`'s output)."""
        return np.concatenate([self._padded_rows(i)[1] > 0 for i in range(len(self))])

    def global_real_rows(self):
        """`real_rows` over the whole padded global batches (every
        process's slices, in process order): for predictions gathered from
        all processes."""
        return np.concatenate([np.arange(self._padded_size(len(rows))) < len(rows)
                               for rows in self._batches])

    def _padded_size(self, rows):
        """`rows` rounded up to a multiple of `pad_to_multiple`."""
        return -(-rows // self.pad_to_multiple) * self.pad_to_multiple

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def set_epoch(self, epoch):
        """Plans epoch `epoch`'s batches: a `fit` resumed at epoch `e` by
        `BackupAndRestore` must see the order epoch `e` had in the
        uninterrupted run, not epoch 0's (call it from `on_epoch_begin`)."""
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            if self.shuffle:
                self._plan()

    def inputs_only(self):
        """Batches of the inputs alone, in the examples' order (for
        `predict`)."""
        return PreparedBatches(self.inputs, None, self.batch_size,
                               pad_to_multiple=self.pad_to_multiple,
                               process_index=self.process_index,
                               process_count=self.process_count)
