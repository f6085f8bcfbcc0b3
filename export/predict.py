"""`predict_file`: offline batch scoring of a TSV/CSV/JSONL file with an export.

The output is the project's teacher-outputs JSONL format
(`ptloss_tf.training.teacher_outputs`: ids, logits, class order, split, model name),
so a *teacher* exported as a SavedModel can produce the teacher outputs that
`ptloss-distill --teacher-outputs` reads.
"""

import os
import time

import numpy as np

from ptloss_tf.export import metadata as md


def predict_file(version_dir, input_path, output_path, text_fields=None, id_field=None,
                 split="test", model_name=None, batch_size=64, overwrite=False, log=print):
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

    Returns:
        The `TeacherOutputs` written.
    """
    import tensorflow as tf

    from ptloss_tf.training.data.examples import load_file
    from ptloss_tf.training.teacher_outputs import TeacherOutputs

    metadata = md.read_metadata(version_dir)
    num_segments = metadata["num_segments"]
    text_fields = tuple(text_fields or (("sentence",) if num_segments == 1
                                        else ("premise", "hypothesis")))
    if len(text_fields) != num_segments:
        raise ValueError(f"the model takes {num_segments} text input(s) "
                         f"{metadata['text_inputs']}, got `text_fields` {list(text_fields)}.")
    if os.path.lexists(output_path) and not overwrite:
        raise FileExistsError(f"{output_path} exists; pass `overwrite` to replace it.")
    examples = load_file(input_path, text_fields, id_field=id_field)
    serving = tf.saved_model.load(version_dir).signatures["serving_default"]
    logits, start = [], time.time()
    for i in range(0, len(examples), batch_size):
        batch = {name: tf.constant([str(t) for t in texts[i:i + batch_size]])
                 for name, texts in zip(metadata["text_inputs"], examples.texts)}
        logits.append(serving(**batch)["logits"].numpy())
        done = min(i + batch_size, len(examples))
        if done == len(examples) or (i // batch_size) % 50 == 0:
            log(f"  scored {done}/{len(examples)} rows ({done / (time.time() - start):.0f} rows/s)")
    outputs = TeacherOutputs(
        ids=examples.ids, values=np.concatenate(logits), kind="logits",
        class_names=tuple(metadata["class_names"]), split=split,
        teacher=model_name or f"{metadata['model_name']}/{metadata['model_version']}",
        metadata={"saved_model": os.path.abspath(version_dir), "input": os.path.abspath(input_path)},
    )
    outputs.save(output_path, overwrite=overwrite)
    return outputs
