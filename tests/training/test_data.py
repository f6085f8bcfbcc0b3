"""Tests of `ptloss_tf.training.data`: task registry, loaders (local files, TFDS mock,
generic TSV/JSONL) and the tf.data pipeline (padding, bucketing, targets)."""

import json
import os
import string

import numpy as np
import pytest
import tensorflow as tf

from ptloss_tf.training.data import input_pipeline as pipeline_lib
from ptloss_tf.training.data import tasks as tasks_lib
from ptloss_tf.training.data.examples import Examples
from ptloss_tf.training.data.examples import load_file
from ptloss_tf.training.data.sources import load_split
from ptloss_tf.training.data.input_pipeline import make_dataset
from ptloss_tf.training.data.input_pipeline import sequence_lengths
from ptloss_tf.training.data.tasks import TASKS
from ptloss_tf.training.data.tasks import get_task
from tests.helpers import vocabulary

DATA_ROOT = tasks_lib.default_data_root()
needs_data = pytest.mark.skipif(
    not os.path.isdir(os.path.join(DATA_ROOT, "glue")),
    reason=f"real data not found under {DATA_ROOT} (set PTLOSS_DATA_DIR)",
)


# -- fixtures -------------------------------------------------------------------

def _vocabulary(texts):
    """A word-level vocab from `texts` plus single characters (with their
    `##` continuation forms), so any ASCII text tokenises without [UNK]."""
    words = set()
    for t in texts:
        words.update(t.lower().replace(".", " . ").replace(",", " , ").split())
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = vocabulary(chars + ["##" + c for c in chars])
    return vocab + sorted(words - set(vocab))


@pytest.fixture(scope="module")
def sst2_test():
    return load_split("sst2", "test", source="files")


@pytest.fixture(scope="module")
def rte_dev():
    return load_split("rte", "validation", source="files")


@pytest.fixture(scope="module")
def preprocessor(sst2_test, rte_dev):
    import keras_hub

    texts = list(sst2_test.texts[0]) + list(rte_dev.texts[0]) + list(rte_dev.texts[1])
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=_vocabulary(texts), lowercase=True)
    return keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=64)


def _direct(preprocessor, texts):
    """Reference tokenisation outside tf.data: `texts` is a tuple of 1 or 2
    lists of strings (segments); returns `[N, L]` int32 arrays."""
    x = tuple(tf.constant(list(t)) for t in texts)
    out = preprocessor(x[0] if len(x) == 1 else x, y=None)
    return {k: np.asarray(out[k]).astype(np.int32) for k in pipeline_lib.INPUT_KEYS}


def _epoch(ds):
    return [(
        {k: v.numpy() for k, v in x.items()},
        {k: v.numpy() for k, v in y.items()},
    ) for x, y in ds]


# -- task registry ------------------------------------------------------------

def test_task_registry():
    assert set(TASKS) == {"sst2", "mnli", "boolq", "rte", "cb", "sst5", "trec"}
    assert get_task("SST-2") is TASKS["sst2"]
    assert get_task("glue/rte") is TASKS["rte"]
    assert get_task(TASKS["boolq"]) is TASKS["boolq"]
    mnli = get_task("mnli")
    assert mnli.class_names == ("entailment", "neutral", "contradiction")
    assert mnli.text_fields == ("premise", "hypothesis")
    assert mnli.tfds_splits["validation"] == "validation_matched"
    assert mnli.tfds_splits["validation_mismatched"] == "validation_mismatched"
    assert get_task("boolq").text_fields == ("question", "passage")
    assert get_task("boolq").class_names == ("False", "True")
    assert get_task("rte").class_names == ("entailment", "not_entailment")
    for name, spec in TASKS.items():
        assert spec.name == name and spec.label_field == "label"
        assert spec.files_only or {"train", "validation", "test"} <= set(spec.tfds_splits)
        assert {"train", "validation", "test"} <= set(spec.local_files)
    with pytest.raises(ValueError,
                       match="unknown task 'cola'.*boolq, cb, mnli, rte, sst2, sst5, trec"):
        get_task("cola")


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv(tasks_lib.DATA_DIR_ENV, raising=False)
    root = tasks_lib.default_data_root()
    assert root.endswith(os.path.join("shared", "data")) and os.path.isabs(root)
    monkeypatch.setenv(tasks_lib.DATA_DIR_ENV, str(tmp_path))
    assert tasks_lib.default_data_root() == str(tmp_path)


# -- local files ----------------------------------------------------------------

@needs_data
def test_sst2_local_splits(sst2_test):
    assert len(sst2_test) == 872
    assert sst2_test.label_counts().tolist() == [428, 444]
    assert sst2_test.class_names == ("negative", "positive")
    assert sst2_test.ids[0] == "sst2/dev/000000"
    assert sst2_test.texts[0][0].startswith("it 's a charming and often affecting journey")
    assert "dev.tsv" in sst2_test.note
    validation = load_split("sst2", "validation", source="files")
    train = load_split("sst2", "train", source="files")
    assert len(validation) == get_task("sst2").derived_splits.size == 872
    assert len(train) + len(validation) == 67349
    assert not set(validation.ids) & set(train.ids)
    assert not set(validation.ids) & set(sst2_test.ids)  # validation != test
    assert "seed 0" in validation.note and "held out" in validation.note
    again = load_split("sst2", "validation", source="auto")
    np.testing.assert_array_equal(again.ids, validation.ids)
    assert len(load_split("sst2", "train", limit=10)) == 10


@needs_data
def test_rte_local(rte_dev):
    assert len(rte_dev) == 277
    assert rte_dev.is_pair and len(rte_dev.texts) == 2
    assert rte_dev.class_names == ("entailment", "not_entailment")
    assert (rte_dev.labels >= 0).all() and rte_dev.label_counts().sum() == 277
    assert rte_dev.ids[0] == "rte/dev/000000"
    assert rte_dev.texts[0][0].startswith("Dana Reeve")
    assert rte_dev.texts[1][0] == "Christopher Reeve had an accident."
    assert rte_dev.labels[0] == 1  # not_entailment


@needs_data
def test_boolq_local_split():
    parts = {s: load_split("boolq", s, source="files") for s in ("train", "validation", "test")}
    sizes = {s: len(e) for s, e in parts.items()}
    assert sum(sizes.values()) == 3270
    assert sizes == {"train": 1962, "validation": 654, "test": 654}
    ids = [set(e.ids) for e in parts.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set.union(*ids) == {f"boolq/dev/{i:06d}" for i in range(3270)}
    counts = sum(e.label_counts() for e in parts.values())
    assert counts.tolist() == [1237, 2033]  # False / True over all of dev.jsonl
    for s, e in parts.items():
        assert e.is_pair and e.class_names == ("False", "True")
        assert "60/20/20" in e.note and "seed 0" in e.note
        again = load_split("boolq", s, source="files")
        np.testing.assert_array_equal(again.ids, e.ids)
        np.testing.assert_array_equal(again.labels, e.labels)


def test_load_split_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'dev' for task sst2; known: train"):
        load_split("sst2", "dev")
    with pytest.raises(ValueError, match="unknown source"):
        load_split("sst2", "train", source="web")
    with pytest.raises(FileNotFoundError) as info:
        load_split("rte", "train", source="files", data_root=str(tmp_path))
    message = str(info.value)
    assert os.path.join(str(tmp_path), "glue", "RTE", "train.tsv") in message
    assert "PTLOSS_DATA_DIR" in message and "--tfds-data-dir" in message
    assert "\n" not in message


# -- TFDS (mocked: random examples from the features spec, no download) ---------

@pytest.mark.parametrize(
    "task_name, split, tfds_split, num_classes",
    [
        ("sst2", "train", "train", 2),
        ("mnli", "validation", "validation_matched", 3),
        ("boolq", "validation", "validation", 2),
    ],
)
def test_load_split_tfds_mock(tmp_path, task_name, split, tfds_split, num_classes):
    import tensorflow_datasets as tfds

    task = get_task(task_name)
    with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
        ex = load_split(task, split, source="tfds", tfds_data_dir=str(tmp_path))
        # "auto" without local files falls back to TFDS.
        auto = load_split(task, split, source="auto", data_root=str(tmp_path / "none"),
                          tfds_data_dir=str(tmp_path), limit=5)
    assert len(ex) == 12 and ex.labels.shape == (12,) and ex.labels.dtype == np.int64
    assert ex.class_names == task.class_names and len(ex.class_names) == num_classes
    assert ((ex.labels >= 0) & (ex.labels < num_classes)).all()
    assert len(ex.texts) == len(task.text_fields) == (1 if task_name == "sst2" else 2)
    for t in ex.texts:
        assert t.shape == (12,) and all(isinstance(s, str) for s in t)
    assert len(set(ex.ids)) == 12
    assert all(i.startswith(f"{task_name}/{tfds_split}/") for i in ex.ids)
    assert task.tfds_name in ex.note
    assert len(auto) == 5
    np.testing.assert_array_equal(auto.ids, ex.ids[:5])


# -- load_file ------------------------------------------------------------------

def test_load_file_tsv(tmp_path):
    p = tmp_path / "train.tsv"
    p.write_text('id\tsentence\tlabel\nx1\ta "quoted" film\tpositive\n'
                 "x2\tdull\tnegative\n\n", encoding="utf-8")
    ex = load_file(str(p), ("sentence",), "label", id_field="id",
                   class_names=("negative", "positive"))
    assert ex.labels.tolist() == [1, 0]
    assert ex.ids.tolist() == ["x1", "x2"]
    assert ex.texts[0].tolist() == ['a "quoted" film', "dull"]
    # Integer labels, inferred class names, row-number ids with a prefix.
    q = tmp_path / "ints.tsv"
    q.write_text("s1\ts2\tlabel\na\tb\t2\nc\td\t0\ne\tf\t\n", encoding="utf-8")
    ex = load_file(str(q), ("s1", "s2"), "label", id_prefix="demo/train")
    assert ex.class_names == ("0", "2") and ex.labels.tolist() == [1, 0, -1]
    assert ex.ids.tolist() == ["demo/train/000000", "demo/train/000001", "demo/train/000002"]
    assert ex.is_pair
    # String labels, no class names: sorted unique values.
    ex = load_file(str(p), "sentence", "label")
    assert ex.class_names == ("negative", "positive") and ex.labels.tolist() == [1, 0]
    assert ex.ids.tolist() == ["train/000000", "train/000001"]


def test_load_file_jsonl(tmp_path):
    p = tmp_path / "dev.jsonl"
    rows = [{"question": "is it?", "passage": "yes it is", "answer": True, "k": "a"},
            {"question": "is it not?", "passage": "no", "answer": False, "k": "b"}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    ex = load_file(str(p), ("question", "passage"), "answer", id_field="k",
                   class_names=("False", "True"))
    assert ex.labels.tolist() == [1, 0] and ex.ids.tolist() == ["a", "b"]
    assert ex.texts[1].tolist() == ["yes it is", "no"]
    ex = load_file(str(p), ("question", "passage"), "answer")
    assert ex.class_names == ("False", "True") and ex.labels.tolist() == [1, 0]
    ex = load_file(str(p), ("question",))  # no labels
    assert ex.labels.tolist() == [-1, -1]


def test_load_file_errors(tmp_path):
    p = tmp_path / "bad.tsv"
    p.write_text("sentence\tlabel\nok\tpositive\nhmm\tmaybe\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_file(str(p), ("sentence",), "label", class_names=("negative", "positive"))
    message = str(info.value)
    assert "'maybe'" in message and str(p) in message and f"{p}:3" in message
    with pytest.raises(ValueError, match=r"missing column 'text' \(columns: 'sentence', 'label'\)"):
        load_file(str(p), ("text",), "label")
    with pytest.raises(FileNotFoundError, match="nope.tsv: file not found.*PTLOSS_DATA_DIR"):
        load_file(str(tmp_path / "nope.tsv"), ("sentence",), "label")
    empty = tmp_path / "empty.tsv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.tsv: empty file"):
        load_file(str(empty), ("sentence",))
    header_only = tmp_path / "header.tsv"
    header_only.write_text("sentence\tlabel\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header.tsv: no data rows"):
        load_file(str(header_only), ("sentence",))
    j = tmp_path / "x.jsonl"
    j.write_text('{"q": "a", "label": 1}\n{"q": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"x.jsonl:2: missing column 'label'"):
        load_file(str(j), ("q",), "label")
    with pytest.raises(ValueError, match=r"x.jsonl: missing column 'text'"):
        load_file(str(j), ("text",))
    dup = tmp_path / "dup.tsv"
    dup.write_text("id\ts\nA\tx\nA\ty\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dup.tsv:3: duplicate id 'A'"):
        load_file(str(dup), ("s",), id_field="id")
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_file(str(tmp_path / "data.parquet"), ("s",))


def test_examples_subset_take():
    ex = Examples(ids=["a", "b", "c"], texts=(np.array(["x", "y", "z"], dtype=object),),
                  labels=[0, 1, -1], class_names=("n", "p"), note="n")
    sub = ex.subset([2, 0])
    assert sub.ids.tolist() == ["c", "a"] and sub.labels.tolist() == [-1, 0]
    assert sub.texts[0].tolist() == ["z", "x"] and sub.note == "n"
    assert ex.subset(np.array([True, False, True])).ids.tolist() == ["a", "c"]
    assert len(ex.take(2)) == 2 and len(ex.take(10)) == 3
    assert ex.label_counts().tolist() == [1, 1]
    with pytest.raises(ValueError, match="out of range"):
        Examples(ids=["a"], texts=(np.array(["x"], dtype=object),), labels=[2],
                 class_names=("n", "p"))


# -- pipeline -------------------------------------------------------------------

@needs_data
def test_fixed_padding_shapes_and_alignment(sst2_test, preprocessor):
    ex = sst2_test.take(100)
    probs = np.random.default_rng(0).dirichlet([1.0, 1.0], size=100)  # float64
    ds = make_dataset(ex, preprocessor, 32, targets={"teacher_probs": probs,
                                                     "labels": ex.labels})
    spec_x, spec_y = ds.element_spec
    for k in ("token_ids", "segment_ids", "padding_mask"):
        assert spec_x[k].dtype == tf.int32 and spec_x[k].shape.as_list() == [None, 64]
    assert spec_y["teacher_probs"].dtype == tf.float32
    batches = _epoch(ds)
    assert [b[0]["token_ids"].shape for b in batches] == [(32, 64)] * 3 + [(4, 64)]
    assert ds.cardinality().numpy() == 4
    x = {k: np.concatenate([b[0][k] for b in batches]) for k in spec_x}
    y = {k: np.concatenate([b[1][k] for b in batches]) for k in spec_y}
    assert set(np.unique(x["padding_mask"])) == {0, 1}
    np.testing.assert_array_equal(y["labels"], ex.labels)  # order kept
    np.testing.assert_allclose(y["teacher_probs"], probs.astype(np.float32))
    # A known row: tokenised in the pipeline exactly as the preprocessor does.
    ref = _direct(preprocessor, ([ex.texts[0][7]],))
    for k in spec_x:
        np.testing.assert_array_equal(x[k][7], ref[k][0])
    np.testing.assert_array_equal(x["padding_mask"].sum(1), sequence_lengths(ex, preprocessor))
    # Default targets: the labels.
    _, y0 = next(iter(make_dataset(ex, preprocessor, 8)))
    np.testing.assert_array_equal(y0["labels"].numpy(), ex.labels[:8])


@needs_data
def test_bucketing_dynamic(sst2_test, preprocessor):
    ex = sst2_test.take(200)
    lengths = sequence_lengths(ex, preprocessor)
    assert lengths.min() >= 3 and lengths.max() <= 64
    boundaries = [16, 24, 32, 64]
    rows = np.arange(len(ex))
    ds = make_dataset(ex, preprocessor, 16, targets={"row": rows, "labels": ex.labels},
                      shuffle=True, seed=3, bucket_boundaries=[24, 16, 32])  # 64 added
    epoch1, epoch2 = _epoch(ds), _epoch(ds)
    assert ds.cardinality().numpy() == len(epoch1) == len(epoch2)
    for epoch in (epoch1, epoch2):
        seen = np.concatenate([y["row"] for _, y in epoch])
        np.testing.assert_array_equal(np.sort(seen), rows)  # each example exactly once
        padded = 0
        for x, y in epoch:
            real = lengths[y["row"]]
            width = x["token_ids"].shape[1]
            bucket = np.searchsorted(boundaries, real)  # b[i-1] < len <= b[i]
            assert len(set(bucket)) == 1  # one bucket per batch
            assert width == real.max() <= boundaries[bucket[0]]  # padded to the longest
            np.testing.assert_array_equal(x["padding_mask"].sum(1), real)
            np.testing.assert_array_equal(y["labels"], ex.labels[y["row"]])
            padded += x["token_ids"].size
        assert padded < 0.7 * len(ex) * 64
    order1 = np.concatenate([y["row"] for _, y in epoch1])
    order2 = np.concatenate([y["row"] for _, y in epoch2])
    assert not np.array_equal(order1, order2)  # reshuffled every epoch
    # Deterministic from the seed: a new dataset repeats the same epochs.
    again = make_dataset(ex, preprocessor, 16, targets={"row": rows, "labels": ex.labels},
                         shuffle=True, seed=3, bucket_boundaries=[16, 24, 32])
    np.testing.assert_array_equal(
        np.concatenate([y["row"].numpy() for _, y in again]), order1)
    # A known row after shuffling and bucketing: same tokens as directly.
    for x, y in epoch1:
        hit = np.flatnonzero(y["row"] == 7)
        if hit.size:
            ref = _direct(preprocessor, ([ex.texts[0][7]],))
            width = x["token_ids"].shape[1]
            for k in pipeline_lib.INPUT_KEYS:
                np.testing.assert_array_equal(x[k][hit[0]], ref[k][0][:width])


@needs_data
def test_bucketing_static_shapes(sst2_test, preprocessor):
    ex = sst2_test.take(200)
    boundaries = [16, 24, 32, 64]
    ds = make_dataset(ex, preprocessor, 16, targets={"row": np.arange(200)},
                      bucket_boundaries=boundaries, static_shapes=True, drop_remainder=True)
    lengths = sequence_lengths(ex, preprocessor)
    auto = make_dataset(ex, preprocessor, 16, bucket_boundaries="auto", static_shapes=True)
    auto_bounds = pipeline_lib.auto_bucket_boundaries(lengths, 64)
    assert auto_bounds[-1] == 64 and auto_bounds == sorted(set(auto_bounds))
    widths = {x["token_ids"].shape[1] for x, _ in auto}
    assert widths <= set(auto_bounds) and len(widths) > 1
    seen = []
    for x, y in ds:
        b, width = x["token_ids"].shape
        assert b == 16 and width in boundaries
        real = lengths[y["row"].numpy()]
        assert real.max() <= width and (width == 16 or real.min() > boundaries[
            boundaries.index(width) - 1])
        seen.extend(y["row"].numpy().tolist())
    assert len(seen) == len(set(seen)) and len(seen) > 200 - 4 * 16
    assert ds.cardinality().numpy() == len(seen) // 16


@needs_data
def test_sentence_pairs_segment_ids(rte_dev, preprocessor):
    ex = rte_dev.take(40)
    ds = make_dataset(ex, preprocessor, 8, bucket_boundaries=[32, 48],
                      targets={"row": np.arange(40)})
    sep = preprocessor.tokenizer.token_to_id("[SEP]")
    refs = _direct(preprocessor, (ex.texts[0], ex.texts[1]))["token_ids"]
    checked = 0
    for x, y in _epoch(ds):
        for i, row in enumerate(y["row"]):
            tokens, segments = x["token_ids"][i], x["segment_ids"][i]
            mask = x["padding_mask"][i]
            n = int(mask.sum())
            seps = np.flatnonzero(tokens[:n] == sep)
            assert len(seps) == 2 and seps[1] == n - 1
            expected = np.zeros_like(segments)
            expected[seps[0] + 1:n] = 1
            np.testing.assert_array_equal(segments, expected)
            assert segments[seps[0] + 1:n].all() and segments[n:].sum() == 0
            np.testing.assert_array_equal(tokens, refs[row][:len(tokens)])
            checked += 1
    assert checked == 40


def test_auto_boundaries_and_errors(preprocessor):
    b = pipeline_lib.auto_bucket_boundaries(np.r_[np.full(60, 10), np.full(25, 20),
                                                  np.full(15, 40)], 128)
    assert b == [16, 24, 40, 128]
    assert pipeline_lib.auto_bucket_boundaries([200], 128) == [128]
    ex = Examples(ids=["a", "b"], texts=(np.array(["good film", "bad"], dtype=object),),
                  labels=[-1, -1], class_names=("n", "p"))
    ds = make_dataset(ex, preprocessor, 2, bucket_boundaries=[4])
    x = next(iter(ds))  # unlabeled and no targets: inputs only
    assert isinstance(x, dict) and x["token_ids"].shape == (2, 4)
    assert ds.cardinality().numpy() == 1
    # numpy unicode text arrays work as well as object arrays
    ex_u = Examples(ids=["a", "b"], texts=(np.array(["good film", "bad"]),),
                    labels=[1, 0], class_names=("n", "p"))
    x_u, y_u = next(iter(make_dataset(ex_u, preprocessor, 2)))
    np.testing.assert_array_equal(x_u["token_ids"].numpy()[:, :4], x["token_ids"].numpy())
    assert y_u["labels"].numpy().tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"targets\['p'\] has shape \(3,\)"):
        make_dataset(ex, preprocessor, 2, targets={"p": np.zeros(3)})
    with pytest.raises(ValueError, match="bucket_boundaries"):
        make_dataset(ex, preprocessor, 2, bucket_boundaries="fast")
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(ex, preprocessor, 0)
