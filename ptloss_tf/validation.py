"""Input validation at the data boundary.

The losses run inside compiled training steps, where value checks would cost
time on every step (and a host round trip on TPU). The checks here therefore
run once, eagerly, where data enters the library: `proxy_teacher`,
`search_coefficients`, the `Distiller`'s dataset check and any direct eager
call of a loss. Inside a traced `tf.function`/XLA step only static shape checks
remain (they are free: they run once, at trace time).
"""

import numpy as np

#: Absolute tolerance on `|sum_k p_k - 1|` for teacher probabilities. Teachers
#: are often exported in bfloat16/float16 (relative precision ~4e-3), so the
#: default is loose enough for those and still catches logits passed by mistake.
PROBABILITY_SUM_TOLERANCE = 1e-2


def as_numpy(x, name):
    """Converts array-likes and (eager) tensors to numpy, or raises."""
    if hasattr(x, "numpy"):
        x = x.numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise ValueError(f"`{name}` could not be converted to an array: {e}")


def check_probabilities(
    probs, name="teacher_probs", tolerance=PROBABILITY_SUM_TOLERANCE
):
    """Checks a `[N, K]` array of probability rows and returns it as float64.

    Args:
        probs: array-like of shape `[N, K]`.
        name: the argument name used in error messages.
        tolerance: allowed absolute deviation of each row sum from 1.

    Raises:
        ValueError: wrong rank, empty, fewer than 2 classes, NaN/inf, negative
            entries, or rows that do not sum to 1 within `tolerance`.

    Example:
    >>> check_probabilities([[0.1, 0.9]]).shape
    (1, 2)
    """
    p = as_numpy(probs, name)
    if p.ndim != 2:
        raise ValueError(
            f"`{name}` must have rank 2 ([num_examples, num_classes]), "
            f"got shape {p.shape}."
        )
    if p.shape[0] == 0:
        raise ValueError(f"`{name}` is empty (shape {p.shape}).")
    if p.shape[1] < 2:
        raise ValueError(
            f"`{name}` must have at least 2 classes, got shape {p.shape}."
        )
    if not np.issubdtype(p.dtype, np.number):
        raise ValueError(f"`{name}` must be numeric, got dtype {p.dtype}.")
    p = p.astype(np.float64)
    bad = ~np.isfinite(p)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"`{name}` contains NaN or inf ({int(bad.sum())} entries; "
            f"first in row {row}: {p[row].tolist()})."
        )
    if (p < 0).any():
        row = int(np.argwhere(p < 0)[0][0])
        raise ValueError(
            f"`{name}` contains negative probabilities (first in row {row}: "
            f"{p[row].tolist()}). Did you pass logits? Apply a softmax first."
        )
    sums = p.sum(axis=1)
    off = np.abs(sums - 1.0) > tolerance
    if off.any():
        row = int(np.argmax(off))
        raise ValueError(
            f"`{name}` rows must sum to 1 (tolerance {tolerance}); "
            f"{int(off.sum())} rows do not, e.g. row {row} sums to "
            f"{sums[row]:.6g}. Did you pass logits? Apply a softmax first."
        )
    return p


def check_labels(labels, num_examples, num_classes, name="labels"):
    """Checks integer class labels `[N]` in `[0, num_classes)`; returns int64.

    Example:
    >>> check_labels([0, 1, 1], 3, 2).tolist()
    [0, 1, 1]
    """
    y = as_numpy(labels, name)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"`{name}` must be integer class ids of shape [num_examples], "
            f"got shape {y.shape}."
        )
    if y.shape[0] != num_examples:
        raise ValueError(
            f"`{name}` has {y.shape[0]} entries but the teacher "
            f"probabilities have {num_examples} rows."
        )
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(
            np.equal(np.mod(y, 1), 0)
        ):
            raise ValueError(
                f"`{name}` must be integer class ids, got dtype {y.dtype}."
            )
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"`{name}` must lie in [0, {num_classes}) (num_classes = "
            f"{num_classes}), got values in [{y.min()}, {y.max()}]."
        )
    return y


def check_positive(value, name):
    """Raises unless `value` is a finite number > 0; returns it as float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number > 0, got {value!r}.")
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    return v
