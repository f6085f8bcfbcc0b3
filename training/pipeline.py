"""The `ptloss-distill` pipeline: data, teacher outputs, coefficients,
students, report. One function per stage; `run(args)` chains them.

Output directory contract (`--output-dir`):

* `report.json`: `{"task", "class_names", "num_segments", "results":
  [{"method", "accuracy", "nll", "ece", "teacher_agreement", "replicas",
  ...}], "coefficients": [[...]], "teacher": {"accuracy", ...}, "notes",
  "config": {...}, "hardware": {"strategy", "replicas", "dtype_policy"}}`.
  MNLI with `validation_mismatched.jsonl` among the teacher outputs: each
  result also has `accuracy_mismatched`, `nll_mismatched`, `ece_mismatched`,
  `teacher_agreement_mismatched` (the mismatched validation set, a second
  test set) and the teacher `accuracy_mismatched`; without that file the
  mismatched evaluation is skipped and `notes` says so.
* `coefficients.json` (+ `search.json`, `search.png` from the search)
* `<method>/student.keras` for each method, `<method>/result.json`,
  `<method>/history.json`, TensorBoard logs in `<method>/logs`
* `learning_curves.png`
* `samples.json`: a few test examples (texts, labels): the inputs
  `ptloss-export` uses for warmup requests and verification.
* `run_state.json`: what has finished, so the same command resumes an
  interrupted run (finished methods are skipped, an interrupted one resumes
  from its last `BackupAndRestore` backup).
"""

import datetime
import hashlib
import json
import os
import shutil
import time
import warnings

import numpy as np

import ptloss_tf
from ptloss_tf.io_utils import atomic_write_text
from ptloss_tf.validation import check_probabilities

REPORT = "report.json"
STATE = "run_state.json"
STUDENT_FILE = "student.keras"
SAMPLES = "samples.json"
SAMPLE_COUNT = 8
#: Seed of the training rows held out for the coefficient search where the
#: test labels are hidden (see `plan_train_rows`).
HOLDOUT_SEED = 0
#: MNLI's second (mismatched) validation set: an extra test set.
MISMATCHED = "validation_mismatched"


def log(message):
    print(message, flush=True)


def atomic_write_json(path, payload):
    atomic_write_text(path, json.dumps(payload, indent=1, default=_json_default))


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x)}")


# -- output directory --------------------------------------------------------

def config_fingerprint(args):
    """Hash of the options that change results (not output/verbosity flags)."""
    ignored = {"output_dir", "overwrite", "verbose", "config"}
    items = {k: v for k, v in sorted(vars(args).items()) if k not in ignored}
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_output_dir(args):
    """Creates or checks `--output-dir`; returns `(path, state)`.

    A finished run (report.json) is refused unless `--overwrite`; an
    unfinished run of the same configuration is resumed; an unfinished run of
    another configuration is refused. Files that are not ours are never
    deleted: with `--overwrite` only the run's own files are replaced.
    """
    path = args.output_dir or os.path.join(
        "runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    fingerprint = config_fingerprint(args)
    state_path = os.path.join(path, STATE)
    if os.path.isdir(path) and os.listdir(path):
        state = None
        if os.path.exists(state_path):
            with open(state_path) as f:
                state = json.load(f)
        finished = os.path.exists(os.path.join(path, REPORT))
        if state is None and not args.overwrite:
            raise ValueError(
                f"output directory {path} is not empty and holds no ptloss-distill "
                "run; choose another --output-dir (files there are never deleted)."
            )
        if finished and not args.overwrite:
            raise ValueError(
                f"output directory {path} already holds a finished run "
                f"({REPORT}); pass --overwrite to replace it or choose another "
                "--output-dir."
            )
        if args.overwrite:
            for name in os.listdir(path):
                full = os.path.join(path, name)
                ours = name in (REPORT, STATE, "coefficients.json", "search.json",
                                "search.png", "learning_curves.png") or (
                    os.path.isdir(full) and name in _all_method_names()
                )
                if ours:
                    shutil.rmtree(full) if os.path.isdir(full) else os.unlink(full)
            state = None
        elif state is not None and state.get("fingerprint") != fingerprint:
            raise ValueError(
                f"output directory {path} holds an unfinished run with different "
                "options; rerun with the same options to resume it, or choose "
                "another --output-dir."
            )
        if state is not None:
            log(f"Resuming the run in {path} (finished: {state['finished'] or 'none'}).")
            return path, state
    os.makedirs(path, exist_ok=True)
    state = {"fingerprint": fingerprint, "finished": []}
    atomic_write_json(state_path, state)
    return path, state


def _all_method_names():
    from ptloss_tf.training.config import LOSSES

    return set(LOSSES)


# -- data and teacher outputs -------------------------------------------------

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

    Returns `{"train": idx}` or, when the test labels are hidden,
    `{"train": idx, "validation": idx}`: sorted indices into the training
    split. With hidden test labels the labelled validation split becomes the
    test set, and the coefficient search's validation rows are
    `min(num_validation, num_train // 10)` training rows held out with seed
    `HOLDOUT_SEED` (0); the student trains on the other rows. Then
    `--max-train-examples N` keeps `subsample_indices(len(rows), N, seed)` of
    the student's training rows (never of the held-out rows).

    `ptloss-distill` and `ptloss-distill teacher --max-train-examples N` both
    use this rule, so a teacher run predicts exactly the training rows a
    distillation with the same `--max-train-examples` and `--seed` reads.

    Example:
    >>> plan = plan_train_rows(100, 8, True, 20, seed=1)
    >>> len(plan["validation"]), len(plan["train"])
    (8, 20)
    >>> bool(np.intersect1d(plan["train"], plan["validation"]).size)
    False
    """
    if not hidden_test:
        return {"train": subsample_indices(num_train, max_train_examples, seed)}
    held_out = min(num_validation, num_train // 10)
    order = np.random.default_rng(HOLDOUT_SEED).permutation(num_train)
    hold, rest = np.sort(order[:held_out]), np.sort(order[held_out:])
    return {"train": rest[subsample_indices(len(rest), max_train_examples, seed)],
            "validation": hold}


def rows_read(plan):
    """The sorted union of a `plan_train_rows` plan: the training rows whose
    teacher outputs a run needs."""
    return np.unique(np.concatenate([np.asarray(v, np.int64) for v in plan.values()]))


def load_task_examples(args):
    """`{"train", "validation", "test"}` Examples of `--task` (a registered
    task or `--task file`). A registered task's missing local test file
    (RTE) gives `"test": None` unless `--source tfds`."""
    examples = {}
    if args.task == "file":
        from ptloss_tf.training.data.examples import load_file

        for split in ("train", "validation", "test"):
            path = getattr(args, f"{split}_file")
            if not path:
                raise ValueError(f"--task file needs --{split}-file.")
            examples[split] = load_file(
                path, tuple(args.text_fields), args.label_field,
                class_names=tuple(args.class_names) if args.class_names else None,
            )
        return examples
    from ptloss_tf.training.data.sources import load_split
    from ptloss_tf.training.data.tasks import get_task

    task = get_task(args.task)
    for split in ("train", "validation", "test"):
        try:
            examples[split] = load_split(
                task, split, source=args.source, data_root=args.data_root,
                tfds_data_dir=args.tfds_data_dir,
            )
        except FileNotFoundError:
            if split != "test" or args.source == "tfds":
                raise
            examples["test"] = None  # e.g. RTE: no test file locally
    return examples


def extra_test_splits(task_name):
    """Additional labelled evaluation splits of a task: MNLI's mismatched
    validation set (`("validation_mismatched",)`), else `()`."""
    if task_name in ("synthetic", "file"):
        return ()
    from ptloss_tf.training.data.tasks import get_task

    return tuple(s for s in (MISMATCHED,) if s in get_task(task_name).splits)


def load_extra_examples(args, split):
    """One extra split of a registered `--task` (e.g. MNLI's
    `validation_mismatched`), from the same `--source` as the others."""
    from ptloss_tf.training.data.sources import load_split
    from ptloss_tf.training.data.tasks import get_task

    return load_split(get_task(args.task), split, source=args.source,
                      data_root=args.data_root, tfds_data_dir=args.tfds_data_dir)


def _subset_hint(outputs, args):
    meta = outputs.metadata or {}
    if meta.get("train_rows") != "subset":
        return ""
    return (f"\n- {len(outputs)} rows: this train.jsonl holds only the training rows of "
            f"`ptloss-distill teacher --max-train-examples {meta.get('max_train_examples')} "
            f"--seed {meta.get('seed')}`; distil with the same --max-train-examples and "
            f"--seed (this run: {args.max_train_examples}, {args.seed})")


def join_train(outputs, train, used, args):
    """Teacher probabilities of the training rows `used` (sorted indices).

    `train.jsonl` must cover the whole training split, or, with
    `--max-train-examples`, exactly the rows `used` (what `ptloss-distill
    teacher --max-train-examples N` writes with the same N and `--seed`).
    Joins stay strict: any other set of ids is a ValueError.
    """
    from ptloss_tf.training.teacher_outputs import join

    try:
        if args.max_train_examples and len(outputs) != len(train):
            return join(outputs, train.subset(used), "train")
        return join(outputs, train, "train")[used]
    except ValueError as e:
        raise ValueError(f"{e}{_subset_hint(outputs, args)}") from None


def load_splits(args):
    """Examples and teacher probabilities of every split `run` uses.

    Real tasks join the `--teacher-outputs` files by id (strictly; see
    `join_train` for `--max-train-examples`). Where the test labels are
    hidden the splits follow `plan_train_rows`. MNLI's mismatched validation
    set is added as `"validation_mismatched"` when
    `validation_mismatched.jsonl` exists (else a note says it is skipped).
    """
    if args.task == "synthetic":
        from ptloss_tf.training.synthetic import make_synthetic_task

        task = make_synthetic_task(
            num_train=args.synthetic_train,
            num_validation=args.synthetic_validation,
            num_test=args.synthetic_test,
            num_classes=args.synthetic_classes,
            overconfidence=args.overconfidence,
            prior_shift=args.prior_shift,
            noise=args.teacher_noise,
            seed=args.seed,
        )
        parts = {"train": task.train, "validation": task.validation, "test": task.test}
        return Splits(
            {k: v.examples for k, v in parts.items()},
            {k: v.teacher_probs.astype(np.float32) for k, v in parts.items()},
            p_star={k: v.p_star for k, v in parts.items()},
            vocabulary=task.vocabulary,
            task_config=task.config,
        )
    examples = load_task_examples(args)
    if not args.teacher_outputs:
        raise ValueError(
            f"--task {args.task} needs --teacher-outputs DIR (train/validation/test "
            "teacher outputs; see `ptloss-distill teacher --help` and "
            "`ptloss-distill import-teacher --help`)."
        )
    from ptloss_tf.training.teacher_outputs import TeacherOutputs
    from ptloss_tf.training.teacher_outputs import join

    def teacher_file(split):
        path = os.path.join(args.teacher_outputs, f"{split}.jsonl")
        if not os.path.exists(path):
            raise ValueError(f"teacher outputs file not found: {path}")
        return TeacherOutputs.load(path)

    notes = []
    if np.any(np.asarray(examples["validation"].labels) < 0):
        raise ValueError("the validation split has unlabeled examples; PTLoss' "
                         "coefficient search and the evaluation need labels.")
    train = examples["train"]
    hidden = hidden_test_labels(examples["test"])
    plan = plan_train_rows(len(train), len(examples["validation"]), hidden,
                           args.max_train_examples, args.seed)
    used = rows_read(plan)
    train_probs = join_train(teacher_file("train"), train, used, args)

    def rows(name):
        return train.subset(plan[name]), train_probs[np.searchsorted(used, plan[name])]

    if hidden:
        # GLUE/SuperGLUE test labels are hidden: evaluate on the labelled
        # validation split (as the paper does) and search coefficients on a
        # fixed-seed held-out part of train.
        test_probs = join(teacher_file("validation"), examples["validation"], "validation")
        (train_ex, train_p), (val_ex, val_p) = rows("train"), rows("validation")
        examples = {"train": train_ex, "validation": val_ex, "test": examples["validation"]}
        teacher = {"train": train_p, "validation": val_p, "test": test_probs}
        notes.append(
            f"test labels are hidden or absent: evaluating on the validation split "
            f"({len(examples['test'])} examples); coefficient search on {len(val_ex)} "
            f"training examples held out with seed {HOLDOUT_SEED} (teacher outputs from "
            "train.jsonl)"
        )
        log("Note: " + notes[-1] + ".")
    else:
        train_ex, train_p = rows("train")
        teacher = {"train": train_p}
        teacher.update({split: join(teacher_file(split), examples[split], split)
                        for split in ("validation", "test")})
        examples = {**examples, "train": train_ex}
    if len(plan["train"]) < len(train) - len(plan.get("validation", ())):
        notes.append(f"training on {len(plan['train'])} examples subsampled with seed "
                     f"{args.seed}")
    for split in extra_test_splits(args.task):
        path = os.path.join(args.teacher_outputs, f"{split}.jsonl")
        if not os.path.exists(path):
            notes.append(f"no teacher outputs for {split} ({path}): the {split} "
                         "evaluation is skipped")
            log("Note: " + notes[-1] + ".")
            continue
        examples[split] = load_extra_examples(args, split)
        if np.any(examples[split].labels < 0):
            raise ValueError(f"the {split} split has unlabeled examples; its evaluation "
                             "needs labels.")
        teacher[split] = join(teacher_file(split), examples[split], split)
        log(f"Also evaluating on {split} ({len(examples[split])} examples).")
    teacher = {k: v.astype(np.float32) for k, v in teacher.items()}
    return Splits(examples, teacher, notes=notes)


# -- coefficients -------------------------------------------------------------

def choose_coefficients(args, splits, output_dir):
    """Proxy Teacher search on the validation split, or `--coefficients FILE`."""
    needs = {"ptloss"} & set(args.loss)
    if not needs:
        return None, None
    if args.coefficients:
        if not os.path.exists(args.coefficients):
            raise ValueError(f"coefficients file not found: {args.coefficients}")
        with open(args.coefficients) as f:
            coefficients = ptloss_tf.Coefficients.from_json(f.read())
        if coefficients.num_classes != len(splits.class_names):
            raise ValueError(
                f"{args.coefficients} has {coefficients.num_classes} classes, the "
                f"task has {len(splits.class_names)}."
            )
        log(f"Coefficients from {args.coefficients}:\n{coefficients}")
        summary = {"source": args.coefficients}
    else:
        start = time.time()
        result = ptloss_tf.search_coefficients(
            splits.teacher_probs["validation"], splits.examples["validation"].labels,
            order=args.order, num_candidates=args.candidates,
            criterion=args.criterion, seed=args.search_seed,
        )
        coefficients = result.best
        result.to_json(os.path.join(output_dir, "search.json"))
        result.plot(os.path.join(output_dir, "search.png"))
        log(
            f"Proxy Teacher search ({args.candidates} candidates, order {args.order}, "
            f"criterion {args.criterion}) on {len(splits.examples['validation'])} "
            f"validation examples in {time.time() - start:.1f} s:\n{result.table(top=5)}"
        )
        summary = {
            "criterion": args.criterion, "order": args.order,
            "candidates": args.candidates, "seed": args.search_seed,
            "best_index": result.best_index,
            "best_scores": {k: float(v[result.best_index]) for k, v in result.scores.items()},
            "teacher_scores": result.teacher_scores,
        }
    atomic_write_json(
        os.path.join(output_dir, "coefficients.json"),
        {**coefficients.to_dict(), "search": summary},
    )
    return coefficients, summary


def make_loss(method, args, coefficients, num_classes):
    if method == "ptloss":
        return ptloss_tf.PTLoss(coefficients, from_logits=True)
    if method == "ptloss_random":
        eta = ptloss_tf.random_coefficients(args.order, num_classes, seed=args.search_seed)
        return ptloss_tf.PTLoss(eta, from_logits=True)
    if method == "kl":
        return ptloss_tf.KLDivergence(from_logits=True)
    if method == "temperature":
        return ptloss_tf.TemperatureKLDivergence(args.temperature, from_logits=True)
    if method == "label_smoothing":
        return ptloss_tf.LabelSmoothingKLDivergence(args.smoothing, from_logits=True)
    if method == "focal":
        return ptloss_tf.FocalDistillationLoss(args.focal_tau, from_logits=True)
    raise ValueError(f"unknown --loss {method!r}")


# -- training -----------------------------------------------------------------

def _datasets(args, splits, preprocessor):
    """`(train, validation, evaluations)`: the training and validation
    datasets and `{split: dataset}` of the test split and any extra test
    split (MNLI's `validation_mismatched`), unbucketed so that predictions
    keep the examples' order."""
    from ptloss_tf.training.data.input_pipeline import make_dataset

    boundaries = None if args.no_bucketing else "auto"
    # Buckets padded to their boundary: a handful of shapes, so XLA compiles
    # a handful of programs (dynamic padding would recompile per length).
    static = True

    def targets(split):
        return {"teacher_probs": splits.teacher_probs[split],
                "labels": np.asarray(splits.examples[split].labels, np.int32)}

    train = make_dataset(splits.examples["train"], preprocessor, args.batch_size,
                         targets=targets("train"), shuffle=True, seed=args.seed,
                         bucket_boundaries=boundaries, static_shapes=static,
                         drop_remainder=args.strategy == "tpu")
    validation = make_dataset(splits.examples["validation"], preprocessor, args.batch_size,
                              targets=targets("validation"), bucket_boundaries=boundaries,
                              static_shapes=static)
    evaluations = {split: make_dataset(splits.examples[split], preprocessor,
                                       args.batch_size, targets=targets(split))
                   for split in ("test", *splits.extra_test_splits)}
    return train, validation, evaluations


def align_data_order_across_strategies(train, args):
    """Makes the training batches independent of `--strategy`.

    Under a non-default strategy (mirrored, multi-worker, TPU) Keras 3.15's
    `fit` iterates the training dataset once before the first epoch, to
    build the model from a batch (`TensorFlowTrainer._maybe_symbolic_build`);
    each iteration of the dataset draws a new shuffle order, so epoch 1 then
    trains on the dataset's second order. Under the default strategy this
    starts one iteration here too, so the same `--seed` gives the same
    batches in every epoch on every strategy (tested: a mirrored run's
    first-epoch loss equals the default run's).
    """
    if args.strategy == "default":
        iter(train)


def learning_rate(args):
    """`--learning-rate`, else 2e-3 from scratch and 5e-5 for pretrained weights
    (2e-3 destroys a pretrained BERT: SST-2 students fell to chance)."""
    if args.learning_rate is not None:
        return args.learning_rate
    return 5e-5 if args.preset else 2e-3


def make_run_strategy(args):
    """The run's `tf.distribute` strategy, created once per run: several
    `MirroredStrategy` objects in one process clash (collective keys), and a
    multi-worker strategy must exist before other TensorFlow work."""
    try:
        return ptloss_tf.make_strategy(args.strategy, tpu=args.tpu)
    except RuntimeError as e:  # e.g. no TPU: a user-facing one-line error
        raise ValueError(str(e)) from None


EVALUATION_KEYS = ("accuracy", "nll", "ece", "teacher_agreement")


def _evaluate(distiller, dataset, key_suffix="", keys=EVALUATION_KEYS):
    metrics = distiller.evaluate(dataset, verbose=0, return_dict=True)
    return {f"{k}{key_suffix}": float(metrics[k]) for k in keys}


def train_method(method, args, splits, coefficients, output_dir, strategy=None):
    """Trains and evaluates one `--loss` method; writes `<method>/` and
    returns its result (test metrics; `*_mismatched` ones for MNLI's
    mismatched validation set when loaded)."""
    import keras

    from ptloss_tf.callbacks import AtomicBackupAndRestore
    from ptloss_tf.training.student import build_classifier

    method_dir = os.path.join(output_dir, method)
    os.makedirs(method_dir, exist_ok=True)
    num_classes = len(splits.class_names)
    sequence_length = args.sequence_length or (32 if args.task == "synthetic" else 128)
    strategy = strategy or make_run_strategy(args)
    with strategy.scope():
        student, preprocessor = build_classifier(
            num_classes, sequence_length=sequence_length, preset=args.preset,
            vocabulary=args.vocabulary or splits.vocabulary,
            num_layers=args.student_layers, hidden_dim=args.hidden,
            num_heads=args.heads, intermediate_dim=args.intermediate,
            dropout=args.dropout, init_from_layers=args.init_from_layers, seed=args.seed,
        )
        distiller = ptloss_tf.Distiller(student)
        distiller.compile(
            optimizer=keras.optimizers.AdamW(learning_rate(args)),
            distillation_loss=make_loss(method, args, coefficients, num_classes),
            student_loss_weight=args.student_loss_weight,
            jit_compile=False if args.no_xla else "auto",
            steps_per_execution=args.steps_per_execution,
        )
    train, validation, evaluations = _datasets(args, splits, preprocessor)
    align_data_order_across_strategies(train, args)
    best_path = os.path.join(method_dir, "best.weights.h5")
    callbacks = [
        AtomicBackupAndRestore(os.path.join(method_dir, "backup")),
        keras.callbacks.ModelCheckpoint(best_path, monitor="val_accuracy", mode="max",
                                        save_best_only=True, save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                      patience=args.early_stopping_patience),
        keras.callbacks.TensorBoard(os.path.join(method_dir, "logs")),
    ]
    log(f"\n== {method}: training {student.count_params():,} parameters for up to "
        f"{args.epochs} epochs on {strategy.num_replicas_in_sync} replica(s) "
        f"({type(strategy).__name__}, dtype policy {keras.config.dtype_policy().name}) ==")
    start = time.time()
    with warnings.catch_warnings():
        # Bucketed datasets have unknown cardinality; Keras warns at each epoch end.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = distiller.fit(train, validation_data=validation, epochs=args.epochs,
                                callbacks=callbacks, verbose=args.verbose, shuffle=False)
    train_seconds = time.time() - start
    if os.path.exists(best_path):
        distiller.load_weights(best_path)
    test = evaluations["test"]
    result = {
        "method": method,
        **_evaluate(distiller, test, keys=EVALUATION_KEYS + ("distillation_loss",)),
        "epochs_run": len(history.history.get("loss", [])),
        "train_seconds": train_seconds,
        "best_val_accuracy": float(max(history.history.get("val_accuracy", [np.nan]))),
        "replicas": int(strategy.num_replicas_in_sync),
    }
    for split in splits.extra_test_splits:
        result.update(_evaluate(distiller, evaluations[split], suffix(split)))
    if splits.p_star:
        logits = distiller.predict(test.map(lambda x, y: x), verbose=0)
        from ptloss_tf.training.synthetic import softmax

        probs = softmax(np.asarray(logits, np.float32))
        result.update(distance_to_p_star(probs, splits.p_star["test"]))
    # Saved with its preprocessor, so `student.keras` is self-contained:
    # `load_model(...).predict(["raw text"])` works and `ptloss-export` finds
    # the tokenizer and sequence length in it. Training fed token ids.
    student.preprocessor = preprocessor
    tmp = os.path.join(method_dir, "student.tmp.keras")
    distiller.save(tmp)
    os.replace(tmp, os.path.join(method_dir, STUDENT_FILE))
    atomic_write_json(os.path.join(method_dir, "history.json"),
                      {k: [float(x) for x in v] for k, v in history.history.items()})
    atomic_write_json(os.path.join(method_dir, "result.json"), result)
    return result


def distance_to_p_star(probs, p_star):
    """Mean `KL(p* || probs)` and mean squared error to the true posterior."""
    log_ratio = np.log(np.clip(p_star, 1e-12, 1)) - np.log(np.clip(probs, 1e-12, 1))
    return {
        "kl_to_p_star": float(np.mean(np.sum(p_star * log_ratio, -1))),
        "mse_to_p_star": float(np.mean(np.sum((probs - p_star) ** 2, -1))),
    }


# -- report -------------------------------------------------------------------

def teacher_report(splits):
    """The teacher's test accuracy, TVD to the labels and validation accuracy
    (`accuracy_mismatched` too when MNLI's mismatched set is loaded)."""
    test_probs = splits.teacher_probs["test"]
    labels = np.asarray(splits.examples["test"].labels)
    onehot = np.eye(test_probs.shape[1])[labels]
    report = {
        "accuracy": float(np.mean(test_probs.argmax(1) == labels)),
        "tvd_to_labels": float(np.mean(0.5 * np.abs(test_probs - onehot).sum(1))),
        "validation_accuracy": float(np.mean(
            splits.teacher_probs["validation"].argmax(1) == splits.examples["validation"].labels)),
    }
    for split in splits.extra_test_splits:
        report[f"accuracy{suffix(split)}"] = float(np.mean(
            splits.teacher_probs[split].argmax(1) == splits.examples[split].labels))
    if splits.p_star:
        p_star = splits.p_star["test"]
        report.update(distance_to_p_star(test_probs, p_star))
        report["bayes_accuracy"] = float(np.mean(p_star.argmax(1) == labels))
    return report


def print_table(results, teacher):
    """Logs one row per method (test metrics, then `*_mismatched` ones where
    present) and a line for the teacher."""
    columns = ["accuracy", "nll", "ece", "teacher_agreement"]
    for extra in ("kl_to_p_star", "accuracy_mismatched", "nll_mismatched", "ece_mismatched"):
        if any(extra in r for r in results):
            columns.append(extra)
    widths = [max(18, len(c) + 2) for c in columns]
    header = f"{'method':<16}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    log("\n" + header + "\n" + "-" * len(header))
    for r in results:
        log(f"{r['method']:<16}" + "".join(f"{r.get(c, float('nan')):{w}.4f}"
                                           for c, w in zip(columns, widths)))
    extra = f", KL to p* {teacher['kl_to_p_star']:.4f}" if "kl_to_p_star" in teacher else ""
    if "accuracy_mismatched" in teacher:
        extra += f", mismatched accuracy {teacher['accuracy_mismatched']:.4f}"
    log(f"teacher: test accuracy {teacher['accuracy']:.4f}, TVD to labels "
        f"{teacher['tvd_to_labels']:.4f}{extra}")


def write_samples(output_dir, examples, count=SAMPLE_COUNT):
    """`samples.json`: the first `count` test examples, as export inputs."""
    n = min(count, len(examples))
    atomic_write_json(os.path.join(output_dir, SAMPLES), {
        "texts": [[str(t[i]) for t in examples.texts] for i in range(n)],
        "labels": [int(x) for x in examples.labels[:n]],
        "class_names": list(examples.class_names),
    })


def plot_learning_curves(output_dir, methods):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for method in methods:
        path = os.path.join(output_dir, method, "history.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            history = json.load(f)
        epochs = np.arange(1, len(history.get("loss", [])) + 1)
        line, = axes[0].plot(epochs, history.get("loss", []), label=f"{method} train")
        if "val_loss" in history:
            axes[0].plot(epochs, history["val_loss"], ls="--", color=line.get_color(),
                         label=f"{method} val")
        if "val_accuracy" in history:
            axes[1].plot(epochs, history["val_accuracy"], color=line.get_color(), label=method)
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, "learning_curves.png"), dpi=110)
    plt.close(fig)


def run(args):
    """The whole run (see the module docstring); returns the report.

    `--mixed-precision` sets Keras' global dtype policy for the run only: the
    previous policy is restored afterwards, so a run inside a longer process
    (tests, notebooks) does not leak it.
    """
    import keras

    previous_policy = keras.config.dtype_policy()
    try:
        if args.mixed_precision:
            keras.config.set_dtype_policy(f"mixed_{args.mixed_precision}")
        return _run(args)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _run(args):
    import keras

    start = time.time()
    output_dir, state = prepare_output_dir(args)
    strategy = make_run_strategy(args)
    splits = load_splits(args)
    for split in ("train", "validation", "test", *splits.extra_test_splits):
        check_probabilities(splits.teacher_probs[split], name=f"teacher probabilities ({split})")
    teacher = teacher_report(splits)
    log(f"Task {args.task}: {', '.join(f'{k} {len(v)}' for k, v in splits.examples.items())} "
        f"examples, classes {list(splits.class_names)}; teacher test accuracy "
        f"{teacher['accuracy']:.4f}")
    coefficients, search = choose_coefficients(args, splits, output_dir)
    results = []
    for method in args.loss:
        result_path = os.path.join(output_dir, method, "result.json")
        if method in state["finished"] and os.path.exists(result_path):
            with open(result_path) as f:
                results.append(json.load(f))
            log(f"== {method}: already finished, skipped ==")
            continue
        results.append(train_method(method, args, splits, coefficients, output_dir,
                                    strategy=strategy))
        state["finished"].append(method)
        atomic_write_json(os.path.join(output_dir, STATE), state)
    print_table(results, teacher)
    plot_learning_curves(output_dir, args.loss)
    write_samples(output_dir, splits.examples["test"])
    report = {
        "task": args.task,
        "class_names": list(splits.class_names),
        "num_segments": len(splits.examples["test"].texts),
        "results": results,
        "coefficients": coefficients.values.tolist() if coefficients is not None else None,
        "search": search,
        "teacher": teacher,
        "task_config": splits.task_config,
        "notes": splits.notes,
        "config": {k: v for k, v in vars(args).items()},
        "hardware": {"strategy": type(strategy).__name__,
                     "replicas": int(strategy.num_replicas_in_sync),
                     "dtype_policy": keras.config.dtype_policy().name},
        "wall_seconds": time.time() - start,
    }
    atomic_write_json(os.path.join(output_dir, REPORT), report)
    log(f"\nWrote {os.path.join(output_dir, REPORT)} ({report['wall_seconds']:.0f} s).")
    return report
