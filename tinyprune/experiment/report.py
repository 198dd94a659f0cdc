"""What one run of the loop measured: a ``Report`` (its table is ``str(report)``, its record ``to_json()``).

Every number in a report is read from the run's ``Step`` records (``experiment.run``): the table, the
log, the JSON and the figures show the same values. Accuracies are fractions in [0, 1], each measured on
the validation rows (held out of the training set; they decide "dropped?" and "recovered?") and on the
test split (only reported): ``dense_accuracy``, ``pruned_accuracy`` and ``final_accuracy`` are the test
ones, ``dense_val_accuracy`` and so on the validation ones. ``pruned`` is the dense weights under the
final mask, before any weight moved back; ``final`` is the model returned.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tinyprune import metrics
from tinyprune.core.nn import MLP
from tinyprune.experiment.decide import Comparison
from tinyprune.experiment.run import Run, Step, weight_sparsity
from tinyprune.files import atomic_write

#: The three verdicts of a run, one of which every report carries.
VERDICTS = ("no drop", "recovered", "not recovered")


@dataclass
class Round:
    """One pass through D and F: what was done, the fraction of weights pruned, the recovery epochs so far,
    its seconds, the validation accuracy after it and F's answer (within the tolerance of dense, shown)."""

    number: int
    action: str
    sparsity: float
    epochs: int
    seconds: float
    val_accuracy: float
    recovered: bool


@dataclass
class Report:
    """What ``prune_and_recover`` measured.

    ``verdict`` is one of ``VERDICTS``; ``dropped`` (C: a drop beyond the tolerance was not ruled out) and
    ``recovered`` are read from it. ``sparsity`` is the fraction of pruned weights (mask ``False``) over
    all weight matrices (biases excluded), ``layer_sparsity`` the same per matrix; ``nonzeros`` counts
    weights *and* biases. ``epochs_used`` counts recovery epochs; ``seconds`` is the wall time of the
    loop, ``closed_form_seconds`` the part spent in reconstruction or OBS. ``steps`` lists every measured
    moment; ``accuracy_per_epoch`` is the validation accuracy after every recovery epoch.
    """

    recipe: dict[str, Any]
    verdict: str
    dense_accuracy: float
    pruned_accuracy: float
    final_accuracy: float
    dense_val_accuracy: float
    pruned_val_accuracy: float
    final_val_accuracy: float
    sparsity: float
    layer_sparsity: dict[str, float]
    dense_sparsity: float
    epochs_used: int
    seconds: float
    dropped: bool
    recovered: bool
    steps: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    accuracy_per_epoch: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
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
        return "\n".join([headline(self.recipe), *self._table(), "", *self._story(), *self._ending()])

    def _table(self) -> list[str]:
        dense = self.dense_summary.get("total", {})
        rows = [("", "dense", "pruned", "recovered"),
                ("validation accuracy", pct(self.dense_val_accuracy), pct(self.pruned_val_accuracy),
                 pct(self.final_val_accuracy)),
                ("test accuracy", pct(self.dense_accuracy), pct(self.pruned_accuracy),
                 pct(self.final_accuracy)),
                ("nonzero weights+biases", f"{dense.get('nonzeros', 0):,}", f"{self.nonzeros:,}",
                 f"{self.nonzeros:,}"),
                ("sparsity (weights only)", pct(self.dense_sparsity), pct(self.sparsity), pct(self.sparsity)),
                ("FLOPs per sample", f"{dense.get('flops_effective', 0):,}", f"{self.flops_effective:,}",
                 f"{self.flops_effective:,}")]
        rows += [(f"  {name} sparsity (weights)", "", pct(value), pct(value))
                 for name, value in self.layer_sparsity.items()]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                          for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]

    def _story(self) -> list[str]:
        lines = [f"the loop, step by step (validation decides on {self.rows.get('val', 0):,} rows held out "
                 "of the training set; test is only reported):"]
        for step in self.steps:
            versus = step.get("versus_dense")
            difference = f"  vs dense {format_comparison(versus)}" if versus else ""
            lines.append(f"  {step['kind']:<12} validation {pct(step['val_accuracy']):>8}  test "
                         f"{pct(step['test_accuracy']):>8}  {step['action']}{difference}")
        return lines

    def _ending(self) -> list[str]:
        tolerance = self.recipe.get("tolerance", 0) * 100
        explained = {"no drop": f"within {tolerance:.2f} points of dense right after pruning, shown: "
                                "nothing to recover",
                     "recovered": f"a drop was not ruled out, and recovery brought it within {tolerance:.2f} "
                                  "points of dense, shown",
                     "not recovered": f"a drop was not ruled out, and within {tolerance:.2f} points of dense "
                                      "was not shown within the budget"}[self.verdict]
        lines = [f"warning: {text}" for text in self.warnings]
        lines.append(
            f"verdict: {self.verdict} ({explained}; a paired test on the validation rows, one-sided 95 %). "
            f"Test accuracy {pct(self.final_accuracy)} vs dense {pct(self.dense_accuracy)} "
            f"({(self.final_accuracy - self.dense_accuracy) * 100:+.2f} points) after {self.epochs_used} "
            f"recovery epoch(s), {self.seconds:.1f} s; compression {self.compression or float('inf'):.1f}x")
        return lines


def format_comparison(values: dict[str, Any]) -> str:
    """A recorded ``Comparison`` (as a dict) as ``"-1.10 ± 0.90 points (95 %, paired, 400 rows)"``."""
    return str(Comparison(values["difference"], values["standard_error"], values["rows"],
                          tuple(values["discordant"])))


def layer_sparsity(model: MLP) -> dict[str, float]:
    """``{"layers.l.W": fraction of pruned weights}`` (mask ``False``) for every weight matrix.

    A surviving weight that happens to be 0 is not pruned (``metrics.summary`` counts the nonzeros).

    >>> layer_sparsity(MLP([2, 2], seed=0))
    {'layers.0.W': 0.0}
    """
    return {f"layers.{i}.W": 0.0 if layer.W.mask is None else float(np.mean(~layer.W.mask))
            for i, layer in enumerate(model.layers)}


def run_warnings(model: MLP, final: Step, classes: int) -> list[str]:
    """One line for each thing a reader must not miss: a layer left with fewer surviving weights than it
    has output units, or a final accuracy near chance (1 / classes)."""
    warnings = []
    for i, layer in enumerate(model.layers):
        kept = layer.W.data.size if layer.W.mask is None else int(np.count_nonzero(layer.W.mask))
        if kept < layer.W.data.shape[1]:
            warnings.append(f"layers.{i}.W keeps {kept:,} of {layer.W.data.size:,} weights, fewer than its "
                            f"{layer.W.data.shape[1]} output units")
    if final.val_accuracy < 1.5 / classes:
        warnings.append(f"the final validation accuracy {pct(final.val_accuracy)} is near chance "
                        f"({pct(1 / classes)} for {classes} classes)")
    return warnings


def build_report(run: Run, rounds: list[Round], verdict: str, dataset: str = "") -> Report:
    """The ``Report`` of a finished ``run``: every accuracy read from its steps (a last ``final`` step is
    recorded here, on the model returned)."""
    final = run.record("final", "the model returned")
    dense, pruned = run.steps[0], [step for step in run.steps if step.kind == "pruned"][-1]
    table = metrics.summary(run.model)
    info = table.to_dict()
    return Report(
        recipe=run.recipe.to_dict(), verdict=verdict,
        dense_accuracy=dense.test_accuracy, pruned_accuracy=pruned.test_accuracy,
        final_accuracy=final.test_accuracy, dense_val_accuracy=dense.val_accuracy,
        pruned_val_accuracy=pruned.val_accuracy, final_val_accuracy=final.val_accuracy,
        sparsity=weight_sparsity(run.model), layer_sparsity=layer_sparsity(run.model),
        dense_sparsity=dense.sparsity, epochs_used=run.epochs_done,
        seconds=run.seconds(), dropped=verdict != "no drop", recovered=verdict == "recovered",
        steps=[asdict(step) for step in run.steps], rounds=rounds,
        accuracy_per_epoch=[step.val_accuracy for step in run.steps if step.kind == "epoch"],
        warnings=run_warnings(run.model, final, int(run.model.sizes[-1])),
        closed_form_seconds=run.closed_form_seconds, dataset=dataset,
        rows={"train": len(run.train), "val": len(run.val), "test": len(run.test)},
        params=table.total.params, nonzeros=table.total.nonzeros, flops_dense=table.total.flops_dense,
        flops_effective=table.total.flops_effective, compression=info["compression_ratio"],
        speedup=info["speedup"], dense_summary=run.dense_summary, summary=info,
    )


def headline(r: dict[str, Any]) -> str:
    """One line saying what the recipe ``r`` (a ``Recipe.to_dict()``) prunes and how it recovers."""
    sparsity = r.get("sparsity", 0)
    target = (f"{sparsity:.0%}" if isinstance(sparsity, (int, float))
              else "per layer " + ", ".join(f"{k} {v:.0%}" for k, v in sparsity.items()))
    head = r.get("head_start") or 0.0
    single = isinstance(sparsity, (int, float))
    if r.get("schedule") == "gradual" and head > 0 and single and head >= sparsity > 0:
        how = f"{r.get('head_start_criterion')} at once + reconstruction (gradual's head start reaches it)"
    elif r.get("schedule") == "gradual" and head > 0 and single and sparsity > 0:
        how = (f"{r.get('head_start_criterion')} to {head:.0%} at once + reconstruction, then "
               f"{r.get('criterion')} gradually")
    else:
        how = f"{r.get('criterion')} ({r.get('schedule')})"
    return (f"prune {target} of the weights by {how} / {r.get('scope')} / {r.get('structure')}, recover by "
            f"{r.get('recovery')} (tolerance "
            f"{r.get('tolerance', 0) * 100:.2f} points, budget {r.get('epochs')} epoch(s), asked every "
            f"{r.get('check_every') or r.get('epochs')})")


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


__all__ = ["Report", "Round", "VERDICTS", "build_report", "format_comparison", "headline", "jsonable",
           "layer_sparsity", "pct"]
