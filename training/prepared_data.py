"""The prepared-data directory: everything a run computes with TensorFlow
before training, stored once in a framework-neutral format (numpy arrays and
JSON), so that a host with Keras and JAX (or PyTorch) but no TensorFlow can
train the students.

    ptloss-distill prepare [data, teacher-output and search options] --output-dir PREPARED
    KERAS_BACKEND=jax ptloss-distill --prepared-data PREPARED --output-dir RUN [training options]

What needs TensorFlow, and so happens in `prepare`: reading TFDS, keras-hub
tokenisation (TF Text ops), the Proxy Teacher search (`tf.function`
solver). The teacher outputs are joined, the recalibration fitted and every
split tokenised there too. Training, evaluation and `student.keras` need
only Keras; exporting for TF-Serving needs TensorFlow again.

Layout of PREPARED (format `ptloss-prepared-data`, version 1):

* `prepared.json`: `{"format", "version", "created_utc", "config" (the
  `DistillConfig` of prepare), "class_names", "num_segments",
  "sequence_length", "vocabulary": "vocab.txt", "splits": {split: {"file",
  "rows", "sha256", "note"}}, "coefficients", "search", "calibration",
  "coefficients_calibrated", "search_calibrated", "task_config", "notes"}`;
* `<split>.npz` (`numpy.savez_compressed`, no pickled objects): `token_ids`,
  `segment_ids`, `padding_mask` (int32 `[N, sequence_length]`, as the
  keras-hub preprocessor emits them), `labels` (int32 `[N]`, -1 unlabelled),
  `teacher_probs` (float32 `[N, K]`), `teacher_probs_calibrated` (with a
  calibration), `p_star` (the synthetic task), `ids` and `text_0`
  (`text_1` for pairs) as unicode arrays;
* `vocab.txt`: the tokenizer's wordpieces (export rebuilds the tokenizer
  from it);
* the search's files (`coefficients.json`, `search.json`, `search.png`,
  `calibration.json`, `*_calibrated.*`), copied into each run's directory.

The options that shape the data (`DATA_FIELDS`: task, files, teacher
outputs, search, sequence length, ...) are fixed by `prepare`; a training
run takes the others (methods, epochs, learning rate, seed, student size,
hardware) from its own command line. With `--max-train-examples` the
training rows are the ones drawn with prepare's `--seed`: a training run's
`--seed` changes the data order and initialisation, not the rows.
"""

import dataclasses
import json
import os
import shutil
import time

import numpy as np

from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.io_utils import atomic_write_text
from ptloss_tf.io_utils import file_sha256
from ptloss_tf.io_utils import publish_file
from ptloss_tf.training.data.examples import Examples
from ptloss_tf.training.data.tokenization import INPUT_KEYS
from ptloss_tf.training.search_stage import SearchStage
from ptloss_tf.training.splits import Splits

PREPARED_FILE = "prepared.json"
FORMAT = "ptloss-prepared-data"
VERSION = 1
VOCABULARY_FILE = "vocab.txt"
#: `DistillConfig` fields that `prepare` fixes.
DATA_FIELDS = (
    "task", "source", "data_root", "tfds_data_dir", "train_file", "validation_file",
    "test_file", "text_fields", "label_field", "class_names", "no_header",
    "max_train_examples", "synthetic_train", "synthetic_validation", "synthetic_test",
    "synthetic_classes", "overconfidence", "prior_shift", "teacher_noise", "negation_rate",
    "prior_shift_class", "teacher_confusion", "confusion_classes",
    "teacher_outputs", "order", "candidates", "criterion", "coefficients", "calibration",
    "search_seed", "vocabulary", "sequence_length",
)
#: Student fields a training run takes from `prepare` unless it sets them
#: (`--preset` names the weights' folder on the training host).
MODEL_FIELDS = ("preset", "init_from_layers", "student_layers", "hidden", "heads",
                "intermediate", "dropout")
#: Files of the search stage, copied from PREPARED into each run.
SEARCH_FILES = ("coefficients.json", "search.json", "search.png", "calibration.json",
                "coefficients_calibrated.json", "search_calibrated.json",
                "search_calibrated.png")


def write_prepared(folder, config, splits, stage, preprocessor, log=print):
    """Tokenises every split with `preprocessor` and writes the prepared-data
    directory `folder` (see the module docstring); `prepared.json` is
    written last, so a directory without it is unfinished. Needs
    TensorFlow (keras-hub tokenisation)."""
    from ptloss_tf.training.data.input_pipeline import tokenize_examples

    os.makedirs(folder, exist_ok=True)
    entries = {}
    for split, examples in splits.examples.items():
        start = time.time()
        arrays = dict(tokenize_examples(examples, preprocessor))
        arrays["labels"] = np.asarray(examples.labels, np.int32)
        arrays["teacher_probs"] = np.asarray(splits.teacher_probs[split], np.float32)
        if stage.calibrated is not None:
            arrays["teacher_probs_calibrated"] = np.asarray(
                stage.calibrated.teacher_probs[split], np.float32)
        if split in splits.p_star:
            arrays["p_star"] = np.asarray(splits.p_star[split], np.float32)
        arrays["ids"] = np.asarray(examples.ids, dtype=str)
        for i, texts in enumerate(examples.texts):
            arrays[f"text_{i}"] = np.asarray([str(t) for t in texts], dtype=str)
        path = os.path.join(folder, f"{split}.npz")
        tmp = path + ".tmp.npz"
        try:
            np.savez_compressed(tmp, **arrays)  # mostly padding: compresses ~10x
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        publish_file(tmp, path)
        entries[split] = {"file": os.path.basename(path), "rows": len(examples),
                          "sha256": file_sha256(path), "note": examples.note}
        log(f"Prepared {split}: {len(examples)} examples tokenised in "
            f"{time.time() - start:.1f} s -> {path}")
    atomic_write_text(os.path.join(folder, VOCABULARY_FILE),
                      "".join(f"{t}\n" for t in preprocessor.tokenizer.get_vocabulary()))
    manifest = {
        "format": FORMAT, "version": VERSION,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.to_dict(),
        "class_names": list(splits.class_names),
        "num_segments": len(splits.examples["test"].texts),
        "sequence_length": int(preprocessor.sequence_length),
        "vocabulary": VOCABULARY_FILE,
        "splits": entries,
        "coefficients": (stage.coefficients.values.tolist()
                         if stage.coefficients is not None else None),
        "search": stage.search,
        "calibration": stage.calibration.get_config() if stage.calibration is not None else None,
        "coefficients_calibrated": (stage.calibrated_coefficients.values.tolist()
                                    if stage.calibrated_coefficients is not None else None),
        "search_calibrated": stage.calibrated_search,
        "task_config": splits.task_config,
        "notes": list(splits.notes),
    }
    atomic_write_json(os.path.join(folder, PREPARED_FILE), manifest)
    return manifest


@dataclasses.dataclass
class PreparedData:
    """A prepared-data directory read back (`read_prepared`).

    Attributes:
        folder: the directory.
        manifest: `prepared.json`.
        splits: `Splits` (examples with texts, labels and ids; teacher
            probabilities; p* for the synthetic task).
        tokens: `{split: {"token_ids", "segment_ids", "padding_mask"}}`.
        stage: the `SearchStage` (coefficients, calibration, calibrated splits).
    """

    folder: str
    manifest: dict
    splits: Splits
    tokens: dict
    stage: SearchStage

    @property
    def vocabulary_path(self):
        return os.path.join(self.folder, self.manifest["vocabulary"])

    def training_config(self, config):
        """`config` with the `DATA_FIELDS` of the prepared run, and its
        `MODEL_FIELDS` where `config` leaves them at their defaults.

        Raises ValueError if `config` sets a data field to a value other
        than its default and the prepared one (prepare again to change it).
        """
        from ptloss_tf.training.config import DistillConfig

        prepared = self.manifest["config"]
        defaults = DistillConfig()
        changes = {}
        for name in DATA_FIELDS:
            value = _plain(getattr(config, name))
            recorded = _plain(prepared.get(name))
            if value != recorded and value != _plain(getattr(defaults, name)):
                shown = "unset: the default" if recorded is None else repr(recorded)
                raise ValueError(
                    f"`{name}` is fixed by the prepared data in {self.folder} "
                    f"({shown}); run `ptloss-distill prepare` again to change it.")
            changes[name] = tuple(recorded) if isinstance(recorded, list) else recorded
        for name in MODEL_FIELDS:
            if getattr(config, name) == getattr(defaults, name) and name in prepared:
                changes[name] = prepared[name]
        return config.replace(**changes)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def read_prepared(folder):
    """Reads and checks a prepared-data directory (numpy and JSON only: no
    TensorFlow). Raises ValueError naming what is wrong: not a prepared
    directory, unfinished, another format version, a file missing or
    changed since it was written (sha256), inconsistent arrays."""
    import ptloss_tf

    path = os.path.join(folder, PREPARED_FILE)
    if not os.path.isdir(folder):
        raise ValueError(f"prepared data {folder} not found (create it with "
                         "`ptloss-distill prepare ... --output-dir DIR`).")
    if not os.path.exists(path):
        raise ValueError(f"{folder} holds no {PREPARED_FILE}: not a prepared-data directory, "
                         "or `ptloss-distill prepare` did not finish; run it again.")
    with open(path, encoding="utf-8") as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{path} is format {manifest.get('format')!r} version "
                         f"{manifest.get('version')!r}; this ptloss-tf reads {FORMAT!r} "
                         f"version {VERSION}. Prepare the data again with this version.")
    class_names = tuple(manifest["class_names"])
    examples, probs, calibrated, p_star, tokens = {}, {}, {}, {}, {}
    for split, entry in manifest["splits"].items():
        file = os.path.join(folder, entry["file"])
        if not os.path.exists(file):
            raise ValueError(f"prepared data {folder}: {entry['file']} is missing.")
        if file_sha256(file) != entry["sha256"]:
            raise ValueError(f"prepared data {folder}: {entry['file']} changed since "
                             "`prepare` wrote it (sha256 differs); prepare again.")
        with np.load(file, allow_pickle=False) as arrays:
            data = {k: arrays[k] for k in arrays.files}
        n = entry["rows"]
        texts = tuple(data[f"text_{i}"].astype(object)
                      for i in range(manifest["num_segments"]))
        examples[split] = Examples(data["ids"], texts, data["labels"], class_names,
                                   note=entry.get("note", ""))
        tokens[split] = {k: data[k] for k in INPUT_KEYS}
        for k, v in tokens[split].items():
            if v.shape != (n, manifest["sequence_length"]):
                raise ValueError(f"prepared data {folder}: {entry['file']}[{k!r}] has shape "
                                 f"{v.shape}, expected {(n, manifest['sequence_length'])}.")
        probs[split] = data["teacher_probs"]
        if "teacher_probs_calibrated" in data:
            calibrated[split] = data["teacher_probs_calibrated"]
        if "p_star" in data:
            p_star[split] = data["p_star"]
    vocabulary = os.path.join(folder, manifest["vocabulary"])
    splits = Splits(examples, probs, p_star=p_star, vocabulary=vocabulary,
                    task_config=manifest.get("task_config"), notes=manifest.get("notes"))

    def coefficients(key):
        values = manifest.get(key)
        return ptloss_tf.Coefficients(values) if values is not None else None

    calibration = (ptloss_tf.TeacherCalibration.from_config(manifest["calibration"])
                   if manifest.get("calibration") else None)
    calibrated_splits = (Splits(examples, calibrated, p_star=p_star, vocabulary=vocabulary,
                                task_config=splits.task_config, notes=splits.notes)
                         if calibrated else None)
    stage = SearchStage(coefficients("coefficients"), manifest.get("search"), calibration,
                        calibrated_splits, coefficients("coefficients_calibrated"),
                        manifest.get("search_calibrated"))
    return PreparedData(folder, manifest, splits, tokens, stage)


def copy_search_files(prepared, output_dir):
    """Copies the search stage's files of `prepared` into a run's directory
    (the run's output contract: `coefficients.json` beside the students)."""
    for name in SEARCH_FILES:
        source = os.path.join(prepared.folder, name)
        if os.path.exists(source):
            tmp = os.path.join(output_dir, f".{name}.tmp")
            shutil.copyfile(source, tmp)
            publish_file(tmp, os.path.join(output_dir, name))
