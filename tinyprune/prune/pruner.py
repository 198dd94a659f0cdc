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
``Pruner.from_recipe(model, recipe, data=(X, y))`` runs a ``Recipe``'s schedule in your loop, its epochs
counted in your optimizer steps (``tinyprune.experiment.stepwise``: the experiment's own schedule object).
Derived in ``notebooks/05_pruning_criteria.ipynb`` ("when to prune").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tinyprune.checks import check_int
from tinyprune.core.nn import MLP
from tinyprune.prune.core import Sparsity
from tinyprune.prune.masks import get_masks, reapply, weight_sparsity
from tinyprune.prune.sparsity_steps import PolynomialPruning

#: ``recipe -> PolynomialPruning``: recipes live in ``tinyprune.experiment``, two floors above the pruner,
#: which hands its function here on import (``use_recipes``), so that this module never imports upwards.
_RECIPE_PRUNING: list[Callable[..., PolynomialPruning]] = []


def use_recipes(recipe_pruning: Callable[..., PolynomialPruning]) -> None:
    """Let ``Pruner.from_recipe`` build its schedule with ``recipe_pruning`` (called by the experiment)."""
    _RECIPE_PRUNING[:] = [recipe_pruning]


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
        if hasattr(sparsity, "schedule") and hasattr(sparsity, "criterion"):     # a Recipe
            raise ValueError("a Recipe counts its schedule in epochs: pass it as Pruner.from_recipe(model, "
                             "recipe, data=(X, y)) or with steps_per_epoch=")
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

    @classmethod
    def from_recipe(cls, model: MLP, recipe: Any, *, data: Any = None, steps_per_epoch: int | None = None,
                    validation: Any = None) -> Pruner:
        """A pruner that runs ``recipe``'s pruning (a ``tp.Recipe``) in your loop: its sparsity, criterion,
        scope and structure; its schedule's timing counted in optimizer steps (``steps_per_epoch``, by
        default ``ceil(len(data) / recipe.batch_size)``); its ``calibration`` rows drawn from ``data``
        (the training rows, ``(X, y)`` or a ``Dataset``), as tinyprune's own loop draws them;
        ``validation`` rows for allocation ``sensitivity``. A gradual recipe gives the masks the
        experiment's gradual schedule gives; what a step-wise pruner cannot run (a head start solved in
        closed form, the iterative and RigL schedules, movement scores) is refused naming the field
        (``tinyprune.experiment.stepwise``).

        >>> import numpy as np, tinyprune as tp
        >>> from tinyprune.core.nn import MLP
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(256, 10)), rng.integers(0, 5, size=256)
        >>> recipe = tp.Recipe(sparsity=0.8, criterion="magnitude", schedule="gradual", head_start=0.0,
        ...                    epochs=2, ramp=0.5, recovery="finetune")
        >>> pruner = Pruner.from_recipe(MLP([10, 20, 5], seed=0), recipe, data=(X, y))
        >>> s = pruner.schedule; (s.begin_step, s.end_step, s.every, s.final_sparsity)    # 8 steps an epoch
        (0, 8, 1, 0.8)
        """
        if not _RECIPE_PRUNING:
            raise RuntimeError("Pruner.from_recipe needs tinyprune.experiment: import tinyprune")
        schedule = _RECIPE_PRUNING[0](model, recipe, data=data, steps_per_epoch=steps_per_epoch,
                                      validation=validation)
        return cls.from_schedule(model, schedule)

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


__all__ = ["Pruner", "use_recipes"]
