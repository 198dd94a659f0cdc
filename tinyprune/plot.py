"""Figures of pruning and recovery, saved as PNG files (matplotlib, imported only when a figure is drawn).

Every function draws one figure with matplotlib's object-oriented API on the Agg canvas (no window, no
``pyplot`` state, so it works on servers and in tests), writes it to ``path`` and returns the path.
matplotlib is an optional dependency (``pip install tinyprune[plot]``); nothing in tinyprune imports this
module except the command line. Figures as in ``notebooks/07_finetuning.ipynb``:

- ``accuracy_vs_sparsity``: a line per criterion/recovery over the sparsities of a ``Sweep``, dense dashed;
- ``loop_steps``: one run's loop step by step, validation and test side by side;
- ``weight_histograms``: the weights of every layer before and after pruning;
- ``first_layer_connections``: how many first-layer weights survive per input pixel, as a 28 x 28 image;
- ``layer_sensitivity``: accuracy against sparsity with one layer pruned at a time (``prune.sensitivity``);
- ``layer_sparsity_bars``: the fraction pruned in every weight matrix.

>>> import tempfile, pathlib
>>> from tinyprune.nn import MLP
>>> path = pathlib.Path(tempfile.mkdtemp()) / "bars.png"
>>> layer_sparsity_bars(MLP([784, 8, 10], seed=0), path).stat().st_size > 0
True
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinyprune.files import atomic_write

PathLike = str | os.PathLike[str]


def _figure(width: float = 6.4, height: float = 4.2) -> Any:
    """A matplotlib ``Figure`` on the Agg canvas (the import happens here, on first use)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("tinyprune.plot needs matplotlib: pip install 'tinyprune[plot]'") from error
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: PathLike) -> Path:
    """Write the figure as PNG, whole or not at all (``files.atomic_write``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda file: figure.savefig(file, format="png"))


def _weights(model: Any) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    return [(f"layers.{i}.W", layer.W.data, layer.W.mask) for i, layer in enumerate(model.layers)]


# --------------------------------------------------------------------------- sweeps
def accuracy_vs_sparsity(sweep: Any, path: PathLike, *, dense_accuracy: float | None = None,
                         title: str | None = None, cells: Sequence[Mapping[str, Any]] | None = None,
                         targets: Mapping[float, float] | None = None) -> Path:
    """Test accuracy after recovery against sparsity: one line (mean, with a ± std band over seeds and the
    number of runs averaged in the legend) per criterion and recovery; the dense model's accuracy dashed;
    ``targets`` ``{sparsity: accuracy}`` as crosses. A second panel zooms on the top (dense - 6 to
    dense + 2 points, where good recoveries crowd) when some line falls below it; each line has its own
    marker and dash, and the legend stands outside the data.

    ``sweep`` is an ``experiment.Sweep`` (or ``None`` with ``cells``, its aggregated rows: ``criterion``,
    ``recovery``, ``sparsity``, ``final_mean``, ``final_std``, ``n``: the runs averaged). The sparsity
    axis is on a logit scale, so 50, 90, 99 % are evenly spread.
    """
    cells = list(cells if cells is not None else sweep.cells)
    dense = dense_accuracy if dense_accuracy is not None else getattr(sweep, "dense_accuracy", None)
    lines: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for cell in cells:
        lines.setdefault((cell["criterion"], cell["recovery"]), []).append(cell)
    lowest = min(cell["final_mean"] for cell in cells)
    zoom = dense is not None and lowest < dense - 0.06          # a second panel only when it shows more
    figure = _figure(11.5 if zoom else 8.5, 4.6)
    panels = [figure.add_subplot(1, 2 if zoom else 1, k + 1) for k in range(2 if zoom else 1)]
    for axes in panels:
        _sweep_lines(axes, lines, dense, targets)
    if zoom:
        panels[1].set_ylim(100 * dense - 6, 100 * dense + 2)
        panels[1].set_title("zoom: within 6 points of dense", fontsize="medium")
        panels[0].set_title("all of it", fontsize="medium")
    figure.suptitle(title or "test accuracy after pruning and recovery")
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right center", fontsize="small")
    return _save(figure, path)


def _sweep_lines(axes: Any, lines: Mapping[tuple[str, str], list[Mapping[str, Any]]], dense: float | None,
                 targets: Mapping[float, float] | None) -> None:
    """One panel of ``accuracy_vs_sparsity``."""
    from matplotlib import colormaps
    from matplotlib.ticker import FixedLocator, NullLocator

    colours = colormaps["tab20" if len(lines) > 10 else "tab10"].colors
    markers, dashes = "osD^vP*Xh<>p", ("-", "--", "-.", ":")
    criteria = {criterion for criterion, _ in lines}
    for index, ((criterion, recovery), members) in enumerate(sorted(lines.items())):
        members = sorted(members, key=lambda c: c["sparsity"])
        x = np.array([c["sparsity"] for c in members])
        mean = np.array([100 * c["final_mean"] for c in members])
        std = np.array([100 * c.get("final_std", 0.0) for c in members])
        seeds = max(int(c.get("n", 1)) for c in members)
        label = (recovery if len(criteria) == 1 else f"{criterion} + {recovery}") + f" (n = {seeds})"
        colour = colours[index % len(colours)]
        axes.plot(x, mean, marker=markers[index % len(markers)], linestyle=dashes[index % len(dashes)],
                  color=colour, label=label, markersize=5)
        axes.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15)
    if dense is not None:
        axes.axhline(100 * dense, color="black", linestyle="--", linewidth=1, label="dense")
    if targets:
        axes.plot(list(targets), [100 * v for v in targets.values()], "kx", markersize=9, label="target")
    ticks = sorted({c["sparsity"] for members in lines.values() for c in members} | set(targets or ()))
    if ticks and 0 < ticks[0] and ticks[-1] < 1:
        axes.set_xscale("logit")
        axes.xaxis.set_major_locator(FixedLocator(ticks))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xticklabels([f"{100 * t:g} %" for t in ticks])
    axes.set_xlabel("sparsity (% of weights pruned; logit scale)")
    axes.set_ylabel("test accuracy (%)")
    axes.grid(alpha=0.3)


# --------------------------------------------------------------------------- one run
#: The kinds of ``Step`` that are recovery (after them the curve shows what recovery won back).
RECOVERY_STEPS = ("closed form", "reset", "epoch")


def loop_steps(report: Any, path: PathLike, *, title: str | None = None) -> Path | None:
    """The loop of one run, step by step: validation accuracy (it decides) on the left, test accuracy
    (only reported) on the right, each with the dense model as a dashed line. The curve starts at the
    pruned model (the dense weights under the mask); pruning steps are dotted vertical lines; on the
    validation panel the error bars are the paired 95 % intervals against dense (``experiment.decide``)
    and the band is the tolerance below dense. ``report`` is an ``experiment.Report`` (its ``steps``).

    Returns ``None`` (and writes nothing) when the run recovered nothing: there is no curve to draw.
    """
    steps = [step for step in report.steps if step["kind"] != "final"]
    if not any(step["kind"] in RECOVERY_STEPS for step in steps):
        return None
    figure = _figure(10.5, 4.2)
    dense, tolerance = steps[0], 100 * report.recipe.get("tolerance", 0.0)
    shown = steps[1:]
    x = np.arange(1, len(shown) + 1)
    for column, (split, meaning) in enumerate((("val", "decides"), ("test", "only reported"))):
        axes = figure.add_subplot(1, 2, column + 1)
        values = np.array([100 * step[f"{split}_accuracy"] for step in shown])
        errors = [100 * 1.959964 * step["versus_dense"]["standard_error"] if step.get("versus_dense") else 0
                  for step in shown] if split == "val" else None
        axes.errorbar(x, values, yerr=errors, marker="o", capsize=3, color="tab:blue",
                      label="validation (bars: paired 95 % vs dense)" if split == "val" else "test")
        level = 100 * dense[f"{split}_accuracy"]
        axes.axhline(level, color="black", linestyle="--", linewidth=1, label=f"dense ({level:.2f} %)")
        if split == "val" and tolerance > 0:
            axes.axhspan(level - tolerance, level, color="tab:green", alpha=0.15,
                         label=f"tolerance ({tolerance:.2f} points)")
        for position, step in zip(x, shown):
            if step["kind"] in ("pruned", "pruning step"):
                axes.axvline(position, color="tab:red", linestyle=":", linewidth=1)
        axes.set_xticks(x, [_step_label(step) for step in shown], rotation=30, ha="right", fontsize="small")
        split_name = "validation" if split == "val" else "test"
        axes.set_ylabel(f"{split_name} accuracy (%)")
        axes.set_title(f"{split_name} ({meaning}; {report.rows.get(split, 0):,} rows)", fontsize="medium")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small", loc="lower right")
    figure.suptitle(title or f"the loop, step by step: pruned at the red dotted line; verdict: "
                             f"{report.verdict}")
    return _save(figure, path)


def _step_label(step: Mapping[str, Any]) -> str:
    if step["kind"] == "epoch":
        return f"epoch {step['epochs']}"
    if step["kind"] == "pruned":
        return f"pruned {100 * step['sparsity']:.1f} %"
    return step["kind"]


def weight_histograms(before: Any, after: Any, path: PathLike, *, bins: int = 80) -> Path:
    """Histograms of every layer's weights before pruning and of the survivors after (log count).

    Magnitude pruning cuts a gap around 0; recovery then moves the survivors.
    """
    layers_before, layers_after = _weights(before), _weights(after)
    figure = _figure(3.2 * len(layers_before), 3.2)
    for index, ((name, W0, _), (_, W1, mask)) in enumerate(zip(layers_before, layers_after)):
        axes = figure.add_subplot(1, len(layers_before), index + 1)
        survivors = W1[mask] if mask is not None else W1[W1 != 0]
        edges = np.linspace(float(min(W0.min(), W1.min())), float(max(W0.max(), W1.max())), bins + 1)
        axes.hist(W0.ravel(), bins=edges, alpha=0.5, label="before")
        axes.hist(survivors.ravel(), bins=edges, alpha=0.7, label="after (survivors)")
        axes.set_yscale("log")
        axes.set_title(f"{name}: {survivors.size:,} of {W0.size:,} left", fontsize="small")
        axes.set_xlabel("weight")
        if index == 0:
            axes.set_ylabel("count")
            axes.legend(fontsize="x-small")
    return _save(figure, path)


def first_layer_connections(model: Any, path: PathLike, *, shape: tuple[int, int] | None = None) -> Path:
    """The number of surviving first-layer weights of every input pixel, as an image (28 x 28 for MNIST).

    Pruning keeps the connections of the pixels in the middle, where the digits are, and cuts the border.
    """
    layer = model.layers[0]
    alive = (layer.W.mask if layer.W.mask is not None else layer.W.data != 0).sum(axis=1)
    if shape is None:
        side = math.isqrt(alive.size)
        if side * side != alive.size:
            raise ValueError(f"the first layer has {alive.size} inputs, not a square image: pass shape=")
        shape = (side, side)
    figure = _figure(4.6, 4.0)
    axes = figure.add_subplot()
    image = axes.imshow(alive.reshape(shape), cmap="viridis")
    figure.colorbar(image, ax=axes, label=f"surviving connections (of {layer.W.shape[1]})")
    axes.set_title(f"first layer: {int(alive.sum()):,} of {layer.W.data.size:,} weights left",
                   fontsize="small")
    axes.set_xticks([])
    axes.set_yticks([])
    return _save(figure, path)


def layer_sensitivity(table: Any, path: PathLike) -> Path:
    """Accuracy against sparsity with one layer pruned at a time, no recovery (a ``SensitivityTable``)."""
    figure = _figure()
    axes = figure.add_subplot()
    x = 100 * np.asarray(table.sparsities)
    for name in table.layers:
        axes.plot(x, 100 * np.asarray(table.accuracy[name]), marker="o", label=name)
    axes.axhline(100 * table.baseline, color="black", linestyle="--", linewidth=1, label="unpruned")
    axes.set_xlabel("sparsity of that layer alone (%)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"sensitivity per layer ({table.criterion}, no recovery)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _save(figure, path)


def layer_sparsity_bars(model_or_sparsity: Any, path: PathLike) -> Path:
    """The fraction of pruned weights in every weight matrix, as bars (a model or ``{name: sparsity}``)."""
    if isinstance(model_or_sparsity, Mapping):
        values = dict(model_or_sparsity)
    else:
        values = {name: float(np.mean(W == 0)) for name, W, _ in _weights(model_or_sparsity)}
    figure = _figure(5.0, 3.6)
    axes = figure.add_subplot()
    names = list(values)
    bars = axes.bar(names, [100 * values[name] for name in names], color="tab:red")
    axes.bar_label(bars, labels=[f"{100 * values[name]:.1f} %" for name in names], fontsize="small")
    axes.set_ylim(0, 105)
    axes.set_ylabel("pruned (%)")
    axes.set_title("sparsity per layer")
    return _save(figure, path)


__all__ = ["loop_steps", "accuracy_vs_sparsity", "first_layer_connections", "layer_sensitivity",
           "layer_sparsity_bars", "weight_histograms"]
