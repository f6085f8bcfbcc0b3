"""The synthetic task's text: its vocabulary, sentence generator and the
rule that defines its true posterior `p*` (`true_logits`).

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

    teacher_logits = overconfidence * C(logits(x))
                     + prior_shift * onehot(prior_shift_class)
                     + noise * z,      z ~ N(0, I_K) per example
    teacher_probs  = softmax(teacher_logits)

where `C` is the teacher's confusion of classes `(a, b) = confusion_classes`
(`synthetic.confused_logits`): `l_a <- (1 - confusion) l_a`,
`l_b <- l_b + confusion l_a`, the identity when `confusion = 0`.

`overconfidence > 1` is a temperature `< 1` (sharper than `p*`), `prior_shift`
favours one class, `noise` is per-example miscalibration. With
`overconfidence=1, prior_shift=0, noise=0, confusion=0` the teacher is exactly
`p*`.

Random streams are separate per purpose and per split (vocabulary and weights;
per split: sentences, labels, teacher noise), so for one `seed` the sentences
and labels do not change when the teacher's bias parameters or the other
splits' sizes change: a sweep over teacher biases compares like with like.
"""

import numpy as np

from ptloss_tf.probabilities import softmax

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


def pseudo_words(rng, count, reserved):
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


def make_sentences(rng, num, evidence, fillers, config):
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
