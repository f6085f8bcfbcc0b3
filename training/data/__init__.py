"""Data for the distillation application.

* `tasks`: the registry of text-classification tasks (`TaskSpec`).
* `tables`: the one TSV / CSV / JSONL reader.
* `examples`: `Examples` in memory and `load_file` for a user's own file.
* `sources`: a registered task's splits from TFDS or the local files.
* `tokenization`: BERT special tokens, vocabularies, keras-hub preprocessing
  (shared with `ptloss_tf.export`).
* `input_pipeline`: `tf.data` pipelines with length bucketing.

`make_dataset` and `sequence_lengths` are imported on first use, so that
importing the registry or the loaders does not import TensorFlow.
"""

from ptloss_tf.training.data.examples import Examples
from ptloss_tf.training.data.examples import load_file
from ptloss_tf.training.data.sources import load_split
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
        from ptloss_tf.training.data import input_pipeline

        return getattr(input_pipeline, name)
    raise AttributeError(f"module 'ptloss_tf.training.data' has no attribute {name!r}")
