"""The synthetic teacher's K-class biases and their `ptloss-distill` flags.

Golden values come from independent numpy: the true logits are re-parsed
from each text with the rule's statement (`test_synthetic.reference_logits`),
the confusion is written as an explicit K x K matrix acting on them, and
the teacher is `scipy.special.softmax` of the result.
"""

import numpy as np
import pytest
from scipy.special import softmax as sp_softmax

from ptloss_tf.training import preflight
from ptloss_tf.training.config import DistillConfig
from ptloss_tf.training.config import parse_args
from ptloss_tf.training.synthetic import confused_logits
from ptloss_tf.training.synthetic import make_synthetic_task
from tests.training.test_synthetic import reference_logits

SMALL = dict(num_train=600, num_validation=100, num_test=100)


def confusion_matrix(K, c, a, b):
    """The teacher's map of the true logits, as a matrix: l^t = M l."""
    M = np.eye(K)
    M[a, a] = 1.0 - c
    M[b, a] = c
    return M


@pytest.mark.parametrize("K, c, classes, oc, shift, shift_class", [
    (3, 0.4, (1, 2), 1.0, 0.0, 0),
    (3, 0.8, (1, 2), 2.5, 2.0, 0),
    (5, 0.8, (1, 2), 1.5, 1.0, 3),
    (4, 0.5, (3, 0), 1.0, 0.0, 0),
])
def test_confused_teacher_against_numpy(K, c, classes, oc, shift, shift_class):
    t = make_synthetic_task(num_classes=K, seed=17, confusion=c, confusion_classes=classes,
                            overconfidence=oc, prior_shift=shift, prior_shift_class=shift_class,
                            **SMALL)
    M = confusion_matrix(K, c, *classes)
    onehot = np.eye(K)[shift_class]
    for split in (t.train, t.test):
        logits = np.array([reference_logits(x, t.config) for x in split.examples.texts[0]])
        expected = sp_softmax(oc * logits @ M.T + shift * onehot, axis=1)
        np.testing.assert_allclose(split.teacher_probs, expected, rtol=0, atol=1e-12)
        # p* and the labels do not depend on the teacher's bias
        np.testing.assert_allclose(split.p_star, sp_softmax(logits, axis=1), atol=1e-12)
    assert t.config["confusion"] == c and t.config["confusion_classes"] == list(classes)


def test_strong_confusion_turns_class_a_evidence_into_class_b():
    """Past c = K / (2 (K - 1)) the teacher predicts b where p* says a (K = 3: 3/4)."""
    for c, flips in ((0.7, False), (0.8, True)):
        t = make_synthetic_task(num_classes=3, seed=2, confusion=c, overconfidence=1.0,
                                num_train=2000, num_validation=10, num_test=10)
        ps, pt = t.train.p_star, t.train.teacher_probs
        a_rows = ps.argmax(axis=1) == 1
        frac_b = float((pt[a_rows].argmax(axis=1) == 2).mean())
        assert (frac_b > 0.5) == flips, (c, frac_b)
        # class 0's decisions are mostly untouched
        zero = ps.argmax(axis=1) == 0
        assert (pt[zero].argmax(axis=1) == 0).mean() > 0.8


def test_no_confusion_is_the_identity_and_keeps_the_default_teacher():
    logits = np.random.default_rng(0).normal(size=(7, 3))
    np.testing.assert_array_equal(confused_logits(logits, 0.0), logits)
    a = make_synthetic_task(seed=4, **SMALL)  # the two-class default: no confusion
    logits = np.array([reference_logits(x, a.config) for x in a.train.examples.texts[0]])
    np.testing.assert_allclose(a.train.teacher_probs,
                               sp_softmax(2.5 * logits, axis=1), atol=1e-12)
    b = make_synthetic_task(seed=4, confusion=0.0, confusion_classes=(0, 1), **SMALL)
    np.testing.assert_array_equal(a.train.teacher_probs, b.train.teacher_probs)


def test_confused_logits_hand_values():
    out = confused_logits(np.array([[1.0, 2.0, -3.0], [0.0, -1.0, 1.0]]), 0.25, (1, 2))
    np.testing.assert_allclose(out, [[1.0, 1.5, -2.5], [0.0, -0.75, 0.75]])


@pytest.mark.parametrize("kwargs, match", [
    (dict(confusion=1.5, num_classes=3), "confusion must lie in"),
    (dict(confusion=-0.1, num_classes=3), "confusion must lie in"),
    (dict(confusion=0.5), r"confusion_classes \[1, 2\] must lie in \[0, 2\)"),
    (dict(confusion=0.5, num_classes=3, confusion_classes=(1, 1)), "two different"),
    (dict(num_classes=3, prior_shift_class=3), "prior_shift_class"),
])
def test_invalid_biases(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic_task(**SMALL, **kwargs)


def test_flags_parse_and_defaults_keep_the_default_run():
    d = parse_args([])
    assert (d.prior_shift_class, d.teacher_confusion, d.confusion_classes) == (0, 0.0, (1, 2))
    assert d.to_dict()["confusion_classes"] == [1, 2]
    c = parse_args(["--synthetic-classes", "3", "--prior-shift-class", "2",
                    "--teacher-confusion", "0.8", "--confusion-classes", "2", "0"])
    assert (c.prior_shift_class, c.teacher_confusion, c.confusion_classes) == (2, 0.8, (2, 0))
    preflight.check_config(c)
    preflight.check_config(d)


def test_flags_reach_the_task():
    from ptloss_tf.training.teacher.join import synthetic_splits

    config = DistillConfig(synthetic_classes=3, synthetic_train=40, synthetic_validation=10,
                           synthetic_test=10, prior_shift=1.0, prior_shift_class=2,
                           teacher_confusion=0.6, overconfidence=1.0, seed=3)
    splits = synthetic_splits(config)
    task = make_synthetic_task(num_classes=3, num_train=40, num_validation=10, num_test=10,
                               prior_shift=1.0, prior_shift_class=2, confusion=0.6,
                               overconfidence=1.0, seed=3, negation_rate=0.0)
    np.testing.assert_allclose(splits.teacher_probs["train"], task.train.teacher_probs, atol=1e-6)
    assert splits.task_config["confusion"] == 0.6


@pytest.mark.parametrize("argv, message", [
    (["--synthetic-classes", "3", "--prior-shift-class", "3"],
     "--prior-shift-class must lie in [0, 3) (--synthetic-classes is 3), got 3."),
    (["--teacher-confusion", "1.2"], "--teacher-confusion must lie in [0, 1], got 1.2."),
    (["--teacher-confusion", "0.5"],
     "--confusion-classes must be two different classes in [0, 2) (--synthetic-classes "
     "is 2), got 1 2."),
    (["--synthetic-classes", "3", "--teacher-confusion", "0.5", "--confusion-classes", "1",
      "1"], "--confusion-classes must be two different classes in [0, 3) "
            "(--synthetic-classes is 3), got 1 1."),
])
def test_bad_flags_are_one_line_errors(argv, message):
    from ptloss_tf.training.config import cli_message

    with pytest.raises(ValueError) as e:
        preflight.check_config(parse_args(argv))
    assert cli_message(str(e.value)) == message
