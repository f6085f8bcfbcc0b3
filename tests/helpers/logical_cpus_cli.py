"""Runs `ptloss-distill` with 2 logical CPU devices (for `--strategy mirrored`
tests on a CPU-only machine).

Usage: ``python tests/helpers/logical_cpus_cli.py [ptloss-distill args...]``.

The root conftest.py gives pytest's own process 2 logical CPUs, but a
subprocess starts TensorFlow afresh with one CPU device, so
`MirroredStrategy()` would get a single replica. The logical devices must be
configured before the TensorFlow runtime initialises: here, before the CLI
is imported. A separate process is needed anyway: several
`MirroredStrategy` objects in one process clash.

Only cheap imports at module level: pytest's --doctest-modules imports this
file.
"""

import sys

NUM_LOGICAL_CPUS = 2


def main(argv):
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS
    )
    from ptloss_tf.training.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
