"""The teacher pass in shards (issue 23, section 2): `ptloss-distill teacher
--shard I/N`, `ptloss-distill teacher merge`, and `import-teacher` of pieces.

The merge's refusals are tested on shard files written here (numpy and
JSON, no model); one tiny teacher (random weights, CPU) is fine-tuned once
and predicted unsharded and in 3 shards, end to end, and under JAX on a
data-parallel mesh of forced host devices.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ptloss_tf.training.cli import main
from ptloss_tf.training.teacher import shards as shards_mod
from ptloss_tf.training.teacher.outputs import TeacherOutputs
from ptloss_tf.training.teacher.shards import merge_shards
from ptloss_tf.training.teacher.shards import parse_shard
from ptloss_tf.training.teacher.shards import shard_file_name
from ptloss_tf.training.teacher.shards import shard_batches
from ptloss_tf.training.teacher.table_import import import_pieces
from tests.helpers import jax_env
from tests.helpers import vocabulary
from tests.helpers.hf_bert import write_tiny_hf_bert

SPLITS = (("train", 16), ("validation", 8), ("test", 8))


# -- the partition and the merge's refusals, on hand-made shard files ----------

def test_partition_strides_the_batches_and_covers_every_row_once():
    rng = np.random.default_rng(1)
    for n in (0, 2, 7, 40):
        lengths = rng.integers(3, 60, size=n)
        rows = np.concatenate([shard_batches(lengths, [16, 32, 64], 4, i, 3) for i in range(3)])
        assert sorted(rows.tolist()) == list(range(n))
    # buckets (0, 8] and (8, 32]; batches of 2: [0, 2] [1, 4] [3, 5] [6]
    lengths = [5, 20, 6, 7, 21, 6, 30]
    assert shard_batches(lengths, [8, 32], 2, 0, 3).tolist() == [0, 2, 6]
    assert shard_batches(lengths, [8, 32], 2, 2, 3).tolist() == [3, 5]
    assert shard_batches(lengths, [8, 32], 2, 1, 5).tolist() == [1, 4]
    assert shard_batches(lengths, [8, 32], 2, 4, 5).tolist() == []
    assert parse_shard(" 2/3 ") == (2, 3)
    for bad in ("3/3", "-1/3", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard must be I/N"):
            parse_shard(bad)


def _write_shard(directory, split, index, count, n, run="r1", ids=None):
    rows = np.arange(index, n, count)  # any partition: the file says which rows
    ids = [f"x{r}" for r in rows] if ids is None else ids
    values = np.stack([rows * 0.5, -rows / 3.0], axis=1).astype(np.float32)
    meta = {"shard": {"index": index, "count": count, "run": run, "split_rows": n,
                      "partition": "batch % count", "rows": rows.tolist()}}
    path = os.path.join(directory, shard_file_name(split, index, count))
    TeacherOutputs(ids=ids, values=values, kind="logits", class_names=("a", "b"), split=split,
                   teacher="t", metadata=meta, fingerprints=[f"{r:016x}" for r in rows]).save(path)
    return path


def test_merge_puts_the_rows_back_in_split_order(tmp_path):
    for i in range(3):
        _write_shard(tmp_path / "a", "train", i, 3, 7)
    written = merge_shards([tmp_path / "a"], tmp_path / "out", log=lambda m: None)
    merged = TeacherOutputs.load(written["train"])
    assert merged.ids.tolist() == [f"x{r}" for r in range(7)]
    np.testing.assert_array_equal(merged.values[:, 0], np.arange(7, dtype=np.float32) * 0.5)
    assert merged.metadata == {} and merged.fingerprints[3] == f"{3:016x}"
    # merging again keeps the same file; a different one needs --overwrite
    merge_shards([tmp_path / "a"], tmp_path / "out", log=lambda m: None)


def _one_line_error(paths, out, match):
    with pytest.raises(ValueError, match=match) as error:
        merge_shards(paths, out, log=lambda m: None)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_missing_shard_is_refused_by_name(tmp_path):
    _write_shard(tmp_path, "train", 0, 3, 7)
    _write_shard(tmp_path, "train", 2, 3, 7)
    message = _one_line_error([tmp_path], tmp_path / "out", "missing shards of train")
    assert shard_file_name("train", 1, 3) in message and "(1/3)" in message


def test_overlapping_shards_are_refused_by_name(tmp_path):
    a = [_write_shard(tmp_path / "a", "train", i, 3, 7) for i in range(3)]
    b = _write_shard(tmp_path / "b", "train", 1, 3, 7)
    message = _one_line_error([tmp_path / "a", tmp_path / "b"], tmp_path / "out",
                              "overlapping shards of train")
    assert a[1] in message and b in message
    other_n = _write_shard(tmp_path / "c", "train", 0, 2, 7)
    message = _one_line_error([tmp_path / "a", other_n], tmp_path / "out",
                              "overlapping shards of train: they divide it into 2 and 3")
    assert other_n in message
    # the same id in two shards
    d = [_write_shard(tmp_path / "d", "train", i, 2, 4, ids=["p", "q"]) for i in range(2)]
    message = _one_line_error([tmp_path / "d"], tmp_path / "out", "ids in more than one shard")
    assert d[0] in message and "'p'" in message
    # the same row in two shards (a partition made by hand)
    e = _write_shard(tmp_path / "e", "train", 0, 2, 4)
    f = _write_shard(tmp_path / "e", "train", 1, 2, 4, ids=["y1", "y3"])
    TeacherOutputs(["y1", "y3"], [[0.0, 1.0], [1.0, 0.0]], "logits", ("a", "b"), "train", "t",
                   metadata={"shard": {"index": 1, "count": 2, "run": "r1", "split_rows": 4,
                                       "partition": "batch % count", "rows": [1, 2]}},
                   fingerprints=["0", "1"]).save(f, overwrite=True)
    message = _one_line_error([tmp_path / "e"], tmp_path / "out", "both hold rows 2")
    assert e in message and f in message


def test_a_shard_of_another_run_is_refused_by_name(tmp_path):
    for i in range(3):
        _write_shard(tmp_path / "a", "train", i, 3, 7)
    foreign = _write_shard(tmp_path / "b", "train", 1, 3, 7, run="r2")
    os.unlink(tmp_path / "a" / shard_file_name("train", 1, 3))
    message = _one_line_error([tmp_path / "a", foreign], tmp_path / "out", "foreign shards")
    assert foreign in message and "run r1" in message


def test_a_file_that_is_not_a_shard_is_refused(tmp_path):
    path = tmp_path / "train.jsonl"
    TeacherOutputs(["x"], [[0.0, 1.0]], "logits", ("a", "b"), "train", "t").save(path)
    _one_line_error([path], tmp_path / "out", "is not a teacher shard")


def test_import_of_pieces_refuses_a_row_in_two_pieces(tmp_path):
    pieces = []
    for name, rows in (("a.csv", "1,0.2,0.8\n2,0.5,0.5\n"), ("b.csv", "3,0.6,0.4\n2,0.1,0.9\n")):
        (tmp_path / name).write_text("id,p0,p1\n" + rows)
        pieces.append(str(tmp_path / name))
    with pytest.raises(ValueError, match=r"overlapping pieces: 1 ids .* \(first few: '2'\)") as error:
        import_pieces(pieces, split="train", teacher="t5", prob_columns=["p0", "p1"])
    assert pieces[0] in str(error.value) and pieces[1] in str(error.value)
    (tmp_path / "b.csv").write_text("id,p0,p1\n3,0.6,0.4\n")
    out = import_pieces(pieces, split="train", teacher="t5", prob_columns=["p0", "p1"])
    assert out.ids.tolist() == ["1", "2", "3"] and out.metadata["pieces"][1] == pieces[1]


# -- end to end: one tiny teacher, unsharded and in 3 shards -----------------

def _write_tsv(path, rng, n):
    with open(path, "w") as f:
        f.write("sentence\tlabel\n")
        for _ in range(n):
            words = rng.integers(0, 40, size=rng.integers(2, 12))
            f.write(" ".join(f"w{w}" for w in words) + f"\t{int(np.mean(words) > 20)}\n")


def _argv(task, out, *extra):
    return ["teacher", "--task", "file", "--train-file", str(task / "train.tsv"),
            "--validation-file", str(task / "validation.tsv"),
            "--test-file", str(task / "test.tsv"), "--class-names", "0", "1",
            "--preset", str(task / "tinybert"), "--output-dir", str(out),
            "--epochs", "1", "--batch-size", "4", "--sequence-length", "16",
            "--verbose", "0", *extra]


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    """A task and its teacher fine-tuned once (`--fine-tune-only`)."""
    task = tmp_path_factory.mktemp("shards_task")
    rng = np.random.default_rng(0)
    for split, n in SPLITS:
        _write_tsv(task / f"{split}.tsv", rng, n)
    write_tiny_hf_bert(str(task / "tinybert"), vocabulary(f"w{i}" for i in range(40)),
                       layers=1)
    assert main(_argv(task, task / "run", "--fine-tune-only")) == 0
    assert (task / "run" / "teacher.keras").exists() and not list((task / "run").glob("*.jsonl"))
    return task


@pytest.mark.slow
def test_three_shards_merged_equal_the_unsharded_pass(fine_tuned, monkeypatch, capsys):
    task = fine_tuned
    shutil.copytree(task / "run", task / "whole")
    shutil.copytree(task / "run", task / "sharded")
    assert main(_argv(task, task / "whole")) == 0  # resumes: predicts every split
    assert main(["teacher", "merge", str(task / "sharded"),
                 "--output-dir", str(task / "sharded")]) == 2  # no shards yet
    for i in range(3):
        assert main(_argv(task, task / "sharded", "--shard", f"{i}/3")) == 0
    sizes = [len(TeacherOutputs.load(task / "sharded" / "shards" / shard_file_name("train", i, 3)))
             for i in range(3)]
    assert sum(sizes) == 16 and min(sizes) > 0
    assert main(["teacher", "merge", str(task / "sharded"),
                 "--output-dir", str(task / "sharded")]) == 0
    for split, _ in SPLITS:
        whole = TeacherOutputs.load(task / "whole" / f"{split}.jsonl")
        merged = TeacherOutputs.load(task / "sharded" / f"{split}.jsonl")
        assert merged.ids.tolist() == whole.ids.tolist()
        assert merged.values.tobytes() == whole.values.tobytes()  # bit for bit
        assert ((task / "sharded" / f"{split}.jsonl").read_bytes()
                == (task / "whole" / f"{split}.jsonl").read_bytes())
    # the merge is recorded in the run: the command without --shard keeps it
    capsys.readouterr()
    monkeypatch.setattr("ptloss_tf.training.teacher.run.predict_logits",
                        lambda *a, **k: pytest.fail("predicted again"))
    assert main(_argv(task, task / "sharded")) == 0
    assert capsys.readouterr().out.count("Keeping") == len(SPLITS)

    # a finished shard is not predicted again; an interrupted one restarts
    calls = []
    real = shards_mod.predict_logits
    monkeypatch.setattr(shards_mod, "predict_logits",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    os.unlink(task / "sharded" / "shards" / shard_file_name("test", 1, 3))
    assert main(_argv(task, task / "sharded", "--shard", "1/3")) == 0
    assert calls == [1]  # test only; train and validation kept
    assert main(_argv(task, task / "sharded", "--shard", "1/3")) == 0
    assert calls == [1]


@pytest.mark.slow
def test_a_shard_needs_this_runs_fine_tuned_teacher(fine_tuned, capsys):
    task = fine_tuned
    capsys.readouterr()
    assert main(_argv(task, task / "empty", "--shard", "0/2")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--fine-tune-only" in err[0]
    assert main(_argv(task, task / "run", "--shard", "0/2", "--seed", "1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other options (--seed)" in err[0]


# -- under JAX: the prediction on a keras.distribution data-parallel mesh -----

def _jax_teacher(task, out, *extra, devices):
    shutil.copytree(task / "run", out)
    step = subprocess.run([sys.executable, "-m", "ptloss_tf.training", *_argv(task, out, *extra)],
                          capture_output=True, text=True, env=jax_env(devices), timeout=600)
    assert step.returncode == 0, step.stderr[-3000:]


@pytest.mark.slow
def test_under_jax_the_teacher_predicts_on_a_data_parallel_mesh(fine_tuned, tmp_path):
    # 3 devices: every batch of 4 (and the buckets' partial ones) is padded,
    # and the padding rows' logits must not land on any example.
    task = fine_tuned
    shutil.copytree(task / "run", tmp_path / "tensorflow")
    assert main(_argv(task, tmp_path / "tensorflow")) == 0
    _jax_teacher(task, tmp_path / "mesh", "--distribution", "data_parallel", devices=3)
    _jax_teacher(task, tmp_path / "one_device", devices=3)
    _jax_teacher(task, tmp_path / "mesh_shard", "--distribution", "data_parallel",
                 "--shard", "1/2", devices=3)
    for split, n in SPLITS:
        reference = TeacherOutputs.load(tmp_path / "tensorflow" / f"{split}.jsonl")
        mesh = TeacherOutputs.load(tmp_path / "mesh" / f"{split}.jsonl")
        one = TeacherOutputs.load(tmp_path / "one_device" / f"{split}.jsonl")
        assert mesh.ids.tolist() == reference.ids.tolist() == one.ids.tolist()
        # The tiny teacher's logits are about 0.02, and its rows differ by
        # 4e-6 or more; JAX against TensorFlow (other kernels) and 3 devices
        # against 1 differ by float32 rounding, 1e-8 measured. So 1e-7 holds
        # the rounding, and a row's logits put on another row fail it.
        rows_apart = np.abs(reference.values[:, None] - reference.values[None]).max(-1)
        assert rows_apart[~np.eye(n, dtype=bool)].min() > 1e-6
        np.testing.assert_allclose(mesh.values, reference.values, rtol=0, atol=1e-7)
        np.testing.assert_allclose(mesh.values, one.values, rtol=0, atol=1e-7)
        shard = TeacherOutputs.load(tmp_path / "mesh_shard" / "shards"
                                    / shard_file_name(split, 1, 2))
        rows = shard.metadata["shard"]["rows"]
        assert 0 < len(rows) < n
        np.testing.assert_array_equal(shard.values, mesh.values[rows])


@pytest.mark.slow
def test_under_jax_the_teacher_predicts_window_by_window(fine_tuned, tmp_path):
    # 16 training rows in batches of 4 and length buckets: at least 4
    # batches. In windows of 2, no predict call holds more than 2 batches,
    # and the logits are those of one window over the whole split.
    worker = os.path.join(os.path.dirname(__file__), "..", "helpers",
                          "jax_predict_window_worker.py")
    out = tmp_path / "windows.npz"
    step = subprocess.run([sys.executable, worker, str(fine_tuned / "run" / "teacher.keras"),
                           str(fine_tuned / "train.tsv"), str(out), "2"],
                          capture_output=True, text=True, env=jax_env(3), timeout=600)
    assert step.returncode == 0, step.stderr[-3000:]
    result = np.load(out)
    whole_calls, windowed_calls = result["whole_calls"].tolist(), result["windowed_calls"].tolist()
    assert len(whole_calls) == 1 and whole_calls[0] >= 4
    assert max(windowed_calls) == 2 and sum(windowed_calls) == whole_calls[0]
    assert len(windowed_calls) == -(-whole_calls[0] // 2)
    assert result["windowed"].shape == (16, 2) and np.isfinite(result["windowed"]).all()
    np.testing.assert_array_equal(result["windowed"], result["whole"])


def test_a_mesh_for_the_teacher_needs_jax(fine_tuned, tmp_path, capsys):
    assert main(_argv(fine_tuned, tmp_path / "run", "--distribution", "data_parallel")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "KERAS_BACKEND=jax" in err[0] and "--shard" in err[0]
    assert main(_argv(fine_tuned, tmp_path / "run", "--devices", "2")) == 2
    assert "--devices applies with --distribution" in capsys.readouterr().err
