"""Allocation: how sparse should each layer be, so that the whole network has a given sparsity?

A per-layer mapping ``{"layers.l.W": s_l}`` (what ``prune`` accepts as ``sparsity``) that meets an overall
sparsity ``s`` exactly, in counts: ``Σ_l round(s_l · n_l) = round(s · N)`` over the weight matrices
(``n_l`` weights in layer l, ``N = Σ n_l``; biases are not counted), with every layer keeping at least
one weight. Four ways to choose it:

- ``"uniform"``: ``s_l = s`` (up to rounding).
- ``"erk"`` (Erdős–Rényi, Mocanu et al. 2018; Evci et al. 2020, RigL): the density of a layer is
  ``1 - s_l = ε (d_in + d_out) / (d_in · d_out)``, so small layers stay denser; a layer whose density
  would pass 1 is kept dense and ``ε`` is solved again over the others.
- ``"lamp"``: the sparsities that one global LAMP threshold gives (Lee et al. 2021; ``criteria.lamp``).
- ``"sensitivity"``: each layer alone to the largest sparsity ``t_l`` whose accuracy drop on validation
  rows stays within ``budget`` (Han et al. 2015; Li et al. 2017), then scaled to meet ``s`` by one power
  of the densities, ``1 - s_l = (1 - t_l)^β``.

Ideal (real) counts are turned into integers by largest remainder (``round_counts``). Derived in
``notebooks/05_pruning_criteria.ipynb`` ("layer-wise or global?"); measured in
``benchmarks/bench_allocation.py``.

>>> from tinyprune.core.nn import MLP
>>> model = MLP([784, 64, 64, 10], seed=0)
>>> {name: round(s, 4) for name, s in allocate(model, 0.9, "erk").items()}
{'layers.0.W': 0.9116, 'layers.1.W': 0.8367, 'layers.2.W': 0.3953}
>>> implied_sparsity(model, allocate(model, 0.9, "erk")) == round(0.9 * 54912) / 54912
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tinyprune.checks import check_fraction
from tinyprune.core.nn import MLP
from tinyprune.prune import criteria, select
from tinyprune.prune.core import Sparsity, check_sparsity, per_layer_sparsity, resolve_data
from tinyprune.prune.sensitivity import sensitivity

METHODS = ("uniform", "erk", "lamp", "sensitivity")
SENSITIVITY_GRID = tuple(round(i / 100, 2) for i in range(100))     # 0.00, 0.01, ..., 0.99


def weight_names(model: MLP) -> list[str]:
    """``["layers.0.W", ...]``: the matrices an allocation covers, in model order."""
    return [f"layers.{i}.W" for i in range(len(model.layers))]


def implied_sparsity(model: MLP, sparsity: Sparsity) -> float:
    """The global weight sparsity that ``sparsity`` (a number or a per-layer mapping) implies:
    ``Σ_l round(s_l · n_l) / Σ_l n_l`` over every weight matrix (missing layers: 0; biases not counted).

    >>> from tinyprune.core.nn import MLP
    >>> implied_sparsity(MLP([4, 10, 2], seed=0), {"layers.0.W": 0.5})     # 20 of 40 + 20 weights
    0.3333333333333333
    """
    names = weight_names(model)
    sizes = [layer.W.data.size for layer in model.layers]
    shares = per_layer_sparsity(sparsity, names) if isinstance(sparsity, Mapping) else \
        [check_sparsity(sparsity)] * len(names)
    return sum(round(s * n) for s, n in zip(shares, sizes)) / sum(sizes)


def round_counts(ideal: Any, total: int, upper: Any) -> np.ndarray:
    """Integers ``k_l`` with ``0 <= k_l <= upper_l`` and ``Σ k_l = total``, each as close to ``ideal_l``
    as it can be: floors first, then one more to the largest remainders (ties: the lower index).

    >>> round_counts([1.5, 2.5, 1.0], 5, [9, 9, 9]).tolist()
    [2, 2, 1]
    """
    upper = np.asarray(upper, dtype=np.int64)
    if not 0 <= total <= int(upper.sum()):
        raise ValueError(f"cannot place {total} in layers that hold at most {int(upper.sum())}")
    ideal = np.clip(np.asarray(ideal, dtype=np.float64), 0, upper)
    counts = np.minimum(np.floor(ideal).astype(np.int64), upper)
    index = np.arange(counts.size)
    while (missing := total - int(counts.sum())) > 0:
        room = counts < upper
        remainder = np.where(room, ideal - counts, -np.inf)
        order = np.lexsort((index, -remainder))[:min(missing, int(room.sum()))]
        counts[order] += 1
    while (extra := int(counts.sum()) - total) > 0:           # only if ideal summed above total
        excess = np.where(counts > 0, counts - ideal, -np.inf)
        counts[np.lexsort((index, -excess))[:extra]] -= 1
    return counts


# ------------------------------------------------------------------ the four methods (ideal counts)
def _erk(model: MLP, kept: int) -> np.ndarray:
    """Ideal pruned counts when layer l keeps ``ε (d_in + d_out)`` weights, dense where that passes n_l."""
    sizes = np.array([layer.W.data.size for layer in model.layers], dtype=np.float64)
    raw = np.array([sum(layer.W.shape) for layer in model.layers], dtype=np.float64)   # (d_in + d_out)
    dense = np.zeros(sizes.size, bool)
    while True:
        epsilon = (kept - sizes[dense].sum()) / raw[~dense].sum()
        grown = ~dense & (epsilon * raw > sizes)
        if not grown.any():
            break
        dense |= grown
    return np.where(dense, 0.0, sizes - epsilon * raw)


def _lamp(model: MLP, total: int) -> np.ndarray:
    """Pruned counts per layer under one global LAMP threshold (pruned weights score 0 and go first)."""
    scores = criteria.lamp(model)
    keep = select.smallest_k([scores[name] for name in weight_names(model)], total)
    return np.array([mask.size - np.count_nonzero(mask) for mask in keep], dtype=np.float64)


def tolerated_sparsity(model: MLP, data: Any, budget: float, seed: int = 0) -> dict[str, float]:
    """Per layer, the largest sparsity of ``SENSITIVITY_GRID`` up to which pruning that layer alone by
    magnitude (layer scope, no recovery) keeps ``accuracy >= baseline - budget`` on ``data`` at every
    grid point: the first point past the budget ends the search (a drop then a lucky recovery does not
    count). Uses ``prune.sensitivity``.
    """
    table = sensitivity(model, data, SENSITIVITY_GRID, "magnitude", layers=weight_names(model), seed=seed)
    tolerated = {}
    for name in table.layers:
        within = np.asarray(table.accuracy[name]) >= table.baseline - budget     # nan counts as a failure
        stop = int(np.argmin(within)) if not within.all() else within.size
        tolerated[name] = SENSITIVITY_GRID[stop - 1] if stop > 0 else 0.0
    return tolerated


def _sensitivity(model: MLP, total: int, data: Any, budget: float, seed: int) -> np.ndarray:
    """Scale the tolerated sparsities ``t_l`` to the target by one power of the densities:
    ``1 - s_l = (1 - t_l)^β``, with ``β`` found by bisection so that ``Σ_l s_l n_l = total``.

    ``β = 1`` is the tolerated allocation itself, ``β < 1`` a sparser target scales every layer back,
    ``β > 1`` pushes every layer further; the log-densities keep their ratios, so a layer that tolerated
    half the pruning of another (in log-density) keeps that share at any target. Chosen over scaling the
    densities by one factor on validation rows that did not choose ``t_l`` (mnist-5k, 3 seeds, 2 epochs
    of fine-tuning): +3.0 and +8.3 points at 90 and 95 %, -5.0 at 98 % (both near 35 % there).
    """
    tolerated = tolerated_sparsity(model, data, budget, seed)
    sizes = np.array([layer.W.data.size for layer in model.layers], dtype=np.float64)
    density = 1 - np.array([tolerated[name] for name in weight_names(model)])

    def pruned(beta: float) -> float:
        return float(np.sum(sizes * (1 - density**beta)))

    low, high = 0.0, 1.0
    while pruned(high) < total and high < 1e6:        # a layer that tolerates nothing (density 1) stays
        high *= 2                                       # dense: round_counts then places the remainder
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if pruned(middle) < total else (low, middle)
    return sizes * (1 - density**high)


# ------------------------------------------------------------------ the verb
def allocate(model: MLP, sparsity: float, method: str = "uniform", data: Any = None, *, budget: float = 0.01,
             seed: int = 0) -> dict[str, float]:
    """A per-layer sparsity mapping ``{"layers.l.W": s_l}`` that meets the overall ``sparsity`` exactly.

    ``Σ_l round(s_l · n_l) = round(sparsity · N)`` over all weight matrices, and every layer keeps at
    least one weight (so ``sparsity`` may be at most ``1 - L/N`` for L layers). ``method``: one of
    ``METHODS`` (see the module). ``data`` (validation rows, ``(X, y)`` or a Dataset) and ``budget``
    (the accuracy drop each layer may cause alone, e.g. 0.01 = one point) are used by ``"sensitivity"``
    only, which needs them; ``seed`` goes to its probe (``prune.sensitivity``; magnitude draws nothing).
    The model is not changed. The mapping gives *total* sparsities: on a model pruned already, a layer
    beyond its share stays as it is (masks only lose entries), so ``allocate`` is meant for a dense model.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([20, 8, 4], seed=0)
    >>> allocate(model, 0.5)                          # 80 of 160 and 16 of 32: 96 of 192
    {'layers.0.W': 0.5, 'layers.1.W': 0.5}
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown allocation method {method!r}; expected one of {METHODS}")
    sparsity = check_sparsity(sparsity)
    check_fraction("budget", budget, include_one=True, meaning="an accuracy drop: 0.01 = one point")
    names = weight_names(model)
    sizes = np.array([layer.W.data.size for layer in model.layers], dtype=np.int64)
    total = round(sparsity * int(sizes.sum()))
    if total > int(sizes.sum()) - len(sizes):
        most = int(sizes.sum()) - len(sizes)
        raise ValueError(f"sparsity {sparsity} would prune {total} of {int(sizes.sum())} weights, but each "
                         f"of the {len(sizes)} layers keeps at least one: at most {most}")
    if method == "sensitivity":
        X, y = resolve_data(data)
        if X is None or y is None:
            raise ValueError("allocate(..., method='sensitivity') needs validation rows: data=(X, y) or a "
                             "Dataset (held out of the training rows; never the test split)")
        ideal = _sensitivity(model, total, (X, y), float(budget), seed)
    elif method == "erk":
        ideal = _erk(model, int(sizes.sum()) - total)
    elif method == "lamp":
        ideal = _lamp(model, total)
    else:
        ideal = sparsity * sizes
    counts = round_counts(ideal, total, sizes - 1)
    return {name: int(k) / int(n) for name, k, n in zip(names, counts, sizes)}


__all__ = ["METHODS", "SENSITIVITY_GRID", "allocate", "implied_sparsity", "round_counts",
           "tolerated_sparsity", "weight_names"]
