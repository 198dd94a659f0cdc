"""Sparse inference for a model whose masks are fixed: each layer's surviving weights stored once,
compressed, and multiplied without the zeros, where that is faster than dense BLAS.

A layer ``Z = X W + b`` (``W`` of shape (d, h), most entries pruned to exact 0) can skip its zeros in two
ways, both in plain NumPy, both built once from the model:

- ``"reduceat"`` (compressed rows of ``W^T``, CSR): output j reads ``nnz_j`` inputs,
  ``Z[:, j] = Σ_k X[:, cols[k]] vals[k]`` over j's segment; one gather ``X[:, cols]`` (n, nnz), one
  product, one segmented sum (``np.add.reduceat``). Any mask.
- ``"gather"`` (padded rows, ELL): every output reads ``K = max_j nnz_j`` inputs (padding reads input 0
  with weight 0), ``Z = Σ_k X[:, idx[:, k]] vals[:, k]``: a (n, h, K) gather and a sum over K, no
  segments. Best when the rows are equally full, as OBS leaves them (the same count per unit).

Both do ``2 n · nnz`` flops against the dense product's ``2 n d h``, but a gather costs more per flop
than BLAS, so sparsity pays only when the density is low enough; where exactly depends on the width
and the batch (``benchmarks/bench_sparse.py`` measures it, ``choose`` encodes the measured rule).
Notebook 09 compares this with compaction (removing whole neurons), which needs no gather at all.

>>> from tinyprune.core.nn import MLP, activate
>>> from tinyprune.prune.core import magnitude
>>> model = MLP([20, 16, 3], seed=0)
>>> _ = magnitude(model, 0.9, scope="layer")
>>> fast = SparseMLP.from_model(model, kernels="reduceat")
>>> X = np.random.default_rng(0).random((5, 20), dtype=np.float32)
>>> bool(np.allclose(fast.logits(X), model(X), atol=1e-5)), fast.kernels
(True, ['reduceat', 'reduceat'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.core.nn import MLP, activate
from tinyprune.errors import ShapeError

KERNELS = ("dense", "reduceat", "gather")
CHUNK = 1 << 21          # values of the gathered (nnz, n) rows reduceat builds at once (8 MiB of float32)
CACHE = 1 << 16          # values of one slice of X^T the gather kernel works on (256 KiB of float32)


@dataclass(frozen=True)
class SparseLayer:
    """One layer in the form its kernel reads (see the module), applied to activations stored one
    *feature* per row (``X^T``, shape (d, n)): a gather then copies whole rows of n values, which is
    what makes it fast. Built by ``build_layer``."""

    kernel: str
    shape: tuple[int, int]            # (d, h) of W
    bias: np.ndarray                  # (h, 1)
    arrays: tuple[np.ndarray, ...]    # dense: (W^T,); reduceat: (vals, cols, indptr); gather: (vals, idx)

    def __call__(self, XT: np.ndarray) -> np.ndarray:
        """``(X W + b)^T``. Shapes: XT (d, n) -> (h, n)."""
        if self.kernel == "dense":
            return self.arrays[0] @ XT + self.bias
        product = _reduceat if self.kernel == "reduceat" else _gather
        return product(XT, *self.arrays) + self.bias


def _reduceat(XT: np.ndarray, vals: np.ndarray, cols: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """``Z^T[j] = Σ_k vals[k] X^T[cols[k]]`` over output j's segment ``indptr[j]:indptr[j+1]`` (0 if
    empty): gather the rows, scale, sum each segment (``np.add.reduceat``). Outputs go in groups whose
    gathered rows stay under ``CHUNK`` values."""
    h, n = indptr.size - 1, XT.shape[1]
    ZT = np.zeros((h, n), dtype=np.result_type(XT, vals))
    budget, first = max(1, CHUNK // max(n, 1)), 0
    while first < h:
        last = max(first + 1, int(np.searchsorted(indptr, indptr[first] + budget, side="right")) - 1)
        low, high = indptr[first], indptr[last]
        filled = indptr[first:last] < indptr[first + 1:last + 1]       # outputs that read something
        if high > low:                 # segments of the filled outputs only: reduceat sums start..next start
            products = XT[cols[low:high]] * vals[low:high, None]
            ZT[first:last][filled] = np.add.reduceat(products, indptr[first:last][filled] - low)
        first = last
    return ZT


def _gather(XT: np.ndarray, vals: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``Z^T[j] = Σ_k vals[j, k] X^T[idx[j, k]]``: padded rows, one gather of h rows per k. The batch
    goes in slices of columns small enough that a slice of X^T and of Z^T stay in the cache."""
    (h, _), (d, n) = idx.shape, XT.shape
    columns = max(16, CACHE // max(d, h))
    ZT = np.empty((h, n), dtype=np.result_type(XT, vals))
    for first in range(0, n, columns):
        part = np.ascontiguousarray(XT[:, first:first + columns])
        out = vals[:, :1] * part[idx[:, 0]]
        for k in range(1, idx.shape[1]):
            out += vals[:, k:k + 1] * part[idx[:, k]]
        ZT[:, first:first + columns] = out
    return ZT


def build_layer(W: np.ndarray, b: np.ndarray, kernel: str) -> SparseLayer:
    """``W``'s nonzero entries in the form ``kernel`` reads (built once). Shapes: W (d, h), b (h,)."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNELS}")
    d, h = W.shape
    bias = np.asarray(b).reshape(h, 1).copy()
    if kernel == "dense":
        return SparseLayer(kernel, (d, h), bias, (np.ascontiguousarray(W.T),))
    alive = W.T != 0                                               # (h, d): what output j reads
    counts = alive.sum(axis=1)
    if kernel == "reduceat":
        rows, cols = np.nonzero(alive)
        return SparseLayer(kernel, (d, h), bias, (W.T[rows, cols], cols, np.r_[0, np.cumsum(counts)]))
    width = max(1, int(counts.max(initial=0)))
    order = np.argsort(~alive, axis=1, kind="stable")[:, :width]   # each output's inputs first, then pad
    vals = np.take_along_axis(W.T, order, axis=1)                  # 0 in the padding: W is 0 there
    idx = np.where(np.arange(width) < counts[:, None], order, 0)
    return SparseLayer(kernel, (d, h), bias, (np.ascontiguousarray(vals), idx))


# The measured rule (benchmarks/bench_sparse.py, one BLAS thread, 2-core AMD EPYC; README "Sparse
# inference"): (least weights d·h, least batch, most batch, kernel, highest density at which it pays).
# The measured points were 1, 2, 5 % of each output's inputs rounded to whole inputs (2.002 % at 4096):
# the thresholds sit a tenth of a point above them.
RULE = (
    (2**24, 1, 15, "reduceat", 0.031),     # 4096 x 4096, batch 1: won at 1-2 % (3-9x), 5 % a tie
    (2**20, 1, 15, "reduceat", 0.011),     # 1024 x 1024, batch 1: won at 1 % (1.3-1.6x), tied at 2 %
    (2**24, 512, None, "gather", 0.011),   # 4096 x 4096, batch 1,000: won at 1 % (1.3x), lost at 2 %
    (2**16, 16, None, "gather", 0.021),    # 256 ... 4096, batch 32 and 1,000: won at 1-2 % (1.1-3x)
)


def choose_kernel(W: np.ndarray, batch: int) -> str:
    """The kernel the measured rule (``RULE``) picks for ``W`` at ``batch`` rows per call: the first
    line whose size and batch range hold, if ``W``'s density is at most its threshold; ``"dense"``
    otherwise (small layers, dense enough layers, batches of 1 below 1024 x 1024). The density the
    ``gather`` kernel pays for is its padded one, ``max_j nnz_j / d`` (every output reads as many inputs
    as the fullest one); ``reduceat`` pays for the true ``nnz / (d h)``.

    >>> W = np.zeros((1024, 1024), np.float32); W[::50] = 1.0           # 21 of 1024 rows: 2.05 %
    >>> choose_kernel(W, 1), choose_kernel(W, 1000), choose_kernel(W[:64, :64], 1000)
    ('dense', 'gather', 'dense')
    """
    d, h = W.shape
    counts = np.count_nonzero(W, axis=0)
    density = {"reduceat": counts.sum() / max(W.size, 1), "gather": counts.max(initial=0) / max(d, 1)}
    for least_size, least_batch, most_batch, kernel, threshold in RULE:
        if W.size >= least_size and batch >= least_batch and (most_batch is None or batch <= most_batch):
            return kernel if density[kernel] <= threshold else "dense"
    return "dense"


def choose(model: MLP, batch: int) -> list[str]:
    """``choose_kernel`` for every layer of ``model`` at ``batch`` rows per call."""
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive number of rows, got {batch!r}")
    return [choose_kernel(layer.W.data, int(batch)) for layer in model.layers]


class SparseMLP:
    """An ``MLP`` whose masks are fixed, for inference: ``logits`` and ``predict`` as the model computes
    them (to float rounding), each layer by its own kernel. Later changes to the model are not seen.

    ``SparseMLP.from_model(model)`` picks the kernels by ``choose`` for ``batch`` rows per call;
    ``kernels="dense"``, ``"reduceat"``, ``"gather"`` or a list (one per layer) forces them.
    """

    def __init__(self, layers: list[SparseLayer], sizes: list[int], activation: str = "relu") -> None:
        self.layers, self.sizes, self.activation = layers, sizes, activation

    @classmethod
    def from_model(cls, model: MLP, kernels: str | list[str] = "auto", batch: int = 1000) -> SparseMLP:
        if not isinstance(model, MLP):
            raise TypeError(f"SparseMLP.from_model needs an MLP, got {type(model).__name__}")
        if kernels == "auto":
            chosen = choose(model, batch)
        elif isinstance(kernels, str):
            chosen = [kernels] * len(model.layers)
        else:
            chosen = list(kernels)
        if len(chosen) != len(model.layers):
            raise ValueError(f"one kernel per layer: {len(model.layers)} layers, got {len(chosen)} kernels")
        built = [build_layer(layer.W.data, layer.b.data, k) for layer, k in zip(model.layers, chosen)]
        return cls(built, list(model.sizes), model.activation)

    @property
    def kernels(self) -> list[str]:
        return [layer.kernel for layer in self.layers]

    def logits(self, X: Any) -> np.ndarray:
        """The model's logits. Shapes: X (n, sizes[0]) -> (n, sizes[-1])."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ShapeError(f"SparseMLP input must have shape (n, {self.sizes[0]}), got {X.shape}")
        last = len(self.layers) - 1
        XT = np.ascontiguousarray(X.T)                  # one feature per row: gathers copy whole rows
        for index, layer in enumerate(self.layers):
            XT = layer(XT)
            if index < last:                            # ReLU in place; others as the model computes them
                XT = np.maximum(XT, 0, out=XT) if self.activation == "relu" else activate(XT, self.activation)
        return np.ascontiguousarray(XT.T)

    def predict(self, X: Any) -> np.ndarray:
        """The predicted class of every row, ``argmax_j z_ij``. Shapes: X (n, sizes[0]) -> (n,) int64."""
        return self.logits(X).argmax(axis=1)


__all__ = ["KERNELS", "RULE", "SparseLayer", "SparseMLP", "build_layer", "choose", "choose_kernel"]
