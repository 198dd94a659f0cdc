"""A ``Recipe``: everything one prune-and-recover experiment decides, in one validated, frozen value.

The fields are grouped the way a reader thinks about the document's loop (its section 2.4):

- **what** is pruned: ``sparsity`` (a fraction, or ``{"layers.0.W": 0.95, ...}`` per layer), ``criterion``,
  ``scope``, ``structure`` (with ``n_m`` and ``block``), and ``allocation`` (how a single sparsity is
  spread over the layers);
- **when** the mask changes: ``schedule`` (``one-shot``, ``iterative`` in ``steps`` steps, ``gradual``
  over the first ``ramp`` of the budget, ``rigl``: gradual with regrowth of a ``regrow`` fraction), the
  shape ``power`` of the polynomial steps, and the gradual schedule's ``head_start`` (pruned at once by
  ``head_start_criterion``, the survivors solved in closed form; with an allocation, ``min(head_start, s_l)``
  in each layer) and, with criterion ``obs``, the ranking ``obs_allocation`` that sets each step's layer
  sparsities;
- **how it recovers**: ``recovery`` (a name of ``experiment.RECOVERIES``, or ``"reconstruct+X"``), the
  distillation's ``distill_output``, ``temperature``, ``alpha`` and ``hidden_weight`` (the residual at every
  hidden layer), the ``final_solve`` after training (OBS's update for the fixed mask: a least-squares
  refit to the dense outputs), reconstruction's ``calibration`` rows and ``damping``, the dense epoch
  that ``rewind`` goes back to, and the weight ``average`` (``ema`` with ``ema_decay`` or ``swa``) from
  ``average_start`` of the budget on;
- the **budget**: ``epochs`` of recovery training, asked "recovered?" every ``check_every`` epochs (unset:
  once, after the whole budget), within
  ``tolerance`` of the dense accuracy;
- the **optimizer**: ``optimizer``, ``lr`` (``None``: the recovery's own rate, e.g. a tenth of
  ``original_lr`` for fine-tuning, grown above 90 % sparsity by ``lr_scaling``), ``lr_schedule``
  (``None``: the recovery's own), ``batch_size``;
- ``validation``, the fraction of training rows held out to decide "dropped?" and "recovered?" (the test
  split decides nothing), and the ``seed``.

Every field is checked once, in ``__post_init__``; a bad one raises ``RecipeError`` naming the field, the
value and what is expected. ``recipe.replace(**changes)`` makes a variant (checked again); ``to_file`` and
``Recipe.from_file`` write and read TOML or JSON; ``RECIPES`` holds the named recipes shipped in
``tinyprune/recipes/*.toml``. Derived in ``notebooks/07_finetuning.ipynb``.

>>> recipe = Recipe.from_file("han2015")
>>> recipe.schedule, recipe.recovery
('iterative', 'finetune')
>>> recipe.replace(sparsity=0.95).sparsity
0.95
>>> recipe.replace(sparsity=1.5)
Traceback (most recent call last):
...
tinyprune.experiment.recipe.RecipeError: sparsity: expected a fraction in [0, 1), got 1.5
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tinyprune import prune
from tinyprune.checks import is_int, is_number
from tinyprune.errors import TinypruneError
from tinyprune.experiment.parts import (
    PRUNE_SCHEDULES,
    RECOVERIES,
    closed_form_part,
    did_you_mean,
    recovery_parts,
    training_part,
)
from tinyprune.fast.optim import OPTIMIZERS
from tinyprune.files import read_config, shown
from tinyprune.recover.average import AVERAGES
from tinyprune.recover.distill import OUTPUTS
from tinyprune.recover.finetune import LR_SCALINGS, LR_SCHEDULES

RECIPE_FOLDER = Path(__file__).parent.parent / "recipes"
#: The global rankings that can set the layer sparsities of each OBS step of the gradual schedule.
OBS_ALLOCATIONS = ("magnitude", "obd")
#: The closed-form solves after recovery training (``final_solve``): none, every layer, the output layer.
FINAL_SOLVES = ("none", "every-layer", "output-layer")
GROUPS = ("what", "when", "recovery", "budget", "optimizer", "run")


class RecipeError(TinypruneError):
    """A recipe field has a value that cannot work, or two fields contradict each other."""


def _field(default: Any, group: str, help: str, **cli: Any) -> Any:
    """A dataclass field with the metadata the command line is generated from (``help``, ``group``...)."""
    return field(default=default, metadata={"group": group, "help": help, **cli})


@dataclass(frozen=True)
class Recipe:
    """One experiment of the document's loop; the defaults are the recipe that won the benchmark.

    See the module docstring for the groups; ``describe()`` prints every field with its help.
    """

    # what
    sparsity: float | Mapping[str, float] = _field(
        0.9,
        "what",
        "fraction of weights to prune, or a per-layer mapping layers.0.W=0.95,layers.1.W=0.8",
        metavar="S|NAME=S,...",
    )
    criterion: str = _field(
        "obd", "what", "importance criterion of a weight (of a neuron with structure neurons)"
    )
    scope: str = _field("global", "what", "one ranking over all layers (global) or each layer alone (layer)")
    structure: str = _field("weights", "what", "single weights, whole neurons, n:m groups or blocks")
    n_m: tuple[int, int] = _field(
        (2, 4), "what", "with structure n:m: keep n of every m weights", metavar="N,M"
    )
    block: tuple[int, int] = _field(
        (4, 4), "what", "with structure blocks: the block shape (rows, columns)", metavar="R,C"
    )
    allocation: str | None = _field(
        None,
        "what",
        "spread a single sparsity over the layers: uniform, erk, lamp or sensitivity (default: by the scope)",
    )
    # when
    schedule: str = _field(
        "gradual", "when", "when the mask changes: one-shot, iterative, gradual or rigl (gradual + regrowth)"
    )
    steps: int = _field(3, "when", "iterative: pruning steps, one per round")
    power: float = _field(
        3.0, "when", "shape of the polynomial steps s_t = s (1 - (1 - t/T)^power): 1 linear, 3 cubic"
    )
    ramp: float = _field(0.5, "when", "gradual: fraction of the budget over which pruning runs")
    prune_every: int | None = _field(
        None, "when", "gradual: optimizer steps between pruning steps (default: 1/20 of an epoch)"
    )
    head_start: float = _field(
        0.94,
        "when",
        "gradual: prune this much at once first and solve the survivors in closed form (0 for none)",
    )
    head_start_criterion: str = _field("obs", "when", "gradual: the criterion of the head start")
    obs_allocation: str = _field(
        "magnitude",
        "when",
        "gradual with criterion obs and scope global: each step's layer sparsities come from one global "
        "ranking by magnitude (as the OBS head start) or by obd (as the gradual steps of criterion obd)",
    )
    regrow: float = _field(
        0.3,
        "when",
        "rigl: fraction of each layer's survivors dropped (smallest |w|) and regrown (largest gradient) "
        "at the first update, decayed by a cosine to 0 at the end of the ramp",
    )
    # how it recovers
    recovery: str = _field(
        "distill",
        "recovery",
        "how to recover: none, finetune, lr-rewind, retrain, "
        "rewind, distill, reconstruct, reconstruct+finetune, ...",
    )
    distill_output: str = _field("kl", "recovery", "distill: compare logits, probabilities or kl")
    temperature: float = _field(2.0, "recovery", "distill: softmax temperature T")
    alpha: float = _field(0.8, "recovery", "distill: weight of cross-entropy on the labels")
    hidden_weight: float = _field(
        0.0,
        "recovery",
        "distill: weight of the residual at every hidden layer, 1/(2n) ||A_dense - A_pruned||^2 "
        "(0: outputs only)",
    )
    average: str | None = _field(
        None,
        "recovery",
        "average the sparse weights over the end of the budget: ema or swa (default: none); the average "
        "replaces the weights at the budget's last step (a run stopped early as recovered keeps its own)",
    )
    average_start: float = _field(
        0.75, "recovery", "average: fraction of the budget after which the weights are averaged"
    )
    ema_decay: float = _field(
        0.999, "recovery", "average ema: decay d of theta_avg <- d theta_avg + (1 - d) theta"
    )
    final_solve: str = _field(
        "none",
        "recovery",
        "after each round of recovery training, solve the survivors again in closed form on the mask: "
        "OBS's update for a fixed mask, i.e. the least-squares fit to the dense model's outputs on the "
        "calibration rows (recover.reconstruct), in every-layer or the output-layer only; none keeps the "
        "trained weights",
    )
    calibration: int = _field(4096, "recovery", "training rows for reconstruction, OBS and data criteria")
    damping: float = _field(1e-4, "recovery", "reconstruction: relative ridge damping")
    rewind_epoch: int = _field(1, "recovery", "rewind: the dense training epoch whose weights are restored")
    # budget
    epochs: int = _field(3, "budget", "recovery budget in epochs of the training set")
    check_every: int | None = _field(None, "budget", "ask 'recovered?' every this many epochs, a round "
                                                      "(unset: once, after the whole budget)")
    tolerance: float = _field(
        0.005,
        "budget",
        "recovered = validation accuracy within this fraction of the dense one (0.005 is half a point)",
    )
    # optimizer
    optimizer: str = _field("adam", "optimizer", "adam or sgd (momentum 0.9)")
    lr: float | None = _field(
        None,
        "optimizer",
        "recovery learning rate (default: the recovery's own: "
        "finetune original/10, distill 10 x original, else original)",
    )
    lr_schedule: str | None = _field(
        None, "optimizer", "constant or cosine over the budget (default: the recovery's own)"
    )
    lr_scaling: str = _field(
        "sqrt-density",
        "optimizer",
        "with lr unset, grow the recovery's own rate as the network thins: sqrt-density multiplies it by "
        "max(1, sqrt(0.1 / (1 - sparsity))): x1 up to sparsity 0.9, x1.41 at 0.95, x2.24 at 0.98; "
        "sqrt-density-per-layer multiplies each layer's rate by that factor of the layer's own sparsity "
        "(followed as gradual pruning moves it); none keeps it",
    )
    batch_size: int = _field(32, "optimizer", "recovery minibatch size")
    original_lr: float = _field(
        1e-3, "optimizer", "the dense model's learning rate (the recoveries' defaults derive from it)"
    )
    # run
    validation: float = _field(
        0.1, "run", "fraction of the training rows held out to decide dropped? and recovered?"
    )
    seed: int = _field(0, "run", "seed of the split, the pruning and the recovery")

    def __post_init__(self) -> None:
        _check_fields(self)
        _check_combinations(self)

    # ------------------------------------------------------------------ derived values
    @property
    def rounds(self) -> int:
        """How many times D and F run at most: ``epochs / check_every`` (1 when ``check_every`` is unset)."""
        return self.epochs // self.round_epochs

    @property
    def round_epochs(self) -> int:
        """The epochs of one round of D: ``check_every``, or the whole budget when it is unset."""
        return self.check_every or self.epochs

    # ------------------------------------------------------------------ variants and files
    def replace(self, **changes: Any) -> Recipe:
        """A copy with ``changes`` applied, checked again (an unknown field name is refused)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise RecipeError(
                f"unknown recipe field(s) {unknown}; the fields are {', '.join(f.name for f in fields(self))}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain values (tuples as lists, ``None`` kept), in declaration order."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = (
                dict(value)
                if isinstance(value, Mapping)
                else list(value)
                if isinstance(value, tuple)
                else value
            )
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "the recipe") -> Recipe:
        """A recipe from a mapping of field names (missing ones take the defaults); unknown keys refused."""
        if not isinstance(values, Mapping):
            raise RecipeError(f"{source}: expected a table of recipe fields, got {type(values).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names, key=repr)         # keys of any type: {1: 2} is refused too
        if unknown:
            raise RecipeError(
                f"{source}: unknown recipe field(s) {shown(unknown)}; the fields are {', '.join(names)}"
            )
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**converted)

    @classmethod
    def from_file(cls, name_or_path: str | os.PathLike[str]) -> Recipe:
        """A named recipe (``RECIPES``: ``"default"``, ``"han2015"``, ...) or a ``.toml`` / ``.json`` file.

        TOML may leave out fields (they take the defaults) but not name unknown ones; TOML has no null,
        so an absent ``lr`` means "the recovery's own rate".
        """
        return cls.from_dict(cls.read_values(name_or_path), source=str(name_or_path))

    @staticmethod
    def read_values(name_or_path: str | os.PathLike[str]) -> dict[str, Any]:
        """The fields a named recipe or a recipe file sets, unchecked (``from_file`` checks them)."""
        path = Path(name_or_path)
        if path.suffix not in (".toml", ".json"):
            if str(name_or_path) not in recipe_names():       # a name, never a path: no "/", no ".."
                raise RecipeError(
                    f"no recipe named {shown(str(name_or_path))}"
                    f"{did_you_mean(name_or_path, recipe_names())}: the named recipes are "
                    f"{', '.join(recipe_names())}, or give a .toml or .json file"
                )
            path = RECIPE_FOLDER / f"{name_or_path}.toml"
        values = read_config(path, "recipe file", RecipeError)  # regular, bounded, shallow, no repeated keys
        if not isinstance(values, Mapping):
            raise RecipeError(f"{path}: expected a table of recipe fields, got {type(values).__name__}")
        return dict(values)

    def to_file(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the recipe as TOML (``.toml``, with ``tomli_w``) or JSON (``.json``), atomically."""
        from tinyprune.files import atomic_write

        path = Path(path)
        values = {k: v for k, v in self.to_dict().items() if v is not None}  # TOML has no null
        if path.suffix == ".toml":
            import tomli_w

            text = tomli_w.dumps(values)
        elif path.suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        else:
            raise RecipeError(f"a recipe file ends in .toml or .json, got {path.name!r}")
        return atomic_write(path, text, overwrite=overwrite)

    def describe(self, changes_only: bool = False) -> str:
        """One line per field: group, name, value, and the default recipe's value where it differs
        (``changes_only``: only those). Help texts: ``tinyprune run --help``.

        >>> print(Recipe.from_file("document").describe(changes_only=True).splitlines()[1])
        what      criterion            'magnitude'     (default 'obd')
        """
        default = Recipe()
        changed = [f for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)]
        shown = changed if changes_only else list(fields(self))
        head = (f"{len(changed)} of {len(fields(self))} fields differ from the default recipe"
                + ("" if changes_only else "; every field:"))
        lines = [(f"{f.metadata['group']:9} {f.name:20} {getattr(self, f.name)!r:15}"
                  + (f" (default {getattr(default, f.name)!r})" if f in changed else "")).rstrip()
                 for f in shown]
        return "\n".join([head, *lines])

    def check_model(self, sizes: list[int], *, snapshot: bool = True) -> None:
        """Refuse, before any training, what this recipe cannot do to an MLP of these ``sizes``;
        ``snapshot``: whether the dense training's early weights are there for a recovery that rewinds."""
        _check_against_model(self, sizes)
        if not snapshot and any(part.needs_snapshot for part in recovery_parts(self.recovery)):
            raise RecipeError(
                f"recovery {self.recovery!r} rewinds to the dense training's early weights: pass rewind_to "
                "(the WeightSnapshot given to the dense fit, or a state dict), or on the command line "
                "train the dense model in the run (leave out --dense)"
            )


def recipe_names() -> list[str]:
    """The names of the recipes shipped in ``tinyprune/recipes/``."""
    return sorted(path.stem for path in RECIPE_FOLDER.glob("*.toml"))


def recipe_summary(name: str) -> str:
    """The first comment line of a named recipe's file: what it is and where it comes from."""
    for line in (RECIPE_FOLDER / f"{name}.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


class _Named(Mapping[str, Recipe]):
    """``RECIPES["han2015"]``: the named recipes, read from their files when first asked for."""

    def __getitem__(self, name: str) -> Recipe:
        if name not in recipe_names():
            raise KeyError(name)
        return Recipe.from_file(name)

    def __iter__(self) -> Any:
        return iter(recipe_names())

    def __len__(self) -> int:
        return len(recipe_names())


RECIPES: Mapping[str, Recipe] = _Named()


# ---------------------------------------------------------------------- the checks
def _is_number(value: Any) -> bool:
    """A finite Python int or float (a recipe is written to TOML and JSON: no NumPy scalars)."""
    return is_number(value) and isinstance(value, (int, float)) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    """A Python int, not a bool (``checks.is_int``, without NumPy's)."""
    return is_int(value) and isinstance(value, int)


def _refuse(name: str, value: Any, expected: str) -> RecipeError:
    return RecipeError(f"{name}: expected {expected}, got {shown(value)}")


def _number(
    recipe: Recipe,
    name: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    value = getattr(recipe, name)
    if value is None and optional:
        return
    inside = (
        _is_number(value)
        and (low < value if low_open else low <= value)
        and (value < high if high_open else value <= high)
    )
    if not inside:
        brackets = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
        kind = "a fraction" if (low, high) == (0, 1) else "a number"
        raise _refuse(name, value, f"{kind} in {brackets}" + (" or nothing" if optional else ""))


def _integer(recipe: Recipe, name: str, low: int, *, optional: bool = False) -> None:
    value = getattr(recipe, name)
    if not (value is None and optional) and not (_is_int(value) and value >= low):
        raise _refuse(name, value, f"an integer >= {low}" + (" or nothing" if optional else ""))


def _choice(recipe: Recipe, name: str, allowed: Any, *, optional: bool = False) -> None:
    value = getattr(recipe, name)
    if not (value is None and optional) and value not in allowed:
        raise RecipeError(f"{name}: expected one of {', '.join(map(str, allowed))}, got {shown(value)}"
                          f"{did_you_mean(value, map(str, allowed))}")


def _pair(recipe: Recipe, name: str) -> None:
    value = getattr(recipe, name)
    if not (isinstance(value, tuple) and len(value) == 2 and all(_is_int(v) and v >= 1 for v in value)):
        raise _refuse(name, value, "two integers >= 1")


def _check_sparsity(value: Any) -> None:
    if isinstance(value, Mapping):
        if not value:
            raise _refuse("sparsity", dict(value), "a fraction, or a non-empty mapping of layer names")
        for layer, fraction in value.items():
            if not isinstance(layer, str) or not (_is_number(fraction) and 0 <= fraction < 1):
                raise _refuse(
                    "sparsity", dict(value), f"fractions in [0, 1) per layer name ({layer!r}: {fraction!r})"
                )
    elif not (_is_number(value) and 0 <= value < 1):
        raise _refuse("sparsity", value, "a fraction in [0, 1)")


def _check_what(recipe: Recipe) -> None:
    """What is pruned: sparsity, criterion, scope, structure and allocation."""
    _check_sparsity(recipe.sparsity)
    _choice(recipe, "structure", field_choices("structure"))
    _choice(recipe, "criterion", field_choices("criterion", recipe.structure))
    _choice(recipe, "scope", field_choices("scope"))
    _pair(recipe, "n_m")
    _pair(recipe, "block")
    _choice(recipe, "allocation", field_choices("allocation"), optional=True)
    _choice(recipe, "head_start_criterion", field_choices("head_start_criterion"))


def _check_parts(recipe: Recipe) -> None:
    """The parts by name: the pruning schedule and the recovery (a registered name or a composition)."""
    _choice(recipe, "schedule", field_choices("schedule"))
    try:
        recovery_parts(recipe.recovery)
    except ValueError as error:
        raise RecipeError(f"recovery: {error}") from None


def _check_numbers(recipe: Recipe) -> None:
    """Every numeric field alone: type and range."""
    for name, low in (("steps", 1), ("calibration", 1), ("rewind_epoch", 0), ("epochs", 1),
                      ("batch_size", 1), ("seed", 0)):
        _integer(recipe, name, low)
    for name in ("prune_every", "check_every"):
        _integer(recipe, name, 1, optional=True)
    _number(recipe, "power", 0, 100, low_open=True)
    for name in ("ramp", "regrow"):
        _number(recipe, name, 0, 1, low_open=True)
    for name in ("head_start", "average_start", "ema_decay", "tolerance"):
        _number(recipe, name, 0, 1, high_open=True)
    _number(recipe, "temperature", 0, 1e6, low_open=True)
    _number(recipe, "alpha", 0, 1)
    _number(recipe, "hidden_weight", 0, 1e6)
    _number(recipe, "damping", 0, 1e6)
    _number(recipe, "lr", 0, 1e3, low_open=True, optional=True)
    _number(recipe, "original_lr", 0, 1e3, low_open=True)
    _number(recipe, "validation", 0, 0.5, low_open=True)


def field_choices(name: str, structure: str = "weights") -> tuple[str, ...] | None:
    """The names a field accepts (``None`` for a field that is not a choice): what the checks accept and
    what ``tinyprune run --help`` lists. ``criterion`` depends on the ``structure``.

    >>> sorted(field_choices("optimizer"))
    ['adam', 'sgd']
    """
    table: dict[str, Any] = {
        "criterion": prune.criterion_names(structure),          # the registry's names, aliases included
        "head_start_criterion": prune.criterion_names("weights"),
        "structure": prune.STRUCTURES, "scope": prune.SCOPES,
        "allocation": prune.METHODS, "schedule": PRUNE_SCHEDULES, "recovery": RECOVERIES,
        "obs_allocation": OBS_ALLOCATIONS, "distill_output": OUTPUTS, "average": AVERAGES,
        "optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES, "lr_scaling": LR_SCALINGS,
        "final_solve": FINAL_SOLVES,
    }
    return tuple(table[name]) if name in table else None


def _check_fields(recipe: Recipe) -> None:
    """Each field alone: type, range, known name."""
    _check_what(recipe)
    _check_parts(recipe)
    _check_numbers(recipe)
    for name in ("obs_allocation", "distill_output", "optimizer", "lr_scaling", "final_solve"):
        _choice(recipe, name, field_choices(name))
    for name in ("average", "lr_schedule"):
        _choice(recipe, name, field_choices(name), optional=True)


def _check_budget(recipe: Recipe) -> None:
    """The budget is whole rounds, and an iterative schedule has a round for every step."""
    if recipe.check_every is not None and recipe.epochs % recipe.check_every:
        raise RecipeError(
            f"epochs ({recipe.epochs}) must be a multiple of check_every ({recipe.check_every}): "
            "the budget is a whole number of rounds"
        )
    if recipe.schedule == "iterative" and recipe.steps > recipe.rounds:
        raise RecipeError(
            f"schedule 'iterative' prunes once per round: steps ({recipe.steps}) must not exceed "
            f"the rounds, epochs / check_every = {recipe.rounds}"
        )


def _check_schedule_and_recovery(recipe: Recipe) -> None:
    """What the parts declare: a mask that changes during training needs a recovery that trains from
    the pruned weights and solves nothing in closed form."""
    training, closed_form = training_part(recipe.recovery), closed_form_part(recipe.recovery)
    schedule = PRUNE_SCHEDULES[recipe.schedule]
    if schedule.during_training:
        if closed_form is not None:
            raise RecipeError(
                f"recovery {recipe.recovery!r} solves for a fixed mask, but schedule {recipe.schedule!r} "
                "changes the mask during training: use a schedule whose mask is fixed while training "
                f"({', '.join(n for n, p in PRUNE_SCHEDULES.items() if not p.during_training)})"
            )
        if training is None or not training.keeps_weights:
            fits = [n for n, p in RECOVERIES.items() if p.trains and p.keeps_weights]
            raise RecipeError(
                f"schedule {recipe.schedule!r} prunes during training: recovery must train from the pruned "
                f"weights ({', '.join(fits)}), got {recipe.recovery!r}"
            )
    if recipe.hidden_weight > 0 and (training is None or training.name != "distill"):
        raise RecipeError(
            f"hidden_weight distills the hidden layers' activations: it needs recovery 'distill', "
            f"got {recipe.recovery!r}"
        )
    if recipe.final_solve != "none" and training is None:
        raise RecipeError(
            f"final_solve {recipe.final_solve!r} solves the survivors again after recovery training: it "
            f"needs a training recovery, got {recipe.recovery!r}"
        )
    if recipe.average is not None and training is None:
        raise RecipeError(
            f"average {recipe.average!r} averages the weights of training: it needs a training "
            f"recovery, got {recipe.recovery!r}"
        )
    if recipe.average is not None and schedule.during_training and recipe.average_start < recipe.ramp:
        raise RecipeError(
            f"average_start ({recipe.average_start}) must not come before the end of the ramp "
            f"({recipe.ramp}): the weights are averaged with the mask fixed"
        )


def _check_structure(recipe: Recipe) -> None:
    """What each structure can be combined with."""
    mapping = isinstance(recipe.sparsity, Mapping)
    if recipe.structure == "n:m":
        n, m = recipe.n_m
        if n >= m or mapping or not math.isclose(recipe.sparsity, 1 - n / m):
            raise RecipeError(
                f"structure n:m keeps n of every m weights, so sparsity must be 1 - n/m = "
                f"{1 - n / m:g} with n < m; got sparsity {recipe.sparsity!r} and n_m {recipe.n_m}"
            )
    if recipe.schedule == "rigl" and recipe.structure != "weights":
        raise RecipeError("schedule 'rigl' drops and regrows single weights: use structure 'weights'")
    if recipe.allocation is not None and (mapping or recipe.structure != "weights"):
        raise RecipeError(
            "allocation spreads one sparsity of single weights over the layers: give a "
            "single sparsity and structure 'weights', or leave allocation unset"
        )
    if mapping and recipe.structure != "weights":
        raise RecipeError("a per-layer sparsity mapping prunes single weights: use structure 'weights'")
    if recipe.obs_allocation != "magnitude" and (
        recipe.schedule != "gradual" or recipe.criterion != "obs" or mapping or recipe.allocation is not None
    ):
        raise RecipeError(
            f"obs_allocation {recipe.obs_allocation!r} sets the layer sparsities of each OBS step of the "
            "gradual schedule from one sparsity: it needs schedule 'gradual', criterion 'obs', a single "
            "sparsity and no allocation"
        )
    if recipe.structure != "weights" and recipe.criterion == "obs":
        raise RecipeError("criterion 'obs' removes single weights: use structure 'weights'")


def _check_combinations(recipe: Recipe) -> None:
    """Fields that contradict each other: refused here, before anything trains."""
    _check_budget(recipe)
    _check_schedule_and_recovery(recipe)
    _check_structure(recipe)


def _check_against_model(recipe: Recipe, sizes: list[int]) -> None:
    """What the recipe would do to an MLP with these layer sizes, refused before any training."""
    layers = [f"layers.{i}.W" for i in range(len(sizes) - 1)]
    if isinstance(recipe.sparsity, Mapping):
        unknown = sorted(set(recipe.sparsity) - set(layers))
        if unknown:
            raise RecipeError(
                f"sparsity names layer(s) {unknown} that the model {sizes} does not have; "
                f"its weight matrices are {', '.join(layers)}"
            )
    if recipe.structure == "neurons":
        hidden = sizes[1:-1]
        if not hidden:
            raise RecipeError(f"structure 'neurons' removes hidden units, and the model {sizes} has none")
        if recipe.scope == "layer":
            emptied = [h for h in hidden if round(recipe.sparsity * h) >= h]
            if emptied:
                raise RecipeError(
                    f"sparsity {recipe.sparsity} of the neurons of each layer would remove every "
                    f"unit of a layer of {emptied[0]}: choose a smaller sparsity"
                )
        elif round(recipe.sparsity * sum(hidden)) > sum(hidden) - len(hidden):
            raise RecipeError(
                f"sparsity {recipe.sparsity} of the {sum(hidden)} hidden units would leave fewer "
                f"than one unit per layer: at most {1 - len(hidden) / sum(hidden):.3f}"
            )
    if recipe.structure == "n:m" and any(d % recipe.n_m[1] for d in sizes[:-1]):
        raise RecipeError(
            f"structure n:m groups m = {recipe.n_m[1]} inputs, but the model {sizes} has a layer "
            "whose input size is not a multiple of m"
        )


#: The recipe that won the benchmark: the default of ``prune_and_recover`` and ``tinyprune run``.
DEFAULT = Recipe()

__all__ = ["DEFAULT", "GROUPS", "RECIPES", "Recipe", "RecipeError", "recipe_names", "recipe_summary"]
