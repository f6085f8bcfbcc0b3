"""The options of `ptloss-distill teacher`: `TeacherConfig` and its parser."""

import dataclasses

from ptloss_tf.console import FRAMEWORK_LOGS_VERBOSITY
from ptloss_tf.console import ArgumentParser
from ptloss_tf.training.task_examples import DataSource

#: The parser's description (the first paragraph of `teacher.run`'s docstring).
DESCRIPTION = ("`ptloss-distill teacher`: fine-tune a keras-hub BERT teacher with "
               "cross-entropy, write its outputs for train / validation / test (MNLI also "
               "validation_mismatched) in the teacher-outputs format "
               "(`training/teacher/outputs.py`) and save it as `teacher.keras`.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TeacherConfig(DataSource):
    """Every option of `ptloss-distill teacher` (see `--help`); the data
    fields are `task_examples.DataSource`'s (inherited). Keyword-only."""

    preset: str
    output_dir: str
    teacher_name: str = None
    max_train_examples: int = None
    predict_all_train: bool = False
    sequence_length: int = 128
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    seed: int = 0
    overwrite: bool = False
    verbose: int = 2
    fine_tune_only: bool = False
    shard: str = None
    distribution: str = "none"
    devices: int = None


def build_parser():
    parser = ArgumentParser(
        prog="ptloss-distill teacher",
        description=DESCRIPTION,
        epilog="With --max-train-examples N the teacher fine-tunes on and predicts only "
               "the training rows that `ptloss-distill --max-train-examples N` with the "
               "same --seed reads (plus the rows it holds out for the coefficient search "
               "where test labels are hidden); distil with the same N and --seed. "
               "On N machines: --fine-tune-only once, then --shard I/N (I = 0..N-1) with "
               "the same flags on each, then `ptloss-distill teacher merge DIR... "
               "--output-dir DIR`.",
    )
    defaults = TeacherConfig(task=None, preset=None, output_dir=None)

    def _add(group, flag, **kwargs):
        dest = flag.lstrip("-").replace("-", "_")
        if not kwargs.get("required"):
            value = getattr(defaults, dest)
            kwargs.setdefault("default", list(value) if isinstance(value, tuple) else value)
        return group.add_argument(flag, **kwargs)

    _add(parser, "--task", required=True,
         choices=("sst2", "mnli", "boolq", "rte", "cb", "sst5", "trec", "file"))
    _add(parser, "--preset", required=True,
                        help="keras-hub preset name or local keras-hub/HuggingFace BERT folder")
    _add(parser, "--output-dir", required=True,
                        help="writes train.jsonl, validation.jsonl, test.jsonl (MNLI also "
                             "validation_mismatched.jsonl) and teacher.keras here")
    _add(parser, "--teacher-name",
                        help="recorded in the files (default: the preset's name; for a local "
                             "folder with a generic name such as `model`, its parent's)")
    _add(parser, "--source", choices=("auto", "tfds", "files"))
    _add(parser, "--data-root")
    _add(parser, "--tfds-data-dir")
    _add(parser, "--train-file")
    _add(parser, "--validation-file")
    _add(parser, "--test-file")
    _add(parser, "--text-fields", nargs="+")
    _add(parser, "--label-field")
    _add(parser, "--class-names", nargs="+",
                        help="--task file: the label vocabulary in class-index order "
                             "(default: the sorted label values of --train-file)")
    _add(parser, "--no-header", action="store_true",
                        help="--task file: files without a header row; 0-based column "
                             "numbers in --text-fields / --label-field")
    _add(parser, "--max-train-examples", type=int,
                        help="fine-tune on the fixed-seed subsample `ptloss-distill "
                             "--max-train-examples N --seed S` trains on, and predict only "
                             "the training rows that run reads")
    _add(parser, "--predict-all-train", action="store_true",
                        help="with --max-train-examples: still predict every training row")
    _add(parser, "--sequence-length", type=int)
    _add(parser, "--epochs", type=int)
    _add(parser, "--batch-size", type=int)
    _add(parser, "--learning-rate", type=float)
    _add(parser, "--seed", type=int,
                        help="fine-tuning seed and --max-train-examples subsample seed")
    _add(parser, "--overwrite", action="store_true",
                        help="replace the outputs and teacher.keras of a finished run, or of an "
                             "unfinished one with other options (an unfinished run with the "
                             "same options resumes either way)")
    _add(parser, "--fine-tune-only", action="store_true",
         help="fine-tune and save teacher.keras, predict nothing (the step before --shard)")
    _add(parser, "--shard", metavar="I/N",
         help="predict only shard I (0..N-1) of N of every split, from the fine-tuned "
              "teacher.keras in --output-dir, into --output-dir/shards/ (batches I, "
              "I+N, ... of the one-process pass); combine with `ptloss-distill teacher "
              "merge`")
    _add(parser, "--distribution", choices=("none", "data_parallel"),
         help="KERAS_BACKEND=jax: predict on a keras.distribution data-parallel mesh of "
              "this machine's devices (each batch split over them; the fine-tuning stays "
              "on one device); across machines, use --shard")
    _add(parser, "--devices", type=int,
         help="with --distribution data_parallel: how many devices (default all)")
    _add(parser, "--verbose", type=int, choices=(0, 1, 2, 3), nargs="?",
         const=FRAMEWORK_LOGS_VERBOSITY,
         help="Keras progress: 0 silent, 1 bars, 2 one line per epoch; 3 (or --verbose "
              "alone): also TensorFlow's and Keras' own logging")
    return parser


def parse_args(argv):
    """The `TeacherConfig` of `ptloss-distill teacher` arguments."""
    return TeacherConfig(**vars(build_parser().parse_args(argv)))
