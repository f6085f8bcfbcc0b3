"""`ptloss-distill`: command-line entry point (also `python -m ptloss_tf.training`)."""

import sys

from ptloss_tf.console import ArgumentParser
from ptloss_tf.console import framework_logging_requested
from ptloss_tf.console import quiet_framework


def import_teacher_main(argv):
    parser = ArgumentParser(
        prog="ptloss-distill import-teacher",
        description="Convert a CSV/TSV/JSONL file of teacher outputs produced "
                    "elsewhere (e.g. a T5 teacher) into the teacher-outputs format.",
        epilog="Outputs made in pieces (one table per machine): give every piece, "
               "`import-teacher part-0.csv part-1.csv ... teacher/train.jsonl`; pieces "
               "sharing an id are refused.",
    )
    parser.add_argument("inputs", nargs="+", metavar="input",
                        help="the table, or its pieces")
    parser.add_argument("output", help="e.g. teacher/train.jsonl")
    parser.add_argument("--split", required=True)
    parser.add_argument("--teacher", required=True, help="teacher name, e.g. t5-xl")
    parser.add_argument("--id-column", default="id")
    parser.add_argument("--prob-columns", nargs="+", default=None)
    parser.add_argument("--logit-columns", nargs="+", default=None)
    parser.add_argument("--class-names", nargs="+", default=None)
    parser.add_argument("--text-columns", nargs="+", default=None,
                        help="the table's text column(s), in model order: stores their "
                             "content fingerprints, so ptloss-distill checks that the rows "
                             "belong to its examples (without them it can only warn)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    from ptloss_tf.training.teacher.table_import import import_pieces

    outputs = import_pieces(
        args.inputs, split=args.split, teacher=args.teacher, id_column=args.id_column,
        prob_columns=args.prob_columns, logit_columns=args.logit_columns,
        class_names=tuple(args.class_names) if args.class_names else None,
        text_columns=args.text_columns,
    )
    outputs.save(args.output, overwrite=args.overwrite)
    pieces = f" from {len(args.inputs)} pieces" if len(args.inputs) > 1 else ""
    print(f"Wrote {len(outputs.ids)} {outputs.kind} rows ({args.split}){pieces} to {args.output}")
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        # Before anything imports TensorFlow: its start-up logging is off
        # unless `--verbose 3` asks for it.
        quiet_framework(show=framework_logging_requested(argv))
        if argv and argv[0] == "import-teacher":
            return import_teacher_main(argv[1:])
        if argv and argv[0] == "prepare":
            from ptloss_tf.training.prepare import main as prepare_main

            prepare_main(argv[1:])
            return 0
        if argv[:2] == ["teacher", "merge"]:
            from ptloss_tf.training.teacher.shards import merge_main

            return merge_main(argv[2:])
        if argv and argv[0] == "teacher":
            from ptloss_tf.training.teacher.run import main as teacher_main

            teacher_main(argv[1:])
            return 0
        from ptloss_tf.training.config import parse_args
        from ptloss_tf.training.distill import run

        run(parse_args(argv))
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        from ptloss_tf.training.config import cli_message

        print(f"ptloss-distill: error: {cli_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ptloss-distill: interrupted; rerun the same command to resume.",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
