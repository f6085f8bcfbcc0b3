"""The stage between the data and the students: the PTLoss coefficients
(`coefficient_search`) and the recalibrated teacher (`teacher_calibration`)
that the run's methods need, computed from the validation split.

`ptloss-distill` runs it after loading the data; `ptloss-distill prepare`
runs it once and stores its result in a prepared-data directory
(`prepared_data`), from which a host without TensorFlow trains.
"""

import dataclasses

from ptloss_tf.training.coefficient_search import choose_coefficients
from ptloss_tf.training.teacher_calibration import choose_calibration


@dataclasses.dataclass(frozen=True)
class SearchStage:
    """What the methods distil with, beside the teacher outputs.

    Attributes:
        coefficients: `ptloss_tf.Coefficients` for `ptloss` (None without it).
        search: the search's summary for report.json (None without it).
        calibration: `ptloss_tf.TeacherCalibration` for the calibrated
            methods (None without them).
        calibrated: the `Splits` with the recalibrated teacher (None without).
        calibrated_coefficients, calibrated_search: `ptloss_calibrated`'s
            search on the recalibrated teacher (None without it).
    """

    coefficients: object = None
    search: dict = None
    calibration: object = None
    calibrated: object = None
    calibrated_coefficients: object = None
    calibrated_search: dict = None


def run_search_stage(config, splits, output_dir, log=print):
    """The `SearchStage` of a run; writes the searches' and the
    calibration's files (`coefficients.json`, `search.json/png`,
    `calibration.json`, ..._calibrated) in `output_dir`."""
    coefficients, search = choose_coefficients(config, splits, output_dir, log=log)
    calibration, calibrated = choose_calibration(config, splits, output_dir, log=log)
    calibrated_coefficients, calibrated_search = (
        choose_coefficients(config, calibrated, output_dir, log=log, calibrated=True)
        if calibrated is not None else (None, None))
    return SearchStage(coefficients, search, calibration, calibrated,
                       calibrated_coefficients, calibrated_search)
