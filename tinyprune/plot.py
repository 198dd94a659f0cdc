"""Figures of pruning and recovery, saved as PNG files (matplotlib, imported only when a figure is drawn).

Every function draws one figure with matplotlib's object-oriented API on the Agg canvas (no window, no
``pyplot`` state, so it works on servers and in tests), writes it to ``path`` and returns the path.
matplotlib is an optional dependency (``pip install tinyprune[plot]``); nothing in tinyprune imports this
module except the command line. Figures as in ``notebooks/07_finetuning.ipynb``:

- ``accuracy_vs_sparsity``: a line per criterion/recovery over the sparsities of a ``Sweep``, dense dashed;
- ``accuracy_per_epoch``: accuracy after every recovery epoch, one line per run;
- ``weight_histograms``: the weights of every layer before and after pruning;
- ``first_layer_connections``: how many first-layer weights survive per input pixel, as a 28 x 28 image;
- ``layer_sensitivity``: accuracy against sparsity with one layer pruned at a time (``prune.sensitivity``);
- ``layer_sparsity_bars``: the fraction pruned in every weight matrix.

>>> import tempfile, pathlib
>>> from tinyprune.core.nn import MLP
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
    """Accuracy after recovery against sparsity: one line (mean ± std band over seeds) per criterion and
    recovery; the dense model's accuracy as a dashed line; ``targets`` ``{sparsity: accuracy}`` as crosses.

    ``sweep`` is an ``experiment.Sweep`` (or ``None`` with ``cells``, its aggregated rows: ``criterion``,
    ``recovery``, ``sparsity``, ``final_mean``, ``final_std``). The sparsity axis is on a logit scale, so
    50, 90, 99 % are evenly spread (each step halves or tenths what is left) and high sparsities are legible.
    """
    cells = list(cells if cells is not None else sweep.cells)
    dense = dense_accuracy if dense_accuracy is not None else getattr(sweep, "dense_accuracy", None)
    figure = _figure()
    axes = figure.add_subplot()
    lines: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for cell in cells:
        lines.setdefault((cell["criterion"], cell["recovery"]), []).append(cell)
    criteria = {criterion for criterion, _ in lines}
    if len(lines) > 10:                 # the default cycle has 10 colours: no two lines may share one
        from matplotlib import colormaps

        axes.set_prop_cycle(color=colormaps["tab20"].colors)
    for (criterion, recovery), members in sorted(lines.items()):
        members = sorted(members, key=lambda c: c["sparsity"])
        x = np.array([c["sparsity"] for c in members])
        mean = np.array([100 * c["final_mean"] for c in members])
        std = np.array([100 * c.get("final_std", 0.0) for c in members])
        label = recovery if len(criteria) == 1 else f"{criterion} + {recovery}"
        (line,) = axes.plot(x, mean, marker="o", label=label)
        axes.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    if dense is not None:
        axes.axhline(100 * dense, color="black", linestyle="--", linewidth=1, label="dense")
    if targets:
        axes.plot(list(targets), [100 * v for v in targets.values()], "kx", markersize=9, label="target")
    ticks = sorted({c["sparsity"] for c in cells} | set(targets or ()))
    if ticks and 0 < ticks[0] and ticks[-1] < 1:
        from matplotlib.ticker import FixedLocator, NullLocator

        axes.set_xscale("logit")
        axes.xaxis.set_major_locator(FixedLocator(ticks))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xticklabels([f"{100 * t:g} %" for t in ticks])
    axes.set_xlabel("sparsity (% of weights pruned; logit scale)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title or "accuracy after pruning and recovery")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _save(figure, path)


# --------------------------------------------------------------------------- one run
def accuracy_per_epoch(runs: Mapping[str, Sequence[float]] | Any, path: PathLike, *,
                       dense_accuracy: float | None = None, pruned_accuracy: float | None = None,
                       title: str | None = None) -> Path:
    """Accuracy after every recovery epoch (epoch 0: right after pruning, when given), one line per run.

    ``runs`` is ``{label: [accuracy per epoch]}`` or an ``experiment.Report`` (its ``accuracy_per_epoch``;
    with gradual pruning epoch 0 is the dense model, since pruning happens during the epochs).
    """
    if hasattr(runs, "accuracy_per_epoch"):
        report = runs
        gradual = report.recipe.get("schedule") == "gradual"
        dense_accuracy = report.dense_accuracy if dense_accuracy is None else dense_accuracy
        if pruned_accuracy is None:
            pruned_accuracy = report.dense_accuracy if gradual else report.pruned_accuracy
        runs = {f"{report.recipe.get('schedule', '')} pruning, {report.recipe.get('recovery', 'recovery')}":
                report.accuracy_per_epoch}
    figure = _figure()
    axes = figure.add_subplot()
    for label, values in runs.items():
        values = [100 * v for v in values]
        start = [] if pruned_accuracy is None else [100 * pruned_accuracy]
        x = np.arange(1 - len(start), len(values) + 1)
        axes.plot(x, start + values, marker="o", label=label)
    if dense_accuracy is not None:
        axes.axhline(100 * dense_accuracy, color="black", linestyle="--", linewidth=1, label="dense")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("recovery epoch")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title or "accuracy during recovery")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _save(figure, path)


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


__all__ = ["accuracy_per_epoch", "accuracy_vs_sparsity", "first_layer_connections", "layer_sensitivity",
           "layer_sparsity_bars", "weight_histograms"]
