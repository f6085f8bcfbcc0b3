"""`export_student`: a keras-hub student as a versioned TF-Serving SavedModel.

Layout written under `base_path`:

    base_path/name/
        models.config                  # model_config_list for the server
        1/                             # a version: a SavedModel
            saved_model.pb, variables/, fingerprint.pb
            assets.extra/tf_serving_warmup_requests
            assets.extra/ptloss_metadata.json

A version is built in a hidden `.partial-*` directory beside the versions
(the server only loads integer-named ones) and renamed into place when
complete: a failure leaves no version directory, and an existing version is
never overwritten.
"""

import datetime
import json
import os
import re
import shutil
import tempfile

import numpy as np

from ptloss_tf.export import metadata as md
from ptloss_tf.io_utils import file_sha256
from ptloss_tf.export.models_config import write_models_config
from ptloss_tf.export.signatures import PREDICT_TOKEN_IDS, SERVING_DEFAULT, make_signatures, text_input_names
from ptloss_tf.export.student import keras_logits
from ptloss_tf.export.student import tokenize
from ptloss_tf.probabilities import softmax

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def existing_versions(model_dir):
    """The integer version directories under `model_dir`, sorted."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir)
                  if d.isdigit() and os.path.isdir(os.path.join(model_dir, d)))


def next_version(model_dir):
    """1 + the largest existing version (1 for a new model)."""
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _prepare_model_dir(base_path, name, version):
    if not _NAME.match(name or ""):
        raise ValueError(f"`name` {name!r}: use letters, digits, '_', '-', '.'.")
    base_path = os.path.abspath(base_path)
    if os.path.exists(base_path) and not os.path.isdir(base_path):
        raise ValueError(f"`base_path` {base_path} is a file, not a directory.")
    model_dir = os.path.join(base_path, name)
    try:
        os.makedirs(model_dir, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create {model_dir}: {e.strerror}.") from None
    if not os.access(model_dir, os.W_OK | os.X_OK):
        raise ValueError(f"{model_dir} is not writable.")
    if version is None:
        version = next_version(model_dir)
    version = int(version)
    if version < 1:
        raise ValueError(f"`version` must be a positive integer, got {version}.")
    if os.path.exists(os.path.join(model_dir, str(version))):
        raise FileExistsError(
            f"{os.path.join(model_dir, str(version))} already exists; exports never "
            "overwrite a version (omit `version` for the next free one)."
        )
    return model_dir, version


def _text_batch(rows, num_segments):
    return {name: np.asarray([row[i] for row in rows], dtype=object)
            for i, name in enumerate(text_input_names(num_segments))}


def _custom_ops(saved_model_dir):
    """Ops of the graph that core TensorFlow lacks (here: TF Text's)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    ops = set()
    for graph in proto.meta_graphs:
        ops.update(node.op for node in graph.graph_def.node)
        for function in graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    functions = {f.signature.name for g in proto.meta_graphs
                 for f in g.graph_def.library.function}
    return sorted(op for op in ops if op not in functions and not hasattr(tf.raw_ops, op))


def export_student(student_path, base_path, name, version=None, class_names=None,
                   num_segments=None, samples=None, vocabulary=None,
                   sequence_length=None, serving_base_path=None, log=print):
    """Exports `student_path` to `base_path/name/<version>/`.

    Args:
        student_path: `student.keras` (a keras-hub `TextClassifier`, normally
            from `ptloss-distill`: `RUN/<method>/student.keras`).
        base_path, name: the model directory is `base_path/name`.
        version: integer version; None: the next free one. An existing
            version raises `FileExistsError`.
        class_names: label names (default: the run's `report.json`).
        num_segments: 1 (single text) or 2 (sentence pairs). Default: what
            the run's files record (`report.json` for a student,
            `teacher_run.json` for a teacher). A value that differs from
            the run's record, or no value where the run records none,
            raises ValueError: the model itself cannot tell.
        samples: sample inputs (`samples.json` or one example per line) for
            warmup and verification; default: the run's `samples.json`.
        vocabulary, sequence_length: for a student saved without preprocessor.
        serving_base_path: the directory holding `name/` as the server sees
            it, for `models.config` (e.g. `/models` in docker).
        log: progress printer.

    Returns:
        The path of the version directory.

    Example:
    >>> import tempfile, os
    >>> from ptloss_tf.training.student import build_classifier
    >>> from ptloss_tf.training.data.tokenization import SPECIAL_TOKENS
    >>> vocab = list(SPECIAL_TOKENS) + ["good", "bad"]
    >>> model, pre = build_classifier(2, sequence_length=8, vocabulary=vocab,
    ...     num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16)
    >>> model.preprocessor = pre
    >>> tmp = tempfile.mkdtemp(); model.save(os.path.join(tmp, "s.keras"))
    >>> path = export_student(os.path.join(tmp, "s.keras"), tmp, "demo",
    ...                       class_names=["bad", "good"], num_segments=1,
    ...                       log=lambda m: None)
    >>> sorted(os.listdir(os.path.join(tmp, "demo")))
    ['1', 'models.config']
    """
    import keras
    import tensorflow as tf

    from ptloss_tf.export.serving_requests import predict_request, write_warmup_records
    from ptloss_tf.export.student import load_student
    from ptloss_tf.io_utils import atomic_write_text

    classifier, preprocessor = load_student(student_path, vocabulary, sequence_length)
    info = md.gather_run_info(student_path, class_names, num_segments, samples)
    num_classes = int(classifier.num_classes)
    names = info["class_names"]
    if not names:
        raise ValueError(f"{student_path} is not inside a ptloss-distill run directory; "
                         "pass `class_names`.")
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names {names} for a student with "
                         f"{num_classes} outputs.")
    if info["num_segments"] is None:
        raise ValueError(
            f"cannot tell whether {student_path} takes one text or a sentence pair "
            "(its preprocessor does not record it and no ptloss-distill run files "
            "are beside it); pass `pair` for a sentence-pair model or "
            "`num_segments` 1 for single texts."
        )
    model_dir, version = _prepare_model_dir(base_path, name, version)

    texts = _text_batch(info["samples"], info["num_segments"])
    tokens = tokenize(preprocessor, texts)
    logits = keras_logits(classifier, tokens)
    vocab = list(preprocessor.tokenizer.get_vocabulary())

    partial = tempfile.mkdtemp(prefix=f".partial-{version}-", dir=model_dir)
    saved = os.path.join(partial, "saved_model")
    final = os.path.join(model_dir, str(version))
    try:
        log(f"Tracing serving signatures of {student_path} ...")
        archive = keras.export.ExportArchive()
        archive.track(classifier)
        archive.track(preprocessor)
        for signature, (function, input_signature) in make_signatures(
                classifier, preprocessor, names, info["num_segments"]).items():
            archive.add_endpoint(signature, function, input_signature=input_signature)
        archive.write_out(saved, verbose=False)

        extra = os.path.join(saved, md.ASSETS_EXTRA)
        os.makedirs(extra)
        requests = [
            predict_request(name, SERVING_DEFAULT, {k: v[:1] for k, v in texts.items()}),
            predict_request(name, SERVING_DEFAULT, texts),
            predict_request(name, PREDICT_TOKEN_IDS, tokens),
        ]
        write_warmup_records(os.path.join(extra, md.WARMUP_FILE), requests)
        metadata = {
            "format": "ptloss-export",
            "version": 1,
            "model_name": name,
            "model_version": version,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "task": (info["report"] or {}).get("task"),
            "class_names": names,
            "num_segments": info["num_segments"],
            "num_segments_from": info["num_segments_from"],
            "text_inputs": list(text_input_names(info["num_segments"])),
            "sequence_length": int(preprocessor.sequence_length),
            "tokenizer": {"class": type(preprocessor.tokenizer).__name__,
                          "vocabulary_size": len(vocab),
                          "vocabulary_sha256": md.vocabulary_hash(vocab),
                          "lowercase": bool(getattr(preprocessor.tokenizer, "lowercase", True))},
            "coefficients": (info["report"] or {}).get("coefficients"),
            "training": info["report"],
            "student": {"path": os.path.abspath(student_path),
                        "sha256": file_sha256(student_path),
                        "parameters": int(classifier.count_params())},
            "custom_ops": _custom_ops(saved),
            "signatures": [SERVING_DEFAULT, PREDICT_TOKEN_IDS],
            "warmup_requests": len(requests),
            "reference": {"from": info["samples_from"], "texts": info["samples"],
                          "tokens": {k: v.tolist() for k, v in tokens.items()},
                          "logits": logits.tolist(),
                          "probabilities": softmax(logits).tolist()},
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                         "keras_hub": _version("keras_hub"),
                         "tensorflow_text": _version("tensorflow_text")},
        }
        atomic_write_text(os.path.join(extra, md.METADATA_FILE), json.dumps(metadata, indent=1))
        if os.path.exists(final):
            raise FileExistsError(f"{final} appeared during the export; not overwritten.")
        os.rename(saved, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    config = write_models_config(model_dir, name, serving_base_path)
    log(f"Exported {name} version {version} to {final} ({len(requests)} warmup requests; "
        f"custom ops: {', '.join(metadata['custom_ops']) or 'none'}); server config {config}")
    return final


def _version(module):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return None
