"""Retraining a pruned network: from scratch under its mask, or from rewound weights (the lottery ticket).

The document's "retraining" (its section 2.3) throws the trained values away and keeps only the mask:

- **from scratch**: the surviving weights get a fresh initialisation (Glorot-uniform, as a new ``MLP``
  would), biases 0, then train at the original learning rate. Liu et al. 2019 ("Rethinking the value of
  network pruning") found that for some networks this matches fine-tuning given enough epochs.
- **weight rewinding**: the surviving weights go back to their values at initialisation (Frankle & Carbin
  2019, the lottery ticket) or after an early epoch or step (Frankle et al. 2020, "rewinding"), then
  train with the original schedule. ``train.WeightSnapshot`` records those weights during dense training.

``W <- W_0 ⊙ M`` in both cases; masks are kept exactly. The training is ``finetune`` at the original rate
(the document's Adam 1e-3); the experiment's ``retrain`` and ``rewind`` recoveries reset the weights by the
same two functions (``reinitialize``, ``rewind_weights``). Derived in ``notebooks/07_finetuning.ipynb``.

>>> import numpy as np
>>> from tinyprune.core.nn import MLP
>>> model = MLP([4, 3, 2], seed=0)
>>> W = model.layers[0].W; W.mask = np.eye(4, 3, dtype=bool); W.data *= W.mask
>>> reinitialize(model, seed=1)
>>> bool(np.all(W.data[~W.mask] == 0)) and bool(np.all(W.data[W.mask] != 0))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyprune.core.nn import MLP
from tinyprune.core.random import Seed
from tinyprune.fast.optim import Optimizer
from tinyprune.prune import masks
from tinyprune.recover.finetune import finetune
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


def retrain(model: MLP, train: Any, *, epochs: int = 3, lr: float = 1e-3, optimizer: str | Optimizer = "adam",
            batch_size: int = 128, val: Any = None, seed: int = 0, progress: Any = False) -> History:
    """Retrain from scratch under the mask: ``reinitialize`` (seed ``seed + 1``), then ``finetune`` at the
    original rate ``lr``. Keywords as ``finetune``'s; shapes: ``train.X`` (n, d_0) -> ``train.History``.

    For other initial weights: ``reinitialize(model, seed)``, then ``finetune(model, train, lr=1e-3)``.
    """
    reinitialize(model, seed + 1)
    return finetune(model, train, epochs=epochs, lr=lr, optimizer=optimizer, batch_size=batch_size, val=val,
                    seed=seed, progress=progress)


def rewind(model: MLP, train: Any, weights: dict[str, np.ndarray] | WeightSnapshot, *, epochs: int = 3,
           lr: float = 1e-3, optimizer: str | Optimizer = "adam", batch_size: int = 128, val: Any = None,
           seed: int = 0, progress: Any = False) -> History:
    """Weight rewinding: ``W <- W_rewind ⊙ M`` (``rewind_weights``), then ``finetune`` at the original rate.

    ``weights``: the dense model's early weights, a state dict such as ``snapshot.at_epoch(1)`` of the
    ``train.WeightSnapshot`` passed to the dense ``fit`` (or the snapshot itself: its epoch 0, the
    initialisation, as the lottery ticket). Keywords as ``finetune``'s; shapes: ``train.X`` (n, d_0) ->
    ``train.History``.
    """
    rewind_weights(model, weights)
    return finetune(model, train, epochs=epochs, lr=lr, optimizer=optimizer, batch_size=batch_size, val=val,
                    seed=seed, progress=progress)


__all__ = ["reinitialize", "retrain", "rewind", "rewind_weights"]
