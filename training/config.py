"""Command-line flags and config files of `ptloss-distill`.

Every flag has a config-file key of the same name with `_` for `-` (YAML or
JSON; flags given on the command line override the file).
"""

import argparse
import json
import os

LOSSES = ("ptloss", "kl", "temperature", "label_smoothing", "focal", "ptloss_random")
TASKS = ("synthetic", "sst2", "mnli", "boolq", "rte", "file")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ptloss-distill",
        description=(
            "Distil a keras-hub BERT student from cached teacher outputs with "
            "PTLoss (Proxy Teacher coefficients) and baselines. With no "
            "arguments: the embedded synthetic task with a known posterior "
            "(about 3 minutes on 2 CPU cores, nothing downloaded). "
            "Subcommands: `ptloss-distill teacher --help` (fine-tune a keras-hub "
            "teacher and write its outputs), `ptloss-distill import-teacher --help`."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", help="YAML or JSON file of option values (flags override it)")

    g = parser.add_argument_group("task and data")
    g.add_argument("--task", default="synthetic", choices=TASKS)
    g.add_argument("--source", default="auto", choices=("auto", "tfds", "files"),
                   help="real tasks: TFDS (users with internet) or the local GLUE/BoolQ files")
    g.add_argument("--data-root", default=None,
                   help="local data root (default: $PTLOSS_DATA_DIR or ../shared/data)")
    g.add_argument("--tfds-data-dir", default=None)
    g.add_argument("--train-file", default=None, help="--task file: TSV/JSONL training data")
    g.add_argument("--validation-file", default=None)
    g.add_argument("--test-file", default=None)
    g.add_argument("--text-fields", nargs="+", default=["sentence"],
                   help="--task file: one field, or two for sentence pairs")
    g.add_argument("--label-field", default="label")
    g.add_argument("--class-names", nargs="+", default=None)
    g.add_argument("--max-train-examples", type=int, default=None,
                   help="train the students on N training rows drawn with --seed (where "
                        "test labels are hidden: N of the rows not held out for the "
                        "coefficient search). train.jsonl must cover the whole training "
                        "split, or exactly the rows `ptloss-distill teacher "
                        "--max-train-examples N` wrote with the same N and --seed")

    g = parser.add_argument_group("synthetic task (the embedded default)")
    g.add_argument("--synthetic-train", type=int, default=4000)
    g.add_argument("--synthetic-validation", type=int, default=1000)
    g.add_argument("--synthetic-test", type=int, default=2000)
    g.add_argument("--synthetic-classes", type=int, default=2)
    g.add_argument("--overconfidence", type=float, default=2.5,
                   help="teacher logits = overconfidence * true logits (+ shift, noise)")
    g.add_argument("--prior-shift", type=float, default=0.0)
    g.add_argument("--teacher-noise", type=float, default=0.0)

    g = parser.add_argument_group("teacher outputs")
    g.add_argument("--teacher-outputs", default=None,
                   help="directory with train.jsonl / validation.jsonl / test.jsonl in the "
                        "teacher-outputs format (see `import-teacher`); for --task mnli "
                        "also validation_mismatched.jsonl to evaluate on MNLI's "
                        "mismatched validation set (skipped, with a note, without it)")

    g = parser.add_argument_group("PTLoss coefficients (Proxy Teacher search)")
    g.add_argument("--order", type=int, default=5)
    g.add_argument("--candidates", type=int, default=100)
    g.add_argument("--criterion", default="brier", choices=("brier", "nll", "deviation"),
                   help="how the Proxy Teacher search scores candidates: brier (default) / "
                        "nll = proper scoring rules of the proxy teacher against the labels "
                        "(MATH.md 3b); deviation = the paper's Eq. 21. brier is the default "
                        "because its students were better and its proxy teachers closer to "
                        "p* in docs/RESULTS.md")
    g.add_argument("--coefficients", default=None, help="reuse a saved coefficients.json")
    g.add_argument("--search-seed", type=int, default=0)

    g = parser.add_argument_group("student")
    g.add_argument("--preset", default=None,
                   help="keras-hub preset name or local keras-hub / HuggingFace BERT folder")
    g.add_argument("--vocabulary", default=None, help="vocab.txt for a student from scratch")
    g.add_argument("--init-from-layers", type=int, default=None,
                   help="with --preset: keep the first N transformer layers")
    g.add_argument("--student-layers", type=int, default=2)
    g.add_argument("--hidden", type=int, default=64)
    g.add_argument("--heads", type=int, default=2)
    g.add_argument("--intermediate", type=int, default=128)
    g.add_argument("--dropout", type=float, default=0.1)
    g.add_argument("--sequence-length", type=int, default=None,
                   help="max tokens (default 32 synthetic, 128 real tasks)")

    g = parser.add_argument_group("distillation")
    g.add_argument("--loss", nargs="+", default=["kl", "ptloss"], choices=LOSSES,
                   help="one or several methods (a comparison run)")
    g.add_argument("--epochs", type=int, default=4)
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--learning-rate", type=float, default=None,
                   help="default 2e-3 for a student from scratch, 5e-5 with --preset")
    g.add_argument("--student-loss-weight", type=float, default=0.0)
    g.add_argument("--temperature", type=float, default=2.0, help="--loss temperature")
    g.add_argument("--smoothing", type=float, default=0.1, help="--loss label_smoothing")
    g.add_argument("--focal-tau", type=float, default=2.0, help="--loss focal")
    g.add_argument("--early-stopping-patience", type=int, default=2)
    g.add_argument("--seed", type=int, default=0,
                   help="initialisation, shuffling and --max-train-examples subsample seed")
    g.add_argument("--no-bucketing", action="store_true",
                   help="pad every batch to --sequence-length instead of length buckets")

    g = parser.add_argument_group("hardware")
    g.add_argument("--strategy", default="default",
                   choices=("default", "mirrored", "multi_worker", "tpu"))
    g.add_argument("--tpu", default=None, help="TPU name, grpc:// address or 'local'")
    g.add_argument("--mixed-precision", default=None, choices=("bfloat16", "float16"))
    g.add_argument("--no-xla", action="store_true", help="jit_compile=False")
    g.add_argument("--steps-per-execution", type=int, default=1)

    g = parser.add_argument_group("output")
    g.add_argument("--output-dir", default=None, help="default runs/<timestamp>")
    g.add_argument("--overwrite", action="store_true",
                   help="replace a finished run in --output-dir (never needed to resume)")
    g.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                   help="Keras progress: 0 silent, 1 bars, 2 one line per epoch")
    return parser


def load_config_file(path):
    if not os.path.exists(path):
        raise ValueError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        import yaml

        values = yaml.safe_load(text) or {}
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {path} is not valid JSON: {e}")
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of option: value.")
    return values


def parse_args(argv=None):
    """Flags override the `--config` file, which overrides the defaults."""
    parser = build_parser()
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
    return args
