"""Box B of the flowchart as small parts: when the mask changes.

- ``OneShot``: B prunes to the target once, before any recovery.
- ``Iterative``: B is spread over the first ``steps`` rounds; round r first prunes to
  ``s_r = s (1 - (1 - r/k)^p)`` (k = ``steps``, p = ``power``: 3 gives Zhu & Gupta's cubic steps, big ones
  first), then recovers (Han et al. 2015's loop).
- ``Gradual``: B happens *during* the recovery training, every few steps, along the same polynomial over
  the first ``ramp`` of the budget (``prune.PolynomialPruning``); every pruning step counts in the budget.
  With ``criterion="movement"`` the scores are those the recovery training itself accumulates
  (``prune.MovementScore``, Sanh et al. 2020).
  With a ``head_start`` it first prunes that much at once (by ``head_start_criterion``, Optimal Brain
  Surgeon by default) and solves the survivors in closed form (``recover.reconstruct``).

Each part tells the ``Run`` when the target is reached (``run.reached_target()``), which is when the loop
asks "did the accuracy drop?".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tinyprune import prune

if TYPE_CHECKING:
    from tinyprune.experiment.run import Run
    from tinyprune.recipe import Recipe


class PruneSchedule:
    """When B happens: at the start, before some rounds, or during training."""

    name = ""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe

    def start(self, run: Run) -> None:
        """B at the start of the loop."""

    def before_round(self, run: Run, number: int) -> None:
        """B again before round ``number`` (1-based)."""


class OneShot(PruneSchedule):
    """Prune to the target once."""

    name = "one-shot"

    def start(self, run: Run) -> None:
        run.prune_to(run.target)
        run.reached_target()


class Iterative(PruneSchedule):
    """Prune to the next polynomial step before each of the first ``steps`` rounds."""

    name = "iterative"

    def before_round(self, run: Run, number: int) -> None:
        steps = prune.polynomial_steps(run.target, self.recipe.steps, self.recipe.power)
        if number <= len(steps):
            run.prune_to(steps[number - 1])
            if number == len(steps):
                run.reached_target()


class Gradual(PruneSchedule):
    """A head start at once, then pruning every few training steps along the polynomial."""

    name = "gradual"

    def start(self, run: Run) -> None:
        r = self.recipe
        head = min(r.head_start, r.sparsity) if isinstance(r.sparsity, float) else 0.0
        if head > 0:                     # prune at once, then solve the survivors in closed form
            first = r.head_start_criterion
            if r.structure != "weights" and first == "obs":
                first = r.criterion      # OBS removes single weights: neurons, blocks, n:m use their own
            run.prune_to(head, criterion=first)
            run.reconstruct()
            run.say(f"head start: {first} to {head:.1%} and reconstruction: validation accuracy "
                    f"{run.accuracy('val'):.2%}")
        if head >= (r.sparsity if isinstance(r.sparsity, float) else 1.0):
            run.reached_target()
            return
        end_step = max(1, round(r.ramp * run.budget_steps))
        every = r.prune_every or max(1, run.steps_per_epoch // 20)
        if r.criterion == "movement":       # Sanh et al.: the scores accumulate during the recovery itself
            run.movement = prune.MovementScore()
            run.callbacks.append(run.movement)      # before the pruning: each step's gradient counts first
        run.callbacks.append(prune.PolynomialPruning(run.target, begin_step=0, end_step=end_step, every=every,
                                                     initial_sparsity=head, power=r.power,
                                                     **run.prune_options(r.criterion)))
        run.callbacks.append(_AtStep(end_step, run))


class _AtStep:
    """A ``fit`` callback: the run reached its target right after optimizer step ``step``."""

    def __init__(self, step: int, run: Run) -> None:
        self.step, self.run = step, run

    def on_step_end(self, model: Any, optimizer: Any, epoch: int, step: int) -> None:
        if step == self.step:
            self.run.reached_target()


PRUNE_SCHEDULES: dict[str, type[PruneSchedule]] = {part.name: part for part in (OneShot, Iterative, Gradual)}

__all__ = ["PRUNE_SCHEDULES", "Gradual", "Iterative", "OneShot", "PruneSchedule"]
