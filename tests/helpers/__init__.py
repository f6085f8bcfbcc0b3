"""Shared test helpers: tiny run settings, vocabularies, independent
references (`reference`), a tiny HuggingFace-layout BERT (`hf_bert`) and the
worker scripts that tests start in subprocesses."""

from ptloss_tf.training.data.tokenization import SPECIAL_TOKENS

#: A `ptloss-distill` run on the synthetic task that takes seconds: the
#: settings every end-to-end test starts from.
TINY_RUN = [
    "--synthetic-train", "160", "--synthetic-validation", "80",
    "--synthetic-test", "80", "--epochs", "1", "--candidates", "8",
    "--order", "2", "--student-layers", "1", "--hidden", "16", "--heads", "2",
    "--intermediate", "32", "--batch-size", "32", "--verbose", "0",
    "--no-xla",
]


def vocabulary(words):
    """A BERT wordpiece vocabulary: the special tokens, then `words`.

    Example:
    >>> vocabulary(["good", "bad"])[4:]
    ['[MASK]', 'good', 'bad']
    """
    return list(SPECIAL_TOKENS) + list(words)


def tiny_synthetic_task():
    """The synthetic task of a `TINY_RUN` (sizes from `TINY_RUN`, the teacher
    and task options from `ptloss-distill`'s defaults), built independently
    of the CLI."""
    from ptloss_tf.training.config import DEFAULTS
    from ptloss_tf.training.synthetic import make_synthetic_task

    return make_synthetic_task(
        num_train=160, num_validation=80, num_test=80, seed=0,
        overconfidence=DEFAULTS.overconfidence, prior_shift=DEFAULTS.prior_shift,
        noise=DEFAULTS.teacher_noise, negation_rate=DEFAULTS.negation_rate)


def jax_env(devices=None):
    """A subprocess environment for Keras on JAX, with `devices` forced host
    (CPU) devices when given (`XLA_FLAGS` of the parent dropped)."""
    import os

    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def free_port():
    """A TCP port free on the loopback interface now (for a coordinator)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_training_cli(*argv, cwd=None, timeout=600, check=False):
    """`ptloss-distill ARGV` (`python -m ptloss_tf.training`) in a fresh
    process with the user's environment (no TF_CPP_MIN_LOG_LEVEL); returns
    the `CompletedProcess`. `check`: assert it exits 0 (showing stderr's tail)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "ptloss_tf.training", *argv],
                            capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result

