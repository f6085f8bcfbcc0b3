"""`ptloss-export`: command-line entry point (also `python -m ptloss_tf.export`).

    ptloss-export STUDENT --base-path DIR --name NAME [--version N]
    ptloss-export verify DIR/NAME/N
    ptloss-export predict DIR/NAME/N --input FILE --output FILE
"""

import argparse
import re
import sys

from ptloss_tf.console import ArgumentParser
from ptloss_tf.console import framework_logging_requested
from ptloss_tf.console import quiet_framework


def _option(parser, container, *names, **kwargs):
    """`container.add_argument`, recording the option's flag in `parser.flags`
    (`{dest: "--flag"}`) for `cli_message`. A real default is shown in
    `--help` unless the help text already says what the default is."""
    default = kwargs.get("default")
    if ("help" in kwargs and default not in (None, False) and "default" not in kwargs["help"]):
        kwargs["help"] += f" (default: {default})"
    action = container.add_argument(*names, **kwargs)
    long_names = [n for n in names if n.startswith("--")]
    if long_names:
        parser.flags[action.dest] = long_names[0]
    return action


def _parser(prog, description):
    # One-line usage errors (console.ArgumentParser); `_option` writes the
    # defaults into the help texts itself.
    parser = ArgumentParser(prog=prog, description=description,
                            formatter_class=argparse.HelpFormatter)
    parser.flags = {}
    return parser


def export_parser():
    parser = _parser(
        "ptloss-export",
        "Export a distilled keras-hub student (student.keras) as a TF-Serving "
        "SavedModel: raw-text and token-id signatures, warmup requests, "
        "metadata, models.config. Subcommands: `verify`, `predict` "
        "(`ptloss-export verify --help`).",
    )
    _option(parser, parser, "student", help="student.keras, e.g. runs/X/ptloss/student.keras")
    _option(parser, parser, "--base-path", required=True, help="model base directory")
    _option(parser, parser, "--name", required=True,
            help="model name (directory under --base-path)")
    _option(parser, parser, "--version", type=int, default=None,
            help="version number (default: next free; never overwrites)")
    g = parser.add_argument_group("what the run directory normally supplies")
    _option(parser, g, "--class-names", nargs="+", default=None,
            help="class names in logit order (default: the run's report.json)")
    _option(parser, g, "--pair", action="store_true",
            help="sentence-pair model (inputs text_a, text_b); same as --num-segments 2")
    _option(parser, g, "--num-segments", type=int, choices=(1, 2), default=None,
            help="text inputs of the model: 1 (text) or 2 (text_a, text_b) (default: "
                 "what the run records in report.json / teacher_run.json; required "
                 "without them; a value contradicting the run is refused)")
    _option(parser, g, "--samples", default=None,
            help="samples.json, or a text file with one example per line "
                 "(pairs tab-separated): warmup and verification inputs "
                 "(default: the run's samples.json)")
    _option(parser, g, "--vocabulary", default=None,
            help="vocab.txt (student saved without preprocessor)")
    _option(parser, g, "--sequence-length", type=int, default=None,
            help="sequence length (default: the saved preprocessor's)")
    _option(parser, parser, "--serving-base-path", default=None,
            help="--base-path as the server sees it, for models.config "
                 "(e.g. /models in the tensorflow/serving container; default: "
                 "the absolute --base-path)")
    _option(parser, parser, "--no-verify", action="store_true",
            help="skip the verification run after exporting")
    _option(parser, parser, "--verbose", action="store_true",
            help="also show TensorFlow's own logging (hidden by default)")
    return parser


def verify_parser():
    parser = _parser(
        "ptloss-export verify",
        "Load an export in a fresh process with TensorFlow and TF Text kernels "
        "only (as TF Serving does) and check signatures, outputs against the Keras "
        "student, warmup records and REST/gRPC request formats.",
    )
    _option(parser, parser, "version_dir", help="DIR/NAME/N")
    _option(parser, parser, "--student", default=None,
            help="Keras student to compare with (default: the exported one if "
                 "unchanged, else the outputs recorded at export)")
    _option(parser, parser, "--requests-dir", default=None,
            help="keep the REST JSON / gRPC request files here (default: a "
                 "temporary directory, removed)")
    _option(parser, parser, "--atol", type=float, default=1e-5,
            help="tolerance on probabilities")
    _option(parser, parser, "--verbose", action="store_true",
            help="also show TensorFlow's own logging (hidden by default)")
    return parser


def predict_parser():
    parser = _parser(
        "ptloss-export predict",
        "Score a TSV/CSV/JSONL file with an export; writes the teacher-outputs "
        "JSONL format (usable as ptloss-distill --teacher-outputs). With labels "
        "in the input, prints the accuracy and records it in the output header.",
    )
    _option(parser, parser, "version_dir", help="DIR/NAME/N")
    _option(parser, parser, "--input", required=True, help="TSV (header row), CSV or JSONL")
    _option(parser, parser, "--output", required=True, help="teacher-outputs JSONL to write")
    _option(parser, parser, "--text-fields", nargs="+", default=None,
            help="text column(s) in model order (default: sentence, or premise "
                 "hypothesis for a pair model)")
    _option(parser, parser, "--id-field", default=None,
            help="column of unique ids (default: row numbers)")
    _option(parser, parser, "--label-field", default=None,
            help="label column, scored against the predictions (default: the "
                 "label column when the input has one); class names of the export "
                 "or class indices")
    _option(parser, parser, "--split", default="test", help="split name for the header")
    _option(parser, parser, "--model-name", default=None,
            help="teacher name for the header (default: NAME/N of the export)")
    _option(parser, parser, "--batch-size", type=int, default=64, help="rows per call")
    _option(parser, parser, "--overwrite", action="store_true",
            help="replace an existing --output")
    _option(parser, parser, "--verbose", action="store_true",
            help="also show TensorFlow's own logging (hidden by default)")
    return parser


def _verify(version_dir, student=None, requests_dir=None, atol=1e-5):
    from ptloss_tf.export.verify import verify_export

    report = verify_export(version_dir, student=student, requests_dir=requests_dir, atol=atol)
    print(report.summary())
    if report.requests_dir:
        print(f"Request files kept in {report.requests_dir}")
    return 0 if report.passed else 1


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        # Before anything imports TensorFlow: its start-up logging is off
        # unless `--verbose` asks for it.
        quiet_framework(show=framework_logging_requested(argv))
        if argv and argv[0] == "verify":
            args = verify_parser().parse_args(argv[1:])
            return _verify(args.version_dir, args.student, args.requests_dir, args.atol)
        if argv and argv[0] == "predict":
            from ptloss_tf.export.predict import predict_file

            args = predict_parser().parse_args(argv[1:])
            outputs = predict_file(args.version_dir, args.input, args.output,
                                   text_fields=args.text_fields, id_field=args.id_field,
                                   split=args.split, model_name=args.model_name,
                                   batch_size=args.batch_size, overwrite=args.overwrite,
                                   label_field=args.label_field)
            print(f"Wrote {len(outputs)} rows to {args.output}")
            if "accuracy" in outputs.metadata:
                m = outputs.metadata
                print(f"Accuracy: {m['accuracy']:.4f} ({m['correct']}/{m['labelled_rows']} "
                      f"labelled rows, column {m['label_field']!r})")
            return 0
        args = export_parser().parse_args(argv)
        from ptloss_tf.export.saved_model import export_student

        if args.pair and args.num_segments == 1:
            raise ValueError("`pair` contradicts `num_segments` 1; give one of them.")
        version_dir = export_student(
            args.student, args.base_path, args.name, version=args.version,
            class_names=args.class_names,
            num_segments=2 if args.pair else args.num_segments,
            samples=args.samples, vocabulary=args.vocabulary,
            sequence_length=args.sequence_length, serving_base_path=args.serving_base_path,
        )
        if args.no_verify:
            return 0
        return _verify(version_dir)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"ptloss-export: error: {cli_message(e)}", file=sys.stderr)
        return 2


def argument_flags():
    """`{argument name: flag}` of every option of the three subcommands.

    Example:
    >>> flags = argument_flags()
    >>> flags["class_names"], flags["pair"], flags["label_field"]
    ('--class-names', '--pair', '--label-field')
    """
    flags = {}
    for parser in (export_parser(), verify_parser(), predict_parser()):
        for dest, flag in parser.flags.items():
            flags.setdefault(dest, flag)
    return flags


def cli_message(message):
    """`message` with each backticked argument name replaced by its flag.

    The Python API names its arguments in backticks (`class_names`); on the
    command line the user needs the flag (`--class-names`). Names that are
    no option are left as they are.

    Example:
    >>> cli_message("pass `class_names` or `num_segments` 1; `foo` stays")
    'pass --class-names or --num-segments 1; `foo` stays'
    """
    flags = argument_flags()
    return re.sub(r"`(\w+)`", lambda m: flags.get(m.group(1), m.group(0)), str(message))


if __name__ == "__main__":
    sys.exit(main())
