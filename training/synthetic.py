"""The embedded default task: synthetic text classification with a KNOWN posterior.

Real teachers are biased in ways nobody can measure, because the true
posterior `p*(y|x)` of a real data set is unknown. This module generates a
text classification task where `p*(y|x)` is an exact, known function of the
text, and a teacher that is a *controlled* distortion of it. The gap between
the teacher and `p*` (and whether a PTLoss Proxy Teacher closes it, see
`../shared/docs/MATH.md`) can therefore be measured exactly.

The generative model (vocabulary, sentences, the rule defining `p*` and the
teacher's distortions) is in `synthetic_text`'s docstring.

Example:
>>> task = make_synthetic_task(num_train=50, num_validation=20, num_test=20)
>>> len(task.train.examples), task.train.p_star.shape
(50, (50, 2))
>>> str(task.train.examples.ids[0])
'synthetic/train/000000'
>>> task.vocabulary[:5]
['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
>>> import numpy as np
>>> bool(np.allclose(task.train.p_star, true_probabilities(task.train.examples.texts[0], task.config)))
True
>>> true_logits(["not " + task.config["evidence_words"][0]], task.config).shape
(1, 2)
"""

import dataclasses

import numpy as np

from ptloss_tf.probabilities import softmax  # noqa: F401  (re-exported)
from ptloss_tf.training.data.tokenization import SPECIAL_TOKENS
from ptloss_tf.training.synthetic_text import FUNCTION_WORDS
from ptloss_tf.training.synthetic_text import GENERATOR_VERSION
from ptloss_tf.training.synthetic_text import NEGATORS
from ptloss_tf.training.synthetic_text import make_sentences
from ptloss_tf.training.synthetic_text import pseudo_words
from ptloss_tf.training.synthetic_text import true_logits
from ptloss_tf.training.synthetic_text import true_probabilities  # noqa: F401

# Stream ids for `np.random.default_rng([seed, split, purpose])`.
_SPLITS = {"train": 1, "validation": 2, "test": 3}
_VOCAB_STREAM = 0
_TEXT, _LABELS, _NOISE = 1, 2, 3


@dataclasses.dataclass
class SyntheticSplit:
    """One split of the synthetic task.

    Attributes:
        examples: `ptloss_tf.training.data.examples.Examples` with ids
            `"synthetic/<split>/<index>"` (zero-based, zero-padded to 6+
            digits), one text field, labels sampled from `p_star`, and the
            task's class names.
        p_star: `[N, K]` float64, the true posterior `p*(y|x)` of each text.
        teacher_probs: `[N, K]` float64, the biased teacher.
    """

    examples: object
    p_star: np.ndarray
    teacher_probs: np.ndarray

    def __len__(self):
        return len(self.p_star)

    def teacher_outputs(self, split, teacher="synthetic-teacher"):
        """The teacher as `ptloss_tf.training.teacher.outputs.TeacherOutputs` (kind "probs").

        Example:
        >>> task = make_synthetic_task(num_train=8, num_validation=4, num_test=4)
        >>> out = task.validation.teacher_outputs("validation")
        >>> out.kind, out.split, out.values.shape
        ('probs', 'validation', (4, 2))
        """
        from ptloss_tf.training.teacher.outputs import TeacherOutputs
        from ptloss_tf.training.teacher.outputs import text_fingerprints

        return TeacherOutputs(
            ids=np.asarray(self.examples.ids),
            values=np.asarray(self.teacher_probs, dtype=np.float32),
            kind="probs",
            class_names=tuple(self.examples.class_names),
            split=split,
            teacher=teacher,
            fingerprints=text_fingerprints(self.examples.texts),
        )


@dataclasses.dataclass
class SyntheticTask:
    """The three splits, the BERT vocabulary and every generation parameter.

    Attributes:
        train, validation, test: `SyntheticSplit`s.
        vocabulary: `["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]` followed
            by every word (sorted), for
            `keras_hub.models.BertTokenizer(vocabulary=task.vocabulary)`.
        config: JSON-serialisable dict of every generation parameter,
            including the evidence-word weight table (`evidence_weights`:
            word -> list of K floats), the negators and `prior_logits`, from
            which `true_logits` recomputes `p*` for any text.
    """

    train: SyntheticSplit
    validation: SyntheticSplit
    test: SyntheticSplit
    vocabulary: list
    config: dict

    def splits(self):
        """`{"train": ..., "validation": ..., "test": ...}`."""
        return {"train": self.train, "validation": self.validation, "test": self.test}


def make_synthetic_task(
    num_train=4000,
    num_validation=1000,
    num_test=2000,
    num_classes=2,
    vocabulary_size=300,
    overconfidence=2.5,
    prior_shift=0.0,
    noise=0.0,
    seed=0,
    *,
    prior_shift_class=0,
    confusion=0.0,
    confusion_classes=(1, 2),
    evidence_words_per_class=4,
    strength_low=1.0,
    strength_high=3.0,
    negation_rate=0.3,
    evidence_count_probs=(0.05, 0.45, 0.35, 0.15),
    function_word_rate=0.3,
    min_length=4,
    max_length=20,
    prior_logits=None,
    class_names=None,
):
    """Generates the synthetic task (deterministic for a `seed`).

    Args:
        num_train, num_validation, num_test: split sizes (>= 1).
        num_classes: `K >= 2`.
        vocabulary_size: number of words (negators + function words +
            pseudo-words), excluding the 5 special tokens.
        overconfidence: teacher logit scale (`1/temperature`; 1 = calibrated,
            > 1 sharper than `p*`, < 1 flatter). Must be >= 0.
        prior_shift: added to the teacher logit of `prior_shift_class`.
        noise: standard deviation of the per-example Gaussian noise on the
            teacher logits (>= 0).
        seed: integer seed.
        prior_shift_class: the class whose teacher logit `prior_shift` shifts.
        confusion: the fraction `c` in [0, 1] of class `a`'s logit evidence that
            the teacher reads as class `b`'s, `(a, b) = confusion_classes`:
            before the over-confidence scale, the teacher's logits are
            `l_a <- (1 - c) * l_a` and `l_b <- l_b + c * l_a` (a linear map of
            the true logits that no per-class map undoes; matrix scaling on
            `log p` undoes it only in part, see `confused_logits`). 0: none.
        confusion_classes: `(a, b)`, two different classes in [0, K); the
            default `(1, 2)` needs K >= 3 only when `confusion > 0`.
        evidence_words_per_class: evidence words supporting each class.
        strength_low, strength_high: range of evidence strengths (the logit
            margin one evidence word gives its class over the others).
        negation_rate: probability that an evidence word is negated.
        evidence_count_probs: probabilities of 0, 1, 2, ... evidence words in
            a sentence.
        function_word_rate: probability that a filler slot is a function word
            (else a neutral pseudo-word).
        min_length, max_length: sentence length range in words (inclusive).
        prior_logits: `[K]` class prior logits of `p*` (default zeros).
        class_names: `K` names (default `("class_0", "class_1", ...)`).

    Returns:
        `SyntheticTask`.

    With the defaults (binary, seed 0) the test split has Bayes accuracy
    0.81 (mean `max_k p*` 0.80); the teacher (overconfidence 2.5) has mean
    `max_k p^t` 0.91 and MSE to `p*` 0.033; about 41% of the sentences
    contain a negator. A keras-hub `BertBackbone` with 2 layers, hidden 64,
    2 heads, trained from scratch (AdamW 2e-3, batch 32, sequence length 32)
    with cross-entropy on the teacher probabilities reaches about 0.72 test
    accuracy after 3 epochs (~40 s on 2 CPU cores) and 0.76 after 10: it
    learns the evidence words first (93% agreement with the Bayes decision on
    sentences without a negator after 3 epochs) and negation later (67% after
    3 epochs, 80% after 10). Trained on the sampled one-hot labels instead it
    reaches about 0.62 after 3 epochs: the soft teacher helps, as it should.
    (Single runs, seed 0; expect a few points of run-to-run variation.)

    Example:
    >>> a = make_synthetic_task(num_train=20, num_validation=5, num_test=5, seed=3)
    >>> b = make_synthetic_task(num_train=20, num_validation=5, num_test=5, seed=3, noise=1.0)
    >>> bool((a.train.examples.labels == b.train.examples.labels).all())
    True
    >>> bool(np.array_equal(a.train.p_star, b.train.p_star))
    True
    """
    K = int(num_classes)
    prior_logits, class_names = _check_arguments(
        K, num_train, num_validation, num_test, vocabulary_size, overconfidence, noise,
        prior_shift_class, min_length, max_length, strength_low, strength_high,
        evidence_words_per_class, prior_logits, class_names)
    confusion_classes = _check_confusion(K, confusion, confusion_classes)
    rng = np.random.default_rng([int(seed), _VOCAB_STREAM])
    fixed = len(NEGATORS) + len(FUNCTION_WORDS)
    pseudo = pseudo_words(rng, vocabulary_size - fixed, SPECIAL_TOKENS + NEGATORS + FUNCTION_WORDS)
    n_evidence = evidence_words_per_class * K
    evidence, fillers = pseudo[:n_evidence], pseudo[n_evidence:]
    evidence_weights, evidence_class = _evidence_table(
        evidence, rng.uniform(strength_low, strength_high, size=n_evidence), K)
    config = {
        "generator": "ptloss_tf.training.synthetic.make_synthetic_task",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "num_train": int(num_train),
        "num_validation": int(num_validation),
        "num_test": int(num_test),
        "num_classes": K,
        "class_names": list(class_names),
        "vocabulary_size": int(vocabulary_size),
        "overconfidence": float(overconfidence),
        "prior_shift": float(prior_shift),
        "prior_shift_class": int(prior_shift_class),
        "noise": float(noise),
        "confusion": float(confusion),
        "confusion_classes": confusion_classes,
        "evidence_words_per_class": int(evidence_words_per_class),
        "strength_low": float(strength_low),
        "strength_high": float(strength_high),
        "negation_rate": float(negation_rate),
        "evidence_count_probs": [float(p) for p in evidence_count_probs],
        "function_word_rate": float(function_word_rate),
        "min_length": int(min_length),
        "max_length": int(max_length),
        "prior_logits": prior_logits,
        "negators": list(NEGATORS),
        "function_words": list(FUNCTION_WORDS),
        "evidence_words": list(evidence),
        "evidence_class": evidence_class,
        "evidence_weights": evidence_weights,
        "rule": (
            "p*(y|x) = softmax(prior_logits + sum_i s_i * evidence_weights[w_i]) over "
            "the evidence words w_i of x, s_i = (-1)^(number of negators since the "
            "previous evidence word); teacher = softmax(overconfidence * C(logits) + "
            "prior_shift * onehot(prior_shift_class) + noise * N(0, I)), C = the "
            "confusion map: l_a <- (1 - confusion) * l_a, l_b <- l_b + confusion * l_a, "
            "(a, b) = confusion_classes"
        ),
    }

    splits = {name: _make_split(name, int(num), config, evidence, fillers)
              for name, num in (("train", num_train), ("validation", num_validation),
                                ("test", num_test))}
    vocabulary = list(SPECIAL_TOKENS) + sorted(set(NEGATORS) | set(FUNCTION_WORDS) | set(pseudo))
    return SyntheticTask(**splits, vocabulary=vocabulary, config=config)


def _check_arguments(K, num_train, num_validation, num_test, vocabulary_size, overconfidence,
                     noise, prior_shift_class, min_length, max_length, strength_low,
                     strength_high, evidence_words_per_class, prior_logits, class_names):
    """Raises ValueError for a bad argument; returns `(prior_logits, class_names)`
    with their defaults filled in."""
    if K < 2:
        raise ValueError(f"num_classes must be >= 2, got {K}.")
    for name, n in (("num_train", num_train), ("num_validation", num_validation),
                    ("num_test", num_test)):
        if int(n) < 1:
            raise ValueError(f"{name} must be >= 1, got {n}.")
    if overconfidence < 0 or noise < 0:
        raise ValueError(
            f"overconfidence and noise must be >= 0, got {overconfidence} and {noise}."
        )
    if not 0 <= prior_shift_class < K:
        raise ValueError(f"prior_shift_class must lie in [0, {K}), got {prior_shift_class}.")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}, {max_length}.")
    if not 0 < strength_low <= strength_high:
        raise ValueError("need 0 < strength_low <= strength_high.")
    n_evidence = evidence_words_per_class * K
    fixed = len(NEGATORS) + len(FUNCTION_WORDS)
    if vocabulary_size < fixed + n_evidence + 10:
        raise ValueError(
            f"vocabulary_size={vocabulary_size} is too small: it must hold the "
            f"{fixed} negators and function words, {n_evidence} evidence words "
            f"and at least 10 neutral pseudo-words ({fixed + n_evidence + 10})."
        )
    if prior_logits is None:
        prior_logits = [0.0] * K
    prior_logits = [float(v) for v in prior_logits]
    if len(prior_logits) != K:
        raise ValueError(f"prior_logits must have {K} entries, got {len(prior_logits)}.")
    if class_names is None:
        class_names = tuple(f"class_{k}" for k in range(K))
    class_names = tuple(str(c) for c in class_names)
    if len(class_names) != K:
        raise ValueError(f"class_names must have {K} entries, got {len(class_names)}.")

    return prior_logits, class_names


def _check_confusion(K, confusion, confusion_classes):
    """Raises ValueError for a bad confusion; returns the classes as a list."""
    if not 0.0 <= confusion <= 1.0:
        raise ValueError(f"confusion must lie in [0, 1], got {confusion}.")
    classes = [int(c) for c in confusion_classes]
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"confusion_classes must be two different classes, got {classes}.")
    if confusion > 0 and not all(0 <= c < K for c in classes):
        raise ValueError(f"confusion_classes {classes} must lie in [0, {K}) "
                         f"(num_classes is {K}).")
    return classes


def confused_logits(logits, confusion, confusion_classes=(1, 2)):
    """The teacher's confusion of two classes, on logits `[N, K]`.

    A fraction `confusion` of class `a`'s logit evidence is moved to class
    `b` (`(a, b) = confusion_classes`): `l_a <- (1 - c) l_a`,
    `l_b <- l_b + c l_a`, the other classes unchanged. A class-`a` evidence
    word (centred weight `s * (e_a - 1/K)`) then gives class `b` the logit
    margin `s * ((2c - 1)(1 - 1/K) - 1/K)` over class `a`: the teacher's class
    `b` overtakes class `a` on pure class-`a` evidence when
    `c > K / (2(K - 1))` (3/4 for K = 3, 5/8 for K = 5). It is linear in the logits, so `log p^t = W l + const(x) 1`
    with a full `W`; matrix scaling, `softmax(W' log p^t + b)`, would undo
    it exactly only if `W^-1 1` were proportional to `1`, which it is not
    (`c > 0`): the per-example constant leaks back in. It is the
    "moving logit evidence" form of a confusion, not a symmetric mixing of
    the two classes' probabilities.

    Example:
    >>> confused_logits(np.array([[0.0, 2.0, -1.0]]), 0.5).tolist()
    [[0.0, 1.0, 0.0]]
    """
    out = np.array(logits, dtype=np.float64, copy=True)
    if confusion:
        a, b = (int(c) for c in confusion_classes)
        moved = confusion * out[:, a]
        out[:, a] -= moved
        out[:, b] += moved
    return out


def _evidence_table(evidence, strengths, K):
    """`(weights, classes)`: each evidence word's centred weight vector
    `s * ([k == c] - 1/K)` and the class `c` it supports (round robin)."""
    evidence_weights, evidence_class = {}, {}
    for i, word in enumerate(evidence):
        c = i % K
        w = -np.full(K, strengths[i] / K)
        w[c] += strengths[i]
        evidence_weights[word] = [float(v) for v in w]
        evidence_class[word] = c
    return evidence_weights, evidence_class


def _make_split(name, num, config, evidence, fillers):
    """One split: sentences, p*, labels sampled from p*, the biased teacher."""
    from ptloss_tf.training.data.examples import Examples

    seed, K = config["seed"], config["num_classes"]
    split_id = _SPLITS[name]
    texts = make_sentences(
        np.random.default_rng([seed, split_id, _TEXT]), num, evidence, fillers, config
    )
    logits = true_logits(texts, config)
    p_star = softmax(logits)
    u = np.random.default_rng([seed, split_id, _LABELS]).random(num)
    cdf = np.cumsum(p_star, axis=1)
    labels = np.minimum((u[:, None] >= cdf).sum(axis=1), K - 1).astype(np.int64)
    z = np.random.default_rng([seed, split_id, _NOISE]).standard_normal((num, K))
    shift = np.zeros(K)
    shift[config["prior_shift_class"]] = config["prior_shift"]
    confused = confused_logits(logits, config.get("confusion", 0.0),
                               config.get("confusion_classes", (1, 2)))
    teacher = softmax(config["overconfidence"] * confused + shift + config["noise"] * z)
    width = max(6, len(str(num - 1)))
    examples = Examples(
        ids=np.array([f"synthetic/{name}/{i:0{width}d}" for i in range(num)]),
        texts=(np.asarray(texts, dtype=object),),
        labels=labels,
        class_names=tuple(config["class_names"]),
        note=(f"synthetic {name}: training.synthetic.make_synthetic_task, seed {seed} "
              "(labels sampled from the known posterior p*)"),
    )
    return SyntheticSplit(examples=examples, p_star=p_star, teacher_probs=teacher)
