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
        axes.legend(fontsize="small", loc="best")
    figure.suptitle(title or f"the loop, step by step: pruned at the red dotted line; verdict: "
                             f"{report.verdict}")
    return _save(figure, path)


def _step_label(step: Mapping[str, Any]) -> str:
    if step["kind"] == "epoch":
        return f"epoch {step['epochs']}"
    if step["kind"] == "pruned":
        return f"pruned {100 * step['sparsity']:.1f} %\n(dense weights)"
    if step["kind"] == "pruning step":
        return f"prune to {100 * step['sparsity']:.1f} %"
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


# --------------------------------------------------------------------------- figures for the notebooks
# The notebooks call these so that a cell shows the idea, not matplotlib. Each returns the ``Figure``
# (Jupyter shows it when it is a cell's last value) and also writes it when ``path`` is given.
def _lines_on(axes: Any, x: Sequence[float], curves: Mapping[str, Sequence[float]], *,
              reference: Mapping[str, float], xlabel: str, ylabel: str, title: str) -> None:
    for label, values in curves.items():
        axes.plot(list(x), list(values), "o-", ms=3, label=label)
    for label, value in reference.items():          # horizontal lines: the dense model, a baseline
        axes.axhline(value, color="black", ls=":", lw=0.8, label=label)
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axes.legend(fontsize=7)


def line_chart(x: Sequence[float], curves: Mapping[str, Sequence[float]], *,
               reference: Mapping[str, float] | None = None, xlabel: str = "", ylabel: str = "",
               title: str = "", path: PathLike | None = None) -> Any:
    """One line per entry of ``curves`` over ``x``, ``reference`` values as dotted horizontal lines.

    >>> line_chart([1, 2], {"a": [0.5, 0.6]}, reference={"dense": 0.7}).axes[0].get_title()
    ''
    """
    figure = _figure(7, 4)
    _lines_on(figure.add_subplot(), x, curves, reference=reference or {}, xlabel=xlabel, ylabel=ylabel,
              title=title)
    return _save(figure, path) and figure if path else figure


def lines_and_bars(x: Sequence[float], curves: Mapping[str, Sequence[float]], bars: Mapping[str, float], *,
                   reference: Mapping[str, float] | None = None, xlabel: str = "", ylabel: str = "",
                   title: str = "", bar_label: str = "", bar_notes: Mapping[str, str] | None = None,
                   path: PathLike | None = None) -> Any:
    """Curves on the left (as ``line_chart``), one horizontal bar per entry of ``bars`` on the right.

    ``bar_notes`` writes a short text at the end of a bar (for example the accuracy of a row whose bar
    shows something else); the bars' axis starts at 0 unless every value lies above 0.5 (accuracies).

    >>> figure = lines_and_bars([0, 1], {"a": [0.1, 0.9]}, {"x": 0.8, "y": 0.9})
    >>> [axes.get_xlabel() for axes in figure.axes]
    ['', '']
    """
    figure = _figure(13, 4.2)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    _lines_on(left, x, curves, reference=reference or {}, xlabel=xlabel, ylabel=ylabel, title=title)
    names, values = list(bars), [float(bars[name]) for name in bars]
    right.barh(names, values, color="tab:gray")
    for row, name in enumerate(names):
        if bar_notes and name in bar_notes:
            right.text(values[row], row, f" {bar_notes[name]}", va="center", fontsize=7)
    finite = [v for v in values if math.isfinite(v)]
    low = min(finite) - 0.05 if finite and min(finite) > 0.5 else 0.0
    right.set_xlim(low, max(finite, default=1.0) * (1.15 if bar_notes else 1.02))
    for value in (reference or {}).values():
        right.axvline(value, color="black", ls=":", lw=0.8)
    right.set(xlabel=bar_label)
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=7)
    return _save(figure, path) and figure if path else figure


def image_grid(counts: Mapping[str, np.ndarray], signed: Mapping[str, np.ndarray] | None = None, *,
               shape: tuple[int, int] = (28, 28), count_label: str = "count", signed_label: str = "value",
               columns: int = 4, path: PathLike | None = None) -> Any:
    """Vectors drawn as ``shape`` images: ``counts`` on one colour scale from 0 (one colour bar), then
    ``signed`` on a red-blue scale centred on 0 (one colour bar; NaN = not drawn, e.g. pruned).

    Titles are wrapped to the panel's width so that neighbours never overlap.

    >>> figure = image_grid({"a": np.arange(4.0)}, {"b": np.array([-1.0, 1.0, np.nan, 0.0])}, shape=(2, 2))
    >>> sum(axes.get_visible() for axes in figure.axes)      # two panels and two colour bars
    4
    """
    import textwrap

    signed = signed or {}
    rows = math.ceil(len(counts) / columns) + math.ceil(len(signed) / columns)
    figure = _figure(2.7 * columns + 1.2, 2.9 * rows)
    grid = np.atleast_2d(figure.subplots(rows, columns))
    panels = iter(grid.ravel())
    high = max((float(np.nanmax(v)) for v in counts.values()), default=1.0)
    bound = max((float(np.nanmax(np.abs(v))) for v in signed.values()), default=1.0)
    drawn: dict[str, list[Any]] = {"counts": [], "signed": []}
    for group, images, options in (("counts", counts, {"cmap": "viridis", "vmin": 0, "vmax": high}),
                                   ("signed", signed, {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound})):
        for title, image in images.items():
            axes = next(panels)
            shown = axes.imshow(np.asarray(image, dtype=float).reshape(shape), **options)
            axes.set_title("\n".join(textwrap.wrap(title, 24)), fontsize=8)
            drawn[group].append(axes)
        if images:
            figure.colorbar(shown, ax=drawn[group], shrink=0.8,
                            label=count_label if group == "counts" else signed_label)
            for _ in range((-len(images)) % columns):          # finish the row: blank panels
                next(panels).set_visible(False)
    for axes in grid.ravel():
        axes.axis("off")
    return _save(figure, path) and figure if path else figure


def _summary(values: Any) -> str:
    """A number for a box: the value itself if it is one number, else its norm ‖·‖."""
    if values is None:
        return "-"
    values = np.asarray(values, dtype=float)
    return (f"{float(values.ravel()[0]):.3g}" if values.size == 1
            else f"‖·‖ {float(np.linalg.norm(values)):.3g}")


def computation_graph(nodes: Sequence[Any], name: Any, *, title: str = "",
                      path: PathLike | None = None) -> Any:
    """An autograd graph as boxes and arrows, the way micrograd's ``draw_dot`` shows one.

    ``nodes`` are ``Tensor`` s in topological order (``Tensor._topological_order()``: every node after its
    parents), ``name(node)`` labels each. Every box shows the name, the shape, the value and the
    gradient (a number, or the norm ‖·‖ of an array); an arrow runs from every parent to every child.
    Columns are depths (the longest path from a leaf); operations sit on the upper row, each leaf on
    the lower row just before its first child, so no arrow passes under a box.

    >>> from tinyprune.core.autograd import Tensor
    >>> x = Tensor(np.array([2.0]), requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> len(computation_graph(y._topological_order(), lambda n: "n").axes)
    1
    """
    depth: dict[int, int] = {}
    for node in nodes:
        depth[id(node)] = 1 + max((depth[id(p)] for p in node._parents if id(p) in depth), default=-1)
    position = {id(node): (1.9 * depth[id(node)], 0.0) for node in nodes if node._backward is not None}
    for node in nodes:                     # a leaf: on the lower row, below-left of its first child
        if node._backward is None:
            children = [position[id(c)][0] for c in nodes if any(p is node for p in c._parents)]
            position[id(node)] = (min(children, default=0.0) - 0.95, -1.0)
    figure = _figure(2.1 * (max(depth.values()) + 1) + 0.5, 3.4)
    axes = figure.add_subplot()
    boxes = {}
    for node in nodes:
        x, y = position[id(node)]
        label = (f"{name(node)}  {tuple(node.shape)}\nvalue {_summary(node.data)}\n"
                 f"grad {_summary(getattr(node, 'grad', None))}")
        boxes[id(node)] = axes.text(x, y, label, ha="center", va="center", fontsize=7,
                                    bbox={"boxstyle": "round", "fc": "lightyellow" if node._backward
                                          else "lightblue"})
    for node in nodes:
        for parent in node._parents:
            if id(parent) in boxes:                  # from the parent's box to the child's box
                axes.annotate("", xy=position[id(node)], xytext=position[id(parent)],
                              arrowprops={"arrowstyle": "->", "color": "gray",
                                          "patchA": boxes[id(parent)].get_bbox_patch(),
                                          "patchB": boxes[id(node)].get_bbox_patch()})
    left = min(x for x, _ in position.values())
    axes.set(xlim=(left - 1.2, 1.9 * max(depth.values()) + 1.2), ylim=(-1.6, 0.6), title=title)
    axes.axis("off")
    return _save(figure, path) and figure if path else figure
