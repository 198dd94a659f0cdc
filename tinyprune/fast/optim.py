"""``SGD`` and ``Adam`` made fast: the updates of ``tinyprune.core.optim`` in place on flat buffers.

The parameters of one dtype share flat vectors, one per slot (``m``, ``v``, ``velocity``), plus one for
the gradient and one for the step; ``state[slot][i]`` is parameter i's view into them. When every
parameter has a gradient (every training step) an update is a dozen operations on whole vectors instead
of a dozen per parameter, and nothing is allocated. The state is zeroed under a mask only when the mask
changes (from then on the masked gradient keeps it 0), and tiny state is flushed to 0 (``_flush``).
The buffers are made at the first fast step, holding the state as it is then.

A parameter's own rate ``lr · lr_scales[i]`` (``Optimizer.lr_scales``, e.g. a rate per layer) is, when some
factor is not 1, a flat vector of every entry's rate, refilled each step (one more pass over the weights;
with every factor 1 the step is the scalar ``lr`` as before).

Same numbers (``tests/test_fast_paths.py``): SGD bit for bit; Adam to float rounding, because it computes
``α_t m / (sqrt(v) + ε_t)`` with ``α_t = α sqrt(1-β2^t) / (1-β1^t)``, ``ε_t = ε sqrt(1-β2^t)`` (Kingma & Ba,
section 2: the same number as ``α m̂ / (sqrt(v̂) + ε)``, one pass over the weights fewer). Inside
``tinyprune.plain()`` these optimizers take the core's plain step on the same buffers.

>>> from tinyprune.core.nn import Parameter
>>> a, b = Parameter(np.ones(2)), Parameter(np.ones(3))
>>> optimizer = Adam([a, b], lr=0.1)
>>> a.grad, b.grad = np.ones(2), np.ones(3)
>>> optimizer.step()                                   # the first step of Adam moves w by about lr
>>> a.data.round(6), optimizer.state["m"][0].base is optimizer.state["m"][1].base   # one flat m
(array([0.9, 0.9]), True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from tinyprune.core import optim
from tinyprune.core.errors import ShapeError
from tinyprune.core.nn import Parameter
from tinyprune.core.optim import Optimizer, Schedule
from tinyprune.fast.switch import is_plain
from tinyprune.lr_schedules import constant, cosine, step_decay

# The optimizers users build: these two, the core's base class, and the learning-rate schedules.
__all__ = ["FLUSH_EVERY", "OPTIMIZERS", "SGD", "Adam", "Optimizer", "Schedule", "constant", "cosine",
           "make_optimizer", "step_decay"]

FLUSH_EVERY = 100   # steps between flushes of tiny optimizer state to 0 (_Flat._flush)

Block = dict[str, np.ndarray]


class _Flat:
    """The flat buffers and the in-place step shared by the fast ``SGD`` and ``Adam``."""

    params: list[Parameter]
    state: dict[str, list[np.ndarray]]
    slots: tuple[str, ...]
    steps: int
    weight_decay: float

    _blocks: list[tuple[list[int], Block]] | None = None      # made at the first fast step

    def _allocate(self) -> None:
        """One flat vector per slot (and for the gradient, the step and, with per-parameter rates, the
        rate) per dtype, holding the state's values as they are; ``state`` becomes views into them."""
        self._blocks: list[tuple[list[int], Block]] = []   # (indices, flat vectors)
        names = (*self.slots, "grad", "step", *(("rate",) if self._scaled() else ()))
        views: dict[str, list[Any]] = {name: [None] * len(self.params) for name in names}
        for dtype in dict.fromkeys(p.dtype for p in self.params):
            indices = [i for i, p in enumerate(self.params) if p.dtype == dtype]
            bounds = np.cumsum([0] + [self.params[i].data.size for i in indices])
            flat = {name: np.zeros(bounds[-1], dtype=dtype) for name in views}
            self._blocks.append((indices, flat))
            for i, start, stop in zip(indices, bounds[:-1], bounds[1:]):
                for name, vector in flat.items():
                    views[name][i] = vector[start:stop].reshape(self.params[i].shape)
                    if name in self.state:
                        views[name][i][...] = self.state[name][i]
        self.state = {slot: views[slot] for slot in self.slots}
        self._views = views
        self._masks: list[np.ndarray | None] = [None] * len(self.params)   # the mask the state obeys

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient, respecting masks."""
        if is_plain():
            super().step()  # type: ignore[misc]
            return
        if self._blocks is None or (self._scaled() and "rate" not in self._views):
            self._allocate()
        self.advance()  # type: ignore[attr-defined]
        for indices, flat in self._blocks:  # type: ignore[union-attr]
            ready = [i for i in indices if self.params[i].grad is not None]
            if len(ready) == len(indices):
                self._step_block(indices, flat)                 # the whole flat vectors at once
            else:
                for i in ready:                                 # only those with a gradient
                    self._step_block([i], {name: views[i] for name, views in self._views.items()})
        if self.steps % FLUSH_EVERY == 0:
            self._flush()

    def _flush(self) -> None:
        """Set state entries below ``2^20`` times the smallest normal number to exactly 0.

        A moment that only decays (``m <- β1 m`` for a weight whose input pixel is almost always 0)
        sinks into the *subnormal* numbers below ``1.2e-38`` (float32), which the CPU multiplies 10-100x
        slower than normal ones: with 5 % of Adam's ``m`` subnormal an epoch's updates took twice as long
        (``benchmarks/README.md``). Flushed every ``FLUSH_EVERY`` steps, before a value gets there;
        such a value moves no weight by more than ``lr · 1e-24``.
        """
        for _, flat in self._blocks or []:
            for slot in self.slots:
                vector = flat[slot]
                vector[np.abs(vector) < np.finfo(vector.dtype).tiny * 2**20] = 0

    def _step_block(self, indices: list[int], block: Block) -> None:
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
        if self.weight_decay:                                   # g = ∂L/∂w + λ w
            for i in indices:
                np.multiply(self.params[i].data, self.weight_decay, out=self._views["step"][i])
            grad += step
        for i in indices:                                       # after the decay: a weight pruned but
            mask = self.params[i].mask                          # not yet zeroed must not leak λ w
            if mask is not None:                                # into the state under the mask
                self._follow_mask(i, mask)
                self._views["grad"][i] *= mask                  # no gradient through a pruned weight
            else:
                self._masks[i] = None
        self._direction(block, self._rate(indices, block))
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

    def _scaled(self) -> bool:
        """Whether some parameter has a rate of its own (a factor in ``lr_scales`` other than 1)."""
        return any(scale != 1.0 for scale in self.lr_scales)

    def _rate(self, indices: list[int], block: Block) -> float | np.ndarray:
        """This step's rate: ``lr``, or with per-parameter factors the vector of every entry's
        ``lr · lr_scales[i]`` (rounded to the dtype as ``g * (lr · lr_scales[i])`` rounds it in the core)."""
        if not self._scaled():
            return self.lr
        for i in indices:
            self._views["rate"][i].fill(self.lr * self.lr_scales[i])
        return block["rate"]

    def _direction(self, block: Block, rate: float | np.ndarray) -> None:
        """The step ``block["step"]`` for the gradients ``block["grad"]`` at the rate ``rate``."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)  # type: ignore[misc]
        self._masks = [None] * len(self.params)    # the loaded state obeys the masks from the next step


class SGD(_Flat, optim.SGD):
    """``tinyprune.core.optim.SGD`` on flat buffers: the same numbers, bit for bit."""

    def _direction(self, block: Block, rate: float | np.ndarray) -> None:
        grad, step = block["grad"], block["step"]
        if self.momentum:
            velocity = block["velocity"]
            velocity *= self.momentum
            velocity += grad                                               # v <- μ v + g
            if self.nesterov:
                grad = np.add(grad, np.multiply(velocity, self.momentum, out=step), out=step)  # d = g + μ v
            else:
                grad = velocity                                            # d = v
        np.multiply(grad, rate, out=step)                                  # w <- w - α d


class Adam(_Flat, optim.Adam):
    """``tinyprune.core.optim.Adam`` on flat buffers, with the bias correction folded into α_t and ε_t."""

    def _direction(self, block: Block, rate: float | np.ndarray) -> None:
        grad, m, v, step = block["grad"], block["m"], block["v"], block["step"]
        m *= self.beta1
        m += np.multiply(grad, 1 - self.beta1, out=step)                    # m <- β1 m + (1-β1) g
        v *= self.beta2
        v += np.multiply(np.square(grad, out=step), 1 - self.beta2, out=step)   # v <- β2 v + (1-β2) g²
        correction = math.sqrt(1 - self.beta2**self.steps)
        np.sqrt(v, out=step)
        step += self.eps * correction                                       # sqrt(v) + ε_t
        np.divide(m, step, out=step)
        if isinstance(rate, np.ndarray):                                    # a rate per entry
            step *= correction / (1 - self.beta1**self.steps)
            step *= rate
        else:
            step *= rate * correction / (1 - self.beta1**self.steps)        # α_t m / (sqrt(v) + ε_t)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam}


def make_optimizer(name: str, params: Iterable[Parameter], **options: Any) -> Optimizer:
    """Build an optimizer by name (``"sgd"`` or ``"adam"``) with keyword options.

    >>> from tinyprune.core.nn import MLP
    >>> type(make_optimizer("adam", MLP([2, 2]).parameters(), lr=1e-3)).__name__
    'Adam'
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, **options)
