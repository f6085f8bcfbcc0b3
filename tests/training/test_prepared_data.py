"""The TensorFlow-free training path: `ptloss-distill prepare` writes tokens,
teacher outputs and the search stage as numpy + JSON; `ptloss-distill
--prepared-data` trains from them through `PreparedBatches` (a
`keras.utils.PyDataset`) on any backend, in a process where TensorFlow
cannot be imported."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ptloss_tf.training.config import DistillConfig
from ptloss_tf.training.config import parse_args
from ptloss_tf.training.data.buckets import plan_batches
from ptloss_tf.training.data.examples import Examples
from ptloss_tf.training.data.prepared_batches import PreparedBatches
from tests.helpers import TINY_RUN
from tests.helpers import vocabulary

HELPERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "helpers")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared tiny synthetic run (in-process) and its config."""
    from ptloss_tf.training.prepare import prepare

    folder = str(tmp_path_factory.mktemp("prepared") / "data")
    config = parse_args([*TINY_RUN, "--loss", "kl", "kl_calibrated", "ptloss",
                         "ptloss_calibrated", "--output-dir", folder])
    manifest = prepare(config.replace(verbose=0))
    return folder, config, manifest


def test_prepared_tokens_are_the_keras_hub_preprocessors(prepared):
    import keras_hub

    from ptloss_tf.training.prepared_data import read_prepared
    from ptloss_tf.training.teacher.join import load_splits

    folder, config, manifest = prepared
    data = read_prepared(folder)
    splits = load_splits(config, log=lambda m: None)
    with open(os.path.join(folder, "vocab.txt")) as f:
        tokens = [line.rstrip("\n") for line in f]
    assert tokens == list(splits.vocabulary)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=tokens, lowercase=True),
        sequence_length=manifest["sequence_length"])
    for split, examples in splits.examples.items():
        reference = preprocessor(list(examples.texts[0]))
        for key in ("token_ids", "segment_ids", "padding_mask"):
            np.testing.assert_array_equal(data.tokens[split][key],
                                          np.asarray(reference[key]).astype(np.int32))
        np.testing.assert_array_equal(data.splits.examples[split].labels, examples.labels)
        np.testing.assert_array_equal(data.splits.examples[split].ids, examples.ids)
        assert list(data.splits.examples[split].texts[0]) == list(examples.texts[0])
        np.testing.assert_array_equal(data.splits.teacher_probs[split],
                                      np.asarray(splits.teacher_probs[split], np.float32))
        np.testing.assert_allclose(data.splits.p_star[split], splits.p_star[split], atol=1e-7)
    # The search stage is the one the files beside it record.
    with open(os.path.join(folder, "coefficients.json")) as f:
        np.testing.assert_array_equal(data.stage.coefficients.values,
                                      np.asarray(json.load(f)["coefficients"]))
    with open(os.path.join(folder, "calibration.json")) as f:
        assert data.stage.calibration.get_config() == json.load(f)
    recal = data.stage.calibration(np.asarray(splits.teacher_probs["test"], np.float64))
    np.testing.assert_allclose(data.stage.calibrated.teacher_probs["test"], recal, atol=1e-6)
    assert data.stage.calibrated_coefficients is not None


def test_sentence_pairs_are_tokenised_as_the_preprocessor_does():
    import keras_hub

    from ptloss_tf.training.data.input_pipeline import tokenize_examples

    tokens = vocabulary(["is", "it", "good", "yes", "no", "film"])
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=tokens, lowercase=True), sequence_length=8)
    first, second = ["is it good", "film", "good good good good"], ["yes", "no no", "film film"]
    examples = Examples(["a", "b", "c"], (first, second), [0, 1, 0], ("no", "yes"))
    reference = preprocessor((first, second), y=None)
    arrays = tokenize_examples(examples, preprocessor)
    for key in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(arrays[key], np.asarray(reference[key]).astype(np.int32))
    assert arrays["segment_ids"][0].tolist() == [0, 0, 0, 0, 0, 1, 1, 0]


def test_read_prepared_refuses_changed_unfinished_or_foreign_directories(prepared, tmp_path):
    import shutil

    from ptloss_tf.training.prepared_data import read_prepared

    folder = str(tmp_path / "copy")
    shutil.copytree(prepared[0], folder)
    with open(os.path.join(folder, "test.npz"), "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="test.npz changed since `prepare` wrote it"):
        read_prepared(folder)
    manifest = json.loads(open(os.path.join(folder, "prepared.json")).read())
    manifest["version"] = 99
    open(os.path.join(folder, "prepared.json"), "w").write(json.dumps(manifest))
    with pytest.raises(ValueError, match="version 99; this ptloss-tf reads"):
        read_prepared(folder)
    os.unlink(os.path.join(folder, "prepared.json"))
    with pytest.raises(ValueError, match="did not finish"):
        read_prepared(folder)
    with pytest.raises(ValueError, match="not found"):
        read_prepared(str(tmp_path / "absent"))


def test_the_prepared_data_fixes_the_data_options(prepared):
    from ptloss_tf.training.prepared_data import read_prepared

    folder, config, _ = prepared
    data = read_prepared(folder)
    # Defaults take the prepared values; training options stay the run's.
    merged = data.training_config(DistillConfig(prepared_data=folder, epochs=4, seed=3))
    assert (merged.synthetic_train, merged.order, merged.candidates) == (160, 2, 8)
    assert (merged.epochs, merged.seed) == (4, 3)
    with pytest.raises(ValueError, match="`sequence_length` is fixed by the prepared data"):
        data.training_config(DistillConfig(prepared_data=folder, sequence_length=64))


def test_a_method_the_prepared_data_cannot_serve_is_refused(tmp_path):
    from ptloss_tf.training.distill import run
    from ptloss_tf.training.prepare import prepare

    folder = str(tmp_path / "kl_only")
    prepare(parse_args([*TINY_RUN, "--loss", "kl", "--output-dir", folder]))
    assert not os.path.exists(os.path.join(folder, "coefficients.json"))
    with pytest.raises(ValueError, match="has no coefficients for ptloss: prepare it with"):
        run(DistillConfig(prepared_data=folder, loss=("kl", "ptloss"),
                          output_dir=str(tmp_path / "run")))
    assert not os.path.exists(tmp_path / "run")
    with pytest.raises(ValueError, match="not empty and holds prepared data"):
        prepare(parse_args([*TINY_RUN, "--loss", "kl", "--output-dir", folder]))


def test_bucket_plan_is_tf_data_group_by_window():
    """`plan_batches` against `tf.data`'s `group_by_window` in the project's
    pipeline, on an unshuffled stream: the same batches in the same order."""
    from ptloss_tf.training.data.input_pipeline import make_dataset
    import keras_hub

    rng = np.random.default_rng(0)
    words = ["w%d" % i for i in range(20)]
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 30))) for _ in range(157)]
    examples = Examples([str(i) for i in range(157)], (texts,), np.zeros(157), ("a", "b"))
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=vocabulary(words), lowercase=True),
        sequence_length=24)
    boundaries = [8, 16, 24]
    ds = make_dataset(examples, preprocessor, 10, targets={"row": np.arange(157)},
                      bucket_boundaries=boundaries, static_shapes=True)
    tf_batches = [(y["row"].numpy().tolist(), x["token_ids"].shape[1]) for x, y in ds]
    lengths = np.minimum([len(t.split()) + 2 for t in texts], 24)
    batches, widths = plan_batches(np.arange(157), lengths, boundaries, 10)
    assert [(b.tolist(), w) for b, w in zip(batches, widths)] == tf_batches


def test_prepared_batches_reshuffle_every_epoch_and_pad_to_their_bucket():
    n, length = 53, 16
    rng = np.random.default_rng(1)
    lengths = rng.integers(3, length + 1, size=n)
    ids = np.zeros((n, length), np.int32)
    for i, k in enumerate(lengths):
        ids[i, :k] = 7
    inputs = {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": (ids > 0).astype(np.int32)}
    batches = PreparedBatches(inputs, {"row": np.arange(n)}, batch_size=8, shuffle=True, seed=5,
                              bucket_boundaries=[8, 16])
    epochs = []
    for _ in range(2):
        rows = []
        for i in range(len(batches)):
            x, y = batches[i]
            width = x["token_ids"].shape[1]
            assert width in (8, 16) and (lengths[y["row"]] <= width).all()
            if width == 16:
                assert (lengths[y["row"]] > 8).all()
            rows += y["row"].tolist()
        assert sorted(rows) == list(range(n))  # every example once per epoch
        epochs.append(rows)
        batches.on_epoch_end()
    assert epochs[0] != epochs[1]
    expected = sum(-(-int(c) // 8) for c in np.bincount((lengths > 8).astype(int)))
    assert len(batches) == expected
    # A fit resumed at epoch 1 (a new process) sees epoch 1's order, not epoch 0's.
    resumed = PreparedBatches(inputs, {"row": np.arange(n)}, batch_size=8, shuffle=True, seed=5,
                              bucket_boundaries=[8, 16])
    resumed.set_epoch(1)
    assert sum((resumed[i][1]["row"].tolist() for i in range(len(resumed))), []) == epochs[1]


def test_training_on_prepared_batches_equals_tf_data_with_the_same_batches():
    """Same weights, same batches (unshuffled, unbucketed): a Distiller epoch
    on `PreparedBatches` ends where the `tf.data` pipeline's does."""
    import keras

    import ptloss_tf
    from ptloss_tf.training.data.input_pipeline import make_dataset
    from ptloss_tf.training.data.input_pipeline import tokenize_examples
    from ptloss_tf.training.methods import make_loss
    from ptloss_tf.training.student import build_classifier

    rng = np.random.default_rng(2)
    words = ["good", "bad", "fine", "dull", "great", "awful"]
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 7))) for _ in range(70)]
    probs = rng.dirichlet([1.0, 1.0], size=70).astype(np.float32)
    examples = Examples([str(i) for i in range(70)], (texts,), rng.integers(0, 2, 70),
                        ("neg", "pos"))
    targets = {"teacher_probs": probs, "labels": examples.labels.astype(np.int32)}
    weights = None
    final = {}
    for source in ("tf.data", "prepared"):
        student, preprocessor = build_classifier(
            2, sequence_length=12, vocabulary=vocabulary(words), num_layers=1, hidden_dim=8,
            num_heads=2, intermediate_dim=16, dropout=0.0, seed=0)
        if weights is None:
            weights = student.get_weights()
        student.set_weights(weights)
        if source == "tf.data":
            data = make_dataset(examples, preprocessor, 16, targets=targets)
        else:
            data = PreparedBatches(tokenize_examples(examples, preprocessor), targets, 16)
        distiller = ptloss_tf.Distiller(student)
        distiller.compile(optimizer=keras.optimizers.SGD(0.5),
                          distillation_loss=make_loss("ptloss", 2, coefficients=[[1.0, 0.5]]),
                          jit_compile=False)
        history = distiller.fit(data, epochs=2, verbose=0, shuffle=False)
        final[source] = (student.get_weights(), history.history["loss"])
    assert not np.allclose(final["prepared"][0][0], weights[0])  # training moved it
    for a, b in zip(final["tf.data"][0], final["prepared"][0]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(final["tf.data"][1], final["prepared"][1], atol=1e-5)


@pytest.mark.slow  # subprocesses: prepare, a JAX run without TensorFlow, an export
def test_a_run_without_tensorflow_trains_evaluates_and_exports(tmp_path):
    import jax  # noqa: F401  (the test extra installs it: a missing JAX fails, never skips)
    import keras

    folder, run = tmp_path / "prepared", tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    step = subprocess.run([sys.executable, "-m", "ptloss_tf.training", "prepare", *TINY_RUN,
                           "--loss", "kl", "ptloss", "--output-dir", str(folder)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert step.returncode == 0, step.stderr[-3000:]
    step = subprocess.run([sys.executable, os.path.join(HELPERS, "without_tensorflow.py"),
                           "--prepared-data", str(folder), "--loss", "kl", "ptloss",
                           "--epochs", "2", "--verbose", "2", "--output-dir", str(run)],
                          capture_output=True, text=True,
                          env=dict(env, KERAS_BACKEND="jax"), timeout=900)
    assert step.returncode == 0, step.stdout[-2000:] + step.stderr[-3000:]
    assert "TENSORFLOW_BLOCKED_IMPORTS=" in step.stdout  # the blocker was in place
    report = json.loads((run / "report.json").read_text())
    assert report["hardware"]["keras_backend"] == "jax"
    assert [r["method"] for r in report["results"]] == ["kl", "ptloss"]
    assert report["prepared_data"] == str(folder)
    assert json.loads((run / "coefficients.json").read_text()) == json.loads(
        (folder / "coefficients.json").read_text())
    # The reported accuracy is the saved student's on the prepared test tokens.
    test = np.load(folder / "test.npz")
    student = keras.saving.load_model(run / "ptloss" / "student.keras", compile=False)
    logits = student.predict({k: test[k] for k in ("token_ids", "segment_ids", "padding_mask")},
                             verbose=0)
    ptloss = report["results"][1]
    assert float(np.mean(logits.argmax(1) == test["labels"])) == pytest.approx(
        ptloss["accuracy"], abs=1e-6)
    # ptloss-export finds the tokenizer the run recorded and verifies the export.
    step = subprocess.run([sys.executable, "-m", "ptloss_tf.export",
                           str(run / "ptloss" / "student.keras"), "--base-path",
                           str(tmp_path / "serving"), "--name", "model"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert step.returncode == 0, step.stdout[-2000:] + step.stderr[-2000:]
    assert "PASSED" in step.stdout
