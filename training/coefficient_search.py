"""The coefficient stage: PTLoss coefficients from the Proxy Teacher search
on the labelled validation split (`ptloss_tf.search_coefficients`, MATH.md
section 3) or from a saved `coefficients.json`; for `ptloss_calibrated`, a
second search on the recalibrated teacher (`coefficients_calibrated.json`,
`search_calibrated.json/png`)."""

import os
import time

import ptloss_tf
from ptloss_tf.io_utils import atomic_write_json


def choose_coefficients(config, splits, output_dir, log=print, calibrated=False):
    """`(coefficients, summary)`: the Proxy Teacher search on the validation
    split (writes `coefficients.json`, `search.json`, `search.png`), or the
    `coefficients` file given; `(None, None)` when no method needs them.

    `calibrated=True`: the search of `ptloss_calibrated` on `splits` holding
    the recalibrated teacher (always searched: `coefficients` applies to
    `ptloss`); its files end in `_calibrated`.
    """
    method = "ptloss_calibrated" if calibrated else "ptloss"
    suffix = "_calibrated" if calibrated else ""
    if method not in config.loss:
        return None, None
    if config.coefficients and not calibrated:
        if not os.path.exists(config.coefficients):
            raise ValueError(f"coefficients file not found: {config.coefficients}")
        with open(config.coefficients) as f:
            coefficients = ptloss_tf.Coefficients.from_json(f.read())
        if coefficients.num_classes != len(splits.class_names):
            raise ValueError(
                f"{config.coefficients} has {coefficients.num_classes} classes, the "
                f"task has {len(splits.class_names)}."
            )
        log(f"Coefficients from {config.coefficients}:\n{coefficients}")
        summary = {"source": config.coefficients}
    else:
        start = time.time()
        result = ptloss_tf.search_coefficients(
            splits.teacher_probs["validation"], splits.examples["validation"].labels,
            order=config.order, num_candidates=config.candidates,
            criterion=config.criterion, seed=config.search_seed,
        )
        coefficients = result.best
        result.to_json(os.path.join(output_dir, f"search{suffix}.json"))
        result.plot(os.path.join(output_dir, f"search{suffix}.png"))
        teacher = " of the recalibrated teacher" if calibrated else ""
        log(
            f"Proxy Teacher search{teacher} ({config.candidates} candidates, order {config.order}, "
            f"criterion {config.criterion}) on {len(splits.examples['validation'])} "
            f"validation examples in {time.time() - start:.1f} s:\n{result.table(top=5)}"
        )
        summary = {
            "criterion": config.criterion, "order": config.order,
            "candidates": config.candidates, "seed": config.search_seed,
            "best_index": result.best_index,
            "best_scores": {k: float(v[result.best_index]) for k, v in result.scores.items()},
            "teacher_scores": result.teacher_scores,
        }
    atomic_write_json(
        os.path.join(output_dir, f"coefficients{suffix}.json"),
        {**coefficients.to_dict(), "search": summary},
    )
    return coefficients, summary
