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
``H⁻¹ <- H⁻¹ - H⁻¹ e_q e_q^T H⁻¹ / [H⁻¹]_qq``. Two algorithms, same counts, same update:

- ``obs_reference`` (the textbook's, derived and checked in
  ``notebooks/08_residual_and_reconstruction.ipynb``): greedily for every output unit (a column of ``W``),
  each on its own copy of ``H⁻¹``, one ``obs_prune_one`` step per removed weight (the course's exercise
  of that name), or blocks of removals while many candidates remain (Frantar & Alistarh's OBC, 2022);
  about h · d³ multiply-adds per layer.
- ``obs_prune`` (what the verb runs): one Cholesky factor of ``H⁻¹`` per layer shared by all units
  (SparseGPT's sweep, Frantar & Alistarh 2023) narrows each unit to a few candidates, then the textbook's
  greedy OBS chooses among them per unit; about ``n d² + d³ + h d² + h · pool³``.
  ``tests/test_prune_obs_shared.py`` states what is equal and what may differ.

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

from tinyprune.core.nn import MLP, Parameter, activate
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
def obs_prune_one(w: np.ndarray, H_inv: np.ndarray,
                  prunable: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """One step of Optimal Brain Surgeon on one unit: remove the prunable weight that costs least, move
    the others to make up for it, and take it out of the inverse Hessian. Exercise ``obs_prune_one``;
    derived in ``notebooks/08_residual_and_reconstruction.ipynb``.

    For ``E(w') = ½ (w' - w)ᵀ H (w' - w)``, removing ``w_q`` costs at least ``L_q = w_q² / (2 [H⁻¹]_qq)``:

        q = argmin_{q prunable} L_q                       (the first of equal costs)
        w <- w - (w_q / [H⁻¹]_qq) H⁻¹ e_q                 (so w_q becomes 0; it then leaves w)
        H⁻¹ <- H⁻¹ - H⁻¹ e_q e_qᵀ H⁻¹ / [H⁻¹]_qq          (row and column q then leave H⁻¹)

    The new ``H⁻¹`` is the inverse of ``H`` without row and column q, so the next step reads its costs
    from it. ``prunable`` marks the weights the step may remove (not the bias, which it may move).
    Shapes: w (p,), H_inv (p, p) symmetric positive definite, prunable bool (p,)
    -> (w without q (p-1,), H_inv without q (p-1, p-1), q).

    >>> H_inv = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> w, H_inv, q = obs_prune_one(np.array([1.0, 3.0]), H_inv, np.array([True, True]))
    >>> q, w, H_inv        # w_0 costs 1²/(2·2) < 3²/(2·2); w_1 moves by -(1/2)·1; 1/[H_11] = 1.5
    (0, array([2.5]), array([[1.5]]))
    """
    diagonal = np.diag(H_inv)
    q = int(np.argmin(np.where(prunable, w**2 / np.maximum(diagonal, 1e-300), np.inf)))   # OBS saliency
    column = H_inv[:, q]
    w = w - (w[q] / column[q]) * column                                 # δw = -(w_q / [H⁻¹]_qq) H⁻¹ e_q
    H_inv = H_inv - np.outer(column, column * (1.0 / column[q]))   # drop q from H⁻¹ (one division, then
    # products, as OpenBLAS's solve for several right-hand sides does in _obs_prune_block: bit for bit)
    rest = np.delete(np.arange(w.size), q)
    return w[rest], H_inv[np.ix_(rest, rest)], q


def _obs_prune_block(w: np.ndarray, H_inv: np.ndarray, prunable: np.ndarray,
                     m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``obs_prune_one`` for a block Q of the ``m`` smallest saliencies at once (OBC's blocks): the others
    move by ``δw = -H⁻¹_{:,Q} [H⁻¹_QQ]⁻¹ w_Q`` and Q leaves the inverse,
    ``H⁻¹ <- H⁻¹ - H⁻¹_{:,Q} [H⁻¹_QQ]⁻¹ H⁻¹_{Q,:}``. Shapes: w (p,), H_inv (p, p), prunable (p,)
    -> (w (p-m,), H_inv (p-m, p-m), the positions kept (p-m,))."""
    scores = np.where(prunable, w**2 / np.maximum(np.diag(H_inv), 1e-300), np.inf)   # OBS saliency
    Q = np.argpartition(scores, m - 1)[:m]
    rest = np.setdiff1d(np.arange(w.size), Q, assume_unique=True)
    H_QQ = H_inv[np.ix_(Q, Q)]
    H_rQ = H_inv[np.ix_(rest, Q)]
    w = w[rest] - H_rQ @ np.linalg.solve(H_QQ, w[Q])                   # δw = -H⁻¹ e_Q [H⁻¹_QQ]⁻¹ w_Q
    H_inv = H_inv[np.ix_(rest, rest)] - H_rQ @ np.linalg.solve(H_QQ, H_rQ.T)   # drop Q from H⁻¹
    return w, H_inv, rest


def _obs_unit(w: np.ndarray, H_inv: np.ndarray, prunable: np.ndarray, remove: int,
              block_size: int | None) -> np.ndarray:
    """Greedy OBS on one unit's surviving coordinates: remove ``remove`` of the ``prunable`` weights.

    ``H_inv`` is ``inv(H_SS)`` over the surviving coordinates S (``w`` lists their values). Each step
    removes one weight (``obs_prune_one``) or, while the block is larger, a block of the smallest
    saliencies at once (``_obs_prune_block``): ``block_size == 1`` is the exact greedy OBS; ``None``
    removes 1/8 of the remaining candidates at a time (at least 1, so the last steps are single). The
    inverse shrinks with every step, so later steps get cheaper.
    Shapes: w (p,), H_inv (p, p), prunable (p,) bool -> new w (p,) with exact zeros where removed.
    """
    keep = np.arange(w.size)                 # positions (in w) still alive
    w_S = w.astype(np.float64).copy()
    candidate = prunable.copy()
    removed = 0
    while removed < remove:
        m = block_size or max(1, int(np.count_nonzero(candidate)) // 8)
        m = min(m, remove - removed)
        if m == 1:
            w_S, H_inv, q = obs_prune_one(w_S, H_inv, candidate)
            rest = np.delete(np.arange(keep.size), q)
        else:
            w_S, H_inv, rest = _obs_prune_block(w_S, H_inv, candidate, m)
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


def _obs_layer_reference(layer: Any, A: np.ndarray, sparsity: float, damping: float,
                         block_size: int | None) -> np.ndarray:
    """The textbook's OBS on one layer, in place: every unit on its own copy of ``H⁻¹`` (``_obs_unit``),
    keeping ``d - round(s · d)`` weights; returns the new mask. O(h · d³) multiply-adds."""
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


# ------------------------------------------------------ OBS with one factorization per layer
SWEEP_COLUMNS = 128      # columns per lazy block of the shared sweep (a speed knob; see _sweep)


def _lower_triangular_inverse(L: np.ndarray) -> np.ndarray:
    """``L⁻¹`` of a lower-triangular ``L`` by halves, in matrix products (about d³/3 multiply-adds):
    ``[[A, 0], [C, D]]⁻¹ = [[A⁻¹, 0], [-D⁻¹ C A⁻¹, D⁻¹]]``."""
    d = L.shape[0]
    if d <= 64:
        return np.linalg.inv(L)
    k = d // 2
    A_inv, D_inv = _lower_triangular_inverse(L[:k, :k]), _lower_triangular_inverse(L[k:, k:])
    inverse = np.zeros_like(L)
    inverse[:k, :k], inverse[k:, k:] = A_inv, D_inv
    inverse[k:, :k] = -D_inv @ (L[k:, :k] @ A_inv)
    return inverse


def _cholesky(H: np.ndarray) -> np.ndarray:
    """Lower-triangular ``L`` with ``H = L L^T``, or a ValueError that says what to change."""
    try:
        return np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        raise ValueError("OBS needs a positive definite H = Ã^T Ã / n + λ I: the calibration inputs are "
                         "linearly dependent and damping is 0; use damping > 0 (e.g. 1e-4)") from None


def _inverse_factor(H: np.ndarray) -> np.ndarray:
    """The upper-triangular Cholesky factor ``U`` of ``H⁻¹`` (``H⁻¹ = U^T U``), from one Cholesky of ``H``.

    With ``J`` the order reversal and ``J H J = L L^T``: ``H⁻¹ = J L⁻ᵀ L⁻¹ J = U^T U`` for
    ``U = J L⁻¹ J``, upper-triangular with a positive diagonal. Why ``U``: for the trailing coordinates
    ``F = {i, …, d}``, ``(H_FF)⁻¹ = U_FF^T U_FF`` (the Schur complement), so ``[(H_FF)⁻¹]_ii = U_ii²`` and
    the row ``i`` of ``(H_FF)⁻¹`` is ``U_ii U_{i,F}``: every unit reads its OBS step from the same ``U``.
    Shapes: H (p, p) symmetric positive definite -> U (p, p).
    """
    return np.ascontiguousarray(_lower_triangular_inverse(_cholesky(H[::-1, ::-1]))[::-1, ::-1])


def _smallest(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per row, the ``counts[row]`` smallest scores (ties broken the same way every time).

    Shapes: scores (h, c), counts (h,) -> bool (h, c)."""
    chosen = np.zeros(scores.shape, dtype=bool)
    k = int(counts[0]) if counts.size else 0
    if np.all(counts == k) and 0 < k < scores.shape[1]:     # one partition per row, not a sort
        np.put_along_axis(chosen, np.argpartition(scores, k - 1, axis=1)[:, :k], True, axis=1)
        return chosen
    order = np.argsort(scores, axis=1, kind="stable")
    np.put_along_axis(chosen, order, np.arange(scores.shape[1]) < counts[:, None], axis=1)
    return chosen


def _inverse_diagonal(H: np.ndarray) -> np.ndarray:
    """``diag(H⁻¹)`` from one Cholesky factor: ``H = L L^T`` gives ``H⁻¹ = L⁻ᵀ L⁻¹``, whose diagonal holds
    the squared column norms of ``L⁻¹``. Shapes: (p, p) -> (p,)."""
    L_inv = _lower_triangular_inverse(_cholesky(H))
    return np.einsum("ij,ij->j", L_inv, L_inv)


def _sweep_order(theta: np.ndarray, inverse_diagonal: np.ndarray, counts: np.ndarray,
                 removed: np.ndarray) -> np.ndarray:
    """The inputs' order of the shared sweep: those that fewest units would keep by their first OBS
    saliency ``w_q² / [H⁻¹]_qq`` go first, so that most removals are made up for by the inputs after them.

    Shapes: theta (h, d+1), inverse_diagonal (d+1,), counts (h,), removed (h, d) bool -> a permutation
    of range(d).
    """
    d = removed.shape[1]
    saliencies = np.where(removed, -1.0, theta[:, :d] ** 2 / inverse_diagonal[:d])
    keepers = (~_smallest(saliencies, counts)).sum(axis=0)
    return np.lexsort((np.maximum(saliencies, 0.0).sum(axis=0), keepers))


def _sweep(W: np.ndarray, U: np.ndarray, inverse_diagonal: np.ndarray, counts: np.ndarray,
           removed: np.ndarray) -> np.ndarray:
    """SparseGPT's sweep (Frantar & Alistarh 2023) with per-unit counts: every unit (a row of ``W``, in the
    factor's order, bias last) drops to ``counts`` removed inputs, in place; returns the removed (h, d).

    Column i is decided for every unit at once, in the frame ``F = {i, …, d}`` of the columns not yet
    decided: a removed weight moves the rest of its row by OBS's ``δw_F = -(w_i / U_ii) U_{i,F}``, a kept
    one stays as it is. Columns go in blocks of ``SWEEP_COLUMNS``; the columns after a block get its
    updates in one product (lazily). Which weights of a block go: the block holds as many of a unit's
    removals as its ``counts`` smallest full-inverse saliencies ``w_q² / [H⁻¹]_qq`` put there, chosen
    within the block by the current saliency ``w_q² / U_qq²``; already removed weights go first.
    Shapes: W (h, d+1), U (d+1, d+1), inverse_diagonal = diag(H⁻¹) (d+1,), counts (h,),
    removed (h, d) bool.
    """
    h, d = removed.shape
    planned = _smallest(np.where(removed, -1.0, W[:, :d] ** 2 / inverse_diagonal[:d]), counts)
    chosen = np.zeros((h, d), dtype=bool)
    columns = np.ascontiguousarray(W.T)              # (d+1, h): an input per row, so updates stream
    for start in range(0, d, SWEEP_COLUMNS):
        end = min(start + SWEEP_COLUMNS, d)
        block, U_block = columns[start:end], U[start:end, start:end]
        scores = np.where(removed[:, start:end], -1.0, (block**2).T / np.diag(U_block) ** 2)
        drop = _smallest(scores, planned[:, start:end].sum(axis=1)).T       # (B, h)
        errors = np.zeros_like(block)
        for i in range(end - start):
            errors[i] = np.where(drop[i], block[i] / U_block[i, i], 0.0)
            block[i:] -= np.outer(U_block[i, i:], errors[i])                 # δw = -(w_i / U_ii) U_{i,F}
        block[drop] = 0.0
        columns[end:] -= U[start:end, end:].T @ errors                       # the block's updates, at once
        chosen[:, start:end] = drop.T
    W[...] = columns.T
    return chosen


def _shared_sweep(theta: np.ndarray, H: np.ndarray, counts: np.ndarray,
                  removed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_sweep`` in ``_sweep_order``: one factorization of ``H`` for the saliencies that choose the order,
    one of the reordered ``H`` for the sweep, both shared by every unit.

    Shapes: theta (h, d+1), H (d+1, d+1), counts (h,), removed (h, d) -> new W (h, d+1), removed (h, d).
    """
    d = removed.shape[1]
    inverse_diagonal = _inverse_diagonal(H)
    order = np.r_[_sweep_order(theta, inverse_diagonal, counts, removed), d]   # the bias stays last
    W = theta[:, order]
    chosen = _sweep(W, _inverse_factor(H[np.ix_(order, order)]), inverse_diagonal[order], counts,
                    removed[:, order[:-1]])
    new_W, new_removed = np.empty_like(W), np.empty_like(chosen)
    new_W[:, order], new_removed[:, order[:-1]] = W, chosen
    return new_W, new_removed


def _spd_inverse(H: np.ndarray) -> np.ndarray:
    """Inverses of a stack of symmetric positive definite matrices by halves, in matrix products (4x
    faster than ``np.linalg.inv`` on small stacks): with ``S = D - B^T A⁻¹ B`` (the Schur complement),
    ``[[A, B], [B^T, D]]⁻¹ = [[A⁻¹ + A⁻¹ B S⁻¹ B^T A⁻¹, -A⁻¹ B S⁻¹], [-S⁻¹ B^T A⁻¹, S⁻¹]]``.
    Shapes: (..., p, p) -> (..., p, p)."""
    p = H.shape[-1]
    if p <= 48:
        return np.linalg.inv(H)
    k = p // 2
    A_inv = _spd_inverse(H[..., :k, :k])
    A_inv_B = A_inv @ H[..., :k, k:]
    S_inv = _spd_inverse(H[..., k:, k:] - H[..., k:, :k] @ A_inv_B)
    upper_right = -A_inv_B @ S_inv
    inverse = np.empty_like(H)
    inverse[..., :k, :k] = A_inv - upper_right @ A_inv_B.swapaxes(-1, -2)
    inverse[..., :k, k:] = upper_right
    inverse[..., k:, :k] = upper_right.swapaxes(-1, -2)
    inverse[..., k:, k:] = S_inv
    return inverse


def _obs_units(w: np.ndarray, H_inv: np.ndarray, prunable: np.ndarray, remove: int,
               block_size: int | None) -> np.ndarray:
    """``_obs_unit`` for g units at once, each with its own ``H⁻¹`` (same sizes, same ``remove``): the
    same greedy steps, as batched products. Shapes: w (g, p), H_inv (g, p, p), prunable (g, p) -> (g, p)."""
    g = w.shape[0]
    units = np.arange(g)[:, None]
    keep = np.broadcast_to(np.arange(w.shape[1]), w.shape)
    candidate, removed = prunable.copy(), 0
    while removed < remove:
        m = min(block_size or max(1, int(np.count_nonzero(candidate[0])) // 8), remove - removed)
        diagonal = np.maximum(np.diagonal(H_inv, axis1=1, axis2=2), 1e-300)
        Q = np.argpartition(np.where(candidate, w**2 / diagonal, np.inf), m - 1, axis=1)[:, :m]
        staying = np.ones(w.shape, dtype=bool)
        staying[units, Q] = False
        rest = np.nonzero(staying)[1].reshape(g, -1)
        H_QQ = H_inv[units[:, :, None], Q[:, :, None], Q[:, None, :]]
        H_rQ = H_inv[units[:, :, None], rest[:, :, None], Q[:, None, :]]
        w_Q = np.take_along_axis(w, Q, axis=1)[..., None]
        w = np.take_along_axis(w, rest, axis=1) - (H_rQ @ np.linalg.solve(H_QQ, w_Q))[..., 0]
        H_inv = (H_inv[units[:, :, None], rest[:, :, None], rest[:, None, :]]
                 - H_rQ @ np.linalg.solve(H_QQ, H_rQ.transpose(0, 2, 1)))         # drop Q from H⁻¹
        keep, candidate = np.take_along_axis(keep, rest, axis=1), np.take_along_axis(candidate, rest, axis=1)
        removed += m
    new_w = np.zeros((g, prunable.shape[1]))
    new_w[units, keep] = w
    return new_w


def _greedy_finish(theta: np.ndarray, H: np.ndarray, removed: np.ndarray, counts: np.ndarray,
                   block_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, from its original weights: the exact OBS update for the weights ``removed`` so far,
    ``δw_S = (H_SS)⁻¹ H_SQ w_Q`` (the minimiser of ``δ^T H δ`` with ``δ_Q = -w_Q``), then the textbook's
    greedy OBS (``_obs_unit``, batched over units with as many survivors and removals) on the survivors S
    down to ``counts`` removed. One ``(H_SS)⁻¹`` per unit (the layer's own ``H⁻¹`` while S is everything).

    Shapes: theta (h, d+1), H (d+1, d+1), removed (h, d) bool, counts (h,) -> W (h, d+1), removed (h, d).
    """
    h, d = removed.shape
    W, chosen = np.zeros_like(theta), removed.copy()
    pulled = (theta[:, :d] * removed) @ H[:d]                     # row j: H_{:,Q} w_Q, Q = unit j's removed
    alive = d - removed.sum(axis=1)
    for survivors, count in np.unique(np.c_[alive, counts], axis=0):
        group = np.flatnonzero((alive == survivors) & (counts == count))
        p = survivors + 1
        for units in np.array_split(group, -(-group.size * p * p // 2**23)):
            S = np.c_[np.nonzero(~removed[units])[1].reshape(units.size, survivors), np.full(units.size, d)]
            if p == d + 1:
                H_inv = np.broadcast_to(np.linalg.inv(H), (units.size, p, p))
            else:
                H_inv = _spd_inverse(H[S[:, :, None], S[:, None, :]])
            w = np.take_along_axis(theta[units], S, axis=1)
            w = w + (H_inv @ np.take_along_axis(pulled[units], S, axis=1)[..., None])[..., 0]
            if count > d - survivors:
                w = _obs_units(w, H_inv, S < d, int(count - (d - survivors)), block_size)
                chosen[units] = True
                nonzero = w[:, :-1] != 0.0                     # as the reference reads _obs_unit's zeros
                chosen[units[:, None].repeat(survivors, 1)[nonzero], S[:, :-1][nonzero]] = False
            W[units[:, None], S] = w
    return W, chosen


def _pool_size(d: int, kept: int, candidates: float, max_candidates: int) -> int:
    """How many inputs per unit the greedy finish chooses among: ``candidates`` times the survivors,
    at most ``max_candidates`` (its cost grows as h · pool³) and at most d."""
    return min(d, math.ceil(candidates * kept), max_candidates)


def _obs_layer(layer: Any, A: np.ndarray, sparsity: float, damping: float, block_size: int | None,
               candidates: float, max_candidates: int) -> np.ndarray:
    """OBS on one layer in place at the cost of one factorization: every unit keeps ``d - round(s · d)``
    weights; returns the new mask. See ``obs_prune`` for the two stages."""
    d, h = layer.W.shape
    removed = ~_mask_of(layer.W).T                                        # (h, d): a unit per row
    kept = d - int(round(float(sparsity) * d))
    counts = np.maximum(d - kept, removed.sum(axis=1))
    theta = np.hstack([layer.W.data.T, layer.b.data[:, None]]).astype(np.float64)
    H = _layer_hessian(A, damping)
    pool = _pool_size(d, kept, candidates, max_candidates)
    first = counts if pool <= kept else np.maximum(d - pool, removed.sum(axis=1))
    W = theta
    if np.any(first > removed.sum(axis=1)):                               # the shared sweep
        W, removed = _shared_sweep(theta, H, first, removed)
    if pool > kept:                                                       # the per-unit greedy finish
        W, removed = _greedy_finish(theta, H, removed, counts, block_size)
    mask = ~removed.T
    layer.W.data[...] = W[:, :d].T * mask
    layer.b.data[...] = np.where(_mask_of(layer.b), W[:, d], 0.0)
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
        A = activate(Z, model.activation) if index < last else Z
    return scores


def _prune_layers(model: MLP, X: Any, sparsity: float | dict[int, float], layers: Any,
                  max_samples: int | None, seed: int, prune_layer: Any) -> dict[str, np.ndarray]:
    """Layers in order, each pruned by ``prune_layer(layer, A, s)`` on A = the pruned model's input to it."""
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
            masks[f"layers.{index}.W"] = prune_layer(layer, A, per_layer[index])
        Z = A @ layer.W.data.astype(np.float64) + layer.b.data
        A = activate(Z, model.activation) if index < last else Z
    return masks


def obs_prune(model: MLP, X: Any, sparsity: float | dict[int, float], *, damping: float = 0.01,
              block_size: int | None = None, layers: Any = None, max_samples: int | None = None,
              seed: int = 0, candidates: float = 3.0, max_candidates: int = 128) -> dict[str, np.ndarray]:
    """Prune each layer's weights to ``sparsity`` by Optimal Brain Surgeon, and update the rest; per layer,
    one factorization of ``H`` serves every unit.

    Layers in order; for layer l, A = the (already pruned) model's input to layer l and
    ``H = Ã^T Ã / n + λ I`` (see the module). Every output unit j (a column of ``W``, with its bias as a
    weight that is never removed) keeps exactly ``r = d - round(s · d)`` weights (those already masked count
    as removed), as in ``obs_reference``, in two stages:

    1. the shared sweep (``_sweep``, SparseGPT's): one Cholesky factor of ``H⁻¹`` for all units, the
       inputs in one order; each unit drops to its ``pool = min(d, ⌈candidates · r⌉, max_candidates)``
       best candidates, each removal moving the weights of the inputs after it by OBS's update;
    2. the greedy finish (``_greedy_finish``): per unit, the exact OBS update for what stage 1 removed,
       then the textbook's greedy OBS among the ``pool`` candidates, ranked by ``w_q² / [(H_SS)⁻¹]_qq``
       after every block of removals (``block_size`` as in ``obs_reference``).

    Stage 1 is skipped when the pool is every input (then this *is* ``obs_reference``), stage 2 when the
    survivors alone exceed ``max_candidates`` (its cost grows as h · pool³; the sweep then decides alone).
    Why the masks can differ from the reference's: stage 1 decides input q for every unit at once in the
    shared order, so a weight it keeps cannot move later to make up for removals after it, and the
    reference's per-unit ranking sees that move. After stage 2 the weights are the exact OBS update of the
    final mask (as the reference's are of its own); after stage 1 alone, that of the sweep's frame.
    Cost per layer: the Gram matrix (n d²), one factorization (d³), the sweep (h d²) and h · pool³,
    against the reference's h · d³. ``sparsity`` is one number for every layer or
    ``{layer index: sparsity}``. Masks are written on the ``Parameter``s (weights only; the bias is
    updated) and returned as ``{name: mask}``. ``max_samples`` keeps that many rows drawn at random
    with ``seed``. Derived in ``notebooks/08_residual_and_reconstruction.ipynb`` (the reference).

    Shapes: X (n, d_0) -> {"layers.l.W": bool (d_l, d_{l+1})}.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([6, 4, 3], seed=0)
    >>> masks = obs_prune(model, np.random.default_rng(1).random((50, 6)), {0: 0.5})
    >>> sorted(masks), int((~masks["layers.0.W"]).sum())          # 3 of 6 inputs of each of 4 units
    (['layers.0.W'], 12)
    """
    if not (math.isfinite(candidates) and candidates >= 1):
        raise ValueError(f"candidates must be a number >= 1 (times the survivors), got {candidates}")
    if int(max_candidates) < 1:
        raise ValueError(f"max_candidates must be a positive number of inputs, got {max_candidates}")

    def prune_layer(layer: Any, A: np.ndarray, s: float) -> np.ndarray:
        return _obs_layer(layer, A, s, damping, block_size, candidates, int(max_candidates))

    return _prune_layers(model, X, sparsity, layers, max_samples, seed, prune_layer)


def obs_reference(model: MLP, X: Any, sparsity: float | dict[int, float], *, damping: float = 0.01,
                  block_size: int | None = None, layers: Any = None,
                  max_samples: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """The textbook's OBS, unit by unit (``_obs_unit`` on each unit's own copy of ``H⁻¹``): what notebook 08
    derives, and what ``obs_prune`` is tested against. Same arguments, counts and result format.

    Every output unit keeps ``d - round(s · d)`` weights, chosen greedily by ``w_q² / [H⁻¹]_qq`` with the
    OBS update after each block of removals (``block_size=1``: exact greedy OBS as in OBC; ``None``:
    blocks of 1/8 of the remaining candidates, about 20 solves per unit). Cost: about 0.4 d³ multiply-adds
    per unit (h · d³ per layer): 60-180x the Gram matrix and one factorization at width 512
    (``benchmarks/bench_obs.py``).

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([8, 6, 3], seed=0)
    >>> masks = obs_reference(model, np.random.default_rng(0).random((100, 8)), 0.5)
    >>> [int((~m).sum()) for m in masks.values()]                  # 4 of 8 and 3 of 6 per unit
    [24, 9]
    """
    def prune_layer(layer: Any, A: np.ndarray, s: float) -> np.ndarray:
        return _obs_layer_reference(layer, A, s, damping, block_size)

    return _prune_layers(model, X, sparsity, layers, max_samples, seed, prune_layer)


__all__ = ["obs_prune", "obs_prune_one", "obs_reference", "saliency"]
