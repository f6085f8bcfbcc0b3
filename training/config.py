"""The options of `ptloss-distill`: `DistillConfig`, parsed once.

Every flag has a config-file key of the same name with `_` for `-` (YAML or
JSON). Precedence: flags given on the command line, then the `--config`
file, then `DistillConfig`'s defaults (the parser takes its defaults from
the dataclass, so the two cannot drift apart).

The stages of `ptloss_tf.training.distill` take a `DistillConfig`, never an
argparse `Namespace`. Library functions name their own arguments in errors,
in backticks (`` `init_from_layers` ``); `cli_message` turns those names
into the flags a CLI user types.

Example:
>>> config = parse_args(["--epochs", "3", "--loss", "kl"])
>>> config.epochs, config.loss, config.task
(3, ('kl',), 'synthetic')
>>> config.replace(seed=4).seed
4
>>> cli_message("`init_from_layers` must lie in [1, 6]")
'--init-from-layers must lie in [1, 6]'
"""

import dataclasses
import re

from ptloss_tf.calibration import METHODS as CALIBRATION_METHODS
from ptloss_tf.console import FRAMEWORK_LOGS_VERBOSITY
from ptloss_tf.console import ArgumentParser
from ptloss_tf.training.config_file import load_config_file
from ptloss_tf.training.methods import METHODS
from ptloss_tf.training.task_examples import DataSource

TASKS = ("synthetic", "sst2", "mnli", "boolq", "rte", "cb", "sst5", "trec", "file")
#: Deprecated name of `methods.METHODS`.
LOSSES = METHODS


@dataclasses.dataclass(frozen=True)
class DistillConfig(DataSource):
    """Every option of one `ptloss-distill` run (see `--help` for each).

    Field names are the flags' names with `_` for `-`; `asdict(config)` is
    the `config` object of `report.json`.
    """

    # task and data: `DataSource`'s fields, with the embedded default task
    task: str = "synthetic"
    config: str = None
    max_train_examples: int = None
    # synthetic task
    synthetic_train: int = 4000
    synthetic_validation: int = 1000
    synthetic_test: int = 2000
    synthetic_classes: int = 2
    # The default teacher has the bias PTLoss is for (docs/RESULTS.md: a
    # class-prior shift, here with over-confidence); negation is off so that
    # the default 2-layer BERT learns the teacher in the time budget.
    overconfidence: float = 1.5
    prior_shift: float = 2.0
    prior_shift_class: int = 0
    teacher_confusion: float = 0.0
    confusion_classes: tuple = (1, 2)
    teacher_noise: float = 0.0
    negation_rate: float = 0.0
    # teacher outputs
    teacher_outputs: str = None
    # a prepared-data directory (`ptloss-distill prepare`): train without TensorFlow
    prepared_data: str = None
    # PTLoss coefficients
    order: int = 5
    candidates: int = 100
    criterion: str = "brier"
    coefficients: str = None
    calibration: str = "vector"
    search_seed: int = 0
    # student
    preset: str = None
    vocabulary: str = None
    init_from_layers: int = None
    student_layers: int = 2
    hidden: int = 64
    heads: int = 2
    intermediate: int = 128
    dropout: float = 0.1
    sequence_length: int = None
    # distillation
    loss: tuple = ("kl", "kl_calibrated", "ptloss")
    epochs: int = 6
    batch_size: int = 32
    learning_rate: float = None
    lr_schedule: str = "cosine"
    warmup_fraction: float = 0.1
    student_loss_weight: float = 0.0
    temperature: float = 2.0
    smoothing: float = 0.1
    focal_tau: float = 2.0
    # K-class baselines: the authors' defaults (ptloss_tf.losses docstrings)
    dkd_alpha: float = 1.0
    dkd_beta: float = 8.0
    dkd_temperature: float = 4.0
    dist_beta: float = 1.0
    dist_gamma: float = 1.0
    dist_temperature: float = 1.0
    early_stopping_patience: int = 2
    seed: int = 0
    no_bucketing: bool = False
    # hardware
    strategy: str = "default"
    tpu: str = None
    mixed_precision: str = None
    no_xla: bool = False
    steps_per_execution: int = 1
    # keras.distribution under JAX (the prepared-data route)
    distribution: str = None
    devices: int = None
    model_parallel: int = None
    coordinator: str = None
    num_processes: int = None
    process_id: int = None
    # output
    output_dir: str = None
    overwrite: bool = False
    max_teacher_gap: float = 5.0
    verbose: int = 2

    def __post_init__(self):
        super().__post_init__()
        for name in ("loss", "confusion_classes"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @classmethod
    def from_namespace(cls, namespace):
        """The config of a parsed `argparse.Namespace` (unknown keys refused)."""
        return cls(**vars(namespace))

    def replace(self, **changes):
        """A copy with `changes` (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """Plain JSON-ready values (tuples as lists), in field order."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @property
    def default_sequence_length(self):
        """`sequence_length`, else 32 for the synthetic task and 128 otherwise."""
        return self.sequence_length or (32 if self.task == "synthetic" else 128)


DEFAULTS = DistillConfig()


def flag(name):
    """The command-line flag of a config field: `flag("init_from_layers")`
    is `"--init-from-layers"`."""
    return "--" + name.replace("_", "-")


def cli_message(message, fields=None):
    """`message` with each backticked config field name replaced by its flag."""
    fields = fields or {f.name for f in dataclasses.fields(DistillConfig)}
    return re.sub(r"`(\w+)`", lambda m: flag(m.group(1)) if m.group(1) in fields
                  else m.group(0), str(message))


def _add(group, *flags, **kwargs):
    """`add_argument` with the default taken from `DistillConfig`."""
    dest = kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")
    kwargs.setdefault("default", getattr(DEFAULTS, dest))
    if isinstance(kwargs["default"], tuple):
        kwargs["default"] = list(kwargs["default"])
    return group.add_argument(*flags, **kwargs)


def build_parser(prog="ptloss-distill"):
    parser = ArgumentParser(
        prog=prog,
        description=(
            "Distil a keras-hub BERT student from cached teacher outputs with "
            "PTLoss (Proxy Teacher coefficients) and baselines. With no "
            "arguments: the embedded synthetic task with a known posterior "
            "(about 100 s on 2 CPU cores, nothing downloaded): a teacher with a class-prior shift and over-confidence, students distilled with kl, kl_calibrated and ptloss. "
            "Subcommands: `ptloss-distill teacher --help` (fine-tune a keras-hub "
            "teacher and write its outputs), `ptloss-distill import-teacher --help`, "
            "`ptloss-distill prepare --help` (tokenise, join and search once, for "
            "training without TensorFlow: --prepared-data)."
        ),
    )
    parser.add_argument("--config", help="YAML or JSON file of option values (flags override it)")

    g = parser.add_argument_group("task and data")
    _add(g, "--task", choices=TASKS)
    _add(g, "--source", choices=("auto", "tfds", "files"),
            help="real tasks: TFDS (users with internet) or the local GLUE/BoolQ files")
    _add(g, "--data-root",
            help="local data root (default: $PTLOSS_DATA_DIR or ../shared/data)")
    _add(g, "--tfds-data-dir")
    _add(g, "--train-file", help="--task file: TSV/CSV/JSONL training data")
    _add(g, "--validation-file",
            help="--task file: labelled data for the coefficient search and early "
                 "stopping; without it 10%% of the training rows (at most 2000) are "
                 "held out with seed 0, and report.json's notes say so")
    _add(g, "--test-file", help="--task file: labelled data the students are scored on")
    _add(g, "--text-fields", nargs="+",
            help="--task file: one column, or two for sentence pairs (in model "
                 "order); with --no-header 0-based column numbers")
    _add(g, "--label-field", help="--task file: the label column")
    _add(g, "--class-names", nargs="+",
            help="--task file: the label vocabulary, in class-index order (integer "
                 "labels that are not names are read as indices); default: the "
                 "sorted label values of --train-file, numerically if all are "
                 "integers. Every split is encoded with it; another value is an error")
    _add(g, "--no-header", action="store_true",
            help="--task file: the TSV/CSV files have no header row; name columns "
                 "by 0-based number in --text-fields / --label-field (config file: "
                 "no_header: true)")
    _add(g, "--max-train-examples", type=int,
            help="train the students on N training rows drawn with --seed (where "
                 "test labels are hidden: N of the rows not held out for the "
                 "coefficient search). train.jsonl must cover the whole training "
                 "split, or exactly the rows `ptloss-distill teacher "
                 "--max-train-examples N` wrote with the same N and --seed")

    g = parser.add_argument_group("synthetic task (the embedded default)")
    _add(g, "--synthetic-train", type=int)
    _add(g, "--synthetic-validation", type=int)
    _add(g, "--synthetic-test", type=int)
    _add(g, "--synthetic-classes", type=int)
    _add(g, "--overconfidence", type=float,
            help="teacher logits = overconfidence * true logits (+ shift, noise)")
    _add(g, "--prior-shift", type=float,
            help="added to the teacher logit of --prior-shift-class (a class-prior shift)")
    _add(g, "--prior-shift-class", type=int,
            help="the class --prior-shift favours (default 0, for any --synthetic-classes)")
    _add(g, "--teacher-confusion", type=float,
            help="fraction c in [0, 1] of class A's logit evidence the teacher reads as "
                 "class B's (--confusion-classes A B): l_A <- (1-c) l_A, l_B <- l_B + c l_A, "
                 "before --overconfidence; no per-class recalibration undoes it")
    _add(g, "--confusion-classes", type=int, nargs=2, metavar=("A", "B"),
            help="--teacher-confusion: the class whose evidence leaks (A) and the class "
                 "it leaks to (B); default 1 2 (needs --synthetic-classes >= 3)")
    _add(g, "--teacher-noise", type=float)
    _add(g, "--negation-rate", type=float,
            help="probability that an evidence word is negated (`not`, `never` "
                 "flip its class): the part of the task a small BERT learns last")

    g = parser.add_argument_group("teacher outputs")
    _add(g, "--teacher-outputs",
            help="directory with train.jsonl / validation.jsonl / test.jsonl in the "
                 "teacher-outputs format (see `import-teacher`); for --task mnli "
                 "also validation_mismatched.jsonl to evaluate on MNLI's "
                 "mismatched validation set (skipped, with a note, without it)")
    _add(g, "--prepared-data",
            help="train from a prepared-data directory written by `ptloss-distill "
                 "prepare` (numpy + JSON: tokens, teacher outputs, coefficients, "
                 "calibration) instead of reading data: works without TensorFlow, e.g. "
                 "KERAS_BACKEND=jax on a GPU host; the data and search options are the "
                 "prepared run's")

    g = parser.add_argument_group("PTLoss coefficients (Proxy Teacher search)")
    _add(g, "--order", type=int)
    _add(g, "--candidates", type=int)
    _add(g, "--criterion", choices=("brier", "nll", "deviation"),
            help="how the Proxy Teacher search scores candidates: brier (default) / "
                 "nll = proper scoring rules of the proxy teacher against the labels "
                 "(MATH.md 3b); deviation = the paper's Eq. 21. brier is the default "
                 "because its students were better and its proxy teachers closer to "
                 "p* in docs/RESULTS.md")
    _add(g, "--coefficients", help="reuse a saved coefficients.json (for --loss ptloss)")
    _add(g, "--calibration", choices=CALIBRATION_METHODS,
            help="--loss kl_calibrated / ptloss_calibrated: how the teacher is "
                 "recalibrated on the validation split before distilling from it: "
                 "temperature (q ~ p^(1/T)), bias (q ~ p exp(b), a class-prior "
                 "correction), vector (q ~ exp(a log p + b), per class) or matrix "
                 "(q ~ exp(W log p + b), full W: undoes confused classes; ODIR "
                 "penalty, its weight by 5-fold cross-validation)")
    _add(g, "--search-seed", type=int)

    g = parser.add_argument_group("student")
    _add(g, "--preset",
            help="keras-hub preset name or local keras-hub / HuggingFace BERT folder")
    _add(g, "--vocabulary", help="vocab.txt for a student from scratch")
    _add(g, "--init-from-layers", type=int,
            help="with --preset: keep the first N transformer layers")
    _add(g, "--student-layers", type=int)
    _add(g, "--hidden", type=int)
    _add(g, "--heads", type=int)
    _add(g, "--intermediate", type=int)
    _add(g, "--dropout", type=float)
    _add(g, "--sequence-length", type=int,
            help="max tokens (default 32 synthetic, 128 real tasks)")

    g = parser.add_argument_group("distillation")
    _add(g, "--loss", nargs="+", choices=METHODS,
            help="one or several methods (a comparison run); dkd and dist are "
                 "K-class baselines, degenerate for 2 classes (see --dkd-alpha, "
                 "--dist-beta)")
    _add(g, "--epochs", type=int)
    _add(g, "--batch-size", type=int)
    _add(g, "--learning-rate", type=float,
            help="default 2e-3 for a student from scratch, 5e-5 with --preset")
    _add(g, "--lr-schedule", choices=("cosine", "constant"),
            help="cosine: linear warmup to --learning-rate over --warmup-fraction of "
                 "the steps, then cosine decay to 0; constant: --learning-rate throughout")
    _add(g, "--warmup-fraction", type=float, help="--lr-schedule cosine")
    _add(g, "--student-loss-weight", type=float)
    _add(g, "--temperature", type=float, help="--loss temperature")
    _add(g, "--smoothing", type=float, help="--loss label_smoothing")
    _add(g, "--focal-tau", type=float, help="--loss focal")
    _add(g, "--dkd-alpha", type=float,
            help="--loss dkd (Decoupled KD, needs the labels): weight of the target-class "
                 "term TCKD. dkd and dist are K-class losses, degenerate for 2 classes "
                 "(dkd = alpha * the temperature baseline, NCKD being 0); defaults: the "
                 "authors' (mdistiller; DIST_KD)")
    _add(g, "--dkd-beta", type=float, help="--loss dkd: weight of the non-target term NCKD")
    _add(g, "--dkd-temperature", type=float, help="--loss dkd: T (both terms times T^2)")
    _add(g, "--dist-beta", type=float,
            help="--loss dist (DIST): weight of the inter-class (per-example Pearson) "
                 "term; degenerate for 2 classes (that correlation is +-1, only the "
                 "intra-class term trains)")
    _add(g, "--dist-gamma", type=float,
            help="--loss dist: weight of the intra-class (per-class, over the batch) term")
    _add(g, "--dist-temperature", type=float, help="--loss dist: tau (terms times tau^2)")
    _add(g, "--early-stopping-patience", type=int)
    _add(g, "--seed", type=int,
            help="initialisation, shuffling and --max-train-examples subsample seed")
    _add(g, "--no-bucketing", action="store_true",
            help="pad every batch to --sequence-length instead of length buckets")

    g = parser.add_argument_group("hardware")
    _add(g, "--strategy",
            choices=("default", "mirrored", "multi_worker", "tpu"))
    _add(g, "--tpu", help="TPU name, grpc:// address or 'local'")
    _add(g, "--mixed-precision", choices=("bfloat16", "float16"))
    _add(g, "--no-xla", action="store_true", help="jit_compile=False")
    _add(g, "--steps-per-execution", type=int)

    g = parser.add_argument_group(
        "several devices or hosts under JAX (keras.distribution; with --prepared-data "
        "and KERAS_BACKEND=jax)")
    _add(g, "--distribution", choices=("data_parallel", "model_parallel"),
            help="data_parallel: every device holds the student and takes a slice of each "
                 "global batch; model_parallel: a (batch, model) device mesh, the student's "
                 "attention, feed-forward and embedding weights split over the model axis. "
                 "The same --seed gives the same global batches for any device count")
    _add(g, "--devices", type=int, help="devices in the mesh (default: all, over every process)")
    _add(g, "--model-parallel", type=int,
            help="--distribution model_parallel: size of the mesh's model axis (default: "
                 "all the devices); it must divide --devices and the student's heads, "
                 "hidden and intermediate sizes")
    _add(g, "--coordinator",
            help="HOST:PORT of process 0 for a multi-process (multi-host) run; with "
                 "--num-processes and --process-id, or none of the three and the "
                 "JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID environment "
                 "that jax.distributed.initialize reads. Only process 0 writes; "
                 "--output-dir must be a path every process sees (shared storage)")
    _add(g, "--num-processes", type=int)
    _add(g, "--process-id", type=int)

    g = parser.add_argument_group("output")
    _add(g, "--output-dir", help="default runs/<timestamp>")
    _add(g, "--overwrite", action="store_true",
            help="replace a finished run in --output-dir (never needed to resume)")
    _add(g, "--max-teacher-gap", type=float,
            help="accuracy points: when the best student's validation accuracy is more "
                 "than this under its teacher's, the run ends with a warning naming "
                 "what usually closes the gap (report.json: teacher_gap). Every "
                 "result records its gap to the teacher either way")
    _add(g, "--verbose", type=int, choices=(0, 1, 2, 3), nargs="?",
            const=FRAMEWORK_LOGS_VERBOSITY,
            help="Keras progress: 0 silent, 1 bars, 2 one line per epoch; 3 (or "
                 "--verbose alone): also TensorFlow's and Keras' own logging, "
                 "hidden otherwise")
    return parser


def parse_args(argv=None, prog="ptloss-distill"):
    """The `DistillConfig` of `argv`: flags override the `--config` file,
    which overrides the defaults."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.config:
        values = load_config_file(args.config)
        known = {a.dest for a in parser._actions}
        unknown = sorted(k for k in values if k.replace("-", "_") not in known)
        if unknown:
            raise ValueError(f"unknown option(s) in {args.config}: {unknown}")
        defaults = {k.replace("-", "_"): v for k, v in values.items()}
        parser.set_defaults(**defaults)
        args = parser.parse_args(argv)
    return DistillConfig.from_namespace(args)
