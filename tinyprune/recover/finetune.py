"""Fine-tuning a pruned network: masked training from its trained weights, and learning-rate rewinding.

The document's first recovery (its sections 2.3 and 2.4): keep the pruned weights at 0 (the optimizers
are mask-aware) and train the survivors again, ``w <- w - α ∂L/∂w`` on the labels. Two choices matter:

- **Fine-tuning** (Han et al. 2015) continues at a *small* learning rate: by default 1/10 of the
  original (``lr = lr_fraction · original_lr``), constant, stopping early once the validation accuracy is
  within ``tolerance`` of a target.
- **Learning-rate rewinding** (Renda, Frankle & Carbin 2020) retrains with the *original* learning rate
  and schedule, replaying its last ``epochs`` epochs; with the document's constant Adam(1e-3) that is
  fine-tuning at 1e-3. Renda et al. found it recovers more than fine-tuning at a small rate.

Derived and compared in ``notebooks/07_finetuning.ipynb``.

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
from collections.abc import Callable, Sequence
from typing import Any

from tinyprune.core.nn import MLP
from tinyprune.fast.optim import SGD, Adam, Optimizer, cosine
from tinyprune.training import History, evaluate, fit

#: Learning-rate schedules by name (``experiment.PRUNE_SCHEDULES`` says when the mask changes).
LR_SCHEDULES = ("constant", "cosine")
#: How a recovery's own learning rate follows the density left (``density_scaled_lr``).
LR_SCALINGS = ("none", "sqrt-density")
SCHEDULES = LR_SCHEDULES          # the 0.1 name, kept for one release
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


def density_scaled_lr(lr: float, sparsity: float, scaling: str = "sqrt-density",
                      reference: float = 0.9) -> float:
    """A recovery rate grown as the network thins: ``lr · max(1, sqrt((1 - reference) / (1 - sparsity)))``.

    Why: when a neuron's k surviving inputs each take an Adam step of size about ``lr`` with unrelated
    signs, its pre-activation moves by about ``lr · sqrt(k) · |x|``; k shrinks with the density ``1 - s``, so
    keeping that movement asks for ``lr ∝ 1 / sqrt(1 - s)``. The rates were chosen at ``reference``
    sparsity; up to it the rate is kept. Chosen on held-out rows by ``benchmarks/bench_target.py`` (round
    three: 1e-2 at 90 %, 1.4e-2 at 95 %, 2.2e-2 at 98 %). ``scaling="none"`` returns ``lr``.

    >>> round(density_scaled_lr(1e-2, 0.98), 5), round(density_scaled_lr(1e-2, 0.95), 5)
    (0.02236, 0.01414)
    >>> density_scaled_lr(1e-2, 0.5), density_scaled_lr(1e-2, 0.98, scaling="none")
    (0.01, 0.01)
    """
    if scaling not in LR_SCALINGS:
        raise ValueError(f"scaling: expected one of {', '.join(LR_SCALINGS)}, got {scaling!r}")
    for name, value in (("sparsity", sparsity), ("reference", reference)):
        if not 0 <= value < 1:
            raise ValueError(f"{name}: expected a fraction in [0, 1), got {value!r}")
    if scaling == "none":
        return lr
    return lr * max(1.0, math.sqrt((1 - reference) / (1 - sparsity)))


def _steps_per_epoch(train: Any, batch_size: int) -> int:
    return math.ceil(len(train.X if hasattr(train, "X") else train[0]) / batch_size)


def train_until(model: MLP, train: Any, *, epochs: int, optimizer: Optimizer, batch_size: int = 128,
                target_accuracy: float | None = None, tolerance: float = 0.005, val: Any = None,
                seed: int = 0, progress: Any = False, callbacks: Sequence[Any] = (),
                loss: str = "cross_entropy", initial_epoch: int = 0) -> History:
    """``fit`` for up to ``epochs`` epochs, stopping after the first epoch whose accuracy is within tolerance.

    Stops once ``accuracy >= target_accuracy - tolerance`` (on ``val``, or on ``train`` without it). Without a
    target it is one call of ``fit``. Epoch numbers continue from ``initial_epoch``, so the shuffling and the
    global step count (what gradual-pruning callbacks read) are those of one uninterrupted run.
    """
    if target_accuracy is None:
        return fit(model, train, epochs=epochs, batch_size=batch_size, optimizer=optimizer, val=val,
                   seed=seed, progress=progress, callbacks=callbacks, loss=loss, initial_epoch=initial_epoch)
    history = History()
    for epoch in range(initial_epoch, initial_epoch + epochs):
        history = history + fit(model, train, epochs=1, batch_size=batch_size, optimizer=optimizer, val=val,
                                seed=seed, progress=progress, callbacks=callbacks, loss=loss,
                                initial_epoch=epoch)
        accuracy = history.last["val_accuracy"] if val is not None else evaluate(model, train)["accuracy"]
        if accuracy >= target_accuracy - tolerance:
            break
    return history


def finetune(model: MLP, train: Any, *, epochs: int = 3, optimizer: str | Optimizer = "adam",
             lr: float | None = None, original_lr: float = 1e-3, lr_fraction: float = 0.1,
             schedule: Schedule = "constant", momentum: float = 0.9, batch_size: int = 128,
             target_accuracy: float | None = None, tolerance: float = 0.005, val: Any = None, seed: int = 0,
             progress: Any = False, callbacks: Sequence[Any] = (), loss: str = "cross_entropy",
             initial_epoch: int = 0) -> History:
    """Train the surviving weights of a pruned ``model`` from where they are; masks stay as they are.

    ``lr`` defaults to ``lr_fraction · original_lr`` (1/10 of the original, Han et al. 2015);
    ``schedule`` is ``"constant"``, ``"cosine"`` (to 0 over ``epochs``) or a callable ``step -> lr``.
    With ``target_accuracy`` it stops after the first epoch with accuracy ``>= target - tolerance``
    (on ``val`` if given, else on ``train``). ``callbacks`` are ``fit``'s (e.g. gradual pruning).

    Shapes: ``train.X`` (n, d_0), ``train.y`` (n,) -> ``train.History`` (one record per epoch run).
    Example: the module's docstring.
    """
    lr = lr_fraction * original_lr if lr is None else lr
    opt = build_optimizer(model, optimizer, lr=lr, momentum=momentum, schedule=schedule,
                          total_steps=epochs * _steps_per_epoch(train, batch_size))
    return train_until(model, train, epochs=epochs, optimizer=opt, batch_size=batch_size,
                       target_accuracy=target_accuracy, tolerance=tolerance, val=val, seed=seed,
                       progress=progress, callbacks=callbacks, loss=loss, initial_epoch=initial_epoch)


def lr_rewind(model: MLP, train: Any, *, epochs: int = 3, optimizer: str | Optimizer = "adam",
              original_lr: float = 1e-3, original_schedule: Callable[[int], float] | None = None,
              original_epochs: int | None = None, momentum: float = 0.9, batch_size: int = 128,
              target_accuracy: float | None = None, tolerance: float = 0.005, val: Any = None, seed: int = 0,
              progress: Any = False, callbacks: Sequence[Any] = (), loss: str = "cross_entropy") -> History:
    """Learning-rate rewinding (Renda et al. 2020): retrain with the original schedule's last epochs.

    With ``original_schedule`` (a callable ``step -> lr`` of the dense training, which ran
    ``original_epochs`` epochs), step t of the retraining uses ``original_schedule(t0 + t)`` with
    ``t0 = (original_epochs - epochs) · steps_per_epoch``. Without one, the original rate was constant and
    the retraining runs at ``original_lr`` (the document's Adam at 1e-3). Masks stay as they are.

    Shapes and return value as ``finetune``.
    """
    steps = _steps_per_epoch(train, batch_size)
    schedule: Schedule = "constant"
    if original_schedule is not None:
        if original_epochs is None:
            raise ValueError("original_schedule needs original_epochs "
                             "(how many epochs the dense training ran)")
        offset = max(original_epochs - epochs, 0) * steps
        schedule = _Shifted(original_schedule, offset)
    return finetune(model, train, epochs=epochs, optimizer=optimizer, lr=original_lr, schedule=schedule,
                    momentum=momentum, batch_size=batch_size, target_accuracy=target_accuracy,
                    tolerance=tolerance, val=val, seed=seed, progress=progress, callbacks=callbacks,
                    loss=loss)


class _Shifted:
    """``step -> schedule(offset + step)``: the original schedule, replayed from step ``offset``."""

    def __init__(self, schedule: Callable[[int], float], offset: int) -> None:
        self.schedule, self.offset = schedule, offset

    def __call__(self, step: int) -> float:
        return float(self.schedule(self.offset + step))


__all__ = ["LR_SCALINGS", "LR_SCHEDULES", "SCHEDULES", "build_optimizer", "density_scaled_lr",
           "finetune", "lr_rewind", "resolve_schedule",
           "train_until"]
