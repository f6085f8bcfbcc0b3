"""`ptloss-demo`: PTLoss end to end on a synthetic task with a known posterior.

A binary task where the true posterior `p*(y | x) = sigmoid(w . x)` is known,
labels are drawn from it, and the teacher is a deliberately biased version of
`p*` (over-confident by `--overconfidence`, shifted towards class 1 by
`--prior-shift`). A linear Keras student is distilled from the teacher's
probabilities with KL and with PTLoss whose coefficients come from the Proxy
Teacher search under each criterion. The report shows test accuracy, NLL,
ECE and each student's mean squared distance to `p*`: the quantity PTLoss'
theory is about. Runs in well under a minute on a laptop CPU.

Example:
    ptloss-demo --overconfidence 2.5 --output-dir runs/demo
"""

import argparse
import os
import sys
import time

import numpy as np

from ptloss_tf.io_utils import atomic_write_json


def make_task(num_examples, num_features, overconfidence, prior_shift, seed):
    """Features, true posterior `p*(class 0 | x)`, labels, teacher probabilities."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=num_features) / np.sqrt(num_features) * 2.0
    x = rng.normal(size=(num_examples, num_features)).astype(np.float32)
    logit = x @ w
    p_star = 1.0 / (1.0 + np.exp(-logit))
    labels = (rng.uniform(size=num_examples) > p_star).astype(np.int64)
    teacher_logit = overconfidence * logit - prior_shift
    teacher0 = 1.0 / (1.0 + np.exp(-teacher_logit))
    teacher = np.stack([teacher0, 1.0 - teacher0], axis=1)
    return x, p_star, labels, teacher


def _train_student(loss, x, teacher, epochs, seed):
    import keras

    keras.utils.set_random_seed(seed)
    student = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(2)])
    student.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss, jit_compile=True)
    student.fit(x, teacher.astype(np.float32), epochs=epochs, batch_size=256, verbose=0)
    return student


def _evaluate(student, x, labels, p_star):
    import keras

    import ptloss_tf

    logits = student.predict(x, verbose=0, batch_size=4096)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    ece = ptloss_tf.metrics.ExpectedCalibrationError()
    ece.update_state(labels, probs)
    nll = ptloss_tf.metrics.NegativeLogLikelihood()
    nll.update_state(labels, probs)
    return {
        "accuracy": float(np.mean(np.argmax(probs, 1) == labels)),
        "nll": float(nll.result()),
        "ece": float(ece.result()),
        "mse_to_p_star": float(np.mean((probs[:, 0] - p_star) ** 2)),
    }


def run(args):
    import ptloss_tf

    start = time.time()
    n_train, n_val, n_test = args.train_size, args.validation_size, args.test_size
    x, p_star, labels, teacher = make_task(
        n_train + n_val + n_test, args.features, args.overconfidence,
        args.prior_shift, args.seed,
    )
    train = slice(0, n_train)
    val = slice(n_train, n_train + n_val)
    test = slice(n_train + n_val, None)
    print(
        f"Synthetic binary task: {n_train} train / {n_val} validation / "
        f"{n_test} test; teacher over-confidence x{args.overconfidence}, "
        f"prior shift {args.prior_shift}."
    )
    print(
        "Teacher on test: accuracy "
        f"{np.mean(np.argmax(teacher[test], 1) == labels[test]):.4f}, MSE to p* "
        f"{np.mean((teacher[test, 0] - p_star[test]) ** 2):.4f}"
    )
    methods = {"kl": ptloss_tf.KLDivergence(from_logits=True)}
    chosen = {}
    for criterion in args.criteria:
        result = ptloss_tf.search_coefficients(
            teacher[val], labels[val], order=args.order,
            num_candidates=args.candidates, criterion=criterion, seed=args.seed,
        )
        chosen[criterion] = result
        proxy = ptloss_tf.proxy_teacher(teacher[val], result.best).numpy()
        print(
            f"\nProxy Teacher search, criterion {criterion!r}: proxy MSE to p* on "
            f"validation {np.mean((proxy[:, 0] - p_star[val]) ** 2):.4f} "
            f"(teacher {np.mean((teacher[val, 0] - p_star[val]) ** 2):.4f})"
        )
        print(result.table(top=3))
        methods[f"ptloss_{criterion}"] = ptloss_tf.PTLoss(result.best, from_logits=True)
    rows = []
    for name, loss in methods.items():
        student = _train_student(loss, x[train], teacher[train], args.epochs, args.seed)
        rows.append({"method": name, **_evaluate(student, x[test], labels[test], p_star[test])})
    print(f"\n{'method':<18} {'accuracy':>8} {'nll':>8} {'ece':>8} {'mse_to_p*':>10}")
    for row in rows:
        print(
            f"{row['method']:<18} {row['accuracy']:8.4f} {row['nll']:8.4f} "
            f"{row['ece']:8.4f} {row['mse_to_p_star']:10.4f}"
        )
    report = {
        "task": "synthetic_binary",
        "settings": vars(args),
        "results": rows,
        "coefficients": {c: r.best.values.tolist() for c, r in chosen.items()},
        "wall_seconds": time.time() - start,
    }
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        path = os.path.join(args.output_dir, "demo_report.json")
        atomic_write_json(path, report)
        for criterion, result in chosen.items():
            result.plot(os.path.join(args.output_dir, f"search_{criterion}.png"))
        print(f"\nWrote {path}")
    print(f"Done in {report['wall_seconds']:.1f} s.")
    return report


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ptloss-demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    task = parser.add_argument_group("task")
    task.add_argument("--train-size", type=int, default=20000)
    task.add_argument("--validation-size", type=int, default=2000)
    task.add_argument("--test-size", type=int, default=20000)
    task.add_argument("--features", type=int, default=8)
    task.add_argument("--overconfidence", type=float, default=2.5,
                      help="teacher logit = overconfidence * true logit - prior_shift")
    task.add_argument("--prior-shift", type=float, default=0.0)
    search = parser.add_argument_group("coefficient search")
    search.add_argument("--order", type=int, default=5)
    search.add_argument("--candidates", type=int, default=100)
    search.add_argument("--criteria", nargs="+", default=["deviation", "brier"],
                        choices=["deviation", "brier", "nll"])
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None,
                        help="write demo_report.json and search plots here")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("train_size", "validation_size", "test_size", "features", "order",
                 "candidates", "epochs"):
        if getattr(args, name) < 1:
            build_parser().error(f"--{name.replace('_', '-')} must be >= 1")
    try:
        run(args)
    except ValueError as e:
        print(f"ptloss-demo: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
