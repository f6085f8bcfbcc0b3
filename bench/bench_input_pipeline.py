"""Benchmark: length bucketing vs fixed max-length padding, end to end.

The same small keras-hub classifier (a random-weight `BertBackbone`: 2
layers, hidden 64, 2 heads, intermediate 256, `max_sequence_length` 128, in a
`BertTextClassifier` with `preprocessor=None`, identical initial weights) is
trained with `fit` on the same real SST-2 sentences (a seed-0 random subset of
`glue/SST-2/train.tsv`, 8,000 by default, read from
`ptloss_tf.training.data.default_data_root()`), batch size 32, with three input
pipelines from `ptloss_tf.training.data.make_dataset`:

* `fixed-128`: every batch padded to the preprocessor's 128 tokens;
* `bucket-dynamic`: `bucket_boundaries="auto"`, each batch padded to its
  longest example;
* `bucket-static`: the same buckets, each batch padded to its bucket's
  boundary (a few fixed shapes, the XLA / TPU setting).

Tokenisation: a keras-hub `BertTokenizer` (lowercase) whose vocabulary is
every word of the subset plus characters (`##` forms included) for the
rest, i.e. word-level pieces. A real 30k WordPiece vocabulary splits rare
words further, so real sequences are ~10 % longer; the bucketing gain is
similar.

Measured, per pipeline:

* input pipeline alone: the first pass (build the dataset, tokenise, fill
  the cache; for buckets `make_dataset` does this at construction) and a
  warm pass over the cache (shuffle + batching/bucketing + padding), in
  examples/s; and the real-token fraction of the padded batches;
* training: one warm-up `fit(epochs=1)` (tracing), then `--rounds` timed
  rounds, each one `fit(epochs=1)` per pipeline in a rotating order (so all
  see the same machine conditions). Judged number: examples/s of the whole
  epoch (`on_epoch_begin` .. `on_epoch_end`, includes the input pipeline);
  also the whole `fit` call. Speed-up = bucketed / fixed, median of the
  per-round (paired) ratios.

Target: `bucket-dynamic` >= 2x `fixed-128` (`--target`).

Usage:
    .venv/bin/python bench/bench_input_pipeline.py             # full run (~7 min on the 2-core machine)
    .venv/bin/python bench/bench_input_pipeline.py --quick     # smoke run
    .venv/bin/python bench/bench_input_pipeline.py --json bench/results/input_pipeline.json

Exit status is 0 unless `--strict` is given and the target is missed.
"""

import collections
import os
import sys

import _common  # (TF log level, before TensorFlow)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

_common.quiet_tensorflow()

import keras  # noqa: E402
import keras_hub  # noqa: E402

from ptloss_tf.training.data import default_data_root  # noqa: E402
from ptloss_tf.training.data import load_split  # noqa: E402
from ptloss_tf.training.data import make_dataset  # noqa: E402
from ptloss_tf.training.data import sequence_lengths  # noqa: E402
from ptloss_tf.training.data.input_pipeline import auto_bucket_boundaries  # noqa: E402

FIXED, DYNAMIC, STATIC = "fixed-128", "bucket-dynamic", "bucket-static"


def parse_args(argv=None):
    parser = _common.benchmark_parser(
        __doc__, "smoke run: 640 examples, one round (its verdict says "
                             "nothing about the target)")
    _common.add_data_args(parser, "SST-2 training sentences (default 8000; quick 640)",
                          128, "the preprocessor's sequence length (fixed padding)")
    parser.add_argument("--boundaries", default="auto",
                        help="'auto' or comma-separated bucket boundaries")
    parser.add_argument("--layers", type=int, default=2)
    _common.add_bert_args(parser, intermediate_dim=256)
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed rounds (default 3; quick 1)")
    parser.add_argument("--modes", default=f"{FIXED},{DYNAMIC},{STATIC}",
                        help="comma-separated subset of the pipelines")
    _common.add_jit_arg(parser, "jit_compile for every model (auto = Keras' choice: off "
                                "on a CPU-only machine). With XLA, bucket-dynamic compiles "
                                "once per distinct batch shape: use bucket-static there.")
    parser.add_argument("--target", type=float, default=2.0,
                        help="min examples/s ratio bucket-dynamic / fixed-128")
    parser.add_argument("--data-root", default=None,
                        help="default: $PTLOSS_DATA_DIR or <repo>/../shared/data")
    _common.add_run_args(parser)
    args = parser.parse_args(argv)
    _common.quick_defaults(args, {"examples": (640, 8000), "rounds": (1, 3)})
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(args.modes) - {FIXED, DYNAMIC, STATIC}
    if unknown or not args.modes:
        parser.error(f"unknown --modes {sorted(unknown)}; use {FIXED},{DYNAMIC},{STATIC}")
    if args.boundaries != "auto":
        args.boundaries = [int(b) for b in args.boundaries.split(",")]
    args.jit = _common.resolve_jit(args)
    return args


# -- data ----------------------------------------------------------------------

def load_examples(args):
    root = args.data_root or default_data_root()
    train = load_split("sst2", "train", source="files", data_root=root)
    n = min(args.examples, len(train))
    keep = np.sort(np.random.default_rng(args.seed).choice(len(train), n, replace=False))
    return train.subset(keep), root


def word_vocabulary(texts):
    """Every word of `texts` (lowercased, whitespace-split, as BERT's basic
    tokeniser splits SST-2's already tokenised text) plus single characters."""
    counts = collections.Counter(w for t in texts for w in t.lower().split())
    chars = sorted({c for t in texts for c in t.lower() if not c.isspace()})
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = special + chars + ["##" + c for c in chars]
    taken = set(pieces)
    return pieces + [w for w, _ in counts.most_common() if w not in taken]


def pipeline_kwargs(mode, args):
    if mode == FIXED:
        return {}
    return {"bucket_boundaries": args.boundaries, "static_shapes": mode == STATIC}


def measure_pipeline(mode, examples, preprocessor, args):
    """First pass (build + tokenise + cache) and warm passes of the pipeline."""
    start = _common.timer()
    ds = make_dataset(examples, preprocessor, args.batch_size, shuffle=True,
                      seed=args.seed, **pipeline_kwargs(mode, args))
    built = _common.timer() - start
    n_first = sum(int(x["token_ids"].shape[0]) for x, _ in ds)
    first = _common.timer() - start
    warm, real, padded, shapes = [], 0, 0, set()
    for _ in range(3):
        start = _common.timer()
        for x, _ in ds:
            pass
        warm.append(_common.timer() - start)
    for x, _ in ds:
        mask = x["padding_mask"].numpy()
        real += int(mask.sum())
        padded += mask.size
        shapes.add(mask.shape[1])
    assert n_first == len(examples)
    return {
        "build_s": built,
        "first_pass_s": first,
        "first_pass_examples_per_s": len(examples) / first,
        "warm_pass_s": _common.median(warm),
        "warm_pass_examples_per_s": len(examples) / _common.median(warm),
        "real_token_fraction": real / padded,
        "padded_tokens_per_example": padded / len(examples),
        "distinct_lengths": len(shapes),
        "batches": int(ds.cardinality().numpy()),
    }


# -- training ------------------------------------------------------------------

def make_model(args, vocabulary_size):
    keras.utils.set_random_seed(args.seed)  # identical initial weights per mode
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size, num_layers=args.layers,
        num_heads=args.num_heads, hidden_dim=args.hidden_dim,
        intermediate_dim=args.intermediate_dim, max_sequence_length=args.seq_len,
    )
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=2,
                                                preprocessor=None)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=args.jit,
    )
    return model


def main(argv=None):
    args = parse_args(argv)
    env = _common.start_run(args, quiet=False)
    _common.print_environment(env)

    examples, root = load_examples(args)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=word_vocabulary(examples.texts[0]),
                                       lowercase=True),
        sequence_length=args.seq_len,
    )
    vocabulary_size = preprocessor.tokenizer.vocabulary_size()
    start = _common.timer()
    lengths = sequence_lengths(examples, preprocessor)  # also traces the tokeniser
    lengths_s = _common.timer() - start
    boundaries = (auto_bucket_boundaries(lengths, args.seq_len)
                  if args.boundaries == "auto" else args.boundaries)
    print(f"# SST-2 train subset: {len(examples)} sentences from {root} "
          f"(seed {args.seed}); vocabulary {vocabulary_size} word pieces")
    print(f"# tokens/example: mean {lengths.mean():.1f}, median "
          f"{np.median(lengths):.0f}, p90 {np.percentile(lengths, 90):.0f}, max "
          f"{lengths.max()} (first tokenisation incl. tracing: {lengths_s:.1f} s); "
          f"buckets ({args.boundaries if args.boundaries == 'auto' else 'given'}): "
          f"{boundaries}")
    print(f"# model: BertBackbone {args.layers} layers, hidden {args.hidden_dim}, "
          f"{args.num_heads} heads, intermediate {args.intermediate_dim}; batch "
          f"{args.batch_size}; jit_compile={args.jit_compile}; rounds={args.rounds}")

    # -- input pipeline alone ---------------------------------------------------
    pipe = {m: measure_pipeline(m, examples, preprocessor, args) for m in args.modes}
    print("\n## input pipeline alone (shuffle on; examples/s)")
    print(_common.format_table(
        ["pipeline", "batches", "first pass(s)", "first ex/s", "warm ex/s",
         "real tokens", "padded tok/ex", "lengths"],
        [[m, p["batches"], f"{p['first_pass_s']:.2f}",
          f"{p['first_pass_examples_per_s']:,.0f}", f"{p['warm_pass_examples_per_s']:,.0f}",
          f"{100 * p['real_token_fraction']:.0f}%", f"{p['padded_tokens_per_example']:.1f}",
          p["distinct_lengths"]] for m, p in pipe.items()],
    ))

    # -- training ---------------------------------------------------------------
    runs = {}
    for m in args.modes:
        ds = make_dataset(examples, preprocessor, args.batch_size, shuffle=True,
                          seed=args.seed, **pipeline_kwargs(m, args))
        ds = ds.map(lambda x, y: (x, y["labels"]))
        runs[m] = _common.FitRun(m, make_model(args, vocabulary_size), ds, len(examples),
                                 shuffle=False)
    for run in runs.values():
        run.warm_up()
    jit_resolved = {m: bool(r.model.jit_compile) for m, r in runs.items()}
    order = list(runs)
    for r in range(args.rounds):
        shift = r % len(order)
        for m in order[shift:] + order[:shift]:
            runs[m].timed()

    rows, summary = [], {}
    base = runs.get(FIXED)
    for m, run in runs.items():
        rates = run.per_round("epoch")
        fit_rates = run.per_round("fit")
        entry = {
            "warmup_fit_s": run.warmup_s,
            "epoch_s": run.epoch_s,
            "fit_s": run.fit_s,
            "examples_per_s_median": _common.median(rates),
            "examples_per_s_max": max(rates),
            "fit_call_examples_per_s_median": _common.median(fit_rates),
            "final_loss": run.losses[-1],
            "jit_compile": jit_resolved[m],
        }
        if base is not None:
            paired = [a / b for a, b in zip(rates, base.per_round("epoch"))]
            entry["speedup_vs_fixed_median"] = _common.median(paired)
            entry["speedup_vs_fixed_per_round"] = paired
        summary[m] = entry
        rows.append([
            m, f"{run.warmup_s:.1f}", f"{_common.median(run.epoch_s):.2f}",
            f"{entry['examples_per_s_median']:,.0f}", f"{entry['examples_per_s_max']:,.0f}",
            f"{entry['fit_call_examples_per_s_median']:,.0f}",
            f"{entry.get('speedup_vs_fixed_median', float('nan')):.2f}x",
            f"{run.losses[-1]:.4f}",
        ])
    print(f"\n## fit: {len(examples)} examples/epoch, {args.rounds} timed round(s) "
          f"(median; max); jit_compile resolved to {sorted(set(jit_resolved.values()))}")
    print(_common.format_table(
        ["pipeline", "warm-up fit(s)", "epoch(s)", "epoch ex/s", "max ex/s",
         "fit-call ex/s", "speed-up", "loss"],
        rows,
    ))

    verdict = None
    if base is not None and DYNAMIC in summary:
        speedup = summary[DYNAMIC]["speedup_vs_fixed_median"]
        verdict = speedup >= args.target
        note = " (quick run: says nothing about the target)" if args.quick else ""
        print(f"\n{'PASS' if verdict else 'FAIL'}: {DYNAMIC} trains at {speedup:.2f}x "
              f"the examples/s of {FIXED} (target >= {args.target:.1f}x){note}")
    env["load_average_at_end"] = os.getloadavg()
    print(f"# load average: start {env['load_average_at_start'][0]:.2f}, end "
          f"{env['load_average_at_end'][0]:.2f} on {env['cpu_count']} cpus")

    if args.json:
        config = {k: v for k, v in vars(args).items() if k not in ("jit",)}
        _common.write_json(args.json, {
            "benchmark": "input_pipeline",
            "config": config,
            "environment": env,
            "data": {
                "root": root, "examples": len(examples),
                "vocabulary_size": vocabulary_size,
                "length_mean": float(lengths.mean()),
                "length_percentiles": {str(q): float(np.percentile(lengths, q))
                                       for q in (50, 75, 90, 98, 100)},
                "boundaries": boundaries,
            },
            "pipeline": pipe,
            "fit": summary,
            "target": args.target,
            "passed": verdict,
        })
    return 1 if (args.strict and verdict is False) else 0


if __name__ == "__main__":
    sys.exit(main())
