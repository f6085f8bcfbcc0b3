"""Data for the distillation application: the task registry (`tasks`),
loading examples from TFDS or local files (`examples`), and `tf.data`
pipelines with keras-hub tokenisation and length bucketing (`pipeline`)."""

from training.data.examples import Examples
from training.data.examples import load_file
from training.data.examples import load_split
from training.data.pipeline import make_dataset
from training.data.pipeline import sequence_lengths
from training.data.tasks import TASKS
from training.data.tasks import TaskSpec
from training.data.tasks import default_data_root
from training.data.tasks import get_task

__all__ = [
    "Examples", "TASKS", "TaskSpec", "default_data_root", "get_task", "load_file",
    "load_split", "make_dataset", "sequence_lengths",
]
