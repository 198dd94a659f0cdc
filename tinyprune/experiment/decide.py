"""Boxes C and F of the flowchart as one paired test: is a model within ``tolerance`` of the dense one?

Both models answer the *same* n validation rows, so their accuracies are compared row by row. With
``b`` rows the dense model gets right and the other wrong, and ``c`` rows the other way round, the
difference of accuracies is ``d = (c - b) / n`` and, the rows being independent draws, its standard error
is ``se = sqrt(b + c - (c - b)² / n) / n`` (the paired, McNemar-style estimate: rows both get right or
both get wrong carry no information about the difference). A 95 % interval is ``d ± 1.96 se``.

The question the loop asks is one of *non-inferiority*: "is the model within ``tolerance`` of the dense
one?" The answer is yes only when the data show it: the one-sided 95 % lower bound ``d - 1.645 se`` is at
least ``-tolerance``. So

- C "dropped?": a drop beyond the tolerance is *not ruled out* -> recover (a recovery that was not needed
  costs epochs; skipping one that was needed costs accuracy);
- F "recovered?": within the tolerance, *shown* -> stop.

Derived in ``notebooks/07_finetuning.ipynb``.

>>> import numpy as np
>>> dense = np.array([True] * 90 + [False] * 10)
>>> pruned = dense.copy(); pruned[:6] = False          # six rows lost, none gained
>>> c = compare(dense, pruned)
>>> round(c.difference, 3), c.discordant, within(c, tolerance=0.005)
(-0.06, (6, 0), False)
>>> print(c)
-6.00 ± 4.65 points (95 %, paired, 100 rows)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The normal quantiles of a two-sided 95 % interval and a one-sided 95 % bound.
Z_TWO_SIDED, Z_ONE_SIDED = 1.959964, 1.644854


@dataclass(frozen=True)
class Comparison:
    """A model against the dense one on the same validation rows (fractions, not points)."""

    difference: float          # accuracy of the model - accuracy of the dense model
    standard_error: float      # of the difference, paired
    rows: int
    discordant: tuple[int, int]  # (dense right and model wrong, dense wrong and model right)

    @property
    def half_width(self) -> float:
        """Half the two-sided 95 % interval of the difference."""
        return Z_TWO_SIDED * self.standard_error

    @property
    def lower_bound(self) -> float:
        """The one-sided 95 % lower bound of the difference."""
        return self.difference - Z_ONE_SIDED * self.standard_error

    def __str__(self) -> str:
        return (f"{100 * self.difference:+.2f} ± {100 * self.half_width:.2f} points "
                f"(95 %, paired, {self.rows:,} rows)")


def compare(dense_correct: np.ndarray, model_correct: np.ndarray) -> Comparison:
    """The paired comparison of two models' per-row correctness (boolean arrays of one length n)."""
    dense_correct, model_correct = np.asarray(dense_correct, bool), np.asarray(model_correct, bool)
    if dense_correct.shape != model_correct.shape or dense_correct.ndim != 1 or dense_correct.size == 0:
        raise ValueError(f"expected two non-empty boolean vectors of one length, got shapes "
                         f"{dense_correct.shape} and {model_correct.shape}")
    n = dense_correct.size
    lost = int(np.count_nonzero(dense_correct & ~model_correct))
    gained = int(np.count_nonzero(~dense_correct & model_correct))
    variance = max(lost + gained - (gained - lost) ** 2 / n, 0.0)
    return Comparison((gained - lost) / n, math.sqrt(variance) / n, n, (lost, gained))


def within(comparison: Comparison, tolerance: float) -> bool:
    """Within ``tolerance`` of the dense model, shown: the one-sided 95 % lower bound is ``>= -tolerance``."""
    return comparison.lower_bound >= -tolerance


__all__ = ["Comparison", "compare", "within"]
