"""The teacher's prediction under JAX on a data-parallel mesh, in windows of
`window_batches` batches and in one window: writes both logits and the
number of batches each `Model.predict` call received to an .npz.

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=3 \
        python tests/helpers/jax_predict_window_worker.py TEACHER.keras TSV OUT.npz WINDOW
"""

import csv
import sys

import numpy as np


def main(teacher_path, tsv, target, window):
    import keras

    from ptloss_tf.training.data.examples import Examples
    from ptloss_tf.training.teacher.predict import load_teacher
    from ptloss_tf.training.teacher.predict import prediction_distribution
    from ptloss_tf.training.teacher.predict import predict_logits

    with open(tsv, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    examples = Examples(ids=[str(i) for i in range(len(rows))],
                        texts=([r["sentence"] for r in rows],),
                        labels=[int(r["label"]) for r in rows], class_names=("0", "1"))
    distribution = prediction_distribution("data_parallel")
    teacher = load_teacher(teacher_path, distribution)

    calls = []
    real_predict = keras.Model.predict

    def counting_predict(model, x, **kwargs):
        calls.append(len(x))
        return real_predict(model, x, **kwargs)

    keras.Model.predict = counting_predict
    windowed = predict_logits(teacher, examples, teacher.preprocessor, batch_size=4,
                              distribution=distribution, window_batches=int(window))
    windowed_calls = list(calls)
    calls.clear()
    whole = predict_logits(teacher, examples, teacher.preprocessor, batch_size=4,
                           distribution=distribution, window_batches=10**6)
    np.savez(target, windowed=windowed, whole=whole, windowed_calls=windowed_calls,
             whole_calls=calls)


if __name__ == "__main__":
    main(*sys.argv[1:5])
