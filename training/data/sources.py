"""Examples of a registered task (`tasks.TASKS`) from TFDS or from the
local GLUE / BoolQ files: `load_split`.

Ids name the *source row* (see `examples`), so teacher outputs keyed by id
join correctly whatever derived split a row ends up in. Local split
derivations are data on the task (`TaskSpec.derived_splits`):

* SST-2 (GLUE hides the test labels): `"test"` = `dev.tsv` (872 rows, the
  test set of the papers); `"validation"` = 872 rows of `train.tsv` chosen
  with `np.random.default_rng(0)`; `"train"` = the other 66,477 rows.
* BoolQ (only `dev.jsonl` here, 3,270 rows): a seed-0 permutation split
  60/20/20 into `"train"` (1,962) / `"validation"` (654) / `"test"` (654).

Through TFDS the splits are the TFDS ones (`TaskSpec.tfds_splits`): there
SST-2 `"validation"` is GLUE dev and `"test"` the unlabeled GLUE test.

Without a data root, a local file is looked for under the default root
(`$PTLOSS_DATA_DIR` or `../shared/data`), then under the repository's
`data/` (`tasks.data_roots`). The multi-class tasks `cb`, `sst5`, `trec`
have no TFDS source (`TaskSpec.files_only`): a missing file of theirs is a
one-line ValueError naming it, never a skipped split.
"""

import os

import numpy as np

from ptloss_tf.training.data.examples import Examples
from ptloss_tf.training.data.examples import load_file
from ptloss_tf.training.data.examples import missing_file_error
from ptloss_tf.training.data.tasks import DATA_DIR_ENV
from ptloss_tf.training.data.tasks import data_roots
from ptloss_tf.training.data.tasks import get_task

SOURCES = ("auto", "files", "tfds")


def _one_line(message):
    return " ".join(str(message).split())


def _local_path(task, split, roots):
    """`split`'s file under the first of `roots` that has it, else under
    the first root."""
    paths = [os.path.join(root, task.local_files[split]) for root in roots]
    return next((p for p in paths if os.path.isfile(p)), paths[0])


def _files_only_missing(task, split, path, roots):
    return ValueError(
        f"{path}: file not found (task {task.name} reads local files only: "
        f"{task.local_files[split]} under the data root, searched "
        f"{', '.join(roots)}; set --data-root or ${DATA_DIR_ENV}; see "
        "data/multiclass/README.md)"
    )


def _load_local(task, split, path):
    stem = os.path.splitext(os.path.basename(path))[0]
    label_field = None if split in task.local_unlabeled else task.local_column(task.label_field)
    full = load_file(
        path,
        tuple(task.local_column(f) for f in task.text_fields),
        label_field=label_field,
        id_field=task.local_id_field,
        class_names=task.class_names,
        id_prefix=f"{task.name}/{stem}",
    )
    rel = task.local_files[split]
    derive = task.derived_splits
    rows = derive.rows(split, len(full)) if derive is not None else None
    part = full if rows is None else full.subset(rows)
    part.note = (derive.note(task.name, split, rel, len(full)) if derive is not None
                 else f"{task.name} {split}: {rel}")
    return part


def load_tfds_split(task, split, tfds_data_dir=None, limit=None):
    """One split of `task` (a `TaskSpec`) through `tfds.load` (downloads and
    prepares it once; users with internet), as `Examples` with ids
    `"<task>/<tfds split>/<idx>"`."""
    import tensorflow_datasets as tfds

    tfds_split = task.tfds_splits[split]
    ds, info = tfds.load(task.tfds_name, split=tfds_split, data_dir=tfds_data_dir,
                         with_info=True, shuffle_files=False)
    features = info.features
    wanted = list(task.text_fields) + [task.label_field]
    missing = [f for f in wanted if f not in features]
    if missing:
        raise ValueError(
            f"TFDS {task.tfds_name}: missing feature {missing[0]!r} "
            f"(features: {', '.join(features.keys())})"
        )
    names = getattr(features[task.label_field], "names", None)
    if names and tuple(names) != task.class_names:
        raise ValueError(
            f"TFDS {task.tfds_name}: label names {tuple(names)} differ from the "
            f"task's {task.class_names}"
        )
    keys = wanted + (["idx"] if "idx" in features else [])
    ds = ds.map(lambda ex: {k: ex[k] for k in keys})
    if limit is not None:
        ds = ds.take(int(limit))
    columns = {k: [] for k in keys}
    for batch in tfds.as_numpy(ds.batch(4096)):
        for k in keys:
            columns[k].append(np.asarray(batch[k]).reshape(-1))
    columns = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in columns.items()}
    texts = tuple(
        np.asarray([b.decode("utf-8") if isinstance(b, bytes) else str(b)
                    for b in columns[f]], dtype=object)
        for f in task.text_fields
    )
    n = len(texts[0])
    idx = columns.get("idx")
    if idx is None:
        idx = np.arange(n)  # no idx feature: the row number
    # GLUE's idx is unique per split; mocked data repeats some: the k-th
    # repeat gets "-k" (so ids of the first m rows do not depend on `limit`).
    ids, seen = [], {}
    for i in idx:
        base = f"{task.name}/{tfds_split}/{int(i):06d}"
        k = seen.get(base, 0)
        seen[base] = k + 1
        ids.append(base if k == 0 else f"{base}-{k}")
    ids = np.asarray(ids)
    labels = columns[task.label_field].astype(np.int64)
    note = f"TFDS {task.tfds_name} split {tfds_split!r}"
    if n and (labels < 0).all():
        note += " (unlabeled: test labels are hidden)"
    return Examples(ids=ids, texts=texts, labels=labels,
                    class_names=task.class_names, note=note)


def load_split(task, split, source="auto", data_root=None, tfds_data_dir=None, limit=None):
    """One split of a registered task as `Examples`.

    Args:
        task: a `TaskSpec` or a task name ("sst2", "mnli", "boolq", "rte").
        split: a logical split: "train", "validation", "test" (mnli also
            "validation_mismatched", "test_mismatched").
        source: "tfds" (`tfds.load(task.tfds_name, split=task.tfds_splits[split],
            data_dir=tfds_data_dir)`, downloads if needed), "files" (the
            local GLUE / BoolQ layout under `data_root`), or "auto" (files if
            the split's file exists, else TFDS).
        data_root: the local data root; default `tasks.data_roots()`:
            `$PTLOSS_DATA_DIR` (else `<repo>/../shared/data`), then `<repo>/data`.
        tfds_data_dir: TFDS's `data_dir` (None: TFDS's default).
        limit: keep only the first `limit` examples of the split.

    Local split derivations (seed 0; also in the returned `Examples.note`):
    SST-2 "test" = GLUE `dev.tsv`, "validation" = 872 rows held out of
    `train.tsv`, "train" = the rest of `train.tsv`. BoolQ: `dev.jsonl` split
    60/20/20 into "train"/"validation"/"test" (BoolQ train is absent here).
    Through TFDS the splits are TFDS's own (`task.tfds_splits`).

    Tasks without TFDS (`cb`, `sst5`, `trec`) read their files only.

    Raises:
        ValueError: unknown task, split or source; a missing file of a
            files-only task.
        FileNotFoundError: no local file (and, for "auto", TFDS failed too).
    """
    task = get_task(task)
    if split not in task.splits:
        raise ValueError(
            f"unknown split {split!r} for task {task.name}; known: {', '.join(task.splits)}"
        )
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if limit is not None and int(limit) < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    roots = data_roots(data_root)
    data_root = roots[0]
    local = _local_path(task, split, roots) if split in task.local_files else None

    if task.files_only:
        if source == "tfds":
            raise ValueError(f"task {task.name} has no TFDS source; it reads local files "
                             "(--source files or auto)")
        if not os.path.isfile(local):
            raise _files_only_missing(task, split, local, roots)
    if source == "files" or (source == "auto" and local and os.path.isfile(local)):
        if local is None:
            raise ValueError(
                f"task {task.name} has no local file for split {split!r}; "
                "use --source tfds"
            )
        if not os.path.isfile(local):
            raise missing_file_error(local)
        examples = _load_local(task, split, local)
        return examples if limit is None else examples.take(limit)

    if split not in task.tfds_splits:
        raise ValueError(f"task {task.name} has no TFDS split for {split!r}")
    if source == "tfds":
        return load_tfds_split(task, split, tfds_data_dir, limit)
    try:
        return load_tfds_split(task, split, tfds_data_dir, limit)
    except Exception as e:  # auto: neither source worked; say both.
        raise FileNotFoundError(
            f"{task.name} {split}: no local file {local} (data root {data_root}: set "
            f"${DATA_DIR_ENV} or --data-root) and TFDS {task.tfds_name} failed "
            f"({type(e).__name__}: {_one_line(e)[:300]}; prepare it with internet or "
            "pass --tfds-data-dir)"
        ) from e
