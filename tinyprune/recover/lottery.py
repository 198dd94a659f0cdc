"""The lottery ticket, as OpenLTH runs it: iterative magnitude pruning with rewinding, and its two controls.

Iterative magnitude pruning (IMP; Frankle & Carbin 2019, Frankle et al. 2020):

    level 0:  train the dense network from W_0, keeping W_r (the weights after r epochs or steps; r = 0: W_0)
    level L:  prune the globally smallest |w| to sparsity s_L = 1 - (1 - rate)^L (a fraction ``rate`` of
              the survivors), set W <- W_r ⊙ M_L (rewind), train again under M_L

A ticket "wins" when, at a level, it trains as well as the dense network. Two controls say whether the
mask *and* the rewound values matter (Frankle & Carbin 2019, their figures 4-5; OpenLTH's branches
``randomly_prune`` and ``randomly_reinitialize``):

- **shuffle** (random mask): ``shuffle_mask`` permutes each layer's mask at random (the same count of
  survivors in every parameter), then the same rewind ``W_r ⊙ M'`` and training;
- **reinit**: the same mask ``M_L``, fresh Glorot weights (``retrain.reinitialize``), then training.

Every level reports one ``LotteryRow``: its sparsity, the accuracy on validation rows held out of the
training rows (what any decision would read; IMP itself decides nothing from accuracy) and the test
accuracy, reported only. Derived in ``notebooks/07_finetuning.ipynb`` (rewinding).

IMP uses the parts every recovery uses (``prune``, ``rewind_weights``, ``reinitialize``, ``finetune``), but
not the loop ``tp.prune_and_recover``: that loop asks "recovered?" and stops, spreads its pruning along a
polynomial and keeps one optimizer for its whole budget, while IMP measures a fixed ladder of levels, each
trained from a fresh optimizer, and decides nothing. (A recipe with schedule ``"iterative"`` and recovery
``"rewind"``, as ``tinyprune/recipes/lottery.toml``, is that loop's version of it.)

>>> import numpy as np
>>> from tinyprune.core.nn import MLP
>>> model = MLP([6, 4, 3], seed=0)
>>> _ = prune(model, 0.5, "magnitude", scope="layer")
>>> before = {name: int(mask.sum()) for name, mask in get_masks(model).items()}
>>> after = shuffle_mask(model, seed=1)
>>> {name: int(mask.sum()) for name, mask in after.items()} == before
True
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinyprune.core.batches import Dataset
from tinyprune.core.nn import MLP
from tinyprune.core.random import Seed, rng
from tinyprune.prune.core import prune
from tinyprune.prune.masks import get_masks, set_masks, weight_sparsity
from tinyprune.recover.finetune import finetune
from tinyprune.recover.retrain import reinitialize, rewind_weights
from tinyprune.training import WeightSnapshot, evaluate

BRANCHES = ("imp", "shuffle", "reinit")
Masks = dict[str, np.ndarray]
Splits = tuple[Dataset, Dataset | None, Dataset]


@dataclass(frozen=True)
class LotteryRow:
    """One level of one branch: what OpenLTH prints per level.

    ``sparsity`` is the fraction of the weight matrices' entries pruned (biases are not counted),
    ``remaining`` how many weights are left; ``epochs`` were trained at this level; accuracies are
    fractions in [0, 1] (``val_accuracy`` is ``None`` without validation rows).
    """

    level: int | None
    branch: str
    sparsity: float
    remaining: int
    epochs: int
    val_accuracy: float | None
    test_accuracy: float

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON-able values."""
        return asdict(self)


# ------------------------------------------------------------------ arguments
def _splits(data: Any, val: Any, seed: int) -> Splits:
    """``(rows to train on, validation rows, test rows)`` from ``data`` and ``val``."""
    if hasattr(data, "train") and hasattr(data, "test"):
        train, test = data.train, data.test
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        train, test = data
    else:
        raise ValueError("data must be tinyprune.data.load(...) (with .train and .test) or a pair "
                         f"(train, test) of Datasets; got {type(data).__name__}")
    if not isinstance(train, Dataset) or not isinstance(test, Dataset):
        raise ValueError("data's train and test parts must be tinyprune.data.Dataset objects")
    if val is None:
        return train, None, test
    if isinstance(val, Dataset):
        return train, val, test
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 < val < 1:
        raise ValueError(f"val must be a fraction in (0, 1) of the training rows to hold out (stratified, "
                         f"by seed), a Dataset of validation rows, or None; got {val!r}")
    fit_rows, val_rows = train.split(1 - float(val), seed=seed)
    return fit_rows, val_rows, test


def _positive(label: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{label} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def rewind_point(rewind_to: int | str) -> tuple[str, int]:
    """``rewind_to`` as ``("epoch", e)`` or ``("step", t)``: an int or ``"Nep"`` is N epochs, ``"Nit"`` N
    optimizer steps (OpenLTH's spelling); 0 is the initialisation.

    >>> rewind_point(0), rewind_point("2ep"), rewind_point("100it")
    (('epoch', 0), ('epoch', 2), ('step', 100))
    """
    if isinstance(rewind_to, (int, np.integer)) and not isinstance(rewind_to, bool) and rewind_to >= 0:
        return "epoch", int(rewind_to)
    match = re.fullmatch(r"(\d+)(ep|it)", rewind_to) if isinstance(rewind_to, str) else None
    if match is None:
        raise ValueError(f"rewind_to must be an int >= 0 (epochs), 'Nep' (N epochs) or 'Nit' (N steps), "
                         f"got {rewind_to!r}")
    return ("epoch" if match.group(2) == "ep" else "step"), int(match.group(1))


# ------------------------------------------------------------------ masks and rows
def shuffle_mask(model: MLP, seed: Seed = 0) -> Masks:
    """OpenLTH's random-mask control: ``M'_p = π_p(M_p)``, each parameter's mask permuted uniformly at
    random (its own permutation ``π_p``, drawn in parameter order from ``seed``), in place.

    Every parameter keeps exactly its number of survivors (the same per-layer sparsity); which entries
    survive is random, so a neuron structure is not kept. Entries the new mask prunes are set to 0; those
    it revives hold 0 too (their value was pruned), so follow with ``rewind_weights`` (as the control
    does) or ``reinitialize``. Parameters without a mask are left alone. Returns the new masks.
    """
    generator = rng(seed)
    shuffled = {name: generator.permutation(mask.ravel()).reshape(mask.shape)
                for name, mask in get_masks(model).items()}
    set_masks(model, shuffled)
    return get_masks(model)


def _weight_sparsity(model: MLP) -> tuple[float, int]:
    """(fraction of the weight matrices' entries pruned, weights left); biases are not counted."""
    sparsity = weight_sparsity(model)
    return sparsity, round((1 - sparsity) * sum(layer.W.data.size for layer in model.layers))


def _train_and_row(model: MLP, splits: Splits, *, level: int | None, branch: str, epochs: int,
                   batch_size: int, seed: int, callbacks: Sequence[Any] = ()) -> LotteryRow:
    """Train at the document's rate (Adam 1e-3, a fresh optimizer), then measure: one level of one branch."""
    train, val, test = splits
    finetune(model, train, epochs=epochs, lr=1e-3, batch_size=batch_size, seed=seed, callbacks=callbacks)
    sparsity, remaining = _weight_sparsity(model)
    return LotteryRow(level=level, branch=branch, sparsity=sparsity, remaining=remaining, epochs=epochs,
                      val_accuracy=None if val is None else evaluate(model, val)["accuracy"],
                      test_accuracy=evaluate(model, test)["accuracy"])


# ------------------------------------------------------------------ the controls
def shuffle_control(model: MLP, data: Any, weights: Mapping[str, np.ndarray], *, epochs: int,
                    seed: int = 0, mask_seed: Seed = None, val: Any = 0.1, batch_size: int = 128,
                    level: int | None = None) -> LotteryRow:
    """The random-mask control of a pruned ``model``, in place: ``shuffle_mask`` (``mask_seed``, default
    ``seed``), then ``W <- weights ⊙ M'`` (``weights``: the rewind point, e.g. ``snapshot.at_epoch(0)``),
    then train ``epochs`` epochs; returns its ``LotteryRow``.

    ``data``, ``val``, ``batch_size``, ``seed``: as in ``iterative_magnitude_pruning``.
    """
    epochs = _positive("epochs", epochs)
    splits = _splits(data, val, seed)
    shuffle_mask(model, seed if mask_seed is None else mask_seed)
    rewind_weights(model, dict(weights))
    return _train_and_row(model, splits, level=level, branch="shuffle", epochs=epochs, batch_size=batch_size,
                          seed=seed)


def reinitialize_control(model: MLP, data: Any, *, epochs: int, seed: int = 0, init_seed: Seed = None,
                         val: Any = 0.1, batch_size: int = 128, level: int | None = None) -> LotteryRow:
    """The re-initialisation control of a pruned ``model``, in place: the same mask, fresh Glorot-uniform
    weights and zero biases (``reinitialize``, ``init_seed``, default ``seed + 1``), then train ``epochs``
    epochs; returns its ``LotteryRow``.

    ``data``, ``val``, ``batch_size``, ``seed``: as in ``iterative_magnitude_pruning``.
    """
    epochs = _positive("epochs", epochs)
    splits = _splits(data, val, seed)
    reinitialize(model, seed + 1 if init_seed is None else init_seed)
    return _train_and_row(model, splits, level=level, branch="reinit", epochs=epochs, batch_size=batch_size,
                          seed=seed)


def _controls(model: MLP, splits: Splits, weights: Masks, controls: Sequence[str], level: int, *, epochs: int,
              batch_size: int, seed: int) -> list[LotteryRow]:
    """Each control on a copy of ``model`` at this level's mask (its seed drawn from ``(seed, level)``)."""
    train, val, test = splits
    training = {"epochs": epochs, "batch_size": batch_size, "seed": seed, "val": val, "level": level}
    rows = []
    for control in controls:
        trial, level_seed = copy.deepcopy(model), np.random.default_rng([seed, level])
        if control == "shuffle":
            rows.append(shuffle_control(trial, (train, test), weights, mask_seed=level_seed, **training))
        else:
            rows.append(reinitialize_control(trial, (train, test), init_seed=level_seed, **training))
    return rows


# ------------------------------------------------------------------ IMP
def iterative_magnitude_pruning(model: MLP, data: Any, *, levels: int, rate: float = 0.2,
                                epochs_per_level: int, rewind_to: int | str = 0, seed: int = 0,
                                val: Any = 0.1, controls: Sequence[str] = (),
                                batch_size: int = 128) -> list[LotteryRow]:
    """Iterative magnitude pruning with rewinding, in place on ``model`` (its current weights are ``W_0``);
    returns one ``LotteryRow`` per level (0 = dense, then ``1 .. levels``) and per branch.

    - ``data``: ``tinyprune.data.load(...)`` or ``(train, test)``; ``val``: a fraction of the training
      rows held out (stratified, drawn with ``seed``; default 0.1), a Dataset, or ``None``.
    - each level prunes the globally smallest ``|w|`` (biases kept, the output layer included) to
      ``s_L = 1 - (1 - rate)^L`` exactly, rewinds the survivors to ``rewind_to`` (an int or ``"Nep"``:
      after N epochs of level 0; ``"Nit"``: after N steps; 0 = the initialisation) and trains
      ``epochs_per_level`` epochs with a fresh Adam at 1e-3 (the document's), batches of ``batch_size``
      shuffled by ``seed`` (the same order at every level).
    - ``controls``: any of ``"shuffle"`` and ``"reinit"``; at each level >= 1 a copy with that level's
      mask runs the control (``shuffle_control``, mask seed ``(seed, level)``; ``reinitialize_control``,
      init seed ``(seed, level)``) for the same epochs. The IMP branch goes on from its own weights.

    Nothing is decided from accuracy; the same arguments give bit-identical rows. The model ends as the
    last level's trained ticket. A level that would leave a weight matrix empty (high sparsity) stops the
    run with ``prune``'s ``ValueError``; lower ``levels``.
    """
    levels = _positive("levels", levels, minimum=0)
    training = {"epochs": _positive("epochs_per_level", epochs_per_level),
                "batch_size": _positive("batch_size", batch_size), "seed": _positive("seed", seed, minimum=0)}
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1:
        raise ValueError(f"rate must be a fraction in (0, 1) of the surviving weights pruned per level, "
                         f"got {rate!r}")
    if isinstance(controls, str) or any(c not in BRANCHES[1:] for c in controls):
        raise ValueError(f"controls must be a sequence of {BRANCHES[1:]}, got {controls!r}")
    splits = _splits(data, val, seed)
    unit, point = rewind_point(rewind_to)
    steps = epochs_per_level * math.ceil(len(splits[0]) / batch_size)
    if point > (epochs_per_level if unit == "epoch" else steps):
        raise ValueError(f"rewind_to={rewind_to!r} lies beyond level 0's training "
                         f"({epochs_per_level} epochs, {steps} steps)")
    snapshot = WeightSnapshot(epochs=[point] if unit == "epoch" else (),
                              steps=[point] if unit == "step" else ())
    if not isinstance(model, MLP):
        raise TypeError(f"iterative_magnitude_pruning works on an MLP, got {type(model).__name__}")
    rows = [_train_and_row(model, splits, level=0, branch="imp", callbacks=[snapshot], **training)]
    weights = snapshot.at_epoch(point) if unit == "epoch" else snapshot.at_step(point)
    for level in range(1, levels + 1):
        prune(model, 1 - (1 - rate) ** level, "magnitude", scope="global")
        rows += _controls(model, splits, weights, controls, level, **training)
        rewind_weights(model, weights)
        rows.append(_train_and_row(model, splits, level=level, branch="imp", **training))
    return rows


def lottery_table(rows: Sequence[LotteryRow]) -> str:
    """The rows as a text table, one line per level: sparsity, weights left, and for each branch present
    the validation and test accuracy (%), as OpenLTH's per-level summary.

    >>> print(lottery_table([LotteryRow(0, "imp", 0.0, 100, 2, 0.9, 0.85)]))
    level | sparsity | weights | epochs | imp val | imp test
    ------+----------+---------+--------+---------+---------
        0 |    0.00% |     100 |      2 |   90.00 |    85.00
    """
    branches = [b for b in BRANCHES if any(r.branch == b for r in rows)]
    by_level: dict[int | None, dict[str, LotteryRow]] = {}
    for row in rows:
        by_level.setdefault(row.level, {})[row.branch] = row

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    header = ["level", "sparsity", "weights", "epochs"]
    header += [f"{branch} {split}" for branch in branches for split in ("val", "test")]
    lines = [header]
    for level, cells in by_level.items():
        first = next(iter(cells.values()))
        line = [str(level), f"{100 * first.sparsity:.2f}%", str(first.remaining), str(first.epochs)]
        for branch in branches:
            row = cells.get(branch)
            line += ["", ""] if row is None else [pct(row.val_accuracy), pct(row.test_accuracy)]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [" | ".join(cell.rjust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(text)


__all__ = ["BRANCHES", "LotteryRow", "iterative_magnitude_pruning", "lottery_table", "reinitialize_control",
           "rewind_point", "shuffle_control", "shuffle_mask"]
