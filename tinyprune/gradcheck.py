"""Checking gradients against central finite differences (for the tests, and for grading courses).

For a scalar function ``f`` and an input entry ``x_j``, the central difference
``(f(x + ε e_j) - f(x - ε e_j)) / (2ε)`` approximates ``∂f/∂x_j`` with error ``O(ε²)``. ``gradcheck``
compares it with autograd's gradient entry by entry and reports the worst one, so a failing check
says *where* a gradient is wrong. Use float64 inputs: in float32 the rounding error of ``f`` swamps
the difference quotient. Derived in ``notebooks/02_backprop_by_hand.ipynb``.

>>> result = gradcheck(lambda x: (x * x * x).sum(), np.array([1.0, -2.0, 0.5]))
>>> result.ok
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinyprune.core.autograd import Tensor


def numeric_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences ``(f(x + ε e_j) - f(x - ε e_j)) / 2ε`` for every entry j of ``x``.

    ``f`` takes the array and returns a number; ``x`` (a writable float array, any memory layout)
    is perturbed in place and restored. Shapes: x (any) -> same shape.
    """
    grad = np.zeros(np.shape(x), dtype=np.float64)
    for index in np.ndindex(*np.shape(x)):
        original = x[index]
        x[index] = original + eps
        above = float(f(x))
        x[index] = original - eps
        below = float(f(x))
        x[index] = original
        grad[index] = (above - below) / (2 * eps)
    return grad


@dataclass
class GradcheckResult:
    """Outcome of ``gradcheck``: ``ok``, and the worst entry (argument, index, both values)."""

    ok: bool
    argument: int
    index: tuple[int, ...]
    analytic: float
    numeric: float
    max_error: float

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return (f"gradcheck {verdict}: worst entry argument {self.argument} index {self.index}: "
                f"analytic {self.analytic:.10g}, numeric {self.numeric:.10g} "
                f"(excess error {self.max_error:.3g})")


def compare(analytic: list[np.ndarray], numeric: list[np.ndarray], rtol: float = 1e-5,
            atol: float = 1e-8) -> GradcheckResult:
    """Compare lists of gradients entry by entry with ``|a - n| <= atol + rtol |n|``.

    The reported ``max_error`` is the largest excess ``|a - n| - (atol + rtol |n|)`` (<= 0 when ok);
    a NaN on either side counts as an infinite excess, so it fails the check.
    """
    if len(analytic) != len(numeric):
        raise ValueError(f"got {len(analytic)} analytic gradient(s) but {len(numeric)} numeric one(s)")
    worst = GradcheckResult(True, 0, (), 0.0, 0.0, -np.inf)
    for argument, (a, n) in enumerate(zip(analytic, numeric)):
        if np.shape(a) != np.shape(n):
            raise ValueError(f"gradient {argument} has shape {np.shape(a)}, expected {np.shape(n)}")
        if np.size(a) == 0:
            continue
        with np.errstate(invalid="ignore"):  # inf - inf is NaN, which counts as a failure below
            excess = np.abs(a - n) - (atol + rtol * np.abs(n))
        excess = np.where(np.isnan(excess), np.inf, excess)
        flat_index = int(np.argmax(excess))
        if excess.reshape(-1)[flat_index] > worst.max_error:
            index = np.unravel_index(flat_index, np.shape(a))
            worst = GradcheckResult(True, argument, tuple(int(i) for i in index), float(a[index]),
                                    float(n[index]), float(excess.reshape(-1)[flat_index]))
    worst.ok = bool(worst.max_error <= 0)
    return worst


def gradcheck(f: Callable[..., Tensor], *arrays: np.ndarray, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-8) -> GradcheckResult:
    """Autograd's gradient of the scalar ``f(*tensors)`` against central differences.

    ``f`` takes one ``Tensor`` per array and returns a scalar ``Tensor``. Each array is checked
    in float64. Returns a ``GradcheckResult`` naming the worst entry.
    """
    inputs = [np.array(a, dtype=np.float64) for a in arrays]
    tensors = [Tensor(a.copy(), requires_grad=True) for a in inputs]
    out = f(*tensors)
    if not isinstance(out, Tensor) or out.data.size != 1:
        raise ValueError("gradcheck needs f to return a scalar Tensor")
    out.backward()
    analytic = [t.grad if t.grad is not None else np.zeros_like(t.data) for t in tensors]

    def value_with(position: int) -> Callable[[np.ndarray], float]:
        def value(x: np.ndarray) -> float:
            args = [Tensor(x) if i == position else Tensor(a) for i, a in enumerate(inputs)]
            return float(f(*args).data)
        return value

    numeric = [numeric_gradient(value_with(i), inputs[i], eps) for i in range(len(inputs))]
    return compare(analytic, numeric, rtol=rtol, atol=atol)
