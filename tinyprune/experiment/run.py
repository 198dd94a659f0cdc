"""One run of the loop: the model, its teacher, the three splits, the budget, and what was measured so far.

The schedule and recovery parts act on a ``Run`` (``run.prune_to``, ``run.reconstruct``,
``run.train_epochs``); the loop reads its decisions from it (``run.dropped``, ``run.recovered_at``).
Every decision reads the validation rows (held out of the training rows, stratified and seeded); the
test split is measured at the same moments and only reported.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyprune import metrics, prune, recover
from tinyprune.core.batches import Dataset
from tinyprune.core.nn import MLP
from tinyprune.core.random import rng
from tinyprune.experiment.report import Report, Round, layer_sparsity, pct, weight_sparsity
from tinyprune.fast.optim import Optimizer
from tinyprune.recipe import Recipe
from tinyprune.training import evaluate, fit

SPLITS_HELP = (
    "data must be tinyprune.data.load(...)'s Splits, a (train, test) pair or a (train, val, test) "
    "triple of Datasets"
)


def three_splits(data: Any, validation: float, seed: int) -> tuple[Dataset, Dataset, Dataset, str]:
    """``(train, val, test, name)``: ``val`` is given, or held out of ``train`` (stratified, seeded).

    With ``Splits`` or ``(train, test)``, a ``validation`` fraction of the training rows becomes the
    validation split (``Dataset.split``), so the test split never decides anything.
    """
    name = str(getattr(data, "name", ""))
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
        train, val = train.split(1 - validation, seed=seed)
    return train, val, test, name


@dataclass
class Run:
    """The state of one pass through the flowchart (see ``experiment.loop``)."""

    model: MLP
    recipe: Recipe
    train: Dataset
    val: Dataset
    test: Dataset
    dataset: str = ""
    rewind_to: Any = None
    say: Callable[[str], None] = print
    progress: Any = False
    teacher: MLP = field(init=False)
    target: float | dict[str, float] = field(init=False)
    calibration: tuple[np.ndarray, np.ndarray] = field(init=False)
    optimizer: Optimizer | None = None
    callbacks: list[Any] = field(default_factory=list)
    epochs_done: int = 0
    mask_changed: bool = False
    at_target: bool = False
    dropped: bool = True
    recovered: bool = False
    closed_form_seconds: float = 0.0
    rounds: list[Round] = field(default_factory=list)
    val_per_epoch: list[float] = field(default_factory=list)
    measured: dict[str, float] = field(default_factory=dict)
    movement: Any = None

    def __post_init__(self) -> None:
        self.started = time.perf_counter()
        self.teacher = copy.deepcopy(self.model)
        rows = np.sort(
            rng(self.recipe.seed).choice(
                len(self.train), min(self.recipe.calibration, len(self.train)), replace=False
            )
        )
        self.calibration = (self.train.X[rows], self.train.y[rows])
        self.steps_per_epoch = math.ceil(len(self.train) / self.recipe.batch_size)
        self.budget_steps = self.recipe.epochs * self.steps_per_epoch
        self.target = self._target()
        self.dense_summary = metrics.summary(self.model).to_dict()
        self.dense_sparsity = (weight_sparsity(self.model), layer_sparsity(self.model))
        self.measure("dense")
        self.say(
            f"dense: validation accuracy {pct(self.measured['dense_val'])} ({len(self.val):,} rows held "
            f"out of the training set)"
        )

    # ------------------------------------------------------------------ measuring and deciding
    def accuracy(self, split: str = "val") -> float:
        """The model's accuracy on ``"val"`` (decides) or ``"test"`` (reported)."""
        return evaluate(self.model, self.val if split == "val" else self.test)["accuracy"]

    def measure(self, moment: str) -> None:
        """Record the validation and test accuracy at a ``moment`` (dense, pruned, final)."""
        self.measured[f"{moment}_val"] = self.accuracy("val")
        self.measured[f"{moment}_test"] = self.accuracy("test")

    def reached_target(self) -> None:
        """C: the mask reached its target; did the validation accuracy drop beyond the tolerance?"""
        self.at_target = True
        self.measure("pruned")
        self.dropped = self.measured["pruned_val"] < self.measured["dense_val"] - self.recipe.tolerance
        self.recovered = not self.dropped
        self.say(
            f"pruned to {pct(weight_sparsity(self.model))}: validation accuracy "
            f"{pct(self.measured['pruned_val'])}" + ("" if self.dropped else ", no drop beyond tolerance")
        )

    def recovered_at(self, accuracy: float) -> bool:
        """F: at the target and within the tolerance of the dense validation accuracy."""
        return self.at_target and accuracy >= self.measured["dense_val"] - self.recipe.tolerance

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

    def prune_options(self, criterion: str) -> dict[str, Any]:
        """The keyword arguments of ``prune.prune`` that the recipe implies for ``criterion``."""
        r = self.recipe
        options: dict[str, Any] = {
            "criterion": criterion,
            "scope": r.scope,
            "structure": r.structure,
            "seed": r.seed,
        }
        if criterion == "movement" and self.movement is not None:
            options["scores"] = self.movement          # accumulated during this run's own training
        elif criterion in prune.NEEDS_DATA:
            options["data"] = self.calibration
        if r.structure == "n:m":
            options["n"], options["m"] = r.n_m
        elif r.structure == "blocks":
            options["block"] = r.block
        if criterion == "obs":
            options["damping"] = r.damping
        return options

    def prune_to(self, sparsity: float | dict[str, float], criterion: str | None = None) -> None:
        """B: prune to ``sparsity`` (total, or per layer) by ``criterion`` (default: the recipe's)."""
        began = time.perf_counter()
        criterion = criterion or self.recipe.criterion
        options = self.prune_options(criterion)
        if isinstance(sparsity, dict):
            options["scope"] = "layer"
        prune.prune(self.model, sparsity, **options)
        if criterion == "obs":
            self.closed_form_seconds += time.perf_counter() - began
        self.mask_changed = True

    def reconstruct(self) -> None:
        """Solve the surviving weights and biases in closed form to the dense outputs (timed)."""
        began = time.perf_counter()
        recover.reconstruct(self.model, self.teacher, self.calibration[0], damping=self.recipe.damping)
        self.closed_form_seconds += time.perf_counter() - began

    def train_epochs(self, epochs: int, part: Any, loss: Any = "cross_entropy") -> str:
        """D for a training recovery: ``epochs`` epochs of ``fit`` with one optimizer for the whole budget."""
        r = self.recipe
        lr = r.lr if r.lr is not None else recover.density_scaled_lr(
            r.original_lr * part.lr_factor, self.target_sparsity(), r.lr_scaling
        )
        schedule = r.lr_schedule or part.lr_schedule
        if self.optimizer is None:
            self.optimizer = recover.build_optimizer(
                self.model, r.optimizer, lr=lr, schedule=schedule, total_steps=self.budget_steps
            )
            if r.average is not None:  # average the weights over the end of the budget, mask fixed
                self.callbacks.append(recover.WeightAverage(
                    r.average, start_step=round(r.average_start * self.budget_steps),
                    end_step=self.budget_steps, decay=r.ema_decay))
        history = fit(
            self.model,
            self.train,
            epochs=epochs,
            batch_size=r.batch_size,
            optimizer=self.optimizer,
            loss=loss,
            val=self.val,
            seed=r.seed,
            progress=self.progress,
            callbacks=self.callbacks,
            initial_epoch=self.epochs_done,
        )
        self.epochs_done += len(history)
        self.val_per_epoch += [float(a) for a in history.val_accuracy]
        return f"{part.name} ({type(self.optimizer).__name__}, lr {lr:g} {schedule})"

    # ------------------------------------------------------------------ the record
    def record_round(self, number: int, actions: list[str], began: float, accuracy: float,
                     trained: bool) -> None:
        """Keep one ``Round`` of D and F for the report, and say it."""
        epochs = self.recipe.round_epochs if trained else 0
        self.rounds.append(Round(number, ", ".join(actions) or "nothing", weight_sparsity(self.model), epochs,
                                 time.perf_counter() - began, accuracy, self.recovered))
        self.say(f"round {number}: {self.rounds[-1].action} -> validation accuracy {pct(accuracy)}")

    def report(self) -> Report:
        """The ``Report`` of everything measured."""
        self.measure("final")
        if "pruned_val" not in self.measured:  # a gradual schedule that never reached its end step
            self.measured["pruned_val"], self.measured["pruned_test"] = (
                self.measured["final_val"],
                self.measured["final_test"],
            )
        table = metrics.summary(self.model)
        info = table.to_dict()
        m = self.measured
        return Report(
            recipe=self.recipe.to_dict(),
            dense_accuracy=m["dense_test"],
            pruned_accuracy=m["pruned_test"],
            final_accuracy=m["final_test"],
            dense_val_accuracy=m["dense_val"],
            pruned_val_accuracy=m["pruned_val"],
            final_val_accuracy=m["final_val"],
            sparsity=weight_sparsity(self.model),
            layer_sparsity=layer_sparsity(self.model),
            dense_sparsity=self.dense_sparsity[0],
            dense_layer_sparsity=self.dense_sparsity[1],
            epochs_used=self.epochs_done,
            seconds=time.perf_counter() - self.started,
            dropped=self.dropped,
            recovered=self.recovered,
            rounds=self.rounds,
            accuracy_per_epoch=self.val_per_epoch,
            closed_form_seconds=self.closed_form_seconds,
            dataset=self.dataset,
            rows={"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            params=table.total.params,
            nonzeros=table.total.nonzeros,
            flops_dense=table.total.flops_dense,
            flops_effective=table.total.flops_effective,
            compression=info["compression_ratio"],
            speedup=info["speedup"],
            dense_summary=self.dense_summary,
            summary=info,
        )

