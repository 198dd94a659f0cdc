"""The experiment layer: the document's loop (prune, dropped?, recover, recovered?, repeat) over a ``Recipe``.

One concept per module, read in this order:

- ``loop``: ``prune_and_recover(model, data, recipe)``, the flowchart A-F on one screen;
- ``schedules``: box B as parts (``OneShot``, ``Iterative``, ``Gradual``), by name in ``PRUNE_SCHEDULES``;
- ``recoveries``: box D as parts (``Finetune``, ``LRRewind``, ``Retrain``, ``Rewind``, ``Distill``,
  ``Reconstruct``, ``Then``), found by name in ``RECOVERIES``;
- ``run``: the state one pass works on (the splits, the teacher, the budget, what was measured);
- ``report``: what a pass measured (``Report``, ``Round``);
- ``sweep``: the loop over a grid, on any ``concurrent.futures.Executor`` (``Sweep``).

The recipe itself (``Recipe``, the named recipes) lives in ``tinyprune.recipe``.
"""

from tinyprune.experiment.loop import prune_and_recover
from tinyprune.experiment.recoveries import RECOVERIES, Recovery, make_recovery, split_recovery
from tinyprune.experiment.report import Report, Round, layer_sparsity, weight_sparsity
from tinyprune.experiment.run import Run, three_splits
from tinyprune.experiment.schedules import PRUNE_SCHEDULES, PruneSchedule
from tinyprune.experiment.sweep import Sweep, aggregate, run_cell, sweep
from tinyprune.prune.schedules import polynomial_steps

#: Moved in 0.2: ``iterative_steps`` is ``tinyprune.prune.polynomial_steps`` (with its ``power``); kept for
#: one release.
iterative_steps = polynomial_steps

__all__ = [
    "PRUNE_SCHEDULES",
    "RECOVERIES",
    "PruneSchedule",
    "Recovery",
    "Report",
    "Round",
    "Run",
    "Sweep",
    "aggregate",
    "iterative_steps",
    "layer_sparsity",
    "make_recovery",
    "polynomial_steps",
    "prune_and_recover",
    "run_cell",
    "split_recovery",
    "sweep",
    "three_splits",
    "weight_sparsity",
]
