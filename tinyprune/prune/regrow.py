"""Regrowth (RigL, Evci et al. 2020): move connections at one sparsity, drop by magnitude, grow by gradient.

Pruning alone only ever removes weights. RigL lets the mask *regain* entries: every few steps, in each
layer, it drops the ``k`` surviving weights of smallest ``|w|`` and grows the ``k`` pruned weights whose
loss gradient ``|∂L/∂w|`` is largest (they would lower the loss most if they were free); a grown weight
starts at exactly 0. The layer's sparsity is unchanged. ``k = ⌊α_t · n_alive⌋`` with the drop fraction
decayed by a cosine, ``α_t = α/2 (1 + cos(π t / T))``, so the mask settles by the end ``T``.

This is the one place where a mask gains ``True`` entries during training; it writes them with
``masks.set_masks`` (which replaces a mask) and never in place. The gradient of the pruned entries comes
from ``backprop.backward(..., masked=False)``, on a batch of calibration rows with cross-entropy on the
labels. Measured in ``benchmarks/bench_target.py`` (no notebook derives it yet).

>>> from tinyprune.core.nn import MLP
>>> from tinyprune.prune import prune
>>> model = MLP([6, 4, 3], seed=0); _ = prune(model, 0.5, "magnitude", "layer")
>>> before = {n: int(m.sum()) for n, m in masks.get_masks(model).items()}
>>> X, y = np.random.default_rng(0).random((32, 6)), np.arange(32) % 3
>>> moved = regrow(model, 0.5, X, y)
>>> {n: int(m.sum()) for n, m in masks.get_masks(model).items()} == before, sum(moved.values()) > 0
(True, True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyprune.checks import check_fraction, check_int
from tinyprune.core import backprop, losses
from tinyprune.core.nn import MLP
from tinyprune.core.random import rng
from tinyprune.prune import masks


def _check_fraction(fraction: Any) -> float:
    return check_fraction("the drop fraction", fraction, include_one=True)


def regrow(model: MLP, fraction: float, X: np.ndarray, y: np.ndarray) -> dict[str, int]:
    """One RigL update of every masked weight matrix: drop ``k`` by magnitude, grow ``k`` by gradient.

    ``k = ⌊fraction · alive⌋`` per layer (and at most the number of pruned entries); a weight just dropped
    is not grown again in the same update. Returns ``{name: k}``. Shapes: X (n, d_0), y (n,).
    """
    fraction = _check_fraction(fraction)
    cache = backprop.forward(model, np.asarray(X))
    _, dlogits = losses.loss_and_grad("cross_entropy", cache.logits, y)
    grads = backprop.backward(model, cache, dlogits, masked=False)
    new_masks, moved = {}, {}
    for name, parameter in model.named_parameters():
        mask = parameter.mask
        if mask is None or not name.endswith(".W"):
            continue
        alive, dead = int(mask.sum()), int(mask.size - mask.sum())
        k = min(int(fraction * alive), dead)
        if k == 0:
            continue
        flat = mask.ravel()
        magnitude = np.where(flat, np.abs(parameter.data.ravel()), np.inf)
        dropped = np.argpartition(magnitude, k - 1)[:k]                   # the k smallest |w| alive
        growth = np.where(flat, -np.inf, np.abs(grads[name].ravel()))     # only pruned entries can grow
        grown = np.argpartition(-growth, k - 1)[:k]                       # the k largest |∂L/∂w| pruned
        new = flat.copy()
        new[dropped], new[grown] = False, True
        new_masks[name], moved[name] = new.reshape(mask.shape), k
    masks.set_masks(model, new_masks)                 # zeroes the dropped; the grown are 0 already
    return moved


class RigLRegrowth:
    """A ``fit`` callback: a RigL update (``regrow``) every ``every`` steps from ``begin_step`` to before
    ``end_step``, with the drop fraction ``α_t = fraction/2 (1 + cos(π (t - begin) / (end - begin)))``.

    Each update reads ``batch`` rows drawn (seeded) from the calibration ``data`` ``(X, y)``.
    ``history`` lists ``(step, rows moved in all layers)``.
    """

    def __init__(self, data: tuple[np.ndarray, np.ndarray], begin_step: int, end_step: int, every: int = 100,
                 fraction: float = 0.3, batch: int = 256, seed: int = 0) -> None:
        self.X, self.y = np.asarray(data[0]), np.asarray(data[1])
        if self.X.ndim != 2 or self.y.shape != (self.X.shape[0],):
            raise ValueError(f"data must be (X (n, d), y (n,)), got shapes {self.X.shape} and {self.y.shape}")
        for label, value in (("begin_step", begin_step), ("end_step", end_step), ("every", every),
                             ("batch", batch)):
            check_int(label, value, 1 if label in ("every", "batch") else 0)
        if end_step < begin_step:
            raise ValueError(f"end_step ({end_step}) must be >= begin_step ({begin_step})")
        self.begin_step, self.end_step, self.every, self.batch = begin_step, end_step, every, batch
        self.fraction = _check_fraction(fraction)
        self.generator = rng(seed)
        self.history: list[tuple[int, int]] = []

    def fraction_at(self, step: int) -> float:
        """The cosine-decayed drop fraction ``α_t``."""
        span = max(self.end_step - self.begin_step, 1)
        return self.fraction / 2 * (1 + math.cos(math.pi * (step - self.begin_step) / span))

    def on_step_end(self, model: MLP, optimizer: Any, epoch: int, step: int) -> None:
        if not self.begin_step < step < self.end_step or (step - self.begin_step) % self.every:
            return
        rows = self.generator.choice(self.X.shape[0], min(self.batch, self.X.shape[0]), replace=False)
        moved = regrow(model, self.fraction_at(step), self.X[rows], self.y[rows])
        self.history.append((step, sum(moved.values())))


__all__ = ["RigLRegrowth", "regrow"]
