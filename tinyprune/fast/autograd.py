"""``Tensor.backward`` without the leaves' copies: the same gradients, fewer arrays allocated.

The plain ``Tensor.backward`` (``tinyprune.core.autograd``) gives every leaf a *copy* of its gradient,
because the array it receives may be the very array a sibling received (``z = x + y`` hands ``g`` to
both). Most gradients are fresh products (``A^T g`` of a matrix product) that no other node holds: this
``backward`` tracks which ones are, and lets a leaf keep those as they are. The values are the same,
bit for bit (a copy changes no number); ``tests/test_fast_paths.py`` checks it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyprune.core.autograd import Tensor


def backward(root: Tensor, grad: Any = None) -> None:
    """``root.backward(grad)``, with a copy only where a leaf's gradient is shared with another array."""
    pending: dict[int, np.ndarray] = {id(root): root._upstream(grad)}
    fresh: set[int] = set()        # ids of pending gradients that share memory with no other array
    for node in reversed(root._topological_order()):
        node_grad = pending.pop(id(node), None)
        if node_grad is None:
            continue
        if node._parents:
            node.grad = node_grad
        elif node.grad is None:
            node.grad = node_grad if id(node) in fresh else node_grad.copy()
        else:
            node.grad = node.grad + node_grad
        if node._backward is None:
            continue
        parent_grads = node._backward(node_grad)
        for parent, parent_grad in zip(node._parents, parent_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            key = id(parent)
            if key in pending:                 # a sum is a new array
                pending[key] = pending[key] + parent_grad
                fresh.add(key)
                continue
            pending[key] = parent_grad         # g itself, a view of it, or one handed to two parents is not
            shared = np.may_share_memory(parent_grad, node_grad) or sum(
                other is parent_grad for other in parent_grads) > 1
            (fresh.discard if shared else fresh.add)(key)
