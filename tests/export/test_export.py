"""`ptloss-export`: SavedModel export, server-like verification, predict."""

import hashlib
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ptloss_tf.export import metadata as md
from ptloss_tf.export.cli import main
from ptloss_tf.export.models_config import parse_models_config
from ptloss_tf.export.serving_requests import read_warmup_records
from ptloss_tf.training.student import build_classifier
from tests.helpers import vocabulary

pytestmark = pytest.mark.slow  # end-to-end / subprocess runs

VOCAB = vocabulary(["good", "bad", "movie", "not", "a", "the", "plot", "film"])


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    student = run_dir / "ptloss" / "student.keras"
    assert main([str(student), "--base-path", str(base), "--name", "synthetic"]) == 0
    return base, base / "synthetic" / "1", student


def _tree_digest(path):
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                digest.update(name.encode() + f.read())
    return digest.hexdigest()


def test_layout_and_metadata_come_from_the_run(run_dir, exported):
    base, version, _ = exported
    assert sorted(os.listdir(base / "synthetic")) == ["1", "models.config"]
    assert (version / "saved_model.pb").is_file()
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    report = json.loads((run_dir / "report.json").read_text())
    meta = md.read_metadata(version)
    assert meta["class_names"] == report["class_names"]
    assert meta["coefficients"] == report["coefficients"]
    assert meta["training"]["method"] == "ptloss"
    assert meta["training"]["result"]["accuracy"] == report["results"][0]["accuracy"]
    assert meta["sequence_length"] == 32
    assert meta["text_inputs"] == ["text"]
    from ptloss_tf.training.synthetic import make_synthetic_task

    vocabulary = make_synthetic_task(num_train=160, num_validation=80, num_test=80).vocabulary
    assert meta["tokenizer"]["vocabulary_sha256"] == hashlib.sha256(
        "\n".join(vocabulary).encode()).hexdigest()
    samples = json.loads((run_dir / "samples.json").read_text())
    assert meta["reference"]["texts"] == samples["texts"]
    # Only the student is exported: its parameter count, not a teacher's.
    student = keras.saving.load_model(run_dir / "ptloss" / "student.keras", compile=False)
    assert meta["student"]["parameters"] == student.count_params()


def test_saved_model_matches_keras_student_on_raw_text(run_dir, exported):
    _, version, student_path = exported
    samples = json.loads((run_dir / "samples.json").read_text())
    texts = [row[0] for row in samples["texts"]]
    student = keras.saving.load_model(student_path, compile=False)
    logits = np.asarray(student.predict(np.asarray(texts), verbose=0), np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    serving = tf.saved_model.load(str(version)).signatures["serving_default"]
    out = serving(text=tf.constant(texts))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    names = md.read_metadata(version)["class_names"]
    assert [x.decode() for x in out["label"].numpy()] == [names[i] for i in expected.argmax(1)]
    assert out["label_id"].dtype == tf.int32


def test_warmup_records_are_prediction_logs_of_the_samples(run_dir, exported):
    _, version, _ = exported
    logs = read_warmup_records(str(version / "assets.extra" / "tf_serving_warmup_requests"))
    samples = json.loads((run_dir / "samples.json").read_text())["texts"]
    signatures = [log.predict_log.request.model_spec.signature_name for log in logs]
    assert signatures == ["serving_default", "serving_default", "predict_token_ids"]
    texts = tf.make_ndarray(logs[1].predict_log.request.inputs["text"])
    assert [t.decode() for t in texts] == [row[0] for row in samples]
    assert logs[0].predict_log.request.model_spec.name == "synthetic"
    token_ids = tf.make_ndarray(logs[2].predict_log.request.inputs["token_ids"])
    assert token_ids.shape == (len(samples), 32) and token_ids.dtype == np.int32


def test_models_config_parses_as_model_server_config(exported, tmp_path):
    base, _, student = exported
    config = parse_models_config((base / "synthetic" / "models.config").read_text())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == (
        "synthetic", str(base / "synthetic"), "tensorflow")
    assert main([str(student), "--base-path", str(tmp_path), "--name", "m",
                 "--serving-base-path", "/models", "--no-verify"]) == 0
    config = parse_models_config((tmp_path / "m" / "models.config").read_text())
    assert config.model_config_list.config[0].base_path == "/models/m"


def test_verify_passes_and_writes_rest_and_grpc_requests(exported, tmp_path, capsys):
    _, version, _ = exported
    requests = tmp_path / "requests"
    assert main(["verify", str(version), "--requests-dir", str(requests)]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "FAIL" not in out
    assert "no keras / keras-hub / project module imported" in out
    row = json.loads((requests / "rest_row.json").read_text())
    columnar = json.loads((requests / "rest_columnar.json").read_text())
    texts = md.read_metadata(version)["reference"]["texts"]
    assert row["instances"] == [{"text": t[0]} for t in texts]
    assert columnar["inputs"] == {"text": [t[0] for t in texts]}
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest.FromString((requests / "grpc_predict_request.pb").read_bytes())
    assert request.model_spec.signature_name == "serving_default"
    assert [t.decode() for t in tf.make_ndarray(request.inputs["text"])] == [t[0] for t in texts]


def test_verify_fails_against_a_different_student(exported, tmp_path, capsys):
    _, version, student_path = exported
    other = keras.saving.load_model(student_path, compile=False)
    head = other.output_dense
    kernel, bias = head.get_weights()
    head.set_weights([kernel, bias + np.array([2.0, -2.0], np.float32)])
    other.save(tmp_path / "other.keras")
    assert main(["verify", str(version), "--student", str(tmp_path / "other.keras")]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] serving_default on sample text" in out and "FAILED" in out


def test_verify_reports_a_corrupted_saved_model(exported, tmp_path, capsys):
    import shutil

    _, version, _ = exported
    broken = tmp_path / "7"
    shutil.copytree(version, broken)
    (broken / "saved_model.pb").write_bytes(b"not a protobuf at all")
    assert main(["verify", str(broken)]) == 1
    assert "[FAIL] load without keras" in capsys.readouterr().out
    (broken / "saved_model.pb").unlink()
    assert main(["verify", str(broken)]) == 2
    assert "no saved_model.pb" in capsys.readouterr().err


def test_versions_increment_and_are_never_overwritten(exported, capsys):
    base, version, student = exported
    before = _tree_digest(version)
    assert main([str(student), "--base-path", str(base), "--name", "synthetic",
                 "--no-verify"]) == 0
    assert (base / "synthetic" / "2" / "saved_model.pb").is_file()
    assert main([str(student), "--base-path", str(base), "--name", "synthetic",
                 "--version", "1", "--no-verify"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert _tree_digest(version) == before


def test_failure_mid_export_leaves_no_version(exported, tmp_path, monkeypatch):
    import ptloss_tf.export.serving_requests as requests

    _, _, student = exported

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(requests, "write_warmup_records", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        main([str(student), "--base-path", str(tmp_path), "--name", "m", "--no-verify"])
    assert os.listdir(tmp_path / "m") == []


def _pair_student(tmp_path, with_preprocessor=True):
    model, pre = build_classifier(3, sequence_length=16, vocabulary=VOCAB, num_layers=1,
                                  hidden_dim=8, num_heads=2, intermediate_dim=16, seed=3)
    if with_preprocessor:
        model.preprocessor = pre
    path = tmp_path / "pair.keras"
    model.save(path)
    return path, model, pre


def test_pair_task_export_feeds_both_segments(tmp_path, capsys):
    path, model, pre = _pair_student(tmp_path)
    samples = tmp_path / "samples.txt"
    samples.write_text("good movie\tnot bad\nthe plot\ta film\nbad\tgood good\n")
    assert main([str(path), "--base-path", str(tmp_path / "serving"), "--name", "nli",
                 "--pair", "--class-names", "entailment", "neutral", "contradiction",
                 "--samples", str(samples)]) == 0
    assert "PASSED" in capsys.readouterr().out
    serving = tf.saved_model.load(str(tmp_path / "serving" / "nli" / "1")).signatures[
        "serving_default"]
    out = serving(text_a=tf.constant(["good movie"]), text_b=tf.constant(["not bad"]))
    # Independent token ids: [CLS] good movie [SEP] not bad [SEP], padded.
    ids = {t: i for i, t in enumerate(VOCAB)}
    tokens = ["[CLS]", "good", "movie", "[SEP]", "not", "bad", "[SEP]"]
    token_ids = np.zeros((1, 16), np.int32)
    token_ids[0, :7] = [ids[t] for t in tokens]
    segment_ids = np.zeros((1, 16), np.int32)
    segment_ids[0, 4:7] = 1
    mask = token_ids != 0
    logits = np.asarray(model({"token_ids": token_ids, "segment_ids": segment_ids,
                               "padding_mask": mask}), np.float64)
    np.testing.assert_allclose(out["logits"].numpy(), logits, atol=1e-5)


def test_predict_writes_teacher_outputs_equal_to_keras(exported, tmp_path):
    from ptloss_tf.training.teacher.outputs import TeacherOutputs

    _, version, student_path = exported
    texts = md.read_metadata(version)["reference"]["texts"]
    data = tmp_path / "in.tsv"
    data.write_text("sentence\n" + "".join(t[0] + "\n" for t in texts))
    out = tmp_path / "scores.jsonl"
    assert main(["predict", str(version), "--input", str(data), "--output", str(out),
                 "--split", "test", "--batch-size", "3"]) == 0
    scores = TeacherOutputs.load(str(out))
    student = keras.saving.load_model(student_path, compile=False)
    expected = student.predict(np.asarray([t[0] for t in texts]), verbose=0)
    np.testing.assert_allclose(scores.values, expected, atol=1e-5)
    assert scores.kind == "logits" and scores.split == "test"
    assert scores.ids.tolist() == [f"in/{i:06d}" for i in range(len(texts))]
    assert main(["predict", str(version), "--input", str(data), "--output", str(out)]) == 2


@pytest.mark.parametrize("case, message", [
    ("missing", "student file not found"),
    ("not_zip", "not a .keras model archive"),
    ("not_classifier", "not a keras-hub text classifier"),
    ("class_count", "2 class names"),
    ("no_class_names", "pass --class-names"),
    ("no_preprocessor", "saved without a preprocessor"),
    ("wrong_vocabulary", "mismatched vocabulary"),
    ("base_is_file", "is a file"),
    ("base_under_file", "cannot create"),
    ("bad_name", "--name"),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, capsys, case, message):
    path, _, _ = _pair_student(tmp_path, with_preprocessor=case != "no_preprocessor")
    base = tmp_path / "serving"
    args = [str(path), "--base-path", str(base), "--name", "m", "--no-verify", "--pair",
            "--class-names", "a", "b", "c"]
    if case == "missing":
        args[0] = str(tmp_path / "nope.keras")
    elif case == "not_zip":
        (tmp_path / "x.keras").write_text("hello")
        args[0] = str(tmp_path / "x.keras")
    elif case == "not_classifier":
        plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        plain.save(tmp_path / "plain.keras")
        args[0] = str(tmp_path / "plain.keras")
    elif case == "class_count":
        args = args[:-4] + ["--class-names", "a", "b"]
    elif case == "no_class_names":
        args = args[:-4]
    elif case == "wrong_vocabulary":
        (tmp_path / "vocab.txt").write_text("\n".join(VOCAB + ["extra"]) + "\n")
        path2, _, _ = _pair_student(tmp_path, with_preprocessor=False)
        args[0] = str(path2)
        args += ["--vocabulary", str(tmp_path / "vocab.txt"), "--sequence-length", "16"]
    elif case == "base_is_file":
        base.write_text("")
    elif case == "base_under_file":
        (tmp_path / "f").write_text("")
        args[2] = str(tmp_path / "f" / "serving")
    elif case == "bad_name":
        args[4] = "../escape"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    if base.is_dir():
        assert not any((base / "m").glob("[0-9]*")) if (base / "m").exists() else True


def test_signatures_run_the_classifier_on_the_longest_row_only():
    from ptloss_tf.export.signatures import make_signatures

    keras.utils.set_random_seed(0)
    model, pre = build_classifier(2, sequence_length=16, vocabulary=VOCAB, num_layers=1,
                                  hidden_dim=8, num_heads=2, intermediate_dim=16)
    seen = []

    def recording(inputs, training=False):
        seen.append(tuple(inputs["token_ids"].shape))
        return model(inputs, training=training)

    signatures = make_signatures(recording, pre, ["neg", "pos"], num_segments=1)
    out = signatures["serving_default"][0](tf.constant(["good movie", "not a good plot"]))
    # [CLS] not a good plot [SEP]: 6 columns of the 16 the preprocessor pads to.
    assert seen[-1] == (2, 6)
    full = model.predict(pre(["good movie", "not a good plot"]), verbose=0)
    np.testing.assert_allclose(out["logits"].numpy(), full, atol=1e-5)
    ids = pre(["good"])
    padded = {k: tf.cast(v, tf.int32) for k, v in ids.items()}
    out = signatures["predict_token_ids"][0](**padded)
    assert seen[-1] == (1, 3)
    np.testing.assert_allclose(out["logits"].numpy(), model.predict(ids, verbose=0), atol=1e-5)
