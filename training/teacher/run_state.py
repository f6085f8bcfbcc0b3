"""The resumable run directory of `ptloss-distill teacher`.

`teacher_state.json` (`STATE_FILE`) records a run's options and progress:
the epochs fine-tuned (with `teacher_backup/` holding the weights, optimizer
and dropout states after the last of them), the sha256 of `teacher.keras`
once saved, and of each split's outputs once written. An interrupted run
rerun with the same options (`run_options`) resumes from it; `teacher.run`
decides what to redo.

Example:

>>> import tempfile
>>> from ptloss_tf.training.teacher.options import TeacherConfig
>>> config = TeacherConfig(task="sst2", preset="bert_tiny_en_uncased",
...                        output_dir=tempfile.mkdtemp())
>>> state = open_run_state(config, ("train.jsonl",))  # an empty directory: a fresh run
>>> state["epochs_done"], state["resumed"], state["options"]["epochs"]
(0, False, 2)
"""

import dataclasses
import json
import os

import numpy as np

from ptloss_tf.callbacks import restore_seed_generator_states
from ptloss_tf.callbacks import seed_generator_states
from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.io_utils import file_sha256
from ptloss_tf.io_utils import save_atomically

STATE_FILE = "teacher_state.json"
BACKUP_DIR = "teacher_backup"
#: The options that do not change what a run computes (a resumed run may differ
#: in them). `--fine-tune-only` and `--shard I/N` say which part of the run a
#: process does: the fine-tuning, the shards and the merged outputs are one run.
#: `--distribution` / `--devices` say where the prediction runs (its logits
#: agree to float rounding).
NOT_RESUME_OPTIONS = ("output_dir", "overwrite", "verbose", "fine_tune_only", "shard",
                      "distribution", "devices")


def run_options(config):
    """The options a resumed run must share with the interrupted one: all of
    them except `NOT_RESUME_OPTIONS`, with file paths made absolute."""
    options = {}
    for field in dataclasses.fields(config):
        if field.name in NOT_RESUME_OPTIONS:
            continue
        value = getattr(config, field.name)
        if field.name.endswith(("_file", "_root", "_dir")) and value is not None:
            value = os.path.abspath(value)
        if field.name == "preset" and value is not None and os.path.exists(value):
            value = os.path.abspath(value)
        options[field.name] = list(value) if isinstance(value, tuple) else value
    return options


def _refuse_existing(config, output_files):
    existing = [p for p in (os.path.join(config.output_dir, f) for f in output_files)
                if os.path.exists(p)]
    if existing and not config.overwrite:
        raise ValueError(f"teacher outputs already exist ({existing[0]}); pass --overwrite "
                         "to replace them or choose another --output-dir.")


def open_run_state(config, output_files):
    """The run state of `--output-dir`: the interrupted run's to resume, or a fresh one.

    `output_files`: the names, in `--output-dir`, of the files a run writes;
    found there without a run state, they are not replaced without `--overwrite`.

    Only reads: nothing is written before the options and the data are
    checked. An unfinished run with the same options (`run_options`) is
    resumed, with or without `--overwrite`; one that stopped before its first
    epoch was backed up may be restarted with other options; a finished run,
    one with training progress and other options, or outputs without a run
    state are replaced only with `--overwrite`.

    Raises:
        ValueError: the directory holds a finished run, an unfinished one with
            other options, or teacher outputs, and `--overwrite` is not given.
    """
    options = run_options(config)
    path = os.path.join(config.output_dir, STATE_FILE)
    state = None
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, json.JSONDecodeError):
            state = {}  # unreadable: treat as another run's
    if state and not state.get("finished") and state.get("options") == options:
        state["resumed"] = True
        return state
    started = state and (state.get("epochs_done") or state.get("teacher_file")
                         or state.get("outputs") or state.get("finished"))
    if state is not None and not started:
        state = None  # failed before training (a bad --preset, say): nothing to protect
    if state is not None and not config.overwrite:
        if state.get("finished"):
            raise ValueError(f"{config.output_dir} holds the outputs of a finished teacher run; "
                             "pass --overwrite to replace them or choose another --output-dir.")
        old = state.get("options") or {}
        diff = [k for k in options if old.get(k) != options[k]] or ["(unreadable state)"]
        shown = "; ".join(f"--{k.replace('_', '-')} {old.get(k)!r} there, {options.get(k)!r} now"
                          for k in diff[:3])
        raise ValueError(f"{config.output_dir} holds an unfinished teacher run with other "
                         f"options ({shown}); rerun its command to resume it, or pass "
                         "--overwrite to start over.")
    if state is None:
        _refuse_existing(config, output_files)
    return {"format": "ptloss-teacher-run-state", "version": 1, "options": options,
            "finished": False, "epochs_done": 0, "backup": None, "teacher_file": None,
            "outputs": {}, "resumed": False}


def write_state(config, state):
    """Writes `state` (less its in-memory `resumed` flag) atomically to `STATE_FILE`."""
    atomic_write_json(os.path.join(config.output_dir, STATE_FILE),
                      {k: v for k, v in state.items() if k != "resumed"})


def backup(config, state, teacher, epochs_done):
    """Saves the weights, optimizer and dropout states after `epochs_done` epochs.

    The weights go to a new file, renamed into place, and only then does the
    run state point at it: a kill at any point leaves a consistent backup.
    """
    directory = os.path.join(config.output_dir, BACKUP_DIR)
    os.makedirs(directory, exist_ok=True)
    name = f"epoch-{epochs_done:04d}.weights.h5"
    path = os.path.join(directory, name)
    save_atomically(lambda tmp: teacher.save_weights(tmp, overwrite=True),
                    os.path.join(directory, "writing.weights.h5"), path)
    previous = state.get("backup")
    state.update(epochs_done=int(epochs_done), backup=name,
                 seed_states=seed_generator_states(teacher))
    write_state(config, state)
    if previous and previous != name and os.path.exists(os.path.join(directory, previous)):
        os.unlink(os.path.join(directory, previous))


def restore(config, state, teacher):
    """Loads the backup of `state` into `teacher` (built, compiled); the number of
    epochs it holds."""
    if not state.get("backup"):
        return 0
    path = os.path.join(config.output_dir, BACKUP_DIR, state["backup"])
    if not os.path.exists(path):
        return 0
    # The optimizer's variables must exist for load_weights to fill them.
    teacher.optimizer.build(teacher.trainable_variables)
    teacher.load_weights(path)
    restore_seed_generator_states(teacher, state.get("seed_states"),
                                  os.path.join(config.output_dir, STATE_FILE))
    return int(state["epochs_done"])


def kept_outputs(config, state, split, ex, fingerprints, name):
    """The outputs file of `split` if this run wrote it completely for these
    examples (recorded in the state, same bytes, ids and fingerprints), else None."""
    from ptloss_tf.training.teacher.outputs import TeacherOutputs

    path = os.path.join(config.output_dir, f"{split}.jsonl")
    record = state["outputs"].get(split)
    if not record or not os.path.exists(path) or file_sha256(path) != record.get("sha256"):
        return None
    outputs = TeacherOutputs.load(path)
    if (outputs.teacher != name or outputs.fingerprints is None
            or outputs.ids.tolist() != np.asarray(ex.ids).tolist()
            or outputs.fingerprints.tolist() != fingerprints.tolist()):
        return None  # the data changed under the same options: predict again
    return outputs
