"""Shared pieces of the synthetic PTLoss study (see experiments/README.md).

Everything the study trains goes through the library: the synthetic task
(`ptloss_tf.training.synthetic.make_synthetic_task`), the coefficient search
(`ptloss_tf.search_coefficients`, `ptloss_tf.random_coefficients`,
`ptloss_tf.proxy_teacher`), the losses (by registry name,
`ptloss_tf.losses.get`: "kl", "temperature", "label_smoothing", "focal",
"ptloss", all `from_logits=True`) and `ptloss_tf.Distiller`.

The only thing *not* from the library is the student: a small Keras model on
word ids (embedding -> causal Conv1D of width 3 -> per-position MLP -> masked
sum over positions -> Dense(K)). It is ~60x faster to train than the tiny
keras-hub BERT of `ptloss-distill`, which is what makes hundreds of trainings
fit in the time budget. Why it is honest: the true logits of the task are a
*sum over positions* of a term that depends on the word and the (at most two)
words before it (a negator directly before the evidence word, or one filler
in between), so this student can represent p* (up to rare double negations
across fillers) but has to learn it from 2,000 examples; it is not given p*.
Each word of the task's vocabulary is one token (whole words, see
`ptloss_tf.training.synthetic`), so tokenisation is a dictionary look-up.
"""

import json
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
RUNS_DIR = os.path.join(RESULTS, "trainings")  # not "runs/": the repo .gitignore ignores runs/
SEARCH_DIR = os.path.join(RESULTS, "search")

# Task sizes (per seed): 2,000 train, 1,000 validation (coefficient search,
# as in the paper), 4,000 test (large, to shrink label-sampling noise).
TASK_SIZES = dict(num_train=2000, num_validation=1000, num_test=4000, num_classes=2)
SEQ_LEN = 20  # max_length of the generator (words, one token each)

# Teachers of controlled bias. "p_star" is the control (teacher == p*).
TEACHERS = {
    "p_star": dict(overconfidence=1.0, prior_shift=0.0, noise=0.0),
    "overconf_1.5": dict(overconfidence=1.5, prior_shift=0.0, noise=0.0),
    "overconf_2.5": dict(overconfidence=2.5, prior_shift=0.0, noise=0.0),
    "overconf_4": dict(overconfidence=4.0, prior_shift=0.0, noise=0.0),
    "prior_0.5": dict(overconfidence=1.0, prior_shift=0.5, noise=0.0),
    "prior_1": dict(overconfidence=1.0, prior_shift=1.0, noise=0.0),
    "prior_2": dict(overconfidence=1.0, prior_shift=2.0, noise=0.0),
    "noise_0.5": dict(overconfidence=1.0, prior_shift=0.0, noise=0.5),
    "noise_1": dict(overconfidence=1.0, prior_shift=0.0, noise=1.0),
    "noise_2": dict(overconfidence=1.0, prior_shift=0.0, noise=2.0),
}

# Student / optimisation (fixed for every method; measured in experiments/measure.py).
STUDENT = dict(embed=32, conv=64, hidden=64)
TRAIN = dict(epochs=8, batch_size=64, learning_rate=3e-3, schedule="cosine to 0", jit_compile=False)

# Paper grids (MATH.md Sec. 4).
TEMPERATURE_GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
SMOOTHING_GRID = (0.02, 0.05, 0.1, 0.15, 0.2)
FOCAL_GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
NUM_CANDIDATES = 100
# The baseline families (loss registry names) and their grids; a grid method
# is "<family>:<value>", e.g. "temperature:2".
FAMILIES = {
    "temperature": TEMPERATURE_GRID,
    "label_smoothing": SMOOTHING_GRID,
    "focal": FOCAL_GRID,
}
# The teachers of the "orders" phase (PTLoss orders 1..4).
ORDER_TEACHERS = ("overconf_2.5", "prior_1", "noise_1")


def atomic_write_json(path, payload):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True, default=_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


_TASKS = {}


def get_task(teacher, seed):
    """The synthetic task of `seed` with teacher `teacher` (cached in-process)."""
    key = (teacher, seed)
    if key not in _TASKS:
        from ptloss_tf.training.synthetic import make_synthetic_task

        if len(_TASKS) > 4:
            _TASKS.clear()
        task = make_synthetic_task(**TASK_SIZES, **TEACHERS[teacher], seed=seed)
        index = {w: i for i, w in enumerate(task.vocabulary)}
        ids = {}
        for name, split in task.splits().items():
            arr = np.zeros((len(split), SEQ_LEN), np.int32)
            for n, text in enumerate(split.examples.texts[0]):
                toks = [index.get(w, 1) for w in str(text).split()][:SEQ_LEN]
                arr[n, : len(toks)] = toks
            ids[name] = arr
        _TASKS[key] = (task, ids)
    return _TASKS[key]


# -- coefficients -------------------------------------------------------------

def search(teacher, seed, order):
    """Proxy-teacher search on the validation split (cached as JSON).

    One `search_coefficients` call scores all 100 candidates under every
    criterion; the chosen set per criterion is the argmin of that criterion's
    scores (what `criterion=` would pick). Also records, on the *test* split,
    how far each chosen proxy teacher is from p* (MSE, KL(p*||.)) and from the
    labels (TVD), next to the raw teacher's numbers: the cheap part of Sec. 2b.
    """
    path = os.path.join(SEARCH_DIR, f"{teacher}__s{seed}__M{order}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    import ptloss_tf

    task, _ = get_task(teacher, seed)
    start = time.time()
    res = ptloss_tf.search_coefficients(
        task.validation.teacher_probs, task.validation.examples.labels,
        order=order, num_candidates=NUM_CANDIDATES, seed=seed, criterion="deviation")
    seconds = time.time() - start
    out = {"teacher": teacher, "seed": seed, "order": order, "search_seconds": seconds,
           "teacher_scores": {k: float(v) for k, v in res.teacher_scores.items()},
           "chosen": {}}
    p_t = task.test.teacher_probs
    p_s = task.test.p_star
    y = task.test.examples.labels
    out["raw_teacher_test"] = distances(p_t, p_s, y)
    for crit, scores in res.scores.items():
        i = int(np.argmin(scores))
        eta = np.asarray(res.candidates[i], dtype=np.float64)
        proxy = np.asarray(ptloss_tf.proxy_teacher(p_t, ptloss_tf.Coefficients(eta)))
        out["chosen"][crit] = {
            "index": i, "eta": eta.tolist(),
            "val_scores": {k: float(v[i]) for k, v in res.scores.items()},
            "proxy_test": distances(proxy, p_s, y),
        }
    # Random-coefficient baseline (paper Fig. 2a): its proxy teacher too.
    eta_r = np.asarray(ptloss_tf.random_coefficients(order, p_t.shape[1], seed=seed).values)
    out["random_eta"] = eta_r.tolist()
    try:
        proxy_r = np.asarray(ptloss_tf.proxy_teacher(p_t, ptloss_tf.random_coefficients(
            order, p_t.shape[1], seed=seed)))
        out["random_proxy_test"] = distances(proxy_r, p_s, y)
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        out["random_proxy_test"] = {"error": repr(e)[:300]}
    atomic_write_json(path, out)
    return out


def distances(probs, p_star, labels):
    probs = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    p_star = np.asarray(p_star, np.float64)
    onehot = np.eye(probs.shape[1])[labels]
    return {
        "mse_to_p_star": float(np.mean(np.sum((probs - p_star) ** 2, 1))),
        "kl_to_p_star": float(np.mean(np.sum(
            p_star * (np.log(np.clip(p_star, 1e-12, 1)) - np.log(probs)), 1))),
        "tvd_to_labels": float(np.mean(0.5 * np.abs(probs - onehot).sum(1))),
        "accuracy": float(np.mean(probs.argmax(1) == labels)),
        "expected_accuracy": float(np.mean(p_star[np.arange(len(p_star)), probs.argmax(1)])),
        "mean_max_prob": float(np.mean(probs.max(1))),
    }


# -- teacher recalibration (the user's first alternative) ----------------------

#: `ptloss_tf.calibrate_teacher` methods the study compares.
CALIBRATIONS = ("temperature", "bias", "vector")
CALIBRATION_DIR = os.path.join(RESULTS, "calibration")
SEARCH_CALIBRATED_DIR = os.path.join(RESULTS, "search_calibrated")


def calibration(teacher, seed, method):
    """`(TeacherCalibration, record)`: the teacher recalibrated on the
    validation split (cached as JSON with the calibrated teacher's test
    distances to p*, no training)."""
    import ptloss_tf

    path = os.path.join(CALIBRATION_DIR, f"{teacher}__s{seed}__{method}.json")
    if os.path.exists(path):
        with open(path) as f:
            record = json.load(f)
        return ptloss_tf.TeacherCalibration.from_config(record["config"]), record
    task, _ = get_task(teacher, seed)
    start = time.time()
    fitted = ptloss_tf.calibrate_teacher(task.validation.teacher_probs,
                                         task.validation.examples.labels, method=method)
    record = {"teacher": teacher, "seed": seed, "method": method,
              "fit_seconds": time.time() - start, "config": fitted.get_config(),
              "test": distances(fitted(task.test.teacher_probs), task.test.p_star,
                                task.test.examples.labels),
              "raw_teacher_test": distances(task.test.teacher_probs, task.test.p_star,
                                            task.test.examples.labels)}
    atomic_write_json(path, record)
    return fitted, record


def search_calibrated(teacher, seed, order, method):
    """The Proxy Teacher search on the recalibrated teacher's validation
    probabilities (`ptloss_calibrated`), cached like `search`; records the
    chosen proxy teachers' test distances to p*."""
    path = os.path.join(SEARCH_CALIBRATED_DIR, f"{teacher}__s{seed}__M{order}__{method}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    import ptloss_tf

    task, _ = get_task(teacher, seed)
    fitted, _ = calibration(teacher, seed, method)
    start = time.time()
    res = ptloss_tf.search_coefficients(
        fitted(task.validation.teacher_probs).astype(np.float32),
        task.validation.examples.labels, order=order, num_candidates=NUM_CANDIDATES,
        seed=seed, criterion="brier")
    out = {"teacher": teacher, "seed": seed, "order": order, "calibration": method,
           "search_seconds": time.time() - start, "chosen": {}}
    p_t = fitted(task.test.teacher_probs)
    for crit, scores in res.scores.items():
        i = int(np.argmin(scores))
        eta = np.asarray(res.candidates[i], dtype=np.float64)
        proxy = np.asarray(ptloss_tf.proxy_teacher(p_t, ptloss_tf.Coefficients(eta)))
        out["chosen"][crit] = {"index": i, "eta": eta.tolist(),
                               "proxy_test": distances(proxy, task.test.p_star,
                                                       task.test.examples.labels)}
    atomic_write_json(path, out)
    return out


# -- methods ------------------------------------------------------------------
#
# A method is "<kind>[:<param>...]", the kind a loss registry name
# (`ptloss_tf.losses.get`) or the CLI's `ptloss_random`:
#   "kl", "temperature:<T>", "label_smoothing:<delta>", "focal:<tau>",
#   "ptloss:<criterion>:<M>" (Proxy Teacher coefficients chosen by the search
#   with that criterion), "ptloss_random:<M>" (the paper's random coefficients).
# The study recorded its first 670 trainings (results/trainings/, derived.json)
# under older kinds; LEGACY_KINDS is the one map between the two, applied to
# everything read (`canonical_method`). docs/RESULTS.md keeps showing the
# recorded names (`legacy_method`), so that it regenerates unchanged.

LEGACY_KINDS = {"temp": "temperature", "ls": "label_smoothing", "pt_proxy": "ptloss",
                "pt_random": "ptloss_random"}
_KINDS_TO_LEGACY = {new: old for old, new in LEGACY_KINDS.items()}
# The constructor keyword that a baseline method's value sets.
FAMILY_PARAMETER = {"temperature": "temperature", "label_smoothing": "smoothing",
                    "focal": "focusing"}


def _with_kind(method, kinds):
    kind, sep, rest = method.partition(":")
    return kinds.get(kind, kind) + sep + rest


def canonical_method(method):
    """The registry-named method of a recorded one: 'temp:2' -> 'temperature:2',
    'pt_proxy:deviation:5' -> 'ptloss:deviation:5'; new names are unchanged."""
    return _with_kind(method, LEGACY_KINDS)


def legacy_method(method):
    """The name a method was recorded under before the registry names
    ('temperature:2' -> 'temp:2'); 'kl' and 'focal:*' are unchanged."""
    return _with_kind(canonical_method(method), _KINDS_TO_LEGACY)


def parse_method(method):
    """'kl' | 'ptloss:<criterion>:<M>' | 'ptloss_random:<M>' | 'temperature:<T>' |
    'label_smoothing:<delta>' | 'focal:<tau>' (or a recorded name) -> (kind, params)."""
    parts = canonical_method(method).split(":")
    return parts[0], parts[1:]


def grid_methods():
    return [f"{fam}:{v:g}" for fam, grid in FAMILIES.items() for v in grid]


def read_run(path):
    """A saved training's result, its "method" in the registry names."""
    with open(path) as f:
        result = json.load(f)
    result["method"] = canonical_method(result["method"])
    return result


def get_loss(name, **params):
    """`ptloss_tf.losses.get(name, **params)`: the registry's loss `name` with
    its constructor's keyword arguments."""
    import ptloss_tf.losses

    return ptloss_tf.losses.get(name, **params)


def coefficients_for(method, teacher, seed, num_classes):
    """The PTLoss coefficients `[M, K]` of a `pt_*` method (else None)."""
    import ptloss_tf

    kind, p = parse_method(method)
    if kind == "ptloss":
        crit, order = p[0], int(p[1])
        return np.asarray(search(teacher, seed, order)["chosen"][crit]["eta"])
    if kind == "ptloss_calibrated":
        cal, crit, order = p[0], p[1], int(p[2])
        return np.asarray(search_calibrated(teacher, seed, order, cal)["chosen"][crit]["eta"])
    if kind == "ptloss_random":
        return np.asarray(ptloss_tf.random_coefficients(int(p[0]), num_classes, seed=seed).values)
    return None


def loss_key(method):
    """Methods sharing a key share one compiled Distiller (same loss graph)."""
    kind, p = parse_method(method)
    if kind in ("ptloss", "ptloss_random", "ptloss_calibrated"):
        return f"ptloss_M{p[-1]}"
    if kind == "kl_calibrated":
        return "kl"
    return canonical_method(method)


def make_loss(method, num_classes):
    kind, p = parse_method(method)
    if kind in ("ptloss", "ptloss_random", "ptloss_calibrated"):
        # Coefficients in a variable: one traced step serves every coefficient
        # set of the same order (re-tracing costs 10-15 s, a training ~5 s).
        return get_loss("ptloss", coefficients=np.zeros((int(p[-1]), num_classes)),
                        from_logits=True, variable_coefficients=True)
    if kind in ("kl", "kl_calibrated"):
        return get_loss("kl", from_logits=True)
    if kind in FAMILY_PARAMETER:
        return get_loss(kind, from_logits=True, **{FAMILY_PARAMETER[kind]: float(p[0])})
    raise ValueError(method)


def build_student(vocab_size, num_classes, seed):
    import keras
    from keras import layers, ops

    keras.utils.set_random_seed(seed)
    ids = keras.Input((SEQ_LEN,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocab_size, STUDENT["embed"])(ids)
    x = layers.Conv1D(STUDENT["conv"], 3, padding="causal", activation="relu")(x)
    x = layers.Dense(STUDENT["hidden"], activation="relu")(x)
    mask = ops.expand_dims(ops.cast(ops.greater(ids, 0), x.dtype), -1)
    x = ops.sum(x * mask, axis=1)
    logits = layers.Dense(num_classes)(x)
    return keras.Model(ids, logits, name="conv_sum_student")


def run_key(teacher, seed, method):
    return f"{teacher}__s{seed}__{method.replace(':', '_')}"


def run_path(teacher, seed, method):
    """The JSON of one training: named after the registry-named method, or
    after its recorded name (`legacy_method`) where that file exists."""
    path = os.path.join(RUNS_DIR, run_key(teacher, seed, canonical_method(method)) + ".json")
    legacy = os.path.join(RUNS_DIR, run_key(teacher, seed, legacy_method(method)) + ".json")
    return legacy if not os.path.exists(path) and os.path.exists(legacy) else path


_TRAINERS = {}


def _trainer(method, vocab_size, num_classes, steps):
    """(student, distiller, loss), compiled once per loss graph and process."""
    import keras
    import ptloss_tf

    key = (loss_key(method), vocab_size, num_classes, steps)
    if key not in _TRAINERS:
        if len(_TRAINERS) >= 6:
            _TRAINERS.clear()
            keras.backend.clear_session(free_memory=False)
        student = build_student(vocab_size, num_classes, 0)
        loss = make_loss(method, num_classes)
        schedule = keras.optimizers.schedules.CosineDecay(TRAIN["learning_rate"], steps)
        distiller = ptloss_tf.Distiller(student)
        distiller.compile(optimizer=keras.optimizers.AdamW(schedule),
                          distillation_loss=loss, student_loss_weight=0.0,
                          jit_compile=TRAIN["jit_compile"])
        _TRAINERS[key] = (student, distiller, loss)
    return _TRAINERS[key]


def train_one(teacher, seed, method, epochs=None, verbose=0):
    """Trains one student; returns (and saves atomically) its result dict.

    A fresh student is *not* rebuilt per run: the cached compiled Distiller's
    student gets the initial weights of `build_student(..., seed)`, the
    optimizer's state and step counter are zeroed (so the cosine schedule
    restarts), PTLoss coefficients are assigned, and Keras' RNG is reseeded -
    the same as a fresh model, without re-tracing.
    """
    import keras

    method = canonical_method(method)
    path = run_path(teacher, seed, method)
    if os.path.exists(path):
        return read_run(path)
    epochs = epochs or TRAIN["epochs"]
    task, ids = get_task(teacher, seed)
    K = task.config["num_classes"]
    V = len(task.vocabulary)
    steps = epochs * int(np.ceil(len(ids["train"]) / TRAIN["batch_size"]))
    eta = coefficients_for(method, teacher, seed, K)
    start = time.time()
    student, distiller, loss = _trainer(method, V, K, steps)
    fresh = build_student(V, K, seed)  # seeds keras too
    student.set_weights(fresh.get_weights())
    del fresh
    for v in distiller.optimizer.variables:
        v.assign(np.zeros(v.shape, dtype=v.dtype))
    if eta is not None:
        loss.set_coefficients(eta)
    keras.utils.set_random_seed(seed)
    targets = task.train.teacher_probs
    kind, p = parse_method(method)
    if kind in ("kl_calibrated", "ptloss_calibrated"):
        targets = calibration(teacher, seed, p[0])[0](targets)
    y_train = {"teacher_probs": targets.astype(np.float32),
               "labels": task.train.examples.labels.astype(np.int32)}
    hist = distiller.fit(ids["train"], y_train, batch_size=TRAIN["batch_size"], epochs=epochs,
                         shuffle=True, verbose=verbose)
    train_seconds = time.time() - start
    from ptloss_tf.probabilities import softmax

    q = softmax(student.predict(ids["test"], batch_size=1000, verbose=0))
    qv = softmax(student.predict(ids["validation"], batch_size=1000, verbose=0))
    dv = distances(qv, task.validation.p_star, task.validation.examples.labels)
    d = distances(q, task.test.p_star, task.test.examples.labels)
    y = task.test.examples.labels
    result = {
        "teacher": teacher, "seed": seed, "method": method, "epochs": epochs,
        "accuracy": d["accuracy"], "expected_accuracy": d["expected_accuracy"],
        "nll": float(-np.mean(np.log(np.clip(q[np.arange(len(y)), y], 1e-12, 1)))),
        "kl_to_p_star": d["kl_to_p_star"], "mse_to_p_star": d["mse_to_p_star"],
        "mean_max_prob": d["mean_max_prob"],
        "val_accuracy": dv["accuracy"], "val_kl_to_p_star": dv["kl_to_p_star"],
        "teacher_agreement": float(np.mean(q.argmax(1) == task.test.teacher_probs.argmax(1))),
        "final_train_loss": float(hist.history["loss"][-1]),
        "seconds": time.time() - start, "train_seconds": train_seconds,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": os.uname().nodename,
    }
    if eta is not None:
        result["eta"] = np.asarray(eta).tolist()
    if not np.isfinite(result["final_train_loss"]):
        result["diverged"] = True
    atomic_write_json(path, result)
    return result
