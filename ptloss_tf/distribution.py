"""`make_distribution`: Keras 3's own multi-device engine
(`keras.distribution`) for the JAX route, as `make_strategy` is for
`tf.distribute`.

Kinds: `"data_parallel"` (every device holds the whole student; each global
batch is split along its first axis) and `"model_parallel"` (a 2-D
`("batch", "model")` mesh; the BERT student's dense kernels and embeddings
are split along the `"model"` axis by `bert_layout_map`, the batch along
`"batch"`). Several processes (hosts) join one mesh through
`initialize_processes` (`keras.distribution.initialize`, which calls
`jax.distributed.initialize`) before anything else touches the devices.

Under a distribution every global batch must divide evenly over the batch
axis; `ptloss_tf.training`'s `PreparedBatches` pads a partial batch with
rows of sample weight 0, so the same seed gives the same global batches for
any device count. Build the losses with `reduction="mean_with_sample_weight"`
so that a padded batch's loss is the mean over its real rows (Keras' default
`"sum_over_batch_size"` would divide by the padded count); the `Distiller`
reduces its student loss the same way and weighs its running means by the
total sample weight. DIST's intra-class term, a correlation over the whole
batch, weighs the rows by their sample weights, so padding rows drop out of
it too.

Example (forced host devices, as the tests run it on a CPU):

    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax python -c '
    from ptloss_tf.distribution import make_distribution
    d = make_distribution("data_parallel")
    print(describe_mesh(d))'
    # {'kind': 'data_parallel', 'shape': [2], 'axis_names': ['batch'], ...}
"""

import contextlib
import os
import re

KINDS = ("data_parallel", "model_parallel")
BATCH_AXIS = "batch"
MODEL_AXIS = "model"

#: Variable-path patterns of a keras-hub BERT (`BertBackbone` and
#: `BertTextClassifier`; Keras matches a pattern against the whole path)
#: -> the mesh axis of each dimension. Attention
#: kernels are split over heads, the feed-forward kernels over the
#: intermediate dimension (Megatron's column-then-row split, so each layer
#: needs one all-reduce), the embeddings over the hidden dimension (a
#: vocabulary of 30,522 rows divides by no even device count).
BERT_LAYOUT = {
    r"(.*/)?token_embedding/embeddings": (None, MODEL_AXIS),
    r"(.*/)?position_embedding/embeddings": (None, MODEL_AXIS),
    r".*self_attention_layer/(query|key|value)/kernel": (None, MODEL_AXIS, None),
    r".*self_attention_layer/(query|key|value)/bias": (MODEL_AXIS, None),
    r".*self_attention_layer/attention_output/kernel": (MODEL_AXIS, None, None),
    r".*feedforward_intermediate_dense/kernel": (None, MODEL_AXIS),
    r".*feedforward_intermediate_dense/bias": (MODEL_AXIS,),
    r".*feedforward_output_dense/kernel": (MODEL_AXIS, None),
}


def initialize_processes(coordinator=None, num_processes=None, process_id=None):
    """Joins this process to a multi-process JAX job (no-op for one process).

    Call it first, before any device is touched. Without arguments
    `jax.distributed.initialize` reads the standard environment of the
    cluster (TPU pods, SLURM, or `JAX_COORDINATOR_ADDRESS`,
    `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`).

    Args:
        coordinator: `"host:port"` of process 0.
        num_processes: the number of processes.
        process_id: this process's index, `0 <= process_id < num_processes`.

    Returns:
        `(process_index, process_count)`.
    """
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if not any(given) and "JAX_COORDINATOR_ADDRESS" in os.environ:
        import jax

        jax.distributed.initialize()  # reads JAX_COORDINATOR_ADDRESS, ..._NUM_PROCESSES, ...
        return jax.process_index(), jax.process_count()
    if any(given) and not all(given):
        raise ValueError("`coordinator`, `num_processes` and `process_id` go together: "
                         "give all three or none.")
    if num_processes is not None:
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ValueError(f"`process_id` must lie in [0, {num_processes}), got "
                             f"{process_id}.")
        if num_processes > 1:
            import keras

            keras.distribution.initialize(coordinator, num_processes, process_id)
    import jax

    return jax.process_index(), jax.process_count()


def make_distribution(kind, devices=None, model_parallel=None, auto_shard_dataset=True):
    """A `keras.distribution.Distribution` over the first `devices` devices.

    Args:
        kind: `"data_parallel"` or `"model_parallel"`.
        devices: how many devices the mesh holds (default all of them, over
            every process).
        model_parallel: `"model_parallel"` only: the size of the mesh's
            `"model"` axis (default: all the devices, no data parallelism);
            must divide `devices`.
        auto_shard_dataset: Keras' own: with several processes, split a
            `tf.data.Dataset` between them. False for data that arrives
            already split per process (`PreparedBatches` with
            `process_index`), which Keras otherwise refuses.

    Returns:
        A `DataParallel` or a `ModelParallel` with `bert_layout_map`; enter
        its `scope()` (or `keras.distribution.set_distribution`) before
        building the model.

    Raises:
        ValueError: an unknown kind, more devices than there are, or a
            model axis that does not divide the device count.
    """
    import keras

    if kind not in KINDS:
        raise ValueError(f"unknown distribution {kind!r}; known: {', '.join(KINDS)}.")
    available = keras.distribution.list_devices()
    count = len(available) if devices is None else int(devices)
    if not 1 <= count <= len(available):
        raise ValueError(f"`devices` must lie in [1, {len(available)}] (the devices "
                         f"there are), got {devices}.")
    chosen = available[:count]
    if kind == "data_parallel":
        if model_parallel not in (None, 1):
            raise ValueError("`model_parallel` is for the model_parallel distribution.")
        return keras.distribution.DataParallel(devices=chosen,
                                               auto_shard_dataset=auto_shard_dataset)
    model = count if model_parallel is None else int(model_parallel)
    if model < 1 or count % model:
        raise ValueError(f"`model_parallel` ({model_parallel}) must divide the "
                         f"{count} devices of the mesh.")
    mesh = keras.distribution.DeviceMesh(shape=(count // model, model),
                                         axis_names=(BATCH_AXIS, MODEL_AXIS), devices=chosen)
    return keras.distribution.ModelParallel(layout_map=bert_layout_map(mesh),
                                            batch_dim_name=BATCH_AXIS,
                                            auto_shard_dataset=auto_shard_dataset)


def bert_layout_map(device_mesh, layout=None):
    """A `keras.distribution.LayoutMap` splitting a keras-hub BERT's dense
    kernels and embeddings over the mesh's `"model"` axis (`BERT_LAYOUT`,
    or `layout`: pattern -> per-dimension axis names)."""
    import keras

    layout_map = keras.distribution.LayoutMap(device_mesh)
    for pattern, axes in (BERT_LAYOUT if layout is None else layout).items():
        layout_map[pattern] = axes
    return layout_map


def axis_size(distribution, axis):
    """The number of devices along `axis` of the distribution's mesh (1 if
    the mesh has no such axis)."""
    mesh = distribution.device_mesh
    names = list(mesh.axis_names)
    return int(mesh.shape[names.index(axis)]) if axis in names else 1


def check_batch_size(distribution, batch_size):
    """Raises ValueError unless `batch_size` (the global batch) divides over
    the mesh's batch axis."""
    size = axis_size(distribution, BATCH_AXIS)
    if batch_size % size:
        raise ValueError(f"`batch_size` {batch_size} does not divide over the {size} "
                         f"devices of the mesh's batch axis; use a multiple of {size}.")


def check_dimensions(distribution, **dimensions):
    """Raises ValueError unless every named model dimension (e.g.
    `num_heads=12, hidden_dim=384, intermediate_dim=1536`, the ones
    `BERT_LAYOUT` splits) divides over the mesh's `"model"` axis. Call it
    before building the model: JAX refuses an uneven split while it creates
    the variables, with a message that names no variable.

    Example:
    >>> class Mesh:  # a 1 x 4 mesh, as make_distribution builds it
    ...     axis_names, shape = ("batch", "model"), (1, 4)
    >>> class Distribution:
    ...     device_mesh = Mesh()
    >>> check_dimensions(Distribution(), hidden_dim=16, num_heads=2)
    Traceback (most recent call last):
    ...
    ValueError: the student's num_heads (2) does not divide over the 4 devices of the mesh's model axis; choose --model-parallel to divide hidden_dim 16, num_heads 2.
    """
    size = axis_size(distribution, MODEL_AXIS)
    for name, value in dimensions.items():
        if value % size:
            listed = ", ".join(f"{k} {v}" for k, v in dimensions.items())
            raise ValueError(f"the student's {name} ({value}) does not divide over the "
                             f"{size} devices of the mesh's model axis; choose "
                             f"--model-parallel to divide {listed}.")


def check_layout(distribution, model):
    """Raises ValueError when a pattern of the distribution's layout map
    matches no variable of `model` (a renamed layer would silently stay
    unsplit) or a split dimension does not divide over its mesh axis.
    Data parallel: nothing to check."""
    layout_map = getattr(distribution, "_layout_map", None)
    if layout_map is None:
        return
    paths = {v.path: tuple(v.shape) for v in model.weights}
    for pattern in layout_map.keys():
        matched = [p for p in paths if re.fullmatch(pattern, p)]
        if not matched:
            raise ValueError(f"layout key {pattern!r} matches no variable of the "
                             f"{model.name} model (e.g. {next(iter(paths))!r}).")
        axes = layout_map[pattern].axes
        for path in matched:
            for dim, axis in zip(paths[path], axes):
                if axis is not None and dim % axis_size(distribution, axis):
                    raise ValueError(
                        f"variable {path} {paths[path]}: dimension {dim} does not divide "
                        f"over the {axis_size(distribution, axis)} devices of mesh axis "
                        f"{axis!r}; choose --model-parallel to divide it.")


@contextlib.contextmanager
def outside_distribution():
    """Runs its block with no distribution set: for process 0 writing files
    in a multi-process job. Keras creates throwaway variables while it saves
    weights (an optimizer, to skip its attributes); under the mesh each one
    is a collective that the other processes never join, and the job stops
    with "passed to device_put is not the same on each process"."""
    import keras

    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


def describe_mesh(distribution):
    """`report.json`'s record of the mesh: kind, shape, axis names, device
    count, process count."""
    import jax

    mesh = distribution.device_mesh
    kind = "model_parallel" if hasattr(distribution, "_layout_map") else "data_parallel"
    return {"kind": kind, "shape": [int(s) for s in mesh.shape],
            "axis_names": list(mesh.axis_names), "devices": int(mesh.devices.size),
            "processes": int(jax.process_count()),
            "device_names": [str(d) for d in mesh.devices.flat]}
