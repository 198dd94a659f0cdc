"""Group importance of hidden neurons: the weights into a unit and out of it, scored together.

Removing hidden unit j of layer l removes a *group* of parameters that are coupled: column j of ``W_l``
(its incoming weights), entry j of ``b_l`` and row j of ``W_{l+1}`` (its outgoing weights). Torch-Pruning
(Fang et al. 2023, "DepGraph: Towards Any Structural Pruning") scores the unit on the whole group, in
three steps; this module is those steps for an MLP (``GroupMagnitudeImportance``, ``parts.NeuronGroup``):

1. each member's slice gives ``m_j = Σ |w|^p`` over the unit's weights in that member (the p-th power
   summed, no root: for p = 2 the energy ``Σ w²``, not the norm ``‖w‖``), in Torch-Pruning's order:
   ``in_j = Σ_i |W_l[i, j]|^p``, then (with ``bias``) ``|b_l[j]|^p``, then ``out_j = Σ_k |W_{l+1}[j, k]|^p``;
2. a *reduction* over the members: ``mean`` (their sum over their count), ``sum``, ``max``, ``prod``,
   or ``first`` (the incoming weights alone);
3. a *normaliser* over the layer's living units, so that one global threshold compares layers:
   ``mean`` (``s / mean s``, the default), ``max`` (``s / max s``), ``sum`` (``s / Σ s``),
   ``standarization`` (``(s - min) / (max - min + 1e-8)``, a min-max rescale despite the name),
   ``gaussian`` (``(s - mean) / (std + 1e-8)``, std with n - 1), ``lamp`` (``s_u / Σ_{v >= u} s_v`` in
   ascending order) or ``None`` (raw). Removed units take no part and score 0.

Shapes: ``{"layers.l": (d_{l+1},)}`` for every hidden layer l. The single-member norms it generalises
(``criteria.neuron_norm``) are derived in ``notebooks/09_structured_pruning_and_speed.ipynb``; with
torch-pruning installed, ``tests/test_prune_group.py`` checks these scores against Torch-Pruning's own.

>>> from tinyprune.core.nn import MLP
>>> model = MLP([2, 2, 1], seed=0)
>>> model.layers[0].W.data[...] = [[3.0, 0.0], [4.0, 1.0]]      # into the units: 9 + 16 = 25, 0 + 1 = 1
>>> model.layers[1].W.data[...] = [[1.0], [3.0]]                # out of them: 1, 9
>>> group_importance(model, p=2, reduction="mean", normalizer=None)["layers.0"]   # (25+1)/2, (1+9)/2
array([13.,  5.])
>>> group_importance(model, p=2, reduction="max", normalizer="max")["layers.0"]   # (25, 9) / 25
array([1.  , 0.36])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyprune.checks import check_choice, check_number
from tinyprune.core.nn import MLP
from tinyprune.prune.criteria import lamp_normalise

REDUCTIONS = ("mean", "sum", "max", "prod", "first")
NORMALIZERS = ("mean", "max", "sum", "standarization", "gaussian", "lamp")
_EPSILON = 1e-8          # Torch-Pruning's guard in the min-max and gaussian normalisers


def member_scores(model: MLP, layer: int, p: float = 2, bias: bool = False) -> list[np.ndarray]:
    """``Σ |w|^p`` of each member of hidden layer ``layer``'s groups, one (h,) array per member, in order:
    incoming weights, the bias (only with ``bias``), outgoing weights. float64."""
    W_in = np.abs(model.layers[layer].W.data.astype(np.float64))
    W_out = np.abs(model.layers[layer + 1].W.data.astype(np.float64))
    members = [np.sum(W_in ** p, axis=0)]
    if bias:
        members.append(np.abs(model.layers[layer].b.data.astype(np.float64)) ** p)
    members.append(np.sum(W_out ** p, axis=1))
    return members


def reduce_members(members: list[np.ndarray], reduction: str = "mean") -> np.ndarray:
    """One score per unit from its members' scores: ``mean``, ``sum``, ``max``, ``prod`` or ``first``.

    >>> reduce_members([np.array([1.0, 4.0]), np.array([3.0, 2.0])], "prod")
    array([3., 8.])
    """
    check_choice("reduction", reduction, REDUCTIONS)
    stacked = np.stack(members)
    if reduction == "first":
        return stacked[0].copy()
    return {"mean": np.mean, "sum": np.sum, "max": np.max, "prod": np.prod}[reduction](stacked, axis=0)


def normalise_group(score: np.ndarray, normalizer: str | None, alive: np.ndarray | None = None) -> np.ndarray:
    """``score`` rescaled by ``normalizer`` over the living units (``alive``; all when ``None``); the
    removed units score 0. A scale of 0 (all living scores 0) leaves the scores as they are.

    >>> normalise_group(np.array([1.0, 2.0, 3.0]), "gaussian").round(4)       # std 1 (with n - 1)
    array([-1.,  0.,  1.])
    """
    if normalizer is not None:
        check_choice("normalizer", normalizer, NORMALIZERS)
    living = np.ones(score.shape, bool) if alive is None else np.asarray(alive, bool)
    result = np.zeros_like(score, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)[living]
    if s.size == 0:
        return result
    if normalizer in ("mean", "max", "sum"):
        scale = {"mean": np.mean, "max": np.max, "sum": np.sum}[normalizer](s)
        s = s / scale if scale != 0 else s
    elif normalizer == "standarization":
        s = (s - s.min()) / (s.max() - s.min() + _EPSILON)
    elif normalizer == "gaussian":
        spread = np.std(s, ddof=1) if s.size > 1 else 0.0
        s = (s - s.mean()) / (spread + _EPSILON)
    elif normalizer == "lamp":
        s = lamp_normalise(s)
    result[living] = s
    return result


def _alive(model: MLP, layer: int) -> np.ndarray:
    """The units of hidden layer ``layer`` still there: a removed unit has its incoming column and its
    bias fully masked (as ``prune.core.hidden_alive`` reads it)."""
    W, b = model.layers[layer].W, model.layers[layer].b
    if W.mask is None or b.mask is None:
        return np.ones(b.shape, bool)
    return W.mask.any(axis=0) | b.mask


def group_importance(model: MLP, p: float = 2, reduction: str = "mean", normalizer: str | None = "mean",
                     bias: bool = False) -> dict[str, np.ndarray]:
    """``{"layers.l": (h_l,)}``: every hidden unit's group score, reduced over its members and normalised
    over its layer's living units (the module's three steps; Torch-Pruning's defaults: p = 2, ``mean``,
    ``mean``, no bias)."""
    check_number("p", p, 0, None, low_open=True)
    check_choice("reduction", reduction, REDUCTIONS)
    if normalizer is not None:
        check_choice("normalizer", normalizer, NORMALIZERS)
    if not isinstance(model, MLP):
        raise TypeError(f"group_importance scores an MLP, got {type(model).__name__}")
    scores: dict[str, Any] = {}
    for layer in range(len(model.layers) - 1):
        reduced = reduce_members(member_scores(model, layer, p, bias), reduction)
        scores[f"layers.{layer}"] = normalise_group(reduced, normalizer, _alive(model, layer))
    return scores


__all__ = ["NORMALIZERS", "REDUCTIONS", "group_importance", "member_scores", "normalise_group",
           "reduce_members"]
