"""Runs `ptloss-distill ARGS...` in a process where TensorFlow (and
TF Text, TFDS) cannot be imported, as on a JAX- or PyTorch-only host:

    KERAS_BACKEND=jax python tests/helpers/without_tensorflow.py --prepared-data DIR ...
    KERAS_BACKEND=jax python tests/helpers/without_tensorflow.py -m MODULE ARGS...

An import of a blocked module raises ModuleNotFoundError; at exit the
process prints `TENSORFLOW_BLOCKED_IMPORTS=<n>` (how many were refused) so a
test can also see that the blocker was in place. Importing this module
changes nothing: only running it as a script installs the blocker.
"""

import atexit
import os
import sys

BLOCKED = ("tensorflow", "tensorflow_text", "tensorflow_datasets", "tf_keras")


class TensorFlowBlocker:
    """A `sys.meta_path` finder that refuses the `BLOCKED` packages."""

    def __init__(self):
        self.refused = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            self.refused.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


def main(argv):
    blocker = TensorFlowBlocker()
    sys.meta_path.insert(0, blocker)
    atexit.register(lambda: print(f"TENSORFLOW_BLOCKED_IMPORTS={len(blocker.refused)}",
                                  flush=True))
    if argv[:1] == ["-m"]:  # another module, as `python -m` runs it
        import runpy

        sys.path.insert(0, os.getcwd())  # as `python -m` does
        sys.argv = argv[1:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
        return 0
    from ptloss_tf.training.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
