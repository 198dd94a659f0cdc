"""Optimizers: SGD (momentum, Nesterov, weight decay) and Adam; ``schedule`` is any ``lr(step)``.

Plain SGD is the document's update ``w <- w - α Δw``. Every optimizer is *mask-aware*: where a ``mask``
is ``False`` the gradient and the optimizer's state are zeroed and the weight is re-masked after the step,
so ``W[~mask] == 0`` after any number of steps (``notebooks/04_training.ipynb``). ``tinyprune.fast.optim``
computes the same updates in place on flat buffers (``tinyprune.SGD``, ``tinyprune.Adam`` are those).

>>> from tinyprune.core.nn import Parameter
>>> w = Parameter(np.array([1.0, 2.0]))
>>> w.grad = np.array([0.5, 0.5])
>>> SGD([w], lr=0.1).step() or w.data
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
    """The parameters, the learning rate (or its schedule; parameter i's is ``lr · lr_scales[i]``), the step
    count ``t`` and ``state[slot][i]``, parameter i's buffer of each of the ``slots``. A subclass's
    ``move(w, g, state, mask, lr)`` returns the new ``(w, *state)`` from ``sgd_update`` / ``adam_update``,
    called by name: ``exercises.use`` swaps them."""

    slots: tuple[str, ...] = ()
    weight_decay = 0.0

    def __init__(self, params: Iterable[Parameter], lr: float, schedule: Schedule | None = None,
                 lr_scales: Iterable[float] | None = None) -> None:
        self.params = list(params)
        if not self.params or not all(isinstance(p, Parameter) for p in self.params):
            raise ValueError("an optimizer needs a non-empty list of Parameters (e.g. model.parameters())")
        self.lr, self.schedule, self.lr_scales, self.steps = check_positive("lr", lr), schedule, lr_scales, 0
        self.state: dict[str, list[np.ndarray]] = {
            slot: [np.zeros_like(p.data) for p in self.params] for slot in self.slots}

    @property
    def lr_scales(self) -> list[float]:
        """Parameter i steps at ``lr · lr_scales[i]`` (every factor 1 unless given; e.g. one per layer)."""
        return self._lr_scales

    @lr_scales.setter
    def lr_scales(self, scales: Iterable[float] | None) -> None:
        n = len(self.params)
        scales = [1.0] * n if scales is None else [check_positive("lr_scales", s) for s in scales]
        if len(scales) != n:
            raise ValueError(f"lr_scales: expected one factor per parameter ({n}), got {len(scales)}")
        self._lr_scales = scales

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
        """``g = ∂L/∂w + λ w``, then the subclass's masked step ``move`` (all mask 1 if no mask), in place."""
        grad = np.asarray(parameter.grad)
        if (shape := parameter.shape) != grad.shape:
            raise ShapeError(f"parameter {i} has shape {shape} but its gradient has shape {grad.shape}")
        g = grad.astype(parameter.dtype, copy=False)
        if self.weight_decay:
            g = g + self.weight_decay * parameter.data    # g = ∂L/∂w + λ w
        mask = np.ones(parameter.shape, bool) if parameter.mask is None else parameter.mask
        buffers = [parameter.data, *(self.state[slot][i] for slot in self.slots)]
        lr = self.lr * self.lr_scales[i]
        for buffer, value in zip(buffers, self.move(buffers[0], g, buffers[1:], mask, lr)):
            buffer[...] = value                            # in place: the fast optimizers' views stay

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays only (no pickle): ``steps``, ``lr`` and ``<slot>.<index>`` for every buffer."""
        return {"steps": np.array(self.steps), "lr": np.array(self.lr), **{
            f"{slot}.{index}": buffer.copy() for slot, buffers in self.state.items()
            for index, buffer in enumerate(buffers)}}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``state_dict()`` returned; shapes and slot names must match."""
        if set(state) != (expected := set(self.state_dict())):
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
                 nesterov: bool = False, weight_decay: float = 0.0, schedule: Schedule | None = None,
                 lr_scales: Iterable[float] | None = None) -> None:
        super().__init__(params, lr, schedule, lr_scales)
        self.momentum = check_positive("momentum", momentum, allow_zero=True)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = nesterov

    def move(self, w: np.ndarray, g: np.ndarray, state: list, mask: np.ndarray, lr: float) -> tuple:
        return sgd_update(w, g, state[0], mask, lr, self.momentum, self.nesterov)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, ``adam_update``; defaults are Keras' (``eps = 1e-7``;
    Keras adds ε to ``sqrt(v)`` before the bias correction). ``weight_decay``: L2, not AdamW."""

    slots = ("m", "v")

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-7, weight_decay: float = 0.0,
                 schedule: Schedule | None = None, lr_scales: Iterable[float] | None = None) -> None:
        super().__init__(params, lr, schedule, lr_scales)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {beta}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = check_positive("eps", eps)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)

    def move(self, w: np.ndarray, g: np.ndarray, state: list, mask: np.ndarray, lr: float) -> tuple:
        return adam_update(w, g, *state, self.steps, mask, lr, self.beta1, self.beta2, self.eps)


def sgd_update(w: np.ndarray, grad: np.ndarray, velocity: np.ndarray, mask: np.ndarray, lr: float,
               momentum: float, nesterov: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One masked SGD step, new arrays ``(w, u)``: the exercise ``masked_sgd_step`` (plus Nesterov)."""
    g = grad * mask                                        # no gradient through a pruned weight
    velocity = velocity * mask                             # no memory of one either
    if momentum:
        velocity = momentum * velocity + g                 # u <- μ u + g
        g = g + momentum * velocity if nesterov else velocity   # d = g + μ u (Nesterov), else d = u
    return (w - g * lr) * mask, velocity                   # w <- (w - α d) ⊙ M


def adam_update(w: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, mask: np.ndarray,
                lr: float, beta1: float, beta2: float, eps: float) -> tuple[np.ndarray, ...]:
    """One masked Adam step (step ``t`` from 1), new ``(w, m, v)``: the exercise ``masked_adam_step``.
    ``m <- β1 m + (1-β1) g``, ``v <- β2 v + (1-β2) g²``, ``w <- w - α m̂ / (sqrt(v̂) + ε)``, all ⊙ M."""
    g = grad * mask
    m = beta1 * (m * mask) + (1 - beta1) * g                # m <- β1 m + (1-β1) g
    v = beta2 * (v * mask) + (1 - beta2) * g**2             # v <- β2 v + (1-β2) g²
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)   # m̂ = m / (1-β1^t), v̂ = v / (1-β2^t)
    return (w - lr * m_hat / (np.sqrt(v_hat) + eps)) * mask, m, v   # w <- (w - α m̂ / (sqrt(v̂) + ε)) ⊙ M
