"""Tests of the cached teacher-outputs format, import and join (training/teacher/)."""

import json
import os

import numpy as np
import pytest
from scipy.special import softmax as sp_softmax

from ptloss_tf.training.data.examples import Examples
from ptloss_tf.training.teacher import outputs as to
from ptloss_tf.training.teacher.outputs import TeacherOutputs
from ptloss_tf.training.teacher.table_import import import_table
from ptloss_tf.training.teacher.join import join

CLASSES = ("negative", "positive")

# These files carry no fingerprints (the alignment check has its own tests,
# test_teacher_fingerprints.py): joining them warns, by design.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ptloss_tf.training.teacher.outputs.UncheckedAlignmentWarning")


def make_examples(ids, class_names=CLASSES):
    n = len(ids)
    return Examples(
        ids=np.asarray(ids),
        texts=(np.asarray([f"text {i}" for i in range(n)], dtype=object),),
        labels=np.zeros(n, dtype=np.int64),
        class_names=class_names,
    )


def make_outputs(ids, values, kind="probs", class_names=CLASSES, split="train", teacher="t5-xl"):
    return TeacherOutputs(ids=np.asarray(ids), values=np.asarray(values), kind=kind,
                          class_names=class_names, split=split, teacher=teacher)


def random_probs(rng, n, k):
    return rng.dirichlet(np.ones(k), size=n).astype(np.float32)


def no_temp_files(directory):
    return [f for f in os.listdir(directory) if f.endswith(".tmp")] == []


# -- save / load --------------------------------------------------------------

def test_save_load_round_trip_is_exact(tmp_path, rng):
    n, k = 50, 3
    values = rng.standard_normal((n, k)).astype(np.float32) * 10.0
    values[0] = [1e-30, -3.0e38, 1.17549435e-38]  # extremes of float32
    values[1] = [0.1, 1.0 / 3.0, -0.0]
    ids = np.array([f"ex/{i}" for i in range(n - 2)] + ['quo"te\\slash', "ünïcode 文"])
    out = TeacherOutputs(ids=ids, values=values, kind="logits", class_names=("a", "b", "c"),
                         split="validation", teacher="t5-large", metadata={"ckpt": "step-100"})
    path = tmp_path / "validation.jsonl"
    out.save(path)
    back = TeacherOutputs.load(path)
    assert back.values.dtype == np.float32
    np.testing.assert_array_equal(back.values, values)
    assert np.signbit(back.values[1, 2])  # even -0.0 survives
    assert back.ids.tolist() == ids.tolist()
    assert (back.kind, back.class_names, back.split, back.teacher) == (
        "logits", ("a", "b", "c"), "validation", "t5-large")
    assert back.metadata == {"ckpt": "step-100"}


def test_file_layout_is_the_documented_format(tmp_path):
    out = make_outputs(["x1", "x0"], [[0.25, 0.75], [0.5, 0.5]], split="test", teacher="t5-xxl")
    path = tmp_path / "test.jsonl"
    out.save(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 4
    assert json.loads(lines[0]) == {
        "format": "ptloss-teacher-outputs", "version": 2, "kind": "probs",
        "class_names": ["negative", "positive"], "split": "test", "teacher": "t5-xxl",
        "num_examples": 2,
    }
    assert json.loads(lines[1]) == {"id": "x1", "values": [0.25, 0.75]}
    assert json.loads(lines[2]) == {"id": "x0", "values": [0.5, 0.5]}


def test_load_accepts_a_hand_written_file(tmp_path):
    path = tmp_path / "t.jsonl"
    header = {"format": "ptloss-teacher-outputs", "version": 1, "kind": "logits",
              "class_names": ["a", "b"], "split": "train", "teacher": "x",
              "num_examples": 2, "some_future_key": 1}
    path.write_text(json.dumps(header) + '\n{"id": "1", "values": [1, -2.5]}\n'
                    '{"values": [0, 0], "id": "2"}')  # no final newline
    out = TeacherOutputs.load(path)
    np.testing.assert_array_equal(out.values, np.float32([[1, -2.5], [0, 0]]))
    np.testing.assert_allclose(out.probabilities(), sp_softmax([[1, -2.5], [0, 0]], axis=1),
                               rtol=1e-6)


def test_save_never_overwrites_silently(tmp_path):
    path = tmp_path / "train.jsonl"
    make_outputs(["a"], [[0.5, 0.5]]).save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_outputs(["b"], [[0.1, 0.9]]).save(path)
    assert path.read_bytes() == before
    make_outputs(["b"], [[0.1, 0.9]]).save(path, overwrite=True)
    assert TeacherOutputs.load(path).ids.tolist() == ["b"]
    assert no_temp_files(tmp_path)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "train.jsonl"  # parent directories are created
    seen = {}
    real_fsync = os.fsync

    def fsync(fd):  # while the data is written, the destination does not exist yet
        seen["exists_during_write"] = path.exists()
        seen["tmp_in_same_dir"] = [f for f in os.listdir(path.parent) if f.endswith(".tmp")]
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    make_outputs(["a"], [[0.5, 0.5]]).save(path)
    assert seen["exists_during_write"] is False
    assert len(seen["tmp_in_same_dir"]) == 1
    assert no_temp_files(path.parent)
    monkeypatch.undo()

    # a failure at the final move leaves the old file intact and no temp file
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        make_outputs(["b"], [[0.1, 0.9]]).save(path, overwrite=True)
    assert path.read_bytes() == before
    assert no_temp_files(path.parent)


def test_save_no_clobber_even_if_the_file_appears_during_the_write(tmp_path, monkeypatch):
    path = tmp_path / "train.jsonl"
    path.write_text("someone else's file")
    monkeypatch.setattr(os.path, "lexists", lambda p: False)  # the early check misses it
    with pytest.raises(FileExistsError):
        make_outputs(["a"], [[0.5, 0.5]]).save(path)
    assert path.read_text() == "someone else's file"
    assert no_temp_files(tmp_path)


def test_save_rejects_non_finite_values(tmp_path):
    with pytest.raises(ValueError, match=r"NaN or inf .*'b'"):
        make_outputs(["a", "b"], [[0.5, 0.5], [np.nan, 1.0]]).save(tmp_path / "x.jsonl")
    assert os.listdir(tmp_path) == []


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        TeacherOutputs.load(tmp_path / "nope.jsonl")

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        TeacherOutputs.load(empty)

    no_header = tmp_path / "no_header.jsonl"
    no_header.write_text('{"id": "a", "values": [0.5, 0.5]}\n')
    with pytest.raises(ValueError, match="line 1 is not a ptloss-teacher-outputs header"):
        TeacherOutputs.load(no_header)

    good = tmp_path / "good.jsonl"
    make_outputs(["a", "b", "c"], [[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]]).save(good)
    text = good.read_text()

    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text(text[:-8])  # cut inside the last line (line 4)
    with pytest.raises(ValueError, match=r"line 4: not valid JSON .*truncated"):
        TeacherOutputs.load(truncated)

    cut_mid = tmp_path / "cut_mid.jsonl"
    lines = text.split("\n")
    cut_mid.write_text("\n".join([lines[0], lines[1][:15], lines[2], lines[3]]) + "\n")
    with pytest.raises(ValueError, match=r"line 2: not valid JSON"):
        TeacherOutputs.load(cut_mid)

    missing_lines = tmp_path / "missing_lines.jsonl"
    missing_lines.write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(ValueError, match="header says 3 examples but the file has 2 example lines"):
        TeacherOutputs.load(missing_lines)

    wrong_width = tmp_path / "wrong_width.jsonl"
    wrong_width.write_text("\n".join([lines[0], lines[1], '{"id": "b", "values": [1.0]}', lines[3]]))
    with pytest.raises(ValueError, match=r"line 3: values must be a list of 2 numbers"):
        TeacherOutputs.load(wrong_width)

    no_id = tmp_path / "no_id.jsonl"
    no_id.write_text("\n".join([lines[0], '{"values": [0.5, 0.5]}', lines[2], lines[3]]))
    with pytest.raises(ValueError, match=r"line 2: expected \{\"id\""):
        TeacherOutputs.load(no_id)

    version = tmp_path / "version.jsonl"
    version.write_text(text.replace('"version": 2', '"version": 3', 1))
    with pytest.raises(ValueError, match="unsupported ptloss-teacher-outputs version 3"):
        TeacherOutputs.load(version)


def test_construction_checks_shapes():
    with pytest.raises(ValueError, match="kind"):
        make_outputs(["a"], [[0.5, 0.5]], kind="probabilities")
    with pytest.raises(ValueError, match="3 columns but there are 2 class names"):
        make_outputs(["a"], [[0.2, 0.3, 0.5]])
    with pytest.raises(ValueError, match="2 ids but 1 rows"):
        make_outputs(["a", "b"], [[0.5, 0.5]])


def test_probabilities_of_logits_is_softmax(rng):
    logits = rng.standard_normal((20, 4)).astype(np.float32) * 5
    out = make_outputs([str(i) for i in range(20)], logits, kind="logits",
                       class_names=("a", "b", "c", "d"))
    np.testing.assert_allclose(out.probabilities(), sp_softmax(logits.astype(np.float64), axis=1),
                               rtol=1e-6, atol=1e-7)
    probs = random_probs(rng, 5, 2)
    np.testing.assert_array_equal(make_outputs(list("abcde"), probs).probabilities(), probs)


# -- import_table --------------------------------------------------------------

def test_import_csv_per_class_columns(tmp_path):
    path = tmp_path / "t5.csv"
    path.write_text("idx,sentence,p_neg,p_pos\n"
                    '7,"a, quoted, text",0.2,0.8\n'
                    "3,plain,0.6,0.4\n")
    out = import_table(path, "validation", "t5-xl", id_column="idx",
                       prob_columns=["p_neg", "p_pos"], class_names=list(CLASSES))
    assert out.ids.tolist() == ["7", "3"]
    np.testing.assert_array_equal(out.values, np.float32([[0.2, 0.8], [0.6, 0.4]]))
    assert (out.kind, out.class_names, out.split, out.teacher) == (
        "probs", CLASSES, "validation", "t5-xl")
    # without class_names the column names are the class names
    out2 = import_table(path, "validation", "t5-xl", id_column="idx",
                        prob_columns=["p_neg", "p_pos"])
    assert out2.class_names == ("p_neg", "p_pos")
    # a dict names the classes
    out3 = import_table(path, "validation", "t5-xl", id_column="idx",
                        prob_columns={"negative": "p_neg", "positive": "p_pos"})
    assert out3.class_names == CLASSES
    np.testing.assert_array_equal(out3.values, out.values)


def test_import_tsv_logits(tmp_path):
    path = tmp_path / "mnli.tsv"
    path.write_text("id\tl0\tl1\tl2\n"
                    "m/1\t1.5\t-0.5\t0\n"
                    "m/2\t-2\t3.25\t0.125\n")
    out = import_table(path, "train", "t5-large", logit_columns=["l0", "l1", "l2"],
                       class_names=["entailment", "neutral", "contradiction"])
    assert out.kind == "logits"
    logits = np.array([[1.5, -0.5, 0], [-2, 3.25, 0.125]])
    np.testing.assert_array_equal(out.values, logits.astype(np.float32))
    np.testing.assert_allclose(out.probabilities(), sp_softmax(logits, axis=1), rtol=1e-6)


def test_import_jsonl_list_field(tmp_path):
    path = tmp_path / "boolq.jsonl"
    rows = [{"id": 12, "probs": [0.3, 0.7], "extra": "x"},
            {"id": 5, "probs": [1.0, 0.0]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    out = import_table(path, "test", "t5-xxl", prob_columns="probs", class_names=["False", "True"])
    assert out.ids.tolist() == ["12", "5"]  # numbers become strings
    np.testing.assert_array_equal(out.values, np.float32([[0.3, 0.7], [1.0, 0.0]]))
    # the "probs" field is found without being named
    auto = import_table(path, "test", "t5-xxl", class_names=["False", "True"])
    np.testing.assert_array_equal(auto.values, out.values)
    assert auto.kind == "probs"


def test_import_jsonl_logits_list_field_to_probabilities(tmp_path, rng):
    logits = rng.standard_normal((30, 3)) * 4
    path = tmp_path / "teacher.ndjson"
    path.write_text("".join(json.dumps({"uid": f"u{i}", "logits": row.tolist()}) + "\n"
                            for i, row in enumerate(logits)))
    out = import_table(path, "train", "t", id_column="uid", class_names=["a", "b", "c"])
    assert out.kind == "logits"
    np.testing.assert_allclose(out.probabilities(), sp_softmax(logits, axis=1), rtol=1e-5, atol=1e-7)
    examples = make_examples([f"u{i}" for i in reversed(range(30))], class_names=("a", "b", "c"))
    np.testing.assert_allclose(join(out, examples, "train"),
                               sp_softmax(logits[::-1], axis=1), rtol=1e-5, atol=1e-7)


def test_import_csv_list_valued_cell(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('id,probs\na,"[0.1, 0.9]"\nb,"[0.5, 0.5]"\n')
    out = import_table(path, "train", "t", prob_columns="probs", class_names=CLASSES)
    np.testing.assert_array_equal(out.values, np.float32([[0.1, 0.9], [0.5, 0.5]]))
    # a one-element list (argparse nargs="+") names the list-valued column too
    out2 = import_table(path, "train", "t", prob_columns=["probs"], class_names=CLASSES)
    np.testing.assert_array_equal(out2.values, out.values)


def test_import_errors(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,p0,p1\na,0.5,0.5\nb,0.3,oops\n")
    with pytest.raises(ValueError, match=r"line 3: column 'p1' is not a number: 'oops'"):
        import_table(path, "train", "t", prob_columns=["p0", "p1"])
    with pytest.raises(ValueError, match=r"column\(s\) \['p2'\] not found; the columns are \['id', 'p0', 'p1'\]"):
        import_table(path, "train", "t", prob_columns=["p0", "p2"])
    with pytest.raises(ValueError, match="not both"):
        import_table(path, "train", "t", prob_columns=["p0", "p1"], logit_columns=["p0", "p1"])
    with pytest.raises(ValueError, match="pass prob_columns= or logit_columns="):
        import_table(path, "train", "t")
    with pytest.raises(ValueError, match="class_names is required"):
        import_table(path, "train", "t", prob_columns="p0")
    with pytest.raises(ValueError, match="2 value columns"):
        import_table(path, "train", "t", prob_columns=["p0", "p1"], class_names=["a", "b", "c"])
    with pytest.raises(FileNotFoundError):
        import_table(tmp_path / "missing.csv", "train", "t", prob_columns=["p0", "p1"])
    odd = tmp_path / "t.parquet"
    odd.write_text("")
    with pytest.raises(ValueError, match="format="):
        import_table(odd, "train", "t", prob_columns=["p0", "p1"])
    bad_jsonl = tmp_path / "t.jsonl"
    bad_jsonl.write_text('{"id": "a", "probs": [0.5, 0.5]}\n{"id": "b", "probs": [0.5,\n')
    with pytest.raises(ValueError, match=":2: not valid JSON"):
        import_table(bad_jsonl, "train", "t", class_names=CLASSES)
    short = tmp_path / "short.jsonl"
    short.write_text('{"id": "a", "probs": [0.5, 0.5]}\n{"id": "b", "probs": [1.0]}\n')
    with pytest.raises(ValueError, match=r"line 2: 'probs' must be a list of 2 numbers"):
        import_table(short, "train", "t", class_names=CLASSES)


# -- join ---------------------------------------------------------------------

def test_join_reorders_by_id(rng):
    ids = [f"sst2/train/{i:06d}" for i in range(40)]
    probs = random_probs(rng, 40, 2)
    perm = rng.permutation(40)
    out = make_outputs(np.asarray(ids)[perm], probs[perm])
    order = rng.permutation(40)
    examples = make_examples(np.asarray(ids)[order])
    joined = join(out, examples, "train")
    assert joined.dtype == np.float32 and joined.shape == (40, 2)
    expected = {i: p for i, p in zip(ids, probs)}
    np.testing.assert_array_equal(joined, np.stack([expected[ids[j]] for j in order]))


def test_join_allow_extra_selects_a_subset(rng):
    probs = random_probs(rng, 10, 2)
    out = make_outputs([f"e{i}" for i in range(10)], probs)
    examples = make_examples(["e7", "e2", "e4"])
    with pytest.raises(ValueError, match=r"7 ids in the teacher file are not among the examples "
                                         r"\(first few: 'e0', 'e1', 'e3', 'e5', 'e6', \.\.\.\); "
                                         r"check that --teacher-outputs holds this task's "
                                         r"outputs"):
        join(out, examples, "train")
    np.testing.assert_array_equal(join(out, examples, "train", allow_extra=True), probs[[7, 2, 4]])


def test_join_wrong_split():
    out = make_outputs(["a"], [[0.5, 0.5]], split="train")
    with pytest.raises(ValueError, match="teacher file is for split 'train' but the examples are 'validation'"):
        join(out, make_examples(["a"]), "validation")


def test_join_missing_ids():
    out = make_outputs(["a", "b"], [[0.5, 0.5], [0.2, 0.8]])
    examples = make_examples(["a", "x1", "b", "x2", "x3", "x4", "x5", "x6", "x7"])
    with pytest.raises(ValueError) as e:
        join(out, examples, "train")
    msg = str(e.value)
    assert "7 of the 9 example ids are missing from the teacher file " \
           "(first few: 'x1', 'x2', 'x3', 'x4', 'x5', ...)" in msg
    assert "not among the examples" not in msg


def test_join_duplicated_ids():
    out = make_outputs(["a", "b", "a", "c", "b", "a"], [[0.5, 0.5]] * 6)
    with pytest.raises(ValueError, match=r"2 ids appear more than once in the teacher file "
                                         r"\(first few: 'a' x3, 'b' x2\)"):
        join(out, make_examples(["a", "b", "c"]), "train")
    ok = make_outputs(["a", "b"], [[0.5, 0.5]] * 2)
    with pytest.raises(ValueError, match=r"1 ids appear more than once among the examples "
                                         r"\(first few: 'b'\)"):
        join(ok, make_examples(["a", "b", "b"]), "train")


def test_join_class_count_mismatch():
    out = make_outputs(["a"], [[0.2, 0.3, 0.5]], class_names=("e", "n", "c"))
    with pytest.raises(ValueError, match=r"class count mismatch: the teacher file has 3 classes "
                                         r"\('e', 'n', 'c'\) but the examples have 2 "
                                         r"\('negative', 'positive'\)"):
        join(out, make_examples(["a"]), "train")


def test_join_class_order_and_name_mismatch():
    out = make_outputs(["a"], [[0.2, 0.8]], class_names=("positive", "negative"))
    with pytest.raises(ValueError, match=r"class order mismatch: the teacher's columns are "
                                         r"\('positive', 'negative'\) but the examples' classes "
                                         r"are \('negative', 'positive'\)"):
        join(out, make_examples(["a"]), "train")
    out = make_outputs(["a"], [[0.2, 0.8]], class_names=("0", "1"))
    with pytest.raises(ValueError, match=r"class names differ: the teacher file has \('0', '1'\) "
                                         r"but the examples have \('negative', 'positive'\)"):
        join(out, make_examples(["a"]), "train")


def test_join_rows_must_sum_to_one():
    out = make_outputs(["a", "b", "c"], [[0.5, 0.5], [0.7, 0.7], [0.499, 0.496]])
    with pytest.raises(ValueError) as e:
        join(out, make_examples(["c", "b", "a"]), "train")
    msg = str(e.value)
    assert "rows must sum to 1 (tolerance 0.01)" in msg  # check_probabilities' message
    assert "Offending ids (1; first few): 'b'" in msg
    assert "logit_columns" in msg
    # within the tolerance (e.g. bfloat16 rounding) the rows pass unchanged
    np.testing.assert_array_equal(join(out, make_examples(["a", "c"]), "train", allow_extra=True),
                                  np.float32([[0.5, 0.5], [0.499, 0.496]]))
    neg = make_outputs(["a"], [[-0.2, 1.2]])
    with pytest.raises(ValueError, match="negative probabilities"):
        join(neg, make_examples(["a"]), "train")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["probs", "logits"])
def test_join_rejects_nan_and_inf(bad, kind):
    out = make_outputs(["a", "b", "c"], [[0.5, 0.5], [bad, 0.5], [0.5, 0.5]], kind=kind)
    with pytest.raises(ValueError, match=r"1 rows contain NaN or inf \(first few ids: 'b'\)"):
        join(out, make_examples(["a", "b", "c"]), "train")


def test_join_nan_from_a_file(tmp_path):
    path = tmp_path / "t.jsonl"
    header = {"format": "ptloss-teacher-outputs", "version": 1, "kind": "probs",
              "class_names": list(CLASSES), "split": "train", "teacher": "x", "num_examples": 2}
    path.write_text(json.dumps(header) + '\n{"id": "a", "values": [NaN, 1.0]}\n'
                    '{"id": "b", "values": [0.5, 0.5]}\n')
    out = TeacherOutputs.load(path)
    with pytest.raises(ValueError, match=r"NaN or inf \(first few ids: 'a'\)"):
        join(out, make_examples(["a", "b"]), "train")


def test_join_reports_all_structural_problems_in_one_message():
    out = make_outputs(["a", "a", "z"], [[0.5, 0.5]] * 3, split="test",
                       class_names=("positive", "negative"))
    with pytest.raises(ValueError) as e:
        join(out, make_examples(["a", "b"]), "validation")
    msg = str(e.value)
    assert msg.startswith("teacher outputs of 't5-xl' (split 'test', 3 rows) do not match the "
                          "'validation' examples (2 examples):")
    for part in ("split 'test' but the examples are 'validation'", "class order mismatch",
                 "1 ids appear more than once in the teacher file (first few: 'a' x2)",
                 "1 of the 2 example ids are missing from the teacher file (first few: 'b')",
                 "1 ids in the teacher file are not among the examples (first few: 'z')"):
        assert part in msg
    assert msg.count("\n- ") == 5


def test_synthetic_teacher_round_trip(tmp_path):
    from ptloss_tf.training.synthetic import make_synthetic_task

    task = make_synthetic_task(num_train=60, num_validation=20, num_test=20, noise=0.5, seed=1)
    for name, split in task.splits().items():
        path = tmp_path / f"{name}.jsonl"
        split.teacher_outputs(name, teacher="synthetic").save(path)
        loaded = TeacherOutputs.load(path)
        joined = join(loaded, split.examples.subset(np.arange(len(split))[::-1]), name)
        np.testing.assert_array_equal(joined, split.teacher_probs[::-1].astype(np.float32))
    # module constants match the documented header
    assert (to.FORMAT, to.VERSION) == ("ptloss-teacher-outputs", 2)
