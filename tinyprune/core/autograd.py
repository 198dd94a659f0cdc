"""Reverse-mode automatic differentiation over NumPy arrays: the ``Tensor``.

A ``Tensor`` wraps an array. Every operation on tensors returns a new tensor that remembers its parents
and a *backward rule*: given the upstream gradient ``g = dL/d(out)``, it returns ``dL/d(parent)`` for each
parent (the chain rule, one local derivative at a time). ``loss.backward()`` visits the graph in reverse
topological order, so each node's gradient is complete before it is passed on. Derived step by step in
``notebooks/03_autograd.ipynb``. Broadcasting: when NumPy stretched an operand (``(h,)`` added to
``(n, h)``), the same value was used ``n`` times, so its gradient is the *sum* over the stretched axes.

>>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum()          # y = sum x_i^2
>>> y.backward()
>>> x.grad                     # dy/dx = 2 x
array([2., 4., 6.])
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tinyprune.core.errors import ShapeError

BackwardRule = Callable[[np.ndarray], tuple[np.ndarray | None, ...]]

_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Within this block, operations record no graph (inference, or updating weights by hand)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    """True unless inside a ``no_grad()`` block."""
    return _grad_enabled


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``, the gradient of broadcasting: over the leading axes broadcasting
    added, and (``keepdims``) over the axes where ``shape`` has size 1."""
    if grad.shape == shape:                           # nothing was broadcast
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _as_array(data: Any) -> np.ndarray:
    array = np.asarray(data)
    return array if array.dtype.kind == "f" else array.astype(np.float64)    # ints and bools: float64


class Tensor:
    """An array that can carry a gradient: ``.data`` (ndarray) and, after ``backward()``, ``.grad`` =
    ``dL/d(itself)`` (the shape of ``.data``). Integer or boolean data becomes float64; float32 stays."""

    # Makes ``ndarray + Tensor`` call ``Tensor.__radd__`` instead of NumPy's elementwise loop.
    __array_priority__ = 100.0

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        self.data = _as_array(data)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._parents: tuple[Tensor, ...] = ()
        self._backward: BackwardRule | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def numpy(self) -> np.ndarray:
        """The underlying array (not a copy)."""
        return self.data

    def detach(self) -> Tensor:
        """The same values as a new leaf that records no history."""
        return Tensor(self.data)

    def __repr__(self) -> str:
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, threshold=8)}{flag})"

    @staticmethod
    def _result(data: np.ndarray, parents: tuple[Tensor, ...], backward: BackwardRule) -> Tensor:
        """Wrap an operation's output; record the graph only if some parent needs a gradient."""
        out = Tensor(data)
        if _grad_enabled and any(parent.requires_grad for parent in parents):
            out.requires_grad, out._parents, out._backward = True, parents, backward
        return out

    def _topological_order(self) -> list[Tensor]:
        """Every node reachable from ``self``, each after all of its parents (iterative DFS)."""
        order: list[Tensor] = []
        visited: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, parents_done = stack.pop()
            if parents_done:
                order.append(node)
            elif id(node) not in visited:
                visited.add(id(node))
                stack.append((node, True))
                stack += [(parent, False) for parent in node._parents if parent.requires_grad]
        return order

    def _upstream(self, grad: Any = None) -> np.ndarray:
        """``dL/d(self)`` to start ``backward()`` from: 1 for a scalar ``L``, else ``grad`` (checked)."""
        if not self.requires_grad:
            raise ValueError("backward() on a tensor that does not require a gradient; "
                             "create the inputs with requires_grad=True (and not inside no_grad())")
        if grad is None:
            if self.data.size != 1:
                raise ShapeError(f"backward() without an upstream gradient needs a scalar, got shape "
                                 f"{self.shape}; pass grad= of that shape")
            return np.ones_like(self.data)
        upstream = np.asarray(grad, dtype=self.dtype)
        if upstream.shape != self.shape:
            raise ShapeError(f"upstream gradient has shape {upstream.shape}, expected {self.shape}")
        return upstream

    def backward(self, grad: Any = None) -> None:
        """Back-propagate ``dL/d(self)`` (1 for a scalar ``L``, or ``grad``) to every ancestor, in reverse
        topological order; a node used by several children receives the sum of their contributions (the
        multivariable chain rule). A leaf keeps a copy (a sibling may hold the same array) and accumulates."""
        pending: dict[int, np.ndarray] = {id(self): self._upstream(grad)}
        for node in reversed(self._topological_order()):
            node_grad = pending.pop(id(node), None)
            if node_grad is None:
                continue
            if node._parents:
                node.grad = node_grad
            else:                                         # a leaf: its own copy, summed over calls
                node.grad = node_grad.copy() if node.grad is None else node.grad + node_grad
            if node._backward is None:
                continue
            for parent, parent_grad in zip(node._parents, node._backward(node_grad)):
                if parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                pending[key] = pending[key] + parent_grad if key in pending else parent_grad

    def __add__(self, other: Any) -> Tensor:
        """z = x + y;  dz/dx = 1, dz/dy = 1 (summed back over broadcast axes)."""
        other = _tensor(other, like=self)
        def backward(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return _unbroadcast(g, self.shape), _unbroadcast(g, other.shape)
        return Tensor._result(self.data + other.data, (self, other), backward)

    def __sub__(self, other: Any) -> Tensor:
        """z = x - y;  dz/dx = 1, dz/dy = -1."""
        other = _tensor(other, like=self)
        def backward(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return _unbroadcast(g, self.shape), _unbroadcast(-g, other.shape)
        return Tensor._result(self.data - other.data, (self, other), backward)

    def __mul__(self, other: Any) -> Tensor:
        """z = x * y (elementwise);  dz/dx = y, dz/dy = x."""
        other = _tensor(other, like=self)
        def backward(g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
            # (a constant factor, such as mean's 1/n, gets no gradient: none is computed for it)
            return (_unbroadcast(g * other.data, self.shape) if self.requires_grad else None,
                    _unbroadcast(g * self.data, other.shape) if other.requires_grad else None)
        return Tensor._result(self.data * other.data, (self, other), backward)

    def __truediv__(self, other: Any) -> Tensor:
        """z = x / y;  dz/dx = 1 / y, dz/dy = -x / y^2."""
        other = _tensor(other, like=self)
        def backward(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return (_unbroadcast(g / other.data, self.shape),
                    _unbroadcast(-g * self.data / other.data**2, other.shape))
        return Tensor._result(self.data / other.data, (self, other), backward)

    def __pow__(self, exponent: float) -> Tensor:
        """z = x ** p for a constant scalar p;  dz/dx = p x^(p-1)."""
        if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
            raise TypeError("Tensor ** p takes a constant scalar exponent p")
        p = float(exponent)
        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            return (g * p * self.data ** (p - 1),)
        return Tensor._result(self.data**p, (self,), backward)

    def __neg__(self) -> Tensor:
        """z = -x;  dz/dx = -1."""
        return Tensor._result(-self.data, (self,), lambda g: (-g,))

    # number + Tensor, number - Tensor, ...: the number becomes a constant Tensor on the left
    def __radd__(self, other: Any) -> Tensor: return _tensor(other, like=self) + self  # noqa: E704
    def __rsub__(self, other: Any) -> Tensor: return _tensor(other, like=self) - self  # noqa: E704
    def __rmul__(self, other: Any) -> Tensor: return _tensor(other, like=self) * self  # noqa: E704
    def __rtruediv__(self, other: Any) -> Tensor: return _tensor(other, like=self) / self  # noqa: E704

    def __matmul__(self, other: Any) -> Tensor:
        """Z = A @ B;  dZ/dA: g @ B^T,  dZ/dB: A^T @ g. Shapes: A (n, d) @ B (d, h) -> (n, h); a 1-D
        operand is read as a row (left) or a column (right)."""
        other = _tensor(other)
        a, b = self.data, other.data
        if a.ndim not in (1, 2) or b.ndim not in (1, 2):
            raise ShapeError(f"@ takes 1-D or 2-D operands, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[0]:
            raise ShapeError(f"@ needs the inner dimensions to agree: {a.shape} @ {b.shape} "
                             f"({a.shape[-1]} != {b.shape[0]})")
        def backward(g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
            a2 = a if a.ndim == 2 else a[None, :]
            b2 = b if b.ndim == 2 else b[:, None]
            g2 = g.reshape(a2.shape[0], b2.shape[1])
            # a side that needs no gradient (the input batch X) gets none: no product is wasted on it
            da = (g2 @ b2.T).reshape(a.shape) if self.requires_grad else None
            db = (a2.T @ g2).reshape(b.shape) if other.requires_grad else None
            return da, db
        return Tensor._result(a @ b, (self, other), backward)

    def __rmatmul__(self, other: Any) -> Tensor: return _tensor(other) @ self  # noqa: E704

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """s = sum of x over ``axis``;  ds/dx = 1 everywhere (the gradient is copied back out)."""
        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g, self.shape).copy(),)
        return Tensor._result(self.data.sum(axis=axis, keepdims=keepdims), (self,), backward)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """m = sum(x) / count over ``axis``;  dm/dx = 1 / count."""
        axes = range(self.ndim) if axis is None else np.atleast_1d(axis)
        count = math.prod(self.shape[a] for a in axes)
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        """The same values in a new shape; the gradient is reshaped back."""
        new_shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Tensor._result(self.data.reshape(new_shape), (self,), lambda g: (g.reshape(self.shape),))

    @property
    def T(self) -> Tensor:  # noqa: N802 (NumPy's name)
        """The transpose (axes reversed); the gradient is transposed back."""
        return Tensor._result(self.data.T, (self,), lambda g: (g.T,))

    def exp(self) -> Tensor:
        """y = e^x;  dy/dx = e^x = y."""
        out_data = np.exp(self.data)
        return Tensor._result(out_data, (self,), lambda g: (g * out_data,))

    def log(self) -> Tensor:
        """y = ln x;  dy/dx = 1 / x."""
        return Tensor._result(np.log(self.data), (self,), lambda g: (g / self.data,))

    def relu(self) -> Tensor:
        """y = max(x, 0);  dy/dx = 1 where x > 0, else 0 (we take 0 at the kink x = 0)."""
        active = self.data > 0
        return Tensor._result(np.maximum(self.data, 0), (self,), lambda g: (g * active,))

    def tanh(self) -> Tensor:
        """y = tanh x;  dy/dx = 1 - y²."""
        out_data = np.tanh(self.data)
        return Tensor._result(out_data, (self,), lambda g: (g * (1 - out_data**2),))

    def log_softmax(self, axis: int = -1) -> Tensor:
        """y = z - log sum_j e^{z_j} (stable: z_max subtracted first);  dy_i/dz_j = [i = j] - softmax(z)_j, so
        the gradient is ``g - softmax(z) * sum(g)`` along ``axis`` (notebooks/02_backprop_by_hand.ipynb)."""
        shifted = self.data - self.data.max(axis=axis, keepdims=True)     # z - z_max
        out_data = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            return (g - np.exp(out_data) * g.sum(axis=axis, keepdims=True),)
        return Tensor._result(out_data, (self,), backward)

    def pick(self, labels: Any) -> Tensor:
        """``out[i] = x[i, labels[i]]`` (for cross-entropy); the gradient is ``g[i]`` at ``(i, labels[i])``, 0
        elsewhere. Shapes: (n, k), (n,) -> (n,)."""
        labels = np.asarray(labels)
        if self.ndim != 2:
            raise ShapeError(f"pick() needs a 2-D tensor (rows, classes), got shape {self.shape}")
        (n, k), rows = self.shape, np.arange(self.shape[0])
        fits = labels.shape == (n,) and labels.dtype.kind in "iu"
        if not fits or (n and not 0 <= labels.min() <= labels.max() < k):
            raise ValueError(f"pick() needs one integer label in 0..{k - 1} per row, shape ({n},); got "
                             f"{labels.dtype} labels of shape {labels.shape}")
        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            full = np.zeros_like(self.data)
            full[rows, labels] = g
            return (full,)
        return Tensor._result(self.data[rows, labels], (self,), backward)


def _tensor(value: Any, like: Tensor | None = None) -> Tensor:
    """Constants (arrays, numbers) enter the graph as leaves that need no gradient; a Python number takes
    the dtype of ``like`` (NumPy's rule for Python scalars: ``float32_tensor * 0.5`` stays float32)."""
    if isinstance(value, Tensor):
        return value
    if like is not None and type(value) in (int, float):
        return Tensor(np.asarray(value, dtype=like.dtype))
    return Tensor(value)
