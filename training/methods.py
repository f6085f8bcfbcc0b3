"""The distillation methods of `ptloss-distill --loss`: the names of
`ptloss_tf.losses.get`'s registry plus `ptloss_random` (PTLoss with random
coefficients, the paper's control) and the two that distil from the
recalibrated teacher (`kl_calibrated`, `ptloss_calibrated`: see
`teacher_calibration`), and the loss each one trains with.

`dkd` and `dist` are the K-class baselines (degenerate for two classes:
see `ptloss_tf.losses.DecoupledKDLoss` and `DISTLoss`); `dkd` gets the
training labels through the `Distiller`'s `"labels"` target.

Example:
>>> METHODS
('kl', 'temperature', 'label_smoothing', 'focal', 'dkd', 'dist', 'ptloss', 'ptloss_random', 'kl_calibrated', 'ptloss_calibrated')
>>> type(make_loss("temperature", 2, temperature=3.0)).__name__
'TemperatureKLDivergence'
>>> loss = make_loss("dkd", 3, dkd={"alpha": 1.0, "beta": 2.0, "temperature": 1.0})
>>> type(loss).__name__, loss.beta, loss.temperature
('DecoupledKDLoss', 2.0, 1.0)
"""

from ptloss_tf.losses import NAMES

#: The method names, in `--help` order: the registry's, the random control,
#: then the methods that distil from the recalibrated teacher.
METHODS = NAMES + ("ptloss_random", "kl_calibrated", "ptloss_calibrated")
#: Methods whose targets are the recalibrated teacher's probabilities.
CALIBRATED = ("kl_calibrated", "ptloss_calibrated")
#: Methods that need PTLoss coefficients from the Proxy Teacher search
#: (`ptloss_calibrated`'s search runs on the recalibrated teacher).
SEARCHED = ("ptloss", "ptloss_calibrated")


def make_loss(method, num_classes, coefficients=None, temperature=2.0, smoothing=0.1,
              focal_tau=2.0, order=5, search_seed=0, dkd=None, dist=None, reduction=None):
    """The `from_logits=True` loss of one method.

    Args:
        method: one of `METHODS`.
        num_classes: the task's number of classes (`ptloss_random`).
        coefficients: the searched `Coefficients` (`ptloss`,
            `ptloss_calibrated`: the search on the recalibrated teacher).
        temperature, smoothing, focal_tau: the baselines' parameters.
        dkd, dist: dicts of `DecoupledKDLoss`'s (`alpha`, `beta`,
            `temperature`) and `DISTLoss`'s (`beta`, `gamma`, `temperature`)
            parameters; None or a missing key: the loss' own default.
        order, search_seed: `ptloss_random`'s number of perturbed terms and
            the seed of its random coefficients.
        reduction: the loss' Keras reduction (None: its default); a device
            mesh uses "mean_with_sample_weight", so that padded rows of
            weight 0 leave a batch's mean unchanged.
    """
    import ptloss_tf

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if method == "ptloss_random":
        coefficients = ptloss_tf.random_coefficients(order, num_classes, seed=search_seed)
        method = "ptloss"
    # The calibrated methods differ in their targets, not in their loss.
    method = {"kl_calibrated": "kl", "ptloss_calibrated": "ptloss"}.get(method, method)
    if method == "ptloss" and coefficients is None:
        raise ValueError("the `ptloss` method needs `coefficients`.")
    params = {"ptloss": {"coefficients": coefficients},
              "temperature": {"temperature": temperature},
              "label_smoothing": {"smoothing": smoothing},
              "focal": {"focusing": focal_tau},
              "dkd": dict(dkd or {}),
              "dist": dict(dist or {})}.get(method, {})
    if reduction is not None:
        params["reduction"] = reduction
    return ptloss_tf.losses.get(method, from_logits=True, **params)
