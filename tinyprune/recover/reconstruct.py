"""Closed-form recovery: refit the surviving weights and biases by least squares, layer by layer.

The document's "parameter adjustment" (its section 2.3) without gradient descent. Layer by layer, with
calibration inputs X (no labels), let ``A`` be the *pruned* network's input to layer l and ``Z`` the *dense*
network's pre-activation of layer l (the target). For every output unit j with surviving inputs S_j,

    min_{w, b}  E(w, b) = 1/n ||A_{S_j} w + b - Z_{:, j}||² + λ ||w||²,

a quadratic in ``[w; b]`` with the Hessian ``2 (G_SS + λ I_w)``, where ``G = Ã^T Ã / n`` and
``Ã = [A, 1]`` (the layer-wise Hessian of ``criteria.hessian_diagonal(..., "layerwise")`` and of
``notebooks/06_why_accuracy_drops.ipynb``, with the bias's column of ones). Setting the gradient to zero:
``(G_SS + λ I_w) [w; b] = c_S`` with ``c = Ã^T Z_{:, j} / n``. The damping is
``λ = damping · mean(diag(A^T A / n))`` (relative, as in Frantar & Alistarh's OBC; default 1e-4); the bias
is not damped. Layers are solved in order, so each layer also corrects the errors of the layers before it.

How this relates to Optimal Brain Surgeon (``prune.obs``, Hassibi & Stork 1993): OBS moves the
survivors to minimise ``||Ã (w' - w)||²`` given the removed weights, i.e. it keeps the layer's outputs on
its *own current* inputs. Least squares fits the *dense* network's outputs instead. The two coincide
exactly only for the first layer (where the pruned and the dense network see the same inputs X, so
``Z = Ã [w; b]``) at ``λ = 0`` (with ``λ > 0`` ridge shrinks ``w`` towards 0, OBS's damping ``w'`` towards
``w``). For later layers ``A`` comes from the pruned network and ``Z`` from the dense one, so least
squares also absorbs the error of the layers before. OBS *pruning* (choosing the mask as well) lives in
``tinyprune.prune.obs``.
Derived in ``notebooks/08_residual_and_reconstruction.ipynb``.

Cost: one forward pass of the dense and the pruned model over X, and per layer one (d+1)² Gram matrix and
one linear solve per distinct mask column: about a second for 784-64-64-10 on 2,000 inputs.

>>> from tinyprune.core.nn import MLP, activate
>>> dense = MLP([6, 4, 3], seed=0, dtype=np.float64)
>>> X = np.random.default_rng(0).random((200, 6)); X[:, 5] = X[:, 4]   # column 5 repeats column 4
>>> import copy; pruned = copy.deepcopy(dense)
>>> W = pruned.layers[0].W; W.mask = np.ones(W.shape, bool); W.mask[5] = False; W.data[5] = 0
>>> report = reconstruct(pruned, dense, X, damping=0.0)
>>> bool(np.allclose(pruned(X), dense(X)))           # the weight on column 5 moved onto column 4
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyprune.core import backprop
from tinyprune.core.nn import MLP, activate
from tinyprune.errors import ShapeError
from tinyprune.prune.obs import _damping_value, _features, _layers, _mask_of, _subsample


# ----------------------------------------------------------------- helpers
def _solve(M: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(M, rhs)
    except np.linalg.LinAlgError:           # singular (damping 0 and redundant inputs): least norm
        return np.linalg.lstsq(M, rhs, rcond=None)[0]


def _relative_error(Z: np.ndarray, target: np.ndarray) -> float:
    return float(np.sum((Z - target) ** 2) / max(np.sum(target**2), 1e-300))


# ------------------------------------------------------------ reconstruction
def reconstruct_layer(A: np.ndarray, Z: np.ndarray, weight_mask: np.ndarray,
                      bias_mask: np.ndarray | None = None, *, damping: float = 1e-4,
                      bias: np.ndarray | None = None, fit_bias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Ridge least squares for every unit's surviving weights and bias: the closed-form recovery of one layer.

    ``(G_SS + λ I_w) [w; b] = c_S`` with ``G = Ã^T Ã / n``, ``Ã = [A, 1]``, ``c = Ã^T Z / n``, one system per
    distinct mask column (units with identical masks share one solve with several right-hand sides).
    A unit whose bias is masked (or ``fit_bias=False``) keeps ``bias`` (0 if masked) and fits ``Z - b``.

    Shapes: A (n, d), Z (n, h), weight_mask (d, h) bool, bias_mask (h,) bool -> W (d, h), b (h,), float64.

    >>> A = np.eye(3); Z = A @ np.array([[1.0], [2.0], [3.0]]) + 0.5
    >>> W, b = reconstruct_layer(A, Z, np.array([[True], [True], [False]]), damping=0.0)
    >>> W.ravel().round(6).tolist(), b.round(6).tolist()   # w_3 gone: b = 3.5 fits row 3, w adjusts
    ([-2.0, -1.0, 0.0], [3.5])
    """
    A = np.asarray(A, dtype=np.float64)
    Z = np.asarray(Z, dtype=np.float64)
    n, d = A.shape
    h = Z.shape[1]
    if Z.shape[0] != n or weight_mask.shape != (d, h):
        raise ShapeError(f"A {A.shape}, Z {Z.shape} and the mask {weight_mask.shape} do not fit (n, d), "
                         f"(n, h), (d, h)")
    bias_mask = np.ones(h, dtype=bool) if bias_mask is None else np.asarray(bias_mask, dtype=bool)
    fixed_bias = np.zeros(h) if bias is None else np.where(bias_mask, np.asarray(bias, np.float64), 0.0)
    free_bias = bias_mask & fit_bias
    A_tilde = np.hstack([A, np.ones((n, 1))])
    G = A_tilde.T @ A_tilde / n                                   # (d+1, d+1)
    C = A_tilde.T @ (Z - np.where(free_bias, 0.0, fixed_bias)) / n   # (d+1, h)
    lam = _damping_value(A, damping)
    W_new = np.zeros((d, h))
    b_new = np.where(free_bias, 0.0, fixed_bias)
    keys = np.vstack([weight_mask, free_bias[None, :]])            # (d+1, h): the columns to group by
    columns, group = np.unique(keys.T, axis=0, return_inverse=True)
    for g, column in enumerate(columns):
        units = np.flatnonzero(group.ravel() == g)
        rows = np.flatnonzero(column)
        if rows.size == 0:
            continue
        M = G[np.ix_(rows, rows)].copy()
        M[np.diag_indices_from(M)] += np.where(rows < d, lam, 0.0)   # damp weights, not the bias
        solution = _solve(M, C[np.ix_(rows, units)])
        weights = rows < d
        W_new[np.ix_(rows[weights], units)] = solution[weights]
        if not weights.all():
            b_new[units] = solution[~weights][0]
    return W_new, b_new


@dataclass
class ReconstructionReport:
    """Per layer: relative error ``||Z_pruned - Z_dense||² / ||Z_dense||²`` before and after, and the time."""

    error_before: list[float] = field(default_factory=list)
    error_after: list[float] = field(default_factory=list)
    layers: list[int] = field(default_factory=list)
    samples: int = 0
    damping: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "error_before": list(self.error_before),
                "error_after": list(self.error_after), "samples": self.samples, "damping": self.damping,
                "seconds": self.seconds}


def reconstruct(model: MLP, dense: MLP, X: Any, *, damping: float = 1e-4, layers: Any = None,
                fit_bias: bool = True, max_samples: int | None = None, seed: int = 0) -> ReconstructionReport:
    """Refit the surviving weights and biases of the pruned ``model`` to the ``dense`` model, in place.

    For l = 1..L in order: A = the pruned model's input to layer l (after the layers before it were refit),
    Z = the dense model's pre-activation of layer l; then ``reconstruct_layer``. Masks are kept exactly
    (pruned weights stay 0); a layer without a mask has every weight refit. No labels, no SGD.
    ``X`` is an array, a ``Dataset`` or an ``(X, y)`` tuple (labels unused); ``max_samples`` keeps that many
    rows drawn at random with ``seed``.

    Shapes: X (n, d_0) -> a ``ReconstructionReport`` (per-layer relative errors).
    """
    start = time.perf_counter()
    if model.sizes != dense.sizes:
        raise ShapeError(f"the pruned model {model.sizes} and the dense model {dense.sizes} differ in shape")
    X = _subsample(_features(X), max_samples, seed).astype(np.float64)
    targets = backprop.forward(dense, X).Z
    chosen = set(_layers(model, layers))
    report = ReconstructionReport(layers=sorted(chosen), samples=X.shape[0], damping=damping)
    A = X
    last = len(model.layers) - 1
    for index, layer in enumerate(model.layers):
        if index in chosen:
            before = _relative_error(A @ layer.W.data + layer.b.data, targets[index])
            W, b = reconstruct_layer(A, targets[index], _mask_of(layer.W), _mask_of(layer.b), damping=damping,
                                     bias=layer.b.data, fit_bias=fit_bias)
            layer.W.data[...] = W * _mask_of(layer.W)
            layer.b.data[...] = b * _mask_of(layer.b)
            report.error_before.append(before)
            report.error_after.append(_relative_error(A @ layer.W.data + layer.b.data, targets[index]))
        Z = A @ layer.W.data.astype(np.float64) + layer.b.data
        A = activate(Z, model.activation) if index < last else Z
    report.seconds = time.perf_counter() - start
    return report


__all__ = ["ReconstructionReport", "reconstruct", "reconstruct_layer"]
