"""Sweeps: the loop over a grid of criteria, sparsities, recoveries and seeds, on any executor.

``sweep`` runs ``prune_and_recover`` for every cell of the grid (a variant of one ``Recipe``) and averages
over the seeds. The runs go to a ``concurrent.futures.Executor``: a local process pool by default, or any
other, such as a Dask cluster's (``distributed.Client(...).get_executor()``), so the same call runs on
many machines.

Nothing finished is lost: with a ``journal`` folder every finished run is saved there (one small JSON file,
written atomically) as it completes, and a sweep started again with the same journal, models and options
does only the runs still missing. A run whose process dies (``kill -9`` of a pool worker, a worker lost by
the cluster) is sent again, up to ``RETRIES`` times, then reported as lost (``Sweep.lost``) rather than
dropped; a local pool's workers watch the sweep's process and end when it dies.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import statistics
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyprune.core.nn import MLP
from tinyprune.errors import TinypruneError
from tinyprune.experiment.loop import prune_and_recover
from tinyprune.experiment.recipe import DEFAULT, Recipe
from tinyprune.experiment.report import jsonable
from tinyprune.experiment.run import three_splits
from tinyprune.files import atomic_write, read_config
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

    @property
    def lost(self) -> list[dict[str, Any]]:
        """The runs whose process died on every attempt (``"lost": True``): not done, not in the cells."""
        return [run for run in self.runs if run.get("lost")]

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
#: How many times the runs of a process that died are sent again before they are reported as lost.
RETRIES = 2
#: How often a local worker looks whether the sweep's process is still there.
PARENT_CHECK_SECONDS = 0.5


def _end_with_parent(parent: int) -> None:
    """Runs in a thread of each local worker: exit when the sweep's process is gone (``kill -9``, ``TERM``).

    A pool worker waits on a queue that its dead parent will never write to (and, forked, it holds that
    queue's write end itself, so it never sees the end of it): without this it would wait forever. When the
    parent dies the worker is handed to another parent, so ``getppid`` changes.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def _init_worker(models: dict[int, MLP], data: Any, snapshots: dict[int, Any], single_thread: bool) -> None:
    """Runs once in each local worker process: keep the dense models and the data, pin BLAS to one thread,
    and end with the sweep's process."""
    _WORKER.update(models=models, data=data, snapshots=snapshots)
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
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


@dataclass
class _Raised:
    """An exception raised by a run in another process, sent back as text (it is the run's, not a lost
    process's: it is raised again here, never retried)."""

    text: str


def _guarded(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any] | _Raised:
    try:
        return function(*args)
    except Exception:          # noqa: BLE001 (sent back whole, raised in the sweep's process)
        return _Raised(traceback.format_exc())


def _run_in_worker(recipe: Recipe) -> dict[str, Any] | _Raised:
    return _guarded(run_cell, _WORKER["models"][recipe.seed], _WORKER["data"], recipe,
                    _WORKER["snapshots"].get(recipe.seed))


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


def _key(run: dict[str, Any] | Recipe) -> tuple[str, float, str, int]:
    get = run.get if isinstance(run, dict) else lambda name: getattr(run, name)
    return (get("criterion"), float(get("sparsity")), get("recovery"), int(get("seed")))


class Journal:
    """A folder of finished runs, one JSON file each, saved as they complete; a sweep resumes from it.

    ``journal.json`` holds the fingerprint of what the runs were made from (the dense models, the data and
    the recipe's options); a journal of another sweep is refused rather than mixed in.
    """

    def __init__(self, folder: str | os.PathLike[str], fingerprint: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        marker = self.folder / "journal.json"
        if marker.exists():
            stored = read_config(marker, "sweep journal", TinypruneError)
            if not isinstance(stored, dict) or stored.get("fingerprint") != fingerprint:
                raise TinypruneError(f"{self.folder} holds the finished runs of another sweep (other dense "
                                     "models, data or options): remove it, or use another folder")
        else:
            atomic_write(marker, json.dumps({"fingerprint": fingerprint}) + "\n")

    def _path(self, key: tuple[str, float, str, int]) -> Path:
        return self.folder / f"run-{hashlib.sha256(repr(key).encode()).hexdigest()[:20]}.json"

    def done(self) -> dict[tuple[str, float, str, int], dict[str, Any]]:
        """The runs saved so far, by ``(criterion, sparsity, recovery, seed)``."""
        runs = {}
        for path in sorted(self.folder.glob("run-*.json")):
            record = read_config(path, "saved run", TinypruneError)
            if not isinstance(record, dict) or path != self._path(_key(record)):
                raise TinypruneError(f"{path}: not a run this sweep saved")
            runs[_key(record)] = record
        return runs

    def save(self, record: dict[str, Any]) -> None:
        atomic_write(self._path(_key(record)), json.dumps(record, default=jsonable) + "\n")


def fingerprint(models: dict[int, MLP], data: Any, options: dict[str, Any]) -> str:
    """SHA-256 over the dense models' parameters, the data's arrays and the options: what a run depends on."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=jsonable).encode())
    for seed in sorted(models):
        for name, parameter in models[seed].named_parameters():
            digest.update(f"{seed}/{name}".encode())
            digest.update(np.ascontiguousarray(parameter.data).reshape(-1).view(np.uint8))
    parts = data.values() if isinstance(data, dict) else (
        (data.train, data.test) if hasattr(data, "train") else data)
    for part in parts:
        for array in (part.X, part.y):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))     # no copy
    return digest.hexdigest()


def _lost(task: Recipe, attempts: int, why: str) -> dict[str, Any]:
    return {**dict(zip(("criterion", "sparsity", "recovery", "seed"), _key(task))), "lost": True,
            "error": f"lost: the process running it died on each of {attempts} attempt(s) ({why})"}


def _collect(futures: dict[Future, int], pending: dict[int, Recipe], done: Callable[[int, dict], None]
             ) -> str | None:
    """Wait for ``futures``; hand each finished record to ``done``; return why some were lost, or None."""
    lost = None
    for future in as_completed(futures):
        try:
            record = future.result()
        except Exception as error:       # noqa: BLE001 (the process, not the run, failed: try it again)
            lost = f"{type(error).__name__}: {error}".strip(": ")
            continue
        if isinstance(record, _Raised):
            raise RuntimeError(f"a run of the sweep raised in its worker:\n{record.text}")
        done(futures[future], record)
        del pending[futures[future]]
    return lost


def _run_pooled(tasks: dict[int, Recipe], submit: Callable[[Executor, Recipe], Future],
                make_pool: Callable[[int], Executor], owned: bool, retries: int,
                done: Callable[[int, dict], None]) -> dict[int, dict[str, Any]]:
    """Run ``tasks`` on pools from ``make_pool(size)``; the unfinished runs of a broken pool are sent again
    on a new pool, up to ``retries`` times; returns the records of the runs lost on every attempt.

    A dying worker takes down every run of its pool, so the last attempt gives each run a pool of its own:
    a run that kills its process every time is then lost alone, not with the runs beside it.
    """
    pending, why = dict(tasks), None
    for attempt in range(retries + 1):
        alone = attempt == retries and attempt > 0 and owned
        for batch in ([{i: t} for i, t in pending.items()] if alone else [dict(pending)]):
            pool = make_pool(len(batch))
            broken = None
            try:
                broken = _collect({submit(pool, task): index for index, task in batch.items()}, pending, done)
            finally:
                if owned:
                    pool.shutdown(wait=broken is None, cancel_futures=True)
            why = broken or why
        if not pending:
            return {}
    return {index: _lost(task, retries + 1, why or "unknown") for index, task in pending.items()}


#: The recipe fields a sweep's grid may vary, each with its value per run.
GRID_FIELDS = ("criterion", "sparsity", "recovery")


def sweep(
    model: MLP | dict[int, MLP] | Callable[[int], MLP],
    data: Any,
    recipe: Recipe | None = None,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    seeds: Sequence[int] = (0,),
    executor: Executor | int | None = None,
    snapshots: dict[int, Any] | None = None,
    journal: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Sweep:
    """Run ``prune_and_recover`` on every point of ``grid`` and seed, and average over the seeds.

    ``grid`` maps recipe fields of ``GRID_FIELDS`` to the values to try, e.g. ``{"criterion":
    ["magnitude", "lamp"], "sparsity": [0.5, 0.9]}``; a field it leaves out keeps the recipe's value
    (``sparsity`` defaults to 0.5, 0.8, 0.9, 0.95, 0.98). Every run is ``recipe.replace(**point, seed=)``.
    ``model`` is the trained dense model (copied for every run), ``{seed: model}``, or ``seed -> model``;
    with ``snapshots`` (``{seed: WeightSnapshot}``) the ``rewind`` recovery rewinds to them. Every cell is
    checked before any run starts. A run the loop refuses (``ValueError``, e.g. a criterion that would
    remove a whole layer) is recorded with its ``"error"`` and left out of the cells.

    Where the runs go: ``executor``, any ``concurrent.futures.Executor`` (each run is sent with its model and
    data, e.g. to a Dask cluster: ``distributed.Client(address).get_executor()``); a number N > 1 is a pool
    of N local processes (BLAS pinned to one thread each); ``None`` or 1 runs them here, in order.
    ``journal``: a folder where each finished run is saved as it completes and from which a stopped sweep
    resumes (``Journal``); a run whose process dies is sent again up to ``RETRIES`` times, then recorded as
    lost (``Sweep.lost``). The records come back in grid order whatever the order they finished in.
    Shapes: ``data.train.X`` (n, d_0) -> ``Sweep`` with one cell per (criterion, sparsity, recovery).
    """
    workers, executor = _workers(executor)
    base = recipe or DEFAULT
    tasks = _grid(base, dict(grid or {}), seeds)
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
    options = {
        k: v for k, v in base.to_dict().items() if k not in ("criterion", "sparsity", "recovery", "seed")
    }
    saved = None if journal is None else Journal(journal, fingerprint(models, three_splits(
        data, base.validation, seeds[0])[:3], {**options, "seeds": sorted(set(seeds))}))
    runs = _run_all(tasks, models, data, snapshots, saved, workers=workers, executor=executor,
                    progress=progress)
    failed = [run for run in runs if run.get("error")]
    if failed and len(failed) == len(runs):
        raise ValueError(
            f"every run of the sweep failed, e.g. {failed[0]['criterion']} at "
            f"{failed[0]['sparsity']}: {failed[0]['error']}"
        )
    return Sweep(runs=runs, cells=aggregate(runs), dense_accuracy=dense, options=options)


def _workers(executor: Executor | int | None) -> tuple[int, Executor | None]:
    """``(local processes, executor)`` from ``sweep``'s ``executor`` argument."""
    if executor is None:
        return 1, None
    if isinstance(executor, bool) or (isinstance(executor, int) and executor < 1):
        raise ValueError(f"executor must be an Executor or a number of processes >= 1, got {executor!r}")
    return (executor, None) if isinstance(executor, int) else (1, executor)


def _grid(base: Recipe, grid: dict[str, Sequence[Any]], seeds: Sequence[int]) -> list[Recipe]:
    """Every point of the grid and seed as a checked recipe, in grid order."""
    unknown = sorted(set(grid) - set(GRID_FIELDS))
    if unknown:
        raise ValueError(f"a sweep's grid varies {', '.join(GRID_FIELDS)}, got {unknown}")
    criteria = list(grid.get("criterion") or [base.criterion])
    sparsities = list(grid.get("sparsity", (0.5, 0.8, 0.9, 0.95, 0.98)))
    recoveries = list(grid.get("recovery") or [base.recovery])
    for label, values in (("criterion", criteria), ("sparsity", sparsities), ("recovery", recoveries),
                          ("seeds", list(seeds))):
        if not values:
            raise ValueError(f"sweep needs at least one {label}, got none")
    return [
        base.replace(criterion=c, sparsity=float(s), recovery=r, seed=seed)
        for c in criteria
        for s in sparsities
        for r in recoveries
        for seed in seeds
    ]


def _run_all(tasks: list[Recipe], models: dict[int, MLP], data: Any, snapshots: dict[int, Any],
             journal: Journal | None, *, workers: int, executor: Executor | None,
             progress: bool) -> list[dict[str, Any]]:
    """The record of every task, in task order: from the journal, run here, or on a pool."""
    finished = journal.done() if journal is not None else {}
    records = {index: finished[_key(task)] for index, task in enumerate(tasks) if _key(task) in finished}
    todo = {i: task for i, task in enumerate(tasks) if i not in records}
    bar = progress_bar(len(tasks), "sweep", "run", progress)
    bar.update(len(records))

    def done(index: int, record: dict[str, Any]) -> None:
        records[index] = record
        if journal is not None:
            journal.save(record)
        bar.update(1)

    try:
        if executor is None and workers == 1:
            for index, task in todo.items():
                done(index, run_cell(models[task.seed], data, task, snapshots.get(task.seed)))
        elif todo:
            def submit(pool: Executor, task: Recipe) -> Future:
                if executor is None:                    # the worker holds the models and the data already
                    return pool.submit(_run_in_worker, task)
                seed = task.seed
                return pool.submit(_guarded, run_cell, models[seed], data, task, snapshots.get(seed))

            def make_pool(size: int) -> Executor:
                return executor or _local_pool(min(workers, size), models, data, snapshots)

            records.update(_run_pooled(todo, submit, make_pool, executor is None, RETRIES, done))
    finally:
        bar.close()
    return [records[index] for index in range(len(tasks))]


__all__ = ["Journal", "Sweep", "aggregate", "fingerprint", "run_cell", "sweep"]
