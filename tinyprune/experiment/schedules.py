"""Box B of the flowchart as small parts: when the mask changes.

- ``OneShot``: B prunes to the target once, before any recovery.
- ``Iterative``: B is spread over the first ``steps`` rounds; round r first prunes to
  ``s_r = s (1 - (1 - r/k)^p)`` (k = ``steps``, p = ``power``: 3 gives Zhu & Gupta's cubic steps, big ones
  first), then recovers (Han et al. 2015's loop).
- ``Gradual``: B happens *during* the recovery training, every few steps, along the same polynomial over
  the first ``ramp`` of the budget (``prune.PolynomialPruning``); every pruning step counts in the budget.
  With ``criterion="movement"`` the scores are those the recovery training itself accumulates
  (``prune.MovementScore``, Sanh et al. 2020). With ``criterion="obd"`` (the default recipe's) the
  saliency ``½ h_ii w_i²`` reads the current weights at every step, but the Hessian diagonal ``h`` (all
  of OBD's cost: a pass over every calibration row) is recomputed only every ``CURVATURE_EVERY`` pruning
  steps and at the last one (``_GradualOBD``).
  With ``criterion="obs"`` every pruning step of the ramp is Optimal Brain Surgeon on the recipe's
  calibration rows (``prune.obs``, as OBC and SparseGPT prune): each unit drops to the step's sparsity by
  the saliency ``w_q² / [H⁻¹]_qq`` and its survivors (and bias) move by the closed form
  ``δw = -H⁻¹_{:,Q} [H⁻¹_QQ]⁻¹ w_Q``. The optimizer zeroes its state under the new mask at its next
  step; the *moved* survivors keep their Adam moments (m, v), accumulated at the weights before the
  move, so the first steps after a surgery follow the old gradients' direction and scale (nothing resets
  them). The surgeries' seconds count as closed-form time. With scope ``global`` each step's layer
  sparsities come from one global ranking (``obs_allocation``): by magnitude, as the verb's OBS always
  does, or by OBD, the ranking the default recipe's own gradual steps use (``_OBSWithinRanking``).
  With a ``head_start`` it first prunes that much at once (by ``head_start_criterion``, Optimal Brain
  Surgeon by default) and solves the survivors in closed form (``recover.reconstruct``); with a per-layer
  target (an ``allocation``), each layer gets ``min(head_start, s_l)`` at once.
- ``RigL``: ``Gradual``, and during the ramp a RigL update every pruning interval (``prune.RigLRegrowth``):
  in each layer the smallest surviving weights are dropped and as many pruned ones with the largest
  gradient regrow, at the same sparsity. Masks *regain* entries here, which is the point of RigL; after
  the ramp the mask is fixed.

Each part tells the ``Run`` when the target is reached (``run.reached_target()``), which is when the loop
asks "did the accuracy drop?".
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyprune import prune
from tinyprune.core.nn import MLP
from tinyprune.experiment.parts import PRUNE_SCHEDULES, PruneSchedule, register_schedule
from tinyprune.experiment.run import Run, weight_sparsity


@register_schedule
class OneShot(PruneSchedule):
    """Prune to the target once."""

    name = "one-shot"

    def start(self, run: Run) -> None:
        run.prune_to(run.target)
        run.reached_target()


@register_schedule
class Iterative(PruneSchedule):
    """Prune to the next polynomial step before each of the first ``steps`` rounds."""

    name = "iterative"

    def before_round(self, run: Run, number: int) -> None:
        steps = prune.polynomial_steps(run.target, self.recipe.steps, self.recipe.power)
        if number <= len(steps):
            run.prune_to(steps[number - 1])
            run.record("pruning step", f"step {number} of {len(steps)}: {self.recipe.criterion} to "
                                       f"{weight_sparsity(run.model):.2%} of the weights")
            if number == len(steps):
                run.reached_target()


@register_schedule
class Gradual(PruneSchedule):
    """A head start at once, then pruning every few training steps along the polynomial."""

    name, during_training = "gradual", True

    def start(self, run: Run) -> None:
        head, reached = self.head_start(run)
        if reached:
            return
        end_step, every = self.ramp(run)
        movement = None
        if self.recipe.criterion == "movement":   # Sanh et al.: scores accumulated by the recovery itself
            movement = prune.MovementScore()
            run.callbacks.append(movement)        # before the pruning: each step's gradient counts first
        run.callbacks.append(self.pruning(run, head, end_step, every, movement))
        run.callbacks.append(_AtStep(end_step, run))

    def head_start(self, run: Run) -> tuple[float | dict[str, float], bool]:
        """Prune ``min(head_start, s)`` at once (``min(head_start, s_l)`` per layer) and reconstruct;
        returns the sparsity reached and whether it is the target. Nothing to prune: nothing moves."""
        r, target = self.recipe, run.target
        if isinstance(target, dict):
            head: float | dict[str, float] = {name: min(r.head_start, s) for name, s in target.items()}
            reached = all(head[name] >= s for name, s in target.items())
            pruning = any(value > 0 for value in head.values())
        else:
            head, reached = min(r.head_start, target), r.head_start >= target
            pruning = head > 0
        if pruning:                      # prune at once, then solve the survivors in closed form
            first = r.head_start_criterion
            if r.structure != "weights" and first == "obs":
                first = r.criterion      # OBS removes single weights: neurons, blocks, n:m use their own
            run.say(f"head start: pruning by {first} at once, then a least-squares solve of the survivors, "
                    f"on {len(run.calibration[0]):,} calibration rows (closed form: no epochs; about "
                    f"{closed_form_estimate(run.model.sizes, len(run.calibration[0])):.1f} s) ...")
            run.prune_to(head, criterion=first)
        if reached:
            run.reached_target()
        if pruning:
            run.reconstruct()
            update = "OBS's update of the survivors, then their" if first == "obs" else "the survivors'"
            run.record("closed form", f"head start: {update} least-squares reconstruction")
        return head, reached

    def ramp(self, run: Run) -> tuple[int, int]:
        """``(end_step, every)``: the last step of the ramp and the steps between pruning steps."""
        return ramp_steps(self.recipe, run.steps_per_epoch)

    def pruning(self, run: Run, head: float | dict[str, float], end_step: int, every: int,
                movement: Any = None) -> Any:
        """The ``fit`` callback that prunes from ``head`` to the target along the polynomial."""
        pruning = gradual_pruning(self.recipe, run.target, run.prune_options, head=head, end_step=end_step,
                                  every=every, scores=movement)
        pruner = prune.Pruner.from_schedule(run.model, pruning)   # the object a user's own loop steps
        return _ClosedFormTimed(pruner, run) if self.recipe.criterion == "obs" else pruner


def ramp_steps(recipe: Any, steps_per_epoch: int) -> tuple[int, int]:
    """``(end_step, every)`` of the gradual schedule in optimizer steps: the ramp ends at
    ``round(ramp · epochs · steps_per_epoch)`` (at least 1) and prunes every ``prune_every`` steps
    (default: a 20th of an epoch, at least 1).

    >>> from tinyprune.experiment.recipe import Recipe
    >>> ramp_steps(Recipe(epochs=4, ramp=0.5), steps_per_epoch=100)
    (200, 5)
    """
    budget = recipe.epochs * steps_per_epoch
    return max(1, round(recipe.ramp * budget)), recipe.prune_every or max(1, steps_per_epoch // 20)


def gradual_pruning(recipe: Any, target: Any, options: Any, *, head: Any, end_step: int, every: int,
                    scores: Any = None) -> prune.PolynomialPruning:
    """The gradual schedule of ``recipe`` from ``head`` to ``target`` over steps ``0 .. end_step``, its
    criterion's ``prune.prune`` options from ``options(criterion, scores=)`` (``Run.prune_options``): the
    one object behind both the experiment's ``Gradual`` and ``Pruner.from_recipe``."""
    within_obd = recipe.criterion == "obs" and recipe.obs_allocation == "obd"
    by_obd = recipe.criterion == "obd" and recipe.structure != "neurons"      # OBD of single weights
    kind = _OBSWithinRanking if within_obd else _GradualOBD if by_obd else prune.PolynomialPruning
    pruning = kind(target, begin_step=0, end_step=end_step, every=every, initial_sparsity=head,
                   power=recipe.power, **options(recipe.criterion, scores=scores))
    if within_obd:
        pruning.ranking_options = options("obd")
    return pruning


@register_schedule
class RigL(Gradual):
    """``Gradual``, with RigL's drop-and-regrow every pruning interval of the ramp (the mask then fixed)."""

    name = "rigl"

    def start(self, run: Run) -> None:
        head, reached = self.head_start(run)
        end_step, every = self.ramp(run)
        if not reached:  # prune to the target first, then regrow, at every pruning step
            run.callbacks.append(self.pruning(run, head, end_step, every))
        regrowth = prune.RigLRegrowth(run.calibration, begin_step=0, end_step=end_step, every=every,
                                      fraction=self.recipe.regrow, batch=256, seed=self.recipe.seed)
        run.callbacks.append(regrowth)
        run.callbacks.append(_AtStep(end_step, run))


#: Multiply-adds per second of the head start's closed forms, measured on this project's 2-core machine
#: (the default run: 784-64-64-10, 3,600 rows, 0.46 s; ``benchmarks/bench_scaling.py`` for other widths).
CLOSED_FORM_RATE = 6e9


def closed_form_estimate(sizes: list[int], rows: int) -> float:
    """A rough duration of the head start (OBS and reconstruction) in seconds, from the layer sizes: each
    layer's Gram matrix ``n (d+1)²`` and factorization ``(d+1)³`` multiply-adds at ``CLOSED_FORM_RATE``.

    >>> round(closed_form_estimate([784, 64, 64, 10], 3600), 2)
    0.46
    """
    work = sum(rows * (d + 1) ** 2 + (d + 1) ** 3 for d in sizes[:-1])
    return work / CLOSED_FORM_RATE


#: Pruning steps of gradual OBD between two computations of the Hessian diagonal (the last step always
#: computes it afresh); 1 computes it at every step. Chosen on validation: benchmarks/README.md,
#: "Gradual OBD: the curvature reused between steps".
CURVATURE_EVERY = 2


@dataclass(frozen=True)
class _OBDUnderCurvature(prune.OBD):
    """OBD's saliency ``s = ½ h_ii w_i²`` with a Hessian diagonal ``h`` computed earlier (``diagonal``) and
    the model's current weights: ``criteria.obd`` without recomputing ``h``, which is all of its cost (a
    forward pass and LeCun's backward recursion over every calibration row)."""

    diagonal: Any = field(default=None, repr=False, compare=False)

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Any = 0) -> dict[str, np.ndarray]:
        return {name: 0.5 * self.diagonal[name] * p.data.astype(np.float64) ** 2
                for name, p in model.named_parameters()}


class _Curvature:
    """The Hessian diagonal of gradual OBD, recomputed every ``CURVATURE_EVERY`` pruning steps and at the
    last; in between, ``h`` changes slowly (a few hundred optimizer steps, a fraction of a percent of the
    weights pruned) while ``w²`` is read at every step, so the ranking follows the weights."""

    def __init__(self) -> None:
        self.steps, self.criterion = 0, prune.OBD()

    def obd(self, model: MLP, data: tuple[np.ndarray, np.ndarray], last: bool) -> prune.OBD:
        """The criterion for this pruning step: OBD under a fresh or a kept Hessian diagonal."""
        if last or self.steps % CURVATURE_EVERY == 0:
            obd = prune.OBD()
            self.criterion = _OBDUnderCurvature(diagonal=prune.criteria.hessian_diagonal(
                model, *data, hessian=obd.hessian, loss=obd.loss, batch_size=obd.batch_size))
        self.steps += 1
        return self.criterion


class _GradualOBD(prune.PolynomialPruning):
    """Gradual OBD whose Hessian diagonal is reused between close steps (``_Curvature``)."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.curvature = _Curvature()

    def prune_model(self, model: Any, sparsity: Any) -> None:
        obd = self.curvature.obd(model, self.prune_options["data"], last=sparsity == self.final_sparsity)
        prune.prune(model, sparsity, **{**self.prune_options, "criterion": obd})


class _OBSWithinRanking(prune.PolynomialPruning):
    """Gradual OBS whose layer sparsities at each step are those of one global ranking (``ranking_options``,
    e.g. OBD's, its Hessian diagonal reused between close steps as in ``_GradualOBD``): a copy of the
    model is pruned by that ranking to the step's sparsity, and OBS then prunes each layer of the model
    to the copy's layer sparsity, with its update."""

    ranking_options: dict[str, Any]

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.curvature = _Curvature()

    def prune_model(self, model: Any, sparsity: Any) -> None:
        probe = copy.deepcopy(model)
        options = self.ranking_options
        if options["criterion"] == "obd" and options["structure"] != "neurons":
            last = sparsity == self.final_sparsity
            options = {**options, "criterion": self.curvature.obd(probe, options["data"], last)}
        masks = prune.prune(probe, sparsity, **options)
        layers = {name: 1.0 - float(mask.mean()) for name, mask in masks.items()}
        prune.prune(model, layers, **{**self.prune_options, "scope": "layer"})


class _ClosedFormTimed:
    """A ``fit`` callback around another: its seconds count as the run's closed-form time (OBS steps)."""

    def __init__(self, callback: Any, run: Run) -> None:
        self.callback, self.run = callback, run

    @property
    def history(self) -> Any:
        return self.callback.history

    def on_step_end(self, model: Any, optimizer: Any, epoch: int, step: int) -> None:
        began = time.perf_counter()
        self.callback.on_step_end(model, optimizer, epoch, step)
        self.run.closed_form_seconds += time.perf_counter() - began


class _AtStep:
    """A ``fit`` callback: the run reached its target right after optimizer step ``step``."""

    def __init__(self, step: int, run: Run) -> None:
        self.step, self.run = step, run

    def on_step_end(self, model: Any, optimizer: Any, epoch: int, step: int) -> None:
        if step == self.step:
            self.run.reached_target()


__all__ = ["PRUNE_SCHEDULES", "Gradual", "Iterative", "OneShot", "PruneSchedule", "RigL", "gradual_pruning",
           "ramp_steps"]
