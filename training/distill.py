"""`ptloss-distill`: the whole run, stage by stage, as the data flows.

    data + teacher outputs (teacher.join.load_splits)
      -> coefficients (coefficient_search.choose_coefficients)
      -> recalibrated teacher (teacher_calibration.choose_calibration)
      -> per method: Distiller -> student (train_method.train_method)
      -> report (report.*)

Output directory contract (`--output-dir`):

* `report.json`: `{"task", "class_names", "num_segments", "results":
  [{"method", "accuracy", "nll", "ece", "teacher_agreement", "replicas",
  ...}], "coefficients": [[...]], "teacher": {"accuracy", ...}, "notes",
  "config": {...}, "hardware": {"strategy", "replicas", "dtype_policy",
  "keras_backend"},
  "wall_seconds", "timings": {"wall_seconds", "load_seconds",
  "search_seconds", "methods": {METHOD: {"train_seconds", "epochs_run",
  "epoch_seconds"}}}}`. MNLI with `validation_mismatched.jsonl` among the
  teacher outputs: each result also has `accuracy_mismatched`,
  `nll_mismatched`, `ece_mismatched`, `teacher_agreement_mismatched` (the
  mismatched validation set, a second test set) and the teacher
  `accuracy_mismatched`; without that file the mismatched evaluation is
  skipped and `notes` says so. Each result has `teacher_gap`: teacher minus
  student accuracy in points, `validation_points` and `test_points` (and
  `recalibrated_*` against the recalibrated teacher); the top-level
  `teacher_gap` holds the best-validation student's `best_method`,
  `validation_points`, `test_points`, `max_gap` and `warning` (the text of
  the run's last line when that gap exceeds `--max-teacher-gap`, else
  null). Each result and the teacher also have
  `macro_f1`, `mcc` (2 classes), `prediction_counts` and `label_counts`
  (`{class: n}` on the test split) and `single_class_prediction` (one class
  predicted for every test example; flagged in the log and in `notes`).
  With `kl_calibrated` / `ptloss_calibrated`: `calibration` (the fitted
  map) and `calibrated_teacher` (the recalibrated teacher's statistics);
  with `ptloss_calibrated` also `coefficients_calibrated`.
* `coefficients.json` (+ `search.json`, `search.png` from the search)
* `calibration.json` (`kl_calibrated`, `ptloss_calibrated`) and
  `coefficients_calibrated.json`, `search_calibrated.json/png`
  (`ptloss_calibrated`)
* `<method>/student.keras` for each method, `<method>/result.json`,
  `<method>/history.json`, `<method>/timings.json`, TensorBoard logs in
  `<method>/logs`
* `report.png`: test accuracy and KL(p* || student) (real tasks: NLL) per
  method with the teacher's (and Bayes) values, reliability diagrams,
  validation accuracy and NLL per epoch (`report_figure`)
* `learning_curves.png`: validation accuracy and NLL per epoch
* `samples.json`: a few test examples (texts, labels): the inputs
  `ptloss-export` uses for warmup requests and verification.
* `run_state.json`: what has finished, so the same command resumes an
  interrupted run (finished methods are skipped, an interrupted one resumes
  from its last `BackupAndRestore` backup).
"""

import json
import os
import time

from ptloss_tf.io_utils import atomic_write_json
from ptloss_tf.training.mesh_strategy import barrier
from ptloss_tf.training.mesh_strategy import is_writer
from ptloss_tf.training.methods import CALIBRATED
from ptloss_tf.training.methods import SEARCHED
from ptloss_tf.training.prepared_data import copy_search_files
from ptloss_tf.training.prepared_data import read_prepared
from ptloss_tf.training.preflight import check_config
from ptloss_tf.training.report import print_table
from ptloss_tf.training.report import single_class_notes
from ptloss_tf.training.report import teacher_report
from ptloss_tf.training.report import write_samples
from ptloss_tf.training.report_figure import plot_learning_curves
from ptloss_tf.training.report_figure import plot_report
from ptloss_tf.training.run_directory import REPORT
from ptloss_tf.training.run_directory import mark_finished
from ptloss_tf.training.run_directory import prepare_output_dir
from ptloss_tf.training.run_directory import read_run_state
from ptloss_tf.training.search_stage import run_search_stage
from ptloss_tf.training.teacher_gap import gap_summary
from ptloss_tf.training.teacher_gap import levers
from ptloss_tf.training.teacher_gap import result_gaps
from ptloss_tf.training.teacher.join import load_splits
from ptloss_tf.training.train_method import TIMINGS
from ptloss_tf.training.train_method import make_run_strategy
from ptloss_tf.training.train_method import train_method
from ptloss_tf.validation import check_probabilities


def log(message):
    print(message, flush=True)


def run(config):
    """The whole run (see the module docstring) of a `DistillConfig`;
    returns the report.

    `mixed_precision` sets Keras' global dtype policy for the run only: the
    previous policy is restored afterwards, so a run inside a longer process
    (tests, notebooks) does not leak it.
    """
    import keras

    previous_policy = keras.config.dtype_policy()
    try:
        if config.mixed_precision:
            keras.config.set_dtype_policy(f"mixed_{config.mixed_precision}")
        return _run(config)
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if config.distribution:  # MeshStrategy set it for the run
            keras.distribution.set_distribution(None)


def _run(config):
    start = time.time()
    # Everything that can fail on bad input fails before the output
    # directory exists: the options, then the data and teacher outputs.
    prepared = None
    if config.prepared_data:  # no TensorFlow needed from here on
        check_config(config)
        prepared = read_prepared(config.prepared_data)
        config = prepared.training_config(config)
        check_prepared_methods(config, prepared)
    check_config(config)
    log(describe_run(config))
    strategy = make_run_strategy(config)
    splits = prepared.splits if prepared else load_splits(config, log=log)
    # On a multi-process mesh process 0 alone creates (or resumes) the run
    # directory; the others read its state once it is there.
    writer = is_writer(strategy)
    if writer:
        output_dir, state = prepare_output_dir(config, log=log)
    barrier(strategy, "run directory")
    if not writer:
        output_dir, state = config.output_dir, read_run_state(config.output_dir)
    log(f"Output directory: {output_dir}")
    for split in ("train", "validation", "test", *splits.extra_test_splits):
        check_probabilities(splits.teacher_probs[split], name=f"teacher probabilities ({split})")
    teacher = teacher_report(splits)
    log(f"Task {config.task}: "
        f"{', '.join(f'{k} {len(v)}' for k, v in splits.examples.items())} examples, "
        f"classes {list(splits.class_names)}; teacher test accuracy {teacher['accuracy']:.4f}")
    loaded = time.time()

    if prepared:
        stage = prepared.stage
        if writer:
            copy_search_files(prepared, output_dir)
        log(f"Prepared data {config.prepared_data}: tokens, teacher outputs and the "
            "search stage as `ptloss-distill prepare` wrote them.")
    else:
        stage = run_search_stage(config, splits, output_dir, log=log)
    coefficients, search = stage.coefficients, stage.search
    calibration, calibrated = stage.calibration, stage.calibrated
    calibrated_coefficients, calibrated_search = (stage.calibrated_coefficients,
                                                  stage.calibrated_search)
    searched = time.time()

    results = []
    for method in config.loss:
        result_path = os.path.join(output_dir, method, "result.json")
        if method in state["finished"] and os.path.exists(result_path):
            with open(result_path) as f:
                results.append(json.load(f))
            log(f"== {method}: already finished, skipped ==")
            continue
        # The calibrated methods distil from the recalibrated teacher.
        method_splits = calibrated if method in CALIBRATED else splits
        method_coefficients = (calibrated_coefficients if method == "ptloss_calibrated"
                               else coefficients)
        results.append(train_method(method, config, method_splits, method_coefficients,
                                    output_dir, strategy=strategy, log=log,
                                    tokens=prepared.tokens if prepared else None))
        if writer:
            mark_finished(output_dir, state, method)

    calibrated_teacher = teacher_report(calibrated) if calibrated is not None else None
    for result in results:
        result["teacher_gap"] = result_gaps(result, teacher, calibrated_teacher)
    print_table(results, teacher, log=log, calibrated_teacher=calibrated_teacher)
    if writer:
        plot_learning_curves(output_dir, config.loss)
        write_samples(output_dir, splits.examples["test"])
    report = _report(config, splits, results, coefficients, search, teacher, strategy)
    report["teacher_gap"] = gap_summary(results, teacher, max_gap=config.max_teacher_gap,
                                        levers=levers(config))
    if "bayes_accuracy" in teacher:  # the synthetic task's ceiling (p* known)
        report["bayes_accuracy"] = teacher["bayes_accuracy"]
    if calibration is not None:
        report.update(calibration=calibration.get_config(),
                      calibrated_teacher=calibrated_teacher)
    if calibrated_coefficients is not None:
        report.update(coefficients_calibrated=calibrated_coefficients.values.tolist(),
                      search_calibrated=calibrated_search)
    if prepared:
        # The students have no preprocessor: what ptloss-export rebuilds it from.
        report["prepared_data"] = os.path.abspath(config.prepared_data)
        report["tokenizer"] = {"vocabulary": prepared.vocabulary_path,
                               "sequence_length": prepared.manifest["sequence_length"]}
    report["wall_seconds"] = time.time() - start
    if not writer:
        return report
    plot_report(output_dir, report)
    report["timings"] = _timings(output_dir, results, report["wall_seconds"],
                                 load_seconds=loaded - start, search_seconds=searched - loaded)
    atomic_write_json(os.path.join(output_dir, REPORT), report)
    log(where_and_what_next(output_dir, report))
    if report["teacher_gap"]["warning"]:
        log(report["teacher_gap"]["warning"])
    return report


def check_prepared_methods(config, prepared):
    """Raises ValueError if a method of the run needs what the prepared
    data lacks (coefficients, a calibration)."""
    stage = prepared.stage
    needs = {"ptloss": stage.coefficients, "ptloss_calibrated": stage.calibrated_coefficients}
    needs.update({m: stage.calibration for m in CALIBRATED if m not in needs})
    missing = [m for m in config.loss if m in needs and needs[m] is None]
    if missing:
        raise ValueError(
            f"the prepared data in {prepared.folder} has no "
            f"{'coefficients' if set(missing) & set(SEARCHED) else 'calibration'} for "
            f"{', '.join(missing)}: prepare it with `--loss {' '.join(missing)}` among "
            "the methods.")


def describe_run(config):
    """The run's first log line: what is being done."""
    if config.task == "synthetic":
        task = (f"the embedded synthetic task (known p*; teacher over-confidence "
                f"{config.overconfidence:g}, class-prior shift {config.prior_shift:g}, "
                f"noise {config.teacher_noise:g})")
    else:
        task = f"task {config.task} with the teacher outputs in {config.teacher_outputs}"
    return (f"ptloss-distill: distilling a keras-hub BERT student on {task}; methods "
            f"{', '.join(config.loss)}; up to {config.epochs} epochs each.")


def where_and_what_next(output_dir, report):
    """The run's last log lines: where the files are and the command that
    serves the student with the best *validation* accuracy (the test split
    chooses nothing)."""
    best = max(report["results"], key=lambda r: r.get("best_val_accuracy", float("-inf")))
    name = report["task"] if report["task"] != "file" else "model"
    student = os.path.join(output_dir, best["method"], "student.keras")
    return (f"\nWrote {os.path.join(output_dir, REPORT)} (all numbers), "
            f"{os.path.join(output_dir, 'report.png')} (figure) and "
            f"<method>/student.keras in {output_dir} ({report['wall_seconds']:.0f} s).\n"
            f"Best validation accuracy: {best['method']} "
            f"({best.get('best_val_accuracy', float('nan')):.4f}). Serve it with TF-Serving:\n"
            f"  ptloss-export {student} --base-path serving --name {name}")


def _report(config, splits, results, coefficients, search, teacher, strategy):
    import keras

    return {
        "task": config.task,
        "class_names": list(splits.class_names),
        "class_names_source": _class_names_source(config),
        "num_segments": len(splits.examples["test"].texts),
        "results": results,
        "coefficients": coefficients.values.tolist() if coefficients is not None else None,
        "search": search,
        "teacher": teacher,
        "task_config": splits.task_config,
        "notes": splits.notes + single_class_notes(results),
        "config": config.to_dict(),
        "hardware": {"strategy": type(strategy).__name__,
                     "replicas": int(strategy.num_replicas_in_sync),
                     **({"mesh": strategy.describe()} if hasattr(strategy, "describe")
                        else {}),
                     "dtype_policy": keras.config.dtype_policy().name,
                     "keras_backend": keras.backend.backend()},
    }


def _class_names_source(config):
    """Where the run's label vocabulary came from (`report.json`)."""
    if config.task != "file":
        return f"the registered task {config.task}"
    if config.class_names:
        return "--class-names"
    return f"the sorted label values of {config.train_file}"


def _timings(output_dir, results, wall_seconds, load_seconds, search_seconds):
    """`report.json`'s `timings`: benchmarks read these instead of logs.
    A method resumed or skipped in this process keeps its recorded times."""
    methods = {}
    for result in results:
        path = os.path.join(output_dir, result["method"], TIMINGS)
        epoch_seconds = []
        if os.path.exists(path):
            with open(path) as f:
                epoch_seconds = json.load(f).get("epoch_seconds", [])
        methods[result["method"]] = {"train_seconds": result.get("train_seconds"),
                                     "epochs_run": result.get("epochs_run"),
                                     "epoch_seconds": epoch_seconds}
    return {"wall_seconds": wall_seconds, "load_seconds": load_seconds,
            "search_seconds": search_seconds, "methods": methods}
