"""Content fingerprints of teacher outputs (issue 12, item 2) and the
permissions of the files the teacher side writes (item 13).

`--task file` ids are row numbers, so before fingerprints the outputs of
another file with as many rows, or of a reshuffled copy, joined silently.
Golden fingerprints are recomputed here with hashlib from the documented
scheme, not taken from the code under test.
"""

import hashlib
import json
import os
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest

from ptloss_tf.training.data.examples import load_file
from ptloss_tf.training.teacher.join import join
from ptloss_tf.training.teacher.outputs import TeacherOutputs
from ptloss_tf.training.teacher.outputs import UncheckedAlignmentWarning
from ptloss_tf.training.teacher.outputs import text_fingerprints


def _blake2b_64(*segments):
    """The documented scheme: `"<count>;"`, then `"<bytes>:" + utf8` per
    whitespace-normalised segment, BLAKE2b with an 8-byte digest."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{len(segments)};".encode())
    for s in segments:
        data = " ".join(s.split()).encode("utf-8")
        h.update(str(len(data)).encode() + b":" + data)
    return h.hexdigest()


def _write_tsv(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for text, label in rows:
            f.write(f"{text}\t{label}\n")


ROWS_A = [("a gripping film", 1), ("dull and slow", 0), ("the best of the year", 1),
          ("not worth it", 0), ("fine acting", 1), ("a mess", 0)]
# Another task's file with as many rows (and the same labels): same ids.
ROWS_B = [("is the sky green", 0), ("water is wet", 1), ("cats bark", 0),
          ("fire is hot", 1), ("ice is warm", 0), ("snow is cold", 1)]


@pytest.fixture
def files(tmp_path):
    """Two different datasets of 6 rows named train.tsv (equal ids), and a
    reshuffled copy of the first."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "shuffled").mkdir()
    _write_tsv(tmp_path / "a" / "train.tsv", ROWS_A)
    _write_tsv(tmp_path / "b" / "train.tsv", ROWS_B)
    order = [3, 0, 5, 1, 4, 2]
    _write_tsv(tmp_path / "shuffled" / "train.tsv", [ROWS_A[i] for i in order])
    return tmp_path


def _teacher_file(examples, path, fingerprints=True, rng=None):
    """What `ptloss-distill teacher` writes for `examples` (stand-in logits)."""
    rng = rng or np.random.default_rng(0)
    logits = rng.normal(size=(len(examples), 2)).astype(np.float32)
    TeacherOutputs(ids=examples.ids, values=logits, kind="logits",
                   class_names=examples.class_names, split="train", teacher="t",
                   fingerprints=text_fingerprints(examples.texts) if fingerprints else None,
                   ).save(path)
    return logits


def test_fingerprints_are_the_documented_hash():
    texts = (np.array(["A film", "ünï  文\n", "ab"], dtype=object),
             np.array(["x", "", "c"], dtype=object))
    got = text_fingerprints(texts)
    assert got.tolist() == [_blake2b_64("A film", "x"), _blake2b_64("ünï 文", ""),
                            _blake2b_64("ab", "c")]
    # segment boundaries, segment count and case count; whitespace runs do not
    assert text_fingerprints((["a"], ["bc"]))[0] != got[2]
    assert text_fingerprints((["ab c"],))[0] != got[2]
    assert text_fingerprints(["a film"])[0] != _blake2b_64("A film")
    assert text_fingerprints([" A   film "])[0] == _blake2b_64("A film")
    assert len(got[0]) == 16 and int(got[0], 16) >= 0


def test_fingerprints_round_trip_and_layout(tmp_path):
    out = TeacherOutputs(["x"], [[0.5, 0.5]], "probs", ("a", "b"), "test", "t",
                         fingerprints=["00ff00ff00ff00ff"])
    out.save(tmp_path / "t.jsonl")
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["fingerprint"] == "blake2b-64/text-v1"
    assert json.loads(lines[1]) == {"id": "x", "values": [0.5, 0.5],
                                    "fingerprint": "00ff00ff00ff00ff"}
    assert TeacherOutputs.load(tmp_path / "t.jsonl").fingerprints.tolist() == ["00ff00ff00ff00ff"]
    # a header that promises fingerprints needs one on every line
    (tmp_path / "bad.jsonl").write_text(lines[0] + '\n{"id": "x", "values": [0.5, 0.5]}\n')
    with pytest.raises(ValueError, match="line 2: the header declares fingerprints"):
        TeacherOutputs.load(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match="1 ids but 2 fingerprints"):
        TeacherOutputs(["x"], [[0.5, 0.5]], "probs", ("a", "b"), "test", "t",
                       fingerprints=["a", "b"])


def test_outputs_of_another_file_with_the_same_row_count_are_refused(files):
    a = load_file(files / "a" / "train.tsv", "sentence", "label")
    b = load_file(files / "b" / "train.tsv", "sentence", "label")
    assert a.ids.tolist() == b.ids.tolist()  # why ids alone cannot tell them apart
    _teacher_file(b, files / "b.jsonl")
    with pytest.raises(ValueError) as e:
        join(TeacherOutputs.load(files / "b.jsonl"), a, "train")
    msg = str(e.value)
    assert "\n" not in msg
    assert "belong to other data: 6 of the 6 matched rows" in msg
    assert "'train/000000' (line 2), 'train/000001' (line 3)" in msg
    assert "another task or of a reshuffled" in msg


def test_outputs_of_a_reshuffled_copy_are_refused(files):
    a = load_file(files / "a" / "train.tsv", "sentence", "label")
    shuffled = load_file(files / "shuffled" / "train.tsv", "sentence", "label")
    _teacher_file(shuffled, files / "shuffled.jsonl")
    # rows 4 (`fine acting`) and the others all moved: order [3, 0, 5, 1, 4, 2]
    with pytest.raises(ValueError, match=r"5 of the 6 matched rows have texts different .*"
                                         r"'train/000000' \(line 2\), 'train/000001' \(line 3\), "
                                         r"'train/000002' \(line 4\), 'train/000003' \(line 5\), "
                                         r"'train/000005' \(line 7\)\)"):
        join(TeacherOutputs.load(files / "shuffled.jsonl"), a, "train")


def test_outputs_of_the_right_file_join_by_id(files, recwarn):
    a = load_file(files / "a" / "train.tsv", "sentence", "label")
    logits = _teacher_file(a, files / "a.jsonl")
    order = np.array([5, 2, 0, 1, 4, 3])
    joined = join(TeacherOutputs.load(files / "a.jsonl"), a.subset(order), "train")
    e = np.exp(logits[order] - logits[order].max(1, keepdims=True))
    np.testing.assert_allclose(joined, e / e.sum(1, keepdims=True), rtol=1e-6)
    assert not [w for w in recwarn if issubclass(w.category, UncheckedAlignmentWarning)]


def test_a_file_without_fingerprints_joins_with_a_warning(files):
    a = load_file(files / "a" / "train.tsv", "sentence", "label")
    _teacher_file(a, files / "old.jsonl", fingerprints=False)
    # a version-1 file, as written before fingerprints existed
    path = files / "old.jsonl"
    path.write_text(path.read_text().replace('"version": 2', '"version": 1', 1))
    old = TeacherOutputs.load(path)
    assert old.fingerprints is None
    with pytest.warns(UncheckedAlignmentWarning, match="alignment to the examples' texts "
                                                       "could not be checked"):
        joined = join(old, a, "train")
    assert joined.shape == (6, 2)


def test_registered_task_ids_get_the_same_check():
    from ptloss_tf.training.data.examples import Examples

    ids = ["sst2/train/000000", "sst2/train/000001"]
    examples = Examples(ids=ids, texts=(["good", "bad"],), labels=[1, 0], class_names=("0", "1"))
    other = TeacherOutputs(ids, [[0.2, 0.8], [0.7, 0.3]], "probs", ("0", "1"), "train", "t",
                           fingerprints=text_fingerprints((["good", "worse"],)))
    with pytest.raises(ValueError, match=r"1 of the 2 matched rows .*'sst2/train/000001' "
                                         r"\(line 3\)\)"):
        join(other, examples, "train")


def test_load_splits_notes_unchecked_files(files, monkeypatch):
    """`ptloss-distill` logs the warning as a note (log and report.json)."""
    from ptloss_tf.training.teacher import join as teacher_join

    a = load_file(files / "a" / "train.tsv", "sentence", "label")
    outputs = TeacherOutputs(a.ids, np.full((6, 2), 0.5), "probs", a.class_names, "train", "x")

    def fake_load(config, log):
        join(outputs, a, "train")
        from ptloss_tf.training.splits import Splits
        return Splits({"train": a, "validation": a, "test": a},
                      {s: np.full((6, 2), 0.5, np.float32) for s in ("train", "validation", "test")})

    monkeypatch.setattr(teacher_join, "_load_splits", fake_load)
    logged = []

    class Config:
        task = "file"

    with warnings.catch_warnings():
        warnings.simplefilter("error", UncheckedAlignmentWarning)  # must not escape
        splits = teacher_join.load_splits(Config(), log=logged.append)
    assert any("could not be checked" in n for n in splits.notes)
    assert any(line.startswith("Note: teacher outputs of 'x'") for line in logged)


def test_import_with_text_columns_stores_fingerprints(files):
    from ptloss_tf.training.teacher.table_import import import_table

    a = load_file(files / "a" / "train.tsv", "sentence", "label")
    table = files / "external.csv"
    # an external teacher's table keeps the text: its rows, reshuffled, with ids
    lines = ["id,sentence,p0,p1"] + [f'{a.ids[i]},"{a.texts[0][i]}",0.25,0.75'
                                     for i in (2, 0, 1, 5, 4, 3)]
    table.write_text("\n".join(lines) + "\n")
    out = import_table(table, "train", "ext", prob_columns=["p0", "p1"], class_names=("0", "1"),
                       text_columns=["sentence"])
    assert out.fingerprints.tolist() == [_blake2b_64(a.texts[0][i]) for i in (2, 0, 1, 5, 4, 3)]
    assert out.metadata["text_columns"] == ["sentence"]
    assert join(out, a, "train").shape == (6, 2)
    b = load_file(files / "b" / "train.tsv", "sentence", "label")
    with pytest.raises(ValueError, match="belong to other data: 6 of the 6"):
        join(out, b, "train")
    with pytest.raises(ValueError, match=r"column\(s\) \['text'\] not found"):
        import_table(table, "train", "ext", prob_columns=["p0", "p1"], text_columns="text")
    # without text columns: no fingerprints, as before
    assert import_table(table, "train", "ext", prob_columns=["p0", "p1"]).fingerprints is None


# -- the CLI ------------------------------------------------------------------

@pytest.mark.slow
def test_cli_refuses_another_tasks_outputs_with_one_line(files, tmp_path):
    """`ptloss-distill --task file` with the outputs of another task of the
    same size: exit 2, one line on stderr naming the problem, before any
    training."""
    for name, rows in (("a", ROWS_A), ("b", ROWS_B)):
        for split in ("validation", "test"):
            _write_tsv(files / name / f"{split}.tsv", rows)
    teacher_dir = tmp_path / "teacher_b"
    teacher_dir.mkdir()
    for split in ("train", "validation", "test"):
        ex = load_file(files / "b" / f"{split}.tsv", "sentence", "label", id_prefix=split)
        TeacherOutputs(ids=ex.ids, values=np.full((len(ex), 2), 0.0, np.float32),
                       kind="logits", class_names=ex.class_names, split=split, teacher="tb",
                       fingerprints=text_fingerprints(ex.texts)).save(teacher_dir / f"{split}.jsonl")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"]) + "\n")
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "ptloss_tf.training", "--task", "file",
         "--train-file", str(files / "a" / "train.tsv"),
         "--validation-file", str(files / "a" / "validation.tsv"),
         "--test-file", str(files / "a" / "test.tsv"), "--class-names", "0", "1",
         "--teacher-outputs", str(teacher_dir), "--vocabulary", str(vocab),
         "--output-dir", str(out), "--epochs", "1", "--verbose", "0", "--no-xla"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [l for l in proc.stderr.splitlines() if l.startswith("ptloss-distill: error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "belong to other data: 6 of the 6 matched rows" in errors[0]


# -- permissions (item 13) ----------------------------------------------------

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_saved_outputs_get_the_users_umask(tmp_path, umask_022):
    path = tmp_path / "train.jsonl"
    TeacherOutputs(["x"], [[0.5, 0.5]], "probs", ("a", "b"), "train", "t").save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    TeacherOutputs(["y"], [[0.5, 0.5]], "probs", ("a", "b"), "train", "t").save(
        path, overwrite=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    os.umask(0o077)
    TeacherOutputs(["z"], [[0.5, 0.5]], "probs", ("a", "b"), "train", "t").save(
        tmp_path / "private.jsonl")
    assert stat.S_IMODE(os.stat(tmp_path / "private.jsonl").st_mode) == 0o600
