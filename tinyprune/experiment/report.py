"""What one run of the loop measured: a ``Report`` (its table is ``str(report)``, its record ``to_json()``).

Accuracies are fractions in [0, 1]. Each is measured on the validation rows (held out of the training
set; they decide "dropped?" and "recovered?") and on the test split (only reported): ``dense_accuracy``,
``pruned_accuracy`` and ``final_accuracy`` are the test ones, ``dense_val_accuracy`` and so on the
validation ones.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tinyprune.core.nn import MLP
from tinyprune.files import atomic_write


@dataclass
class Round:
    """One pass through D (and F): what was done, its epochs and seconds, the validation accuracy after."""

    round: int
    action: str
    sparsity: float
    epochs: int
    seconds: float
    accuracy: float
    recovered: bool


@dataclass
class Report:
    """What ``prune_and_recover`` measured.

    ``sparsity`` is the fraction of pruned weights (mask ``False``) over all weight matrices (biases
    excluded), ``layer_sparsity`` the same per matrix; ``epochs_used`` counts epochs of training after
    the dense model (gradual pruning's included); ``seconds`` is the wall time of the whole loop,
    ``closed_form_seconds`` the part spent in closed-form reconstruction or OBS. ``accuracy_per_epoch``
    lists the validation accuracy after every recovery epoch. ``recipe`` is the whole ``Recipe``.
    """

    recipe: dict[str, Any]
    dense_accuracy: float
    pruned_accuracy: float
    final_accuracy: float
    dense_val_accuracy: float
    pruned_val_accuracy: float
    final_val_accuracy: float
    sparsity: float
    layer_sparsity: dict[str, float]
    dense_sparsity: float
    dense_layer_sparsity: dict[str, float]
    epochs_used: int
    seconds: float
    dropped: bool
    recovered: bool
    rounds: list[Round] = field(default_factory=list)
    accuracy_per_epoch: list[float] = field(default_factory=list)
    closed_form_seconds: float = 0.0
    dataset: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    params: int = 0
    nonzeros: int = 0
    flops_dense: int = 0
    flops_effective: int = 0
    compression: float | None = None
    speedup: float | None = None
    dense_summary: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able values (rounds as dicts)."""
        return asdict(self)

    def to_json(self, path: str | os.PathLike[str] | None = None, indent: int = 2) -> str:
        """The report as JSON text; also written to ``path`` (atomically) when given."""
        text = json.dumps(self.to_dict(), indent=indent, default=jsonable)
        if path is not None:
            atomic_write(path, text + "\n")
        return text

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Report:
        """The inverse of ``to_dict``."""
        values = dict(values)
        values["rounds"] = [Round(**r) for r in values.get("rounds", [])]
        names = cls.__dataclass_fields__
        return cls(**{name: value for name, value in values.items() if name in names})

    def __str__(self) -> str:
        r = self.recipe
        dense = self.dense_summary.get("total", {})
        rows = [
            ("", "dense", "pruned", "recovered"),
            (
                "validation accuracy",
                pct(self.dense_val_accuracy),
                pct(self.pruned_val_accuracy),
                pct(self.final_val_accuracy),
            ),
            ("test accuracy", pct(self.dense_accuracy), pct(self.pruned_accuracy), pct(self.final_accuracy)),
            (
                "nonzero weights+biases",
                f"{dense.get('nonzeros', 0):,}",
                f"{self.nonzeros:,}",
                f"{self.nonzeros:,}",
            ),
            ("sparsity (weights)", pct(self.dense_sparsity), pct(self.sparsity), pct(self.sparsity)),
            (
                "FLOPs per sample",
                f"{dense.get('flops_effective', 0):,}",
                f"{self.flops_effective:,}",
                f"{self.flops_effective:,}",
            ),
        ]
        for name, value in self.layer_sparsity.items():
            rows.append(
                (f"  {name} sparsity", pct(self.dense_layer_sparsity.get(name)), pct(value), pct(value))
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [headline(r)]
        lines += [
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))
            )
            for row in rows
        ]
        for one in self.rounds:
            lines.append(
                f"round {one.round}: {one.action}, {one.epochs} epoch(s), {one.seconds:.1f} s -> "
                f"validation accuracy {pct(one.accuracy)} at sparsity {pct(one.sparsity)}"
                + (" (recovered)" if one.recovered else "")
            )
        verdict = (
            "no drop beyond tolerance: nothing to recover"
            if not self.dropped
            else "recovered"
            if self.recovered
            else "not recovered within the budget"
        )
        lines.append(
            f"{verdict} (decided on {self.rows.get('val', 0):,} validation rows): test accuracy "
            f"{pct(self.final_accuracy)} vs dense {pct(self.dense_accuracy)} "
            f"({(self.final_accuracy - self.dense_accuracy) * 100:+.2f} points) after "
            f"{self.epochs_used} epoch(s), {self.seconds:.1f} s; compression "
            f"{self.compression or float('inf'):.1f}x"
        )
        return "\n".join(lines)


def headline(r: dict[str, Any]) -> str:
    """One line saying what the recipe ``r`` (a ``Recipe.to_dict()``) prunes and how it recovers."""
    sparsity = r.get("sparsity", 0)
    target = (
        f"{sparsity:.0%}"
        if isinstance(sparsity, (int, float))
        else "per layer " + ", ".join(f"{k} {v:.0%}" for k, v in sparsity.items())
    )
    head = r.get("head_start") or 0.0
    start = (
        f"{r.get('head_start_criterion')} to {min(head, sparsity):.0%} at once + reconstruction, then "
        if r.get("schedule") == "gradual" and head > 0 and isinstance(sparsity, float)
        else ""
    )
    return (
        f"prune {start}{r.get('criterion')} / {r.get('scope')} / {r.get('structure')} to {target} "
        f"({r.get('schedule')}), recover by {r.get('recovery')} (tolerance {r.get('tolerance', 0) * 100:.2f} "
        f"points, budget {r.get('epochs')} epoch(s), asked every {r.get('check_every') or r.get('epochs')})"
    )


def pct(value: float | None) -> str:
    """``0.9312`` -> ``"93.12 %"``; ``None`` -> ``"n/a"``."""
    return "n/a" if value is None else f"{100 * value:.2f} %"


def jsonable(value: Any) -> Any:
    """``json.dumps``'s ``default``: NumPy scalars and arrays as plain values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def pruned_count(parameter: Any) -> int:
    """How many entries of ``parameter`` are pruned (mask ``False``)."""
    return 0 if parameter.mask is None else int(parameter.mask.size - np.count_nonzero(parameter.mask))


def layer_sparsity(model: MLP) -> dict[str, float]:
    """``{"layers.l.W": fraction of pruned weights}`` (mask ``False``) for every weight matrix.

    A surviving weight that happens to be 0 is not pruned (``metrics.summary`` counts the nonzeros).

    >>> layer_sparsity(MLP([2, 2], seed=0))
    {'layers.0.W': 0.0}
    """
    return {
        f"layers.{i}.W": pruned_count(layer.W) / layer.W.data.size for i, layer in enumerate(model.layers)
    }


def weight_sparsity(model: MLP) -> float:
    """The fraction of pruned entries (mask ``False``) over all weight matrices (biases excluded)."""
    return sum(pruned_count(layer.W) for layer in model.layers) / sum(
        layer.W.data.size for layer in model.layers
    )
