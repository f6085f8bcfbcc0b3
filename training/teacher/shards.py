"""The teacher pass in shards: `ptloss-distill teacher --shard I/N` predicts a
share of every split, `ptloss-distill teacher merge` assembles the shares
into the ordinary outputs files.

Fine-tuning is not sharded: `--fine-tune-only` fine-tunes once and saves
`teacher.keras` in `--output-dir`; each `--shard I/N` process (the same
flags, the data at the same paths) checks that directory's run state, loads
its `teacher.keras` and predicts its rows. The processes write nothing but
their own shard files, so they may share one directory (a shared file
system) or each work in a copy of it.

Partition: shard `I` of `N` predicts the batches `I, I + N, I + 2N, ...` of
the unsharded pass (`shard_batches`: the length-bucketed batches
`predict_logits` runs over the whole split, from its token lengths alone).
Why batches and not rows (row index mod N, or contiguous blocks): a row's
logits depend, in their last bits, on the shape of the batch they are
computed in (the matrix kernels' blocking follows the batch size), so a
shard that batched its own rows would not reproduce the unsharded pass bit
for bit; a shard of its batches computes every batch exactly as it does.
Striding (rather than blocks of batches) gives every shard the same mix of
short and long buckets, so the shards take about the same time; the
partition depends only on the data and `--batch-size` / `--sequence-length`,
which every shard shares (they are in the run's identity).

Shard files: `<output-dir>/shards/<split>.shard-<I>-of-<N>.jsonl`, the
teacher-outputs format (`outputs.TeacherOutputs`: ids, logits, each row's
content fingerprint), its header `metadata` the split's own (train.jsonl's
`train_rows`, ...) plus `"shard": {"index": I, "count": N, "run": ID,
"split_rows": n, "partition": "batch % count", "rows": [...]}` (`rows`: the
split row of each line, ascending). `ID` (`run_identity`) hashes the run's
options (`run_state.run_options`: data, subsample, fine-tuning, batch size)
and the sha256 of `teacher.keras`: shards of another fine-tuning or of other
options are foreign. A shard file is written atomically once its split is
predicted; a rerun keeps those already written for these rows and predicts
the rest, so an interrupted shard restarts cleanly from its last split.

Merge: `merge_shards` refuses, in one line naming the files, shards that are
not this run's (`--output-dir`'s run state, else the run of most shards),
overlapping shards (the same `I/N` twice, another `N`, a row or id in two
shards), missing shards (an `I` absent for a split) and shards of another
row count.
The merged files equal the unsharded pass's: rows in split order, the split's
metadata, the same values; in a run directory they are recorded in its state,
so the command without `--shard` then keeps them.

Example:
>>> parse_shard("1/3"), shard_file_name("train", 1, 3)
((1, 3), 'train.shard-00001-of-00003.jsonl')
>>> lengths = [5, 20, 6, 7, 21, 6, 30]  # token counts; buckets (0, 8] and (8, 32]
>>> [shard_batches(lengths, [8, 32], 2, i, 2).tolist() for i in range(2)]
[[0, 2, 3, 5], [1, 4, 6]]
"""

import collections
import glob
import hashlib
import json
import os
import re
import time

import numpy as np

from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.io_utils import file_sha256
from ptloss_tf.training.teacher.outputs import TeacherOutputs
from ptloss_tf.training.teacher.outputs import first_few
from ptloss_tf.training.teacher.outputs import text_fingerprints
from ptloss_tf.training.teacher.predict import load_teacher
from ptloss_tf.training.teacher.predict import predict_logits
from ptloss_tf.training.teacher.run_state import STATE_FILE
from ptloss_tf.training.teacher.run_state import run_options

SHARD_DIR = "shards"
PARTITION = "batch % count"
TEACHER_FILE = "teacher.keras"  # run.TEACHER_FILE (run imports this module)
_SHARD_NAME = re.compile(r"(?P<split>.+)\.shard-(?P<index>\d+)-of-(?P<count>\d+)\.jsonl")


def parse_shard(text):
    """`(I, N)` from `"I/N"` (`0 <= I < N`); a one-line ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"--shard must be I/N with 0 <= I < N (shards 0/N to N-1/N), "
                         f"got {text!r}.")
    return int(match[1]), int(match[2])


def shard_batches(lengths, boundaries, batch_size, index, count):
    """The rows of shard `index` of `count`, in the order it predicts them:
    batches `index, index + count, ...` of the unsharded pass over rows of
    token counts `lengths` (`data.buckets.plan_batches`, the batches
    `make_dataset` forms: fed these rows in this order, it forms them again).
    """
    from ptloss_tf.training.data.buckets import plan_batches

    batches, _ = plan_batches(np.arange(len(lengths)), lengths, boundaries, batch_size)
    mine = batches[index::count]
    return np.concatenate(mine) if mine else np.zeros(0, np.int64)


def shard_file_name(split, index, count):
    return f"{split}.shard-{index:05d}-of-{count:05d}.jsonl"


def run_identity(options, teacher_sha256):
    """16 hex digits naming a teacher run: its options and its fine-tuned weights.

    >>> run_identity({"seed": 0}, "ab") == run_identity({"seed": 0}, "ab") != run_identity({"seed": 1}, "ab")
    True
    """
    text = json.dumps({"options": options, "teacher": teacher_sha256}, sort_keys=True)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _read_state(directory):
    path = os.path.join(directory, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def fine_tuned_run(config):
    """`(identity, teacher.keras path)` of `--output-dir`'s fine-tuned run,
    checked against this command's options; a one-line ValueError otherwise."""
    state = _read_state(config.output_dir)
    model_path = os.path.join(config.output_dir, TEACHER_FILE)
    hint = ("run the same command with --fine-tune-only instead of --shard first, and give "
            "every shard that directory (shared, or a copy)")
    if not state or not state.get("teacher_file") or not os.path.exists(model_path):
        raise ValueError(f"--shard predicts from a fine-tuned teacher, and {config.output_dir} "
                         f"holds none: {hint}.")
    options = run_options(config)
    if state.get("options") != options:
        diff = [k for k in options if (state.get("options") or {}).get(k) != options[k]]
        raise ValueError(f"--shard: the teacher in {config.output_dir} was fine-tuned with other "
                         f"options ({', '.join('--' + k.replace('_', '-') for k in diff[:3])}); "
                         "give every shard the flags of its --fine-tune-only command.")
    if file_sha256(model_path) != state["teacher_file"]:
        raise ValueError(f"--shard: {model_path} is not the teacher its run state records "
                         f"(changed or copied incompletely); {hint}.")
    return run_identity(options, state["teacher_file"]), model_path


def predict_shard(config, shard, splits, name, distribution=None):
    """Predicts shard `shard = (I, N)` of every split of `splits`
    (`{split: (examples, metadata)}`) into `--output-dir/shards/`.

    Returns `{split: rows}` of the shard; keeps (does not predict again) a
    shard file this run wrote for these rows before. `distribution`: the
    JAX mesh to predict on (`predict.prediction_distribution`), or None.
    """
    from ptloss_tf.training.data.input_pipeline import auto_bucket_boundaries
    from ptloss_tf.training.data.input_pipeline import sequence_lengths

    index, count = shard
    identity, model_path = fine_tuned_run(config)
    directory = os.path.join(config.output_dir, SHARD_DIR)
    os.makedirs(directory, exist_ok=True)
    teacher = None
    done = {}
    for split, (examples, meta) in splits.items():
        path = os.path.join(directory, shard_file_name(split, index, count))
        shard_meta = {"index": index, "count": count, "run": identity,
                      "split_rows": len(examples), "partition": PARTITION}
        kept = None if config.overwrite else _kept(path, shard_meta, examples, name)
        if kept is not None:
            print(f"Keeping {path} (shard {index}/{count} of {split}, finished before).",
                  flush=True)
            done[split] = kept
            continue
        start = time.time()
        if teacher is None:
            teacher = load_teacher(model_path, distribution)
        preprocessor = teacher.preprocessor
        # The whole split's lengths and boundaries: the unsharded pass's batches.
        lengths = sequence_lengths(examples, preprocessor)
        boundaries = auto_bucket_boundaries(lengths, int(preprocessor.sequence_length))
        order = shard_batches(lengths, boundaries, config.batch_size, index, count)
        class_names = tuple(examples.class_names)
        logits = np.zeros((0, len(class_names)), np.float32)  # fewer batches than shards
        if len(order):
            logits = predict_logits(teacher, examples.subset(order), preprocessor,
                                    config.batch_size, boundaries, distribution)
        ascending = np.argsort(order, kind="stable")
        rows, logits = order[ascending], logits[ascending]
        part = examples.subset(rows)
        TeacherOutputs(ids=np.asarray(part.ids), values=logits, kind="logits",
                       class_names=class_names, split=split, teacher=name,
                       metadata={**meta, "shard": {**shard_meta, "rows": rows.tolist()}},
                       fingerprints=text_fingerprints(part.texts),
                       ).save(path, overwrite=True)  # this run's shard (checked above)
        print(f"Wrote {path}: shard {index}/{count} of {split}, {len(rows)} of "
              f"{len(examples)} rows in {time.time() - start:.1f} s.", flush=True)
        done[split] = len(rows)
    return done


def _kept(path, shard_meta, examples, name):
    """The row count of `path` if it is this shard of this run for these
    examples (its rows' ids and content fingerprints), else None."""
    try:
        outputs = TeacherOutputs.load(path)
    except (OSError, ValueError):
        return None
    meta = dict(outputs.metadata.get("shard") or {})
    rows = np.asarray(meta.pop("rows", None) or [], np.int64)
    if (meta != shard_meta or outputs.teacher != name or outputs.fingerprints is None
            or len(rows) != len(outputs) or (len(rows) and rows.max() >= len(examples))):
        return None
    part = examples.subset(rows)
    if (outputs.ids.tolist() != np.asarray(part.ids).astype(str).tolist()
            or outputs.fingerprints.tolist() != text_fingerprints(part.texts).tolist()):
        return None
    return len(rows)


def find_shard_files(paths):
    """The shard files among `paths` (files, or directories holding them
    directly or in `shards/`), in the order given."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            names = []
            for folder in (path, os.path.join(path, SHARD_DIR)):
                names += sorted(glob.glob(os.path.join(glob.escape(folder), "*.shard-*.jsonl")))
            if not names:
                raise FileNotFoundError(f"no shard files (*.shard-I-of-N.jsonl) in {path} "
                                        f"or {os.path.join(path, SHARD_DIR)}.")
            found += names
        elif os.path.exists(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"shard file or directory not found: {path}")
    return list(dict.fromkeys(os.path.normpath(p) for p in found))


def _load_shard(path):
    outputs = TeacherOutputs.load(path)
    shard = outputs.metadata.get("shard")
    keys = {"index", "count", "run", "split_rows", "rows"}
    if (not isinstance(shard, dict) or not keys <= set(shard) or outputs.fingerprints is None
            or len(shard["rows"]) != len(outputs)):
        raise ValueError(f"{path} is not a teacher shard (no `shard` in its header metadata); "
                         "merge reads the files of `ptloss-distill teacher --shard I/N`.")
    return outputs, shard


def merge_shards(paths, output_dir, overwrite=False, log=print):
    """Assembles the shard files under `paths` into `<output_dir>/<split>.jsonl`.

    Args:
        paths: shard files, or directories holding them (or a `shards/`).
        output_dir: where the merged outputs go; when it holds a teacher
            run state, only that run's shards are accepted and the merged
            files are recorded in the state.
        overwrite: replace different outputs files already in `output_dir`
            (files equal to the merged ones are kept either way).
        log: progress messages.

    Returns:
        `{split: path}` of the merged files.

    Raises:
        ValueError: a file that is not a shard; foreign, overlapping or
            missing shards; shards of another row count (one line each,
            naming the files).
        FileExistsError: a different `<split>.jsonl` exists, without `overwrite`.
    """
    shards = [(p, *_load_shard(p)) for p in find_shard_files(paths)]
    state = _read_state(output_dir)
    own = None
    if state and state.get("teacher_file") and state.get("options"):
        own = run_identity(state["options"], state["teacher_file"])
    runs = collections.Counter(meta["run"] for _, _, meta in shards)
    reference = own or runs.most_common(1)[0][0]
    foreign = [p for p, _, meta in shards if meta["run"] != reference]
    if foreign:
        whose = (f"the run in {output_dir}" if own else
                 f"run {reference}, which {runs[reference]} of the {len(shards)} shards are of")
        raise ValueError(f"foreign shards, of another teacher run (other options or another "
                         f"fine-tuning) than {whose}: {', '.join(foreign)}.")
    by_split = collections.defaultdict(list)
    for path, outputs, meta in shards:
        by_split[outputs.split].append((path, outputs, meta))
    merged = {}
    for split, parts in by_split.items():
        merged[split] = _merge_split(split, parts)
    written = {}
    for split, outputs in merged.items():
        path = os.path.join(output_dir, f"{split}.jsonl")
        if os.path.exists(path) and _same(path, outputs):
            log(f"Keeping {path}: the merge of these shards already.")
        else:
            outputs.save(path, overwrite=overwrite)
            log(f"Wrote {path} ({len(outputs)} rows from "
                f"{len(by_split[split])} shards).")
        written[split] = path
    if own:
        # The run directory now holds these outputs: the command without
        # --shard keeps them and only writes teacher_run.json.
        state.setdefault("outputs", {}).update(
            {split: {"sha256": file_sha256(path), "rows": len(merged[split])}
             for split, path in written.items()})
        atomic_write_json(os.path.join(output_dir, STATE_FILE), state)
    return written


def _merge_split(split, parts):
    """The split's outputs from its shards (checked), rows in split order."""
    counts = sorted({meta["count"] for _, _, meta in parts})
    if len(counts) > 1:
        shown = ", ".join(f"{p} ({m['index']}/{m['count']})" for p, _, m in parts)
        raise ValueError(f"overlapping shards of {split}: they divide it into "
                         f"{' and '.join(map(str, counts))} shards: {shown}.")
    count = counts[0]
    where = collections.defaultdict(list)
    for path, _, meta in parts:
        where[meta["index"]].append(path)
    twice = {i: ps for i, ps in where.items() if len(ps) > 1}
    if twice:
        raise ValueError(f"overlapping shards of {split}: " + "; ".join(
            f"shard {i}/{count} is in {' and '.join(ps)}" for i, ps in sorted(twice.items())) + ".")
    missing = [i for i in range(count) if i not in where]
    if missing:
        raise ValueError(f"missing shards of {split}: " + ", ".join(
            f"{shard_file_name(split, i, count)} ({i}/{count})" for i in missing)
            + f"; found {len(where)} of {count} in "
            + ", ".join(sorted({os.path.dirname(p) or "." for p, _, _ in parts})) + ".")
    totals = {meta["split_rows"] for _, _, meta in parts}
    if len(totals) > 1:
        raise ValueError(f"shards of {split} for splits of {len(totals)} row counts "
                         f"{sorted(totals)}: {', '.join(p for p, _, _ in parts)}.")
    n = totals.pop()
    owner = np.full(n, -1, np.int64)
    parts = sorted(parts, key=lambda part: part[2]["index"])
    first = parts[0][1]
    ids = np.empty(n, dtype=object)
    values = np.zeros((n, len(first.class_names)), np.float32)
    fingerprints = np.empty(n, dtype=object)
    for k, (path, outputs, meta) in enumerate(parts):
        rows = np.asarray(meta["rows"], np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"{path}: shard rows outside the split's {n} rows.")
        taken = rows[owner[rows] >= 0]
        if len(taken) or len(np.unique(rows)) != len(rows):
            other = parts[owner[taken[0]]][0] if len(taken) else path
            shown = np.unique(taken).tolist() or ["(repeated)"]
            raise ValueError(f"overlapping shards of {split}: {path} and {other} both hold "
                             f"rows {', '.join(map(str, shown[:5]))}"
                             + (", ..." if len(shown) > 5 else "") + ".")
        owner[rows] = k
        ids[rows], values[rows], fingerprints[rows] = (outputs.ids, outputs.values,
                                                       outputs.fingerprints)
    if (owner < 0).any():
        raise ValueError(f"shards of {split} for other rows: {int((owner < 0).sum())} of its "
                         f"{n} rows are in none of {', '.join(p for p, _, _ in parts)}.")
    unique, seen = np.unique(ids.astype(str), return_counts=True)
    if (seen > 1).any():
        raise ValueError(f"overlapping shards of {split}: ids in more than one shard "
                         f"({first_few(unique[seen > 1])}) among "
                         f"{', '.join(p for p, _, _ in parts)}.")
    metadata = {k: v for k, v in first.metadata.items() if k != "shard"}
    return TeacherOutputs(ids=ids.astype(str), values=values, kind=first.kind,
                          class_names=first.class_names, split=split, teacher=first.teacher,
                          metadata=metadata, fingerprints=fingerprints.astype(str))


def _same(path, outputs):
    try:
        old = TeacherOutputs.load(path)
    except (OSError, ValueError):
        return False
    return (old.header() == outputs.header() and old.ids.tolist() == outputs.ids.tolist()
            and np.array_equal(old.values, outputs.values)
            and old.fingerprints is not None
            and old.fingerprints.tolist() == outputs.fingerprints.tolist())


def merge_main(argv):
    """`ptloss-distill teacher merge DIR... --output-dir OUT [--overwrite]`."""
    from ptloss_tf.console import ArgumentParser

    parser = ArgumentParser(
        prog="ptloss-distill teacher merge",
        description="Assemble the shard files of `ptloss-distill teacher --shard I/N` into "
                    "the outputs files (<split>.jsonl) that --teacher-outputs reads.")
    parser.add_argument("shards", nargs="+", metavar="DIR",
                        help="shard files, or directories holding them (or a shards/ folder)")
    parser.add_argument("--output-dir", required=True,
                        help="writes <split>.jsonl here (the run's --output-dir: recorded "
                             "in its run state)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace outputs files that differ from the merged ones")
    args = parser.parse_args(argv)
    merge_shards(args.shards, args.output_dir, overwrite=args.overwrite,
                 log=lambda m: print(m, flush=True))
    return 0
