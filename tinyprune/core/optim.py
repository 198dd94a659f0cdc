"""Optimizers: SGD (momentum, Nesterov, weight decay) and Adam; ``schedule`` is any ``lr(step)``.

Plain SGD is the document's update ``w <- w - α Δw``. Every optimizer is *mask-aware*: where a ``mask``
is ``False`` the gradient and the optimizer's state are zeroed and the weight is re-masked after the step,
so ``W[~mask] == 0`` after any number of steps (``notebooks/04_training.ipynb``). ``tinyprune.fast.optim``
computes the same updates in place on flat buffers (``tinyprune.SGD``, ``tinyprune.Adam`` are those).

>>> from tinyprune.core.nn import Parameter
>>> w = Parameter(np.array([1.0, 2.0]))
>>> w.grad = np.array([0.5, 0.5])
>>> SGD([w], lr=0.1).step()
>>> w.data
array([0.95, 1.95])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from tinyprune.core.errors import ShapeError
from tinyprune.core.nn import Parameter

Schedule = Callable[[int], float]


def check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    """``value`` as a float if it is finite and ``> 0`` (or ``>= 0``), else a ``ValueError`` naming it."""
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


class Optimizer:
    """The parameters, the learning rate (or its schedule), the step count ``t`` and the state:
    ``state[slot][i]`` is parameter i's buffer of each of the ``slots`` (``"m"``, ...), updated in place.
    A subclass's ``direction(i, g)`` returns the step ``d`` (``w <- w - d``) from the gradient and state."""

    slots: tuple[str, ...] = ()
    weight_decay = 0.0

    def __init__(self, params: Iterable[Parameter], lr: float, schedule: Schedule | None = None) -> None:
        self.params = list(params)
        if not self.params or not all(isinstance(p, Parameter) for p in self.params):
            raise ValueError("an optimizer needs a non-empty list of Parameters (e.g. model.parameters())")
        self.lr = check_positive("lr", lr)
        self.schedule = schedule
        self.steps = 0
        self.state: dict[str, list[np.ndarray]] = {
            slot: [np.zeros_like(p.data) for p in self.params] for slot in self.slots}

    def zero_grad(self) -> None:
        """Forget every parameter's gradient."""
        for parameter in self.params:
            parameter.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient, respecting masks."""
        self.advance()
        for i, parameter in enumerate(self.params):
            if parameter.grad is not None:
                self.update(i, parameter)

    def advance(self) -> None:
        """Count the step ``t``; read this step's learning rate from the schedule, if any."""
        if self.schedule is not None:
            self.lr = float(self.schedule(self.steps))
        self.steps += 1

    def update(self, i: int, parameter: Parameter) -> None:
        """``w <- (w - d) ⊙ M`` with ``d = direction(g)``, ``g = (∂L/∂w + λ w) ⊙ M`` and the state ⊙ M."""
        grad = np.asarray(parameter.grad)
        if grad.shape != parameter.shape:
            raise ShapeError(f"parameter {i} has shape {parameter.shape} but its gradient has "
                             f"shape {grad.shape}")
        g = grad.astype(parameter.dtype, copy=False)
        if self.weight_decay:
            g = g + self.weight_decay * parameter.data    # g = ∂L/∂w + λ w
        mask = parameter.mask
        if mask is not None:
            g = g * mask                                   # no gradient through a pruned weight
            for buffers in self.state.values():
                buffers[i] *= mask                         # no memory of one either
        parameter.data -= self.direction(i, g)             # w <- w - d
        if mask is not None:
            parameter.data *= mask

    def direction(self, i: int, g: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays only (no pickle): ``steps``, ``lr`` and ``<slot>.<index>`` for every buffer."""
        state = {"steps": np.array(self.steps), "lr": np.array(self.lr)}
        for slot, buffers in self.state.items():
            state.update({f"{slot}.{index}": buffer.copy() for index, buffer in enumerate(buffers)})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``state_dict()`` returned; shapes and slot names must match."""
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ValueError(f"optimizer state does not fit {type(self).__name__}: expected keys "
                             f"{sorted(expected)}, got {sorted(state)}")
        for slot, buffers in self.state.items():
            for index, buffer in enumerate(buffers):
                values = np.asarray(state[f"{slot}.{index}"])
                if values.shape != buffer.shape:
                    raise ValueError(f"optimizer state {slot}.{index} has shape {values.shape}, "
                                     f"expected {buffer.shape}")
                buffer[...] = values
        self.steps = int(state["steps"])
        self.lr = float(state["lr"])


class SGD(Optimizer):
    """Stochastic gradient descent: ``w <- w - α d`` (the document's update when ``momentum=0``). Weight decay
    λ: ``g = ∂L/∂w + λ w``; momentum μ: ``v <- μ v + g``, ``d = v`` (Nesterov: ``d = g + μ v``)."""

    slots = ("velocity",)

    def __init__(self, params: Iterable[Parameter], lr: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, schedule: Schedule | None = None) -> None:
        super().__init__(params, lr, schedule)
        self.momentum = check_positive("momentum", momentum, allow_zero=True)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = nesterov

    def direction(self, i: int, g: np.ndarray) -> np.ndarray:
        if self.momentum:
            v = self.state["velocity"][i]
            v[...] = self.momentum * v + g                 # v <- μ v + g
            g = g + self.momentum * v if self.nesterov else v   # d = g + μ v (Nesterov), else d = v
        return g * self.lr                                 # α d


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; defaults are Keras' (``eps = 1e-7``):
    ``m <- β1 m + (1-β1) g``, ``v <- β2 v + (1-β2) g²``, ``m̂ = m / (1-β1^t)``, ``v̂ = v / (1-β2^t)``,
    ``w <- w - α m̂ / (sqrt(v̂) + ε)``. (Keras adds ε to ``sqrt(v)`` before the correction; the two
    differ only in how ε is scaled.) ``weight_decay`` adds ``λ w`` to the gradient (L2, not AdamW).
    """

    slots = ("m", "v")

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-7, weight_decay: float = 0.0,
                 schedule: Schedule | None = None) -> None:
        super().__init__(params, lr, schedule)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {beta}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = check_positive("eps", eps)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)

    def direction(self, i: int, g: np.ndarray) -> np.ndarray:
        m, v, t = self.state["m"][i], self.state["v"][i], self.steps
        m[...] = self.beta1 * m + (1 - self.beta1) * g                 # m <- β1 m + (1-β1) g
        v[...] = self.beta2 * v + (1 - self.beta2) * g**2              # v <- β2 v + (1-β2) g²
        m_hat = m / (1 - self.beta1**t)                                # m̂ = m / (1-β1^t)
        v_hat = v / (1 - self.beta2**t)                                # v̂ = v / (1-β2^t)
        return self.lr * m_hat / (np.sqrt(v_hat) + self.eps)           # α m̂ / (sqrt(v̂) + ε)

