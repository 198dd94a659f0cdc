"""Fine-tuning a pruned network: masked training of the survivors from their trained weights.

The document's first recovery (its sections 2.3 and 2.4): keep the pruned weights at 0 (the optimizers
are mask-aware) and train the survivors again, ``w <- w - α ∂L/∂w`` on the labels. The learning rate is
the choice that matters:

- **Fine-tuning** (Han et al. 2015) continues at a *small* rate: ``finetune``'s default ``lr`` is 1e-4,
  a tenth of the document's Adam rate 1e-3.
- **Learning-rate rewinding** (Renda, Frankle & Carbin 2020) retrains at the *original* rate and
  schedule, replaying its last ``epochs`` epochs; with the document's constant Adam(1e-3) that is
  ``lr_rewind``, fine-tuning at 1e-3. To replay a decaying schedule ``original`` (a callable
  ``step -> lr`` of a dense training of T steps), pass an optimizer that starts where it ended:
  ``Adam(model.parameters(), schedule=lambda t: original(T - steps + t))``.

``finetune`` is the one training step of every recovery: ``lr_rewind``, ``retrain``, ``rewind`` and
``distill`` call it, and so do the experiment's training recoveries (``experiment.recoveries``, through
``Run.train_epochs``). When to stop ("recovered?") is the loop's question, not the verb's:
``tp.prune_and_recover`` with a ``Recipe``. Derived and compared in ``notebooks/07_finetuning.ipynb``.

>>> import numpy as np
>>> from tinyprune.core.nn import MLP
>>> from tinyprune.data import Dataset
>>> X = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
>>> train = Dataset(X, (X[:, 0] + X[:, 1] > 0).astype(np.int64))
>>> model = MLP([6, 16, 2], seed=0)
>>> W = model.layers[0].W; W.mask = np.arange(W.data.size).reshape(W.shape) % 2 == 0; W.data *= W.mask
>>> history = finetune(model, train, epochs=5, lr=1e-2)
>>> bool(np.all(W.data[~W.mask] == 0)), len(history)
(True, 5)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tinyprune.core.nn import MLP
from tinyprune.fast.optim import SGD, Adam, Optimizer, cosine
from tinyprune.training import History, fit

#: Learning-rate schedules by name (``experiment.PRUNE_SCHEDULES`` says when the mask changes).
LR_SCHEDULES = ("constant", "cosine")
#: How a recovery's own learning rate follows the density left: not at all, one factor for the whole
#: network by its sparsity (``density_scaled_lr``), or one per layer by the layer's sparsity
#: (``layer_density_scales``).
LR_SCALINGS = ("none", "sqrt-density", "sqrt-density-per-layer")
Schedule = str | Callable[[int], float] | None


def resolve_schedule(schedule: Schedule, lr: float, total_steps: int) -> Callable[[int], float] | None:
    """``"constant"``/``None``: no schedule; ``"cosine"``: ``lr · (1 + cos(π t / T)) / 2`` over ``T`` steps.

    A callable ``step -> lr`` is used as it is.

    >>> resolve_schedule("cosine", 1.0, 10)(5)
    0.5
    """
    if schedule is None or schedule == "constant":
        return None
    if schedule == "cosine":
        return cosine(lr, max(int(total_steps), 1))
    if callable(schedule):
        return schedule
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; "
                     f"expected one of {LR_SCHEDULES} or a callable")


def build_optimizer(model: MLP, optimizer: str | Optimizer = "adam", *, lr: float = 1e-3,
                    momentum: float = 0.9, schedule: Schedule = None, total_steps: int = 1,
                    weight_decay: float = 0.0) -> Optimizer:
    """The optimizer of a recovery: ``"adam"`` or ``"sgd"`` (with ``momentum``) on ``model.parameters()``.

    An ``Optimizer`` instance is returned as it is (its state carries over between calls).

    >>> type(build_optimizer(MLP([2, 2]), "sgd", lr=0.1)).__name__
    'SGD'
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    plan = resolve_schedule(schedule, lr, total_steps)
    if optimizer == "adam":
        return Adam(model.parameters(), lr=lr, weight_decay=weight_decay, schedule=plan)
    if optimizer == "sgd":
        return SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=momentum > 0,
                   weight_decay=weight_decay, schedule=plan)
    raise ValueError(f"unknown optimizer {optimizer!r}; expected 'adam', 'sgd' or an Optimizer")


def density_factor(sparsity: float, reference: float = 0.9) -> float:
    """``max(1, sqrt((1 - reference) / (1 - sparsity)))``: how much faster to move weights that are this
    sparse (``density_scaled_lr`` says why); a fully pruned matrix (sparsity 1) has nothing to move: 1.

    >>> density_factor(0.5), round(density_factor(0.95), 4), round(density_factor(0.98), 4)
    (1.0, 1.4142, 2.2361)
    """
    for name, value in (("sparsity", sparsity), ("reference", reference)):
        if not 0 <= value <= 1 or (name == "reference" and value == 1):
            raise ValueError(f"{name}: expected a fraction in [0, 1{']' if name == 'sparsity' else ')'}, "
                             f"got {value!r}")
    return 1.0 if sparsity == 1 else max(1.0, math.sqrt((1 - reference) / (1 - sparsity)))


def layer_density_scales(model: MLP, reference: float = 0.9) -> list[float]:
    """One rate factor per parameter of ``model.parameters()`` (an optimizer's ``lr_scales``): layer l's
    weights and bias move at ``density_factor(s_l)``, s_l the fraction of ``W_l``'s mask that is ``False``
    (0 without a mask). The reason of ``density_scaled_lr``, applied where it holds: a unit's inputs are
    the surviving weights of *its* layer, and a global ranking leaves the layers at different sparsities.

    >>> model = MLP([4, 5, 2], seed=0)
    >>> model.layers[0].W.mask = np.arange(20).reshape(4, 5) < 1           # 19 of 20 pruned: s = 0.95
    >>> [round(k, 4) for k in layer_density_scales(model)]
    [1.4142, 1.4142, 1.0, 1.0]
    """
    scales = []
    for layer in model.layers:
        mask = layer.W.mask
        pruned = 0.0 if mask is None else 1.0 - np.count_nonzero(mask) / mask.size
        scales += [density_factor(pruned, reference)] * 2                # W_l and b_l
    return scales


class LayerDensityRates:
    """A ``fit`` callback: the optimizer's ``lr_scales`` follow ``layer_density_scales`` of the model, set
    before the first step and again after any step that changed a mask (gradual pruning steps, which run
    before this callback in the list), so each layer's rate tracks its current density."""

    def __init__(self, reference: float = 0.9) -> None:
        self.reference = reference

    def on_train_begin(self, model: MLP, optimizer: Optimizer) -> None:
        self.follow(model, optimizer)

    def on_step_end(self, model: MLP, optimizer: Optimizer, epoch: int, step: int) -> None:
        self.follow(model, optimizer)

    def follow(self, model: MLP, optimizer: Optimizer) -> None:
        """Set ``optimizer.lr_scales`` from the masks, if they changed (a count per layer: cheap per step)."""
        scales = layer_density_scales(model, self.reference)
        if scales != optimizer.lr_scales:
            optimizer.lr_scales = scales


def density_scaled_lr(lr: float, sparsity: float, scaling: str = "sqrt-density",
                      reference: float = 0.9) -> float:
    """A recovery rate grown as the network thins: ``lr · max(1, sqrt((1 - reference) / (1 - sparsity)))``.

    Why: when a neuron's k surviving inputs each take an Adam step of size about ``lr`` with unrelated
    signs, its pre-activation moves by about ``lr · sqrt(k) · |x|``; k shrinks with the density ``1 - s``, so
    keeping that movement asks for ``lr ∝ 1 / sqrt(1 - s)``. The rates were chosen at ``reference``
    sparsity; up to it the rate is kept. Chosen on held-out rows by ``benchmarks/bench_target.py`` (round
    three: 1e-2 at 90 %, 1.4e-2 at 95 %, 2.2e-2 at 98 %). ``scaling="none"`` returns ``lr``, and so does
    ``"sqrt-density-per-layer"``: its factors are per layer, in the optimizer (``LayerDensityRates``).

    >>> round(density_scaled_lr(1e-2, 0.98), 5), round(density_scaled_lr(1e-2, 0.95), 5)
    (0.02236, 0.01414)
    >>> density_scaled_lr(1e-2, 0.5), density_scaled_lr(1e-2, 0.98, scaling="none")
    (0.01, 0.01)
    """
    if scaling not in LR_SCALINGS:
        raise ValueError(f"scaling: expected one of {', '.join(LR_SCALINGS)}, got {scaling!r}")
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity: expected a fraction in [0, 1), got {sparsity!r}")
    factor = density_factor(sparsity, reference)
    return lr * factor if scaling == "sqrt-density" else lr


def finetune(model: MLP, train: Any, *, epochs: int = 3, lr: float = 1e-4,
             optimizer: str | Optimizer = "adam", batch_size: int = 128, val: Any = None, seed: int = 0,
             progress: Any = False, **fit_options: Any) -> History:
    """Train the surviving weights of a pruned ``model`` from where they are; the masks stay as they are.

    ``optimizer``: ``"adam"`` or ``"sgd"`` (momentum 0.9, Nesterov), new for this call, at the constant
    rate ``lr``; or an ``Optimizer``, which goes on with its own rate, schedule and state (``lr`` is then
    not used), e.g. ``build_optimizer(model, "adam", lr=1e-3, schedule="cosine", total_steps=T)``.
    ``val``, ``seed`` (the shuffling), ``progress`` and ``fit_options`` are ``fit``'s: the experiment's
    recoveries pass ``loss`` (a distillation), ``callbacks`` (gradual pruning, weight averaging) and
    ``initial_epoch`` (the epochs already done) through them.

    Shapes: ``train.X`` (n, d_0), ``train.y`` (n,) -> ``train.History`` (one record per epoch).
    Example: the module's docstring.
    """
    optimizer = build_optimizer(model, optimizer, lr=lr)
    return fit(model, train, epochs=epochs, batch_size=batch_size, optimizer=optimizer, val=val, seed=seed,
               progress=progress, **fit_options)


def lr_rewind(model: MLP, train: Any, *, epochs: int = 3, lr: float = 1e-3,
              optimizer: str | Optimizer = "adam", batch_size: int = 128, val: Any = None, seed: int = 0,
              progress: Any = False) -> History:
    """Learning-rate rewinding (Renda et al. 2020): ``finetune`` at the original rate (default 1e-3).

    A decaying original schedule is replayed by an ``optimizer`` built on it (the module's docstring).
    Shapes and return value as ``finetune``.
    """
    return finetune(model, train, epochs=epochs, lr=lr, optimizer=optimizer, batch_size=batch_size, val=val,
                    seed=seed, progress=progress)


__all__ = ["LR_SCALINGS", "LR_SCHEDULES", "LayerDensityRates", "build_optimizer", "density_factor",
           "density_scaled_lr", "finetune", "layer_density_scales", "lr_rewind", "resolve_schedule"]
