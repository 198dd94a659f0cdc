"""The experiment layer: the document's loop (prune, dropped?, recover, recovered?, repeat) over a ``Recipe``.

One concept per module, read in this order:

- ``parts``: what a pruning schedule and a recovery are, what each declares, and their registries;
- ``recipe``: ``Recipe``, one validated, frozen value of everything an experiment decides;
- ``schedules``: box B as parts (``OneShot``, ``Iterative``, ``Gradual``, ``RigL``), in ``PRUNE_SCHEDULES``;
- ``recoveries``: box D as parts (``Finetune``, ``LRRewind``, ``Retrain``, ``Rewind``, ``Distill``,
  ``Reconstruct``, ``Then``), in ``RECOVERIES``;
- ``decide``: boxes C and F, one paired test on the validation rows;
- ``run``: what the parts act on, and the ``Step`` records of what each box measured;
- ``loop``: ``prune_and_recover(model, data, recipe)``, the flowchart A-F on one screen;
- ``report``: the ``Report``, built from the steps;
- ``sweep``: the loop over a grid, on any ``concurrent.futures.Executor`` (``Sweep``);
- ``stepwise``: a recipe's pruning in optimizer steps, for ``Pruner.from_recipe`` in your own loop.
"""

from tinyprune.experiment.parts import (
    PRUNE_SCHEDULES,
    RECOVERIES,
    PruneSchedule,
    Recovery,
    register_recovery,
    register_schedule,
)
from tinyprune.experiment.recoveries import make_recovery
from tinyprune.experiment.schedules import Gradual, Iterative, OneShot, RigL  # noqa: F401  (registers them)

from tinyprune.experiment.recipe import DEFAULT, RECIPES, Recipe, RecipeError  # isort: skip (after the parts)
from tinyprune.experiment.decide import Comparison, compare, within
from tinyprune.experiment.loop import prune_and_recover
from tinyprune.experiment.report import Report, Round, layer_sparsity
from tinyprune.experiment.run import Run, Step, three_splits, weight_sparsity
from tinyprune.experiment.stepwise import recipe_pruning  # hands Pruner.from_recipe its schedules
from tinyprune.experiment.sweep import Sweep, aggregate, run_cell, sweep

__all__ = [
    "DEFAULT", "PRUNE_SCHEDULES", "RECIPES", "RECOVERIES", "Comparison", "PruneSchedule", "Recipe",
    "RecipeError", "Recovery", "Report", "Round", "Run", "Step", "Sweep", "aggregate", "compare",
    "layer_sparsity", "make_recovery", "prune_and_recover", "register_recovery", "register_schedule",
    "recipe_pruning", "run_cell", "sweep", "three_splits", "weight_sparsity", "within",
]
