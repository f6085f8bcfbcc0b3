"""`Distiller`: a `keras.Model` whose `fit` distils a student from a teacher."""

import keras
import numpy as np
from keras import ops
from ptloss_tf import keras_compat
from ptloss_tf import validation
from ptloss_tf.input_masks import int_masks
from ptloss_tf.input_masks import tensorflow_or_none
from ptloss_tf.losses.kl_divergence import KLDivergence
from ptloss_tf.metrics import ExpectedCalibrationError
from ptloss_tf.metrics import NegativeLogLikelihood

TEACHER_PROBS = "teacher_probs"
TEACHER_LOGITS = "teacher_logits"
LABELS = "labels"


@keras.saving.register_keras_serializable(package="ptloss_tf")
class Distiller(keras.Model):
    """Distils a student model with PTLoss (or any distillation loss) in `fit`.

    Each training element is `(inputs, targets)`; `targets` is a dict with
    cached teacher outputs, `"teacher_probs"` or `"teacher_logits"` `[B, K]`
    (the normal case for a large teacher such as T5 whose tokenizer differs
    from the student's), and optionally `"labels"` `[B]`. Without cached
    outputs the `teacher` model given here is run on the inputs (its output
    must be logits).

    The loss is `(1 - student_loss_weight) * distillation_loss(teacher_probs,
    student_logits) + student_loss_weight * CE(labels, student_logits)`, the
    convention of `keras.distillation.Distiller`. A distillation loss that
    needs the labels (`takes_labels = True`, e.g. `DecoupledKDLoss`) gets
    `loss.targets_with_labels(teacher_probs, labels)` as its `y_true`:
    the teacher probabilities and the one-hot `"labels"` side by side, the
    label half zero (the teacher's argmax stands in) without `"labels"`. Teacher logits become
    probabilities with a plain softmax; a temperature is the distillation
    loss' own `temperature` argument (`softmax(log p / T)` equals
    `softmax(t / T)`).

    The customisation is `compute_loss` / `compute_metrics`, so `fit`,
    `evaluate`, `predict`, callbacks, `steps_per_execution`, `jit_compile` and
    `tf.distribute` strategies work as for any Keras model. Both loss parts
    are Keras `Loss` objects with the default `"sum_over_batch_size"`
    reduction, which Keras scales by the number of replicas: a step under
    `MirroredStrategy` equals a single-device step on the global batch.

    Metrics (with labels): `accuracy`, `nll`, `ece`; with teacher outputs:
    `teacher_agreement` (student argmax == teacher argmax); always
    `distillation_loss` and, with labels, `student_loss`.

    Only the student is tracked: `distiller.weights`, checkpoints,
    `BackupAndRestore` backups and `distiller.save(...)` never include the
    teacher. `distiller.save(path)` saves the student (a plain Keras model).

    Args:
        student: `keras.Model` producing logits `[B, K]`.
        teacher: optional frozen `keras.Model` producing logits `[B, K]`.

    Example:
    >>> import keras, numpy as np, ptloss_tf
    >>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> distiller = ptloss_tf.Distiller(student)
    >>> distiller.compile(optimizer="sgd",
    ...                   distillation_loss=ptloss_tf.PTLoss([[1.0, 1.0]], from_logits=True))
    >>> x = np.random.normal(size=(8, 4)).astype("float32")
    >>> targets = {"teacher_probs": np.full((8, 2), 0.5, "float32"),
    ...            "labels": np.zeros(8, "int32")}
    >>> history = distiller.fit(x, targets, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'distillation_loss', 'ece', 'loss', 'nll', 'student_loss', 'teacher_agreement']
    """

    def __init__(self, student, teacher=None, name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        if not isinstance(student, keras.Model):
            raise ValueError(
                f"`student` must be a keras.Model, got {type(student).__name__}."
            )
        if teacher is not None and not isinstance(teacher, keras.Model):
            raise ValueError(
                f"`teacher` must be a keras.Model or None, got "
                f"{type(teacher).__name__}."
            )
        self.student = student
        if teacher is not None:
            teacher.trainable = False
        # Kept out of Keras' tracking: the teacher's weights must not enter
        # this model's variables, checkpoints or saved files.
        object.__setattr__(self, "_teacher", teacher)
        # A built student makes the distiller built (it owns no weights of its
        # own); BackupAndRestore refuses unbuilt models in on_train_begin.
        if student.built:
            self.built = True

    @property
    def teacher(self):
        return self._teacher

    def compile(
        self,
        optimizer="adam",
        distillation_loss=None,
        student_loss_weight=0.0,
        metrics=None,
        jit_compile="auto",
        **kwargs,
    ):
        """Configures distillation.

        Args:
            optimizer: a Keras optimizer (or its name).
            distillation_loss: a `keras.losses.Loss` taking teacher
                probabilities and student logits, e.g.
                `ptloss_tf.PTLoss(eta, from_logits=True)`. Defaults to
                `ptloss_tf.KLDivergence(from_logits=True)`.
            student_loss_weight: weight in `[0, 1]` of the cross-entropy with
                the labels (needs `"labels"` in the targets when > 0).
            metrics: extra `keras.metrics.Metric`s, updated with
                `(labels, student_logits)`.
            jit_compile: as for `keras.Model.compile`.
            **kwargs: passed to `keras.Model.compile` (`steps_per_execution`,
                ...). `loss` is not accepted: use `distillation_loss`.
        """
        if "loss" in kwargs:
            raise ValueError(
                "Distiller.compile takes `distillation_loss` (and "
                "`student_loss_weight`), not `loss`."
            )
        weight = float(student_loss_weight)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(
                f"`student_loss_weight` must lie in [0, 1], got {student_loss_weight}."
            )
        if distillation_loss is None:
            distillation_loss = KLDivergence(from_logits=True)
        if not isinstance(distillation_loss, keras.losses.Loss):
            raise ValueError(
                "`distillation_loss` must be a keras.losses.Loss taking "
                "(teacher_probs, student_logits), got "
                f"{type(distillation_loss).__name__}."
            )
        if getattr(distillation_loss, "from_logits", True) is False:
            raise ValueError(
                "`distillation_loss` must be built with from_logits=True: the "
                "Distiller feeds it the student's logits."
            )
        self.distillation_loss = distillation_loss
        self.student_loss_weight = weight
        # Reduced as the distillation loss is (e.g. "mean_with_sample_weight"
        # on a device mesh whose padded rows weigh 0).
        self.student_loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True,
            reduction=getattr(distillation_loss, "reduction", "sum_over_batch_size"),
        )
        # Keras' own "loss" tracker weighs a batch by its rows, padding rows
        # of a device mesh included; this one weighs it as the two below do.
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(
            name="accuracy"
        )
        self.agreement_metric = keras.metrics.SparseCategoricalAccuracy(
            name="teacher_agreement"
        )
        self.nll_metric = NegativeLogLikelihood(from_logits=True, name="nll")
        self.ece_metric = ExpectedCalibrationError(from_logits=True, name="ece")
        self.extra_metrics = list(metrics or [])
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    # -- targets -------------------------------------------------------------

    def _check_target_structure(self, targets):
        if not isinstance(targets, dict):
            raise ValueError("Distiller targets must be a dict with 'teacher_probs' or "
                             "'teacher_logits' (and optionally 'labels'); got "
                             f"{type(targets).__name__}.")
        unknown = set(targets) - {TEACHER_PROBS, TEACHER_LOGITS, LABELS}
        if unknown:
            raise ValueError(f"unknown Distiller target keys {sorted(unknown)}; expected "
                             "'teacher_probs', 'teacher_logits', 'labels'.")
        if TEACHER_PROBS in targets and TEACHER_LOGITS in targets:
            raise ValueError("give either 'teacher_probs' or 'teacher_logits', not both.")
        if TEACHER_PROBS not in targets and TEACHER_LOGITS not in targets and self.teacher is None:
            raise ValueError("targets have no 'teacher_probs' or 'teacher_logits' and the "
                             "Distiller has no teacher model to compute them; got keys "
                             f"{sorted(targets)}.")
        if self.student_loss_weight > 0 and LABELS not in targets:
            raise ValueError(f"student_loss_weight={self.student_loss_weight} needs 'labels' "
                             f"in the targets; got keys {sorted(targets)}.")

    def _teacher_probs(self, x, targets):
        if TEACHER_PROBS in targets:
            return ops.cast(targets[TEACHER_PROBS], "float32")
        if TEACHER_LOGITS in targets:
            logits = targets[TEACHER_LOGITS]
        else:
            logits = self.teacher(x, training=False)
        return ops.stop_gradient(
            ops.softmax(ops.cast(logits, "float32"), axis=-1)
        )

    # -- Keras hooks ---------------------------------------------------------

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        self._check_target_structure(y)
        teacher_probs = self._teacher_probs(x, y)
        if getattr(self.distillation_loss, "takes_labels", False):  # DKD: see the class doc
            teacher_probs = self.distillation_loss.targets_with_labels(teacher_probs, y.get(LABELS))
        distill = self.distillation_loss(teacher_probs, y_pred, sample_weight)
        # The running means weigh a batch by its rows, or by its total sample
        # weight (rows of weight 0, e.g. a mesh's padding, do not count).
        batch = (ops.shape(y_pred)[0] if sample_weight is None
                 else ops.sum(ops.cast(sample_weight, "float32")))

        def track(tracker, loss):
            tracker.update_state(keras_compat.unscale_loss_for_distribution(loss),
                                 sample_weight=batch)

        track(self.distillation_loss_tracker, distill)
        total = (1.0 - self.student_loss_weight) * distill
        if LABELS in y:
            student = self.student_loss(y[LABELS], y_pred, sample_weight)
            track(self.student_loss_tracker, student)
            if self.student_loss_weight > 0:
                total = total + self.student_loss_weight * student
        regularisation = self.student.losses
        if regularisation:
            total = total + keras_compat.aggregate_additional_loss(
                self,
                ops.sum(ops.stack([ops.cast(l, "float32") for l in regularisation])),
            )
        track(self.total_loss_tracker, total)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        y_pred = ops.cast(y_pred, "float32")
        teacher_probs = self._teacher_probs(x, y)
        self.agreement_metric.update_state(
            ops.argmax(teacher_probs, axis=-1), y_pred, sample_weight
        )
        if LABELS in y:
            labels = y[LABELS]
            for metric in (
                self.accuracy_metric,
                self.nll_metric,
                self.ece_metric,
                *self.extra_metrics,
            ):
                metric.update_state(labels, y_pred, sample_weight)
        return self._results(has_labels=LABELS in y)

    def _results(self, has_labels):
        metrics = [self.total_loss_tracker, self.distillation_loss_tracker,
                   self.agreement_metric]
        if has_labels:
            metrics += [self.student_loss_tracker, self.accuracy_metric,
                        self.nll_metric, self.ece_metric, *self.extra_metrics]
        return {m.name: m.result() for m in metrics}

    @property
    def metrics(self):
        if not self.compiled:
            return []
        return [
            self.total_loss_tracker,
            self.distillation_loss_tracker,
            self.student_loss_tracker,
            self.agreement_metric,
            self.accuracy_metric,
            self.nll_metric,
            self.ece_metric,
            *self.extra_metrics,
        ]

    # -- data boundary -------------------------------------------------------

    def _num_classes(self):
        shape = getattr(self.student, "output_shape", None)
        if isinstance(shape, tuple) and shape and isinstance(shape[-1], int):
            return shape[-1]
        return None

    def validate_targets(self, targets):
        """Checks a batch (or all) of concrete targets; raises ValueError.

        Called by `fit`/`evaluate` on numpy targets and on the first batch of
        a `tf.data.Dataset` (reading a whole dataset would cost an epoch);
        validate complete teacher files where they are written or joined.
        """
        self._check_target_structure(targets)
        num_classes = self._num_classes()
        expected = getattr(
            getattr(self.distillation_loss, "coefficients", None), "num_classes", None
        )
        for key in (TEACHER_PROBS, TEACHER_LOGITS):
            if key not in targets:
                continue
            values = validation.as_numpy(targets[key], key)
            if values.ndim != 2:
                raise ValueError(
                    f"'{key}' must have shape [batch, num_classes], got {values.shape}."
                )
            for what, k in (("student", num_classes), ("distillation loss", expected)):
                if k is not None and values.shape[1] != k:
                    raise ValueError(
                        f"class-count mismatch: '{key}' has {values.shape[1]} "
                        f"classes but the {what} has {k}."
                    )
            if key == TEACHER_PROBS:
                validation.check_probabilities(values, name="'teacher_probs'")
            elif not np.isfinite(values).all():
                raise ValueError("'teacher_logits' contains NaN or inf.")
        if LABELS in targets:
            labels = validation.as_numpy(targets[LABELS], LABELS)
            k = num_classes or expected
            if k is None:
                for key in (TEACHER_PROBS, TEACHER_LOGITS):
                    if key in targets:
                        k = validation.as_numpy(targets[key], key).shape[1]
            if k is not None:
                validation.check_labels(labels, labels.shape[0], k, name="'labels'")

    def _validate_data(self, x, y):
        tf = tensorflow_or_none()
        if tf is not None and isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            if not isinstance(spec, tuple) or len(spec) < 2:
                raise ValueError(
                    "Distiller datasets must yield (inputs, targets) pairs; got "
                    f"element_spec {spec}."
                )
            # next(iter(...)) reuses the pipeline; take(1) would rebuild it.
            _, targets = next(iter(x))[:2]
            self.validate_targets(targets)
        elif isinstance(x, keras.utils.PyDataset):
            batch = x[0]
            if not isinstance(batch, tuple) or len(batch) < 2:
                raise ValueError("Distiller PyDatasets must yield (inputs, targets) pairs; "
                                 f"got a {type(batch).__name__}.")
            self.validate_targets(batch[1])
        elif y is not None:
            self.validate_targets(y)
        elif x is not None and not hasattr(x, "__next__"):
            raise ValueError(
                "Distiller.fit needs targets: pass y={'teacher_probs': ...} or "
                "a dataset of (inputs, targets)."
            )

    def fit(self, x=None, y=None, *args, **kwargs):
        self._validate_data(x, y)
        validation_data = kwargs.get("validation_data")
        if validation_data is not None:
            if isinstance(validation_data, tuple):
                self._validate_data(*validation_data[:2])
                validation_data = tuple(self._int_masks(v) for v in validation_data)
            else:
                self._validate_data(validation_data, None)
                validation_data = self._int_masks(validation_data)
            kwargs["validation_data"] = validation_data
        return super().fit(self._int_masks(x), y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._validate_data(x, y)
        return super().evaluate(self._int_masks(x), y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        return super().predict(self._int_masks(x), *args, **kwargs)

    def _int_masks(self, data):
        # Only distributed runs reduce the first batch (see `int_masks`).
        if keras_compat.model_distribute_strategy(self) is None:
            return data
        return int_masks(data)

    # -- saving --------------------------------------------------------------

    def save(self, filepath, *args, **kwargs):
        """Saves the *student* (never the teacher) to `filepath`."""
        return self.student.save(filepath, *args, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "student": keras.saving.serialize_keras_object(self.student),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["student"] = keras.saving.deserialize_keras_object(config["student"])
        return cls(**config)
