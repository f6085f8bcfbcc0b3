"""Sentence-pair models are never exported as single-text (issue 12, item 3).

keras-hub's preprocessor packs whatever number of segments each call passes,
so a pair model cannot say it is one: the count comes from the run's files
(`report.json` of a student, `teacher_run.json` of a teacher) or the caller,
a contradiction between them is refused, no information at all is refused,
and `verify` checks the exported inputs against the run.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from ptloss_tf.export import metadata as md
from ptloss_tf.export.cli import main
from ptloss_tf.training.student import build_classifier
from tests.helpers import vocabulary

pytestmark = pytest.mark.slow  # exports (tracing) and verification subprocesses

VOCAB = vocabulary(["good", "bad", "movie", "not", "a", "the", "plot", "film"])
CLASSES = ["entailment", "neutral", "contradiction"]


def _save_pair_model(path):
    """A tiny keras-hub BERT classifier with its preprocessor, saved to `path`."""
    model, pre = build_classifier(3, sequence_length=16, vocabulary=VOCAB, num_layers=1,
                                  hidden_dim=8, num_heads=2, intermediate_dim=16, seed=5)
    model.preprocessor = pre
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save(path)
    return model


def _pair_logits(model, text_a, text_b):
    """Independent token ids of `[CLS] a [SEP] b [SEP]` (whitespace words of
    VOCAB), fed to the Keras classifier."""
    ids = {t: i for i, t in enumerate(VOCAB)}
    a, b = text_a.split(), text_b.split()
    tokens = ["[CLS]", *a, "[SEP]", *b, "[SEP]"]
    token_ids = np.zeros((1, 16), np.int32)
    token_ids[0, :len(tokens)] = [ids[t] for t in tokens]
    segment_ids = np.zeros((1, 16), np.int32)
    segment_ids[0, len(a) + 2:len(tokens)] = 1
    return np.asarray(model({"token_ids": token_ids, "segment_ids": segment_ids,
                             "padding_mask": token_ids != 0}), np.float64)


def _nothing_written(model_dir):
    return not model_dir.exists() or not any(
        p.name.isdigit() or p.name == "models.config" for p in model_dir.iterdir())


def test_pair_model_without_run_files_or_flag_is_refused(tmp_path, capsys):
    # Before: exported as a single-text model (input `text`), exit 0, and
    # verify passed every check.
    path = tmp_path / "pair.keras"
    _save_pair_model(str(path))
    base = tmp_path / "serving"
    assert main([str(path), "--base-path", str(base), "--name", "nli",
                 "--class-names", *CLASSES, "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ptloss-export: error: ")
    assert "--pair" in err and "--num-segments 1" in err
    assert _nothing_written(base / "nli")


def test_teacher_run_record_makes_a_pair_export_without_flags(tmp_path, capsys):
    # A teacher directory whose teacher_run.json records the text fields
    # (and the class names) exports as a pair model with no flag at all.
    teacher_dir = tmp_path / "teacher"
    model = _save_pair_model(str(teacher_dir / "teacher.keras"))
    (teacher_dir / "teacher_run.json").write_text(json.dumps(
        {"text_fields": ["premise", "hypothesis"], "class_names": CLASSES}))
    base = tmp_path / "serving"
    assert main([str(teacher_dir / "teacher.keras"), "--base-path", str(base),
                 "--name", "nli", "--no-verify"]) == 0
    meta = md.read_metadata(base / "nli" / "1")
    assert meta["text_inputs"] == ["text_a", "text_b"] and meta["num_segments"] == 2
    assert meta["num_segments_from"] == str(teacher_dir / "teacher_run.json")
    assert meta["class_names"] == CLASSES
    serving = tf.saved_model.load(str(base / "nli" / "1")).signatures["serving_default"]
    assert sorted(serving.structured_input_signature[1]) == ["text_a", "text_b"]
    out = serving(text_a=tf.constant(["good movie"]), text_b=tf.constant(["not bad"]))
    np.testing.assert_allclose(out["logits"].numpy(), _pair_logits(model, "good movie", "not bad"),
                               atol=1e-5)
    # A contradicting flag is refused, naming the record.
    assert main([str(teacher_dir / "teacher.keras"), "--base-path", str(base), "--name", "nli",
                 "--num-segments", "1", "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert "teacher_run.json records" in err and err.count("\n") == 1
    assert sorted(os.listdir(base / "nli")) == ["1", "models.config"]


def test_student_of_a_pair_run_exports_as_pair_and_verifies(tmp_path, capsys):
    run = tmp_path / "run"
    _save_pair_model(str(run / "ptloss" / "student.keras"))
    (run / "report.json").write_text(json.dumps(
        {"task": "file", "class_names": CLASSES, "num_segments": 2, "results": []}))
    base = tmp_path / "serving"
    assert main([str(run / "ptloss" / "student.keras"), "--base-path", str(base),
                 "--name", "nli"]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out
    assert "[PASS] text inputs = segments the model was trained on: 2 text input(s)" in out
    assert md.read_metadata(base / "nli" / "1")["text_inputs"] == ["text_a", "text_b"]


def test_pair_flag_on_a_single_text_run_is_refused(tiny_run, tmp_path, capsys):
    # Before: --pair won over report.json's num_segments 1 and a pair model
    # was exported from a single-text student, exit 0.
    base = tmp_path / "serving"
    student = tiny_run / "ptloss" / "student.keras"
    assert main([str(student), "--base-path", str(base), "--name", "m", "--pair",
                 "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--num-segments 2 given" in err and "report.json records" in err
    assert "trained on 1 text segment(s)" in err
    assert _nothing_written(base / "m")
    assert main([str(student), "--base-path", str(base), "--name", "m", "--pair",
                 "--num-segments", "1", "--no-verify"]) == 2
    assert "--pair contradicts --num-segments 1" in capsys.readouterr().err


def test_verify_fails_an_export_that_contradicts_the_run(tmp_path, capsys):
    # An export that takes one text while the run trained on pairs (as every
    # export of a pair model without --pair did before) fails verify.
    run = tmp_path / "run"
    student = run / "ptloss" / "student.keras"
    _save_pair_model(str(student))
    report = {"task": "file", "class_names": CLASSES, "num_segments": 1, "results": []}
    (run / "report.json").write_text(json.dumps(report))
    base = tmp_path / "serving"
    assert main([str(student), "--base-path", str(base), "--name", "nli", "--no-verify"]) == 0
    report["num_segments"] = 2
    (run / "report.json").write_text(json.dumps(report))
    assert main(["verify", str(base / "nli" / "1")]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] text inputs = segments the model was trained on" in out
    assert "report.json records 2 segment(s)" in out and "FAILED: 1 of" in out


def test_verify_checks_that_reference_tokens_were_packed_as_the_inputs_say(tmp_path, capsys):
    # Metadata that claims a pair while the tokens hold single texts.
    path = tmp_path / "pair.keras"
    _save_pair_model(str(path))
    base = tmp_path / "serving"
    assert main([str(path), "--base-path", str(base), "--name", "m", "--num-segments", "1",
                 "--class-names", *CLASSES, "--no-verify"]) == 0
    broken = tmp_path / "broken" / "m" / "1"
    shutil.copytree(base / "m" / "1", broken)
    meta_path = broken / md.ASSETS_EXTRA / md.METADATA_FILE
    meta = json.loads(meta_path.read_text())
    from ptloss_tf.export.verify import segment_check

    assert segment_check(meta)["ok"]
    meta["num_segments"] = 2
    meta["text_inputs"] = ["text_a", "text_b"]
    check = segment_check(meta)
    assert not check["ok"] and "not packed as pairs" in check["detail"]
