"""`make_strategy`: one call for the `tf.distribute` strategy a run needs.

Names: `"default"` (one device, no distribution), `"mirrored"` (all local
GPUs, or the given devices), `"multi_worker"` (synchronous data parallelism
over the workers in `TF_CONFIG`) and `"tpu"` (a Cloud TPU, a TPU VM or a
Colab TPU). The `ptloss_tf.Distiller` works under all of them: its losses
are Keras `Loss` objects, so a step under a strategy equals a single-device
step on the global batch.

Always create the strategy first, then build and compile inside its scope:

    strategy = make_strategy("mirrored")
    with strategy.scope():
        student = build_student()
        distiller = ptloss_tf.Distiller(student)
        distiller.compile(optimizer=keras.optimizers.AdamW(3e-5),
                          distillation_loss=ptloss_tf.PTLoss(eta, from_logits=True))
    distiller.fit(train_ds, epochs=3)   # train_ds batched with the GLOBAL batch

Multi-worker
------------
Every worker runs the same program with its own `TF_CONFIG`, e.g. for worker 1
of 2::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 1}}'

Create the strategy at the very start of the program, before any other
TensorFlow op. Batch the dataset with the global batch size and keep
`tf.data.experimental.AutoShardPolicy.DATA` (in-memory or single-file data:
each worker takes its part of every global batch) or `FILE` (many input
files: each worker reads a subset of the files). Only the chief (worker 0)
should write checkpoints/exports to their final location.
`keras.callbacks.BackupAndRestore` makes the job resumable after a worker
is lost: rerun the same command and it restores the last backup (weights
and optimizer state) and restarts the interrupted epoch from its first
batch, so that epoch's batches before the backup are seen twice.

The returned strategy is a `MultiWorkerMirroredStrategy` subclass whose
`reduce` accepts the nested and scalar values Keras 3.15's `fit` passes to
it; with the stock class `fit` of any Keras model fails as soon as there
are two workers (see `_KerasMultiWorkerMirroredStrategy`).

TPU recipe
----------
1. Storage: TPU workers run on separate hosts and cannot read the local
   disk of the VM that starts the job (Cloud TPU nodes; on a TPU VM with
   `tpu="local"` local files do work, but pods still need shared storage).
   Put training data, teacher caches, checkpoints, `BackupAndRestore`
   directories and TensorBoard logs on `gs://bucket/...` paths (tf.data,
   `keras.callbacks.TensorBoard(log_dir="gs://...")` and TensorFlow file I/O
   read and write them directly).
2. `steps_per_execution`: pass e.g. 32-256 to `Distiller.compile` so one
   host->TPU call runs many steps; with 1 the host round trip dominates
   small models. Callbacks then see every `steps_per_execution`-th batch.
3. Static shapes: XLA compiles one program per input shape. Batch with
   `drop_remainder=True` and pad text to a fixed sequence length (or to a
   few fixed bucket lengths with `bucket_by_sequence_length(...,
   pad_to_bucket_boundary=True)`), so no step sees a new shape.
4. Mixed precision: `keras.mixed_precision.set_global_policy("mixed_bfloat16")`
   before building the student (TPUs compute natively in bfloat16; the
   Distiller and PTLoss compute the loss in float32).
5. Create the student, optimizer and Distiller and call `compile` inside
   `strategy.scope()`; build the dataset outside (Keras distributes it).

    strategy = make_strategy("tpu", tpu="local")      # or a TPU name
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    with strategy.scope():
        distiller = ptloss_tf.Distiller(build_student())
        distiller.compile(optimizer="adam", steps_per_execution=64,
                          distillation_loss=ptloss_tf.PTLoss(eta, from_logits=True))
    ds = tf.data.TFRecordDataset(tf.io.gfile.glob("gs://bucket/train-*"))...
    distiller.fit(ds.batch(1024, drop_remainder=True), epochs=3,
                  callbacks=[keras.callbacks.BackupAndRestore("gs://bucket/backup")])

See docs/TPU.md for the same recipe with more detail.
"""

import json
import os

import tensorflow as tf

STRATEGY_NAMES = ("default", "mirrored", "multi_worker", "tpu")

_TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)

_TPU_VALUES = (
    "Accepted `--tpu` / `tpu=` values: a Cloud TPU name (e.g. 'my-tpu', in the "
    "VM's zone and project), a TPU worker gRPC address "
    "(e.g. 'grpc://10.0.0.2:8470'), 'local' on a TPU VM where the chips are "
    "attached to this host, or None / '' to auto-detect (the TPU_NAME "
    "environment variable, Colab, GKE). On CPU/GPU machines use "
    "make_strategy('default') or make_strategy('mirrored') instead."
)


def _normalise_name(name):
    key = str(name if name is not None else "default").strip().lower()
    key = key.replace("-", "_")
    aliases = {
        "": "default",
        "multiworker": "multi_worker",
        "multi_worker_mirrored": "multi_worker",
    }
    key = aliases.get(key, key)
    if key not in STRATEGY_NAMES:
        raise ValueError(
            f"unknown strategy {name!r}; choose one of "
            f"{', '.join(repr(n) for n in STRATEGY_NAMES)}."
        )
    return key


def _tf_config_error(problem):
    return ValueError(
        f"make_strategy('multi_worker') needs a valid TF_CONFIG environment "
        f"variable: {problem}. Every worker sets TF_CONFIG to JSON of the form "
        f"{_TF_CONFIG_EXAMPLE} (same cluster on all workers, its own task "
        f"index on each)."
    )


def _check_tf_config():
    """Parses and checks `TF_CONFIG`; returns the parsed dict."""
    raw = os.environ.get("TF_CONFIG")
    if raw is None or not raw.strip():
        raise _tf_config_error("TF_CONFIG is not set")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise _tf_config_error(
            f"TF_CONFIG is not valid JSON ({e.msg}): {raw!r}"
        ) from None
    if not isinstance(config, dict):
        raise _tf_config_error(f"TF_CONFIG must be a JSON object, got {raw!r}")
    cluster = config.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise _tf_config_error("TF_CONFIG has no non-empty 'cluster' object")
    for job, addresses in cluster.items():
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and ":" in a for a in addresses)
        ):
            raise _tf_config_error(
                f"TF_CONFIG cluster job {job!r} must be a non-empty list of "
                f"'host:port' strings, got {addresses!r}"
            )
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise _tf_config_error(
            "TF_CONFIG has no 'task' object with 'type' and 'index'"
        )
    if task["type"] not in cluster:
        raise _tf_config_error(
            f"TF_CONFIG task type {task['type']!r} is not a job of the cluster "
            f"{sorted(cluster)}"
        )
    index = task["index"]
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not 0 <= index < len(cluster[task["type"]])
    ):
        raise _tf_config_error(
            f"TF_CONFIG task index {index!r} is not in "
            f"[0, {len(cluster[task['type']])}) for job {task['type']!r}"
        )
    return config


def _static_rank(value):
    if isinstance(value, tf.distribute.DistributedValues):
        value = value.values[0]
    shape = getattr(value, "shape", None)
    return None if shape is None else shape.rank


class _KerasMultiWorkerMirroredStrategy(
    tf.distribute.MultiWorkerMirroredStrategy
):
    """`MultiWorkerMirroredStrategy` whose `reduce` accepts what Keras 3 sends.

    Keras 3.15's TensorFlow trainer calls `strategy.reduce` in two ways that
    `MultiWorkerMirroredStrategy` rejects as soon as there are two or more
    workers, so `fit` of ANY Keras model fails there (one worker, or
    `MirroredStrategy`, take other code paths and work):

    1. `strategy.reduce("MEAN", (x, y), axis=None)` on the first batch, to
       build the model (`TensorFlowTrainer._maybe_symbolic_build`):
       `MirroredStrategy` reduces a nest leaf by leaf, the collective
       implementation converts the whole tuple and fails with "ValueError:
       Attempt to convert a value (PerReplica:{...}) with an unsupported
       type".
    2. `strategy.reduce("MEAN", metric, axis=0)` on every step's scalar
       metrics (`reduce_per_replica` for multi-worker collectives): fails
       with "Invalid reduction dimension 0 for input with 0 dimensions".

    Here nests are reduced leaf by leaf (in `tf.nest` order, the same on
    every worker, so the collectives pair up) and a rank-0 value reduced
    "along axis 0" is reduced across replicas only (`axis=None`), which is
    what `MirroredStrategy`'s `tf.reduce_mean(per_replica_values, axis=0)`
    computes for the same metrics. Other values take the stock path. Only
    the logged metrics and the build batch go through `reduce`; gradients
    are all-reduced by the optimizer as usual.
    """

    def reduce(self, reduce_op, value, axis):
        if not isinstance(value, tf.distribute.DistributedValues) and isinstance(
            value, (tuple, list, dict)
        ):
            return tf.nest.map_structure(
                lambda v: self.reduce(reduce_op, v, axis), value
            )
        if axis is not None and _static_rank(value) == 0:
            axis = None
        return super().reduce(reduce_op, value, axis)


def _mirrored_devices(devices):
    if devices is None:
        return None
    if isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    devices = list(devices)
    if not devices:
        raise ValueError("`devices` must name at least one device, or be None.")
    return devices


def _short(error):
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 300:
        first = first[:300] + "..."
    return f"{type(error).__name__}: {first}"


def _tpu_strategy(tpu):
    where = "auto-detect" if tpu in (None, "") else repr(tpu)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    except Exception as e:  # noqa: BLE001 - ValueError, URLError, ImportError, ...
        raise RuntimeError(
            f"No TPU was found (tpu={where}): the TPU could not be resolved "
            f"({_short(e)}). {_TPU_VALUES}"
        ) from None
    try:
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as e:  # noqa: BLE001 - NotFoundError, UnavailableError, ...
        raise RuntimeError(
            f"No TPU was found (tpu={where}): connecting to or initialising the "
            f"TPU system failed ({_short(e)}). {_TPU_VALUES}"
        ) from None
    if not tf.config.list_logical_devices("TPU"):
        raise RuntimeError(
            f"No TPU was found (tpu={where}): the TPU system initialised but "
            f"lists no TPU devices. {_TPU_VALUES}"
        )
    return tf.distribute.TPUStrategy(resolver)


def make_strategy(name="default", tpu=None, devices=None):
    """Returns the `tf.distribute.Strategy` called `name`.

    Args:
        name: `"default"` -> `tf.distribute.get_strategy()` (the current
            strategy: the no-op default strategy outside any scope);
            `"mirrored"` -> `tf.distribute.MirroredStrategy(devices)`
            (synchronous replicas on the local GPUs, or on `devices`);
            `"multi_worker"` -> `tf.distribute.MultiWorkerMirroredStrategy()`
            configured from the `TF_CONFIG` environment variable (checked
            first: a missing or malformed TF_CONFIG raises ValueError), with
            `strategy.reduce` fixed for nested values so that Keras 3 `fit`
            works across several workers (see
            `_KerasMultiWorkerMirroredStrategy`);
            `"tpu"` -> `tf.distribute.TPUStrategy` after resolving,
            connecting to and initialising the TPU given by `tpu`.
            Case-insensitive; `-` works for `_`.
        tpu: only for `"tpu"`: a Cloud TPU name, a gRPC address
            (`"grpc://10.0.0.2:8470"`), `"local"` (TPU VM), or None / `""` to
            auto-detect (TPU_NAME, Colab, GKE).
        devices: only for `"mirrored"`: device names (a list, or a
            comma-separated string such as `"/gpu:0,/gpu:1"`); None uses all
            local GPUs (without GPUs: the local CPU devices, one unless
            logical CPUs were configured).

    Returns:
        A `tf.distribute.Strategy`. Build the model, optimizer and
        `Distiller` and call `compile` inside `strategy.scope()`.

    Raises:
        ValueError: unknown `name`, `tpu`/`devices` given to a strategy that
            does not use them, or a missing/malformed `TF_CONFIG`.
        RuntimeError: `"tpu"` where no TPU can be found or initialised (the
            message lists the accepted `tpu` values).

    Example:
    >>> import ptloss_tf.strategy as st
    >>> strategy = st.make_strategy("default")
    >>> strategy.num_replicas_in_sync
    1
    >>> st.make_strategy("gpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown strategy 'gpu'; choose one of 'default', 'mirrored', 'multi_worker', 'tpu'.
    """
    key = _normalise_name(name)
    if devices is not None and key != "mirrored":
        raise ValueError(
            f"`devices` is only used by make_strategy('mirrored'), got "
            f"name={name!r} with devices={devices!r}."
        )
    if tpu is not None and tpu != "" and key != "tpu":
        raise ValueError(
            f"`tpu` is only used by make_strategy('tpu'), got name={name!r} "
            f"with tpu={tpu!r}."
        )
    if key == "default":
        return tf.distribute.get_strategy()
    if key == "mirrored":
        return tf.distribute.MirroredStrategy(_mirrored_devices(devices))
    if key == "multi_worker":
        _check_tf_config()
        return _KerasMultiWorkerMirroredStrategy()
    return _tpu_strategy(tpu)
