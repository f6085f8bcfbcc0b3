"""The multi-class data sets of `data/multiclass/` (CB, SST-5, TREC-6) and
MNLI's local GLUE layout.

Counts are the published ones (data/multiclass/README.md) and are also
recomputed here from the files with `csv` / `json`, never by the code under
test. The data files are looked for where the registered tasks look
(`$PTLOSS_DATA_DIR`, `../shared/data`, then the repository's `data/`);
these tests skip, saying where they looked, when a data set is absent.
"""

import collections
import csv
import json
import os

import numpy as np
import pytest

from ptloss_tf.training.data.sources import load_split
from ptloss_tf.training.data.tasks import data_roots
from ptloss_tf.training.data.tasks import get_task
from ptloss_tf.training.task_examples import DataSource
from ptloss_tf.training.task_examples import load_task_examples
from tests.helpers import run_training_cli

# Published sizes: SuperGLUE CB (de Marneffe et al. 2019; Wang et al. 2019),
# SST-5 (Socher et al. 2013), TREC (Li & Roth 2002). Per split, per class.
PUBLISHED = {
    "cb": {"train.jsonl": {"entailment": 115, "contradiction": 119, "neutral": 16},
           "val.jsonl": {"entailment": 23, "contradiction": 28, "neutral": 5}},
    "sst5": {"train.tsv": {"0": 1092, "1": 2218, "2": 1624, "3": 2322, "4": 1288},
             "dev.tsv": {"0": 139, "1": 289, "2": 229, "3": 279, "4": 165},
             "test.tsv": {"0": 279, "1": 633, "2": 389, "3": 510, "4": 399}},
    "trec": {"train.tsv": {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223,
                           "LOC": 835, "NUM": 896},
             "test.tsv": {"ABBR": 9, "DESC": 138, "ENTY": 94, "HUM": 65, "LOC": 81,
                          "NUM": 113}},
}
CLASS_NAMES = {
    "cb": ("entailment", "contradiction", "neutral"),
    "sst5": ("very negative", "negative", "neutral", "positive", "very positive"),
    "trec": ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"),
}
# Registered split -> (file, rows of it: None = all, else the held-out size).
SPLITS = {
    "cb": {"train": ("train.jsonl", -25), "validation": ("train.jsonl", 25),
           "test": ("val.jsonl", None)},
    "sst5": {"train": ("train.tsv", None), "validation": ("dev.tsv", None),
             "test": ("test.tsv", None)},
    "trec": {"train": ("train.tsv", -545), "validation": ("train.tsv", 545),
             "test": ("test.tsv", None)},
}


def data_dir(name):
    """The folder of data set `name`, or skip."""
    for root in data_roots():
        path = os.path.join(root, "multiclass", name)
        if all(os.path.isfile(os.path.join(path, f)) for f in PUBLISHED[name]):
            return path
    pytest.skip(f"multiclass/{name} not found under {', '.join(data_roots())} "
                "(see data/multiclass/README.md)")


def raw_rows(path):
    """[(texts, label)] of a file, read with json / csv only."""
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [((r["premise"], r["hypothesis"]), r["label"]) for r in rows]
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        text = reader.fieldnames[0]
        return [((r[text],), r["label"]) for r in reader]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_files_hold_the_published_counts(name):
    folder = data_dir(name)
    for file, counts in PUBLISHED[name].items():
        labels = [label for _, label in raw_rows(os.path.join(folder, file))]
        assert dict(collections.Counter(labels)) == counts, file


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_registered_task_reads_every_split_with_its_documented_rows(name):
    folder = data_dir(name)
    task = get_task(name)
    assert task.class_names == CLASS_NAMES[name] and task.files_only
    root = os.path.dirname(os.path.dirname(folder))
    for split, (file, size) in SPLITS[name].items():
        raw = raw_rows(os.path.join(folder, file))
        if size is not None:  # held out with seed 0, as `--task file` does
            held = np.sort(np.random.default_rng(0).permutation(len(raw))[:abs(size)])
            rows = held if size > 0 else np.setdiff1d(np.arange(len(raw)), held)
            raw = [raw[i] for i in rows]
        examples = load_split(name, split, source="files", data_root=root)
        assert examples.class_names == CLASS_NAMES[name]
        assert len(examples) == len(raw)
        for k, field in enumerate(examples.texts):
            assert list(field) == [texts[k] for texts, _ in raw], (split, k)
        # Labels map to the documented names (SST-5's files hold 0-4).
        names = [CLASS_NAMES[name][int(y)] if name == "sst5" else y for _, y in raw]
        assert [examples.class_names[i] for i in examples.labels] == names


@pytest.mark.parametrize("name, text_fields, class_names", [
    ("cb", ("premise", "hypothesis"), CLASS_NAMES["cb"]),
    ("sst5", ("sentence",), CLASS_NAMES["sst5"]),
    ("trec", ("question",), None),
])
def test_documented_file_task_reads_the_same_rows(name, text_fields, class_names):
    """The `--task file` options of the README give the registered task's
    texts and labels (row-number ids aside)."""
    folder = data_dir(name)
    files = {"cb": ("train.jsonl", None, "val.jsonl"),
             "sst5": ("train.tsv", "dev.tsv", "test.tsv"),
             "trec": ("train.tsv", None, "test.tsv")}[name]
    source = DataSource(task="file", text_fields=text_fields, label_field="label",
                        class_names=class_names,
                        **{f"{s}_file": (os.path.join(folder, f) if f else None)
                           for s, f in zip(("train", "validation", "test"), files)})
    by_file = load_task_examples(source)
    root = os.path.dirname(os.path.dirname(folder))
    assert by_file["train"].class_names == CLASS_NAMES[name]
    for split in ("test",) + (("validation",) if files[1] else ()):
        registered = load_split(name, split, source="files", data_root=root)
        assert [list(t) for t in by_file[split].texts] == [list(t) for t in registered.texts]
        assert by_file[split].labels.tolist() == registered.labels.tolist()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_missing_file_is_one_line_naming_it(tmp_path, name):
    with pytest.raises(ValueError) as error:
        load_split(name, "test", data_root=str(tmp_path))
    message = str(error.value)
    expected = os.path.join(str(tmp_path), get_task(name).local_files["test"])
    assert message.startswith(f"{expected}: file not found") and "\n" not in message
    # Never a skipped split: the run's data loader raises it too.
    with pytest.raises(ValueError, match="file not found"):
        load_task_examples(DataSource(task=name, data_root=str(tmp_path)))


def test_a_missing_file_through_the_cli_is_one_line(tmp_path, capsys):
    from ptloss_tf.training.cli import main

    (tmp_path / "teacher").mkdir()
    assert main(["--task", "trec", "--data-root", str(tmp_path), "--teacher-outputs",
                 str(tmp_path / "teacher"), "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("ptloss-distill: error: ")
    assert os.path.join(str(tmp_path), "multiclass", "trec", "train.tsv") in err


def test_an_unreadable_file_is_one_line_naming_it(tmp_path):
    folder = tmp_path / "multiclass" / "cb"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text('{"premise": "a", "hypothesis": "b", "label"\n')
    with pytest.raises(ValueError) as error:
        load_split("cb", "train", data_root=str(tmp_path))
    assert str(error.value).startswith(f"{folder / 'train.jsonl'}:1: not valid JSON")
    assert "\n" not in str(error.value)


# -- MNLI in the local GLUE layout -----------------------------------------------

MNLI_HEADER = ("index", "promptID", "pairID", "genre", "sentence1", "sentence2", "label1",
               "gold_label")


def write_mnli(root, rng):
    """glue/MNLI/{train,dev_matched,dev_mismatched}.tsv in the GLUE layout
    (no test files: their labels are hidden anyway)."""
    folder = root / "glue" / "MNLI"
    folder.mkdir(parents=True)
    words = ["the", "good", "bad", "movie", "film", "is", "not", "it", "and"]
    labels = ("entailment", "neutral", "contradiction")
    for name, rows in (("train", 40), ("dev_matched", 12), ("dev_mismatched", 15)):
        lines = ["\t".join(MNLI_HEADER)]
        for i in range(rows):
            s1 = " ".join(rng.choice(words, 5))
            s2 = " ".join(rng.choice(words, 3))
            gold = labels[i % 3]
            lines.append("\t".join((str(i), str(100 + i), f"{100 + i}e", "fiction", s1, s2,
                                    gold, gold)))
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return words


@pytest.mark.slow
def test_mnli_from_glue_layout_files_reports_matched_and_mismatched(tmp_path, capsys):
    from ptloss_tf.training.cli import main
    from ptloss_tf.training.teacher.outputs import TeacherOutputs
    from tests.helpers import vocabulary

    rng = np.random.default_rng(0)
    words = write_mnli(tmp_path / "data", rng)
    (tmp_path / "vocab.txt").write_text("\n".join(vocabulary(words)) + "\n")
    root = str(tmp_path / "data")
    task = get_task("mnli")
    for split in ("train", "validation", "validation_mismatched"):
        ex = load_split(task, split, source="files", data_root=root)
        TeacherOutputs(ids=ex.ids, values=rng.dirichlet(np.ones(3), len(ex)), kind="probs",
                       class_names=ex.class_names, split=split,
                       teacher="stand-in").save(str(tmp_path / "teacher" / f"{split}.jsonl"))
    assert main(["--task", "mnli", "--source", "files", "--data-root", root,
                 "--teacher-outputs", str(tmp_path / "teacher"),
                 "--vocabulary", str(tmp_path / "vocab.txt"), "--loss", "kl",
                 "--output-dir", str(tmp_path / "run"), "--student-layers", "1",
                 "--hidden", "16", "--heads", "2", "--intermediate", "32", "--epochs", "1",
                 "--batch-size", "16", "--candidates", "4", "--order", "2",
                 "--sequence-length", "16", "--verbose", "0", "--no-xla"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    (kl,) = report["results"]
    for key in ("accuracy", "accuracy_mismatched", "nll_mismatched", "ece_mismatched"):
        assert 0.0 <= kl[key] <= (1.0 if key != "nll_mismatched" else 50.0), key
    # 12 matched / 15 mismatched rows: an accuracy is a multiple of 1/15.
    assert round(kl["accuracy_mismatched"] * 15, 6) == round(kl["accuracy_mismatched"] * 15)
    assert "accuracy_mismatched" in report["teacher"]
    assert "mismatched accuracy" in printed


# -- the whole job on a slice of each data set, as console scripts ------------

#: data set -> (train file, test file, text fields, label field, format).
FILE_TASKS = {
    "cb": ("train.jsonl", "val.jsonl", ("premise", "hypothesis"), "label", "jsonl"),
    "sst5": ("train.tsv", "test.tsv", ("sentence",), "label", "tsv"),
    "trec": ("train.tsv", "test.tsv", ("question",), "label", "tsv"),
}
K_CLASS_LOSSES = ("kl", "kl_calibrated", "ptloss", "dkd", "dist")


def _read_rows(path, kind):
    with open(path, encoding="utf-8", newline="") as f:
        if kind == "jsonl":
            return [json.loads(line) for line in f if line.strip()]
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _write_rows(path, rows, kind):
    with open(path, "w", encoding="utf-8", newline="") as f:
        if kind == "jsonl":
            f.writelines(json.dumps(row) + "\n" for row in rows)
        else:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t",
                                    quoting=csv.QUOTE_NONE, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FILE_TASKS))
def test_each_data_set_runs_the_k_class_losses_in_subprocesses(tmp_path, name):
    """The README's `--task file` commands on a slice of each data set (the
    first 24 training rows of every class, the first 40 test rows) with a
    tiny teacher and student, every K-class loss at once: report.json has a
    K-class result per loss, its predictions counted over the K names."""
    from tests.helpers import vocabulary
    from tests.helpers.hf_bert import write_tiny_hf_bert

    train_file, test_file, fields, label, kind = FILE_TASKS[name]
    folder = data_dir(name)
    classes = CLASS_NAMES[name]
    names = dict(zip(map(str, range(len(classes))), classes)) if name == "sst5" else None
    train, seen = [], collections.Counter()
    for row in _read_rows(os.path.join(folder, train_file), kind):
        if seen[row[label]] < 24:
            seen[row[label]] += 1
            train.append(row)
    assert len(seen) == len(classes)
    test = _read_rows(os.path.join(folder, test_file), kind)[:40]
    suffix = "jsonl" if kind == "jsonl" else "tsv"
    _write_rows(tmp_path / f"train.{suffix}", train, kind)
    _write_rows(tmp_path / f"test.{suffix}", test, kind)
    words = sorted({w for row in train for w in " ".join(row[k] for k in fields).lower().split()
                    if w.isalpha()})[:300]
    write_tiny_hf_bert(str(tmp_path / "bert"), vocabulary(words), layers=1)
    files = ["--task", "file", "--train-file", f"train.{suffix}", "--test-file",
             f"test.{suffix}", "--text-fields", *fields, "--label-field", label,
             "--class-names", *classes]

    def cli(*argv):
        return run_training_cli(*argv, cwd=tmp_path, timeout=900, check=True)

    cli("teacher", *files, "--preset", "bert", "--output-dir", "teacher", "--epochs", "1",
        "--sequence-length", "32", "--verbose", "0")
    run = cli(*files, "--teacher-outputs", "teacher", "--vocabulary", "bert/vocab.txt",
              "--loss", *K_CLASS_LOSSES, "--output-dir", "run", "--student-layers", "1",
              "--hidden", "16", "--heads", "2", "--intermediate", "32", "--epochs", "1",
              "--candidates", "6", "--order", "2", "--sequence-length", "32",
              "--verbose", "0", "--no-xla")
    assert "degenerate" not in run.stderr  # the two-class warning of DKD / DIST
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["class_names"] == list(classes)
    assert [r["method"] for r in report["results"]] == list(K_CLASS_LOSSES)
    for result in report["results"]:
        assert set(result["prediction_counts"]) == set(classes)
        assert sum(result["prediction_counts"].values()) == len(test)
        assert 0 <= result["accuracy"] <= 1 and np.isfinite(result["nll"])
    truth = collections.Counter(row[label] for row in test)
    assert report["teacher"]["label_counts"] == {
        c: truth.get(c if names is None else str(classes.index(c)), 0) for c in classes}


@pytest.mark.slow
def test_registered_task_teacher_then_distillation_in_subprocesses(tmp_path):
    """`ptloss-distill teacher --task cb`, then `ptloss-distill --task cb` on
    its outputs (ids `cb/<split>/<row>`): the registered task's splits, 40
    training rows, every held-out validation and test row."""
    from tests.helpers import vocabulary
    from tests.helpers.hf_bert import write_tiny_hf_bert

    data_dir("cb")
    write_tiny_hf_bert(str(tmp_path / "bert"), vocabulary(f"w{i}" for i in range(20)), layers=1)

    def cli(*argv):
        return run_training_cli(*argv, cwd=tmp_path, check=True)

    rows = ["--task", "cb", "--max-train-examples", "40", "--sequence-length", "32"]
    cli("teacher", *rows, "--preset", "bert", "--output-dir", "teacher", "--epochs", "1",
        "--verbose", "0")
    cli(*rows, "--teacher-outputs", "teacher", "--vocabulary", "bert/vocab.txt", "--loss", "kl",
        "dkd", "--output-dir", "run", "--student-layers", "1", "--hidden", "16", "--heads", "2",
        "--intermediate", "32", "--epochs", "1", "--verbose", "0", "--no-xla")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [r["method"] for r in report["results"]] == ["kl", "dkd"]
    assert sum(report["results"][0]["prediction_counts"].values()) == 56  # CB's val.jsonl
    with open(tmp_path / "teacher" / "validation.jsonl", encoding="utf-8") as f:
        ids = [json.loads(line)["id"] for line in f.readlines()[1:]]  # after the header
    assert len(ids) == 25 and all(i.startswith("cb/train/") for i in ids)
