"""Runs `ptloss-distill ARGS...` in a process where TensorFlow (and
TF Text, TFDS) cannot be imported, as on a JAX- or PyTorch-only host:

    KERAS_BACKEND=jax python tests/helpers/without_tensorflow.py --prepared-data DIR ...
    KERAS_BACKEND=jax python tests/helpers/without_tensorflow.py -m MODULE ARGS...

An import of a blocked module raises ModuleNotFoundError; at exit the
process prints `TENSORFLOW_BLOCKED_IMPORTS=<n>` (how many were refused) so a
test can also see that nothing tried.
"""

import atexit
import sys

BLOCKED = ("tensorflow", "tensorflow_text", "tensorflow_datasets", "tf_keras")
refused = []


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            refused.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
atexit.register(lambda: print(f"TENSORFLOW_BLOCKED_IMPORTS={len(refused)}", flush=True))

if __name__ == "__main__":
    if sys.argv[1:2] == ["-m"]:  # another module, as `python -m` runs it
        import os
        import runpy

        sys.path.insert(0, os.getcwd())  # as `python -m` does
        sys.argv = sys.argv[2:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
        sys.exit(0)
    from ptloss_tf.training.cli import main

    sys.exit(main(sys.argv[1:]))
