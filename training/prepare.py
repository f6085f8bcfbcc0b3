"""`ptloss-distill prepare`: the TensorFlow half of a run, done once.

Reads the data and the teacher outputs, runs the Proxy Teacher search and
the teacher recalibration for the methods of `--loss`, tokenises every
split with the student's keras-hub preprocessor and writes a prepared-data
directory (`prepared_data`: numpy arrays and JSON) to `--output-dir`. A host
with Keras and JAX or PyTorch but no TensorFlow then trains from it:

    ptloss-distill prepare --task sst2 --teacher-outputs teacher/ --preset bert_tiny_en_uncased \\
        --output-dir prepared/
    KERAS_BACKEND=jax ptloss-distill --prepared-data prepared/ --epochs 3 --output-dir run/

It takes the options of `ptloss-distill`; the data, search and tokenizer
options (`prepared_data.DATA_FIELDS`) are fixed here, the rest are the
training run's.
"""

import os
import time

from ptloss_tf.training.config import parse_args
from ptloss_tf.training.prepared_data import PREPARED_FILE
from ptloss_tf.training.prepared_data import write_prepared
from ptloss_tf.training.preflight import check_config
from ptloss_tf.training.search_stage import run_search_stage
from ptloss_tf.training.teacher.join import load_splits


def log(message):
    print(message, flush=True)


def prepare(config):
    """Writes the prepared-data directory of `config` (a `DistillConfig`) to
    `config.output_dir`; returns its `prepared.json` content. A directory
    holding anything else is refused, a finished one too unless
    `--overwrite` (its files are then replaced)."""
    from ptloss_tf.training.data.tokenization import make_preprocessor

    start = time.time()
    if not config.output_dir:
        raise ValueError("`output_dir` is required: the prepared-data directory to write.")
    if config.prepared_data:
        raise ValueError("`prepared_data` is for training runs; `prepare` writes one.")
    check_config(config)
    folder = config.output_dir
    if os.path.isdir(folder) and os.listdir(folder):
        finished = os.path.exists(os.path.join(folder, PREPARED_FILE))
        if not (finished and config.overwrite):
            raise ValueError(
                f"output directory {folder} is not empty"
                + (" and holds prepared data; pass --overwrite to replace it" if finished
                   else "; choose an empty or new --output-dir") + ".")
        os.unlink(os.path.join(folder, PREPARED_FILE))  # unfinished until rewritten
    splits = load_splits(config, log=log)
    os.makedirs(folder, exist_ok=True)
    stage = run_search_stage(config, splits, folder, log=log)
    preprocessor = make_preprocessor(
        config.default_sequence_length, preset=config.preset,
        vocabulary=None if config.preset else (config.vocabulary or splits.vocabulary))
    manifest = write_prepared(folder, config, splits, stage, preprocessor, log=log)
    rows = ", ".join(f"{split} {entry['rows']}" for split, entry in manifest["splits"].items())
    log(f"\nWrote the prepared data to {folder} in {time.time() - start:.0f} s "
        f"({rows} rows, "
        f"sequence length {manifest['sequence_length']}). Train from it (no TensorFlow "
        f"needed):\n  KERAS_BACKEND=jax ptloss-distill --prepared-data {folder} "
        "--output-dir RUN")
    return manifest


def main(argv):
    prepare(parse_args(argv, prog="ptloss-distill prepare"))
