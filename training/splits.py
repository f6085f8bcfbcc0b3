"""Which rows of a task a run uses, and for what: `Splits` (examples,
teacher probabilities and, for the synthetic task, p* per split) and the
training-row plan shared by `ptloss-distill` and `ptloss-distill teacher`."""

import numpy as np

# HOLDOUT_SEED: the seed of the training rows held out for the coefficient
# search where the test labels are hidden (see `plan_train_rows`) or a file
# task has no validation file (`task_examples.load_file_task`).
from ptloss_tf.training.task_examples import HOLDOUT_SEED
from ptloss_tf.training.task_examples import MISMATCHED
from ptloss_tf.training.task_examples import held_out_rows


class Splits:
    """Examples, teacher probabilities and (synthetic only) p* per split."""

    def __init__(self, examples, teacher_probs, p_star=None, vocabulary=None,
                 task_config=None, notes=None):
        self.examples = examples
        self.teacher_probs = teacher_probs
        self.p_star = p_star or {}
        self.vocabulary = vocabulary
        self.task_config = task_config or {}
        self.notes = notes or []

    @property
    def class_names(self):
        return tuple(self.examples["train"].class_names)

    @property
    def extra_test_splits(self):
        """Loaded extra test splits (MNLI: `("validation_mismatched",)`)."""
        return tuple(s for s in (MISMATCHED,) if s in self.examples)


def suffix(split):
    """The report-key suffix of an extra test split: `"_mismatched"`."""
    return "_" + split.rsplit("_", 1)[-1]


def hidden_test_labels(test):
    """Whether the test split is absent or unlabeled (GLUE test on TFDS, RTE)."""
    return test is None or bool(np.any(np.asarray(test.labels) < 0))


def subsample_indices(n, max_examples, seed):
    """Sorted indices of the `--max-train-examples` subsample of `n` rows:
    `np.random.default_rng(seed).choice(n, max_examples, replace=False)`,
    sorted; all `n` rows when `max_examples` is None/0 or `>= n`.

    Example:
    >>> subsample_indices(5, None, 0).tolist()
    [0, 1, 2, 3, 4]
    >>> len(subsample_indices(100, 7, 3)), subsample_indices(100, 7, 3).tolist() == sorted(
    ...     np.random.default_rng(3).choice(100, 7, replace=False).tolist())
    (7, True)
    """
    if not max_examples or n <= max_examples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, int(max_examples), replace=False))


def plan_train_rows(num_train, num_validation, hidden_test, max_train_examples, seed):
    """Which rows of the loaded training split a run uses, and for what.

    Returns `{"train": idx}` or, when the validation rows come out of the
    training split, `{"train": idx, "validation": idx}`: sorted indices into
    the training split. That happens in two cases:

    * hidden test labels: the labelled validation split becomes the test
      set, and the coefficient search's validation rows are
      `min(num_validation, num_train // 10)` training rows;
    * no validation split at all (`num_validation=None`, a file task without
      a validation file): `task_examples.held_out_rows(num_train)` rows.

    Either way they are held out with seed `HOLDOUT_SEED` (0) and the
    student trains on the other rows. Then `--max-train-examples N` keeps
    `subsample_indices(len(rows), N, seed)` of the student's training rows
    (never of the held-out rows).

    `ptloss-distill` and `ptloss-distill teacher --max-train-examples N` both
    use this rule, so a teacher run predicts exactly the training rows a
    distillation with the same `--max-train-examples` and `--seed` reads.

    Example:
    >>> plan = plan_train_rows(100, 8, True, 20, seed=1)
    >>> len(plan["validation"]), len(plan["train"])
    (8, 20)
    >>> bool(np.intersect1d(plan["train"], plan["validation"]).size)
    False
    >>> plan = plan_train_rows(100, None, False, None, seed=1)
    >>> len(plan["validation"]), len(plan["train"])
    (10, 90)
    """
    hold = held_out_validation_rows(num_train, num_validation, hidden_test)
    if hold is None:
        return {"train": subsample_indices(num_train, max_train_examples, seed)}
    rest = np.setdiff1d(np.arange(num_train), hold)  # sorted
    return {"train": rest[subsample_indices(len(rest), max_train_examples, seed)],
            "validation": hold}


def held_out_validation_rows(num_train, num_validation, hidden_test):
    """The sorted training rows held out as the validation split (see
    `plan_train_rows`), or None when the validation split is a split of its
    own. They depend on the split sizes only (seed `HOLDOUT_SEED`), never on
    `--seed` or `--max-train-examples`.

    Example:
    >>> held_out_validation_rows(100, None, False).tolist() == sorted(
    ...     np.random.default_rng(0).permutation(100)[:10].tolist())
    True
    >>> held_out_validation_rows(100, 8, False) is None
    True
    """
    if num_validation is None:
        held_out = held_out_rows(num_train)
    elif hidden_test:
        held_out = min(num_validation, num_train // 10)
    else:
        return None
    return np.sort(np.random.default_rng(HOLDOUT_SEED).permutation(num_train)[:held_out])


def rows_read(plan):
    """The sorted union of a `plan_train_rows` plan: the training rows whose
    teacher outputs a run needs."""
    return np.unique(np.concatenate([np.asarray(v, np.int64) for v in plan.values()]))
