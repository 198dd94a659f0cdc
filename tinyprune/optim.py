"""Optimizers (SGD with momentum/Nesterov/weight decay, Adam) and learning-rate schedules.

Plain SGD is the document's update ``w <- w - α Δw``. Every optimizer is *mask-aware*: where a
parameter's ``mask`` is ``False`` the gradient and the optimizer's own state (momentum, Adam's
moments) are zeroed and the weight is re-masked after the step, so ``W[~mask] == 0`` holds exactly
after any number of steps. Derived in ``notebooks/04_training.ipynb``.

Speed (``benchmarks/bench_train.py``): updates work in place on flat buffers allocated once, and
the state is zeroed under a mask only when the mask changes (``Optimizer`` says how).

>>> from tinyprune.nn import Parameter
>>> w = Parameter(np.array([1.0, 2.0]))
>>> w.grad = np.array([0.5, 0.5])
>>> SGD([w], lr=0.1).step()
>>> w.data
array([0.95, 1.95])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.errors import ShapeError
from tinyprune.nn import Parameter

Schedule = Callable[[int], float]


# ------------------------------------------------------------------ schedules
@dataclass(frozen=True)
class constant:  # noqa: N801 (a schedule reads like a function)
    """``lr(t) = lr`` for every step t."""

    lr: float

    def __call__(self, step: int) -> float:
        return self.lr


@dataclass(frozen=True)
class step_decay:  # noqa: N801
    """``lr(t) = lr · gamma^floor(t / every)``: multiply by ``gamma`` every ``every`` steps."""

    lr: float
    every: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.every, (int, np.integer)) or self.every < 1:
            raise ValueError(f"step_decay needs every >= 1 (steps between decays), got {self.every!r}")

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.every)


@dataclass(frozen=True)
class cosine:  # noqa: N801
    """``lr(t) = final + (lr - final) · (1 + cos(π t / T)) / 2`` for ``t < T``, then ``final``."""

    lr: float
    total_steps: int
    final_lr: float = 0.0

    def __call__(self, step: int) -> float:
        progress = min(step, self.total_steps) / max(self.total_steps, 1)
        return self.final_lr + (self.lr - self.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------ base class
FLUSH_EVERY = 100   # steps between flushes of tiny optimizer state to 0 (Optimizer._flush_tiny_state)

def _check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {expected}, got {value}")
    return value


class Optimizer:
    """Holds the parameters, the learning rate (or a schedule of it) and the step count.

    Subclasses implement ``_direction(block)``: from the gradient ``block["grad"]`` and their state
    (``block[slot]``) they write into ``block["step"]`` the amount to subtract from the weights.
    ``step()`` gathers the gradients, applies masks and weight decay around it, and subtracts.

    Speed: the parameters of one dtype share flat vectors, one per slot (``m``, ``v``, ...), plus one
    for the gradient and one for the step; ``state[slot][i]`` is parameter i's view into them. When
    every parameter has a gradient (every training step) the update is a dozen operations on whole
    vectors instead of a dozen per parameter, and nothing is allocated.
    """

    slots: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Parameter], lr: float, schedule: Schedule | None = None) -> None:
        self.params = list(params)
        if not self.params or not all(isinstance(p, Parameter) for p in self.params):
            raise ValueError("an optimizer needs a non-empty list of Parameters (e.g. model.parameters())")
        self.lr = _check_positive("lr", lr)
        self.schedule = schedule
        self.steps = 0
        self._blocks: list[tuple[list[int], dict[str, np.ndarray]]] = []   # (indices, flat vectors)
        views: dict[str, list[np.ndarray]] = {name: [None] * len(self.params)  # type: ignore[list-item]
                                              for name in (*self.slots, "grad", "step")}
        for dtype in dict.fromkeys(p.dtype for p in self.params):
            indices = [i for i, p in enumerate(self.params) if p.dtype == dtype]
            bounds = np.cumsum([0] + [self.params[i].data.size for i in indices])
            flat = {name: np.zeros(bounds[-1], dtype=dtype) for name in views}
            self._blocks.append((indices, flat))
            for i, start, stop in zip(indices, bounds[:-1], bounds[1:]):
                for name, vector in flat.items():
                    views[name][i] = vector[start:stop].reshape(self.params[i].shape)
        self.state: dict[str, list[np.ndarray]] = {slot: views[slot] for slot in self.slots}
        self._views = views
        self._masks: list[np.ndarray | None] = [None] * len(self.params)   # the mask the state obeys

    def zero_grad(self) -> None:
        """Forget every parameter's gradient."""
        for parameter in self.params:
            parameter.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient, respecting masks."""
        if self.schedule is not None:
            self.lr = float(self.schedule(self.steps))
        self.steps += 1
        for indices, flat in self._blocks:
            ready = [i for i in indices if self.params[i].grad is not None]
            if len(ready) == len(indices):
                self._step_block(indices, flat)                 # the whole flat vectors at once
            else:
                for i in ready:                                 # only those with a gradient
                    self._step_block([i], {name: views[i] for name, views in self._views.items()})
        if self.steps % FLUSH_EVERY == 0:
            self._flush_tiny_state()

    def _flush_tiny_state(self) -> None:
        """Set state entries below ``2^20`` times the smallest normal number to exactly 0.

        A moment that only decays (``m <- β1 m`` for a weight whose input pixel is almost always 0)
        sinks into the *subnormal* numbers below ``1.2e-38`` (float32), which the CPU multiplies 10-100x
        slower than normal ones: with 5 % of Adam's ``m`` subnormal an epoch's updates took twice as long
        (``benchmarks/README.md``). Flushed every ``FLUSH_EVERY`` steps, before a value gets there;
        such a value moves no weight by more than ``lr · 1e-24``.
        """
        for _, flat in self._blocks:
            for slot in self.slots:
                vector = flat[slot]
                vector[np.abs(vector) < np.finfo(vector.dtype).tiny * 2**20] = 0

    def _step_block(self, indices: list[int], block: dict[str, np.ndarray]) -> None:
        """One update of the parameters ``indices``, whose buffers are ``block``'s vectors."""
        grad, step = block["grad"], block["step"]
        for i in indices:
            if np.shape(self.params[i].grad) != self.params[i].shape:
                raise ShapeError(f"parameter {i} has shape {self.params[i].shape} but its gradient has "
                                 f"shape {np.shape(self.params[i].grad)}")
        if len(indices) == 1:
            np.copyto(self._views["grad"][indices[0]], self.params[indices[0]].grad, casting="same_kind")
        else:
            np.concatenate([self.params[i].grad.ravel() for i in indices], out=grad, casting="same_kind")
        weight_decay = getattr(self, "weight_decay", 0.0)
        if weight_decay:                                        # g = ∂L/∂w + λ w
            for i in indices:
                np.multiply(self.params[i].data, weight_decay, out=self._views["step"][i])
            grad += step
        for i in indices:                                       # after the decay: a weight pruned but
            mask = self.params[i].mask                          # not yet zeroed must not leak λ w
            if mask is not None:                                # into the state under the mask
                self._follow_mask(i, mask)
                self._views["grad"][i] *= mask                  # no gradient through a pruned weight
            else:
                self._masks[i] = None
        self._direction(block)
        for i in indices:
            parameter = self.params[i]
            parameter.data -= self._views["step"][i]            # w <- w - (the optimizer's step)
            if parameter.mask is not None:
                parameter.data *= parameter.mask

    def _follow_mask(self, index: int, mask: np.ndarray) -> None:
        """If ``mask`` differs from the one the state obeys, zero the state where it is ``False``.

        From then on the masked gradient is 0, so the state stays 0 there by itself
        (``β·0 + (1-β)·0 = 0``): no multiplication of the state per step.
        """
        known = self._masks[index]
        if known is not None and np.array_equal(known, mask):
            return
        for buffers in self.state.values():
            buffers[index] *= mask
        self._masks[index] = mask.copy()

    def _direction(self, block: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays only (no pickle): ``steps``, ``lr`` and ``<slot>.<index>`` for every buffer."""
        state = {"steps": np.array(self.steps), "lr": np.array(self.lr)}
        for slot, buffers in self.state.items():
            state.update({f"{slot}.{index}": buffer.copy() for index, buffer in enumerate(buffers)})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``state_dict()`` returned; shapes and slot names must match."""
        expected = {"steps", "lr"} | {f"{slot}.{i}" for slot in self.slots for i in range(len(self.params))}
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
        self._masks = [None] * len(self.params)    # the loaded state obeys the masks from the next step
        self.steps = int(state["steps"])
        self.lr = float(state["lr"])


# ------------------------------------------------------------------ SGD
class SGD(Optimizer):
    """Stochastic gradient descent: ``w <- w - α d`` (the document's update when ``momentum=0``).

    With weight decay λ, ``g = ∂L/∂w + λ w``. With momentum μ the direction is the velocity
    ``v <- μ v + g`` (``d = v``), or Nesterov's look-ahead ``d = g + μ v``.
    """

    slots = ("velocity",)

    def __init__(self, params: Iterable[Parameter], lr: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, schedule: Schedule | None = None) -> None:
        super().__init__(params, lr, schedule)
        self.momentum = _check_positive("momentum", momentum, allow_zero=True)
        self.weight_decay = _check_positive("weight_decay", weight_decay, allow_zero=True)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = nesterov

    def _direction(self, block: dict[str, np.ndarray]) -> None:
        grad, step = block["grad"], block["step"]
        if self.momentum:
            velocity = block["velocity"]
            velocity *= self.momentum
            velocity += grad                                               # v <- μ v + g
            if self.nesterov:
                grad = np.add(grad, np.multiply(velocity, self.momentum, out=step), out=step)  # d = g + μ v
            else:
                grad = velocity                                            # d = v
        np.multiply(grad, self.lr, out=step)                               # w <- w - α d


# ------------------------------------------------------------------ Adam
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; defaults are Keras' (``eps = 1e-7``).

    ``m <- β1 m + (1-β1) g``, ``v <- β2 v + (1-β2) g²``, ``m̂ = m / (1-β1^t)``, ``v̂ = v / (1-β2^t)``,
    ``w <- w - α m̂ / (sqrt(v̂) + ε)``. (Keras adds ε to ``sqrt(v)`` before the correction; the two
    differ only in how ε is scaled.) ``weight_decay`` adds ``λ w`` to the gradient (L2, not AdamW).
    The step is computed as ``α_t m / (sqrt(v) + ε_t)`` with ``α_t = α sqrt(1-β2^t) / (1-β1^t)`` and
    ``ε_t = ε sqrt(1-β2^t)`` (Kingma & Ba, section 2): the same number, one pass over the weights fewer.
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
        self.eps = _check_positive("eps", eps)
        self.weight_decay = _check_positive("weight_decay", weight_decay, allow_zero=True)

    def _direction(self, block: dict[str, np.ndarray]) -> None:
        grad, m, v, step = block["grad"], block["m"], block["v"], block["step"]
        m *= self.beta1
        m += np.multiply(grad, 1 - self.beta1, out=step)                    # m <- β1 m + (1-β1) g
        v *= self.beta2
        v += np.multiply(np.square(grad, out=step), 1 - self.beta2, out=step)   # v <- β2 v + (1-β2) g²
        correction = math.sqrt(1 - self.beta2**self.steps)
        np.sqrt(v, out=step)
        step += self.eps * correction                                       # sqrt(v) + ε_t
        np.divide(m, step, out=step)
        step *= self.lr * correction / (1 - self.beta1**self.steps)         # α_t m / (sqrt(v) + ε_t)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam}


def make_optimizer(name: str, params: Iterable[Parameter], **options: Any) -> Optimizer:
    """Build an optimizer by name (``"sgd"`` or ``"adam"``) with keyword options.

    >>> from tinyprune.nn import MLP
    >>> type(make_optimizer("adam", MLP([2, 2]).parameters(), lr=1e-3)).__name__
    'Adam'
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, **options)
