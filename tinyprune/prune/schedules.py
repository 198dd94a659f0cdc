"""When to prune: all at once, in rounds with recovery between them, or gradually during training.

- one-shot: ``prune`` once to the target.
- iterative: each round prunes a fraction ``p`` of the weights still alive (20 % in the lottery-ticket
  work, Frankle & Carbin 2019), so after r rounds ``s_r = 1 - (1 - p)^r``; recover between rounds.
- polynomial (Zhu & Gupta 2017, "To prune, or not to prune"): during training, every ``Δt`` steps from
  ``t_0`` to ``t_0 + n Δt``, prune to ``s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (n Δt))^3``: fast at
  first, while there are many redundant weights, slowly at the end.
Derived in ``notebooks/05_pruning_criteria.ipynb`` ("schedules").

>>> [round(s, 3) for s in iterative_sparsities(0.6, rate=0.2)]
[0.2, 0.36, 0.488, 0.59, 0.6]
>>> [round(polynomial_sparsity(t, 0.8, 0, 100), 3) for t in (0, 50, 100, 200)]
[0.0, 0.7, 0.8, 0.8]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tinyprune.nn import MLP
from tinyprune.prune.core import Masks, check_sparsity, prune


def one_shot(model: MLP, sparsity: float, **prune_options: Any) -> Masks:
    """Prune once to ``sparsity``: ``prune(model, sparsity, **prune_options)``."""
    return prune(model, sparsity, **prune_options)


def iterative_sparsities(target: float, rate: float = 0.2, start: float = 0.0) -> list[float]:
    """The total sparsity after each round when every round prunes ``rate`` of what is still alive:
    ``s_r = 1 - (1 - s_0)(1 - rate)^r``, the last round clipped to ``target``.
    """
    target, start = check_sparsity(target), check_sparsity(start)
    if isinstance(rate, bool) or not 0.0 < float(rate) < 1.0:
        raise ValueError(f"rate must lie in (0, 1) (the fraction of survivors pruned per round), "
                         f"got {rate!r}")
    if target <= start:
        return []
    rounds = math.ceil(math.log((1 - target) / (1 - start)) / math.log(1 - rate) - 1e-12)
    values = [1 - (1 - start) * (1 - rate) ** r for r in range(1, rounds + 1)]
    return [min(v, target) for v in values[:-1]] + [target]


def iterative(model: MLP, target: float, recover: Callable[[MLP, int], Any] | None = None,
              rate: float = 0.2, **prune_options: Any) -> list[dict[str, Any]]:
    """Prune in rounds to ``target``, calling ``recover(model, round)`` after each (e.g. a short ``fit``).

    Returns one record per round: ``{"round", "sparsity", "recover"}`` (what ``recover`` returned).
    Data-dependent criteria are re-scored every round on the current weights.
    """
    records = []
    for index, sparsity in enumerate(iterative_sparsities(target, rate), start=1):
        prune(model, sparsity, **prune_options)
        outcome = recover(model, index) if recover is not None else None
        records.append({"round": index, "sparsity": sparsity, "recover": outcome})
    return records


def polynomial_sparsity(step: int, final_sparsity: float, begin_step: int, end_step: int,
                        initial_sparsity: float = 0.0) -> float:
    """Zhu & Gupta's ``s_t = s_f + (s_i - s_f)(1 - (t - t_0)/(t_end - t_0))^3``, flat outside
    ``[t_0, t_end]`` (``s_i`` before, ``s_f`` after)."""
    if end_step <= begin_step:
        return final_sparsity if step >= begin_step else initial_sparsity
    progress = min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


class PolynomialPruning:
    """A ``fit`` callback: gradual pruning on Zhu & Gupta's cubic schedule.

    At ``on_step_end`` with ``begin_step <= step <= end_step`` and ``(step - begin_step) % every == 0``
    (and once more at ``end_step``) it prunes to ``polynomial_sparsity(step, ...)`` with the given
    ``criterion``, ``scope``, ``structure``, calibration ``data`` and options. The optimizer zeroes its
    state under the new masks at its next step. ``history`` lists ``(step, sparsity)`` of every pruning.

    >>> from tinyprune.nn import MLP
    >>> model, callback = MLP([8, 8, 2], seed=0), PolynomialPruning(0.5, begin_step=0, end_step=4, every=2)
    >>> for step in range(1, 6):
    ...     callback.on_step_end(model, None, 0, step)
    >>> [(t, round(s, 3)) for t, s in callback.history]
    [(2, 0.438), (4, 0.5)]
    """

    def __init__(self, final_sparsity: float, begin_step: int, end_step: int, every: int = 100,
                 initial_sparsity: float = 0.0, criterion: str = "magnitude", scope: str = "global",
                 structure: str = "weights", data: Any = None, seed: int = 0, **options: Any) -> None:
        self.final_sparsity = check_sparsity(final_sparsity)
        self.initial_sparsity = check_sparsity(initial_sparsity)
        if self.initial_sparsity > self.final_sparsity:
            raise ValueError(f"initial_sparsity ({initial_sparsity}) must not exceed final_sparsity "
                             f"({final_sparsity}): masks only lose entries")
        for label, value in (("begin_step", begin_step), ("end_step", end_step)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{label} must be an int >= 0, got {value!r}")
        if end_step < begin_step:
            raise ValueError(f"end_step ({end_step}) must be >= begin_step ({begin_step})")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int (prune every Δt steps), got {every!r}")
        self.begin_step, self.end_step, self.every = begin_step, end_step, every
        self.prune_options = dict(criterion=criterion, scope=scope, structure=structure, data=data,
                                  seed=seed, **options)
        self.history: list[tuple[int, float]] = []

    def sparsity_at(self, step: int) -> float:
        """The target total sparsity at ``step``."""
        return polynomial_sparsity(step, self.final_sparsity, self.begin_step, self.end_step,
                                   self.initial_sparsity)

    def on_step_end(self, model: MLP, optimizer: Any, epoch: int, step: int) -> None:
        if not self.begin_step <= step <= self.end_step:
            return
        if (step - self.begin_step) % self.every and step != self.end_step:
            return
        sparsity = self.sparsity_at(step)
        prune(model, sparsity, **self.prune_options)
        self.history.append((step, sparsity))


class IterativePruning:
    """A ``fit`` callback: at the end of every ``every_epochs``-th epoch prune ``rate`` of the survivors,
    until ``target`` is reached; the epochs in between are the recovery (Han et al. 2015's loop inside
    one ``fit``). ``history`` lists ``(epoch, sparsity)``.
    """

    def __init__(self, target: float, rate: float = 0.2, every_epochs: int = 1, **prune_options: Any) -> None:
        self.sparsities = iterative_sparsities(target, rate)
        if isinstance(every_epochs, bool) or not isinstance(every_epochs, int) or every_epochs < 1:
            raise ValueError(f"every_epochs must be a positive int, got {every_epochs!r}")
        self.every_epochs = every_epochs
        self.prune_options = prune_options
        self.history: list[tuple[int, float]] = []

    def on_epoch_end(self, model: MLP, optimizer: Any, epoch: int, logs: Any = None) -> None:
        done = len(self.history)
        if done < len(self.sparsities) and epoch % self.every_epochs == 0:
            prune(model, self.sparsities[done], **self.prune_options)
            self.history.append((epoch, self.sparsities[done]))
