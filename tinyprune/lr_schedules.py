"""Learning-rate schedules: ``lr(t)`` for the optimizers' ``schedule=`` (any callable of the step works).

Derived and drawn in ``notebooks/04_training.ipynb``.

>>> schedule = cosine(0.1, total_steps=100)
>>> schedule(0), round(schedule(50), 3), schedule(100)
(0.1, 0.05, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["constant", "cosine", "step_decay"]


@dataclass(frozen=True)
class constant:  # noqa: N801 (a schedule reads like a function)
    """``lr(t) = lr`` for every step t."""

    lr: float

    def __call__(self, step: int) -> float:
        return self.lr


@dataclass(frozen=True)
class step_decay:  # noqa: N801
    """``lr(t) = lr · gamma^floor(t / every)``: multiply by ``gamma`` every ``every`` steps."""

    lr: float
    every: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.every, (int, np.integer)) or self.every < 1:
            raise ValueError(f"step_decay needs every >= 1 (steps between decays), got {self.every!r}")

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.every)


@dataclass(frozen=True)
class cosine:  # noqa: N801
    """``lr(t) = final + (lr - final) · (1 + cos(π t / T)) / 2`` for ``t < T``, then ``final``."""

    lr: float
    total_steps: int
    final_lr: float = 0.0

    def __call__(self, step: int) -> float:
        progress = min(step, self.total_steps) / max(self.total_steps, 1)
        return self.final_lr + (self.lr - self.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
