"""Optimal Brain Surgeon (Hassibi & Stork 1993), layer by layer: remove the weights whose loss is smallest
*and* move the survivors to make up for them.

For layer l, with calibration inputs ``A`` (the pruned network's input to layer l, shape (n, d)) and
``Ã = [A, 1]``, a unit's output ``Ã [w; b]`` changes by ``Ã δ`` when its weights move by ``δ``. The
objective ``E(δ) = 1/n ||Ã δ||² + λ ||δ||²`` has the Hessian ``2 H`` with

    H = G + λ I,   G = Ã^T Ã / n,   λ = damping · mean(diag(A^T A / n))

(the same ``G`` as ``criteria.hessian_diagonal(..., "layerwise")``, whose diagonal is ``2 G_jj``; here
``λ`` is added to every diagonal entry, the bias's too). Removing weight q costs at least
``w_q² / [H⁻¹]_qq`` (up to the common factor that the 2 cancels) and the best move of the others is
``δw = -w_q / [H⁻¹]_qq · H⁻¹ e_q``; then q leaves the inverse,
``H⁻¹ <- H⁻¹ - H⁻¹ e_q e_q^T H⁻¹ / [H⁻¹]_qq``. ``obs_prune`` does this greedily for every output unit
(a column of ``W``), in blocks of removals (Frantar & Alistarh's OBC, 2022). Derived and checked in
``notebooks/08_residual_and_reconstruction.ipynb``.

Through the verb: ``prune.prune(model, 0.9, "obs", scope="global", data=X, damping=0.01)``. OBS counts
per unit: every column of ``W_l`` keeps ``d - round(s_l · d)`` weights, so a layer loses
``h · round(s_l · d)`` weights (not always ``round(s_l · d · h)``). With ``scope="global"`` the ``s_l``
are the per-layer sparsities that one global magnitude threshold gives.

>>> from tinyprune.core.nn import MLP
>>> model = MLP([8, 6, 3], seed=0)
>>> masks = obs_prune(model, np.random.default_rng(0).random((100, 8)), 0.5)
>>> [int((~m).sum()) for m in masks.values()]                  # 4 of 8 and 3 of 6 per unit
[24, 9]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyprune.core.nn import MLP, Parameter
from tinyprune.core.random import rng
from tinyprune.errors import ShapeError
from tinyprune.prune.masks import apply_mask


# ----------------------------------------------------------------- helpers (shared with recover.reconstruct)
def _features(X: Any) -> np.ndarray:
    X = np.asarray(X.X if hasattr(X, "X") else X[0] if isinstance(X, tuple) else X)
    if X.ndim != 2:
        raise ShapeError(f"calibration inputs must be 2-D (n, d), got shape {X.shape}")
    return X


def _subsample(X: np.ndarray, max_samples: int | None, seed: int) -> np.ndarray:
    """At most ``max_samples`` rows, drawn at random (seeded) in their original order.

    Not the first rows: a dataset stored sorted by class (as ``mnist-5k`` is) would calibrate on a
    few classes only.
    """
    if max_samples is None or max_samples >= X.shape[0]:
        return X
    if max_samples < 1:
        raise ValueError(f"max_samples must be a positive number of rows, got {max_samples}")
    return X[np.sort(rng(seed).choice(X.shape[0], size=max_samples, replace=False))]


def _mask_of(parameter: Parameter) -> np.ndarray:
    return np.ones(parameter.shape, dtype=bool) if parameter.mask is None else parameter.mask


def _layers(model: MLP, layers: Any) -> list[int]:
    chosen = list(range(len(model.layers))) if layers is None else [int(i) for i in layers]
    bad = [i for i in chosen if not 0 <= i < len(model.layers)]
    if bad:
        raise ValueError(f"layer indices {bad} out of range 0..{len(model.layers) - 1}")
    return sorted(chosen)


def _damping_value(A: np.ndarray, damping: float) -> float:
    """``λ = damping · mean(diag(A^T A / n))``: the ridge term, relative to the inputs' mean energy."""
    if not (math.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be a finite number >= 0, got {damping}")
    energy = float(np.mean(np.einsum("ij,ij->j", A, A)) / A.shape[0])
    return damping * (energy if energy > 0 else 1.0)


# ------------------------------------------------------------------- OBS pruning
def _obs_unit(w: np.ndarray, H_inv: np.ndarray, prunable: np.ndarray, remove: int,
              block_size: int | None) -> np.ndarray:
    """Greedy OBS on one unit's surviving coordinates: remove ``remove`` of the ``prunable`` weights.

    ``H_inv`` is ``inv(H_SS)`` over the surviving coordinates S (``w`` lists their values). Each step removes
    the block Q of the smallest saliencies ``w_q² / [H⁻¹]_qq`` (one weight when ``block_size == 1``: the
    exact OBS step; ``None``: 1/8 of the remaining candidates, at least 1), moves the others by
    ``δw = -H⁻¹_{:,Q} [H⁻¹_QQ]⁻¹ w_Q`` and drops Q from the inverse,
    ``H⁻¹ <- H⁻¹ - H⁻¹_{:,Q} [H⁻¹_QQ]⁻¹ H⁻¹_{Q,:}`` restricted to the rest (so later steps get cheaper).
    Shapes: w (p,), H_inv (p, p), prunable (p,) bool -> new w (p,) with exact zeros where removed.
    """
    keep = np.arange(w.size)                 # positions (in w) still alive
    w_S = w.astype(np.float64).copy()
    candidate = prunable.copy()
    removed = 0
    while removed < remove:
        m = block_size or max(1, int(np.count_nonzero(candidate)) // 8)
        m = min(m, remove - removed)
        scores = np.where(candidate, w_S**2 / np.maximum(np.diag(H_inv), 1e-300), np.inf)  # OBS saliency
        Q = np.argpartition(scores, m - 1)[:m]
        rest = np.setdiff1d(np.arange(w_S.size), Q, assume_unique=True)
        H_QQ = H_inv[np.ix_(Q, Q)]
        H_rQ = H_inv[np.ix_(rest, Q)]
        w_S = w_S[rest] - H_rQ @ np.linalg.solve(H_QQ, w_S[Q])               # δw = -H⁻¹ e_Q [H⁻¹_QQ]⁻¹ w_Q
        H_inv = H_inv[np.ix_(rest, rest)] - H_rQ @ np.linalg.solve(H_QQ, H_rQ.T)   # drop Q from H⁻¹
        keep, candidate = keep[rest], candidate[rest]
        removed += m
    new_w = np.zeros(w.size)
    new_w[keep] = w_S
    return new_w


def _layer_hessian(A: np.ndarray, damping: float) -> np.ndarray:
    """``H = Ã^T Ã / n + λ I`` with ``Ã = [A, 1]`` (λ on every diagonal entry).

    Shapes: A (n, d) -> H (d+1, d+1).
    """
    n = A.shape[0]
    A_tilde = np.hstack([A, np.ones((n, 1))])
    H = A_tilde.T @ A_tilde / n
    H[np.diag_indices_from(H)] += _damping_value(A, damping)
    return H


def _obs_layer(layer: Any, A: np.ndarray, sparsity: float, damping: float,
               block_size: int | None) -> np.ndarray:
    """OBS on one layer in place: every unit keeps ``d - round(s · d)`` weights; returns the new mask."""
    d, h = layer.W.shape
    mask = _mask_of(layer.W).copy()
    target_pruned = int(round(float(sparsity) * d))
    H = _layer_hessian(A, damping)
    H_inv_full = np.linalg.inv(H)                     # shared by every unit with no earlier mask
    W = layer.W.data.astype(np.float64)
    b = layer.b.data.astype(np.float64)
    bias_free = _mask_of(layer.b)
    for j in range(h):
        remove = target_pruned - int(np.count_nonzero(~mask[:, j]))
        if remove <= 0:
            continue
        S = np.r_[np.flatnonzero(mask[:, j]), d]          # surviving inputs and the bias
        H_inv = H_inv_full if S.size == d + 1 else np.linalg.inv(H[np.ix_(S, S)])
        prunable = S < d
        w = _obs_unit(np.r_[W[S[:-1], j], b[j]], H_inv, prunable, remove, block_size)
        W[:, j] = 0.0
        W[S[:-1], j] = w[:-1]
        mask[:, j] = False
        mask[S[:-1][w[:-1] != 0.0], j] = True
        if bias_free[j]:
            b[j] = w[-1]
    layer.W.data[...] = W * mask
    layer.b.data[...] = b * bias_free
    apply_mask(layer.W, mask)                          # mask ⊆ the old one: this only records it
    return layer.W.mask


def saliency(model: MLP, X: Any, *, damping: float = 0.01, max_samples: int | None = None,
             seed: int = 0) -> dict[str, np.ndarray]:
    """OBS's saliency of every weight and bias removed alone: ``L_q = w_q² / [H⁻¹]_qq``, the increase of
    the layer's objective ``1/n ||Ã δ||² + λ ||δ||²`` after the best move of the other weights of its unit.

    ``H`` is each layer's ``Ã^T Ã / n + λ I`` on the current model's inputs to that layer (all inputs, so
    an already-pruned weight scores 0); ``obs_prune`` ranks by the same quantity, recomputed after every
    block of removals. Through the verb this is the score of ``criterion="obs"`` (e.g. for
    ``structure="blocks"`` it is not used: OBS selects single weights).
    Shapes: X (n, d_0) -> ``{name: float64 array of the parameter's shape}``.

    >>> from tinyprune.core.nn import MLP
    >>> scores = saliency(MLP([4, 3, 2], seed=0), np.random.default_rng(0).random((20, 4)))
    >>> sorted(scores), scores["layers.0.W"].shape
    (['layers.0.W', 'layers.0.b', 'layers.1.W', 'layers.1.b'], (4, 3))
    """
    A = _subsample(_features(X), max_samples, seed).astype(np.float64)
    scores: dict[str, np.ndarray] = {}
    last = len(model.layers) - 1
    for index, layer in enumerate(model.layers):
        inverse_diagonal = np.diag(np.linalg.inv(_layer_hessian(A, damping)))       # (d+1,)
        W, b = layer.W.data.astype(np.float64), layer.b.data.astype(np.float64)
        scores[f"layers.{index}.W"] = W**2 / inverse_diagonal[:-1, None]
        scores[f"layers.{index}.b"] = b**2 / inverse_diagonal[-1]
        Z = A @ W + b
        A = np.maximum(Z, 0) if index < last else Z
    return scores


def obs_prune(model: MLP, X: Any, sparsity: float | dict[int, float], *, damping: float = 0.01,
              block_size: int | None = None, layers: Any = None,
              max_samples: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Prune each layer's weights to ``sparsity`` by Optimal Brain Surgeon, unit by unit, and update the rest.

    Layers in order; for layer l, A = the (already pruned) model's input to layer l and
    ``H = Ã^T Ã / n + λ I`` (see the module). Every output unit j (a column of ``W``, with its bias as a
    weight that is never removed) keeps ``d - round(s · d)`` weights (those already masked count as
    removed), chosen greedily by ``w_q² / [H⁻¹]_qq`` with the OBS update after each block of removals
    (``block_size=1``: exact greedy OBS as in OBC; ``None``: blocks of 1/8 of the remaining candidates,
    about 20 solves per unit). ``sparsity`` is one number for every layer or ``{layer index: sparsity}``.
    Masks are written on the ``Parameter``s (weights only; the bias is updated) and returned as
    ``{name: mask}``. ``max_samples`` keeps that many rows drawn at random with ``seed``.

    Shapes: X (n, d_0) -> {"layers.l.W": bool (d_l, d_{l+1})}.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([6, 4, 3], seed=0)
    >>> masks = obs_prune(model, np.random.default_rng(1).random((50, 6)), {0: 0.5})
    >>> sorted(masks), int((~masks["layers.0.W"]).sum())          # 3 of 6 inputs of each of 4 units
    (['layers.0.W'], 12)
    """
    X = _subsample(_features(X), max_samples, seed)
    per_layer = sparsity if isinstance(sparsity, dict) else {i: sparsity for i in _layers(model, layers)}
    for index, s in per_layer.items():
        if not 0.0 <= float(s) <= 1.0:
            raise ValueError(f"sparsity of layer {index} must lie in [0, 1], got {s}")
    masks: dict[str, np.ndarray] = {}
    A = X.astype(np.float64)
    last = len(model.layers) - 1
    for index, layer in enumerate(model.layers):
        if index in per_layer:
            masks[f"layers.{index}.W"] = _obs_layer(layer, A, per_layer[index], damping, block_size)
        Z = A @ layer.W.data.astype(np.float64) + layer.b.data
        A = np.maximum(Z, 0) if index < last else Z
    return masks


__all__ = ["obs_prune", "saliency"]
