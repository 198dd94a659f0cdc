"""The parts of the loop and what each declares about itself: the registries the ``Recipe`` reads.

A *pruning schedule* (box B: when the mask changes) and a *recovery* (box D: one round of recovery) are
small classes. Each declares, as class attributes, the properties the recipe's combination rules need,
so the recipe checks a combination by reading declarations and never imports a part:

===========================  =====================================================================
``Recovery.trains``          one round trains epochs (fine-tuning, distillation ...)
``Recovery.closed_form``     it solves the survivors in closed form after the mask changes (no epochs)
``Recovery.keeps_weights``   it starts from the pruned weights (``retrain`` and ``rewind`` do not)
``Recovery.needs_snapshot``  it needs the dense training's early weights (``rewind_to``)
``PruneSchedule.during_training``  the mask changes while the recovery trains (gradual, RigL)
===========================  =====================================================================

Adding a part is one class and one line: ``@register_recovery`` (or ``@register_schedule``) on a
subclass with a ``name``. This module imports nothing of tinyprune: it is the floor both the parts and
the recipe stand on.

>>> @register_recovery
... class Nap(Recovery):
...     '''Do nothing, slowly.'''
...     name = "nap"
>>> "nap" in RECOVERIES, RECOVERIES["nap"].trains
(True, False)
>>> del RECOVERIES["nap"]
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, TypeVar


class Recovery:
    """Box D: what to do after the mask changed (``after_pruning``) and one round (``round``).

    Both receive the run's ``Context`` and return the lines of what they did, for the report.
    """

    name = "none"
    trains = False
    closed_form = False
    keeps_weights = True
    needs_snapshot = False
    lr_factor: float | None = None    # a training recovery's own rate, as a multiple of the original one
    lr_schedule = "constant"

    def after_pruning(self, run: Any) -> list[str]:
        """Runs once after every change of the mask."""
        return []

    def round(self, run: Any, epochs: int) -> list[str]:
        """One round of recovery of ``epochs`` epochs."""
        return []


class PruneSchedule:
    """Box B: when the mask changes. ``start`` runs once, ``before_round`` before every round."""

    name = ""
    during_training = False

    def __init__(self, recipe: Any) -> None:
        self.recipe = recipe

    def start(self, run: Any) -> None:
        """B at the start of the loop."""

    def before_round(self, run: Any, number: int) -> None:
        """B again before round ``number`` (1-based)."""


RECOVERIES: dict[str, type[Recovery]] = {}
PRUNE_SCHEDULES: dict[str, type[PruneSchedule]] = {}
Part = TypeVar("Part", bound=type)


def register_recovery(part: Part) -> Part:
    """Class decorator: ``RECOVERIES[part.name] = part``."""
    RECOVERIES[part.name] = part
    return part


def register_schedule(part: Part) -> Part:
    """Class decorator: ``PRUNE_SCHEDULES[part.name] = part``."""
    PRUNE_SCHEDULES[part.name] = part
    return part


def did_you_mean(value: Any, choices: Iterable[str]) -> str:
    """``" (did you mean 'distill'?)"`` for a near miss of ``choices``, else ``""``.

    >>> did_you_mean("distil", ["finetune", "distill"])
    " (did you mean 'distill'?)"
    """
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def recovery_parts(name: str) -> tuple[type[Recovery], ...]:
    """The parts of a recovery name: ``"reconstruct+finetune"`` -> ``(Reconstruct, Finetune)``.

    A composition is one closed form then one training recovery; anything else raises ``ValueError``.
    """
    names = name.split("+") if isinstance(name, str) else [name]
    unknown = [n for n in names if n not in RECOVERIES]
    if unknown:
        raise ValueError(f"expected one of {', '.join(RECOVERIES)} (or closed form + training, e.g. "
                         f"reconstruct+finetune), got {name!r}{did_you_mean(unknown[0], RECOVERIES)}")
    parts = tuple(RECOVERIES[n] for n in names)
    if len(parts) > 2 or (len(parts) == 2 and not (parts[0].closed_form and not parts[1].closed_form
                                                   and parts[1].name != "none")):
        raise ValueError(f"expected one closed form then one training recovery, e.g. reconstruct+finetune, "
                         f"got {name!r}")
    return parts


def training_part(name: str) -> type[Recovery] | None:
    """The part of a recovery name that trains, if any (``"reconstruct+distill"`` -> ``Distill``)."""
    return next((part for part in recovery_parts(name) if part.trains), None)


def closed_form_part(name: str) -> type[Recovery] | None:
    """The part of a recovery name that solves in closed form, if any."""
    return next((part for part in recovery_parts(name) if part.closed_form), None)


__all__ = [
    "PRUNE_SCHEDULES", "RECOVERIES", "PruneSchedule", "Recovery", "closed_form_part", "did_you_mean",
    "recovery_parts", "register_recovery", "register_schedule", "training_part",
]
