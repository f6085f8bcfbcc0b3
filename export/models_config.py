"""`models.config`: the `model_config_list` for `tensorflow_model_server
--model_config_file`, written beside a model's versions."""

import os

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from ptloss_tf.io_utils import atomic_write_text

MODELS_CONFIG = "models.config"


def models_config_text(name, base_path):
    """The text proto serving `name`'s latest version from `base_path`.

    Example:
    >>> print(models_config_text("sst2", "/models/sst2"), end="")
    model_config_list {
      config {
        name: "sst2"
        base_path: "/models/sst2"
        model_platform: "tensorflow"
      }
    }
    """
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return text_format.MessageToString(config)


def parse_models_config(text):
    """A `ModelServerConfig` from its text proto (raises on bad syntax)."""
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def write_models_config(model_dir, name, serving_base_path=None):
    """Writes `model_dir/models.config`; `serving_base_path` is the directory
    holding `name/` as the server sees it (e.g. `/models` in the
    `tensorflow/serving` container); default: `model_dir`'s parent."""
    base = (serving_base_path.rstrip("/") + "/" + name if serving_base_path
            else os.path.abspath(model_dir))
    path = os.path.join(model_dir, MODELS_CONFIG)
    atomic_write_text(path, models_config_text(name, base))
    return path
