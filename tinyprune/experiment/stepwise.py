"""A recipe's pruning schedule in optimizer steps, for ``Pruner.from_recipe`` (your own training loop).

A ``Recipe`` counts its schedule in epochs of tinyprune's loop; a ``Pruner`` counts the optimizer steps
of yours. With ``E`` = ``steps_per_epoch`` (default ``ceil(rows / batch_size)``, as tinyprune's loop has):

- ``gradual``: the polynomial ``s_t = s (1 - (1 - t/T)^p)`` from step 0 to ``T = round(ramp · epochs · E)``,
  pruning every ``prune_every`` steps (default ``E // 20``) and at ``T``, by the recipe's criterion,
  scope and structure, on ``calibration`` rows drawn from your ``data`` with the recipe's seed: the very
  schedule object of the experiment's ``Gradual`` (``schedules.gradual_pruning``), so that the same
  model, rows and updates give the same masks.
- ``one-shot``: the whole target at the first ``step()``.

Refused, naming the field, where a step-wise pruner cannot do what the recipe says:

- a gradual ``head_start`` (pruned at once, the survivors then solved in closed form: ``recover`` is not
  a pruner's job, and the result would differ from the recipe's): set ``head_start=0``;
- ``iterative`` (prunes between the rounds of tinyprune's loop: recover, ask "recovered?", prune again)
  and ``rigl`` (regrowth by gradients on the calibration rows) schedules: the loop decides there;
- a closed-form ``recovery`` (``reconstruct``, ``reconstruct+...``) after a one-shot pruning;
- ``criterion="movement"`` (its scores are what tinyprune's ``fit`` accumulates from the gradients);
- a criterion that reads inputs, or allocation ``sensitivity``, without the rows it reads.

The recovery itself (fine-tuning, distillation) is your loop: the pruner only prunes.
"""

from __future__ import annotations

import math
from typing import Any

from tinyprune import prune
from tinyprune.checks import check_int
from tinyprune.core.batches import Dataset
from tinyprune.core.nn import MLP
from tinyprune.experiment.recipe import Recipe, RecipeError
from tinyprune.experiment.recoveries import make_recovery
from tinyprune.experiment.run import calibration_rows, prune_options
from tinyprune.experiment.schedules import gradual_pruning, ramp_steps
from tinyprune.prune.pruner import use_recipes

STEPWISE = ("gradual", "one-shot")


def _rows(data: Any, label: str) -> Dataset | None:
    """``data`` as a ``Dataset`` (it may be one, or ``(X, y)``), or ``None``."""
    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return Dataset(*data)
    raise ValueError(f"{label} must be a Dataset or a tuple (X, y), got {type(data).__name__}")


def _check_stepwise(recipe: Recipe) -> None:
    """Refuse, naming the field, what a step-wise pruner cannot run (the module docstring's list)."""
    if recipe.schedule not in STEPWISE:
        why = ("prunes between the rounds of tinyprune's loop (recover, ask 'recovered?', prune again)"
               if recipe.schedule == "iterative" else "regrows weights by their gradients on the "
               "calibration rows, inside tinyprune's loop")
        raise RecipeError(f"schedule {recipe.schedule!r} {why}, which a Pruner stepped by your loop does not "
                          f"see: use schedule 'gradual' or 'one-shot' (recipe.replace(schedule='gradual')), "
                          "or tp.prune_and_recover")
    if recipe.schedule == "gradual" and recipe.head_start > 0:
        raise RecipeError(f"head_start {recipe.head_start}: the gradual schedule's head start prunes at once "
                          "and solves the survivors in closed form before training, which a Pruner does not "
                          "do: recipe.replace(head_start=0.0), or tp.prune_and_recover")
    if recipe.schedule == "one-shot" and make_recovery(recipe.recovery).closed_form:
        raise RecipeError(f"recovery {recipe.recovery!r} solves the survivors in closed form after pruning, "
                          "which a Pruner does not do: use a training recovery (your loop), or "
                          "tp.prune_and_recover")
    if recipe.criterion == "movement":
        raise RecipeError("criterion 'movement' scores by the gradients tinyprune's fit accumulates "
                          "(prune.MovementScore); a Pruner does not see your gradients: use another "
                          "criterion")


def _target(model: MLP, recipe: Recipe, validation: Dataset | None) -> Any:
    """The recipe's final sparsity: a number, a per-layer mapping, or the allocation's mapping."""
    if not isinstance(recipe.sparsity, float | int):
        return dict(recipe.sparsity)
    if recipe.allocation is None:
        return recipe.sparsity
    if recipe.allocation == "sensitivity" and validation is None:
        raise RecipeError("allocation 'sensitivity' measures each layer's accuracy drop on validation rows: "
                          "pass validation=(X, y), rows held out of your training data")
    return prune.allocate(model, recipe.sparsity, recipe.allocation, data=validation, seed=recipe.seed)


def recipe_pruning(model: MLP, recipe: Recipe, *, data: Any = None, steps_per_epoch: int | None = None,
                   validation: Any = None) -> prune.PolynomialPruning:
    """The schedule of ``Pruner.from_recipe`` (module docstring): ``recipe``'s target, criterion, scope,
    structure and timing in optimizer steps, its calibration rows drawn from ``data`` (the training rows,
    a ``Dataset`` or ``(X, y)``), ``validation`` rows for allocation ``sensitivity``."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a tp.Recipe, got {type(recipe).__name__}")
    _check_stepwise(recipe)
    train, validation = _rows(data, "data"), _rows(validation, "validation")
    if steps_per_epoch is None:
        if train is None:
            raise ValueError("steps_per_epoch: the recipe counts epochs; give steps_per_epoch (optimizer "
                             "steps in one epoch of your loop) or data (then ceil(rows / batch_size))")
        steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
    check_int("steps_per_epoch", steps_per_epoch, 1)
    part = prune.criterion_class(recipe.criterion, recipe.structure)
    if "inputs" in part.needs and train is None:
        raise RecipeError(f"criterion {recipe.criterion!r} reads inputs: pass data=(X, y), the training "
                          f"rows ({recipe.calibration} calibration rows are drawn from them with the "
                          "recipe's seed)")
    calibration = None if train is None else calibration_rows(train, recipe.calibration, recipe.seed)

    def options(criterion: str, scores: Any = None) -> dict[str, Any]:
        return prune_options(recipe, criterion, calibration, scores)

    target = _target(model, recipe, validation)
    if recipe.schedule == "one-shot":            # as Run.prune_to: a per-layer target prunes layer by layer
        scope = {"scope": "layer"} if isinstance(target, dict) else {}
        once = {**options(recipe.criterion), **scope}
        return prune.PolynomialPruning(target, begin_step=1, end_step=1, **once)
    end_step, every = ramp_steps(recipe, steps_per_epoch)
    return gradual_pruning(recipe, target, options, head=0.0, end_step=end_step, every=every)


use_recipes(recipe_pruning)       # the pruner cannot import recipes (two floors above it): it is handed this

__all__ = ["STEPWISE", "recipe_pruning"]
