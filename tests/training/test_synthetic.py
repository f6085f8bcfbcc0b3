"""Tests of the synthetic task with a known posterior (training/synthetic.py).

Golden values are recomputed here independently: the sentence parser and the
negation rule are re-implemented below from the rule's statement, using only
the weight table in `task.config`, and the summaries with numpy/scipy.
"""

import json
import re

import numpy as np
import pytest
from scipy.special import rel_entr
from scipy.special import softmax as sp_softmax

from ptloss_tf.training.synthetic import make_synthetic_task
from ptloss_tf.training.synthetic_summary import teacher_summary
from ptloss_tf.training.synthetic import true_logits

SMALL = dict(num_train=3000, num_validation=400, num_test=400)


@pytest.fixture(scope="module")
def task():
    return make_synthetic_task(seed=7, **SMALL)


@pytest.fixture(scope="module")
def task3():
    return make_synthetic_task(num_classes=3, seed=11, overconfidence=1.0, **SMALL)


def reference_logits(text, config):
    """The rule, re-implemented: a negator flips the sign of the next evidence word."""
    weights = config["evidence_weights"]
    logits = np.array(config["prior_logits"], dtype=np.float64)
    negations = 0
    for word in text.split(" "):
        if word in ("not", "never"):
            negations += 1
        elif word in weights:
            logits = logits + (-1.0) ** negations * np.array(weights[word])
            negations = 0
    return logits


def all_splits(t):
    return [t.train, t.validation, t.test]


# -- p* -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["task", "task3"])
def test_p_star_is_a_proper_distribution(name, request):
    t = request.getfixturevalue(name)
    K = t.config["num_classes"]
    for split in all_splits(t):
        p = split.p_star
        assert p.shape == (len(split.examples), K)
        assert np.all(np.isfinite(p)) and np.all(p > 0) and np.all(p < 1)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("name", ["task", "task3"])
def test_p_star_equals_independent_recomputation_from_text(name, request):
    t = request.getfixturevalue(name)
    for split in all_splits(t):
        texts = split.examples.texts[0]
        expected = sp_softmax(np.stack([reference_logits(s, t.config) for s in texts]), axis=1)
        np.testing.assert_allclose(split.p_star, expected, rtol=0, atol=1e-12)


def test_generated_sentences_exercise_negation(task):
    """Not vacuous: many sentences contain negated evidence, and ignoring the
    negation would change p* for them."""
    cfg = task.config
    no_neg = {**cfg, "negators": []}
    texts = task.train.examples.texts[0]
    changed = np.abs(true_logits(texts, cfg) - true_logits(texts, no_neg)).max(axis=1) > 1e-9
    assert 0.15 < changed.mean() < 0.6
    # negators separated from their evidence word by a filler also occur
    ev = "|".join(cfg["evidence_words"])
    assert any(re.search(rf"\b(not|never) \w+ ({ev})\b", s) for s in texts)


def test_negation_rule_on_hand_made_sentences(task):
    cfg = task.config
    w = {k: np.array(v) for k, v in cfg["evidence_weights"].items()}
    a, b = cfg["evidence_words"][0], cfg["evidence_words"][1]
    filler = next(x for x in task.vocabulary[5:]
                  if x not in w and x not in ("not", "never"))
    prior = np.array(cfg["prior_logits"])
    cases = {
        f"{a}": prior + w[a],
        f"not {a}": prior - w[a],
        f"never {filler} {a}": prior - w[a],
        f"not not {a}": prior + w[a],
        f"{a} not": prior + w[a],  # a trailing negator has no effect
        f"not {a} {b}": prior - w[a] + w[b],  # only the next evidence word
        f"{filler} the {filler}": prior,
    }
    got = true_logits(list(cases), cfg)
    np.testing.assert_allclose(got, np.stack(list(cases.values())), atol=1e-12)
    # the evidence weights are centred and each supports its class
    for word, vec in w.items():
        assert abs(vec.sum()) < 1e-12
        assert int(np.argmax(vec)) == cfg["evidence_class"][word]
        strength = vec.max() - vec.min()
        assert cfg["strength_low"] - 1e-12 <= strength <= cfg["strength_high"] + 1e-12


# -- labels -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["task", "task3"])
def test_label_frequencies_match_mean_p_star(name, request):
    t = request.getfixturevalue(name)
    split = t.train
    K = t.config["num_classes"]
    y = split.examples.labels
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() < K
    counts = np.bincount(y, minlength=K)
    expected = split.p_star.sum(axis=0)
    sd = np.sqrt((split.p_star * (1 - split.p_star)).sum(axis=0))
    assert np.all(np.abs(counts - expected) < 4 * sd), (counts, expected, sd)
    # calibration of the labels: in bins of p*_k, the label frequency of k
    # matches the mean p*_k (labels really are drawn from p*, per example)
    for k in range(K):
        pk = split.p_star[:, k]
        for lo, hi in [(0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.0)]:
            m = (pk >= lo) & (pk < hi)
            if m.sum() < 100:
                continue
            freq = (y[m] == k).mean()
            se = np.sqrt((pk[m] * (1 - pk[m])).sum()) / m.sum()
            assert abs(freq - pk[m].mean()) < 4 * se + 1e-9, (k, lo, hi)


def test_task_is_informative_but_not_trivial(task):
    s = teacher_summary(task.train)
    # the text carries real evidence, yet p* is not degenerate
    assert 0.7 < s["bayes_expected_accuracy"] < 0.95
    assert 0.7 < s["bayes_accuracy"] < 0.95


# -- teacher ------------------------------------------------------------------

def test_calibrated_teacher_is_exactly_p_star():
    t = make_synthetic_task(overconfidence=1.0, prior_shift=0.0, noise=0.0, seed=3, **SMALL)
    for split in all_splits(t):
        np.testing.assert_array_equal(split.teacher_probs, split.p_star)


def test_overconfidence_sharpens_the_teacher(task):
    assert task.config["overconfidence"] == 2.5
    for split in all_splits(task):
        pt, ps = split.teacher_probs, split.p_star
        assert pt.max(axis=1).mean() > ps.max(axis=1).mean() + 0.05
        # exact relation: teacher log-odds = 2.5 * true log-odds (binary, no noise/shift)
        np.testing.assert_allclose(
            np.log(pt[:, 1] / pt[:, 0]), 2.5 * np.log(ps[:, 1] / ps[:, 0]), atol=1e-8
        )
        # argmax is unchanged by a temperature
        np.testing.assert_array_equal(pt.argmax(axis=1), ps.argmax(axis=1))


def test_underconfidence_flattens_the_teacher():
    t = make_synthetic_task(overconfidence=0.5, seed=3, **SMALL)
    assert t.train.teacher_probs.max(axis=1).mean() < t.train.p_star.max(axis=1).mean() - 0.05


@pytest.mark.parametrize("cls", [0, 2])
def test_prior_shift_raises_that_class(cls):
    base = make_synthetic_task(num_classes=3, overconfidence=1.0, seed=5, **SMALL)
    shifted = make_synthetic_task(num_classes=3, overconfidence=1.0, prior_shift=1.5,
                                  prior_shift_class=cls, seed=5, **SMALL)
    pt, ps = shifted.train.teacher_probs, base.train.p_star
    np.testing.assert_array_equal(shifted.train.p_star, ps)
    assert pt[:, cls].mean() > ps[:, cls].mean() + 0.1
    assert np.all(pt[:, cls] > ps[:, cls])
    # exact: log(t_cls / t_j) - log(p_cls / p_j) = shift for every other class j
    for j in set(range(3)) - {cls}:
        np.testing.assert_allclose(
            np.log(pt[:, cls] / pt[:, j]) - np.log(ps[:, cls] / ps[:, j]), 1.5, atol=1e-8
        )


def test_noise_is_per_example_gaussian_on_the_logits():
    t = make_synthetic_task(overconfidence=1.0, noise=0.8, seed=9, **SMALL)
    pt, ps = t.train.teacher_probs, t.train.p_star
    resid = np.log(pt[:, 1] / pt[:, 0]) - np.log(ps[:, 1] / ps[:, 0])
    # difference of two independent N(0, 0.8^2) logit perturbations
    assert abs(resid.std() - 0.8 * np.sqrt(2)) < 0.08
    assert abs(resid.mean()) < 0.08
    np.testing.assert_allclose(pt.sum(axis=1), 1.0, atol=1e-12)


# -- determinism and independence of the random streams ------------------------

def test_deterministic_for_a_seed():
    a = make_synthetic_task(noise=0.3, seed=21, **SMALL)
    b = make_synthetic_task(noise=0.3, seed=21, **SMALL)
    assert a.vocabulary == b.vocabulary
    assert json.dumps(a.config, sort_keys=True) == json.dumps(b.config, sort_keys=True)
    for sa, sb in zip(all_splits(a), all_splits(b)):
        np.testing.assert_array_equal(sa.examples.ids, sb.examples.ids)
        np.testing.assert_array_equal(sa.examples.texts[0], sb.examples.texts[0])
        np.testing.assert_array_equal(sa.examples.labels, sb.examples.labels)
        np.testing.assert_array_equal(sa.p_star, sb.p_star)
        np.testing.assert_array_equal(sa.teacher_probs, sb.teacher_probs)
    c = make_synthetic_task(noise=0.3, seed=22, **SMALL)
    assert list(c.train.examples.texts[0]) != list(a.train.examples.texts[0])
    assert c.config["evidence_words"] != a.config["evidence_words"]


def test_teacher_bias_and_other_splits_do_not_change_the_data():
    a = make_synthetic_task(seed=4, **SMALL)
    b = make_synthetic_task(num_train=100, num_validation=400, num_test=50, seed=4,
                            overconfidence=1.7, prior_shift=0.5, noise=1.0)
    np.testing.assert_array_equal(a.validation.examples.texts[0], b.validation.examples.texts[0])
    np.testing.assert_array_equal(a.validation.examples.labels, b.validation.examples.labels)
    np.testing.assert_array_equal(a.train.p_star[:100], b.train.p_star)
    np.testing.assert_array_equal(a.train.examples.labels[:100], b.train.examples.labels)


# -- examples, vocabulary, config ---------------------------------------------

def test_examples_fields(task):
    for name, split, n in (("train", task.train, 3000), ("validation", task.validation, 400),
                           ("test", task.test, 400)):
        ex = split.examples
        assert len(ex) == n == len(split)
        assert ex.ids[0] == f"synthetic/{name}/000000"
        assert ex.ids[-1] == f"synthetic/{name}/{n - 1:06d}"
        assert len(set(ex.ids.tolist())) == n
        assert len(ex.texts) == 1
        assert ex.class_names == ("class_0", "class_1")
        lengths = [len(s.split(" ")) for s in ex.texts[0]]
        assert min(lengths) >= 4 and max(lengths) <= 20
        assert len(set(lengths)) > 10  # lengths really vary


def test_vocabulary_covers_all_words_and_is_bert_compatible(task):
    vocab = task.vocabulary
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(vocab) == len(set(vocab)) == task.config["vocabulary_size"] + 5
    words = vocab[5:]
    assert all(re.fullmatch(r"[a-z]+", w) for w in words)
    assert {"not", "never"} <= set(words)
    assert set(task.config["evidence_words"]) <= set(words)
    used = {w for split in all_splits(task) for s in split.examples.texts[0] for w in s.split(" ")}
    assert used <= set(words)


def test_bert_tokenizer_maps_every_word_to_one_token(task):
    keras_hub = pytest.importorskip("keras_hub")
    tok = keras_hub.models.BertTokenizer(vocabulary=task.vocabulary)
    index = {w: i for i, w in enumerate(task.vocabulary)}
    sentences = list(task.validation.examples.texts[0])
    ids = tok(sentences)
    ids = ids.to_list() if hasattr(ids, "to_list") else [list(np.asarray(r)) for r in ids]
    for sentence, row in zip(sentences, ids):
        assert [int(i) for i in row] == [index[w] for w in sentence.split(" ")]
    # every word of the vocabulary on its own is exactly one (non-UNK) token
    single = tok(task.vocabulary[5:])
    single = single.to_list() if hasattr(single, "to_list") else [list(np.asarray(r)) for r in single]
    assert [[int(i) for i in r] for r in single] == [[index[w]] for w in task.vocabulary[5:]]


def test_config_is_json_and_complete(task):
    cfg = json.loads(json.dumps(task.config))
    for key in ("seed", "num_train", "num_validation", "num_test", "num_classes",
                "vocabulary_size", "overconfidence", "prior_shift", "prior_shift_class",
                "noise", "negation_rate", "evidence_weights", "prior_logits",
                "min_length", "max_length", "class_names"):
        assert key in cfg
    assert cfg["seed"] == 7 and cfg["num_train"] == 3000


def test_invalid_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        make_synthetic_task(num_classes=1)
    with pytest.raises(ValueError, match="vocabulary_size"):
        make_synthetic_task(vocabulary_size=20)
    with pytest.raises(ValueError, match="num_train"):
        make_synthetic_task(num_train=0)
    with pytest.raises(ValueError, match="prior_shift_class"):
        make_synthetic_task(prior_shift_class=2)


# -- teacher_summary ----------------------------------------------------------

@pytest.mark.parametrize("kwargs", [dict(), dict(num_classes=3, noise=0.7, prior_shift=0.4)])
def test_teacher_summary_against_numpy(kwargs):
    t = make_synthetic_task(seed=13, num_train=500, num_validation=50, num_test=50, **kwargs)
    split = t.train
    pt, ps, y = split.teacher_probs, split.p_star, split.examples.labels
    K = pt.shape[1]
    s = teacher_summary(split)
    onehot = np.zeros_like(pt)
    onehot[np.arange(len(y)), y] = 1
    expected = {
        "num_examples": len(y),
        "teacher_accuracy": np.mean(np.argmax(pt, 1) == y),
        "teacher_tvd_to_labels": np.mean(0.5 * np.sum(np.abs(pt - onehot), 1)),
        "teacher_mse_to_p_star": np.mean(np.sum((pt - ps) ** 2, 1)),
        "teacher_kl_to_p_star": np.mean(np.sum(rel_entr(ps, pt), 1)),
        "teacher_expected_accuracy": np.mean([ps[i, np.argmax(pt[i])] for i in range(len(y))]),
        "teacher_mean_max_prob": np.mean(np.max(pt, 1)),
        "bayes_accuracy": np.mean(np.argmax(ps, 1) == y),
        "bayes_expected_accuracy": np.mean(np.max(ps, 1)),
    }
    for key, value in expected.items():
        assert s[key] == pytest.approx(value, rel=1e-10, abs=1e-12), key
    assert all(isinstance(v, (int, float)) for v in s.values())
    json.dumps(s)
    assert K == t.config["num_classes"]


def test_teacher_summary_ignores_unlabelled_rows():
    t = make_synthetic_task(seed=2, num_train=200, num_validation=20, num_test=20)
    split = t.train
    labels = split.examples.labels.copy()
    split.examples.labels[:50] = -1
    try:
        s = teacher_summary(split)
        keep = slice(50, None)
        assert s["num_labelled"] == 150
        assert s["teacher_accuracy"] == pytest.approx(
            np.mean(split.teacher_probs[keep].argmax(1) == labels[keep]))
        assert s["teacher_mse_to_p_star"] == pytest.approx(
            np.mean(np.sum((split.teacher_probs - split.p_star) ** 2, 1)))
    finally:
        split.examples.labels[:] = labels
