"""The run's output directory: created, checked, resumed.

A run directory holds one `ptloss-distill` run (the contract is in
`ptloss_tf.training.distill`). `run_state.json` records the options'
fingerprint and the finished methods, so the same command resumes an
interrupted run; a finished run (`report.json`) is never replaced without
`overwrite`, and files that are not the run's own are never deleted. An
unfinished run with other options is protected only once training has
started (a method folder exists): a run that failed earlier, e.g. on a
missing file, is simply restarted with the corrected options.

Example:
>>> import tempfile
>>> from ptloss_tf.training.config import DistillConfig
>>> config = DistillConfig(output_dir=tempfile.mkdtemp())
>>> path, state = prepare_output_dir(config, log=lambda message: None)
>>> state["finished"], fingerprint(config) == state["fingerprint"]
([], True)
"""

import datetime
import json
import os
import shutil

from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.training.methods import METHODS

REPORT = "report.json"
STATE = "run_state.json"
#: Files of a run that `overwrite` replaces (besides the method folders).
RUN_FILES = (REPORT, STATE, "coefficients.json", "search.json", "search.png",
             "calibration.json", "coefficients_calibrated.json", "search_calibrated.json",
             "search_calibrated.png", "learning_curves.png", "report.png", "samples.json")
#: Options that do not change results: not part of the fingerprint.
UNFINGERPRINTED = ("output_dir", "overwrite", "verbose", "config",
                   # the same global batches on any mesh: a run may resume on another
                   "distribution", "devices", "model_parallel", "coordinator",
                   "num_processes", "process_id", "max_teacher_gap")


def fingerprint(config):
    """Hash of the options that change results (not output/verbosity flags)."""
    import hashlib

    items = {k: v for k, v in sorted(config.to_dict().items()) if k not in UNFINGERPRINTED}
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_output_dir():
    """`runs/<timestamp>` in the working directory."""
    return os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))


def prepare_output_dir(config, log=print):
    """Creates or checks `config.output_dir`; returns `(path, state)`.

    A finished run (report.json) is refused unless `overwrite`; an unfinished
    run of the same options is resumed; an unfinished run of other options
    is refused. With `overwrite` only the run's own files are replaced.
    """
    path = config.output_dir or default_output_dir()
    state_path = os.path.join(path, STATE)
    if os.path.isdir(path) and os.listdir(path):
        state = None
        if os.path.exists(state_path):
            with open(state_path) as f:
                state = json.load(f)
        finished = os.path.exists(os.path.join(path, REPORT))
        if state is None and not config.overwrite:
            raise ValueError(
                f"output directory {path} is not empty and holds no ptloss-distill "
                "run; choose another --output-dir (files there are never deleted)."
            )
        if finished and not config.overwrite:
            raise ValueError(
                f"output directory {path} already holds a finished run "
                f"({REPORT}); pass --overwrite to replace it or choose another "
                "--output-dir."
            )
        if config.overwrite:
            _remove_run_files(path)
            state = None
        elif state is not None and state.get("fingerprint") != fingerprint(config):
            if has_training_progress(path, state):
                raise ValueError(
                    f"output directory {path} holds an unfinished run with different "
                    "options that has started training; rerun with the same options "
                    "to resume it, pass --overwrite to discard it, or choose another "
                    "--output-dir."
                )
            log(f"Restarting the run in {path} with the new options (the earlier run "
                "had not started training).")
            _remove_run_files(path)
            state = None
        if state is not None:
            log(f"Resuming the run in {path} (finished: {state['finished'] or 'none'}).")
            return path, state
    os.makedirs(path, exist_ok=True)
    state = {"fingerprint": fingerprint(config), "finished": []}
    atomic_write_json(state_path, state)
    return path, state


def read_run_state(path):
    """The `run_state.json` that `prepare_output_dir` wrote in `path` (what
    a multi-process run's other processes read instead of writing it)."""
    with open(os.path.join(path, STATE)) as f:
        return json.load(f)


def has_training_progress(path, state):
    """Whether a run directory holds training work: a finished method or a
    method folder (checkpoints, backups) of one that started."""
    return bool(state.get("finished")) or any(
        os.path.isdir(os.path.join(path, method)) for method in METHODS)


def mark_finished(path, state, method):
    """Records `method` as finished in `run_state.json`."""
    state["finished"].append(method)
    atomic_write_json(os.path.join(path, STATE), state)


def _remove_run_files(path):
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if name in RUN_FILES or (os.path.isdir(full) and name in METHODS):
            shutil.rmtree(full) if os.path.isdir(full) else os.unlink(full)
