"""Data for the distillation application: the task registry (`tasks`),
loading examples from TFDS or local files (`examples`), and `tf.data`
pipelines with keras-hub tokenisation and length bucketing (`pipeline`).

`make_dataset` and `sequence_lengths` are imported on first use, so that
importing the registry or the loaders does not import TensorFlow.
"""

from ptloss_tf.training.data.examples import Examples
from ptloss_tf.training.data.examples import load_file
from ptloss_tf.training.data.examples import load_split
from ptloss_tf.training.data.tasks import TASKS
from ptloss_tf.training.data.tasks import TaskSpec
from ptloss_tf.training.data.tasks import default_data_root
from ptloss_tf.training.data.tasks import get_task

__all__ = [
    "Examples", "TASKS", "TaskSpec", "default_data_root", "get_task", "load_file",
    "load_split", "make_dataset", "sequence_lengths",
]


def __getattr__(name):
    if name in ("make_dataset", "sequence_lengths"):
        from ptloss_tf.training.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'ptloss_tf.training.data' has no attribute {name!r}")
