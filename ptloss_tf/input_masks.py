"""Input conversions the `Distiller` applies before Keras sees the data:
`int_masks` (bool masks become int32 under `tf.distribute`), and
`tensorflow_or_none` for code that accepts `tf.data` where TensorFlow is
installed and runs without it elsewhere (JAX-only hosts)."""

import keras
import numpy as np
from keras import ops


def tensorflow_or_none():
    """TensorFlow if installed (tf.data inputs), else None (e.g. JAX-only hosts)."""
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return tf


def _is_bool(t):
    dtype = getattr(t, "dtype", None)
    return dtype is not None and str(getattr(dtype, "name", dtype)) == "bool"


def _cast_bool(t):
    if isinstance(t, np.ndarray):
        return t.astype(np.int32) if t.dtype == bool else t
    return ops.cast(t, "int32") if _is_bool(t) else t


def int_masks(data):
    """Bool tensors (keras-hub's `padding_mask`) in data become int32.

    Why: under a `tf.distribute` strategy Keras 3 builds the model from the
    first batch after `strategy.reduce("MEAN", batch)` over the replicas
    (`TensorFlowTrainer._maybe_symbolic_build`), and that reduction uses
    `AddN`, which has no bool kernel: `fit` fails with "Value for attr 'T' of
    bool is not in the list of allowed values ... AddN" before the first
    step. keras-hub's BERT backbone casts the mask itself, so int32 changes
    nothing else. Datasets are mapped, arrays converted.

    Example:
    >>> int_masks({"padding_mask": np.array([[True, False]])})["padding_mask"].tolist()
    [[1, 0]]
    """
    tf = tensorflow_or_none()
    if tf is not None and isinstance(data, tf.data.Dataset):
        specs = keras.tree.flatten(data.element_spec)
        if any(getattr(s, "dtype", None) == tf.bool for s in specs):
            return data.map(
                lambda *e: keras.tree.map_structure(_cast_bool, e if len(e) > 1 else e[0]),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        return data
    if data is None:
        return None
    return keras.tree.map_structure(_cast_bool, data)
