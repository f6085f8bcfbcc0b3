"""Timing and convergence check of the study's student (run before the study).

    nice -n 10 python -m experiments.measure [--epochs 20] [--method kl]

(from the repository root; `python experiments/measure.py ...` works too;
`--method` is a study method name, e.g. `ptloss:deviation:5`.)

Trains KL students on teacher "overconf_2.5", seed 0, printing per-epoch test
accuracy and wall time, so the epoch count of `common.TRAIN` can be justified.
Writes nothing under results/trainings.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

if __package__:  # python -m experiments.measure
    from . import common
else:  # python experiments/measure.py: this folder is sys.path[0]
    import common


JIT = os.environ.get("STUDY_JIT", "0") == "1"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--teacher", default="overconf_2.5")
    ap.add_argument("--method", default="kl")
    args = ap.parse_args()
    import keras
    import ptloss_tf
    from ptloss_tf.probabilities import softmax
    from ptloss_tf.training.synthetic_summary import teacher_summary

    t0 = time.time()
    task, ids = common.get_task(args.teacher, 0)
    print(f"task: {time.time() - t0:.1f}s", teacher_summary(task.test))
    t0 = time.time()
    s = common.search(args.teacher, 0, 5)
    print(f"search M=5: {time.time() - t0:.1f}s")
    loss = common.make_loss(args.method, 2)
    eta = common.coefficients_for(args.method, args.teacher, 0, 2)
    if eta is not None:
        loss.set_coefficients(eta)
    student = common.build_student(len(task.vocabulary), 2, 0)
    print("params", student.count_params())
    d = ptloss_tf.Distiller(student)
    d.compile(optimizer=keras.optimizers.AdamW(common.TRAIN["learning_rate"]),
              distillation_loss=loss, jit_compile=JIT)
    y = {"teacher_probs": task.train.teacher_probs.astype(np.float32),
         "labels": task.train.examples.labels.astype(np.int32)}

    class Cb(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            q = softmax(student.predict(ids["test"], batch_size=1000, verbose=0))
            dd = common.distances(q, task.test.p_star, task.test.examples.labels)
            print(f"epoch {epoch + 1}: {time.time() - t0:.1f}s acc {dd['accuracy']:.4f} "
                  f"exp_acc {dd['expected_accuracy']:.4f} kl* {dd['kl_to_p_star']:.4f} "
                  f"loss {logs['loss']:.4f}", flush=True)

    t0 = time.time()
    d.fit(ids["train"], y, batch_size=common.TRAIN["batch_size"], epochs=args.epochs,
          verbose=0, callbacks=[Cb()])


if __name__ == "__main__":
    main()
