"""`predict_file`: offline batch scoring of a TSV/CSV/JSONL file with an export.

The output is the project's teacher-outputs JSONL format
(`ptloss_tf.training.teacher.outputs`: ids, logits, class order, split, model name),
so a *teacher* exported as a SavedModel can produce the teacher outputs that
`ptloss-distill --teacher-outputs` reads. When the input has labels (a
`label` column, or `label_field`), the accuracy of the export on the
labelled rows is returned, printed by `ptloss-export predict` and recorded in
the output header's `metadata`.
"""

import os
import time

import numpy as np

from ptloss_tf.export import metadata as md


DEFAULT_LABEL_FIELD = "label"


def load_serving_kernels():
    """Registers TF Text's ops (`RegexSplitWithOffsets`, ...) in this process.

    The raw-text signature runs TF Text ops, and `tf.saved_model.load` needs
    their kernels registered before it reads the graph. Importing
    `tensorflow_text` registers them; keras-hub imports it as a side effect,
    so a process that never imported keras-hub (`ptloss-export predict`
    from a shell) must do it itself.

    Raises:
        ValueError: `tensorflow_text` is not installed.
    """
    try:
        import tensorflow_text  # noqa: F401  (registers the ops' kernels)
    except ImportError as e:
        raise ValueError(
            "loading an export needs TF Text's ops, but tensorflow_text cannot be "
            f"imported ({e}); install the release matching TensorFlow "
            "(pip install tensorflow-text==2.21.*)."
        ) from None


def _label_field(input_path, label_field):
    """`label_field`, or `label` when the input has such a column, else None."""
    if label_field is not None:
        return label_field
    from ptloss_tf.training.data.tables import read_table

    columns = read_table(input_path).columns
    return DEFAULT_LABEL_FIELD if DEFAULT_LABEL_FIELD in columns else None


def accuracy_summary(logits, labels):
    """Accuracy of `argmax(logits)` on the rows with a label (`labels >= 0`).

    Returns None when no row is labelled, else a dict with `accuracy`,
    `labelled_rows` and `correct`.

    Example:
    >>> accuracy_summary(np.array([[0., 1.], [2., 0.], [0., 3.]]), np.array([1, 1, -1]))
    {'accuracy': 0.5, 'labelled_rows': 2, 'correct': 1}
    """
    labels = np.asarray(labels)
    labelled = labels >= 0
    if not labelled.any():
        return None
    correct = int(np.sum(np.argmax(logits[labelled], axis=-1) == labels[labelled]))
    count = int(labelled.sum())
    return {"accuracy": correct / count, "labelled_rows": count, "correct": correct}


def predict_file(version_dir, input_path, output_path, text_fields=None, id_field=None,
                 split="test", model_name=None, batch_size=64, overwrite=False,
                 label_field=None, log=print):
    """Scores every row of `input_path` with the SavedModel at `version_dir`.

    Args:
        version_dir: an exported version (`BASE/NAME/N`).
        input_path: TSV (header row), CSV or JSONL with the text column(s).
        output_path: the teacher-outputs JSONL to write (atomically; an
            existing file only with `overwrite`).
        text_fields: the text column(s), in model order (default `sentence`,
            or `premise hypothesis` for a pair model).
        id_field: a column of unique ids (default: row numbers).
        split, model_name: recorded in the output header.
        batch_size: rows per call.
        label_field: a label column to score the predictions against
            (default: `label` when the input has one). Labels are matched
            to the export's class names by name, or read as class indices;
            empty / -1 means unlabelled. A value that is neither raises
            ValueError naming the file, line and value.
        log: progress printer.

    Returns:
        The `TeacherOutputs` written. With labels, its `metadata` (the
        output header's) holds `label_field`, `accuracy`, `labelled_rows`
        and `correct` (see `accuracy_summary`).

    Raises:
        ValueError: wrong number of text columns, a missing column, a label
            that is not a class name, or TF Text not installed.
        FileExistsError: `output_path` exists and `overwrite` is False.
    """
    import tensorflow as tf

    from ptloss_tf.training.data.examples import load_file
    from ptloss_tf.training.teacher.outputs import TeacherOutputs
    from ptloss_tf.training.teacher.outputs import text_fingerprints

    metadata = md.read_metadata(version_dir)
    num_segments = metadata["num_segments"]
    text_fields = tuple(text_fields or (("sentence",) if num_segments == 1
                                        else ("premise", "hypothesis")))
    if len(text_fields) != num_segments:
        raise ValueError(f"the model takes {num_segments} text input(s) "
                         f"{metadata['text_inputs']}, got `text_fields` {list(text_fields)}.")
    if os.path.lexists(output_path) and not overwrite:
        raise FileExistsError(f"{output_path} exists; pass `overwrite` to replace it.")
    if not os.path.isfile(input_path):
        raise FileNotFoundError(f"input file not found: {input_path}")
    label_field = _label_field(input_path, label_field)
    class_names = tuple(metadata["class_names"])
    # Labels are encoded with the export's own class order (names first,
    # then indices), never re-derived from the file's distinct values.
    examples = load_file(input_path, text_fields, label_field=label_field, id_field=id_field,
                         class_names=class_names)
    load_serving_kernels()
    serving = tf.saved_model.load(version_dir).signatures["serving_default"]
    logits, start = [], time.time()
    for i in range(0, len(examples), batch_size):
        batch = {name: tf.constant([str(t) for t in texts[i:i + batch_size]])
                 for name, texts in zip(metadata["text_inputs"], examples.texts)}
        logits.append(serving(**batch)["logits"].numpy())
        done = min(i + batch_size, len(examples))
        if done == len(examples) or (i // batch_size) % 50 == 0:
            log(f"  scored {done}/{len(examples)} rows ({done / (time.time() - start):.0f} rows/s)")
    logits = np.concatenate(logits)
    accuracy = (accuracy_summary(logits, examples.labels)
                if label_field is not None else None)
    provenance = {"saved_model": os.path.abspath(version_dir),
                  "input": os.path.abspath(input_path)}
    if accuracy is not None:
        provenance.update(label_field=label_field, **accuracy)
    outputs = TeacherOutputs(
        ids=examples.ids, values=logits, kind="logits",
        class_names=class_names, split=split,
        teacher=model_name or f"{metadata['model_name']}/{metadata['model_version']}",
        metadata=provenance,
        # Content fingerprints: ptloss-distill checks that these rows are its examples.
        fingerprints=text_fingerprints(examples.texts),
    )
    outputs.save(output_path, overwrite=overwrite)
    return outputs
