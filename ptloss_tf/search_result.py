"""`SearchResult`: the outcome of `search_coefficients`."""

import json
import warnings

import numpy as np

from ptloss_tf.coefficients import Coefficients
from ptloss_tf.io_utils import atomic_write_text

CRITERIA = ("deviation", "brier", "nll")


class SearchResult:
    """Candidates, their scores under every criterion, and the chosen set.

    Args:
        candidates: `[S, M, K]` candidate coefficient sets.
        scores: dict criterion name -> `[S]` scores (lower is better).
        criterion: the criterion that picks `best`.
        teacher_scores: dict criterion -> score of the raw teacher (`eta = 0`).
        seed: the sampling seed (recorded for reproducibility).

    Example:
    >>> import numpy as np
    >>> r = SearchResult(np.zeros((2, 1, 2)),
    ...                  {c: np.array([2.0, 1.0]) for c in CRITERIA},
    ...                  "brier", {c: 3.0 for c in CRITERIA})
    >>> r.best_index, r.criterion_scores.tolist()
    (1, [2.0, 1.0])
    """

    def __init__(self, candidates, scores, criterion, teacher_scores, seed=None):
        self.candidates = np.asarray(candidates, dtype=np.float64)
        self.scores = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
        if criterion not in self.scores:
            raise ValueError(f"no scores for criterion {criterion!r}.")
        self.criterion = criterion
        self.teacher_scores = dict(teacher_scores)
        self.seed = seed

    @property
    def criterion_scores(self):
        """`[S]` scores under `criterion`, the one that picks `best`.

        Eq. 21's deviation `D` with the default `criterion="deviation"`, the
        Brier score or the NLL otherwise.
        """
        return self.scores[self.criterion]

    @property
    def deviations(self):
        """Deprecated name of `criterion_scores` (they are not always `D`)."""
        warnings.warn(
            "SearchResult.deviations is deprecated: it holds the scores of the "
            "chosen criterion, which need not be the deviation; use "
            "SearchResult.criterion_scores.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.criterion_scores

    @property
    def best_index(self):
        return int(np.argmin(self.criterion_scores))

    @property
    def best(self):
        """The chosen `Coefficients`."""
        return Coefficients(self.candidates[self.best_index])

    def ranking(self, criterion=None):
        """Candidate indices sorted best-first under `criterion`."""
        return np.argsort(self.scores[criterion or self.criterion], kind="stable")

    def table(self, top=10):
        """A text table: the raw teacher, then the `top` candidates.

        Example:
        >>> import numpy as np
        >>> r = SearchResult(np.zeros((1, 1, 2)),
        ...                  {c: np.array([1.0]) for c in CRITERIA},
        ...                  "deviation", {c: 2.0 for c in CRITERIA})
        >>> print(r.table().splitlines()[0].split())
        ['rank', 'candidate', 'deviation', 'brier', 'nll', 'coefficients']
        """
        names = list(self.scores)
        header = f"{'rank':>4} {'candidate':>9} " + " ".join(
            f"{n:>10}" for n in names
        ) + " coefficients"
        lines = [header, "-" * len(header)]
        lines.append(
            f"{'-':>4} {'teacher':>9} "
            + " ".join(f"{self.teacher_scores[n]:10.5f}" for n in names)
            + " (eta = 0)"
        )
        for rank, index in enumerate(self.ranking()[:top], start=1):
            eta = np.array2string(
                self.candidates[index], precision=3, separator=",",
                max_line_width=10_000,
            ).replace("\n", "")
            lines.append(
                f"{rank:>4} {index:>9d} "
                + " ".join(f"{self.scores[n][index]:10.5f}" for n in names)
                + f" {eta}"
            )
        return "\n".join(lines)

    def to_dict(self):
        return {
            "criterion": self.criterion,
            "seed": self.seed,
            "best_index": self.best_index,
            "best": self.best.values.tolist(),
            "teacher_scores": self.teacher_scores,
            "candidates": self.candidates.tolist(),
            "scores": {
                k: [None if not np.isfinite(x) else float(x) for x in v]
                for k, v in self.scores.items()
            },
        }

    def to_json(self, path=None):
        """JSON text; with `path`, also written there atomically."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, config):
        scores = {
            k: np.array([np.inf if x is None else x for x in v])
            for k, v in config["scores"].items()
        }
        return cls(
            config["candidates"], scores, config["criterion"],
            config["teacher_scores"], config.get("seed"),
        )

    def plot(self, path=None):
        """One panel per criterion: every candidate's score (sorted), the raw
        teacher's as a dashed line, the chosen candidate in red. Returns the
        matplotlib figure; saves a PNG to `path` if given."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(self.scores)
        fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2))
        best = self.best_index
        for ax, name in zip(np.atleast_1d(axes), names):
            order = self.ranking(name)
            values = self.scores[name][order]
            ax.plot(np.arange(len(values)), values, ".", color="tab:blue",
                    label="candidates")
            position = int(np.flatnonzero(order == best)[0])
            ax.plot([position], [values[position]], "o", color="tab:red",
                    label=f"chosen ({self.criterion})")
            ax.axhline(self.teacher_scores[name], ls="--", color="gray",
                       label="teacher (eta=0)")
            ax.set_title(name)
            ax.set_xlabel("candidate rank")
            ax.set_ylabel("score (lower is better)")
        np.atleast_1d(axes)[0].legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig
