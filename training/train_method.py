"""Training and evaluating one method: a keras-hub BERT student distilled
with `ptloss_tf.Distiller` from the cached teacher probabilities; writes
`<method>/` (student, result, history, logs)."""

import os
import time
import warnings

import numpy as np

import ptloss_tf
from ptloss_tf.classification_report import classification_metrics
from ptloss_tf.classification_report import reliability_bins
from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.io_utils import save_atomically
from ptloss_tf.probabilities import distance_to_p_star
from ptloss_tf.probabilities import softmax
from ptloss_tf.training.callback_states import CallbackStates
from ptloss_tf.training.datasets import align_data_order_across_strategies
from ptloss_tf.training.datasets import data_order_callback
from ptloss_tf.training.datasets import inputs_only
from ptloss_tf.training.datasets import run_datasets
from ptloss_tf.training.mesh_strategy import barrier
from ptloss_tf.training.mesh_strategy import best_weights_checkpoint
from ptloss_tf.training.mesh_strategy import is_writer
from ptloss_tf.training.mesh_strategy import writing
from ptloss_tf.training.methods import make_loss
from ptloss_tf.training.splits import suffix

STUDENT_FILE = "student.keras"
BEST_WEIGHTS = "best.weights.h5"
CALLBACK_STATES = "callback_states.json"
#: Per-method timings beside result.json (`{"epoch_seconds": [...]}`).
TIMINGS = "timings.json"


def learning_rate(config):
    """`--learning-rate`, else 2e-3 from scratch and 5e-5 for pretrained weights
    (2e-3 destroys a pretrained BERT: SST-2 students fell to chance)."""
    if config.learning_rate is not None:
        return config.learning_rate
    return 5e-5 if config.preset else 2e-3


def learning_rate_schedule(config, num_train):
    """The optimizer's learning rate: `learning_rate(config)` held constant
    (`--lr-schedule constant`), or (`cosine`, the default) a linear warmup
    over the first `--warmup-fraction` of the steps to it, then a cosine
    decay to 0 over the rest (what BERT recipes use; with a constant rate
    the from-scratch student's training loss stalled and rose again).

    The step count is `epochs * ceil(num_train / batch_size)`; length
    buckets add a few partial batches per epoch, after which the rate stays
    at 0's neighbourhood (`CosineDecay` holds its final value).

    Example:
    >>> from ptloss_tf.training.config import DistillConfig
    >>> schedule = learning_rate_schedule(DistillConfig(epochs=2, batch_size=10), 100)
    >>> [round(float(schedule(step)), 6) for step in (0, 2, 20)]
    [0.0, 0.002, 0.0]
    """
    import keras

    peak = learning_rate(config)
    if config.lr_schedule == "constant":
        return peak
    steps = max(1, int(config.epochs) * -(-int(num_train) // int(config.batch_size)))
    warmup = int(round(config.warmup_fraction * steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak, decay_steps=max(1, steps - warmup),
        alpha=0.0, warmup_target=peak if warmup else None, warmup_steps=warmup)


def make_run_strategy(config):
    """The run's `tf.distribute` strategy, created once per run: several
    `MirroredStrategy` objects in one process clash (collective keys), and a
    multi-worker strategy must exist before other TensorFlow work."""
    if config.distribution:  # keras.distribution under JAX
        from ptloss_tf.training.mesh_strategy import MeshStrategy

        return MeshStrategy(config)
    if not tensorflow_available():
        if config.strategy != "default":
            raise ValueError(f"`strategy` {config.strategy} needs TensorFlow (tf.distribute), "
                             "which is not installed; use the default strategy.")
        return SingleDevice()
    try:
        return ptloss_tf.make_strategy(config.strategy, tpu=config.tpu)
    except RuntimeError as e:  # e.g. no TPU: a user-facing one-line error
        raise ValueError(str(e)) from None


def tensorflow_available():
    """Whether TensorFlow can be imported (it is absent on JAX/PyTorch-only
    hosts that train from prepared data)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


class SingleDevice:
    """What a run needs of a `tf.distribute` strategy, where there is no
    TensorFlow: one replica, a scope that changes nothing."""

    num_replicas_in_sync = 1

    def scope(self):
        import contextlib

        return contextlib.nullcontext()


EVALUATION_KEYS = ("accuracy", "nll", "ece", "teacher_agreement")


def build_distiller(method, config, splits, coefficients, strategy, with_preprocessor=True):
    """`(distiller, student, preprocessor)`: a new keras-hub BERT student
    and its compiled `ptloss_tf.Distiller`, built in `strategy`'s scope
    (`with_preprocessor=False`: no preprocessor, None)."""
    import keras

    from ptloss_tf.training.student import build_classifier

    num_classes = len(splits.class_names)
    with strategy.scope():
        student, preprocessor = build_classifier(
            num_classes, sequence_length=config.default_sequence_length, preset=config.preset,
            vocabulary=config.vocabulary or splits.vocabulary,
            num_layers=config.student_layers, hidden_dim=config.hidden,
            num_heads=config.heads, intermediate_dim=config.intermediate,
            dropout=config.dropout, init_from_layers=config.init_from_layers, seed=config.seed,
            with_preprocessor=with_preprocessor,
        )
        loss = make_loss(method, num_classes, coefficients=coefficients,
                         temperature=config.temperature, smoothing=config.smoothing,
                         focal_tau=config.focal_tau, order=config.order,
                         search_seed=config.search_seed,
                         dkd={"alpha": config.dkd_alpha, "beta": config.dkd_beta,
                              "temperature": config.dkd_temperature},
                         dist={"beta": config.dist_beta, "gamma": config.dist_gamma,
                               "temperature": config.dist_temperature},
                         reduction=getattr(strategy, "loss_reduction", None))
        distiller = ptloss_tf.Distiller(student)
        distiller.compile(
            optimizer=keras.optimizers.AdamW(
                learning_rate_schedule(config, len(splits.examples["train"]))),
            distillation_loss=loss,
            student_loss_weight=config.student_loss_weight,
            jit_compile=False if config.no_xla else "auto",
            steps_per_execution=config.steps_per_execution,
        )
    return distiller, student, preprocessor


def epoch_line(method, epoch, epochs, logs, seconds):
    """The compact progress line of one epoch (`--verbose 2`): the quantities
    every method shares, not its own loss value.

    Example:
    >>> epoch_line("kl", 2, 6, {"loss": 0.13, "val_accuracy": 0.7062, "val_nll": 0.5615,
    ...                         "val_teacher_agreement": 0.787}, 3.04)
    '  kl epoch 3/6: val accuracy 0.7062, val NLL 0.5615, agreement with the teacher 0.7870 (3.0 s)'
    """
    parts = [f"val accuracy {logs['val_accuracy']:.4f}" if "val_accuracy" in logs else None,
             f"val NLL {logs['val_nll']:.4f}" if "val_nll" in logs else None,
             f"agreement with the teacher {logs['val_teacher_agreement']:.4f}"
             if "val_teacher_agreement" in logs else None]
    return (f"  {method} epoch {epoch + 1}/{epochs}: "
            + ", ".join(p for p in parts if p) + f" ({seconds:.1f} s)")


def training_callbacks(config, method_dir, epoch_seconds, method="", log=print,
                       strategy=None):
    """Backup (resume), best-validation-accuracy checkpoint, early stopping,
    TensorBoard, each epoch's wall time appended to `epoch_seconds`, and
    (`--verbose 2`) one compact line per epoch. On a mesh's processes
    other than 0 the backup is restored, never written, and there is no
    checkpoint or TensorBoard; with several processes process 0 writes
    outside the mesh (`mesh_strategy.writing`). The early stopping's and
    the checkpoint's state follow a resume (`callback_states`)."""
    import keras

    writer = is_writer(strategy)
    several = getattr(strategy, "process_count", 1) > 1
    from ptloss_tf.callbacks import AtomicBackupAndRestore

    started = []

    def on_epoch_end(epoch, logs):
        epoch_seconds.append(time.perf_counter() - started[-1])
        if config.verbose == 2:
            log(epoch_line(method, epoch, config.epochs, logs or {}, epoch_seconds[-1]))

    # TensorBoard writes with tf.summary: not on hosts without TensorFlow.
    tensorboard = ([keras.callbacks.TensorBoard(os.path.join(method_dir, "logs"))]
                   if tensorflow_available() and writer else [])
    checkpoint = ([best_weights_checkpoint(os.path.join(method_dir, BEST_WEIGHTS), strategy)]
                  if writer else [])
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                                   patience=config.early_stopping_patience)
    return tensorboard + checkpoint + [
        early_stopping,
        keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: started.append(time.perf_counter()),
            on_epoch_end=on_epoch_end),
        # After the callbacks it records (their on_epoch_end runs first) and
        # before the backup: a kill between the two leaves a states file one
        # epoch ahead of the backup (harmless: entries are per epoch), never
        # a backup ahead of the states (the resumed epochs would lose the
        # early stopping's and the best checkpoint's state).
        CallbackStates(os.path.join(method_dir, CALLBACK_STATES), checkpoint + [early_stopping],
                       write=writer),
        AtomicBackupAndRestore(os.path.join(method_dir, "backup"), read_only=not writer,
                               save_outside_distribution=several),
    ]


def evaluate(distiller, dataset, key_suffix="", keys=EVALUATION_KEYS):
    """The distiller's metrics on `dataset`, keys suffixed (`_mismatched`)."""
    metrics = distiller.evaluate(dataset, verbose=0, return_dict=True)
    return {f"{k}{key_suffix}": float(metrics[k]) for k in keys}


def prediction_metrics(probs, examples):
    """Macro-F1, MCC (2 classes) and counts of the predictions on `examples`
    (`ptloss_tf.classification_report`; accuracy comes from `evaluate`)."""
    metrics = classification_metrics(examples.labels, probs.argmax(-1), examples.class_names)
    metrics.pop("accuracy")
    return metrics


def single_class(result):
    """The class a single-class student predicts (see `prediction_metrics`)."""
    return next(c for c, n in result["prediction_counts"].items() if n)


def save_student(distiller, student, preprocessor, method_dir):
    """Writes `student.keras` atomically, with its preprocessor attached, so
    it is self-contained: `load_model(...).predict(["raw text"])` works and
    `ptloss-export` finds the tokenizer and sequence length in it (training
    fed token ids). Trained from prepared data (`preprocessor` None) it has
    none: `ptloss-export` takes the vocabulary and sequence length the run's
    report.json records."""
    if preprocessor is not None:
        student.preprocessor = preprocessor
    save_atomically(distiller.save, os.path.join(method_dir, "student.tmp.keras"),
                    os.path.join(method_dir, STUDENT_FILE))


def check_token_range(tokens, vocabulary_size, config):
    """Raises ValueError if prepared token ids exceed the student's embedding
    table (a `--preset` other than the one the data was tokenised for: JAX
    would silently clamp the lookups)."""
    largest = max(int(split["token_ids"].max()) for split in tokens.values())
    if largest >= vocabulary_size:
        raise ValueError(
            f"the prepared tokens reach id {largest}, but the student's vocabulary has "
            f"{vocabulary_size} entries: `preset` {config.preset} is not the tokenizer the "
            "data was prepared with.")


def train_method(method, config, splits, coefficients, output_dir, strategy=None, log=print,
                 tokens=None):
    """Trains and evaluates one method; writes `<method>/` and returns its
    result (test metrics; `*_mismatched` ones for MNLI's mismatched
    validation set when loaded; distances to p* for the synthetic task).

    `tokens`: a prepared-data directory's token arrays per split; training
    then needs no TensorFlow (`PreparedBatches`, no preprocessor)."""
    import keras

    method_dir = os.path.join(output_dir, method)
    strategy = strategy or make_run_strategy(config)
    writer = is_writer(strategy)
    if writer:
        os.makedirs(method_dir, exist_ok=True)
    distiller, student, preprocessor = build_distiller(method, config, splits, coefficients,
                                                       strategy,
                                                       with_preprocessor=tokens is None)
    if tokens is not None:
        check_token_range(tokens, student.backbone.vocabulary_size, config)
    train, validation, evaluations = run_datasets(config, splits, preprocessor, tokens=tokens,
                                                  strategy=strategy)
    align_data_order_across_strategies(train, config)
    epoch_seconds = []
    callbacks = training_callbacks(config, method_dir, epoch_seconds, method=method, log=log,
                                   strategy=strategy)
    # First: a resumed fit starts at its epoch's batch order.
    callbacks.insert(0, data_order_callback(train))
    log(f"\n== {method}: training {student.count_params():,} parameters for up to "
        f"{config.epochs} epochs on {strategy.num_replicas_in_sync} replica(s) "
        f"({type(strategy).__name__}, dtype policy {keras.config.dtype_policy().name}) ==")
    start = time.time()
    with warnings.catch_warnings():
        # Bucketed datasets have unknown cardinality; Keras warns at each epoch end.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = distiller.fit(train, validation_data=validation, epochs=config.epochs,
                                # 2: our compact epoch line instead of Keras' own.
                                callbacks=callbacks, verbose=1 if config.verbose == 1 else (
                                    2 if config.verbose >= 3 else 0),
                                shuffle=False)
    train_seconds = time.time() - start
    # The whole run's epochs, those before a restart included.
    states = next(c for c in callbacks if isinstance(c, CallbackStates))
    epochs = states.full_history(history.history)
    best_path = os.path.join(method_dir, BEST_WEIGHTS)
    barrier(strategy, f"{method}: best weights written")
    if os.path.exists(best_path):
        distiller.load_weights(best_path)
    test = evaluations["test"]
    result = {
        "method": method,
        **evaluate(distiller, test, keys=EVALUATION_KEYS + ("distillation_loss",)),
        "epochs_run": len(epochs.get("loss", [])),
        "train_seconds": train_seconds,
        "best_val_accuracy": float(np.nanmax(np.asarray(
            epochs.get("val_accuracy") or [np.nan], dtype=np.float64))),
        "replicas": int(strategy.num_replicas_in_sync),
    }
    for split in splits.extra_test_splits:
        result.update(evaluate(distiller, evaluations[split], suffix(split)))
    if hasattr(strategy, "predict"):  # a mesh: padding dropped, gathered from every process
        logits = strategy.predict(distiller, inputs_only(test))
    else:
        logits = distiller.predict(inputs_only(test), verbose=0)
    probs = softmax(np.asarray(logits, np.float32))
    result.update(prediction_metrics(probs, splits.examples["test"]))
    result["reliability"] = reliability_bins(probs, splits.examples["test"].labels)
    if result["single_class_prediction"]:
        log(f"Warning: the {method} student predicts {single_class(result)!r} for every "
            "test example: it has learned no more than the class prior. Too few steps "
            "or too low a learning rate can do this: try more --epochs or a higher "
            "--learning-rate (a 2-layer MiniLM student on 1,500 SST-2 rows needed 3e-4 for "
            "4 epochs where 5e-5 for 2 left it here; docs/RESULTS.md).")
    if splits.p_star:
        result.update(distance_to_p_star(probs, splits.p_star["test"]))
    if not writer:
        return result
    with writing(strategy):
        save_student(distiller, student, preprocessor, method_dir)
    atomic_write_json(os.path.join(method_dir, "history.json"),
                      {k: [None if x is None else float(x) for x in v]
                       for k, v in epochs.items()})
    # Epoch times of this process only: an epoch restored from a backup
    # after an interruption was timed by the earlier process.
    atomic_write_json(os.path.join(method_dir, TIMINGS), {"epoch_seconds": epoch_seconds})
    atomic_write_json(os.path.join(method_dir, "result.json"), result)
    return result
