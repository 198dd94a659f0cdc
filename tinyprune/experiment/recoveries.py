"""Box D of the flowchart as small parts: each recovery does one round, by calling ``tinyprune.recover``.

A recovery has two moments: ``after_pruning(run)`` runs once each time the mask changes (a lottery ticket
rewinds its weights there, a closed-form recovery solves the survivors), and ``round(run, epochs)`` runs
once per round of the loop (a training recovery trains ``epochs`` epochs). A training recovery also names
its own learning rate and schedule, used when the recipe leaves ``lr`` / ``lr_schedule`` unset:

==============  ===================================================  ==================  ==========
name            what one round does                                  own learning rate   schedule
==============  ===================================================  ==================  ==========
``none``        nothing (measure what pruning alone leaves)          -                   -
``finetune``    train the survivors on the labels (Han et al. 2015)  original / 10       constant
``lr-rewind``   the same at the original rate (Renda et al. 2020)    original            constant
``retrain``     re-initialise after pruning, then train              original            constant
``rewind``      rewind to the dense model's early weights, train     original            constant
                (the lottery ticket, Frankle & Carbin 2019)
``distill``     train on the dense model's outputs (the document's   10 x original       cosine
                residual, section 4.3; ``recover.Distillation``)
``reconstruct`` solve the survivors in closed form after pruning     -                   -
                (the document's "parameter adjustment"; no epochs)
==============  ===================================================  ==================  ==========

Above 90 % sparsity the own rate grows as ``sqrt(0.1 / (1 - s))`` (x1.41 at 95 %, x2.24 at 98 %) unless
the recipe's ``lr_scaling`` is ``"none"`` (``recover.density_scaled_lr``); an explicit ``lr`` is used as is.
``"reconstruct+finetune"`` (any closed form, then any training recovery) composes two parts with ``Then``.
After every round of a training recovery the recipe's ``final_solve`` may solve the survivors again in
closed form on the mask (``solve_after_training``): OBS's update for a fixed mask, which is the
least-squares fit of ``recover.reconstruct`` to the dense model's outputs on the calibration rows (exactly
so in the first layer, where both see the same inputs; later layers also absorb the error of the layers
before them), in every layer or in the output layer only (the trained hidden layers kept).
Adding a recovery is one class with ``@register_recovery`` (``experiment.parts``), which declares what it
is (``trains``, ``closed_form``, ``keeps_weights``): the recipe's combination rules read those declarations.
"""

from __future__ import annotations

from typing import Any

from tinyprune import recover
from tinyprune.experiment.parts import (
    RECOVERIES,
    Recovery,
    recovery_parts,
    register_recovery,
)

register_recovery(Recovery)


@register_recovery
class Finetune(Recovery):
    """Masked training of the survivors on the labels, at a tenth of the original rate."""

    name, trains, lr_factor = "finetune", True, 0.1

    def round(self, run: Any, epochs: int) -> list[str]:
        return [run.train_epochs(epochs, self), *solve_after_training(run)]


@register_recovery
class LRRewind(Finetune):
    """Fine-tuning at the original learning rate: with a constant rate, rewinding it is replaying it."""

    name, lr_factor = "lr-rewind", 1.0


@register_recovery
class Retrain(Finetune):
    """After each pruning, fresh Glorot weights under the mask (the lottery ticket's random control)."""

    name, lr_factor, keeps_weights = "retrain", 1.0, False

    def after_pruning(self, run: Any) -> list[str]:
        recover.reinitialize(run.model, run.recipe.seed + 1)
        return ["re-initialise"]


@register_recovery
class Rewind(Finetune):
    """After each pruning, the dense model's weights of epoch ``recipe.rewind_epoch`` under the mask."""

    name, lr_factor, keeps_weights, needs_snapshot = "rewind", 1.0, False, True

    def after_pruning(self, run: Any) -> list[str]:
        recover.rewind_weights(run.model, run.rewind_to, epoch=run.recipe.rewind_epoch)  # a state dict: as is
        return [f"rewind to epoch {run.recipe.rewind_epoch}"]


@register_recovery
class Distill(Recovery):
    """Training on the dense model's outputs (KL, probabilities or logits), mixed with the labels by alpha."""

    name, trains, lr_factor, lr_schedule = "distill", True, 10.0, "cosine"

    def round(self, run: Any, epochs: int) -> list[str]:
        r = run.recipe
        loss = recover.Distillation(
            run.teacher, output=r.distill_output, temperature=r.temperature, alpha=r.alpha,
            hidden_weight=r.hidden_weight,
        )
        return [run.train_epochs(epochs, self, loss=loss), *solve_after_training(run)]


@register_recovery
class Reconstruct(Recovery):
    """Least-squares refit of the survivors and biases to the dense outputs (``recover.reconstruct``)."""

    name, closed_form = "reconstruct", True

    def after_pruning(self, run: Any) -> list[str]:
        run.reconstruct()
        return ["reconstruct"]


def solve_after_training(run: Any) -> list[str]:
    """The recipe's ``final_solve`` after a round of training: the survivors of every layer, or of the
    output layer only, refit in closed form to the dense model's outputs (``run.reconstruct``, timed as
    closed form) and measured as a ``"closed form"`` step; nothing for ``"none"``."""
    which = run.recipe.final_solve
    if which == "none":
        return []
    layers = None if which == "every-layer" else [len(run.model.layers) - 1]
    run.reconstruct(layers)
    action = f"final solve: {'every layer' if layers is None else 'the output layer'} refit in closed form"
    run.record("closed form", f"{action} to the dense outputs ({len(run.calibration[0]):,} calibration rows)")
    return [action]


class Then(Recovery):
    """A closed-form part, then a training part: ``reconstruct+finetune``."""

    def __init__(self, first: Recovery, second: Recovery) -> None:
        self.first, self.second = first, second
        self.name = f"{first.name}+{second.name}"
        self.trains, self.keeps_weights = second.trains, second.keeps_weights
        self.lr_factor, self.lr_schedule = second.lr_factor, second.lr_schedule

    def after_pruning(self, run: Any) -> list[str]:
        return self.first.after_pruning(run) + self.second.after_pruning(run)

    def round(self, run: Any, epochs: int) -> list[str]:
        return self.first.round(run, epochs) + self.second.round(run, epochs)


def make_recovery(name: str) -> Recovery:
    """The part for a name of ``RECOVERIES`` or a composition ``closed+training`` (``Then``).

    >>> make_recovery("reconstruct+finetune").name, make_recovery("distill").trains
    ('reconstruct+finetune', True)
    """
    parts = [part() for part in recovery_parts(name)]
    return Then(*parts) if len(parts) == 2 else parts[0]


__all__ = [
    "RECOVERIES", "Distill", "Finetune", "LRRewind", "Reconstruct", "Recovery", "Retrain", "Rewind", "Then",
    "make_recovery", "solve_after_training",
]
