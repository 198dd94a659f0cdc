"""One pass of the loop: what the parts act on (``Run``) and what each box measured (``Step``).

The parts (``experiment.schedules``, ``experiment.recoveries``) act on the model through a ``Run``
(``run.prune_to``, ``run.reconstruct``, ``run.train_epochs``). Every box that changes the model ends by
``run.record(...)``, which measures it on the validation rows (they decide) and the test split (only
reported) and appends one ``Step``; the report, the log, the JSON and the figures are all read from
those steps, so they cannot disagree. ``Run.record`` is the only writer of what was measured.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyprune import metrics, prune, recover
from tinyprune.core.batches import Dataset, stratified_choice
from tinyprune.core.nn import MLP
from tinyprune.core.random import rng
from tinyprune.experiment.decide import Comparison, compare, within
from tinyprune.fast.optim import Optimizer
from tinyprune.prune.masks import weight_sparsity
from tinyprune.training import predict

if TYPE_CHECKING:
    from tinyprune.experiment.recipe import Recipe

SPLITS_HELP = (
    "data must be tinyprune.data.load(...)'s Splits, a (train, test) pair or a (train, val, test) "
    "triple of Datasets"
)


def three_splits(data: Any, validation: float, seed: int, *,
                 in_place: bool = False) -> tuple[Dataset, Dataset, Dataset]:
    """``(train, val, test)``: ``val`` is given, or held out of ``train`` (stratified, seeded).

    With ``Splits`` or ``(train, test)``, a ``validation`` fraction of the training rows becomes the
    validation split (``Dataset.split``), so the test split never decides anything. Hold them out
    *before* training the dense model, or it will have seen them.

    ``Dataset.split`` copies both parts, so the loaded training rows are then held twice (on
    Fashion-MNIST, 179 MiB more). With ``in_place=True`` the same rows are chosen but the training part
    is made by ``split_in_place``: a view of the given arrays, whose rows are moved; the given training
    split is *consumed* (use only what this returns afterwards). ``tinyprune run`` and ``sweep`` do this.
    """
    if hasattr(data, "train") and hasattr(data, "test"):
        parts: tuple[Any, ...] = (data.train, getattr(data, "val", None), data.test)
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        parts = (data[0], None, data[1]) if len(data) == 2 else tuple(data)
    else:
        raise ValueError(f"{SPLITS_HELP}, got {type(data).__name__}")
    if not all(isinstance(p, Dataset) for p in parts if p is not None):
        raise ValueError(f"{SPLITS_HELP}, got {[type(p).__name__ for p in parts]}")
    train, val, test = parts
    if val is None:
        split = split_in_place if in_place else Dataset.split
        train, val = split(train, 1 - validation, seed=seed)
    return train, val, test


#: Rows moved at a time by ``split_in_place`` (bounds its scratch memory: 4,096 rows of 784 float32, 13 MB).
MOVE_ROWS = 4096


def split_in_place(data: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """``data.split(fraction, seed)`` without a second copy of the first part: the same two Datasets, bit
    for bit, but the first is a view of ``data``'s own arrays. ``data`` is consumed (its rows are moved).

    The rows of the first part (``first``, ascending, chosen as ``Dataset.split`` chooses them) are moved
    to the front of ``data.X`` in order: row ``first[k]`` goes to position ``k``. Since
    ``first[k] >= k``, a move only overwrites rows already moved or left for the second part, which is
    copied out before anything moves (it is the small part: the validation rows). Extra memory: the
    second part and ``MOVE_ROWS`` rows of scratch, instead of a copy of all of ``data``.

    >>> X = np.arange(20, dtype=np.float32).reshape(10, 2); y = np.array([0, 1] * 5)
    >>> a, b = Dataset(X.copy(), y).split(0.6, seed=0)
    >>> c, d = split_in_place(Dataset(X, y), 0.6, seed=0)
    >>> np.array_equal(a.X, c.X) and np.array_equal(b.X, d.X) and np.array_equal(a.y, c.y)
    True
    >>> np.shares_memory(c.X, X)
    True
    """
    n_first = round(fraction * len(data))
    if not 0.0 < fraction < 1.0 or n_first in (0, len(data)):
        data.split(fraction, seed=seed)                      # the same refusal, in Dataset.split's words
    if not (data.X.flags.writeable and data.y.flags.writeable):
        return data.split(fraction, seed=seed)               # read-only rows (a memory map): copy them
    first = stratified_choice(data.y, n_first, rng(seed))
    in_first = np.zeros(len(data), dtype=bool)
    in_first[first] = True
    second = data.subset(~in_first)                          # copied out before any row moves
    for start in range(0, n_first, MOVE_ROWS):
        rows = first[start : start + MOVE_ROWS]             # gathered (a copy) before it is written
        data.X[start : start + rows.size] = data.X[rows]
        data.y[start : start + rows.size] = data.y[rows]
    return Dataset(data.X[:n_first], data.y[:n_first], num_classes=data.num_classes), second


@dataclass(frozen=True)
class Step:
    """One measured moment of the flowchart: what had just been done, and the accuracies after it.

    ``kind`` is ``"dense"``, ``"pruning step"`` (an iterative schedule's step, on the current weights),
    ``"pruned"`` (the mask reached its target: the *dense* weights under the final mask, before any weight
    moved back), ``"closed form"`` (a closed-form update of the survivors), ``"reset"`` (weights rewound or
    re-initialised), ``"epoch"`` (an epoch of recovery training) or ``"final"`` (the model returned).
    ``sparsity`` counts pruned weights over all weight matrices (biases excluded). ``versus_dense``
    compares the validation rows with the dense model's answers on them (``experiment.decide``).
    """

    kind: str
    action: str
    sparsity: float
    epochs: int
    val_accuracy: float
    test_accuracy: float
    versus_dense: Comparison | None


def masked_copy(dense: MLP, pruned: MLP) -> MLP:
    """The dense weights under the pruned model's masks: ``W_dense ⊙ M`` (and the biases' masks)."""
    probe = copy.deepcopy(dense)
    for mine, theirs in zip(probe.parameters(), pruned.parameters()):
        if theirs.mask is not None:
            mine.mask = theirs.mask.copy()
            mine.data *= mine.mask
    return probe


def calibration_rows(train: Dataset, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of ``count`` training rows drawn with ``seed`` (ascending), or all of them: then the
    training arrays themselves, not a copy (on mnist-5k, 3,600 rows for the default 4,096)."""
    if count >= len(train):
        return train.X, train.y
    rows = np.sort(rng(seed).choice(len(train), count, replace=False))
    return train.X[rows], train.y[rows]


def prune_options(recipe: Recipe, criterion: str, calibration: Any, scores: Any = None) -> dict[str, Any]:
    """The keyword arguments of ``prune.prune`` that ``recipe`` implies for ``criterion``, with the
    ``calibration`` rows ``(X, y)`` for a criterion that reads inputs (``Run`` and ``Pruner.from_recipe``)."""
    part = prune.criterion_class(criterion, recipe.structure)      # what the criterion says it needs
    options: dict[str, Any] = {"criterion": criterion, "scope": recipe.scope, "structure": recipe.structure,
                               "seed": recipe.seed}
    if scores is not None:
        options["scores"] = scores           # e.g. movement, accumulated during this run's training
    elif "inputs" in part.needs:
        options["data"] = calibration
    if recipe.structure == "n:m":
        options["n"], options["m"] = recipe.n_m
    elif recipe.structure == "blocks":
        options["block"] = recipe.block
    if "damping" in part.option_names():
        options["damping"] = recipe.damping
    return options


class Run:
    """The context of one pass: the model, its teacher (the dense model), the splits, the budget, and the
    ``steps`` measured so far. Built once by ``prune_and_recover``; the parts act through its methods."""

    def __init__(self, model: MLP, recipe: Recipe, splits: tuple[Dataset, Dataset, Dataset], *,
                 rewind_to: Any = None, say: Callable[[str], None] | None = None,
                 progress: Any = False) -> None:
        self.started = time.perf_counter()
        self.model, self.recipe, self.rewind_to, self.progress = model, recipe, rewind_to, progress
        self.train, self.val, self.test = splits
        self.say = say or (lambda text: None)
        self.teacher = copy.deepcopy(model)
        self.calibration = calibration_rows(self.train, recipe.calibration, recipe.seed)
        self.steps_per_epoch = math.ceil(len(self.train) / recipe.batch_size)
        self.budget_steps = recipe.epochs * self.steps_per_epoch
        self.target = self._target()
        self.optimizer: Optimizer | None = None
        self.callbacks: list[Any] = []
        self.epochs_done, self.mask_changed, self.closed_form_seconds = 0, False, 0.0
        self.steps: list[Step] = []
        self.dense_summary = metrics.summary(model).to_dict()
        self._dense_correct = self._correct(self.model, self.val)
        self.record("dense", "the trained dense model")

    # ------------------------------------------------------------------ measuring
    def seconds(self) -> float:
        """Wall time since the run began."""
        return time.perf_counter() - self.started

    @staticmethod
    def _correct(model: MLP, split: Dataset) -> np.ndarray:
        return predict(model, split.X) == split.y

    def record(self, kind: str, action: str, model: MLP | None = None) -> Step:
        """Measure ``model`` (default: the run's) on validation and test, append the ``Step`` and say it."""
        model = model or self.model
        correct = self._correct(model, self.val)
        versus = None if kind == "dense" else compare(self._dense_correct, correct)
        step = Step(kind, action, weight_sparsity(self.model), self.epochs_done, float(correct.mean()),
                    float(self._correct(model, self.test).mean()), versus)
        self.steps.append(step)
        self.say(describe_step(step, len(self.val)))
        return step

    def reached_target(self) -> None:
        """The mask reached its target: record the dense weights under it (before any weight moves back)."""
        self.record("pruned", f"the dense weights under the mask ({weight_sparsity(self.model):.2%} of the "
                              "weights pruned), before any weight moves back",
                    model=masked_copy(self.teacher, self.model))

    @property
    def at_target(self) -> bool:
        """Whether the mask has reached its target (a ``"pruned"`` step was recorded)."""
        return any(step.kind == "pruned" for step in self.steps)

    def within_tolerance(self, kind: str | None = None) -> bool:
        """C and F: the last step (of ``kind``, if given) is within ``recipe.tolerance`` of the dense model,
        shown by the paired test of ``experiment.decide``."""
        last = [step for step in self.steps if kind is None or step.kind == kind][-1]
        return last.versus_dense is not None and within(last.versus_dense, self.recipe.tolerance)

    # ------------------------------------------------------------------ acting
    def _target(self) -> float | dict[str, float]:
        r = self.recipe
        if isinstance(r.sparsity, Mapping):
            return dict(r.sparsity)
        if r.allocation is not None:
            return prune.allocate(self.model, r.sparsity, r.allocation, data=self.val, seed=r.seed)
        return r.sparsity

    def target_sparsity(self) -> float:
        """The fraction of weights the target prunes (per-layer targets weighted by the layers' sizes)."""
        if not isinstance(self.target, dict):
            return float(self.target)
        sizes = {name: p.data.size for name, p in self.model.named_parameters() if name in self.target}
        return sum(self.target[name] * size for name, size in sizes.items()) / sum(sizes.values())

    def prune_options(self, criterion: str, scores: Any = None) -> dict[str, Any]:
        """The keyword arguments of ``prune.prune`` that the recipe implies for ``criterion``."""
        return prune_options(self.recipe, criterion, self.calibration, scores)

    def prune_to(self, sparsity: float | dict[str, float], criterion: str | None = None) -> None:
        """B: prune to ``sparsity`` (total, or per layer) by ``criterion`` (default: the recipe's)."""
        began = time.perf_counter()
        criterion = criterion or self.recipe.criterion
        options = self.prune_options(criterion)
        if isinstance(sparsity, dict):
            options["scope"] = "layer"
        prune.prune(self.model, sparsity, **options)
        if prune.criterion_class(criterion, self.recipe.structure).moves_survivors:
            self.closed_form_seconds += time.perf_counter() - began
        self.mask_changed = True

    def reconstruct(self, layers: list[int] | None = None) -> None:
        """Solve the surviving weights and biases (of ``layers``; default all) in closed form to the dense
        outputs (timed)."""
        began = time.perf_counter()
        recover.reconstruct(self.model, self.teacher, self.calibration[0], damping=self.recipe.damping,
                            layers=layers)
        self.closed_form_seconds += time.perf_counter() - began

    def learning_rate(self, part: Any) -> float:
        """The recipe's ``lr``, or the part's own rate grown with the density (``density_scaled_lr``)."""
        r = self.recipe
        if r.lr is not None:
            return r.lr
        return recover.density_scaled_lr(r.original_lr * part.lr_factor, self.target_sparsity(), r.lr_scaling)

    def train_epochs(self, epochs: int, part: Any, loss: Any = "cross_entropy") -> str:
        """D for a training recovery: ``epochs`` epochs of ``recover.finetune`` (with the part's ``loss``),
        one optimizer for the whole budget; each epoch is recorded as a ``Step``."""
        r, lr = self.recipe, self.learning_rate(part)
        schedule = r.lr_schedule or part.lr_schedule
        if self.optimizer is None:
            self.optimizer = recover.build_optimizer(self.model, r.optimizer, lr=lr, schedule=schedule,
                                                     total_steps=self.budget_steps)
            if r.lr is None and r.lr_scaling == "sqrt-density-per-layer":   # after the pruning steps
                self.callbacks.append(recover.LayerDensityRates())
            if r.average is not None:  # average the weights over the end of the budget, mask fixed
                self.callbacks.append(recover.WeightAverage(
                    r.average, start_step=round(r.average_start * self.budget_steps),
                    end_step=self.budget_steps, decay=r.ema_decay))
        per_layer = " x each layer's density factor" if any(
            isinstance(c, recover.LayerDensityRates) for c in self.callbacks) else ""
        action = f"{part.name} ({type(self.optimizer).__name__}, lr {lr:g} {schedule}{per_layer})"
        recover.finetune(self.model, self.train, epochs=epochs, optimizer=self.optimizer,
                         batch_size=r.batch_size, seed=r.seed, progress=self.progress, loss=loss,
                         initial_epoch=self.epochs_done,
                         callbacks=[*self.callbacks, _RecordEpochs(self, action)])
        return action


class _RecordEpochs:
    """A ``fit`` callback: every epoch of recovery training is one ``Step`` (after the weight average,
    which runs before it in the callback list)."""

    def __init__(self, run: Run, action: str) -> None:
        self.run, self.action = run, action

    def on_epoch_end(self, model: Any, optimizer: Any, epoch: int, logs: Any) -> None:
        self.run.epochs_done = epoch
        self.run.record("epoch", f"{self.action}, epoch {epoch}")


def describe_step(step: Step, rows: int) -> str:
    """One log line: what was done, the accuracies after it, and the paired difference from dense."""
    head = f"{step.kind}: {step.action}"
    accuracies = f"validation {step.val_accuracy:.2%}, test {step.test_accuracy:.2%}"
    if step.versus_dense is None:
        return f"{head}: {accuracies} ({rows:,} validation rows held out of the training set)"
    return f"{head}: {accuracies}; validation vs dense {step.versus_dense}"


__all__ = ["Run", "Step", "calibration_rows", "describe_step", "masked_copy", "split_in_place",
           "three_splits", "weight_sparsity"]
