"""Sweeps: the loop over a grid of criteria, sparsities, recoveries and seeds, on any executor.

``sweep`` runs ``prune_and_recover`` for every cell of the grid (a variant of one ``Recipe``) and averages
over the seeds. The runs go to a ``concurrent.futures.Executor``: a local process pool by default, or any
other, such as a Dask cluster's (``distributed.Client(...).get_executor()``), so the same call runs on
many machines.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tinyprune.core.nn import MLP
from tinyprune.experiment.loop import prune_and_recover
from tinyprune.experiment.report import jsonable
from tinyprune.experiment.run import three_splits
from tinyprune.files import atomic_write
from tinyprune.recipe import DEFAULT, Recipe
from tinyprune.training import evaluate, progress_bar


@dataclass
class Sweep:
    """Accuracy over a grid: one record per run (``runs``) and mean ± std over the seeds per cell (``cells``).

    A cell is ``(criterion, sparsity, recovery)``; its fields are ``final_mean``, ``final_std``,
    ``pruned_mean``, ``pruned_std``, ``epochs_mean``, ``seconds_mean``, ``n`` (runs). ``dense_accuracy``
    is the mean accuracy of the dense model(s).
    """

    runs: list[dict[str, Any]]
    cells: list[dict[str, Any]]
    dense_accuracy: float
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dense_accuracy": self.dense_accuracy,
            "cells": self.cells,
            "runs": self.runs,
            "options": self.options,
        }

    def to_json(self, path: str | os.PathLike[str] | None = None, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent, default=jsonable)
        if path is not None:
            atomic_write(path, text + "\n")
        return text

    def cell(self, criterion: str, sparsity: float, recovery: str) -> dict[str, Any]:
        """The aggregated cell, or ``KeyError``."""
        for cell in self.cells:
            if (cell["criterion"], cell["sparsity"], cell["recovery"]) == (criterion, sparsity, recovery):
                return cell
        raise KeyError((criterion, sparsity, recovery))

    def __str__(self) -> str:
        header = ("criterion", "sparsity", "recovery", "after pruning %", "after recovery %", "epochs", "s")
        rows = [header] + [
            (
                c["criterion"],
                f"{c['sparsity']:.0%}",
                c["recovery"],
                f"{100 * c['pruned_mean']:.2f} ± {100 * c['pruned_std']:.2f}",
                f"{100 * c['final_mean']:.2f} ± {100 * c['final_std']:.2f}",
                f"{c['epochs_mean']:.1f}",
                f"{c['seconds_mean']:.1f}",
            )
            for c in self.cells
        ]
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(
                str(v).ljust(w) if i < 3 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))
            )
            for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        return f"dense accuracy {100 * self.dense_accuracy:.2f} %\n" + "\n".join(lines)


def aggregate(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation (0 for one run) over seeds, per (criterion, sparsity, recovery).

    Runs that failed (a record with an ``"error"``) are left out.
    """
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for run in runs:
        if run.get("error"):
            continue  # a run that could not be done (its error is in the runs)
        groups.setdefault((run["criterion"], run["sparsity"], run["recovery"]), []).append(run)

    def mean_std(values: list[float]) -> tuple[float, float]:
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    cells = []
    for (criterion, sparsity, recovery), members in sorted(groups.items()):
        final = mean_std([m["final_accuracy"] for m in members])
        pruned = mean_std([m["pruned_accuracy"] for m in members])
        cells.append(
            {
                "criterion": criterion,
                "sparsity": sparsity,
                "recovery": recovery,
                "final_mean": final[0],
                "final_std": final[1],
                "pruned_mean": pruned[0],
                "pruned_std": pruned[1],
                "epochs_mean": statistics.fmean(m["epochs_used"] for m in members),
                "seconds_mean": statistics.fmean(m["seconds"] for m in members),
                "recovered": sum(bool(m["recovered"]) for m in members),
                "n": len(members),
            }
        )
    return cells


_WORKER: dict[str, Any] = {}


def _init_worker(models: dict[int, MLP], data: Any, snapshots: dict[int, Any], single_thread: bool) -> None:
    """Runs once in each local worker process: keep the dense models and the data, pin BLAS to one thread."""
    _WORKER.update(models=models, data=data, snapshots=snapshots)
    if single_thread:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return
        _WORKER["limits"] = threadpool_limits(limits=1, user_api="blas")


def run_cell(model: MLP, data: Any, recipe: Recipe, snapshot: Any = None) -> dict[str, Any]:
    """One run of the grid on a copy of ``model``: ``prune_and_recover`` as a flat record.

    A recipe the loop refuses for this model (``ValueError``) is recorded with its ``"error"``.
    """
    key = {
        "criterion": recipe.criterion,
        "sparsity": recipe.sparsity,
        "recovery": recipe.recovery,
        "seed": recipe.seed,
    }
    try:
        report = prune_and_recover(copy.deepcopy(model), data, recipe, rewind_to=snapshot)
    except ValueError as error:
        return {**key, "error": " ".join(str(error).split())}
    return {
        **key,
        "dense_accuracy": report.dense_accuracy,
        "pruned_accuracy": report.pruned_accuracy,
        "final_accuracy": report.final_accuracy,
        "dense_val_accuracy": report.dense_val_accuracy,
        "final_val_accuracy": report.final_val_accuracy,
        "real_sparsity": report.sparsity,
        "layer_sparsity": report.layer_sparsity,
        "epochs_used": report.epochs_used,
        "seconds": report.seconds,
        "closed_form_seconds": report.closed_form_seconds,
        "recovered": report.recovered,
        "accuracy_per_epoch": report.accuracy_per_epoch,
    }


def _run_in_worker(recipe: Recipe) -> dict[str, Any]:
    return run_cell(
        _WORKER["models"][recipe.seed], _WORKER["data"], recipe, _WORKER["snapshots"].get(recipe.seed)
    )


def _local_pool(workers: int, models: dict[int, MLP], data: Any, snapshots: dict[int, Any]) -> Executor:
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else methods[0])
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(models, data, snapshots, True),
    )


def sweep(
    model: MLP | dict[int, MLP] | Callable[[int], MLP],
    data: Any,
    recipe: Recipe | None = None,
    *,
    criteria: Sequence[str] | None = None,
    sparsities: Sequence[float] = (0.5, 0.8, 0.9, 0.95, 0.98),
    recoveries: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    workers: int = 1,
    executor: Executor | None = None,
    progress: bool = True,
    snapshots: dict[int, Any] | None = None,
    **changes: Any,
) -> Sweep:
    """Run ``prune_and_recover`` on every (criterion, sparsity, recovery, seed) and average over the seeds.

    Every run is ``recipe.replace(criterion=, sparsity=, recovery=, seed=, **changes)`` (``criteria`` and
    ``recoveries`` default to the recipe's own). ``model`` is the trained dense model (copied for every run),
    ``{seed: model}``, or ``seed -> model``; with ``snapshots`` (``{seed: WeightSnapshot}``) the ``rewind``
    recovery rewinds to them. Every cell is checked before any run starts. A run the loop refuses
    (``ValueError``, e.g. a criterion that would remove a whole layer) is recorded with its ``"error"`` and
    left out of the cells.

    Where the runs go: ``executor``, any ``concurrent.futures.Executor`` (each run is sent with its model and
    data, e.g. to a Dask cluster: ``distributed.Client(address).get_executor()``); else ``workers > 1``
    local processes (BLAS pinned to one thread each); ``workers=1`` runs them here, in order.
    Shapes: ``data.train.X`` (n, d_0) -> ``Sweep`` with one cell per (criterion, sparsity, recovery).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    base = (recipe or DEFAULT).with_changes(**changes)
    criteria, recoveries = list(criteria or [base.criterion]), list(recoveries or [base.recovery])
    for label, values in (
        ("criteria", criteria),
        ("sparsities", list(sparsities)),
        ("recoveries", recoveries),
        ("seeds", list(seeds)),
    ):
        if not values:
            raise ValueError(f"sweep needs at least one of {label}, got none")
    tasks = [
        base.replace(criterion=c, sparsity=float(s), recovery=r, seed=seed)
        for c in criteria
        for s in sparsities
        for r in recoveries
        for seed in seeds
    ]
    models = (
        {seed: model for seed in seeds}
        if isinstance(model, MLP)
        else {seed: model[seed] for seed in seeds}
        if isinstance(model, dict)
        else {seed: model(seed) for seed in seeds}
    )
    snapshots = snapshots or {}
    if any(t.recovery.endswith("rewind") and t.recovery != "lr-rewind" for t in tasks) and not snapshots:
        raise ValueError(
            "recovery 'rewind' needs the dense models' early weights: pass snapshots={seed: WeightSnapshot}"
        )
    tests = {seed: three_splits(data, base.validation, seed)[2] for seed in seeds}
    dense = statistics.fmean(evaluate(models[seed], tests[seed])["accuracy"] for seed in seeds)
    bar = progress_bar(len(tasks), "sweep", "run", progress)
    if executor is None and workers == 1:
        runs = []
        for task in tasks:
            runs.append(run_cell(models[task.seed], data, task, snapshots.get(task.seed)))
            bar.update(1)
    else:
        pool = executor or _local_pool(workers, models, data, snapshots)
        try:
            if executor is None:
                futures = [pool.submit(_run_in_worker, task) for task in tasks]
            else:
                futures = [
                    pool.submit(run_cell, models[t.seed], data, t, snapshots.get(t.seed)) for t in tasks
                ]
            runs = []
            for future in futures:
                runs.append(future.result())
                bar.update(1)
        finally:
            if executor is None:
                pool.shutdown()
    bar.close()
    failed = [run for run in runs if run.get("error")]
    if failed and len(failed) == len(runs):
        raise ValueError(
            f"every run of the sweep failed, e.g. {failed[0]['criterion']} at "
            f"{failed[0]['sparsity']}: {failed[0]['error']}"
        )
    options = {
        k: v for k, v in base.to_dict().items() if k not in ("criterion", "sparsity", "recovery", "seed")
    }
    return Sweep(runs=runs, cells=aggregate(runs), dense_accuracy=dense, options=options)


__all__ = ["Sweep", "aggregate", "run_cell", "sweep"]
