"""Retraining a pruned network: from scratch under its mask, or from rewound weights (the lottery ticket).

The document's "retraining" (its section 2.3) throws the trained values away and keeps only the mask:

- **from scratch**: the surviving weights get a fresh initialisation (Glorot-uniform, as a new ``MLP``
  would), biases 0, then train at the original learning rate. Liu et al. 2019 ("Rethinking the value of
  network pruning") found that for some networks this matches fine-tuning given enough epochs.
- **weight rewinding**: the surviving weights go back to their values at initialisation (Frankle & Carbin
  2019, the lottery ticket) or after an early epoch or step (Frankle et al. 2020, "rewinding"), then
  train with the original schedule. ``train.WeightSnapshot`` records those weights during dense training.

``W <- W_0 ⊙ M`` in both cases; masks are kept exactly. Derived in ``notebooks/07_finetuning.ipynb``.

>>> import numpy as np
>>> from tinyprune.core.nn import MLP
>>> model = MLP([4, 3, 2], seed=0)
>>> W = model.layers[0].W; W.mask = np.eye(4, 3, dtype=bool); W.data *= W.mask
>>> reinitialize(model, seed=1)
>>> bool(np.all(W.data[~W.mask] == 0)) and bool(np.all(W.data[W.mask] != 0))
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinyprune.core.nn import MLP
from tinyprune.core.random import Seed
from tinyprune.fast.optim import Optimizer
from tinyprune.prune import masks
from tinyprune.recover.finetune import Schedule, _steps_per_epoch, build_optimizer, train_until
from tinyprune.training import History, WeightSnapshot


def reinitialize(model: MLP, seed: Seed = 0) -> None:
    """Give every weight a fresh Glorot-uniform value and every bias 0, then re-apply the masks (in place).

    The values are those of ``MLP(model.sizes, seed=seed)``; shapes and masks are unchanged.
    """
    fresh = MLP(model.sizes, activation=model.activation, seed=seed, dtype=model.dtype)
    model.load_state_dict(fresh.state_dict())
    masks.reapply(model)


def rewind_weights(model: MLP, snapshot: dict[str, np.ndarray] | WeightSnapshot, *,
                   epoch: int | None = None, step: int | None = None) -> None:
    """``W <- W_rewind ⊙ M``: load earlier weights (a state dict, or a ``WeightSnapshot`` at an epoch/step).

    With a ``WeightSnapshot``, ``step`` wins over ``epoch``; neither means epoch 0 (the initialisation).
    The masks are the model's own, never the snapshot's (a snapshot taken while pruning holds older ones).
    """
    if isinstance(snapshot, WeightSnapshot):
        state = (snapshot.at_step(step) if step is not None
                 else snapshot.at_epoch(0 if epoch is None else epoch))
    else:
        state = snapshot
    model.load_state_dict({k: v for k, v in state.items() if not k.endswith(".mask")})   # keep today's masks
    masks.reapply(model)


def _train(model: MLP, train: Any, epochs: int, optimizer: str | Optimizer, lr: float, schedule: Schedule,
           momentum: float, batch_size: int, target_accuracy: float | None, tolerance: float, val: Any,
           seed: int, progress: Any, callbacks: Sequence[Any]) -> History:
    opt = build_optimizer(model, optimizer, lr=lr, momentum=momentum, schedule=schedule,
                          total_steps=epochs * _steps_per_epoch(train, batch_size))
    return train_until(model, train, epochs=epochs, optimizer=opt, batch_size=batch_size,
                       target_accuracy=target_accuracy, tolerance=tolerance, val=val, seed=seed,
                       progress=progress, callbacks=callbacks)


def retrain(model: MLP, train: Any, *, epochs: int = 3, optimizer: str | Optimizer = "adam", lr: float = 1e-3,
            schedule: Schedule | Callable[[int], float] = "constant", momentum: float = 0.9,
            batch_size: int = 128, target_accuracy: float | None = None, tolerance: float = 0.005,
            val: Any = None, seed: int = 0, init_seed: Seed = None, progress: Any = False,
            callbacks: Sequence[Any] = ()) -> History:
    """Retrain from scratch under the mask: ``reinitialize`` (``init_seed``, default seed + 1), then train.

    Trains at the original learning rate ``lr`` (default Adam 1e-3, the document's). Early stopping as in
    ``finetune``. Shapes: ``train.X`` (n, d_0) -> ``train.History``.
    """
    reinitialize(model, seed + 1 if init_seed is None else init_seed)
    return _train(model, train, epochs, optimizer, lr, schedule, momentum, batch_size, target_accuracy,
                  tolerance, val, seed, progress, callbacks)


def rewind(model: MLP, train: Any, snapshot: dict[str, np.ndarray] | WeightSnapshot, *,
           epoch: int | None = None, step: int | None = None, epochs: int = 3,
           optimizer: str | Optimizer = "adam", lr: float = 1e-3,
           schedule: Schedule | Callable[[int], float] = "constant", momentum: float = 0.9,
           batch_size: int = 128, target_accuracy: float | None = None, tolerance: float = 0.005,
           val: Any = None, seed: int = 0, progress: Any = False, callbacks: Sequence[Any] = ()) -> History:
    """Weight rewinding: ``W <- W_rewind ⊙ M`` (``rewind_weights``), then train at the original rate ``lr``.

    ``snapshot`` holds the dense model's weights at initialisation or an early epoch (``train.WeightSnapshot``
    passed to the dense ``fit``). Shapes: ``train.X`` (n, d_0) -> ``train.History``.
    """
    rewind_weights(model, snapshot, epoch=epoch, step=step)
    return _train(model, train, epochs, optimizer, lr, schedule, momentum, batch_size, target_accuracy,
                  tolerance, val, seed, progress, callbacks)


__all__ = ["reinitialize", "retrain", "rewind", "rewind_weights"]
