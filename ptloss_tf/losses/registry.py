"""The one map from a loss name to a distillation loss: `get`, `NAMES`.

Training scripts, configs and command lines name a loss by a short string
(`"kl"`, `"ptloss"`, ...); `get` turns the name and the constructor's own
keyword arguments into the loss object, and `parameters` lists what a name
accepts, read from the constructor's signature (so it cannot drift from it).
"""

import inspect

import keras

from ptloss_tf.losses.decoupled_kd_loss import DecoupledKDLoss
from ptloss_tf.losses.dist_loss import DISTLoss
from ptloss_tf.losses.focal_distillation_loss import FocalDistillationLoss
from ptloss_tf.losses.kl_divergence import KLDivergence
from ptloss_tf.losses.label_smoothing_kl_divergence import (
    LabelSmoothingKLDivergence,
)
from ptloss_tf.losses.ptloss import PTLoss
from ptloss_tf.losses.temperature_kl_divergence import TemperatureKLDivergence

_LOSSES = {
    "kl": KLDivergence,
    "temperature": TemperatureKLDivergence,
    "label_smoothing": LabelSmoothingKLDivergence,
    "focal": FocalDistillationLoss,
    "dkd": DecoupledKDLoss,
    "dist": DISTLoss,
    "ptloss": PTLoss,
}

#: The loss names `get` accepts, in a fixed order (the baselines, then PTLoss).
#: `dkd` and `dist` are the K-class baselines (degenerate for two classes);
#: `dkd` takes the labels in `y_true` (see `DecoupledKDLoss`).
NAMES = tuple(_LOSSES)


class _Required:
    """Marks a parameter without a default in `parameters`' output."""

    def __repr__(self):
        return "REQUIRED"


#: The value `parameters` gives a parameter that has no default.
REQUIRED = _Required()


def loss_class(name):
    """The loss class behind `name` (one of `NAMES`).

    Example:
    >>> loss_class("focal").__name__
    'FocalDistillationLoss'
    """
    if not isinstance(name, str) or name not in _LOSSES:
        raise ValueError(
            f"unknown loss {name!r}; known names: {', '.join(NAMES)}."
        )
    return _LOSSES[name]


def parameters(name):
    """Keyword parameters of the loss `name` and their defaults, in order.

    Read with `inspect` from the constructor of `loss_class(name)`; a
    parameter without a default maps to `REQUIRED`.

    Example:
    >>> parameters("focal")  # doctest: +NORMALIZE_WHITESPACE
    {'focusing': REQUIRED, 'from_logits': False, 'temperature': 1.0,
     'reduction': 'sum_over_batch_size', 'name': 'focal_distillation_loss',
     'dtype': None}
    """
    signature = inspect.signature(loss_class(name).__init__)
    return {
        p.name: REQUIRED if p.default is inspect.Parameter.empty else p.default
        for p in list(signature.parameters.values())[1:]  # drops `self`
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def get(identifier, **params):
    """The distillation loss named `identifier`, built with `params`.

    Args:
        identifier: one of `NAMES` (`"kl"`, `"temperature"`,
            `"label_smoothing"`, `"focal"`, `"dkd"`, `"dist"`, `"ptloss"`), or a
            `keras.losses.Loss` instance, returned unchanged (as
            `keras.losses.get` does).
        **params: the constructor's own keyword arguments (see
            `parameters(identifier)`), e.g. `temperature=2.0` for
            `"temperature"`, `smoothing=0.1` for `"label_smoothing"`,
            `focusing=2.0` (tau) for `"focal"`, `alpha`, `beta`,
            `temperature` for `"dkd"`, `beta`, `gamma`, `temperature` for
            `"dist"`, `coefficients=[[1.0, 1.0]]` for `"ptloss"`, and the
            shared `from_logits`, `reduction`, `name`, `dtype`.

    Raises:
        ValueError: an unknown name, a parameter the loss does not take, a
            required parameter left out, or `params` with a loss instance.

    Example:
    >>> import numpy as np
    >>> from ptloss_tf import losses
    >>> losses.NAMES
    ('kl', 'temperature', 'label_smoothing', 'focal', 'dkd', 'dist', 'ptloss')
    >>> loss = losses.get("label_smoothing", smoothing=0.1, from_logits=True)
    >>> type(loss).__name__, loss.smoothing
    ('LabelSmoothingKLDivergence', 0.1)
    >>> # KL((0.05, 0.95) || (0.5, 0.5)) = 0.05 log 0.1 + 0.95 log 1.9
    >>> round(float(loss(np.array([[0.0, 1.0]]), np.array([[0.0, 0.0]]))), 4)
    0.4946
    >>> losses.get(loss) is loss
    True
    """
    if isinstance(identifier, keras.losses.Loss):
        if params:
            raise ValueError(
                f"parameters {sorted(params)} were given with a loss "
                f"instance ({type(identifier).__name__}); pass a loss name "
                f"({', '.join(NAMES)}) to build a new loss."
            )
        return identifier
    cls = loss_class(identifier)
    accepted = parameters(identifier)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"loss {identifier!r} ({cls.__name__}) takes no parameter "
            f"{', '.join(map(repr, unknown))}; it accepts "
            f"{', '.join(accepted)}."
        )
    missing = [
        p for p, default in accepted.items() if default is REQUIRED and p not in params
    ]
    if missing:
        raise ValueError(
            f"loss {identifier!r} ({cls.__name__}) needs the parameter(s) "
            f"{', '.join(map(repr, missing))}; it accepts {', '.join(accepted)}."
        )
    return cls(**params)
