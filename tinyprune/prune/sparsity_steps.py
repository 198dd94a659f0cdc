"""Sparsity steps: how much is pruned at each step, all at once, in rounds, or gradually during training.

(Three words kept apart: these are *sparsity steps*; a *pruning schedule* is the recipe's part that decides
when the mask changes, ``experiment.schedules``; a *learning-rate schedule* is ``tinyprune.lr_schedules``.)

Two curves, one family each:

- polynomial (Zhu & Gupta 2017, "To prune, or not to prune"; TF-MOT's ``PolynomialDecay``): at progress
  ``u = (t - t_0) / (t_end - t_0)`` in [0, 1] the sparsity is ``s(u) = s_f + (s_i - s_f)(1 - u)^p``.
  ``power`` p = 3 (the default) is Zhu & Gupta's cubic: fast at first, while there are many redundant
  weights, slowly at the end; p = 1 is linear. ``polynomial_sparsity`` gives it per training step (the
  gradual callback ``PolynomialPruning``), ``polynomial_steps`` at k equal steps (iterative rounds).
- geometric (Han et al. 2015; the lottery-ticket work, Frankle & Carbin 2019): each round prunes a
  fraction ``rate`` of the weights still alive, so after r rounds ``s_r = 1 - (1 - s_0)(1 - rate)^r``
  (``geometric_steps``; the callback ``IterativePruning``; the loop with recovery between rounds is
  ``tp.prune_and_recover`` with schedule ``iterative``).

Wherever a sparsity is accepted, a mapping ``{"layers.l.W": s_l}`` is too: every layer then follows the
curve to its own target. Derived in ``notebooks/05_pruning_criteria.ipynb`` ("schedules").

>>> [round(s, 3) for s in geometric_steps(0.6, rate=0.2)]
[0.2, 0.36, 0.488, 0.59, 0.6]
>>> [round(s, 3) for s in polynomial_steps(0.9, 3)], [round(s, 3) for s in polynomial_steps(0.9, 3, power=1)]
([0.633, 0.867, 0.9], [0.3, 0.6, 0.9])
>>> [round(polynomial_sparsity(t, 0.8, 0, 100), 3) for t in (0, 50, 100, 200)]
[0.0, 0.7, 0.8, 0.8]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from tinyprune.checks import check_int, check_number
from tinyprune.core.nn import MLP
from tinyprune.prune.core import Masks, Sparsity, check_sparsity, prune


def one_shot(model: MLP, sparsity: Sparsity, **prune_options: Any) -> Masks:
    """Prune once to ``sparsity``: ``prune(model, sparsity, **prune_options)``."""
    return prune(model, sparsity, **prune_options)


# ------------------------------------------------------------------ checks and per-layer curves
def _check_power(power: Any) -> float:
    check_number("power", power, 0, None, low_open=True, meaning="1 linear, 3 cubic")
    return power


def _layer_values(value: Sparsity, label: str) -> dict[str, float]:
    return {name: check_sparsity(s, f"{label} of {name!r}") for name, s in value.items()}


def _each_layer(target: Mapping[str, float], start: Sparsity,
                curve: Callable[[float, float], list[float]]) -> list[dict[str, float]]:
    """Run ``curve(target_l, start_l)`` for every layer; a layer that reaches its target early stays there
    (one that is not pruned at all stays at its start). One mapping per step."""
    targets = _layer_values(target, "the sparsity")
    starts = _layer_values(start, "the start") if isinstance(start, Mapping) else {}
    unknown = sorted(set(starts) - set(targets))
    if unknown:
        raise ValueError(f"the start names layer(s) {unknown} that the target does not")
    names = list(targets)
    first = {name: starts.get(name, 0.0 if isinstance(start, Mapping) else check_sparsity(start, "the start"))
             for name in names}
    curves = {name: curve(targets[name], first[name]) for name in names}
    count = max((len(values) for values in curves.values()), default=0)
    return [{name: (values[r] if r < len(values) else values[-1] if values else first[name])
             for name, values in curves.items()} for r in range(count)]


# ------------------------------------------------------------------ the geometric family
def geometric_steps(target: Sparsity, rate: float = 0.2, start: Sparsity = 0.0) -> list[Any]:
    """The total sparsity after each round when every round prunes ``rate`` of what is still alive:
    ``s_r = 1 - (1 - s_0)(1 - rate)^r``, the last round clipped to ``target`` (no rounds if
    ``target <= start``). A mapping target gives one mapping per round (each layer on its own curve).

    >>> geometric_steps({"layers.0.W": 0.5, "layers.1.W": 0.2}, rate=0.3)
    [{'layers.0.W': 0.3, 'layers.1.W': 0.2}, {'layers.0.W': 0.5, 'layers.1.W': 0.2}]
    """
    check_number("rate", rate, 0, 1, low_open=True, high_open=True,
                 meaning="the fraction of survivors pruned per round")
    if isinstance(target, Mapping):
        return _each_layer(target, start, lambda s, s0: geometric_steps(s, rate, s0))
    if isinstance(start, Mapping):
        raise ValueError("start may be a mapping only when the target is one")
    target, start = check_sparsity(target), check_sparsity(start, "start")
    if target <= start:
        return []
    rounds = math.ceil(math.log((1 - target) / (1 - start)) / math.log(1 - rate) - 1e-12)
    values = [1 - (1 - start) * (1 - rate) ** r for r in range(1, rounds + 1)]
    return [min(v, target) for v in values[:-1]] + [target]




# ------------------------------------------------------------------ the polynomial family
def polynomial_steps(target: Sparsity, steps: int, power: float = 3, initial: Sparsity = 0.0) -> list[Any]:
    """The polynomial curve at ``steps`` equal steps: ``s_r = s_i + (s_f - s_i)(1 - (1 - r/k)^p)``,
    r = 1..k (the last is ``target``): big steps first, small ones last for p > 1. A mapping target
    gives one mapping per step.

    >>> polynomial_steps({"layers.0.W": 0.8}, 2, power=1)
    [{'layers.0.W': 0.4}, {'layers.0.W': 0.8}]
    """
    check_int("steps", steps, 1)
    power = _check_power(power)
    if isinstance(target, Mapping):
        return _each_layer(target, initial, lambda s, s0: polynomial_steps(s, steps, power, s0))
    if isinstance(initial, Mapping):
        raise ValueError("initial may be a mapping only when the target is one")
    target, initial = check_sparsity(target), check_sparsity(initial, "initial")
    if initial > target:
        raise ValueError(f"initial ({initial}) must not exceed the target ({target}): masks only lose "
                         f"entries")
    return [initial + (target - initial) * (1 - (1 - r / steps) ** power) for r in range(1, steps + 1)]


def polynomial_sparsity(step: int, final_sparsity: float, begin_step: int, end_step: int,
                        initial_sparsity: float = 0.0, power: float = 3) -> float:
    """``s_t = s_f + (s_i - s_f)(1 - (t - t_0)/(t_end - t_0))^p``, flat outside ``[t_0, t_end]``
    (``s_i`` before, ``s_f`` after); p = 3 is Zhu & Gupta's cubic."""
    if end_step <= begin_step:
        return final_sparsity if step >= begin_step else initial_sparsity
    progress = min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** power


class PolynomialPruning:
    """A ``fit`` callback: gradual pruning on the polynomial schedule (``power=3``: Zhu & Gupta's cubic).

    At ``on_step_end`` with ``begin_step <= step <= end_step`` and ``(step - begin_step) % every == 0``
    (and once more at ``end_step``) it prunes to ``sparsity_at(step)`` by ``prune.prune`` with
    ``prune_options`` (``criterion="magnitude"``, ``scope``, ``structure``, calibration ``data``, ``seed``,
    ...). ``final_sparsity`` may be a mapping ``{"layers.l.W": s_l}`` (then ``initial_sparsity`` a number
    or a mapping too): each layer follows the curve to its own target. The optimizer zeroes its state
    under the new masks at its next step. ``history`` lists ``(step, sparsity)`` of every pruning.

    >>> from tinyprune.core.nn import MLP
    >>> model, callback = MLP([8, 8, 2], seed=0), PolynomialPruning(0.5, begin_step=0, end_step=4, every=2)
    >>> for step in range(1, 6):
    ...     callback.on_step_end(model, None, 0, step)
    >>> [(t, round(s, 3)) for t, s in callback.history]
    [(2, 0.438), (4, 0.5)]
    """

    def __init__(self, final_sparsity: Sparsity, begin_step: int, end_step: int, every: int = 100,
                 initial_sparsity: Sparsity = 0.0, power: float = 3, **prune_options: Any) -> None:
        if isinstance(final_sparsity, Mapping):
            first = (_each_layer(final_sparsity, initial_sparsity, lambda s, s0: [s0]) or [{}])[0]
            self.final_sparsity: Sparsity = _layer_values(final_sparsity, "final_sparsity")
            self.initial_sparsity: Sparsity = first
            bad = [name for name in first if first[name] > self.final_sparsity[name]]
        else:
            if isinstance(initial_sparsity, Mapping):
                raise ValueError("initial_sparsity may be a mapping only when final_sparsity is one")
            self.final_sparsity = check_sparsity(final_sparsity, "final_sparsity")
            self.initial_sparsity = check_sparsity(initial_sparsity, "initial_sparsity")
            bad = ["every layer"] if self.initial_sparsity > self.final_sparsity else []
        if bad:
            raise ValueError(f"initial_sparsity ({initial_sparsity}) must not exceed final_sparsity "
                             f"({final_sparsity}) in {bad}: masks only lose entries")
        for label, value in (("begin_step", begin_step), ("end_step", end_step)):
            check_int(label, value, 0)
        if end_step < begin_step:
            raise ValueError(f"end_step ({end_step}) must be >= begin_step ({begin_step})")
        check_int("every", every, 1)
        self.power = _check_power(power)
        self.begin_step, self.end_step, self.every = begin_step, end_step, every
        self.prune_options = prune_options
        self.history: list[tuple[int, Sparsity]] = []

    def sparsity_at(self, step: int) -> Sparsity:
        """The target total sparsity at ``step`` (a mapping when ``final_sparsity`` is one)."""
        if isinstance(self.final_sparsity, Mapping):
            return {name: polynomial_sparsity(step, final, self.begin_step, self.end_step,
                                              self.initial_sparsity[name], self.power)
                    for name, final in self.final_sparsity.items()}
        return polynomial_sparsity(step, self.final_sparsity, self.begin_step, self.end_step,
                                   self.initial_sparsity, self.power)

    def prunes_at(self, step: int) -> bool:
        """Whether optimizer step ``step`` prunes: every ``every`` steps from ``begin_step``, and the last."""
        inside = self.begin_step <= step <= self.end_step
        return inside and ((step - self.begin_step) % self.every == 0 or step == self.end_step)

    def prune_model(self, model: MLP, sparsity: Sparsity) -> None:
        """One pruning step to ``sparsity`` (a subclass may choose the masks another way)."""
        prune(model, sparsity, **self.prune_options)

    def on_step_end(self, model: MLP, optimizer: Any, epoch: int, step: int) -> None:
        if not self.prunes_at(step):
            return
        sparsity = self.sparsity_at(step)
        self.prune_model(model, sparsity)
        self.history.append((step, sparsity))


class IterativePruning:
    """A ``fit`` callback: at the end of every ``every_epochs``-th epoch prune ``rate`` of the survivors
    (``geometric_steps``), until ``target`` is reached; the epochs in between are the recovery (Han et
    al. 2015's loop inside one ``fit``). ``target`` may be a mapping (each layer on its own curve).
    ``history`` lists ``(epoch, sparsity)``.
    """

    def __init__(self, target: Sparsity, rate: float = 0.2, every_epochs: int = 1,
                 **prune_options: Any) -> None:
        self.sparsities = geometric_steps(target, rate)
        check_int("every_epochs", every_epochs, 1)
        self.every_epochs = every_epochs
        self.prune_options = prune_options
        self.history: list[tuple[int, Sparsity]] = []

    def on_epoch_end(self, model: MLP, optimizer: Any, epoch: int, logs: Any = None) -> None:
        done = len(self.history)
        if done < len(self.sparsities) and epoch % self.every_epochs == 0:
            prune(model, self.sparsities[done], **self.prune_options)
            self.history.append((epoch, self.sparsities[done]))
