"""The embedded default task: synthetic text classification with a KNOWN posterior.

Real teachers are biased in ways nobody can measure, because the true
posterior `p*(y|x)` of a real data set is unknown. This module generates a
text classification task where `p*(y|x)` is an exact, known function of the
text, and a teacher that is a *controlled* distortion of it. The gap between
the teacher and `p*` (and whether a PTLoss Proxy Teacher closes it, see
`../shared/docs/MATH.md`) can therefore be measured exactly.

The generative model
--------------------
Vocabulary (all lowercase, letters only; whole words, so a keras-hub
`BertTokenizer(vocabulary=task.vocabulary)` maps every word to exactly one
token id):

- negators: `"not"`, `"never"`;
- function words: `"the"`, `"a"`, `"and"`, ... (neutral fillers);
- pseudo-words such as `"blorf"`: `evidence_words_per_class * num_classes` of
  them are *evidence words*, the rest are neutral fillers.

Each evidence word `e` supports one class `c(e)` with a strength
`s(e) ~ Uniform(strength_low, strength_high)`; its weight vector over the
classes is centred, `w_e[k] = s(e) * ([k == c(e)] - 1/K)`, so negating it
moves probability mass from `c(e)` to all other classes.

The rule (this is the definition of `p*`; `true_logits` implements it):

    logits(x) = prior_logits + sum over evidence words e at positions i of x:
                               (-1)^(number of negators since the previous
                                     evidence word, or since the start) * w_e
    p*(y|x)   = softmax(logits(x))

So a negator flips the sign of the *next* evidence word to its right, possibly
across neutral fillers; two negators before the same evidence word cancel; a
negator with no evidence word after it has no effect; all other words have
weight 0.

Sentences: a length `L ~ Uniform{min_length..max_length}` (4..20 words); a
number of evidence words drawn from `evidence_count_probs` (for 0, 1, 2, 3
words; at most `L // 2`); each evidence word is preceded, with probability
`negation_rate`, by a negator, either directly (`"not blorf"`) or with one
filler in between (`"never the blorf"`); the remaining slots are fillers
(neutral pseudo-words, or function words with probability
`function_word_rate`). Labels are sampled from `p*`.

The teacher (fixed per example, deterministic given the seed):

    teacher_logits = overconfidence * logits(x)
                     + prior_shift * onehot(prior_shift_class)
                     + noise * z,      z ~ N(0, I_K) per example
    teacher_probs  = softmax(teacher_logits)

`overconfidence > 1` is a temperature `< 1` (sharper than `p*`), `prior_shift`
favours one class, `noise` is per-example miscalibration. With
`overconfidence=1, prior_shift=0, noise=0` the teacher is exactly `p*`.

Random streams are separate per purpose and per split (vocabulary and weights;
per split: sentences, labels, teacher noise), so for one `seed` the sentences
and labels do not change when the teacher's bias parameters or the other
splits' sizes change: a sweep over teacher biases compares like with like.

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

# BERT special tokens come first in `SyntheticTask.vocabulary` (ids 0..4).
from ptloss_tf.training.data.tokenization import SPECIAL_TOKENS

#: Words that flip the sign of the next evidence word.
NEGATORS = ("not", "never")
#: Neutral function words (weight 0), used as fillers.
FUNCTION_WORDS = (
    "the", "a", "and", "of", "it", "was", "this", "that", "with", "is",
    "but", "so", "as", "in", "on",
)
#: The generator's version, recorded in `config` (bump if the output changes).
GENERATOR_VERSION = 1

_ONSETS = (
    "b", "bl", "br", "d", "dr", "f", "fl", "fr", "g", "gl", "gr", "k", "kl",
    "kr", "m", "n", "p", "pl", "pr", "sk", "sl", "sn", "sp", "st", "t", "tr",
    "v", "z", "zw", "j",
)
_VOWELS = ("a", "e", "i", "o", "u", "oo", "ai", "ee", "ou")
_CODAS = ("", "f", "g", "k", "m", "n", "p", "rf", "rk", "sh", "t", "x", "z", "nd", "mp")
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
        """The teacher as `ptloss_tf.training.teacher_outputs.TeacherOutputs` (kind "probs").

        Example:
        >>> task = make_synthetic_task(num_train=8, num_validation=4, num_test=4)
        >>> out = task.validation.teacher_outputs("validation")
        >>> out.kind, out.split, out.values.shape
        ('probs', 'validation', (4, 2))
        """
        from ptloss_tf.training.teacher_outputs import TeacherOutputs

        return TeacherOutputs(
            ids=np.asarray(self.examples.ids),
            values=np.asarray(self.teacher_probs, dtype=np.float32),
            kind="probs",
            class_names=tuple(self.examples.class_names),
            split=split,
            teacher=teacher,
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


def softmax(logits):
    """Numerically stable softmax over the last axis (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def true_logits(texts, config):
    """The true logits `log p*(y|x) + const` of each text, by the module's rule.

    Args:
        texts: iterable of whitespace-separated sentences.
        config: `SyntheticTask.config` (uses `evidence_weights`, `negators`,
            `prior_logits`).

    Returns:
        `[N, K]` float64.

    Example (a hand-made config, binary, one evidence word of strength 2):
    >>> cfg = {"evidence_weights": {"blorf": [-1.0, 1.0]},
    ...        "negators": ["not", "never"], "prior_logits": [0.0, 0.5]}
    >>> true_logits(["the blorf", "not the blorf", "not not blorf", "blorf not"], cfg).tolist()
    [[-1.0, 1.5], [1.0, -0.5], [-1.0, 1.5], [-1.0, 1.5]]
    """
    weights = {w: np.asarray(v, dtype=np.float64) for w, v in config["evidence_weights"].items()}
    negators = frozenset(config["negators"])
    prior = np.asarray(config["prior_logits"], dtype=np.float64)
    texts = list(texts)
    out = np.tile(prior, (len(texts), 1))
    for n, text in enumerate(texts):
        sign = 1.0
        for word in str(text).split():
            if word in negators:
                sign = -sign
            elif word in weights:
                out[n] += sign * weights[word]
                sign = 1.0
    return out


def true_probabilities(texts, config):
    """`p*(y|x)` = softmax(`true_logits`), `[N, K]` float64."""
    return softmax(true_logits(texts, config))


def _pseudo_words(rng, count, reserved):
    """`count` distinct lowercase pseudo-words (1-2 syllables), not in `reserved`."""
    words, seen = [], set(reserved)
    attempts = 0
    while len(words) < count:
        attempts += 1
        if attempts > 200 * count + 10000:  # pragma: no cover - huge vocabularies
            raise ValueError(f"cannot generate {count} distinct pseudo-words")
        syllables = 1 if rng.random() < 0.3 else 2
        w = "".join(
            _ONSETS[rng.integers(len(_ONSETS))]
            + _VOWELS[rng.integers(len(_VOWELS))]
            + (_CODAS[rng.integers(len(_CODAS))] if s == syllables - 1 else "")
            for s in range(syllables)
        )
        if len(w) >= 3 and w not in seen:
            seen.add(w)
            words.append(w)
    return words


def _make_sentences(rng, num, evidence, fillers, config):
    """`num` sentences as strings (see the module docstring)."""
    function_words = config["function_words"]
    negators = config["negators"]
    probs = np.asarray(config["evidence_count_probs"], dtype=np.float64)
    probs = probs / probs.sum()
    sentences = []
    for _ in range(num):
        length = int(rng.integers(config["min_length"], config["max_length"] + 1))
        n_ev = min(int(rng.choice(len(probs), p=probs)), length // 2)
        units, used = [], 0
        for i in range(n_ev):
            unit = [evidence[rng.integers(len(evidence))]]
            if rng.random() < config["negation_rate"]:
                neg = negators[rng.integers(len(negators))]
                unit = [neg, None] + unit if rng.random() < 0.3 else [neg] + unit
            # Keep the sentence within `length` words (later units need >= 1 each).
            if used + len(unit) + (n_ev - i - 1) > length:
                unit = unit[-1:]
            units.append(unit)
            used += len(unit)
        n_fill = length - used
        tokens = [None] * n_fill
        # Insert the evidence units at random gaps between the fillers.
        gaps = np.sort(rng.integers(0, n_fill + 1, size=len(units)))
        for unit, gap in sorted(zip(units, gaps), key=lambda ug: -ug[1]):
            tokens[gap:gap] = unit
        words = []
        for t in tokens:
            if t is None:
                if rng.random() < config["function_word_rate"]:
                    t = function_words[rng.integers(len(function_words))]
                else:
                    t = fillers[rng.integers(len(fillers))]
            words.append(t)
        sentences.append(" ".join(words))
    return sentences


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
    from ptloss_tf.training.data.examples import Examples

    K = int(num_classes)
    if K < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
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

    rng = np.random.default_rng([int(seed), _VOCAB_STREAM])
    pseudo = _pseudo_words(rng, vocabulary_size - fixed, SPECIAL_TOKENS + NEGATORS + FUNCTION_WORDS)
    evidence, fillers = pseudo[:n_evidence], pseudo[n_evidence:]
    strengths = rng.uniform(strength_low, strength_high, size=n_evidence)
    evidence_weights, evidence_class = {}, {}
    for i, word in enumerate(evidence):
        c = i % K
        w = -np.full(K, strengths[i] / K)
        w[c] += strengths[i]
        evidence_weights[word] = [float(v) for v in w]
        evidence_class[word] = c

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
            "previous evidence word); teacher = softmax(overconfidence * logits + "
            "prior_shift * onehot(prior_shift_class) + noise * N(0, I))"
        ),
    }

    def make_split(name, num):
        split_id = _SPLITS[name]
        texts = _make_sentences(
            np.random.default_rng([int(seed), split_id, _TEXT]), num, evidence, fillers, config
        )
        logits = true_logits(texts, config)
        p_star = softmax(logits)
        label_rng = np.random.default_rng([int(seed), split_id, _LABELS])
        u = label_rng.random(num)
        cdf = np.cumsum(p_star, axis=1)
        labels = np.minimum((u[:, None] >= cdf).sum(axis=1), K - 1).astype(np.int64)
        z = np.random.default_rng([int(seed), split_id, _NOISE]).standard_normal((num, K))
        shift = np.zeros(K)
        shift[prior_shift_class] = prior_shift
        teacher_logits = float(overconfidence) * logits + shift + float(noise) * z
        teacher = softmax(teacher_logits)
        width = max(6, len(str(num - 1)))
        ids = np.array([f"synthetic/{name}/{i:0{width}d}" for i in range(num)])
        examples = Examples(
            ids=ids,
            texts=(np.asarray(texts, dtype=object),),
            labels=labels,
            class_names=class_names,
            note=(f"synthetic {name}: training.synthetic.make_synthetic_task, seed {int(seed)} "
                  "(labels sampled from the known posterior p*)"),
        )
        return SyntheticSplit(examples=examples, p_star=p_star, teacher_probs=teacher)

    vocabulary = list(SPECIAL_TOKENS) + sorted(set(NEGATORS) | set(FUNCTION_WORDS) | set(pseudo))
    return SyntheticTask(
        train=make_split("train", int(num_train)),
        validation=make_split("validation", int(num_validation)),
        test=make_split("test", int(num_test)),
        vocabulary=vocabulary,
        config=config,
    )


def teacher_summary(split):
    """How the teacher of a `SyntheticSplit` relates to the labels and to `p*`.

    Plain numpy. Label-based entries use only labelled rows (`label >= 0`).

    Returns a dict of floats:
        num_examples: N.
        teacher_accuracy: mean `[argmax_k p^t == y]`.
        teacher_tvd_to_labels: mean `0.5 * ||p^t - onehot(y)||_1` (the
            paper's Fig. 2b quantity).
        teacher_mse_to_p_star: mean over examples of `||p^t - p*||_2^2`.
        teacher_kl_to_p_star: mean `KL(p* || p^t) = sum_k p*_k log(p*_k / p^t_k)`.
        teacher_expected_accuracy: mean `p*[argmax_k p^t]` (the accuracy the
            teacher's decisions have in expectation over the labels).
        teacher_mean_max_prob, p_star_mean_max_prob: mean `max_k p`.
        bayes_accuracy: mean `[argmax_k p* == y]` (the best any model can do
            on these labels, up to sampling noise).
        bayes_expected_accuracy: mean `max_k p*`.
        p_star_tvd_to_labels: mean `0.5 * ||p* - onehot(y)||_1`.

    Example (teacher == p* when overconfidence=1):
    >>> task = make_synthetic_task(num_train=30, num_validation=5, num_test=5, overconfidence=1.0)
    >>> s = teacher_summary(task.train)
    >>> s["teacher_mse_to_p_star"], s["teacher_accuracy"] == s["bayes_accuracy"]
    (0.0, True)
    """
    p_t = np.asarray(split.teacher_probs, dtype=np.float64)
    p_s = np.asarray(split.p_star, dtype=np.float64)
    y = np.asarray(split.examples.labels, dtype=np.int64)
    n, k = p_t.shape
    lab = y >= 0
    onehot = np.eye(k)[y[lab]]
    t_arg = p_t.argmax(axis=1)
    s_arg = p_s.argmax(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p_s > 0, p_s * (np.log(p_s) - np.log(p_t)), 0.0)
    nan = float("nan")

    def mean(x):
        return float(np.mean(x)) if np.size(x) else nan

    return {
        "num_examples": int(n),
        "num_labelled": int(lab.sum()),
        "teacher_accuracy": mean(t_arg[lab] == y[lab]),
        "teacher_tvd_to_labels": mean(0.5 * np.abs(p_t[lab] - onehot).sum(axis=1)),
        "teacher_mse_to_p_star": mean(((p_t - p_s) ** 2).sum(axis=1)),
        "teacher_kl_to_p_star": mean(terms.sum(axis=1)),
        "teacher_expected_accuracy": mean(p_s[np.arange(n), t_arg]),
        "teacher_mean_max_prob": mean(p_t.max(axis=1)),
        "p_star_mean_max_prob": mean(p_s.max(axis=1)),
        "bayes_accuracy": mean(s_arg[lab] == y[lab]),
        "bayes_expected_accuracy": mean(p_s.max(axis=1)),
        "p_star_tvd_to_labels": mean(0.5 * np.abs(p_s[lab] - onehot).sum(axis=1)),
    }
