"""One `ptloss_tf.Distiller` + PTLoss training step under the Keras backend
of this process (`KERAS_BACKEND`), from the weights and batch in an .npz:
writes the updated weights and the step's loss to another .npz.

    KERAS_BACKEND=jax python tests/helpers/backend_step_worker.py IN.npz OUT.npz
"""

import sys

import numpy as np


def main(source, target):
    import keras

    import ptloss_tf

    data = np.load(source)
    keras.utils.set_random_seed(0)
    student = keras.Sequential([keras.Input((data["x"].shape[1],)),
                                keras.layers.Dense(8, activation="tanh"),
                                keras.layers.Dense(data["teacher_probs"].shape[1])])
    student.set_weights([data[f"w{i}"] for i in range(len(student.weights))])
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1),
                      distillation_loss=ptloss_tf.PTLoss(data["eta"], from_logits=True),
                      student_loss_weight=0.25, jit_compile=False)
    history = distiller.fit(data["x"], {"teacher_probs": data["teacher_probs"],
                                        "labels": data["labels"]},
                            batch_size=len(data["x"]), epochs=1, shuffle=False, verbose=0)
    np.savez(target, loss=np.float64(history.history["loss"][0]),
             backend=keras.backend.backend(),
             **{f"w{i}": np.asarray(w) for i, w in enumerate(student.get_weights())})


if __name__ == "__main__":
    main(*sys.argv[1:3])
