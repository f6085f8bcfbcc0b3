import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One 2-replica MirroredStrategy for the whole session.

    Several MirroredStrategy objects in one process can hand out clashing
    collective instance keys ("Shape mismatch in the collective instance"),
    so tests share this one.
    """
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    assert strategy.num_replicas_in_sync == 2
    return strategy


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished `ptloss-distill` run (`helpers.TINY_RUN`, methods kl and
    ptloss) shared by the CLI and export tests. Read it, never change it: a
    test that needs to change a run works on a copy (`shutil.copytree`)."""
    from ptloss_tf.training.cli import main
    from tests.helpers import TINY_RUN

    out = tmp_path_factory.mktemp("tiny_run") / "out"
    assert main(TINY_RUN + ["--output-dir", str(out)]) == 0
    return out
