"""The document's experiment as a loop: prune, did it drop?, recover, recovered?, repeat; and sweeps of it.

The source document's flowchart (its section 2.4) is, read as code::

    A  start from the trained dense model
    B  prune
    C  accuracy dropped?        no  -> E end
    D  recover (one round)
    F  recovered?               yes -> E end;  no -> D again (here: at most ``max_rounds`` rounds)

``prune_and_recover`` does exactly that and records every step in a ``Report``: the dense accuracy, the
accuracy right after pruning, after each recovery round and each epoch, the epochs and seconds used, the
per-layer sparsity, parameters and FLOPs (``metrics.summary``). "Dropped" and "recovered" compare with the
dense accuracy: dropped if ``pruned < dense - tolerance``, recovered if ``accuracy >= dense - tolerance``.

When pruning happens (``schedule``):

- ``"one-shot"``: B prunes to the target once; rounds of recovery follow.
- ``"iterative"``: B is spread over the first ``prune_steps`` rounds: round r first prunes to
  ``s_r = s (1 - (1 - r/k)^3)`` (Zhu & Gupta's cubic steps), then recovers (Han et al. 2015's loop).
- ``"gradual"``: B happens *during* the recovery training, every few steps, along the cubic schedule over
  the first ``ramp`` of the budget (``prune.PolynomialPruning``); every pruning step counts in the budget.
  With a head start (``start_sparsity``) B first prunes to that sparsity at once with ``start_criterion``
  (Optimal Brain Surgeon by default) and solves the survivors in closed form (``recover.reconstruct``), and
  the gradual schedule goes on from there to the target.

C and F are only asked once the target sparsity is reached. The recovery budget is
``max_rounds · epochs_per_round`` epochs of the training set; one optimizer runs through all rounds, its
learning-rate schedule spanning the whole budget. Derived in ``notebooks/07_finetuning.ipynb``.

>>> import numpy as np
>>> from tinyprune.nn import MLP
>>> from tinyprune.data import Dataset
>>> from tinyprune.train import fit
>>> g = np.random.default_rng(0); y = np.arange(600) % 3
>>> X = (g.normal(size=(3, 10))[y] + g.normal(size=(600, 10))).astype(np.float32)
>>> data = (Dataset(X[:400], y[:400]), Dataset(X[400:], y[400:]))
>>> model = MLP([10, 16, 3], seed=0); _ = fit(model, data[0], epochs=10, progress=False)
>>> report = prune_and_recover(model, data, sparsity=0.8, schedule="one-shot", recovery="finetune",
...                            max_rounds=2, batch_size=32)
>>> round(report.sparsity, 2), report.epochs_used <= 2, sorted(report.to_dict())[:3]
(0.8, True, ['accuracy_per_epoch', 'closed_form_seconds', 'compression'])
"""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyprune import metrics, recover
from tinyprune import prune as pruning
from tinyprune.nn import MLP
from tinyprune.optim import Optimizer
from tinyprune.random import rng
from tinyprune.train import History, WeightSnapshot, evaluate, fit

SCHEDULES = ("one-shot", "iterative", "gradual")
TRAINING_RECOVERIES = ("finetune", "lr-rewind", "retrain", "rewind", "distill")
RECOVERIES = ("none", *TRAINING_RECOVERIES, "reconstruct", "reconstruct+finetune", "reconstruct+lr-rewind",
              "reconstruct+distill")
CRITERIA = (*pruning.CRITERIA, "obs")

#: The recipe that won ``benchmarks/bench_recovery.py`` (see benchmarks/README.md): the defaults of
#: ``prune_and_recover`` and of ``tinyprune run``.
#: In words: Optimal Brain Surgeon to min(s, 94 %) at once and the survivors solved in closed form, then
#: gradual pruning by Optimal Brain Damage's saliency (global) over the first half of the budget while
#: distilling from the dense model (KL at T = 2, 80 % cross-entropy on the labels), Adam 1e-2 with cosine
#: decay, batch 32.
RECIPE: dict[str, Any] = {
    "sparsity": 0.9, "criterion": "obd", "scope": "global", "structure": "weights",
    "schedule": "gradual", "recovery": "distill", "optimizer": "adam", "lr": 1e-2, "lr_schedule": "cosine",
    "batch_size": 32, "ramp": 0.5, "max_rounds": 3, "epochs_per_round": 1, "tolerance": 0.005,
    "distill_output": "kl", "temperature": 2.0, "alpha": 0.8,
    "start_sparsity": 0.94, "start_criterion": "obs",
}


# --------------------------------------------------------------------------- the report
@dataclass
class Round:
    """One pass through D (and F): what was done, its epochs and seconds, and the accuracy after it."""

    round: int
    action: str
    sparsity: float
    epochs: int
    seconds: float
    accuracy: float
    recovered: bool


@dataclass
class Report:
    """What ``prune_and_recover`` measured; ``str()`` is the before/after table, ``to_json()`` the record.

    Accuracies are fractions in [0, 1] on the evaluation split; ``sparsity`` is the fraction of pruned weights
    (mask ``False``) over all weight matrices (biases excluded), ``layer_sparsity`` the same per matrix;
    ``epochs_used`` counts epochs of training after the dense model (gradual pruning's included);
    ``seconds`` is the wall time of the whole loop, ``closed_form_seconds`` the part spent in closed-form
    reconstruction or OBS. ``accuracy_per_epoch`` lists the accuracy after every recovery epoch.
    """

    config: dict[str, Any]
    dense_accuracy: float
    pruned_accuracy: float
    final_accuracy: float
    sparsity: float
    layer_sparsity: dict[str, float]
    epochs_used: int
    seconds: float
    dropped: bool
    recovered: bool
    rounds: list[Round] = field(default_factory=list)
    accuracy_per_epoch: list[float] = field(default_factory=list)
    closed_form_seconds: float = 0.0
    params: int = 0
    nonzeros: int = 0
    flops_dense: int = 0
    flops_effective: int = 0
    compression: float | None = None
    speedup: float | None = None
    dense_summary: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    FIELDS = ("config", "dense_accuracy", "pruned_accuracy", "final_accuracy", "sparsity", "layer_sparsity",
              "epochs_used", "seconds", "dropped", "recovered", "rounds", "accuracy_per_epoch",
              "closed_form_seconds", "params", "nonzeros", "flops_dense", "flops_effective", "compression",
              "speedup", "dense_summary", "summary")

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able values (rounds as dicts)."""
        return {name: (asdict(self)[name]) for name in self.FIELDS}

    def to_json(self, path: str | os.PathLike[str] | None = None, indent: int = 2) -> str:
        """The report as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, default=_jsonable)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Report:
        """The inverse of ``to_dict``."""
        values = dict(values)
        values["rounds"] = [Round(**r) for r in values.get("rounds", [])]
        return cls(**{name: values[name] for name in cls.FIELDS if name in values})

    def __str__(self) -> str:
        c = self.config
        dense_total = self.dense_summary.get("total", {})
        rows = [("", "dense", "pruned", "recovered"),
                ("accuracy", _pct(self.dense_accuracy), _pct(self.pruned_accuracy),
                 _pct(self.final_accuracy)),
                ("nonzero weights+biases", f"{dense_total.get('nonzeros', self.params):,}",
                 f"{self.nonzeros:,}", f"{self.nonzeros:,}"),
                ("sparsity (weights)", "0.00 %", _pct(self.sparsity), _pct(self.sparsity)),
                ("FLOPs per sample", f"{self.flops_dense:,}", f"{self.flops_effective:,}",
                 f"{self.flops_effective:,}")]
        rows += [(f"  {name} sparsity", "0.00 %", _pct(value), _pct(value))
                 for name, value in self.layer_sparsity.items()]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        head = min(c.get("start_sparsity") or 0.0, c.get("sparsity", 0))
        start = (f"{c.get('start_criterion')} to {head:.0%} at once + reconstruction, then "
                 if c.get("schedule") == "gradual" and head > 0 else "")
        lines = [f"prune {start}{c.get('criterion')} / {c.get('scope')} / {c.get('structure')} to "
                 f"{c.get('sparsity', 0):.0%} ({c.get('schedule')}), recover by {c.get('recovery')} "
                 f"(tolerance {c.get('tolerance', 0) * 100:.2f} points, at most {c.get('max_rounds')} rounds "
                 f"of {c.get('epochs_per_round')} epoch(s))"]
        lines += ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                            enumerate(zip(row, widths))) for row in rows]
        for r in self.rounds:
            lines.append(f"round {r.round}: {r.action}, {r.epochs} epoch(s), {r.seconds:.1f} s -> accuracy "
                         f"{_pct(r.accuracy)} at sparsity {_pct(r.sparsity)}"
                         + (" (recovered)" if r.recovered else ""))
        verdict = ("no drop beyond tolerance: nothing to recover" if not self.dropped else
                   "recovered" if self.recovered else "not recovered within the budget")
        lines.append(f"{verdict}: {_pct(self.final_accuracy)} vs dense {_pct(self.dense_accuracy)} "
                     f"({(self.final_accuracy - self.dense_accuracy) * 100:+.2f} points) after "
                     f"{self.epochs_used} epoch(s), {self.seconds:.1f} s; compression "
                     f"{self.compression or float('inf'):.1f}x")
        return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


# --------------------------------------------------------------------------- helpers
def _splits(data: Any) -> tuple[Any, Any, str]:
    """``(train, evaluation split, name)`` from a ``Splits`` or a ``(train, test)`` pair."""
    if hasattr(data, "train") and hasattr(data, "test"):
        return data.train, data.test, str(getattr(data, "name", ""))
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1], ""
    raise ValueError(f"data must be tinyprune.data.load(...)'s Splits or a (train, test) pair of Datasets, "
                     f"got {type(data).__name__}")


def _choice(label: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {label} {value!r}; expected one of {tuple(allowed)}")
    return value


def _pruned(parameter: Any) -> int:
    return 0 if parameter.mask is None else int(parameter.mask.size - np.count_nonzero(parameter.mask))


def layer_sparsity(model: MLP) -> dict[str, float]:
    """``{"layers.l.W": fraction of pruned weights}`` (mask ``False``) for every weight matrix.

    A surviving weight that happens to be 0 is not pruned (``metrics.summary`` counts the nonzeros).

    >>> layer_sparsity(MLP([2, 2], seed=0))
    {'layers.0.W': 0.0}
    """
    return {f"layers.{i}.W": _pruned(layer.W) / layer.W.data.size for i, layer in enumerate(model.layers)}


def weight_sparsity(model: MLP) -> float:
    """The fraction of pruned entries (mask ``False``) over all weight matrices (biases excluded)."""
    return sum(_pruned(layer.W) for layer in model.layers) / sum(layer.W.data.size for layer in model.layers)


def iterative_steps(sparsity: float, steps: int) -> list[float]:
    """Zhu & Gupta's cubic steps ``s_r = s (1 - (1 - r/k)^3)``, r = 1..k: big steps first, small ones last.

    >>> [round(s, 3) for s in iterative_steps(0.9, 3)]
    [0.633, 0.867, 0.9]
    """
    return [sparsity * (1 - (1 - r / steps) ** 3) for r in range(1, steps + 1)]


def _calibration(train: Any, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(train.X)
    rows = np.sort(rng(seed).choice(n, size=min(size, n), replace=False))
    return train.X[rows], train.y[rows]


def _prune_to(model: MLP, sparsity: float, criterion: str, scope: str, structure: str,
              calibration: tuple[np.ndarray, np.ndarray], seed: int, damping: float) -> None:
    """B: prune to a total ``sparsity``; ``"obs"`` is Optimal Brain Surgeon (``recover.obs_prune``)."""
    if criterion != "obs":
        pruning.prune(model, sparsity, criterion, scope, structure,
                      data=calibration if criterion in pruning.NEEDS_DATA else None, seed=seed)
        return
    if structure != "weights":
        raise ValueError("criterion 'obs' prunes single weights: use structure='weights'")
    if scope == "global":          # the per-layer sparsities that one global magnitude threshold gives
        probe = copy.deepcopy(model)
        pruning.magnitude(probe, sparsity, scope="global")
        allocation = {i: 1 - float(layer.W.mask.mean()) for i, layer in enumerate(probe.layers)}
    else:
        allocation = {i: sparsity for i in range(len(model.layers))}
    recover.obs_prune(model, calibration[0], allocation, damping=damping)


class _AccuracyAt:
    """A ``fit`` callback that measures the accuracy once, right after the step that reaches the target."""

    def __init__(self, step: int, dataset: Any) -> None:
        self.step, self.dataset, self.accuracy = step, dataset, None

    def on_step_end(self, model: MLP, optimizer: Any, epoch: int, step: int) -> None:
        if step == self.step:
            self.accuracy = evaluate(model, self.dataset)["accuracy"]


# --------------------------------------------------------------------------- the loop
def prune_and_recover(
    model: MLP,
    data: Any,
    *,
    sparsity: float = RECIPE["sparsity"],
    criterion: str | None = None,
    scope: str = RECIPE["scope"],
    structure: str = RECIPE["structure"],
    schedule: str = RECIPE["schedule"],
    recovery: str = RECIPE["recovery"],
    tolerance: float = RECIPE["tolerance"],
    max_rounds: int = RECIPE["max_rounds"],
    epochs_per_round: int = RECIPE["epochs_per_round"],
    seed: int = 0,
    optimizer: str = RECIPE["optimizer"],
    lr: float | None = RECIPE["lr"],
    lr_schedule: str = RECIPE["lr_schedule"],
    batch_size: int = RECIPE["batch_size"],
    original_lr: float = 1e-3,
    ramp: float = RECIPE["ramp"],
    start_sparsity: float = RECIPE["start_sparsity"],
    start_criterion: str = RECIPE["start_criterion"],
    prune_every: int | None = None,
    prune_steps: int = 3,
    distill_output: str = RECIPE["distill_output"],
    temperature: float = RECIPE["temperature"],
    alpha: float = RECIPE["alpha"],
    calibration: int = 4096,
    damping: float = 1e-4,
    rewind_to: dict[str, np.ndarray] | WeightSnapshot | None = None,
    dense_accuracy: float | None = None,
    progress: Any = False,
    log: Callable[[str], None] | None = None,
) -> Report:
    """The document's flowchart on ``model`` (trained, dense; pruned and recovered in place) -> ``Report``.

    - ``data``: ``tinyprune.data.load(...)`` (``.train`` trains, ``.test`` is evaluated) or ``(train, test)``.
    - ``sparsity``, ``criterion`` (``prune.CRITERIA`` or ``"obs"``), ``scope``, ``structure``: what B prunes;
      ``criterion=None`` is the recipe's (``RECIPE["criterion"]``) for weights and n:m, ``"magnitude"`` (the
      L2 norm of a neuron's weights) for neurons.
    - ``schedule``: ``"one-shot"``, ``"iterative"`` (``prune_steps`` cubic steps, one per round) or
      ``"gradual"`` (cubic, every ``prune_every`` steps over the first ``ramp`` of the budget, after a head
      start: ``min(start_sparsity, sparsity)`` pruned at once by ``start_criterion`` and reconstructed in
      closed form; ``start_sparsity=0`` for none; OBS prunes single weights, so for neurons or n:m the
      head start uses ``criterion``).
    - ``recovery``: one of ``RECOVERIES``. Training recoveries use ``optimizer`` at ``lr`` (default: the
      original rate ``original_lr``; for ``"finetune"`` a tenth of it) with ``lr_schedule`` (``"constant"``
      or ``"cosine"`` over the whole budget). ``"retrain"`` re-initialises the survivors, ``"rewind"`` loads
      ``rewind_to`` (a state dict or the dense training's ``WeightSnapshot``, epoch 1 if it has it, else 0),
      ``"distill"`` trains on the dense model's outputs (``distill_output``, ``temperature``, ``alpha``:
      see ``recover.distill``), ``"reconstruct"`` solves each layer in closed form on ``calibration``
      training rows (no labels, no epochs), ``"reconstruct+X"`` does that and then X.
    - ``tolerance``: C and F compare with ``dense - tolerance`` (a fraction: 0.005 is half a point).
    - ``max_rounds`` rounds of ``epochs_per_round`` epochs at most: the budget.

    Shapes: ``data.train.X`` (n, model.sizes[0]). Example: the module's docstring.
    """
    started = time.perf_counter()
    say = log or (lambda text: None)
    _choice("schedule", schedule, SCHEDULES)
    _choice("recovery", recovery, RECOVERIES)
    if criterion is None:
        criterion = "magnitude" if structure == "neurons" else RECIPE["criterion"]
    _choice("criterion", criterion, CRITERIA if structure == "weights" else
            (*pruning.CRITERIA, *pruning.NEURON_CRITERIA))
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance is a fraction of accuracy in [0, 1), e.g. 0.005 for half a point; "
                         f"got {tolerance}")
    for label, value in (("max_rounds", max_rounds), ("epochs_per_round", epochs_per_round),
                         ("prune_steps", prune_steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
    if schedule == "iterative" and prune_steps > max_rounds:
        raise ValueError(f"schedule='iterative' prunes once per round: prune_steps ({prune_steps}) must not "
                         f"exceed max_rounds ({max_rounds})")
    closed_form = recovery.startswith("reconstruct")
    if schedule == "gradual" and closed_form:
        raise ValueError("reconstruction solves for a fixed mask; with schedule='gradual' the mask changes "
                         "during training: use schedule='one-shot' or 'iterative'")
    if schedule == "gradual" and (criterion == "obs" or recovery in ("none", "retrain", "rewind")):
        raise ValueError("schedule='gradual' prunes during training: it needs a recovery that trains from "
                         "the pruned weights (finetune, lr-rewind, distill) and a criterion of "
                         "tinyprune.prune (not 'obs')")
    _choice("start_criterion", start_criterion, CRITERIA)
    if not 0 <= start_sparsity < 1:
        raise ValueError(f"start_sparsity must lie in [0, 1), got {start_sparsity}")
    if not 0 < ramp <= 1:
        raise ValueError(f"ramp (the fraction of the budget over which gradual pruning runs) must lie in "
                         f"(0, 1], got {ramp}")
    if recovery == "rewind" and rewind_to is None:
        raise ValueError("recovery='rewind' needs rewind_to: the dense model's early weights (pass the "
                         "WeightSnapshot given to the dense fit, or a state dict)")
    train, test, name = _splits(data)
    training = recovery.split("+")[-1] if recovery != "none" else None
    if training == "reconstruct":
        training = None
    calib = _calibration(train, calibration, seed)
    config = {"dataset": name, "sparsity": sparsity, "criterion": criterion, "scope": scope,
              "structure": structure, "schedule": schedule, "recovery": recovery, "tolerance": tolerance,
              "max_rounds": max_rounds, "epochs_per_round": epochs_per_round, "seed": seed,
              "optimizer": optimizer, "lr": lr, "lr_schedule": lr_schedule, "batch_size": batch_size,
              "original_lr": original_lr, "ramp": ramp, "start_sparsity": start_sparsity,
              "start_criterion": start_criterion, "prune_every": prune_every,
              "prune_steps": prune_steps,
              "distill_output": distill_output, "temperature": temperature, "alpha": alpha,
              "calibration": len(calib[0]), "damping": damping, "train_rows": len(train),
              "eval_rows": len(test)}

    # A: the trained dense model.
    dense_acc = evaluate(model, test)["accuracy"] if dense_accuracy is None else float(dense_accuracy)
    dense_summary = metrics.summary(model).to_dict()
    teacher = copy.deepcopy(model)
    say(f"dense accuracy {_pct(dense_acc)}")

    steps_per_epoch = math.ceil(len(train) / batch_size)
    budget_steps = max_rounds * epochs_per_round * steps_per_epoch
    rate = lr if lr is not None else original_lr * (0.1 if training == "finetune" else 1.0)
    opt: Optimizer | None = None
    callbacks: list[Any] = []
    probe: _AccuracyAt | None = None
    rounds: list[Round] = []
    per_epoch: list[float] = []
    closed_seconds = 0.0
    epochs_done = 0
    pruned_acc: float | None = None
    at_target = False
    dropped = True
    recovered = False

    def reset_weights() -> None:
        if training == "retrain":
            recover.reinitialize(model, seed + 1)
        elif training == "rewind":
            if isinstance(rewind_to, WeightSnapshot):
                recover.rewind_weights(model, rewind_to, epoch=1 if 1 in rewind_to.epochs else 0)
            else:
                recover.rewind_weights(model, rewind_to)

    def closed_form_step() -> float:
        began = time.perf_counter()
        recover.reconstruct(model, teacher, calib[0], damping=damping)
        return time.perf_counter() - began

    # B: prune (one-shot: now; iterative: at the start of each of the first rounds; gradual: while training).
    if schedule == "one-shot":
        began = time.perf_counter()
        _prune_to(model, sparsity, criterion, scope, structure, calib, seed, damping)
        if criterion == "obs":
            closed_seconds += time.perf_counter() - began
        pruned_acc = evaluate(model, test)["accuracy"]
        at_target = True
        say(f"pruned to {_pct(weight_sparsity(model))}: accuracy {_pct(pruned_acc)}")
        # C: did the accuracy drop?
        dropped = pruned_acc < dense_acc - tolerance
        recovered = not dropped
    elif schedule == "gradual":
        head = min(start_sparsity, sparsity)
        if head > 0:                    # the head start: prune at once, solve the survivors in closed form
            began = time.perf_counter()
            first = start_criterion if structure == "weights" or start_criterion != "obs" else criterion
            _prune_to(model, head, first, scope, structure, calib, seed, damping)
            recover.reconstruct(model, teacher, calib[0], damping=damping)
            closed_seconds += time.perf_counter() - began
            say(f"head start: {start_criterion} to {_pct(weight_sparsity(model))} and reconstruction: "
                f"accuracy {_pct(evaluate(model, test)['accuracy'])}")
        if head < sparsity:
            end_step = max(1, int(round(ramp * budget_steps)))
            every = prune_every or max(1, steps_per_epoch // 20)
            callbacks.append(pruning.PolynomialPruning(
                sparsity, begin_step=0, end_step=end_step, every=every, initial_sparsity=head,
                criterion=criterion, scope=scope, structure=structure,
                data=calib if criterion in pruning.NEEDS_DATA else None, seed=seed))
            probe = _AccuracyAt(end_step, test)
            callbacks.append(probe)
        else:                           # the head start reached the target: C as for one-shot
            pruned_acc = evaluate(model, test)["accuracy"]
            at_target = True
            dropped = pruned_acc < dense_acc - tolerance
            recovered = not dropped

    steps = iterative_steps(sparsity, prune_steps) if schedule == "iterative" else []
    for number in range(1, max_rounds + 1):
        if not dropped:
            break
        began = time.perf_counter()
        actions = []
        if schedule == "iterative" and number <= len(steps):
            _prune_to(model, steps[number - 1], criterion, scope, structure, calib, seed, damping)
            actions.append(f"prune to {steps[number - 1]:.1%}")
            if number == len(steps):
                at_target = True
                pruned_acc = evaluate(model, test)["accuracy"]
                say(f"pruned to {_pct(weight_sparsity(model))}: accuracy {_pct(pruned_acc)}")
                dropped = pruned_acc < dense_acc - tolerance     # C
                if not dropped:
                    recovered = True
                    rounds.append(Round(number, ", ".join(actions), weight_sparsity(model), 0,
                                        time.perf_counter() - began, pruned_acc, True))
                    break
        if number == 1 and schedule == "one-shot" or schedule == "iterative" and number <= len(steps):
            if training in ("retrain", "rewind"):      # the lottery ticket: reset after every pruning
                reset_weights()
                actions.append("re-initialise" if training == "retrain" else "rewind weights")
            if closed_form:
                closed_seconds += closed_form_step()
                actions.append("reconstruct")
        # D: recover for one round.
        epochs = 0
        if training is not None:
            if opt is None:
                opt = recover.build_optimizer(model, optimizer, lr=rate, schedule=lr_schedule,
                                              total_steps=budget_steps)
            history: History
            if training == "distill":
                history = recover.distill(model, teacher, train, epochs=epochs_per_round, optimizer=opt,
                                          batch_size=batch_size, output=distill_output,
                                          temperature=temperature, alpha=alpha, val=test, seed=seed,
                                          callbacks=callbacks, progress=progress is True or progress == "bar",
                                          initial_epoch=epochs_done)
            else:
                history = fit(model, train, epochs=epochs_per_round, batch_size=batch_size, optimizer=opt,
                              val=test, seed=seed, progress=progress, callbacks=callbacks,
                              initial_epoch=epochs_done)
            epochs = len(history)
            epochs_done += epochs
            per_epoch += [float(a) for a in history.val_accuracy]
            actions.append(f"{training} ({type(opt).__name__}, lr {rate:g} {lr_schedule})")
            accuracy = per_epoch[-1]
        else:
            accuracy = evaluate(model, test)["accuracy"]
        if probe is not None and probe.accuracy is not None and not at_target:
            at_target, pruned_acc = True, probe.accuracy
            say(f"gradual pruning reached {_pct(weight_sparsity(model))}: accuracy {_pct(pruned_acc)}")
        # F: recovered?
        recovered = at_target and accuracy >= dense_acc - tolerance
        rounds.append(Round(number, ", ".join(actions) or "nothing", weight_sparsity(model), epochs,
                            time.perf_counter() - began, accuracy, recovered))
        say(f"round {number}: {rounds[-1].action} -> accuracy {_pct(accuracy)}")
        if recovered or (training is None and at_target):
            break                       # recovered, or a closed-form recovery has nothing more to give

    final_acc = evaluate(model, test)["accuracy"]
    if pruned_acc is None:              # gradual pruning that never reached its end step
        pruned_acc = final_acc
    table = metrics.summary(model)
    info = table.to_dict()
    return Report(
        config=config, dense_accuracy=dense_acc, pruned_accuracy=pruned_acc, final_accuracy=final_acc,
        sparsity=weight_sparsity(model), layer_sparsity=layer_sparsity(model), epochs_used=epochs_done,
        seconds=time.perf_counter() - started, dropped=dropped, recovered=recovered, rounds=rounds,
        accuracy_per_epoch=per_epoch, closed_form_seconds=closed_seconds, params=table.total.params,
        nonzeros=table.total.nonzeros, flops_dense=table.total.flops_dense,
        flops_effective=table.total.flops_effective, compression=info["compression_ratio"],
        speedup=info["speedup"], dense_summary=dense_summary, summary=info)


# --------------------------------------------------------------------------- sweeps
@dataclass
class Sweep:
    """Accuracy over a grid: one record per run (``runs``) and mean ± std over the seeds per cell (``cells``).

    A cell is ``(criterion, sparsity, recovery)``; its fields are ``final_mean``, ``final_std``,
    ``pruned_mean``, ``pruned_std``, ``epochs_mean``, ``seconds_mean``, ``n`` (runs). ``dense_accuracy``
    is the mean accuracy of the dense model(s).
    """

    runs: list[dict[str, Any]]
    cells: list[dict[str, Any]]
    dense_accuracy: float
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"dense_accuracy": self.dense_accuracy, "cells": self.cells, "runs": self.runs,
                "options": self.options}

    def to_json(self, path: str | os.PathLike[str] | None = None, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent, default=_jsonable)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def cell(self, criterion: str, sparsity: float, recovery: str) -> dict[str, Any]:
        """The aggregated cell, or ``KeyError``."""
        for cell in self.cells:
            if (cell["criterion"], cell["sparsity"], cell["recovery"]) == (criterion, sparsity, recovery):
                return cell
        raise KeyError((criterion, sparsity, recovery))

    def __str__(self) -> str:
        header = ("criterion", "sparsity", "recovery", "after pruning %", "after recovery %", "epochs", "s")
        rows = [header] + [(c["criterion"], f"{c['sparsity']:.0%}", c["recovery"],
                            f"{100 * c['pruned_mean']:.2f} ± {100 * c['pruned_std']:.2f}",
                            f"{100 * c['final_mean']:.2f} ± {100 * c['final_std']:.2f}",
                            f"{c['epochs_mean']:.1f}", f"{c['seconds_mean']:.1f}") for c in self.cells]
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
        lines = ["  ".join(str(v).ljust(w) if i < 3 else str(v).rjust(w)
                           for i, (v, w) in enumerate(zip(row, widths))) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        return f"dense accuracy {100 * self.dense_accuracy:.2f} %\n" + "\n".join(lines)


def aggregate(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation (0 for one run) over seeds, per (criterion, sparsity, recovery).

    Runs that failed (a record with an ``"error"``) are left out.
    """
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for run in runs:
        if run.get("error"):
            continue                      # a run that could not be done (its error is in the runs)
        groups.setdefault((run["criterion"], run["sparsity"], run["recovery"]), []).append(run)

    def mean_std(values: list[float]) -> tuple[float, float]:
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    cells = []
    for (criterion, sparsity, recovery), members in sorted(groups.items()):
        final = mean_std([m["final_accuracy"] for m in members])
        pruned = mean_std([m["pruned_accuracy"] for m in members])
        cells.append({"criterion": criterion, "sparsity": sparsity, "recovery": recovery,
                      "final_mean": final[0], "final_std": final[1], "pruned_mean": pruned[0],
                      "pruned_std": pruned[1],
                      "epochs_mean": statistics.fmean(m["epochs_used"] for m in members),
                      "seconds_mean": statistics.fmean(m["seconds"] for m in members),
                      "recovered": sum(bool(m["recovered"]) for m in members), "n": len(members)})
    return cells


_WORKER: dict[str, Any] = {}


def _init_worker(models: dict[int, MLP], data: Any, snapshots: dict[int, Any], single_thread: bool) -> None:
    """Runs once in each worker process: keep the dense models and the data, pin BLAS to one thread."""
    _WORKER.update(models=models, data=data, snapshots=snapshots)
    if single_thread:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return
        _WORKER["limits"] = threadpool_limits(limits=1, user_api="blas")


def _run_cell(task: dict[str, Any]) -> dict[str, Any]:
    """One run of the grid: a copy of the seed's dense model, ``prune_and_recover``, a flat record."""
    options = dict(task["options"])
    model = copy.deepcopy(_WORKER["models"][task["seed"]])
    if options.get("rewind_to") == "snapshots":
        options["rewind_to"] = _WORKER["snapshots"].get(task["seed"])
    key = {"criterion": task["criterion"], "sparsity": task["sparsity"], "recovery": task["recovery"],
           "seed": task["seed"]}
    try:
        report = prune_and_recover(model, _WORKER["data"], sparsity=task["sparsity"],
                                   criterion=task["criterion"], recovery=task["recovery"], seed=task["seed"],
                                   **options)
    except ValueError as error:        # e.g. a criterion that would cut a layer off entirely at this sparsity
        return {**key, "error": " ".join(str(error).split())}
    return {"criterion": task["criterion"], "sparsity": task["sparsity"], "recovery": task["recovery"],
            "seed": task["seed"], "dense_accuracy": report.dense_accuracy,
            "pruned_accuracy": report.pruned_accuracy, "final_accuracy": report.final_accuracy,
            "real_sparsity": report.sparsity, "layer_sparsity": report.layer_sparsity,
            "epochs_used": report.epochs_used, "seconds": report.seconds,
            "closed_form_seconds": report.closed_form_seconds, "recovered": report.recovered,
            "accuracy_per_epoch": report.accuracy_per_epoch}


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="sweep", unit="run", file=sys.stderr)


def sweep(model: MLP | dict[int, MLP] | Callable[[int], MLP], data: Any, *,
          criteria: Sequence[str] = ("magnitude",), sparsities: Sequence[float] = (0.5, 0.8, 0.9, 0.95, 0.98),
          recoveries: Sequence[str] = ("finetune",),
          seeds: Sequence[int] = (0,), workers: int = 1, progress: bool = True,
          snapshots: dict[int, Any] | None = None, **options: Any) -> Sweep:
    """Run ``prune_and_recover`` on every (criterion, sparsity, recovery, seed) and average over the seeds.

    ``model`` is the trained dense model (copied for every run), ``{seed: model}``, or ``seed -> model``.
    A run whose arguments ``prune_and_recover`` refuses (``ValueError``, e.g. a criterion that would remove a
    whole layer at that sparsity) is recorded with its ``"error"`` and left out of the cells.
    ``options`` go to ``prune_and_recover`` (schedule, budget, optimizer, ...); with ``snapshots``
    (``{seed: WeightSnapshot}``) the ``"rewind"`` recovery rewinds to them. ``workers > 1`` runs the cells in
    that many processes (``concurrent.futures.ProcessPoolExecutor``, BLAS pinned to one thread each);
    ``workers=1`` runs them here, in order. A progress bar (tqdm, if installed) counts the runs.

    Shapes: ``data.train.X`` (n, d_0) -> ``Sweep`` with one cell per (criterion, sparsity, recovery).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    for criterion in criteria:
        _choice("criterion", criterion, CRITERIA)
    for recovery in recoveries:
        _choice("recovery", recovery, RECOVERIES)
    if isinstance(model, MLP):
        models = {seed: model for seed in seeds}
    elif isinstance(model, dict):
        models = {seed: model[seed] for seed in seeds}
    else:
        models = {seed: model(seed) for seed in seeds}
    if snapshots is not None:
        options["rewind_to"] = "snapshots"
    dense = statistics.fmean(evaluate(m, _splits(data)[1])["accuracy"] for m in models.values())
    options.setdefault("dense_accuracy", None)
    tasks = [{"criterion": c, "sparsity": float(s), "recovery": r, "seed": seed, "options": options}
             for c in criteria for s in sparsities for r in recoveries for seed in seeds]
    bar = _progress(len(tasks), progress)
    runs: list[dict[str, Any]] = []
    if workers == 1:
        _init_worker(models, data, snapshots or {}, single_thread=False)
        try:
            for task in tasks:
                runs.append(_run_cell(task))
                if bar is not None:
                    bar.update(1)
        finally:
            _WORKER.clear()
    else:
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else methods[0])
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                 initargs=(models, data, snapshots or {}, True)) as pool:
            futures = [pool.submit(_run_cell, task) for task in tasks]
            for future in as_completed(futures):
                runs.append(future.result())
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    failed = [run for run in runs if run.get("error")]
    if failed and len(failed) == len(runs):
        raise ValueError(f"every run of the sweep failed, e.g. {failed[0]['criterion']} at "
                         f"{failed[0]['sparsity']}: {failed[0]['error']}")
    order = {(t["criterion"], t["sparsity"], t["recovery"], t["seed"]): i for i, t in enumerate(tasks)}
    runs.sort(key=lambda r: order[(r["criterion"], r["sparsity"], r["recovery"], r["seed"])])
    shown = {k: v for k, v in options.items() if not isinstance(v, (np.ndarray, dict))}
    return Sweep(runs=runs, cells=aggregate(runs), dense_accuracy=dense, options=shown)


__all__ = ["CRITERIA", "RECIPE", "RECOVERIES", "SCHEDULES", "Report", "Round", "Sweep", "aggregate",
           "iterative_steps", "layer_sparsity", "prune_and_recover", "sweep", "weight_sparsity"]
