"""`MeshStrategy`: a run's `keras.distribution` device mesh under JAX
(`--distribution`), standing where the TensorFlow route has its
`tf.distribute` strategy.

It joins the processes of a multi-host job first (`--coordinator`,
`--num-processes`, `--process-id`, or JAX's environment), builds the mesh
(`ptloss_tf.distribution.make_distribution`) and sets it for the whole run,
so that building, `fit`, `evaluate` and `predict` all run on it. It tells
the rest of the run what a mesh changes: how `PreparedBatches` pad and
slice the global batches (`batch_options`), which process writes the run's
files (`is_writer`), where the processes wait for each other (`barrier`),
and how predictions come back whole from every process (`predict`).
"""

import contextlib

import numpy as np

from ptloss_tf.distribution import BATCH_AXIS
from ptloss_tf.distribution import axis_size
from ptloss_tf.distribution import check_batch_size
from ptloss_tf.distribution import check_dimensions
from ptloss_tf.distribution import describe_mesh
from ptloss_tf.distribution import initialize_processes
from ptloss_tf.distribution import make_distribution
from ptloss_tf.distribution import outside_distribution


class MeshStrategy:
    """The run's device mesh; see the module docstring.

    Args:
        config: the run's `DistillConfig` (`distribution`, `devices`,
            `model_parallel`, the process flags, `batch_size`).
    """

    def __init__(self, config):
        import keras

        self.process_index, self.process_count = initialize_processes(
            config.coordinator, config.num_processes, config.process_id)
        # PreparedBatches already hand each process its slice.
        self.distribution = make_distribution(config.distribution, devices=config.devices,
                                              model_parallel=config.model_parallel,
                                              auto_shard_dataset=False)
        check_batch_size(self.distribution, config.batch_size)
        if config.preset is None and config.distribution == "model_parallel":
            check_dimensions(self.distribution, num_heads=config.heads,
                             hidden_dim=config.hidden, intermediate_dim=config.intermediate)
        self.num_replicas_in_sync = axis_size(self.distribution, BATCH_AXIS)
        keras.distribution.set_distribution(self.distribution)

    #: Padded rows weigh 0 (`PreparedBatches`): a batch's loss is the mean
    #: over its real rows only with this reduction.
    loss_reduction = "mean_with_sample_weight"

    @property
    def is_writer(self):
        """Only process 0 writes the run's files."""
        return self.process_index == 0

    def scope(self):
        # The mesh is set for the whole run (fit and predict need it too).
        return contextlib.nullcontext()

    def describe(self):
        """`report.json`'s `hardware.mesh`."""
        return describe_mesh(self.distribution)

    def batch_options(self):
        """`PreparedBatches` keyword arguments: pad every global batch to the
        batch axis, hand this process its slice."""
        return {"pad_to_multiple": self.num_replicas_in_sync,
                "process_index": self.process_index, "process_count": self.process_count}

    def writing(self):
        """The context process 0 writes files in (`outside_distribution`
        when other processes share the mesh)."""
        if self.process_count > 1:
            return outside_distribution()
        return contextlib.nullcontext()

    def barrier(self, name):
        """Waits until every process reaches `name` (no-op for one process)."""
        if self.process_count > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(name)

    def predict(self, model, batches):
        """`model`'s outputs for the rows of `batches` (`PreparedBatches` of
        inputs), padding dropped, the same whole array on every process."""
        if self.process_count == 1:
            outputs = np.asarray(model.predict(batches, verbose=0))
            return outputs[batches.real_rows()]
        # Keras' predict fetches each output batch to the host, which JAX
        # refuses for an array spread over other processes' devices: run the
        # forward pass on global arrays and gather it on every process.
        import jax
        from jax.experimental import multihost_utils

        outputs = []
        for index in range(len(batches)):
            local = batches[index]
            rows, width = local["token_ids"].shape
            layout = self.distribution.get_data_layout((rows * self.process_count, width))
            inputs = {k: jax.make_array_from_process_local_data(layout.backend_layout, v)
                      for k, v in local.items()}
            outputs.append(np.asarray(multihost_utils.process_allgather(
                model(inputs, training=False), tiled=True)))
        return np.concatenate(outputs)[batches.global_real_rows()]


def barrier(strategy, name):
    """`strategy.barrier(name)` where the strategy has one (a mesh)."""
    if hasattr(strategy, "barrier"):
        strategy.barrier(name)


def writing(strategy):
    """`strategy.writing()` where the strategy has one (a mesh), else a
    context that changes nothing."""
    return strategy.writing() if hasattr(strategy, "writing") else contextlib.nullcontext()


def best_weights_checkpoint(path, strategy):
    """A `ModelCheckpoint` of the best validation accuracy's weights that
    writes in `writing(strategy)`."""
    import keras

    class Checkpoint(keras.callbacks.ModelCheckpoint):
        def on_epoch_end(self, epoch, logs=None):
            with writing(strategy):
                super().on_epoch_end(epoch, logs)

    return Checkpoint(path, monitor="val_accuracy", mode="max", save_best_only=True,
                      save_weights_only=True)


def is_writer(strategy):
    """Whether this process writes the run's files (all but a mesh's
    processes other than 0)."""
    return getattr(strategy, "is_writer", True)
