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
Adding a recovery is writing one small class and one line in ``RECOVERIES``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinyprune import recover
from tinyprune.training import WeightSnapshot

if TYPE_CHECKING:
    from tinyprune.experiment.run import Run


class Recovery:
    """A part of the loop: what to do after the mask changed, and one round of recovery."""

    name = "none"
    trains = False
    lr_factor: float | None = None  # the own learning rate, as a multiple of the original one
    lr_schedule = "constant"

    def after_pruning(self, run: Run) -> list[str]:
        """Runs once after every change of the mask; returns what it did, for the report."""
        return []

    def round(self, run: Run, epochs: int) -> list[str]:
        """One round of recovery of ``epochs`` epochs; returns what it did, for the report."""
        return []


class Finetune(Recovery):
    """Masked training of the survivors on the labels, at a tenth of the original rate."""

    name, trains, lr_factor = "finetune", True, 0.1

    def round(self, run: Run, epochs: int) -> list[str]:
        return [run.train_epochs(epochs, self)]


class LRRewind(Finetune):
    """Fine-tuning at the original learning rate: with a constant rate, rewinding it is replaying it."""

    name, lr_factor = "lr-rewind", 1.0


class Retrain(Finetune):
    """After each pruning, fresh Glorot weights under the mask (the lottery ticket's random control)."""

    name, lr_factor = "retrain", 1.0

    def after_pruning(self, run: Run) -> list[str]:
        recover.reinitialize(run.model, run.recipe.seed + 1)
        return ["re-initialise"]


class Rewind(Finetune):
    """After each pruning, the dense model's weights of epoch ``recipe.rewind_epoch`` under the mask."""

    name, lr_factor = "rewind", 1.0

    def after_pruning(self, run: Run) -> list[str]:
        if run.rewind_to is None:
            raise ValueError(
                "recovery 'rewind' needs the dense model's early weights: pass rewind_to (the "
                "WeightSnapshot given to the dense fit, or a state dict)"
            )
        if isinstance(run.rewind_to, WeightSnapshot):
            recover.rewind_weights(run.model, run.rewind_to, epoch=run.recipe.rewind_epoch)
        else:
            recover.rewind_weights(run.model, run.rewind_to)
        return [f"rewind to epoch {run.recipe.rewind_epoch}"]


class Distill(Recovery):
    """Training on the dense model's outputs (KL, probabilities or logits), mixed with the labels by alpha."""

    name, trains, lr_factor, lr_schedule = "distill", True, 10.0, "cosine"

    def round(self, run: Run, epochs: int) -> list[str]:
        r = run.recipe
        loss = recover.Distillation(
            run.teacher, output=r.distill_output, temperature=r.temperature, alpha=r.alpha,
            hidden_weight=r.hidden_weight,
        )
        return [run.train_epochs(epochs, self, loss=loss)]


class Reconstruct(Recovery):
    """Least-squares refit of the survivors and biases to the dense outputs (``recover.reconstruct``)."""

    name = "reconstruct"

    def after_pruning(self, run: Run) -> list[str]:
        run.reconstruct()
        return ["reconstruct"]


class Then(Recovery):
    """A closed-form part, then a training part: ``reconstruct+finetune``."""

    def __init__(self, first: Recovery, second: Recovery) -> None:
        self.first, self.second = first, second
        self.name = f"{first.name}+{second.name}"
        self.trains = second.trains
        self.lr_factor, self.lr_schedule = second.lr_factor, second.lr_schedule

    def after_pruning(self, run: Run) -> list[str]:
        return self.first.after_pruning(run) + self.second.after_pruning(run)

    def round(self, run: Run, epochs: int) -> list[str]:
        return self.first.round(run, epochs) + self.second.round(run, epochs)


RECOVERIES: dict[str, type[Recovery]] = {
    part.name: part for part in (Recovery, Finetune, LRRewind, Retrain, Rewind, Distill, Reconstruct)
}
CLOSED_FORM = ("reconstruct",)


def recovery_names() -> tuple[str, ...]:
    """The names of ``RECOVERIES``."""
    return tuple(RECOVERIES)


def split_recovery(name: str) -> tuple[str | None, str | None]:
    """``"reconstruct+finetune"`` -> ``("reconstruct", "finetune")``: the closed-form and the training part.

    >>> split_recovery("distill"), split_recovery("reconstruct")
    ((None, 'distill'), ('reconstruct', None))
    """
    parts = name.split("+")
    closed = [p for p in parts if p in CLOSED_FORM]
    training = [p for p in parts if p not in CLOSED_FORM and p != "none"]
    if (
        len(parts) > 2
        or len(closed) > 1
        or len(training) > 1
        or (len(parts) == 2 and parts[0] not in CLOSED_FORM)
        or "none" in parts
        and len(parts) > 1
    ):
        raise ValueError(
            f"recovery {name!r}: a composition is one closed form then one training recovery, "
            "e.g. reconstruct+finetune"
        )
    return (closed[0] if closed else None), (training[0] if training else None)


def make_recovery(name: str) -> Recovery:
    """The part for a recovery name of ``RECOVERIES`` or a composition ``closed+training``."""
    closed, training = split_recovery(name)
    if closed and training:
        return Then(RECOVERIES[closed](), RECOVERIES[training]())
    return RECOVERIES[closed or training or "none"]()


__all__ = [
    "RECOVERIES",
    "Distill",
    "Finetune",
    "LRRewind",
    "Reconstruct",
    "Recovery",
    "Retrain",
    "Rewind",
    "Then",
    "make_recovery",
    "recovery_names",
    "split_recovery",
]
