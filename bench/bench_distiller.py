"""Benchmark: `ptloss_tf.Distiller.fit` throughput on a small keras-hub BERT.

Three training runs of the same student architecture (a random-weight
keras-hub `BertBackbone`: 2 layers, hidden 64, 2 heads, intermediate 128,
sequence length 64, in a `BertTextClassifier` with `preprocessor=None`) on
the same data, batch size, optimizer and `jit_compile` setting:

* `ptloss Distiller (cached)`: `ptloss_tf.Distiller(student)` fitted on
  `(inputs, {"teacher_probs", "labels"})`, the teacher probabilities
  precomputed once with `teacher.predict`;
* `plain BertTextClassifier`: `BertTextClassifier.fit` on `(inputs, labels)`,
  compiled with `SparseCategoricalCrossentropy(from_logits=True)`;
* `keras Distiller (live teacher)`: `keras.distillation.Distiller` with a
  6-layer teacher of the same width (random weights) that runs on every step,
  `LogitsDistillation(temperature=1)`, fitted on `(inputs, labels)`.

The two distillers optimise the same objective: `0.5 * CE(labels, student) +
0.5 * KL(softmax(teacher) || softmax(student))`.

Reported:

(a) examples/s of the cached-teacher `ptloss_tf.Distiller` vs the plain
    classifier, and their ratio (target: >= 0.97);
(b) examples/s of `keras.distillation.Distiller` running the teacher vs the
    cached-teacher `ptloss_tf.Distiller` (the speed-up of caching), and the
    one-off cost of precomputing the teacher outputs (`teacher.predict`,
    first call with tracing, and a warm second call), with the number of
    epochs after which the cache has paid for itself.

Texts are random sequences from a generated word list; they are tokenised by
`keras_hub.models.BertTextClassifierPreprocessor` in the `tf.data` pipeline,
cached, and the cache is filled before anything is timed, so tokenisation is
never in a timed number. Every model is warmed up with one full epoch (tracing
and graph compilation), then `--rounds` rounds are timed; a round runs one
`fit(epochs=1)` per model, one after another in a rotating order (A B, B A,
...), so the runs see the same machine conditions; the Keras distiller joins
the first `--keras-rounds` rounds. Ratios are medians of the per-round
(paired) ratios.

What is timed, per fit call (wall clock, and process CPU time):

* steady state (the judged number): batches 2..n of the epoch, from the end
  of batch 1 to `on_epoch_end`, by a callback. This is the throughput of a
  multi-epoch `fit`.
* the whole epoch (`on_epoch_begin` to `on_epoch_end`) and the whole
  `fit(epochs=1)` call. The first batch of a fit call carries one-off costs:
  both `keras_hub`'s `PipelineModel.fit` and `ptloss_tf.Distiller.fit` map
  the dataset (preprocessing / bool-mask cast), and the first iterator of a
  newly mapped dataset costs ~0.2-0.3 s here because the tokeniser sits
  upstream of the cache; `Distiller.fit` also reads one batch to validate the
  targets. `per-call(s)` is the fit call minus the steady-state time of all N
  examples: what a `fit` call costs once, however many epochs it runs.

Usage:
    .venv/bin/python bench/bench_distiller.py                # full run (< 4 min)
    .venv/bin/python bench/bench_distiller.py --quick        # smoke run
    .venv/bin/python bench/bench_distiller.py --json bench/results/distiller.json

Exit status is 0 unless `--strict` is given and the target is missed.
"""

import sys
import warnings

import _common  # noqa: F401  (TF log level, before TensorFlow)

import numpy as np
import tensorflow as tf

import keras
import keras_hub

import ptloss_tf
from ptloss_tf.probabilities import softmax

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PTL, PLAIN, KERAS = "ptloss", "plain", "keras"
LABELS = {
    PTL: "ptloss Distiller (cached)",
    PLAIN: "plain BertTextClassifier",
    KERAS: "keras Distiller (live teacher)",
}


def parse_args(argv=None):
    parser = _common.benchmark_parser(
        __doc__, "smoke run: tiny models and data, one round "
                             "(its verdict says nothing about the target)")
    _common.add_data_args(parser, "training examples per epoch (default 1024; quick 64)",
                          None, "sequence length (default 64; quick 16)")
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--vocab-words", type=int, default=1000,
                        help="generated words in the vocabulary (plus 5 special tokens)")
    parser.add_argument("--student-layers", type=int, default=None,
                        help="student transformer layers (default 2; quick 1)")
    parser.add_argument("--teacher-layers", type=int, default=None,
                        help="teacher transformer layers (default 6; quick 2)")
    _common.add_bert_args(parser, intermediate_dim=128)
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed rounds of ptloss Distiller vs plain (default 8; quick 1)")
    parser.add_argument("--keras-rounds", type=int, default=None,
                        help="how many of those rounds also time the Keras "
                             "distiller (default 4; quick 1)")
    _common.add_jit_arg(parser, "jit_compile for every model (auto = Keras' "
                                "choice: off on a CPU-only machine)")
    parser.add_argument("--distillation-loss", choices=["kl", "ptloss"],
                        default="kl",
                        help="loss of the ptloss Distiller: ptloss_tf.KLDivergence "
                             "(the same objective as Keras' LogitsDistillation, "
                             "default) or ptloss_tf.PTLoss of order --ptloss-order")
    parser.add_argument("--ptloss-order", type=int, default=5)
    parser.add_argument("--student-loss-weight", type=float, default=0.5,
                        help="both distillers (Keras' default 0.5)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--target", type=float, default=0.97,
                        help="min allowed examples/s ratio ptloss Distiller / plain")
    _common.add_run_args(parser)
    args = parser.parse_args(argv)
    _common.quick_defaults(args, {
        "examples": (64, 1024),
        "seq_len": (16, 64),
        "student_layers": (1, 2),
        "teacher_layers": (2, 6),
        "rounds": (1, 8),
        "keras_rounds": (1, 4),
    })
    args.keras_rounds = min(args.keras_rounds, args.rounds)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.examples < 2 * args.batch_size:
        parser.error("--examples must be at least 2 batches (the first batch "
                     "of a fit call is not part of the steady state)")
    args.jit = _common.resolve_jit(args)
    return args


# -- data --------------------------------------------------------------------


def make_data(args, rng):
    words = [f"w{i:05d}" for i in range(args.vocab_words)]
    vocabulary = SPECIAL_TOKENS + words
    tokenizer = keras_hub.tokenizers.BertTokenizer(
        vocabulary=vocabulary, lowercase=False
    )
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer=tokenizer, sequence_length=args.seq_len
    )
    lengths = rng.integers(args.seq_len // 3, args.seq_len * 5 // 4,
                           size=args.examples)
    texts = [" ".join(rng.choice(words, size=n)) for n in lengths]
    labels = rng.integers(0, args.num_classes, size=args.examples).astype(np.int32)
    return vocabulary, preprocessor, texts, labels


def cached_dataset(preprocessor, batch_size, texts, *columns, structure):
    """Tokenised in the pipeline, then cached; `structure(x, *columns)`."""
    ds = tf.data.Dataset.from_tensor_slices((texts, *columns)).batch(batch_size)
    ds = ds.map(
        lambda t, *c: structure(preprocessor(t), *c),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.cache().prefetch(tf.data.AUTOTUNE)


def fill_cache(ds):
    """One full pass, so the cache is complete before anything is timed."""
    batches = 0
    for _ in ds:
        batches += 1
    return batches


# -- models ------------------------------------------------------------------


def make_classifier(args, vocabulary, num_layers, seed):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=num_layers,
        num_heads=args.num_heads,
        hidden_dim=args.hidden_dim,
        intermediate_dim=args.intermediate_dim,
        max_sequence_length=args.seq_len,
    )
    return keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=args.num_classes, preprocessor=None
    )


def ptloss_distillation_loss(args, rng):
    if args.distillation_loss == "kl":
        return _common.make_loss("kl", from_logits=True), None
    eta = rng.uniform(0.0, 2.0, size=(args.ptloss_order, args.num_classes))
    return _common.make_loss("ptloss", coefficients=eta, from_logits=True), eta


# -- timing ------------------------------------------------------------------


def summary(run):
    """The JSON record of one `_common.FitRun` (steady=True)."""
    steady = run.per_round("steady")
    full_epoch_compute = [s * run.examples / run.steady_examples for s in run.steady_s]
    return {
        "run": run.key,
        "label": LABELS[run.key],
        "examples_per_epoch": run.examples,
        "steps_per_epoch": run.steps,
        "steady_examples_per_epoch": run.steady_examples,
        "rounds_timed": len(run.fit_s),
        "fit_call_s": run.fit_s,
        "epoch_s": run.epoch_s,
        "steady_s": run.steady_s,
        "steady_cpu_s": run.steady_cpu_s,
        "examples_per_s_steady_median": _common.median(steady),
        "examples_per_s_steady_best": max(steady),
        "examples_per_s_epoch_median": _common.median(run.per_round("epoch")),
        "examples_per_s_fit_call_median": _common.median(run.per_round("fit")),
        "ms_per_step_steady_median": 1e3 * _common.median(
            [s / (run.steps - 1) for s in run.steady_s]),
        "cpu_ms_per_step_steady_median": 1e3 * _common.median(
            [s / (run.steps - 1) for s in run.steady_cpu_s]),
        # fit call minus the steady-state cost of all N examples: data
        # validation and mapping, iterator creation, callbacks, teardown.
        "fit_call_overhead_s_median": _common.median(
            [f - c for f, c in zip(run.fit_s, full_epoch_compute)]),
        "warmup_fit_s": run.warmup_s,
        "loss_per_epoch": run.losses,
        "jit_compile": bool(run.model.jit_compile),
    }


def paired(numerator, denominator, what, rounds):
    """Per round, examples/s of `numerator` / examples/s of `denominator`."""
    a, b = numerator.per_round(what), denominator.per_round(what)
    return [a[r] / b[r] for r in range(rounds)]


# -- report ------------------------------------------------------------------


def print_runs_table(summaries):
    rows = []
    for s in summaries:
        rows.append([
            s["label"], s["rounds_timed"],
            f"{s['examples_per_s_steady_median']:.1f}",
            f"{s['examples_per_s_steady_best']:.1f}",
            f"{s['ms_per_step_steady_median']:.1f}",
            f"{s['cpu_ms_per_step_steady_median']:.1f}",
            f"{s['examples_per_s_epoch_median']:.1f}",
            f"{s['examples_per_s_fit_call_median']:.1f}",
            f"{s['fit_call_overhead_s_median']:.2f}",
            f"{s['warmup_fit_s']:.1f}",
            f"{s['loss_per_epoch'][-1]:.4f}",
        ])
    print(_common.format_table(
        ["run", "rounds", "ex/s", "ex/s(best)", "ms/step", "cpu-ms/step",
         "ex/s(epoch)", "ex/s(fit call)", "per-call(s)", "warm-up(s)",
         "last loss"],
        rows, align="lrrrrrrrrrr"))
    print("   ex/s, ms/step, cpu-ms/step: steady state, batches 2..n of an epoch "
          "(callback: end of batch 1 to on_epoch_end),\n"
          "   medians over rounds; cpu = process CPU time, all threads. "
          "ex/s(epoch): whole epoch (on_epoch_begin..end);\n"
          "   ex/s(fit call): the whole fit(epochs=1) call. per-call(s): fit call "
          "minus the steady-state time of N examples\n"
          "   (validation, dataset mapping, first iterator, teardown: paid once "
          "per fit call, not per epoch). warm-up: first fit call.")


def spread(values):
    return f"{min(values):.3f}..{max(values):.3f}"


def print_ratio_table(title, ratios, judged="", extra=(), fmt="{:.3f}"):
    """Median and spread of paired per-round ratios: `ratios[what]` for the
    steady state, the whole epoch and the whole fit call, then `extra`."""
    rows = [[f"ex/s, steady state{judged}", ratios["steady"]],
            ["ex/s, whole epoch", ratios["epoch"]],
            ["ex/s, whole fit(epochs=1) call", ratios["fit"]], *extra]
    print(_common.format_table(
        [title, "median", "spread"],
        [[label, fmt.format(_common.median(v)), spread(v)] for label, v in rows],
        align="lrr"))


def main(argv=None):
    args = parse_args(argv)
    env = _common.start_run(args)
    warnings.filterwarnings(
        "ignore", message=".*`shuffle=True` was passed.*", category=UserWarning
    )
    env["keras_hub"] = keras_hub.__version__
    print("# bench_distiller: Distiller.fit throughput on a small keras-hub BERT")
    _common.print_environment(env)
    print(f"# keras_hub {env['keras_hub']}")
    print(f"# N={args.examples} examples/epoch  B={args.batch_size}  seq_len={args.seq_len}  "
          f"K={args.num_classes}  vocab={args.vocab_words}+{len(SPECIAL_TOKENS)}  "
          f"student={args.student_layers}L/{args.hidden_dim}d/{args.num_heads}h/"
          f"{args.intermediate_dim}ff  teacher={args.teacher_layers}L  "
          f"jit_compile={args.jit_compile}  rounds={args.rounds} "
          f"(keras distiller in {args.keras_rounds})"
          f"{'  (QUICK smoke run)' if args.quick else ''}")
    total_start = _common.timer()
    rng = np.random.default_rng(args.seed)

    # Data: tokenised in tf.data and cached before any timing.
    vocabulary, preprocessor, texts, labels = make_data(args, rng)
    ds_labels = cached_dataset(preprocessor, args.batch_size, texts, labels,
                               structure=lambda x, l: (x, l))
    start = _common.timer()
    batches = fill_cache(ds_labels)
    tokenise_s = _common.timer() - start

    # Teacher outputs, precomputed once (the one-off cost of caching).
    teacher = make_classifier(args, vocabulary, args.teacher_layers, args.seed + 1)
    teacher.compile(jit_compile=args.jit)  # predict only; jit as for the others
    start = _common.timer()
    teacher_logits = teacher.predict(ds_labels, verbose=0)
    predict_cold_s = _common.timer() - start
    start = _common.timer()
    teacher_logits_again = teacher.predict(ds_labels, verbose=0)
    predict_warm_s = _common.timer() - start
    predict_max_diff = float(np.max(np.abs(teacher_logits - teacher_logits_again)))
    teacher_probs = softmax(teacher_logits).astype(np.float32)
    ds_distill = cached_dataset(
        preprocessor, args.batch_size, texts, teacher_probs, labels,
        structure=lambda x, p, l: (x, {"teacher_probs": p, "labels": l}),
    )
    fill_cache(ds_distill)

    # The three runs; each student starts from the same initial weights.
    student_seed = args.seed + 2
    dist_loss, eta = ptloss_distillation_loss(args, rng)
    ptl = ptloss_tf.Distiller(
        make_classifier(args, vocabulary, args.student_layers, student_seed))
    ptl.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        distillation_loss=dist_loss,
        student_loss_weight=args.student_loss_weight,
        jit_compile=args.jit,
    )
    plain = make_classifier(args, vocabulary, args.student_layers, student_seed)
    plain.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=args.jit,
    )
    kd = keras.distillation.Distiller(
        teacher=teacher,
        student=make_classifier(args, vocabulary, args.student_layers, student_seed),
        distillation_losses=keras.distillation.LogitsDistillation(temperature=1.0),
        student_loss_weight=args.student_loss_weight,
    )
    kd.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=args.jit,
    )
    runs = {key: _common.FitRun(key, model, ds, args.examples, args.batch_size, steady=True)
            for key, model, ds in ((PTL, ptl, ds_distill), (PLAIN, plain, ds_labels),
                                   (KERAS, kd, ds_labels))}
    for key in (PTL, PLAIN, KERAS):
        runs[key].warm_up()
    for r in range(args.rounds):
        order = [PTL, PLAIN] + ([KERAS] if r < args.keras_rounds else [])
        shift = r % len(order)
        for key in order[shift:] + order[:shift]:
            runs[key].timed()

    summaries = {k: summary(run) for k, run in runs.items()}
    n_a, n_b = args.rounds, args.keras_rounds
    a = {what: paired(runs[PTL], runs[PLAIN], what, n_a)
         for what in ("steady", "epoch", "fit")}
    a_cpu = [p / d for p, d in zip(runs[PLAIN].steady_cpu_s, runs[PTL].steady_cpu_s)]
    ratio_a = _common.median(a["steady"])
    ratio_a_best = (summaries[PTL]["examples_per_s_steady_best"]
                    / summaries[PLAIN]["examples_per_s_steady_best"])
    extra_call_a = (summaries[PTL]["fit_call_overhead_s_median"]
                    - summaries[PLAIN]["fit_call_overhead_s_median"])
    b = {what: paired(runs[PTL], runs[KERAS], what, n_b)
         for what in ("steady", "epoch", "fit")}
    speedup_b = _common.median(b["steady"])
    keras_eps = _common.median(runs[KERAS].per_round("steady"))
    ptl_eps_b = _common.median(runs[PTL].per_round("steady")[:n_b])
    saved_per_epoch = args.examples * (1.0 / keras_eps - 1.0 / ptl_eps_b)
    break_even = {
        "first_call": predict_cold_s / saved_per_epoch if saved_per_epoch > 0 else None,
        "warm_call": predict_warm_s / saved_per_epoch if saved_per_epoch > 0 else None,
    }
    passed = ratio_a >= args.target

    print(f"\n# data: {args.examples} examples in {batches} batches of {args.batch_size}, "
          f"tokenised and cached in {tokenise_s:.2f} s (not timed below)")
    print(f"## runs: 1 warm-up fit call each, then {n_a} timed rounds of one "
          f"fit(epochs=1) per model, interleaved\n"
          f"## (keras distiller in the first {n_b}); jit_compile resolved to "
          f"{summaries[PTL]['jit_compile']}")
    print_runs_table([summaries[k] for k in (PTL, PLAIN, KERAS)])

    print(f"\n## (a) ptloss_tf.Distiller (cached teacher probs, "
          f"{type(dist_loss).__name__}, student_loss_weight="
          f"{args.student_loss_weight}) vs plain BertTextClassifier.fit")
    print_ratio_table("Distiller / plain, paired per round", a, " (judged)",
                      [["CPU time, steady state (plain cpu / Distiller cpu)", a_cpu]])
    print(f"   ratio of best steady ex/s: {ratio_a_best:.3f}; extra per-fit-call "
          f"cost of the Distiller: {extra_call_a:+.2f} s (medians)")
    print(f"   target: steady-state ex/s ratio >= {args.target}: "
          f"{'PASS' if passed else 'FAIL'} ({ratio_a:.3f})")

    print(f"\n## (b) keras.distillation.Distiller ({args.teacher_layers}-layer teacher "
          f"run every step) vs ptloss_tf.Distiller (teacher outputs cached)")
    print_ratio_table("speed-up of cached teacher outputs, paired per round", b,
                      fmt="{:.2f}x")
    print(_common.format_table(
        ["measure", "value"],
        [
            ["keras Distiller ex/s (steady, median)", f"{keras_eps:.1f}"],
            ["ptloss Distiller ex/s (steady, median, same rounds)", f"{ptl_eps_b:.1f}"],
            [f"teacher.predict on {args.examples} ex, 1st call (incl. tracing)",
             f"{predict_cold_s:.2f} s"],
            [f"teacher.predict on {args.examples} ex, warm call",
             f"{predict_warm_s:.2f} s"],
            ["steady-state time saved per epoch by the cache",
             f"{saved_per_epoch:.2f} s"],
            ["cache pays for itself after (epochs; 1st / warm predict)",
             "never" if break_even["first_call"] is None
             else f"{break_even['first_call']:.2f} / {break_even['warm_call']:.2f}"],
        ],
        align="lr"))

    print(f"\n## target: ptloss_tf.Distiller (cached) >= {args.target}x plain "
          f"examples/s (steady state): {'PASS' if passed else 'FAIL'} ({ratio_a:.3f})"
          f"{'  [QUICK run: says nothing about the target]' if args.quick else ''}")
    elapsed = _common.finish_run(env, total_start)
    if args.json:
        config = {k: v for k, v in vars(args).items() if k not in ("json", "jit")}
        config["ptloss_eta"] = None if eta is None else eta.tolist()
        _common.write_json(args.json, {
            "benchmark": "bench_distiller",
            "config": config,
            "environment": env,
            "data": {"examples": args.examples, "batches": batches,
                     "tokenise_and_cache_s": tokenise_s},
            "runs": list(summaries.values()),
            "a_distiller_vs_plain": {
                "paired_ratios_steady": a["steady"],
                "paired_ratios_epoch": a["epoch"],
                "paired_ratios_fit_call": a["fit"],
                "paired_cpu_ratios_steady": a_cpu,
                "ratio_median_paired_steady": ratio_a,
                "ratio_of_best_steady": ratio_a_best,
                "extra_fit_call_overhead_s": extra_call_a,
                "target_min_ratio": args.target,
                "pass": passed,
            },
            "b_keras_live_teacher_vs_cached": {
                "teacher_layers": args.teacher_layers,
                "paired_speedups_steady": b["steady"],
                "paired_speedups_epoch": b["epoch"],
                "paired_speedups_fit_call": b["fit"],
                "speedup_median_paired_steady": speedup_b,
                "keras_examples_per_s_steady_median": keras_eps,
                "ptloss_examples_per_s_steady_median_same_rounds": ptl_eps_b,
                "teacher_predict_first_call_s": predict_cold_s,
                "teacher_predict_warm_call_s": predict_warm_s,
                "teacher_predict_repeat_max_abs_diff": predict_max_diff,
                "saved_per_epoch_s": saved_per_epoch,
                "break_even_epochs": break_even,
            },
            "wall_time_s": elapsed,
        })
    return 1 if (args.strict and not passed) else 0


if __name__ == "__main__":
    sys.exit(main())
