"""Session-wide test setup (runs before any test module imports TensorFlow).

Two logical CPU devices let tests run `tf.distribute.MirroredStrategy` with
2 replicas on a CPU-only machine. This must happen before the TensorFlow
runtime initialises, hence here, in `pytest_configure`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0],
            [tf.config.LogicalDeviceConfiguration()] * 2,
        )
    except RuntimeError:  # already initialised (e.g. a plugin imported TF)
        pass
