"""Movement pruning's scores, accumulated while the model trains (Sanh, Wolf & Rush 2020).

    S_T = -Σ_{t < T} g_t ⊙ W_t          g_t = ∂L/∂W on step t's batch, W_t the weights it was taken at

A weight scores high when training pushes it away from 0 (``g`` and ``W`` of opposite signs: the
step ``-lr · g`` grows ``|W|``) and low when training shrinks it: pruning the lowest scores removes
what fine-tuning is already moving towards 0, not what happens to be small now. ``MovementScore`` is a
``train.Callback`` that keeps that sum during any ``fit``; ``accumulate`` runs a short fine-tuning of a
copy only to collect it (what ``criteria.movement`` does when it is given no scores).

>>> import numpy as np
>>> from tinyprune.data import Dataset
>>> from tinyprune.core.nn import MLP
>>> from tinyprune.training import fit
>>> X = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
>>> model, score = MLP([4, 3, 2], seed=0), MovementScore()
>>> _ = fit(model, Dataset(X, (X[:, 0] > 0).astype(int)), epochs=2, batch_size=8, progress=False,
...         callbacks=[score])
>>> score.steps, sorted(score.scores)[:2], score.scores["layers.0.W"].shape
(8, ['layers.0.W', 'layers.0.b'], (4, 3))
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from tinyprune.core.batches import Dataset
from tinyprune.core.nn import MLP, Module
from tinyprune.core.random import Seed
from tinyprune.errors import ShapeError
from tinyprune.fast.optim import Adam, Optimizer
from tinyprune.training import Callback, fit


class MovementScore(Callback):
    """``S <- S - g ⊙ W_before`` after every optimizer step, for every parameter that had a gradient.

    ``W_before`` is a copy of the weights taken when training begins and after each step, i.e. the
    weights at which the step's gradient ``g`` (``parameter.grad``) was computed. The sums keep growing
    over several ``fit`` calls with the same callback (``steps`` counts them); ``scores`` maps each
    parameter name to its float64 sum. If another callback changes the weights after a step (gradual
    pruning), list this one after it, so that ``W_before`` is what the next gradient sees.
    """

    def __init__(self) -> None:
        self.scores: dict[str, np.ndarray] = {}
        self.steps = 0
        self._before: dict[str, np.ndarray] = {}

    def on_train_begin(self, model: Module, optimizer: Optimizer) -> None:
        for name, parameter in model.named_parameters():
            self.scores.setdefault(name, np.zeros(parameter.shape, dtype=np.float64))
            self._before[name] = parameter.data.astype(np.float64)

    def on_step_end(self, model: Module, optimizer: Optimizer, epoch: int, step: int) -> None:
        for name, parameter in model.named_parameters():
            if parameter.grad is not None:
                self.scores[name] -= parameter.grad * self._before[name]
            self._before[name][...] = parameter.data
        self.steps += 1


def accumulate(model: MLP, X: np.ndarray, y: np.ndarray, *, epochs: int = 1, lr: float = 1e-3,
               batch_size: int = 128, loss: str = "cross_entropy", seed: Seed = 0) -> dict[str, np.ndarray]:
    """Movement scores of a short fine-tuning: ``fit`` a deep copy of ``model`` on ``(X, y)`` for ``epochs``
    epochs (Adam, ``lr``, batches of ``batch_size`` shuffled by ``seed``; masks respected) under a
    ``MovementScore``, and return its sums. ``model`` itself is not changed.

    Shapes: X (n, d_0), y (n,) integer labels -> ``{param_name: score of the parameter's shape}``.
    """
    trainee = copy.deepcopy(model)
    score = MovementScore()
    fit(trainee, Dataset(X, y, num_classes=model.sizes[-1]), epochs=epochs, batch_size=batch_size,
        optimizer=Adam(trainee.parameters(), lr=lr), loss=loss, seed=seed, progress=False, callbacks=[score])
    return score.scores


def checked_scores(model: MLP, scores: MovementScore | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Accumulated scores (a ``MovementScore`` or its ``.scores``) as float64 copies, checked against
    ``model``: one per parameter, of its shape, at least one step accumulated."""
    if isinstance(scores, MovementScore):
        if scores.steps == 0:
            raise ValueError("the MovementScore has accumulated no step yet: pass it to fit(callbacks=[...]) "
                             "first, or give data and no scores to run a short accumulation")
        scores = scores.scores
    if not isinstance(scores, Mapping):
        raise ValueError(f"scores must be a MovementScore or a dict of arrays by parameter name, got "
                         f"{type(scores).__name__}")
    out = {}
    for name, parameter in model.named_parameters():
        if name not in scores:
            raise ValueError(f"the movement scores have no entry for {name!r}; they hold {sorted(scores)}")
        value = np.asarray(scores[name], dtype=np.float64)
        if value.shape != parameter.shape:
            raise ShapeError(f"movement score of {name} has shape {value.shape}, but the parameter has "
                             f"shape {parameter.shape}")
        out[name] = value.copy()
    return out


__all__ = ["MovementScore", "accumulate", "checked_scores"]
