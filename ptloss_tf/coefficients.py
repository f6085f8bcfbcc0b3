"""`Coefficients`: the perturbation coefficients `eta[m, k]` of PTLoss."""

import json

import numpy as np

from ptloss_tf.validation import as_numpy

#: Relative tolerance of the convex box's lower edge `-1/m`. Coefficients
#: that went through float32 (a `keras` variable, a float32 JSON round trip)
#: sit up to half a float32 ulp away from the edge: `float32(-1/3)` is
#: `-0.33333334 < -1/3`. A few float32 ulps, relative to the bound, count as
#: on the edge; anything further out is outside.
BOX_EDGE_RTOL = 4.0 * float(np.finfo(np.float32).eps)


def convex_lower_bounds(order):
    """`-1/m` for `m = 1..order`, shape `[order, 1]` (float64).

    Example:
    >>> convex_lower_bounds(3).ravel().tolist()
    [-1.0, -0.5, -0.3333333333333333]
    """
    return -1.0 / np.arange(1, int(order) + 1, dtype=np.float64)[:, None]


def in_convex_box(values):
    """Whether `eta[..., m, k] >= -1/m` up to `BOX_EDGE_RTOL`, over the last
    two axes (`[M, K]` -> bool, `[S, M, K]` -> `[S]`).

    Example:
    >>> import numpy as np
    >>> bool(in_convex_box(np.float32([[-1.0], [-0.5], [-1 / 3]])))
    True
    >>> bool(in_convex_box([[-1.0], [-0.5], [-0.3334]]))
    False
    """
    eta = np.asarray(values, dtype=np.float64)
    bounds = convex_lower_bounds(eta.shape[-2])
    return np.all(eta >= bounds * (1.0 + BOX_EDGE_RTOL), axis=(-2, -1))


def snap_to_convex_box(values):
    """`values` with entries within `BOX_EDGE_RTOL` below `-1/m` set to
    `-1/m` exactly (the solver then sees a point of the box); others unchanged.

    Example:
    >>> import numpy as np
    >>> snap_to_convex_box(np.float32([[-1.0], [-0.5], [-1 / 3]])).ravel().tolist()
    [-1.0, -0.5, -0.3333333333333333]
    """
    eta = np.array(values, dtype=np.float64)
    bounds = np.broadcast_to(convex_lower_bounds(eta.shape[-2]), eta.shape)
    near = (eta < bounds) & (eta >= bounds * (1.0 + BOX_EDGE_RTOL))
    eta[near] = bounds[near]
    return eta


class Coefficients:
    """Immutable PTLoss perturbation coefficients, shape `[M, K]`.

    Row `m - 1` holds the coefficients of Maclaurin order `m`, column `k` the
    coefficient of class `k` (MATH.md, "Notation"). In the paper's binary
    notation `eta_m = (eps_m, gamma_m)`: `eps` is column 0, `gamma` column 1.

    Args:
        values: array-like of shape `[M, K]` with `M >= 1`, `K >= 2`, finite.

    Example:
    >>> eta = Coefficients.binary(eps=[1.0], gamma=[1.0])
    >>> eta.order, eta.num_classes, eta.is_convex
    (1, 2, True)
    >>> eta.to_json()
    '{"coefficients": [[1.0, 1.0]]}'
    >>> Coefficients.from_json(eta.to_json()) == eta
    True
    """

    __slots__ = ("_values",)

    def __init__(self, values):
        if isinstance(values, Coefficients):
            values = values.values
        v = as_numpy(values, "coefficients")
        if v.ndim != 2:
            raise ValueError(
                "`coefficients` must have shape [order, num_classes], got "
                f"shape {v.shape}."
            )
        if v.shape[0] < 1:
            raise ValueError(
                f"`coefficients` must have order >= 1, got shape {v.shape} "
                "(order 0)."
            )
        if v.shape[1] < 2:
            raise ValueError(
                "`coefficients` must have at least 2 classes (columns), got "
                f"shape {v.shape}."
            )
        if not np.issubdtype(v.dtype, np.number):
            raise ValueError(f"`coefficients` must be numeric, got {v.dtype}.")
        v = np.array(v, dtype=np.float64)
        if not np.isfinite(v).all():
            raise ValueError(f"`coefficients` contains NaN or inf: {v.tolist()}")
        v.setflags(write=False)
        object.__setattr__(self, "_values", v)

    def __setattr__(self, name, value):
        raise AttributeError("Coefficients are immutable.")

    @classmethod
    def binary(cls, eps, gamma):
        """Binary coefficients from the paper's `eps_m` (class 0), `gamma_m` (class 1).

        Example:
        >>> Coefficients.binary(eps=[1, 2], gamma=[0, 0]).values.tolist()
        [[1.0, 0.0], [2.0, 0.0]]
        """
        eps = np.atleast_1d(np.asarray(eps, dtype=np.float64))
        gamma = np.atleast_1d(np.asarray(gamma, dtype=np.float64))
        if eps.ndim != 1 or eps.shape != gamma.shape:
            raise ValueError(
                "`eps` and `gamma` must be 1-D with one entry per order, got "
                f"shapes {eps.shape} and {gamma.shape}."
            )
        return cls(np.stack([eps, gamma], axis=1))

    @classmethod
    def zeros(cls, order, num_classes):
        """All-zero coefficients: PTLoss reduces to the KL loss."""
        return cls(np.zeros((int(order), int(num_classes))))

    @property
    def values(self):
        """Read-only float64 numpy array of shape `[M, K]`."""
        return self._values

    @property
    def order(self):
        return self._values.shape[0]

    @property
    def num_classes(self):
        return self._values.shape[1]

    @property
    def shape(self):
        return self._values.shape

    @property
    def convex_lower_bounds(self):
        """`-1/m` per order: the lower edge of the convex box, shape `[M, 1]`."""
        return convex_lower_bounds(self.order)

    @property
    def is_convex(self):
        """True iff every `eta[m, k] >= -1/m` (PTLoss strictly convex in q).

        The edge is accepted up to float32 rounding (`BOX_EDGE_RTOL`), so
        `float32(-1/m)` is inside.

        Example:
        >>> import numpy as np
        >>> Coefficients(np.float32([[-1.0, 0.0], [-0.5, 0.0], [-1 / 3, 0.0]])).is_convex
        True
        """
        return bool(in_convex_box(self._values))

    def to_dict(self):
        return {"coefficients": self._values.tolist()}

    @classmethod
    def from_dict(cls, config):
        if "coefficients" not in config:
            raise ValueError(
                "A coefficients dict needs the key 'coefficients' ([M][K] "
                f"numbers); got keys {sorted(config)}."
            )
        return cls(config["coefficients"])

    def to_json(self):
        """JSON text `{"coefficients": [[...], ...]}` (exact float64 round trip)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text):
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"Coefficients JSON is not valid JSON: {e}")
        if isinstance(config, list):
            return cls(config)
        return cls.from_dict(config)

    def __array__(self, dtype=None, copy=None):
        return np.array(self._values, dtype=dtype)

    def __eq__(self, other):
        if not isinstance(other, Coefficients):
            return NotImplemented
        return self.shape == other.shape and bool(
            np.array_equal(self._values, other._values)
        )

    def __hash__(self):
        return hash((self.shape, self._values.tobytes()))

    def __repr__(self):
        return f"Coefficients({self._values.tolist()})"

    def __str__(self):
        header = "order | " + " | ".join(
            f"class {k:<2d}" for k in range(self.num_classes)
        )
        lines = [header, "-" * len(header)]
        for m, row in enumerate(self._values, start=1):
            lines.append(
                f"{m:5d} | " + " | ".join(f"{x:+8.4f}" for x in row)
            )
        lines.append(f"convex: {self.is_convex}")
        return "\n".join(lines)


def as_coefficients(coefficients):
    """Returns `coefficients` as a `Coefficients` (accepts array-likes)."""
    if isinstance(coefficients, Coefficients):
        return coefficients
    return Coefficients(coefficients)
