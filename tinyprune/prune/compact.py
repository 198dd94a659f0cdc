"""Compaction: turn a model with dead hidden neurons into a smaller dense ``MLP`` with the same outputs.

A hidden neuron j of layer l can go, exactly, when
- its outgoing row ``W_{l+1}[j, :]`` is all 0: nothing downstream listens; or
- its incoming column ``W_l[:, j]`` is all 0: its activation is the constant ``act(b_l[j])``, which is
  *folded* into the next bias, ``b_{l+1} += act(b_l[j]) · W_{l+1}[j, :]``, before it goes. With ReLU, tanh,
  GELU, leaky ReLU and identity ``act(0) = 0``, so a unit whose bias is pruned too folds nothing; a sigmoid
  unit still emits ``σ(0) = 1/2`` and folds ``W_{l+1}[j, :] / 2``: pruning its weights does not silence it.
Removing a neuron deletes a row or column of its neighbours, which may make more neurons dead, so the
two rules run to a fixed point. Input and output units are never removed. Surviving weights keep their
(unstructured) masks, except a bias entry that receives a folded constant, which is no longer pruned.
If every neuron of a layer is dead, one all-zero neuron is kept (an MLP needs width >= 1): the output
is then a constant. Block masks (``structure="blocks"``) and N:M masks are
not compacted: they remove tiles of weights, not whole rows or columns, so they stay as masks (zeros in a
dense matrix) unless a block happens to cover a neuron's whole column or row; a dense ``X @ W`` with
zero blocks costs what it did (``benchmarks/bench_allocation.py``).
Derived in ``notebooks/09_structured_pruning_and_speed.ipynb``.

>>> from tinyprune.core.nn import MLP, activate
>>> from tinyprune.prune.core import neurons
>>> model = MLP([6, 8, 5, 3], seed=0)
>>> _ = neurons(model, 0.5, scope="layer")
>>> small = compact(model)
>>> small.sizes, compaction_report(model, small)["parameters"]
([6, 4, 3, 3], (119, 55))
>>> X = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
>>> bool(np.allclose(small(X), model(X), atol=1e-6))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyprune.core.nn import MLP, activate
from tinyprune.prune import masks


def compact(model: MLP) -> MLP:
    """A new, smaller, dense MLP computing the same function as ``model`` (allclose), dead neurons removed.

    ``model`` is not changed. Read the new shape from ``.sizes`` (or ``compaction_report``).
    Shapes: ``MLP([d_0, h_1, ..., k])`` -> ``MLP([d_0, h_1', ..., k])`` with ``1 <= h_l' <= h_l``.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"compact works on an MLP, got {type(model).__name__}")
    Ws = [layer.W.data.copy() for layer in model.layers]
    bs = [layer.b.data.copy() for layer in model.layers]
    W_masks = [None if layer.W.mask is None else layer.W.mask.copy() for layer in model.layers]
    b_masks = [None if layer.b.mask is None else layer.b.mask.copy() for layer in model.layers]

    changed = True
    while changed:
        changed = False
        for l in range(len(Ws) - 1):                     # hidden layer l: the outputs of layers[l]
            dead_out = ~Ws[l + 1].any(axis=1)
            dead_in = ~Ws[l].any(axis=0)
            remove = dead_out | dead_in
            if not remove.any():
                continue
            if remove.all() and remove.size == 1 and bs[l][0] == 0 and dead_in[0] and dead_out[0]:
                continue                                  # already the single zero neuron kept below
            fold = dead_in & ~dead_out
            if fold.any():
                constant = activate(bs[l][fold], model.activation) @ Ws[l + 1][fold]
                bs[l + 1] = bs[l + 1] + constant
                if b_masks[l + 1] is not None:
                    b_masks[l + 1] = b_masks[l + 1] | (constant != 0)
            keep = ~remove
            if not keep.any():                            # keep one neuron, all zero
                keep[0] = True
                Ws[l][:, 0], bs[l][0], Ws[l + 1][0, :] = 0, 0, 0
                if W_masks[l] is not None:                # (our own copies: safe to write)
                    W_masks[l][:, 0] = False
                if W_masks[l + 1] is not None:
                    W_masks[l + 1][0, :] = False
                if b_masks[l] is not None:
                    b_masks[l][0] = False
            Ws[l], bs[l], Ws[l + 1] = Ws[l][:, keep], bs[l][keep], Ws[l + 1][keep, :]
            if W_masks[l] is not None:
                W_masks[l] = W_masks[l][:, keep]
            if b_masks[l] is not None:
                b_masks[l] = b_masks[l][keep]
            if W_masks[l + 1] is not None:
                W_masks[l + 1] = W_masks[l + 1][keep, :]
            changed = True

    sizes = [Ws[0].shape[0]] + [W.shape[1] for W in Ws]
    small = MLP(sizes, activation=model.activation, seed=0, dtype=model.dtype)
    for layer, W, b in zip(small.layers, Ws, bs):
        layer.W.data[...] = W
        layer.b.data[...] = b
    kept = {f"layers.{l}.W": mask for l, mask in enumerate(W_masks)}
    kept.update({f"layers.{l}.b": mask for l, mask in enumerate(b_masks)})
    masks.set_masks(small, kept)
    return small


def _count(model: MLP) -> tuple[int, int]:
    params = [p.data for p in model.parameters()]
    return sum(p.size for p in params), sum(int(np.count_nonzero(p)) for p in params)


def compaction_report(model: MLP, compacted: MLP | None = None) -> dict[str, Any]:
    """Before and after: ``{"sizes": (before, after), "parameters": (before, after), "nonzeros": ...,
    "ratio": parameters before / after}`` (``compacted`` defaults to ``compact(model)``)."""
    compacted = compact(model) if compacted is None else compacted
    (p0, n0), (p1, n1) = _count(model), _count(compacted)
    return {"sizes": (list(model.sizes), list(compacted.sizes)), "parameters": (p0, p1),
            "nonzeros": (n0, n1), "ratio": p0 / p1}
