"""A pruner for your own training loop: call ``pruner.step()`` after each optimizer step.

``fit`` is not the only way to train: a course exercise, a custom loss or another framework's optimizer
runs its own loop. ``Pruner`` carries the pruning schedule into that loop, as TF-MOT's
``UpdatePruningStep`` callback and SparseML's ``ScheduledModifierManager`` do for Keras and PyTorch:

    for t in range(1, T + 1):
        loss, grads = gradients(model, X, y)                 # your forward and backward
        for name, p in model.named_parameters():             # your update, which knows nothing of masks
            p.data -= lr * grads[name]
        pruner.step()                                        # W <- W ⊙ M, then prune if the schedule says so

At step t the schedule is Zhu & Gupta's polynomial (``sparsity_steps.PolynomialPruning``): at the steps
``t_0, t_0 + every, ...`` and at ``t_end`` the model is pruned to
``s_t = s_f + (s_i - s_f)(1 - (t - t_0)/(t_end - t_0))^p``; a plain number with no ``end_step`` is
one-shot pruning at ``begin_step`` (the first step by default).

The mask law holds whatever the optimizer: your update may move a pruned weight away from 0 (only
tinyprune's optimizers multiply by the mask), so every ``step()`` first re-applies the masks,
``W <- W ⊙ M``, and only then scores and prunes. After ``step()`` every pruned weight is exactly 0, and
masks only lose entries (pruning again prunes among the survivors). Between two ``step()`` calls a
foreign update may have moved pruned weights: read the model after ``step()``.

``fit`` uses the same object: a ``Pruner`` is a ``fit`` callback (its ``on_step_end`` calls ``step`` with
fit's global step), and the experiment's gradual schedule prunes through one.
Derived in ``notebooks/05_pruning_criteria.ipynb`` ("when to prune").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tinyprune.checks import check_int
from tinyprune.core.nn import MLP
from tinyprune.prune.core import Sparsity
from tinyprune.prune.masks import get_masks, reapply, weight_sparsity
from tinyprune.prune.sparsity_steps import PolynomialPruning


class Pruner:
    """Prune ``model`` on a schedule, one ``step()`` per optimizer step of your own loop.

    - ``sparsity``: the final sparsity, a number in [0, 1) or a mapping ``{"layers.l.W": s_l}`` (as
      ``prune.prune`` takes it), reached at ``end_step``.
    - ``begin_step``, ``end_step``, ``every``: prune at steps ``begin_step, begin_step + every, ...`` and at
      ``end_step`` (default ``end_step = begin_step``, at least 1: all at once). Steps count optimizer
      updates from 1, as ``fit``'s global step does: the first ``step()`` call is step 1.
    - ``initial_sparsity``, ``power``: the polynomial's start and exponent (3: Zhu & Gupta's cubic).
    - ``prune_options``: what ``prune.prune`` takes (``criterion="magnitude"``, ``scope``, ``structure``,
      calibration ``data``, ``seed``, ``include_output``, ...).

    ``Pruner.from_schedule(model, PolynomialPruning(...))`` takes a schedule you built. Attributes:
    ``masks`` (``{name: bool mask}``, True = kept, copies), ``sparsity`` (the fraction of the weight
    matrices' entries that are pruned, every ``layers.l.W``; biases are not counted), ``history`` (the
    schedule's: one ``(step, target sparsity)`` per pruning), ``step_count`` (the last step seen).

    A hand-written loop whose SGD ignores the masks:

    >>> import numpy as np
    >>> from tinyprune.core.backprop import gradients
    >>> from tinyprune.core.nn import MLP
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(64, 10)), rng.integers(0, 5, size=64)
    >>> model = MLP([10, 20, 5], seed=0)     # 300 weights
    >>> pruner = Pruner(model, 0.8, begin_step=0, end_step=20, every=5)
    >>> for t in range(30):
    ...     loss, grads = gradients(model, X, y)
    ...     for name, parameter in model.named_parameters():
    ...         parameter.data -= 0.1 * grads[name]       # moves pruned weights too
    ...     if pruner.step():                             # True when this step pruned
    ...         print(f"step {t + 1}: target {pruner.history[-1][1]:.4f}, pruned {pruner.sparsity:.4f}")
    step 5: target 0.4625, pruned 0.4633
    step 10: target 0.7000, pruned 0.7000
    step 15: target 0.7875, pruned 0.7867
    step 20: target 0.8000, pruned 0.8000
    >>> bool(np.all(model.layers[0].W.data[~pruner.masks["layers.0.W"]] == 0))     # after step(): exact 0
    True
    """

    def __init__(self, model: MLP, sparsity: Sparsity, *, begin_step: int = 1, end_step: int | None = None,
                 every: int = 1, initial_sparsity: Sparsity = 0.0, power: float = 3,
                 **prune_options: Any) -> None:
        if isinstance(sparsity, PolynomialPruning):
            raise ValueError("a PolynomialPruning is a whole schedule: pass it as "
                             "Pruner.from_schedule(model, schedule)")
        check_int("begin_step", begin_step, 0)
        # step() counts from 1, so a schedule that ends at step 0 would never prune
        end_step = max(begin_step, 1) if end_step is None else check_int("end_step", end_step, 1)
        schedule = PolynomialPruning(sparsity, begin_step=begin_step, end_step=end_step, every=every,
                                     initial_sparsity=initial_sparsity, power=power, **prune_options)
        self._bind(model, schedule)

    @classmethod
    def from_schedule(cls, model: MLP, schedule: PolynomialPruning) -> Pruner:
        """A pruner that follows ``schedule`` (its steps, its targets, its ``prune_options``; a subclass
        of ``PolynomialPruning`` that chooses its masks another way is followed too)."""
        if not isinstance(schedule, PolynomialPruning):
            raise ValueError(f"schedule must be a prune.PolynomialPruning, got {type(schedule).__name__}; "
                             f"for a plain sparsity use Pruner(model, sparsity, ...)")
        pruner = cls.__new__(cls)
        pruner._bind(model, schedule)
        return pruner

    def _bind(self, model: MLP, schedule: PolynomialPruning) -> None:
        if not isinstance(model, MLP):
            raise TypeError(f"Pruner prunes an MLP, got {type(model).__name__}")
        self.model, self.schedule = model, schedule
        self.step_count = 0

    def step(self, step: int | None = None) -> bool:
        """After optimizer step ``step`` (default: the last one seen + 1): re-apply the masks
        (``W <- W ⊙ M``), then prune if the schedule prunes at this step. Returns whether it pruned."""
        step = self.step_count + 1 if step is None else step
        check_int(f"step (after step {self.step_count})", step, self.step_count + 1)   # only forward
        self.step_count = step
        reapply(self.model)
        if not self.schedule.prunes_at(step):
            return False
        self.schedule.on_step_end(self.model, None, 0, step)
        return True

    def on_step_end(self, model: MLP, optimizer: Any, epoch: int, step: int) -> None:
        """The ``fit`` callback: ``step(step)`` with fit's global step."""
        if model is not self.model:
            raise ValueError("this Pruner was built for another model: build one Pruner per model")
        self.step(step)

    @property
    def history(self) -> list[tuple[int, Sparsity]]:
        """``(step, target sparsity)`` of every pruning so far (the schedule's own list)."""
        return self.schedule.history

    @property
    def masks(self) -> dict[str, np.ndarray]:
        """``{name: bool mask}`` (True = kept) of every masked parameter: copies."""
        return get_masks(self.model)

    @property
    def sparsity(self) -> float:
        """The fraction of the weight matrices' entries that are pruned (mask False), over every
        ``layers.l.W``; biases are not counted."""
        return weight_sparsity(self.model)

    @property
    def final_sparsity(self) -> Sparsity:
        """The schedule's final target (a number, or ``{"layers.l.W": s_l}``)."""
        value = self.schedule.final_sparsity
        return dict(value) if isinstance(value, Mapping) else value

    def __repr__(self) -> str:
        s = self.schedule
        return (f"Pruner(final_sparsity={self.final_sparsity!r}, begin_step={s.begin_step}, "
                f"end_step={s.end_step}, every={s.every}, step_count={self.step_count}, "
                f"sparsity={self.sparsity:.4f})")


__all__ = ["Pruner"]
