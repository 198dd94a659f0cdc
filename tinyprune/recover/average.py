"""Weight averaging of the sparse model over the end of training, the mask held fixed.

Late in a cosine schedule the weights wander around a minimum; their average often sits closer to its
centre than any single iterate (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima").
Two averages of the parameters ``θ_t`` from step ``t_0`` on:

- ``"ema"``, the exponential moving average: ``θ̄ <- d θ̄ + (1 - d) θ_t`` (decay ``d``, e.g. 0.999: the
  last ~1/(1 - d) steps count most);
- ``"swa"``, stochastic weight averaging's uniform mean: ``θ̄_k = θ̄_{k-1} + (θ_t - θ̄_{k-1}) / k``.

At ``end_step`` the average replaces the weights (pruned entries set to exactly 0 again). The average
runs with the mask fixed: masks are never changed in place (``prune/masks.py``), so a mask array that is
not the one seen at the previous step means the mask changed, and the average starts again from the
current weights. Measured in ``benchmarks/bench_target.py`` (no notebook derives it yet).

>>> from tinyprune.core.nn import MLP
>>> model = MLP([2, 2], seed=0); averager = WeightAverage("swa", start_step=1, end_step=2)
>>> W = model.layers[0].W; first = W.data.copy()
>>> averager.on_step_end(model, None, 1, 1); W.data += 2.0; averager.on_step_end(model, None, 1, 2)
>>> bool(np.allclose(W.data, first + 1.0))        # the mean of θ and θ + 2
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyprune.core.nn import Module
from tinyprune.prune import masks

AVERAGES = ("ema", "swa")


class WeightAverage:
    """A ``fit`` callback: average the parameters from ``start_step`` on, load the average at ``end_step``.

    ``kind``: ``"ema"`` (decay ``decay``) or ``"swa"`` (uniform). Steps count from the first step of the
    whole budget (``fit``'s ``step``, which continues across calls with ``initial_epoch``).
    ``restarts`` counts how often a mask change restarted the average.
    """

    def __init__(self, kind: str = "ema", *, start_step: int, end_step: int, decay: float = 0.999) -> None:
        if kind not in AVERAGES:
            raise ValueError(f"unknown weight average {kind!r}; expected one of {AVERAGES}")
        for label, value in (("start_step", start_step), ("end_step", end_step)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{label} must be an int >= 0, got {value!r}")
        if end_step < start_step:
            raise ValueError(f"end_step ({end_step}) must be >= start_step ({start_step})")
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not (
                math.isfinite(decay) and 0 <= decay < 1):
            raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
        self.kind, self.start_step, self.end_step, self.decay = kind, start_step, end_step, float(decay)
        self.average: list[np.ndarray] | None = None
        self.seen_masks: list[Any] = []
        self.count = 0
        self.restarts = 0
        self.applied = False

    def _restart(self, parameters: list[Any]) -> None:
        self.average = [p.data.astype(np.float64) for p in parameters]
        self.seen_masks = [p.mask for p in parameters]
        self.count = 1

    def on_step_end(self, model: Module, optimizer: Any, epoch: int, step: int) -> None:
        if not self.start_step <= step <= self.end_step or self.applied:
            return
        parameters = model.parameters()
        if self.average is None:
            self._restart(parameters)
        elif any(p.mask is not seen for p, seen in zip(parameters, self.seen_masks)):
            self.restarts += 1                      # the mask changed: average only under one mask
            self._restart(parameters)
        else:
            self.count += 1
            for mean, p in zip(self.average, parameters):
                if self.kind == "ema":
                    mean *= self.decay
                    mean += (1 - self.decay) * p.data
                else:
                    mean += (p.data - mean) / self.count
        if step == self.end_step:
            self.apply(model)

    def apply(self, model: Module) -> None:
        """Replace the weights by the average (pruned entries exactly 0 again)."""
        if self.average is None:
            return
        for mean, p in zip(self.average, model.parameters()):
            p.data[...] = mean.astype(p.data.dtype)
        masks.reapply(model)
        self.applied = True


__all__ = ["AVERAGES", "WeightAverage"]
