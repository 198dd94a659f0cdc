"""The document's flowchart (its section 2.4) as one function: ``prune_and_recover``, the only
prune -> recover loop in tinyprune.

::

    A  start from the trained dense model                                   (a "dense" Step)
    B  prune                  (the recipe's pruning schedule: experiment.schedules; a "pruned" Step:
                               the dense weights under the mask, before any weight moves back)
    C  accuracy dropped?      within the tolerance, shown  -> E end ("no drop")
    D  recover (one round)    (the recipe's recovery: experiment.recoveries; "closed form" and
                               "epoch" Steps)
    F  recovered?             within the tolerance, shown  -> E end ("recovered");
                              otherwise D again while the budget lasts ("not recovered")

C and F are one paired test on the validation rows held out of the training set
(``experiment.decide``); the test split is measured at the same moments and only reported.
Derived in ``notebooks/07_finetuning.ipynb``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tinyprune.core.nn import MLP
from tinyprune.experiment.parts import PRUNE_SCHEDULES
from tinyprune.experiment.recipe import DEFAULT, Recipe
from tinyprune.experiment.recoveries import make_recovery
from tinyprune.experiment.report import Report, Round, build_report
from tinyprune.experiment.run import Run, three_splits


def prune_and_recover(model: MLP, data: Any, recipe: Recipe | None = None, *, rewind_to: Any = None,
                      log: Callable[[str], None] | None = None, progress: Any = False,
                      **changes: Any) -> Report:
    """The flowchart A-F on ``model`` (trained, dense; pruned and recovered in place) -> ``Report``.

    ``data``: ``tinyprune.data.load(...)``, ``(train, test)`` or ``(train, val, test)``; without a
    validation split, ``recipe.validation`` of the training rows is held out (stratified, seeded): hold
    them out before training the dense model (``three_splits``), or it will have seen them.
    ``recipe``: a ``Recipe`` (default: ``DEFAULT``); ``changes`` are applied with ``recipe.replace``
    (``sparsity=0.95`` ...). ``rewind_to``: the dense training's ``WeightSnapshot`` (or a state dict), for
    a recovery that rewinds. ``log`` receives one line per step; ``progress`` is ``fit``'s.

    >>> import numpy as np
    >>> from tinyprune.data import Dataset
    >>> from tinyprune.training import fit
    >>> g = np.random.default_rng(0); y = np.arange(600) % 3
    >>> X = (g.normal(size=(3, 10))[y] + g.normal(size=(600, 10))).astype(np.float32)
    >>> train, val, test = three_splits((Dataset(X[:400], y[:400]), Dataset(X[400:], y[400:])), 0.1, 0)
    >>> model = MLP([10, 16, 3], seed=0); _ = fit(model, train, epochs=10, progress=False)
    >>> recipe = Recipe.from_file("document")
    >>> report = prune_and_recover(model, (train, val, test), recipe, sparsity=0.8, batch_size=32)
    >>> round(report.sparsity, 2), report.epochs_used <= 5, report.rows
    (0.8, True, {'train': 360, 'val': 40, 'test': 200})
    """
    recipe = (recipe or DEFAULT).replace(**changes) if changes else (recipe or DEFAULT)   # checked once
    recipe.check_model(model.sizes, snapshot=rewind_to is not None)   # every refusal before anything changes
    run = Run(model, recipe, three_splits(data, recipe.validation, recipe.seed), rewind_to=rewind_to,
              say=log, progress=progress)                                # A: the dense model, measured
    schedule, recovery = PRUNE_SCHEDULES[recipe.schedule](recipe), make_recovery(recipe.recovery)
    rounds: list[Round] = []
    verdict = "not recovered"
    schedule.start(run)                                        # B (one-shot; gradual's head start)
    for number in range(1, recipe.rounds + 1):
        began = time.perf_counter()
        schedule.before_round(run, number)                     # B (iterative: the next step)
        if run.at_target and run.within_tolerance("pruned"):   # C: no drop -> E
            verdict = "no drop"
            break
        actions = recovery.after_pruning(run) if run.mask_changed else []
        if actions:
            run.record("closed form" if recovery.keeps_weights else "reset", ", ".join(actions))
        run.mask_changed = False
        actions += recovery.round(run, recipe.round_epochs)    # D: one round of recovery
        recovered = run.at_target and run.within_tolerance()   # F: recovered?
        rounds.append(Round(number, ", ".join(actions) or "nothing", run.steps[-1].sparsity, run.epochs_done,
                            time.perf_counter() - began, run.steps[-1].val_accuracy, recovered))
        verdict = "recovered" if recovered else "not recovered"
        if recovered or (run.at_target and not recovery.trains):
            break                                              # E (a closed form has nothing more to give)
    if not run.at_target:
        run.reached_target()
    return build_report(run, rounds, verdict, dataset=str(getattr(data, "name", "")))


__all__ = ["prune_and_recover"]
