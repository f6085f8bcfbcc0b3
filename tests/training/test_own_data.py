"""A user's own files through `--task file`: label vocabulary, headerless
files, a missing validation file, options checked up front, restarting a
failed run, and the metrics beyond accuracy.

Golden values are computed here with numpy / scipy, never by the code under
test.
"""

import json

import numpy as np
import pytest
import scipy.stats

from ptloss_tf.classification_report import classification_metrics
from ptloss_tf.classification_report import macro_f1
from ptloss_tf.classification_report import matthews_correlation
from ptloss_tf.training.config import DistillConfig
from ptloss_tf.training.data.examples import load_file
from ptloss_tf.training.data.tables import read_table
from ptloss_tf.training.preflight import check_config
from ptloss_tf.training.preflight import check_preset
from ptloss_tf.training.run_directory import STATE
from ptloss_tf.training.run_directory import fingerprint
from ptloss_tf.training.run_directory import prepare_output_dir
from ptloss_tf.training.task_examples import DataSource
from ptloss_tf.training.task_examples import held_out_rows
from ptloss_tf.training.task_examples import load_task_examples


def write_tsv(path, rows, header=("sentence", "label"), encoding="utf-8"):
    lines = (["\t".join(header)] if header else []) + ["\t".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return str(path)


def file_source(tmp_path, train, test, validation=None, **options):
    files = {"train_file": write_tsv(tmp_path / "train.tsv", train),
             "test_file": write_tsv(tmp_path / "test.tsv", test)}
    if validation is not None:
        files["validation_file"] = write_tsv(tmp_path / "dev.tsv", validation)
    return DataSource(task="file", **files, **options)


# -- one label vocabulary per run ----------------------------------------------

def test_a_test_file_holding_one_label_keeps_the_training_files_encoding(tmp_path):
    # Encoded per file, a test file holding only label 1 became class 0: the
    # teacher's accuracy then read 0.133 where the truth was 0.867.
    train = [(f"t{i}", i % 2) for i in range(10)]
    data = file_source(tmp_path, train, [("a", 1), ("b", 1), ("c", 1)],
                       validation=[("v", 1), ("w", 0)])
    examples = load_task_examples(data)
    assert examples["train"].class_names == ("0", "1")
    assert examples["test"].class_names == ("0", "1")
    assert examples["test"].labels.tolist() == [1, 1, 1]
    assert examples["validation"].labels.tolist() == [1, 0]


def test_named_labels_in_any_order_share_the_training_vocabulary(tmp_path):
    train = [("x", "pos"), ("y", "neg"), ("z", "pos"), ("w", "neu")]
    data = file_source(tmp_path, train, [("a", "pos"), ("b", "pos")],
                       validation=[("v", "neu")])
    examples = load_task_examples(data)
    assert examples["train"].class_names == ("neg", "neu", "pos")  # sorted, documented
    assert examples["train"].labels.tolist() == [2, 0, 2, 1]
    assert examples["test"].labels.tolist() == [2, 2]
    assert examples["validation"].labels.tolist() == [1]


@pytest.mark.parametrize("split, rows, bad_line, value", [
    ("validation", [("v", 0), ("w", 2)], 3, "2"),   # a value never seen in training
    ("test", [("a", 1), ("b", "yes")], 3, "yes"),
])
def test_a_label_outside_the_vocabulary_names_file_line_and_value(tmp_path, split, rows,
                                                                   bad_line, value):
    train = [(f"t{i}", i % 2) for i in range(6)]
    kwargs = {"validation": rows if split == "validation" else [("v", 0)]}
    test = rows if split == "test" else [("a", 1)]
    data = file_source(tmp_path, train, test, **kwargs)
    path = data.validation_file if split == "validation" else data.test_file
    with pytest.raises(ValueError) as info:
        load_task_examples(data)
    message = str(info.value)
    assert f"{path}:{bad_line}:" in message and repr(value) in message
    assert "['0', '1']" in message


def test_indices_are_read_as_classes_only_for_names_the_user_gave(tmp_path):
    train = [("x", "neg"), ("y", "pos")]
    test = [("a", 1), ("b", 0)]
    with pytest.raises(ValueError, match="label '1'"):
        load_task_examples(file_source(tmp_path, train, test, validation=[("v", "pos")]))
    given = file_source(tmp_path, train, test, validation=[("v", "pos")],
                        class_names=("neg", "pos"))
    assert load_task_examples(given)["test"].labels.tolist() == [1, 0]


def test_integer_class_names_are_never_read_as_indices(tmp_path):
    # Labels 1, 2, 3 (e.g. star ratings): the value 0 is not "class index 0".
    train = [("x", 1), ("y", 2), ("z", 3)]
    data = file_source(tmp_path, train, [("a", 0)], validation=[("v", 2)])
    with pytest.raises(ValueError, match=r"test.tsv:2: label '0'"):
        load_task_examples(data)


def test_a_training_file_with_one_label_value_is_refused(tmp_path):
    data = file_source(tmp_path, [("x", 1), ("y", 1)], [("a", 1)], validation=[("v", 1)])
    with pytest.raises(ValueError, match="1 distinct value"):
        load_task_examples(data)


# -- files as users have them --------------------------------------------------

def test_byte_order_mark_is_stripped_and_column_errors_show_invisible_characters(tmp_path):
    path = write_tsv(tmp_path / "quality.tsv", [(1, "a b"), (0, "c")],
                     header=("Quality", "#1 String"), encoding="utf-8-sig")
    assert open(path, "rb").read(3) == b"\xef\xbb\xbf"
    examples = load_file(path, ("#1 String",), "Quality")
    assert examples.labels.tolist() == [1, 0]
    spaced = write_tsv(tmp_path / "spaced.tsv", [("x", 1)], header=("sentence\u200b", "label"))
    with pytest.raises(ValueError, match=r"missing column 'sentence' \(columns: "
                                         r"'sentence\\u200b', 'label'\)"):
        load_file(spaced, ("sentence",), "label")


def test_headerless_files_by_column_number_equal_the_headered_file(tmp_path):
    rows = [("gj04", 1, "*", "Our friends won't buy this."), ("gj04", 0, "*", "They drank.")]
    headed = write_tsv(tmp_path / "h.tsv", rows, header=("source", "label", "mark", "sentence"))
    bare = write_tsv(tmp_path / "b.tsv", rows, header=None)
    expected = load_file(headed, ("sentence",), "label")
    got = load_file(bare, (3,), 1, header=False)
    assert got.texts[0].tolist() == expected.texts[0].tolist()
    assert got.labels.tolist() == expected.labels.tolist() == [1, 0]
    # With a header row, column numbers are not names: the error says what to do.
    with pytest.raises(ValueError, match="missing column '3'.*`no_header`"):
        load_file(headed, ("3",), "1")
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"s": "a", "label": 1}\n')
    with pytest.raises(ValueError, match="applies to TSV/CSV"):
        load_file(str(jsonl), ("s",), "label", header=False)


def test_headerless_file_task_through_the_config(tmp_path):
    train = [(i % 2, f"text {i}") for i in range(10)]
    source = DataSource(task="file", train_file=write_tsv(tmp_path / "tr.tsv", train, None),
                        test_file=write_tsv(tmp_path / "te.tsv", [(1, "z")], None),
                        text_fields=("1",), label_field="0", no_header=True)
    examples = load_task_examples(source)
    assert examples["test"].texts[0].tolist() == ["z"]
    assert examples["test"].labels.tolist() == [1]


def test_rows_with_more_fields_than_the_header_are_an_error(tmp_path):
    path = tmp_path / "long.tsv"
    path.write_text("sentence\tlabel\nok\t1\ntoo\t1\textra\n")
    with pytest.raises(ValueError, match=r"long.tsv:3: 3 fields, more than the 2 header"):
        read_table(str(path))
    bare = tmp_path / "bare.tsv"
    bare.write_text("ok\t1\ntoo\t1\textra\n")
    with pytest.raises(ValueError, match=r"bare.tsv:2: 3 fields, more than the 2 fields "
                                         "of the first row"):
        read_table(str(bare), header=False)


# -- no validation file ---------------------------------------------------------

def test_without_a_validation_file_a_fixed_seed_part_of_train_is_held_out(tmp_path):
    from ptloss_tf.training.splits import plan_train_rows

    train = [(f"sentence {i}", i % 2) for i in range(50)]
    data = file_source(tmp_path, train, [("a", 1)])
    notes, logged = [], []
    examples = load_task_examples(data, notes=notes, log=logged.append)
    assert examples["validation"] is None
    assert notes and "5 of the 50 rows" in notes[0] and "seed 0" in notes[0]
    assert notes[0] in logged[0]
    plan = plan_train_rows(len(examples["train"]), None, False, None, seed=3)
    # Independent: the first 5 rows of numpy's permutation with seed 0.
    held = sorted(np.random.default_rng(0).permutation(50)[:5].tolist())
    assert plan["validation"].tolist() == held == sorted(held)
    assert sorted(plan["train"].tolist() + held) == list(range(50))
    assert held_out_rows(50) == 5
    # --max-train-examples subsamples the student's rows, never the held-out ones.
    small = plan_train_rows(50, None, False, 7, seed=3)
    assert small["validation"].tolist() == held and len(small["train"]) == 7
    assert not set(small["train"].tolist()) & set(held)


# -- options checked before any work ----------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"max_train_examples": 0}, "`max_train_examples` must be at least 1"),
    ({"epochs": 0}, "`epochs` must be at least 1"),
    ({"hidden": 30, "heads": 4}, "multiple of `heads`"),
    ({"preset": "./no/such/preset"}, "no such folder"),
    ({"preset": "bert_nonexistent_preset"}, "neither a folder nor a keras-hub BERT preset"),
    ({"task": "file", "train_file": "/no/train.tsv"}, "`train_file` /no/train.tsv: file"),
    ({"task": "sst2", "teacher_outputs": "/no/teacher"}, "`teacher_outputs` /no/teacher"),
    ({"no_header": True}, "`no_header` applies to `task` file"),
    ({"vocabulary": "/no/vocab.txt"}, "`vocabulary`"),
])
def test_check_config_refuses_bad_options(changes, message):
    with pytest.raises(ValueError, match=message):
        check_config(DistillConfig(**changes))


def test_check_preset_accepts_folders_names_and_uris(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        check_preset(str(tmp_path / "model"))
    (tmp_path / "model" / "config.json").write_text("{}")
    check_preset(str(tmp_path / "model"))
    check_preset("bert_tiny_en_uncased")
    check_preset("hf://google-bert/bert-base-uncased")


# -- restarting a run that failed before training ------------------------------------

def test_an_unfinished_run_is_protected_only_once_training_started(tmp_path):
    out = tmp_path / "run"
    old = DistillConfig(output_dir=str(out), epochs=3)
    prepare_output_dir(old, log=lambda m: None)
    (out / "coefficients.json").write_text("{}")   # written by the failed run
    (out / "notes.txt").write_text("mine")         # not the run's: kept
    new = old.replace(epochs=4)
    logged = []
    path, state = prepare_output_dir(new, log=logged.append)
    assert state["fingerprint"] == fingerprint(new) != fingerprint(old)
    assert "Restarting" in logged[0]
    assert not (out / "coefficients.json").exists() and (out / "notes.txt").exists()
    assert json.loads((out / STATE).read_text())["fingerprint"] == fingerprint(new)
    (out / "kl").mkdir()                            # training started: protected
    with pytest.raises(ValueError, match="has started training"):
        prepare_output_dir(old, log=lambda m: None)


# -- metrics beyond accuracy -------------------------------------------------------

def _reference_macro_f1(labels, predictions):
    scores = []
    for k in sorted(set(labels) | set(predictions)):
        tp = sum(1 for y, p in zip(labels, predictions) if y == k and p == k)
        precision_denominator = sum(1 for p in predictions if p == k)
        recall_denominator = sum(1 for y in labels if y == k)
        precision = tp / precision_denominator if precision_denominator else 0.0
        recall = tp / recall_denominator if recall_denominator else 0.0
        scores.append(2 * precision * recall / (precision + recall) if tp else 0.0)
    return float(np.mean(scores))


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_macro_f1_and_mcc_against_independent_computations(rng, num_classes):
    for _ in range(20):
        labels = rng.integers(0, num_classes, 200)
        predictions = np.where(rng.random(200) < 0.6, labels, rng.integers(0, num_classes, 200))
        assert macro_f1(labels, predictions, num_classes) == pytest.approx(
            _reference_macro_f1(labels.tolist(), predictions.tolist()), abs=1e-12)
        if num_classes == 2:
            # MCC of two binary vectors is their Pearson correlation (phi).
            expected = scipy.stats.pearsonr(labels, predictions)[0]
            assert matthews_correlation(labels, predictions) == pytest.approx(expected,
                                                                             abs=1e-12)


def test_classification_metrics_flag_a_single_class_predictor():
    labels = np.array([0, 1, 1, 0, 1, -1])   # -1: unlabeled, not scored
    report = classification_metrics(labels, np.ones(6, int), ("neg", "pos"))
    assert report["single_class_prediction"] is True
    assert report["mcc"] == 0.0 and report["accuracy"] == pytest.approx(0.6)
    assert report["macro_f1"] == pytest.approx(_reference_macro_f1([0, 1, 1, 0, 1], [1] * 5))
    assert report["prediction_counts"] == {"neg": 0, "pos": 5}
    assert report["label_counts"] == {"neg": 2, "pos": 3}
    three = classification_metrics([0, 1, 2], [0, 1, 1], ("a", "b", "c"))
    assert "mcc" not in three and three["single_class_prediction"] is False


# -- the whole job on a user's files, as console scripts --------------------------

@pytest.mark.slow
def test_own_files_teacher_then_distillation_in_subprocesses(tmp_path):
    """BOM, label column first, names in any order, no validation file, a test
    file holding one label value: the teacher's reported test accuracy, the
    label encoding of every output and the students' metrics are checked
    against values computed here from the files themselves."""
    from ptloss_tf.training.teacher.outputs import TeacherOutputs
    from tests.helpers import run_training_cli
    from tests.helpers import vocabulary
    from tests.helpers.hf_bert import write_tiny_hf_bert

    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(30)]

    def sentence_and_label():
        ids = rng.integers(0, 30, size=rng.integers(2, 7))
        return " ".join(words[i] for i in ids), "pos" if np.mean(ids) >= 15 else "neg"

    train = [sentence_and_label() for _ in range(120)]
    while train[0][1] != "pos":   # first row "pos": order of appearance != sorted
        train.append(train.pop(0))
    test = [s for s in (sentence_and_label() for _ in range(400)) if s[1] == "pos"][:30]
    write_tsv(tmp_path / "train.tsv", [(y, x) for x, y in train], header=("label", "sentence"),
              encoding="utf-8-sig")
    write_tsv(tmp_path / "test.tsv", test)
    write_tiny_hf_bert(str(tmp_path / "bert"), vocabulary(words), layers=1)
    files = ["--task", "file", "--train-file", "train.tsv", "--test-file", "test.tsv"]

    def cli(*argv):
        result = run_training_cli(*argv, cwd=tmp_path, check=True)
        for noise in ("oneDNN", "cuInit", "absl::InitializeLog", "cuda drivers"):
            assert noise not in result.stderr + result.stdout
        return result

    teacher = cli("teacher", *files, "--preset", "bert", "--output-dir", "teacher",
                  "--epochs", "1", "--sequence-length", "16", "--verbose", "0")
    assert "held out with seed 0" in teacher.stdout
    test_outputs = TeacherOutputs.load(str(tmp_path / "teacher" / "test.jsonl"))
    assert test_outputs.class_names == ("neg", "pos")
    # Every test label is "pos" = class 1 of the training file's vocabulary.
    expected = float(np.mean(np.argmax(test_outputs.values, 1) == 1))
    run_record = json.loads((tmp_path / "teacher" / "teacher_run.json").read_text())
    assert run_record["accuracy"]["test"] == pytest.approx(expected, abs=1e-12)
    assert not (tmp_path / "teacher" / "validation.jsonl").exists()
    train_outputs = TeacherOutputs.load(str(tmp_path / "teacher" / "train.jsonl"))
    assert len(train_outputs.ids) == 120   # the held-out rows are predicted too

    result = cli(*files, "--teacher-outputs", "teacher", "--vocabulary", "bert/vocab.txt",
                 "--loss", "kl", "--output-dir", "run", "--student-layers", "1", "--hidden",
                 "16", "--heads", "2", "--intermediate", "32", "--epochs", "1",
                 "--candidates", "6", "--order", "2", "--sequence-length", "16",
                 "--verbose", "0", "--no-xla")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["class_names"] == ["neg", "pos"]
    assert "sorted label values of train.tsv" in report["class_names_source"]
    assert report["teacher"]["accuracy"] == pytest.approx(expected, abs=1e-6)
    assert report["teacher"]["label_counts"] == {"neg": 0, "pos": 30}
    assert any("held out with seed 0" in note for note in report["notes"])
    (kl,) = report["results"]
    assert sum(kl["prediction_counts"].values()) == 30
    assert kl["accuracy"] == pytest.approx(kl["prediction_counts"]["pos"] / 30, abs=1e-6)
    single = kl["single_class_prediction"]
    # The flag needs labels of more than one class; this test file has one.
    assert single is False
    assert single == any("predicts one class" in note for note in report["notes"])
    assert ("predicts a single class" in result.stdout) == single
    # The last line: the export command of the (only) student.
    assert result.stdout.strip().splitlines()[-1] == (
        "  ptloss-export run/kl/student.keras --base-path serving --name model")
