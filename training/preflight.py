"""Checks of a run's options before any expensive step.

`check_config(config)` finds what can be found from the options alone: a
number out of range, a missing file, a preset that is neither a local folder
nor a known keras-hub name. It runs before the output directory, the data,
the coefficient search or the first model exist, so a typo costs seconds and
leaves nothing behind. The data files are read (and their labels checked)
next, also before the output directory is created.

Errors name the options in backticks (`` `max_train_examples` ``); the CLI
turns them into flags (`config.cli_message`).

Example:
>>> from ptloss_tf.training.config import DistillConfig
>>> check_config(DistillConfig())  # the embedded default: nothing to report
>>> try:
...     check_config(DistillConfig(max_train_examples=0))
... except ValueError as e:
...     print(e)
`max_train_examples` must be at least 1, got 0 (omit it to train on every row).
"""

import os

#: The files of a local keras-hub preset folder / of a HuggingFace BERT folder.
PRESET_CONFIG = "config.json"


def check_config(config):
    """Raises ValueError naming the first bad option of a `DistillConfig`."""
    _check_numbers(config)
    _check_combinations(config)
    _check_files(config)
    if config.preset is not None:
        check_preset(config.preset)


def _at_least(config, name, minimum, hint=""):
    value = getattr(config, name)
    if value is not None and value < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}, got {value}{hint}.")


def _check_numbers(config):
    _at_least(config, "max_train_examples", 1, " (omit it to train on every row)")
    for name in ("epochs", "batch_size", "candidates", "order", "student_layers", "hidden",
                 "heads", "intermediate", "steps_per_execution", "synthetic_train",
                 "synthetic_validation", "synthetic_test", "init_from_layers"):
        _at_least(config, name, 1)
    _at_least(config, "synthetic_classes", 2)
    _at_least(config, "sequence_length", 8)
    _at_least(config, "early_stopping_patience", 0)
    if not config.max_teacher_gap >= 0:  # also refuses NaN; inf never warns
        raise ValueError(f"`max_teacher_gap` must be at least 0 accuracy points, got "
                         f"{config.max_teacher_gap}.")
    if not 0 <= config.prior_shift_class < config.synthetic_classes:
        raise ValueError(f"`prior_shift_class` must lie in [0, {config.synthetic_classes}) "
                         f"(`synthetic_classes` is {config.synthetic_classes}), got "
                         f"{config.prior_shift_class}.")
    if not 0.0 <= config.teacher_confusion <= 1.0:
        raise ValueError(f"`teacher_confusion` must lie in [0, 1], got "
                         f"{config.teacher_confusion}.")
    a, b = config.confusion_classes
    if config.teacher_confusion > 0 and (a == b or not (
            0 <= a < config.synthetic_classes and 0 <= b < config.synthetic_classes)):
        raise ValueError(f"`confusion_classes` must be two different classes in [0, "
                         f"{config.synthetic_classes}) (`synthetic_classes` is "
                         f"{config.synthetic_classes}), got {a} {b}.")
    if not 0.0 <= config.negation_rate <= 1.0:
        raise ValueError(f"`negation_rate` must lie in [0, 1], got {config.negation_rate}.")
    if not 0.0 <= config.warmup_fraction < 1.0:
        raise ValueError(f"`warmup_fraction` must lie in [0, 1), got {config.warmup_fraction}.")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"`dropout` must lie in [0, 1), got {config.dropout}.")
    for name in ("learning_rate", "temperature", "overconfidence", "dkd_temperature",
                 "dist_temperature"):
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise ValueError(f"`{name}` must be positive, got {value}.")
    for name in ("dkd_alpha", "dkd_beta", "dist_beta", "dist_gamma"):
        if not 0 <= getattr(config, name) < float("inf"):
            raise ValueError(f"`{name}` must be a finite number >= 0, got "
                             f"{getattr(config, name)}.")
    if config.hidden % config.heads:
        raise ValueError(f"`hidden` ({config.hidden}) must be a multiple of `heads` "
                         f"({config.heads}).")


def _check_distribution(config):
    """`--distribution` and the multi-process flags: the JAX route only."""
    if config.distribution is None:
        for name in ("devices", "model_parallel", "coordinator", "num_processes",
                     "process_id"):
            if getattr(config, name) is not None:
                raise ValueError(f"`{name}` needs `distribution` (data_parallel or "
                                 "model_parallel).")
        return
    import keras

    if keras.backend.backend() != "jax":
        raise ValueError(f"`distribution` is keras.distribution, which runs under JAX: set "
                         f"KERAS_BACKEND=jax (this is {keras.backend.backend()}); under "
                         "TensorFlow use `strategy` mirrored / multi_worker / tpu.")
    if config.prepared_data is None:
        raise ValueError("`distribution` trains from `prepared_data` (`ptloss-distill "
                         "prepare` first): the TensorFlow-free route.")
    if config.strategy != "default":
        raise ValueError("`distribution` and `strategy` exclude each other: one is JAX's, "
                         "the other TensorFlow's.")
    _at_least(config, "devices", 1)
    _at_least(config, "model_parallel", 1)
    if config.model_parallel is not None and config.distribution != "model_parallel":
        raise ValueError("`model_parallel` is the size of model_parallel's model axis.")
    given = [getattr(config, n) is not None
             for n in ("coordinator", "num_processes", "process_id")]
    if any(given) and not all(given):
        raise ValueError("`coordinator`, `num_processes` and `process_id` go together.")
    if config.num_processes is not None:
        _at_least(config, "num_processes", 1)
        if not 0 <= config.process_id < config.num_processes:
            raise ValueError(f"`process_id` must lie in [0, {config.num_processes}), got "
                             f"{config.process_id}.")
        if config.num_processes > 1 and config.output_dir is None:
            raise ValueError("a multi-process run needs `output_dir` (a path every process "
                             "sees); the default runs/<timestamp> differs between them.")
        if config.num_processes > 1 and config.distribution == "model_parallel":
            raise ValueError("model_parallel over several processes is not supported: its "
                             "split weights would have to be gathered to save the student; "
                             "use data_parallel across processes.")


def _check_combinations(config):
    _check_distribution(config)
    if config.init_from_layers and config.preset is None:
        raise ValueError("`init_from_layers` needs a pretrained `preset`.")
    if config.no_header and config.task != "file":
        raise ValueError("`no_header` applies to `task` file (registered tasks know "
                         "their files' layout).")
    if not 1 <= len(config.text_fields) <= 2:
        raise ValueError(f"`text_fields` must name 1 or 2 columns, got "
                         f"{list(config.text_fields)}.")
    if config.class_names is not None and len(set(config.class_names)) != len(
            config.class_names):
        raise ValueError(f"`class_names` repeats a name: {list(config.class_names)}.")


def _check_files(config):
    def must_exist(name, kind="file"):
        path = getattr(config, name)
        if path is None:
            return
        ok = os.path.isdir(path) if kind == "directory" else os.path.isfile(path)
        if not ok:
            raise ValueError(f"`{name}` {path}: {kind} not found.")

    if config.prepared_data is not None:
        # The data options are the prepared run's: its files need not exist here.
        must_exist("prepared_data", "directory")
        for name in ("config",):
            must_exist(name)
        return
    for name in ("coefficients", "vocabulary", "config"):
        must_exist(name)
    if config.task == "file":
        for name in ("train_file", "validation_file", "test_file"):
            must_exist(name)
    if config.task != "synthetic":
        must_exist("teacher_outputs", "directory")
    if config.output_dir is not None and os.path.exists(config.output_dir) and not (
            os.path.isdir(config.output_dir)):
        raise ValueError(f"`output_dir` {config.output_dir} exists and is not a directory.")


def check_preset(preset, name="preset"):
    """Raises ValueError unless `preset` is a local preset folder (with
    `config.json`), a URI (`kaggle://`, `hf://`, `gs://`, ...) or a keras-hub
    BERT preset name.

    Example:
    >>> check_preset("bert_tiny_en_uncased")
    >>> try:
    ...     check_preset("./no/such/folder")
    ... except ValueError as e:
    ...     print(e)
    `preset` ./no/such/folder: no such folder.
    """
    preset = str(preset)
    if "://" in preset:
        return
    looks_like_path = (os.sep in preset or preset.startswith((".", "~"))
                       or os.path.exists(preset))
    if looks_like_path:
        folder = os.path.expanduser(preset)
        if not os.path.isdir(folder):
            raise ValueError(f"`{name}` {preset}: no such folder.")
        if not os.path.isfile(os.path.join(folder, PRESET_CONFIG)):
            raise ValueError(f"`{name}` {preset}: not a keras-hub or HuggingFace model "
                             f"folder (no {PRESET_CONFIG}).")
        return
    import keras_hub

    known = sorted(keras_hub.models.BertBackbone.presets)
    if preset not in known:
        raise ValueError(f"`{name}` {preset!r}: neither a folder nor a keras-hub BERT "
                         f"preset ({', '.join(known[:4])}, ...).")
