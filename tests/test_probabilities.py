"""`ptloss_tf.probabilities`, against scipy (`special.softmax`, `stats.entropy`)."""

import ast

import numpy as np
import pytest
from scipy.special import softmax as scipy_softmax
from scipy.stats import entropy

from ptloss_tf import probabilities
from ptloss_tf import validation


@pytest.fixture
def data(rng):
    logits = rng.normal(scale=3.0, size=(50, 4))
    probs = rng.dirichlet(np.ones(4), size=50)
    p_star = rng.dirichlet(np.ones(4), size=50)
    labels = rng.integers(0, 4, size=50)
    return logits, probs, p_star, labels


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_equals_scipy(data, axis):
    logits = data[0]
    out = probabilities.softmax(logits, axis=axis)
    np.testing.assert_allclose(out, scipy_softmax(logits, axis=axis), rtol=1e-12)
    np.testing.assert_allclose(out.sum(axis=axis), 1.0, rtol=1e-12)


def test_softmax_is_stable_and_float64():
    logits = np.array([[1e4, 1e4 - 1.0, -1e4]], dtype=np.float32)
    out = probabilities.softmax(logits)
    assert out.dtype == np.float64
    assert np.all(np.isfinite(out))
    e = np.exp(-1.0)
    np.testing.assert_allclose(out, [[1 / (1 + e), e / (1 + e), 0.0]], rtol=1e-12)
    # A shift of every logit changes nothing.
    np.testing.assert_allclose(
        probabilities.softmax(logits.astype(np.float64) - 5.0), out, rtol=1e-12
    )


def test_distance_to_p_star_equals_scipy_entropy(data):
    _, probs, p_star, _ = data
    d = probabilities.distance_to_p_star(probs, p_star)
    assert set(d) == {"kl_to_p_star", "mse_to_p_star"}
    # scipy.stats.entropy(pk, qk) = sum pk log(pk / qk) = KL(p* || probs).
    assert d["kl_to_p_star"] == pytest.approx(
        np.mean(entropy(p_star, probs, axis=1)), rel=1e-12
    )
    mse = np.mean([sum((a - b) ** 2 for a, b in zip(r, s)) for r, s in zip(probs, p_star)])
    assert d["mse_to_p_star"] == pytest.approx(mse, rel=1e-12)


def test_distance_with_zero_probabilities():
    # p*_k = 0 terms vanish (0 log 0 = 0, as scipy's entropy has it); a zero
    # in probs where p* is positive is floored at 1e-12, not inf.
    p_star = np.array([[0.0, 1.0], [0.5, 0.5]])
    probs = np.array([[0.3, 0.7], [1.0, 0.0]])
    d = probabilities.distance_to_p_star(probs, p_star)
    expected = np.mean([entropy([0.0, 1.0], [0.3, 0.7]),
                        0.5 * np.log(0.5 / 1.0) + 0.5 * np.log(0.5 / 1e-12)])
    assert d["kl_to_p_star"] == pytest.approx(expected, rel=1e-12)
    assert d["mse_to_p_star"] == pytest.approx((2 * 0.3**2 + 2 * 0.5**2) / 2)


def test_teacher_statistics_without_p_star(data):
    _, probs, _, labels = data
    s = probabilities.teacher_statistics(probs, labels)
    assert list(s) == ["accuracy", "tvd_to_labels"]
    correct = [int(np.argmax(r) == y) for r, y in zip(probs, labels)]
    assert s["accuracy"] == pytest.approx(np.mean(correct))
    # For normalised rows, 0.5 * ||p - onehot(y)||_1 = 1 - p_y.
    assert s["tvd_to_labels"] == pytest.approx(
        np.mean(1.0 - probs[np.arange(len(labels)), labels]), rel=1e-12
    )


def test_teacher_statistics_with_p_star(data):
    _, probs, p_star, labels = data
    s = probabilities.teacher_statistics(probs, labels, p_star=p_star)
    assert list(s) == [
        "accuracy", "tvd_to_labels", "kl_to_p_star", "mse_to_p_star", "bayes_accuracy",
    ]
    assert s["kl_to_p_star"] == pytest.approx(np.mean(entropy(p_star, probs, axis=1)))
    assert s["bayes_accuracy"] == pytest.approx(
        np.mean([int(np.argmax(r) == y) for r, y in zip(p_star, labels)])
    )


def test_teacher_statistics_errors(data):
    _, probs, p_star, labels = data
    with pytest.raises(ValueError, match="labels"):
        probabilities.teacher_statistics(probs, labels[:-1])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        probabilities.teacher_statistics(probs, labels + 4)
    with pytest.raises(ValueError, match="same shape"):
        probabilities.teacher_statistics(probs, labels, p_star=p_star[:, :3])
    with pytest.raises(ValueError, match="num_classes"):
        probabilities.teacher_statistics(probs[0], labels)


def _imported_modules(path):
    tree = ast.parse(open(path).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    return names


def test_module_imports_numpy_only():
    # `import ptloss_tf` itself loads Keras; the module (and the validation
    # helpers it uses) must not, so analysis scripts can copy or vendor it.
    assert _imported_modules(probabilities.__file__) == {"numpy", "ptloss_tf.validation"}
    assert _imported_modules(validation.__file__) == {"numpy"}
