"""Sensitivity analysis: prune one layer at a time, without recovery, and watch the accuracy.

For every prunable layer ``l`` and sparsity ``s``: copy the model, prune only ``W_l`` to ``s`` (layer
scope), measure the accuracy. Layers whose accuracy barely moves can take more pruning (Han et al.
2015, Fig. 6; Li et al. 2017 choose per-layer rates this way). The model itself is never changed.
Measured in ``notebooks/06_why_accuracy_drops.ipynb`` ("information loss", per-layer sensitivity).

>>> from tinyprune.core.nn import MLP
>>> X = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
>>> y = (X[:, 0] > 0).astype(np.int64)
>>> table = sensitivity(MLP([6, 8, 2], seed=0), (X, y), sparsities=(0.0, 0.5))
>>> table.layers, table.sparsities, len(table.accuracy["layers.0.W"])
(['layers.0.W', 'layers.1.W'], [0.0, 0.5], 2)
>>> table.accuracy["layers.0.W"][0] == table.baseline
True
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.core.nn import MLP
from tinyprune.prune.core import check_sparsity, eligible, prune, resolve_data
from tinyprune.training import evaluate


@dataclass
class SensitivityTable:
    """``accuracy[layer][i]`` = accuracy with only ``layer`` pruned to ``sparsities[i]``; ``baseline`` =
    accuracy of the unpruned model."""

    criterion: str
    sparsities: list[float]
    layers: list[str]
    accuracy: dict[str, list[float]]
    baseline: float

    def to_dict(self) -> dict[str, Any]:
        return {"criterion": self.criterion, "sparsities": list(self.sparsities), "layers": list(self.layers),
                "accuracy": {k: list(v) for k, v in self.accuracy.items()}, "baseline": self.baseline}

    def __str__(self) -> str:
        head = ["layer"] + [f"{s:.0%}" for s in self.sparsities]
        rows = [head] + [[name] + [f"{a:.4f}" for a in self.accuracy[name]] for name in self.layers]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        return "\n".join([f"sensitivity ({self.criterion}; baseline accuracy {self.baseline:.4f})", *lines])


def sensitivity(model: MLP, dataset: Any, sparsities: Sequence[float] = (0.25, 0.5, 0.75, 0.9, 0.95),
                criterion: str = "magnitude", data: Any = None, layers: Sequence[str] | None = None,
                seed: int = 0, **options: Any) -> SensitivityTable:
    """Accuracy on ``dataset`` (a Dataset or ``(X, y)``) with one layer at a time pruned to each sparsity.

    ``layers`` defaults to every weight matrix (``layers.l.W``); ``data`` is the calibration data of a
    data-dependent criterion (default: ``dataset``); ``options`` go to ``prune``. A combination that
    ``prune`` refuses (e.g. a layer left empty) is recorded as ``nan``.
    Shapes: one row of ``len(sparsities)`` accuracies per layer.
    """
    sparsities = [check_sparsity(s) for s in sparsities]
    if not sparsities:
        raise ValueError("sparsities must list at least one value in [0, 1)")
    X, y = resolve_data(dataset)
    if y is None:
        raise ValueError("sensitivity needs labelled data: (X, y) or a Dataset")
    evaluation = (X, y)
    calibration = dataset if data is None else data
    all_weights = eligible(model, prune_biases=True)
    names = [n for n in all_weights if n.endswith(".W")] if layers is None else list(layers)
    unknown = [n for n in names if n not in all_weights]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; expected parameter names from {all_weights}")
    baseline = evaluate(model, evaluation)["accuracy"]
    table: dict[str, list[float]] = {}
    for name in names:
        row = []
        for sparsity in sparsities:
            trial = copy.deepcopy(model)
            others = [n for n in all_weights if n != name]
            try:
                prune(trial, sparsity, criterion, scope="layer", data=calibration, seed=seed,
                      exclude=others, prune_biases=name.endswith(".b"), **options)
            except ValueError:
                row.append(np.nan)
                continue
            row.append(evaluate(trial, evaluation)["accuracy"])
        table[name] = row
    return SensitivityTable(criterion, sparsities, names, table, baseline)

