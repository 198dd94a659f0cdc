"""The document's flowchart (its section 2.4) as one function: ``prune_and_recover``.

::

    A  start from the trained dense model
    B  prune                                  (the recipe's schedule part: experiment.schedules)
    C  accuracy dropped?        no  -> E end
    D  recover (one round)                    (the recipe's recovery part: experiment.recoveries)
    F  recovered?               yes -> E end;  no -> D again, while the budget lasts

"Dropped?" and "recovered?" read the validation rows held out of the training set; the test split is
measured at the same moments and only reported. Derived in ``notebooks/07_finetuning.ipynb``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tinyprune.core.nn import MLP
from tinyprune.experiment.recoveries import make_recovery
from tinyprune.experiment.report import Report
from tinyprune.experiment.run import Run, three_splits
from tinyprune.experiment.schedules import PRUNE_SCHEDULES
from tinyprune.recipe import DEFAULT, Recipe


def prune_and_recover(model: MLP, data: Any, recipe: Recipe | None = None, *, rewind_to: Any = None,
                      log: Callable[[str], None] | None = None, progress: Any = False,
                      **changes: Any) -> Report:
    """The flowchart A-F on ``model`` (trained, dense; pruned and recovered in place) -> ``Report``.

    ``data``: ``tinyprune.data.load(...)``, ``(train, test)`` or ``(train, val, test)``; without a
    validation split, ``recipe.validation`` of the training rows is held out (stratified, seeded): hold
    them out before training the dense model (``three_splits``), or it will have seen them.
    ``recipe``: a ``Recipe`` (default: ``tinyprune.recipe.DEFAULT``, the benchmark's winner);
    ``changes`` are applied with ``recipe.with_changes`` (``sparsity=0.95`` ...). ``rewind_to``: the dense
    training's ``WeightSnapshot`` (or a state dict), for the ``rewind`` recovery. ``log`` receives one
    line per step; ``progress`` is ``fit``'s.

    >>> import numpy as np
    >>> from tinyprune.data import Dataset
    >>> from tinyprune.training import fit
    >>> g = np.random.default_rng(0); y = np.arange(600) % 3
    >>> X = (g.normal(size=(3, 10))[y] + g.normal(size=(600, 10))).astype(np.float32)
    >>> train, val, test, _ = three_splits((Dataset(X[:400], y[:400]), Dataset(X[400:], y[400:])), 0.1, 0)
    >>> model = MLP([10, 16, 3], seed=0); _ = fit(model, train, epochs=10, progress=False)
    >>> recipe = Recipe.from_file("document")
    >>> report = prune_and_recover(model, (train, val, test), recipe, sparsity=0.8, batch_size=32)
    >>> round(report.sparsity, 2), report.epochs_used <= 5, report.rows
    (0.8, True, {'train': 360, 'val': 40, 'test': 200})
    """
    recipe = (recipe or DEFAULT).with_changes(**changes)
    recipe.check_model(model.sizes)                            # every refusal before anything changes
    train, val, test, name = three_splits(data, recipe.validation, recipe.seed)
    run = Run(model, recipe, train, val, test, dataset=name, rewind_to=rewind_to,
              say=log or (lambda text: None), progress=progress)          # A: the dense model, measured
    schedule, recovery = PRUNE_SCHEDULES[recipe.schedule](recipe), make_recovery(recipe.recovery)

    schedule.start(run)                                        # B (one-shot; gradual's head start)
    for number in range(1, recipe.rounds + 1):
        began = time.perf_counter()
        schedule.before_round(run, number)                     # B (iterative: the next step)
        if run.at_target and not run.dropped:                  # C: no drop -> E
            break
        actions = recovery.after_pruning(run) if run.mask_changed else []
        run.mask_changed = False
        actions += recovery.round(run, recipe.round_epochs)    # D: one round of recovery
        accuracy = run.val_per_epoch[-1] if recovery.trains else run.accuracy("val")
        run.recovered = run.recovered_at(accuracy)             # F: recovered?
        run.record_round(number, actions, began, accuracy, trained=recovery.trains)
        if run.recovered or (run.at_target and not recovery.trains):
            break                                              # E (a closed form has nothing more to give)
    return run.report()


__all__ = ["prune_and_recover"]
