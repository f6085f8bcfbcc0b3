"""`ptloss-export`: command-line entry point (also `python -m ptloss_tf.export`).

    ptloss-export STUDENT --base-path DIR --name NAME [--version N]
    ptloss-export verify DIR/NAME/N
    ptloss-export predict DIR/NAME/N --input FILE --output FILE
"""

import argparse
import sys


def export_parser():
    parser = argparse.ArgumentParser(
        prog="ptloss-export",
        description="Export a distilled keras-hub student (student.keras) as a TF-Serving "
                    "SavedModel: raw-text and token-id signatures, warmup requests, "
                    "metadata, models.config. Subcommands: `verify`, `predict` "
                    "(`ptloss-export verify --help`).",
    )
    parser.add_argument("student", help="student.keras, e.g. runs/X/ptloss/student.keras")
    parser.add_argument("--base-path", required=True, help="model base directory")
    parser.add_argument("--name", required=True, help="model name (directory under --base-path)")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: next free; never overwrites)")
    g = parser.add_argument_group("what the run directory normally supplies")
    g.add_argument("--class-names", nargs="+", default=None)
    g.add_argument("--pair", action="store_true", help="sentence-pair model (text_a, text_b)")
    g.add_argument("--samples", default=None,
                   help="samples.json, or a text file with one example per line "
                        "(pairs tab-separated): warmup and verification inputs")
    g.add_argument("--vocabulary", default=None, help="vocab.txt (student saved without preprocessor)")
    g.add_argument("--sequence-length", type=int, default=None)
    parser.add_argument("--serving-base-path", default=None,
                        help="--base-path as the server sees it, for models.config "
                             "(e.g. /models in the tensorflow/serving container)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the verification run after exporting")
    return parser


def verify_parser():
    parser = argparse.ArgumentParser(
        prog="ptloss-export verify",
        description="Load an export in a fresh process with TensorFlow and TF Text kernels "
                    "only (as TF Serving does) and check signatures, outputs against the Keras "
                    "student, warmup records and REST/gRPC request formats.",
    )
    parser.add_argument("version_dir", help="DIR/NAME/N")
    parser.add_argument("--student", default=None,
                        help="Keras student to compare with (default: the exported one if "
                             "unchanged, else the outputs recorded at export)")
    parser.add_argument("--requests-dir", default=None,
                        help="keep the REST JSON / gRPC request files here")
    parser.add_argument("--atol", type=float, default=1e-5)
    return parser


def predict_parser():
    parser = argparse.ArgumentParser(
        prog="ptloss-export predict",
        description="Score a TSV/CSV/JSONL file with an export; writes the teacher-outputs "
                    "JSONL format (usable as ptloss-distill --teacher-outputs).",
    )
    parser.add_argument("version_dir", help="DIR/NAME/N")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--text-fields", nargs="+", default=None)
    parser.add_argument("--id-field", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model-name", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--overwrite", action="store_true")
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
        if argv and argv[0] == "verify":
            args = verify_parser().parse_args(argv[1:])
            return _verify(args.version_dir, args.student, args.requests_dir, args.atol)
        if argv and argv[0] == "predict":
            from ptloss_tf.export.predict import predict_file

            args = predict_parser().parse_args(argv[1:])
            outputs = predict_file(args.version_dir, args.input, args.output,
                                   text_fields=args.text_fields, id_field=args.id_field,
                                   split=args.split, model_name=args.model_name,
                                   batch_size=args.batch_size, overwrite=args.overwrite)
            print(f"Wrote {len(outputs)} rows to {args.output}")
            return 0
        args = export_parser().parse_args(argv)
        from ptloss_tf.export.saved_model import export_student

        version_dir = export_student(
            args.student, args.base_path, args.name, version=args.version,
            class_names=args.class_names, num_segments=2 if args.pair else None,
            samples=args.samples, vocabulary=args.vocabulary,
            sequence_length=args.sequence_length, serving_base_path=args.serving_base_path,
        )
        if args.no_verify:
            return 0
        return _verify(version_dir)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        from ptloss_tf.training.config import cli_message

        # The library names its arguments in backticks; say the flags instead.
        flags = {a.dest for p in (export_parser(), verify_parser(), predict_parser())
                 for a in p._actions}
        print(f"ptloss-export: error: {cli_message(e, flags)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
