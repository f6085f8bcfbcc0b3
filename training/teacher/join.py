"""The teacher-output join: teacher probabilities aligned to a run's
examples by id.

`join` is strict and says every way a file and the examples disagree
(split, classes, ids, content fingerprints, values) in one error;
`load_splits` is the stage of `ptloss-distill` that reads every split's
examples and teacher outputs (or makes the synthetic task) into
`splits.Splits`.
"""

import os
import warnings

import numpy as np

from ptloss_tf.probabilities import softmax
from ptloss_tf.training.splits import HOLDOUT_SEED
from ptloss_tf.training.splits import Splits
from ptloss_tf.training.splits import hidden_test_labels
from ptloss_tf.training.splits import plan_train_rows
from ptloss_tf.training.splits import rows_read
from ptloss_tf.training.task_examples import DataSource
from ptloss_tf.training.task_examples import extra_test_splits
from ptloss_tf.training.task_examples import load_registered_split
from ptloss_tf.training.task_examples import load_task_examples
from ptloss_tf.training.teacher.fingerprints import FIRST_FEW
from ptloss_tf.training.teacher.fingerprints import UncheckedAlignmentWarning
from ptloss_tf.training.teacher.fingerprints import first_few
from ptloss_tf.training.teacher.fingerprints import text_fingerprints
from ptloss_tf.training.teacher.outputs import TeacherOutputs

#: What a user of `ptloss-distill` can do about teacher rows that are not
#: among the examples (`join(allow_extra=True)` is the Python-level escape).
EXTRA_ROWS_HINT = ("check that --teacher-outputs holds this task's outputs, or write the "
                   "teacher outputs of exactly these examples (Python: "
                   "ptloss_tf.training.teacher.join.join(..., allow_extra=True) ignores "
                   "extra rows)")


def join(outputs, examples, split, allow_extra=False):
    """The teacher's probabilities aligned to `examples.ids`, after checking everything.

    Rows are matched by id, then their content is checked: where the file
    has fingerprints (`TeacherOutputs.fingerprints`, written by
    `ptloss-distill teacher`), each matched row's fingerprint must equal
    `text_fingerprints(examples.texts)` of its example. Ids of `--task file`
    data are row numbers, so without this check the outputs of another file
    with as many rows, or of a reshuffled copy, would join silently. A file
    without fingerprints (format version 1, or an external table imported
    without its text columns) still joins, with an
    `UncheckedAlignmentWarning` (`warnings.warn`).

    Args:
        outputs: `TeacherOutputs`.
        examples: `ptloss_tf.training.data.examples.Examples` (uses `ids`,
            `class_names` and, when the file has fingerprints, `texts`).
        split: the examples' split name.
        allow_extra: ignore teacher rows whose ids are not among the examples
            (e.g. a teacher file for the full split joined to a subsample).
            Off by default: extra rows usually mean the wrong file.

    Returns:
        `[len(examples), K]` float32 probabilities (softmax applied to logits),
        row `i` for `examples.ids[i]`. Probability rows are returned as stored
        (not renormalised).

    Raises:
        ValueError: one message listing every structural problem found: wrong
            split, class count or class names/order different from the
            examples', duplicated ids (in the file or the examples), example
            ids missing from the file, extra ids (unless `allow_extra`);
            otherwise (one line) rows whose fingerprints differ from their
            examples' texts (how many, the first few ids and file lines),
            NaN/inf values, or probability rows that are negative or do not
            sum to 1 (tolerance 1e-2, checked by
            `ptloss_tf.validation.check_probabilities`), quoting the ids.

    Example:
    >>> import numpy as np
    >>> from ptloss_tf.training.data.examples import Examples
    >>> from ptloss_tf.training.teacher.outputs import text_fingerprints
    >>> examples = Examples(ids=["t/000000", "t/000001"], texts=(["good", "bad"],),
    ...                     labels=[1, 0], class_names=("neg", "pos"))
    >>> shuffled = (["bad", "good"],)  # the same ids, the rows of a reshuffled file
    >>> outputs = TeacherOutputs(examples.ids, [[0.1, 0.9], [0.8, 0.2]], "probs",
    ...                          ("neg", "pos"), "train", "t", fingerprints=text_fingerprints(shuffled))
    >>> join(outputs, examples, "train")
    Traceback (most recent call last):
    ...
    ValueError: teacher outputs of 't' (split 'train') belong to other data: 2 of the 2 matched rows have texts different from the examples' (first few: 't/000000' (line 2), 't/000001' (line 3)); ids of `--task file` data are row numbers, so these are probably the outputs of another task or of a reshuffled or edited file: recompute them with `ptloss-distill teacher` on this data.
    """
    from ptloss_tf.validation import PROBABILITY_SUM_TOLERANCE, check_probabilities

    file_ids = [str(i) for i in outputs.ids]
    ex_ids = [str(i) for i in np.asarray(examples.ids).reshape(-1)]
    ex_classes = tuple(str(c) for c in examples.class_names)
    out_classes = tuple(outputs.class_names)
    problems = []
    if outputs.split != split:
        problems.append(f"teacher file is for split '{outputs.split}' but the examples are '{split}'")
    if len(out_classes) != len(ex_classes):
        problems.append(
            f"class count mismatch: the teacher file has {len(out_classes)} classes "
            f"{out_classes} but the examples have {len(ex_classes)} {ex_classes}"
        )
    elif out_classes != ex_classes:
        if sorted(out_classes) == sorted(ex_classes):
            problems.append(
                f"class order mismatch: the teacher's columns are {out_classes} but the "
                f"examples' classes are {ex_classes}; re-export or re-import the teacher "
                "with the columns in the examples' order"
            )
        else:
            problems.append(
                f"class names differ: the teacher file has {out_classes} but the examples "
                f"have {ex_classes}"
            )

    def duplicates(ids):
        uniq, counts = np.unique(np.asarray(ids, dtype=str), return_counts=True)
        dup = {u: int(c) for u, c in zip(uniq, counts) if c > 1}
        order = [i for i in dict.fromkeys(ids) if i in dup]  # first-seen order
        return order, dup

    dup_order, dup = duplicates(file_ids)
    if dup:
        problems.append(
            f"{len(dup)} ids appear more than once in the teacher file (first few: "
            + ", ".join(f"{i!r} x{dup[i]}" for i in dup_order[:FIRST_FEW])
            + (", ..." if len(dup) > FIRST_FEW else "") + ")"
        )
    ex_dup_order, ex_dup = duplicates(ex_ids)
    if ex_dup:
        problems.append(
            f"{len(ex_dup)} ids appear more than once among the examples (first few: "
            f"{first_few(ex_dup_order)})"
        )
    file_set, ex_set = set(file_ids), set(ex_ids)
    missing = [i for i in dict.fromkeys(ex_ids) if i not in file_set]
    if missing:
        problems.append(
            f"{len(missing)} of the {len(ex_set)} example ids are missing from the teacher "
            f"file (first few: {first_few(missing)})"
        )
    extra = [i for i in dict.fromkeys(file_ids) if i not in ex_set]
    if extra and not allow_extra:
        problems.append(
            f"{len(extra)} ids in the teacher file are not among the examples (first few: "
            f"{first_few(extra)}); {EXTRA_ROWS_HINT}"
        )
    if problems:
        raise ValueError(
            f"teacher outputs of {outputs.teacher!r} (split {outputs.split!r}, "
            f"{len(file_ids)} rows) do not match the {split!r} examples "
            f"({len(ex_ids)} examples):\n" + "\n".join(f"- {p}" for p in problems)
        )

    position = {i: n for n, i in enumerate(file_ids)}
    index = np.asarray([position[i] for i in ex_ids], dtype=np.int64)
    where = f"teacher outputs of {outputs.teacher!r} (split {split!r})"
    check_fingerprints(outputs, examples, index, where)
    values = np.asarray(outputs.values)[index].reshape(len(index), len(out_classes))
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        ids = np.asarray(ex_ids)[bad]
        raise ValueError(
            f"{where}: {int(bad.sum())} rows contain NaN or inf (first few ids: {first_few(ids)})"
        )
    if outputs.kind == "logits":
        return softmax(values).astype(np.float32)
    try:
        check_probabilities(values, name=f"{where} ({outputs.kind})")
    except ValueError as e:
        wrong = (values < 0).any(axis=1) | (
            np.abs(values.astype(np.float64).sum(axis=1) - 1.0) > PROBABILITY_SUM_TOLERANCE
        )
        ids = np.asarray(ex_ids)[wrong]
        raise ValueError(
            f"{e} Offending ids ({int(wrong.sum())}; first few): {first_few(ids)}."
            + (" If the file holds logits, import it with logit_columns=." if len(ids) else "")
        ) from None
    return values.astype(np.float32)


def check_fingerprints(outputs, examples, index, where):
    """Checks that file row `index[i]` was computed from example `i`'s texts.

    Raises a one-line ValueError naming how many rows differ and the first
    few (id and line of the file); warns (`UncheckedAlignmentWarning`) when
    the file has no fingerprints.
    """
    if outputs.fingerprints is None:
        warnings.warn(
            f"{where} have no content fingerprints (written before format version 2, or "
            "imported without text columns): joined by id alone, their alignment to the "
            "examples' texts could not be checked",
            UncheckedAlignmentWarning, stacklevel=3,
        )
        return
    texts = getattr(examples, "texts", None)
    if texts is None:
        raise ValueError(f"{where}: the file has fingerprints but the examples have no texts "
                         "to check them against.")
    expected = text_fingerprints(texts)
    found = np.asarray(outputs.fingerprints)[index]
    wrong = np.flatnonzero(found != expected)
    if not len(wrong):
        return
    ids = np.asarray(examples.ids).reshape(-1)
    shown = ", ".join(f"{str(ids[i])!r} (line {int(index[i]) + 2})" for i in wrong[:FIRST_FEW])
    raise ValueError(
        f"{where} belong to other data: {len(wrong)} of the {len(index)} matched rows have "
        f"texts different from the examples' (first few: {shown}"
        + (", ...)" if len(wrong) > FIRST_FEW else ")")
        + "; ids of `--task file` data are row numbers, so these are probably the outputs of "
          "another task or of a reshuffled or edited file: recompute them with "
          "`ptloss-distill teacher` on this data."
    )


def _subset_hint(outputs, config):
    meta = outputs.metadata or {}
    if meta.get("train_rows") != "subset":
        return ""
    return (f"\n- {len(outputs)} rows: this train.jsonl holds only the training rows of "
            f"`ptloss-distill teacher --max-train-examples {meta.get('max_train_examples')} "
            f"--seed {meta.get('seed')}`; distil with the same --max-train-examples and "
            f"--seed (this run: {config.max_train_examples}, {config.seed})")


def join_train(outputs, train, used, config):
    """Teacher probabilities of the training rows `used` (sorted indices).

    `train.jsonl` must cover the whole training split, or, with
    `--max-train-examples`, exactly the rows `used` (what `ptloss-distill
    teacher --max-train-examples N` writes with the same N and `--seed`).
    Joins stay strict: any other set of ids is a ValueError.
    """
    try:
        if config.max_train_examples and len(outputs) != len(train):
            return join(outputs, train.subset(used), "train")
        return join(outputs, train, "train")[used]
    except ValueError as e:
        raise ValueError(f"{e}{_subset_hint(outputs, config)}") from None


def load_splits(config, log=print):
    """Examples and teacher probabilities of every split `run` uses.

    Real tasks join the `--teacher-outputs` files by id (strictly; see
    `join_train` for `--max-train-examples`). Where the test labels are
    hidden, or a file task has no validation file, the splits follow
    `plan_train_rows` (the validation rows are held out of train and their
    teacher outputs come from train.jsonl). MNLI's mismatched validation
    set is added as `"validation_mismatched"` when
    `validation_mismatched.jsonl` exists (else a note says it is skipped).
    Teacher files without content fingerprints are joined with a note in
    `log` and `Splits.notes` (not a Python warning) that their alignment
    could not be checked.
    """
    if config.task == "synthetic":
        return synthetic_splits(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UncheckedAlignmentWarning)
        splits = _load_splits(config, log)
    for w in caught:
        if issubclass(w.category, UncheckedAlignmentWarning):
            splits.notes.append(str(w.message))
            log("Note: " + splits.notes[-1] + ".")
        else:  # not ours: let it through as it came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return splits


def _load_splits(config, log):
    data = DataSource.from_config(config)
    notes = []
    examples = load_task_examples(data, notes=notes, log=log)
    if not config.teacher_outputs:
        raise ValueError(
            f"--task {config.task} needs --teacher-outputs DIR (train/validation/test "
            "teacher outputs; see `ptloss-distill teacher --help` and "
            "`ptloss-distill import-teacher --help`)."
        )

    def teacher_file(split):
        path = os.path.join(config.teacher_outputs, f"{split}.jsonl")
        if not os.path.exists(path):
            raise ValueError(f"teacher outputs file not found: {path}")
        return TeacherOutputs.load(path)

    validation = examples["validation"]  # None: held out of train (a file task)
    if validation is not None and np.any(np.asarray(validation.labels) < 0):
        raise ValueError("the validation split has unlabeled examples; PTLoss' "
                         "coefficient search and the evaluation need labels.")
    train = examples["train"]
    hidden = hidden_test_labels(examples["test"])
    if hidden and validation is None:
        raise ValueError("the test labels are hidden and there is no validation file: "
                         "give a labelled `test_file` or a `validation_file`.")
    plan = plan_train_rows(len(train), None if validation is None else len(validation),
                           hidden, config.max_train_examples, config.seed)
    used = rows_read(plan)
    train_probs = join_train(teacher_file("train"), train, used, config)

    def rows(name):
        return train.subset(plan[name]), train_probs[np.searchsorted(used, plan[name])]

    if hidden:
        # GLUE/SuperGLUE test labels are hidden: evaluate on the labelled
        # validation split (as the paper does) and search coefficients on a
        # fixed-seed held-out part of train.
        test_probs = join(teacher_file("validation"), validation, "validation")
        (train_ex, train_p), (val_ex, val_p) = rows("train"), rows("validation")
        examples = {"train": train_ex, "validation": val_ex, "test": validation}
        teacher = {"train": train_p, "validation": val_p, "test": test_probs}
        notes.append(
            f"test labels are hidden or absent: evaluating on the validation split "
            f"({len(examples['test'])} examples); coefficient search on {len(val_ex)} "
            f"training examples held out with seed {HOLDOUT_SEED} (teacher outputs from "
            "train.jsonl)"
        )
        log("Note: " + notes[-1] + ".")
    elif validation is None:
        # No validation file: the held-out training rows (noted by
        # load_task_examples) with their train.jsonl outputs.
        (train_ex, train_p), (val_ex, val_p) = rows("train"), rows("validation")
        teacher = {"train": train_p, "validation": val_p,
                   "test": join(teacher_file("test"), examples["test"], "test")}
        examples = {**examples, "train": train_ex, "validation": val_ex}
    else:
        train_ex, train_p = rows("train")
        teacher = {"train": train_p}
        teacher.update({split: join(teacher_file(split), examples[split], split)
                        for split in ("validation", "test")})
        examples = {**examples, "train": train_ex}
    if len(plan["train"]) < len(train) - len(plan.get("validation", ())):
        notes.append(f"training on {len(plan['train'])} examples subsampled with seed "
                     f"{config.seed}")
    for split in extra_test_splits(config.task):
        path = os.path.join(config.teacher_outputs, f"{split}.jsonl")
        if not os.path.exists(path):
            notes.append(f"no teacher outputs for {split} ({path}): the {split} "
                         "evaluation is skipped")
            log("Note: " + notes[-1] + ".")
            continue
        examples[split] = load_registered_split(data, split)
        if np.any(examples[split].labels < 0):
            raise ValueError(f"the {split} split has unlabeled examples; its evaluation "
                             "needs labels.")
        teacher[split] = join(teacher_file(split), examples[split], split)
        log(f"Also evaluating on {split} ({len(examples[split])} examples).")
    teacher = {k: v.astype(np.float32) for k, v in teacher.items()}
    return Splits(examples, teacher, notes=notes)


def synthetic_splits(config):
    """The embedded synthetic task's splits, its teacher and p*."""
    from ptloss_tf.training.synthetic import make_synthetic_task

    task = make_synthetic_task(
        num_train=config.synthetic_train,
        num_validation=config.synthetic_validation,
        num_test=config.synthetic_test,
        num_classes=config.synthetic_classes,
        overconfidence=config.overconfidence,
        prior_shift=config.prior_shift,
        prior_shift_class=config.prior_shift_class,
        confusion=config.teacher_confusion,
        confusion_classes=config.confusion_classes,
        noise=config.teacher_noise,
        seed=config.seed,
        negation_rate=config.negation_rate,
    )
    parts = {"train": task.train, "validation": task.validation, "test": task.test}
    return Splits(
        {k: v.examples for k, v in parts.items()},
        {k: v.teacher_probs.astype(np.float32) for k, v in parts.items()},
        p_star={k: v.p_star for k, v in parts.items()},
        vocabulary=task.vocabulary,
        task_config=task.config,
    )
