"""Criteria as parts: each is one class that says its name, what it needs, its options, and scores a model.

``criteria.py`` holds the formulas; here each one becomes an object that ``prune`` can hold and ask
(the shape of ``torch.nn.utils.prune``'s methods and of Torch-Pruning's importance objects):

    @register_criterion                             # the one registry line: prune(..., "taylor") finds it
    @dataclass(frozen=True)
    class Taylor(Criterion):
        name = "taylor"                             # how recipes and the CLI call it
        needs = ("inputs", "labels", "gradients")   # what score() reads beside the weights
        loss: str = "cross_entropy"                 # its options are its constructor's arguments
        batch_size: int = 1000
        def score(self, model, X=None, y=None, *, seed=0):
            return criteria.taylor(model, X, y, self.loss, self.batch_size)   # {param name: |w · ∂L/∂w|}

``prune(model, 0.9, Taylor(loss="squared_error"), data=(X, y))`` uses the object as it is;
``prune(model, 0.9, "taylor", data=(X, y), loss="squared_error")`` finds the class by name and builds it
with the options. A criterion scores ``unit = "weights"`` (every entry of every parameter, for the
structures weights, blocks and n:m) or ``"neurons"`` (``{"layers.l": one score per hidden unit}``).
Low score = pruned first. ``needs`` uses the words of ``NEEDS``: ``"inputs"`` and ``"labels"`` are the
calibration rows ``X`` and ``y`` that ``prune`` must be given; ``"gradients"``, ``"hessian"`` and
``"training"`` say what the score costs (``"training"``: it sums over training steps, and a training
run may hand it the sums, as the experiment does for movement pruning).

>>> from tinyprune.core.nn import MLP
>>> part = make_criterion("lamp")
>>> part, part.needs
(Lamp(p=2, normalizer='lamp'), ())
>>> sorted(make_criterion("magnitude").score(MLP([3, 2], seed=0)))
['layers.0.W', 'layers.0.b']
>>> make_criterion("magnitud")                   # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown criterion 'magnitud' (did you mean 'magnitude'?); expected one of: magnitude, random, ...
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tinyprune.checks import check_choice, check_fraction, check_int, check_number, did_you_mean
from tinyprune.core import losses
from tinyprune.core.nn import MLP
from tinyprune.core.random import Seed
from tinyprune.prune import criteria, group, obs

Scores = dict[str, np.ndarray]
UNITS = ("weights", "neurons")
NEEDS = ("inputs", "labels", "gradients", "hessian", "training")


class Criterion(ABC):
    """A pruning criterion: ``score(model, X, y, seed=)`` rates every weight (or neuron); low goes first.

    A subclass declares ``name`` (and maybe ``aliases``), ``unit``, ``needs``, and takes its options as
    constructor arguments (a dataclass's fields). ``moves_survivors = True`` marks a criterion that also
    moves the weights that stay (Optimal Brain Surgeon): it then defines ``prune_layers``. A neuron
    criterion with ``scales_layers = True`` puts its layers on one scale itself (``NeuronGroup``'s
    normaliser), so the global selection compares its scores as they are, without dividing each layer by
    its mean (``prune.core.normalise_neuron_scores``).
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    unit: ClassVar[str] = "weights"
    needs: ClassVar[tuple[str, ...]] = ()
    moves_survivors: ClassVar[bool] = False
    scales_layers: ClassVar[bool] = False

    @abstractmethod
    def score(self, model: MLP, X: np.ndarray | None = None, y: np.ndarray | None = None, *,
              seed: Seed = 0) -> Scores:
        """``{param name: scores of its shape}`` (unit weights) or ``{"layers.l": (h_l,)}`` (neurons)."""

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The names of the options: the keyword arguments of the constructor."""
        if cls.__init__ is object.__init__:
            return ()
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return tuple(p.name for p in inspect.signature(cls).parameters.values() if p.kind in kinds)


# ------------------------------------------------------------------ the registry
_REGISTRY: dict[tuple[str, str], type[Criterion]] = {}        # (unit, name or alias) -> class


def register_criterion(cls: type[Criterion]) -> type[Criterion]:
    """Make ``cls`` findable by its ``name`` and ``aliases`` (a decorator; returns ``cls``).

    The class must declare its own ``name`` (a subclass does not inherit a registered one) and use the
    words of ``NEEDS``. A name already taken by another class is refused; the same class defined again
    (a notebook cell run twice) replaces the old one.
    """
    if not (isinstance(cls, type) and issubclass(cls, Criterion)):
        raise TypeError(f"register_criterion takes a subclass of Criterion, got {cls!r}")
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} must declare its own name, e.g. name = 'my-criterion'")
    check_choice("unit", cls.unit, UNITS)
    unknown = [need for need in cls.needs if need not in NEEDS]
    if unknown:
        raise ValueError(f"{cls.__name__}.needs has {unknown}; expected words from {NEEDS}")
    keys = [(cls.unit, key) for key in (name, *cls.__dict__.get("aliases", ()))]
    for key in keys:
        taken = _REGISTRY.get(key)
        if taken is None:
            continue
        if (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"the {key[0]} criterion name {key[1]!r} is taken by {taken.__qualname__}")
        unregister_criterion(taken)                    # the same class, defined again: the new one wins
    _REGISTRY.update(dict.fromkeys(keys, cls))
    return cls


def unregister_criterion(cls: type[Criterion]) -> None:
    """Forget ``cls`` (every name it was registered under)."""
    for key in [key for key, found in _REGISTRY.items() if found is cls]:
        del _REGISTRY[key]


def _unit_of(structure: str) -> str:
    return "neurons" if structure == "neurons" else "weights"


def criterion_names(structure: str = "weights", aliases: bool = True) -> tuple[str, ...]:
    """The names ``prune`` accepts for ``structure`` (``"neurons"``, or one of weights, blocks, n:m).

    >>> criterion_names("neurons", aliases=False)
    ('l1', 'l2', 'l1_out', 'l2_out', 'activation', 'taylor_activation', 'random', 'fpgm', 'obd', 'group')
    """
    unit = _unit_of(structure)
    return tuple(name for (kind, name), cls in _REGISTRY.items()
                 if kind == unit and (aliases or name == cls.name))


def criterion_class(name: str, structure: str = "weights") -> type[Criterion]:
    """The class registered as ``name`` for ``structure``, or ``ValueError`` listing the names."""
    unit = _unit_of(structure)
    found = _REGISTRY.get((unit, name)) if isinstance(name, str) else None
    if found is not None:
        return found
    known = criterion_names(unit)
    other = "weights" if unit == "neurons" else "neurons"
    hint = ""
    if isinstance(name, str) and (other, name) in _REGISTRY:
        hint = f" ({name!r} scores {other}: pass structure={other!r})"
    label = "neuron criterion" if unit == "neurons" else "criterion"
    raise ValueError(f"unknown {label} {name!r}{did_you_mean(name, known)}{hint}; "
                     f"expected one of: {', '.join(known)}")


def make_criterion(criterion: str | Criterion | type[Criterion], structure: str = "weights", *,
                   also_taken: tuple[str, ...] = (), **options: Any) -> Criterion:
    """The criterion object for ``criterion``: the object itself, or its class (found by name) built with
    ``options``. Refuses options the class does not take (``also_taken``: the caller's own, named in
    the message) and a criterion of the wrong unit."""
    if isinstance(criterion, Criterion):
        if options:
            example = f"{type(criterion).__name__}({', '.join(f'{k}=...' for k in options)})"
            raise ValueError(f"unknown option(s) {sorted(options)}: a criterion object takes its options "
                             f"when it is built, e.g. {example}; allowed here: {sorted(also_taken)}")
        part = criterion
    else:
        cls = criterion if isinstance(criterion, type) and issubclass(criterion, Criterion) else \
            criterion_class(criterion, structure)
        allowed = sorted((*also_taken, *cls.option_names()))
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}{did_you_mean(unknown[0], allowed)} for "
                             f"structure={structure!r}, criterion={cls.name!r}; allowed: {allowed}")
        part = cls(**options)
    if part.unit != _unit_of(structure):
        raise ValueError(f"criterion {part.name!r} scores {part.unit}, so it cannot drive "
                         f"structure={structure!r}")
    return part


def data_free_names() -> tuple[str, ...]:
    """The names of the criteria (of weights or neurons) that read no calibration rows."""
    return tuple(dict.fromkeys(cls.name for cls in _REGISTRY.values() if "inputs" not in cls.needs))


class RegistryView(Mapping[str, type[Criterion]]):
    """A live, read-only view of the registry: name -> class, for some units, maybe only those that need
    ``needing``. Iterating gives the names (not the aliases); looking up finds aliases too."""

    def __init__(self, units: tuple[str, ...], needing: str | None = None) -> None:
        self.units, self.needing = units, needing

    def _fits(self, cls: type[Criterion]) -> bool:
        return self.needing is None or self.needing in cls.needs

    def __getitem__(self, name: str) -> type[Criterion]:
        for unit in self.units:
            cls = _REGISTRY.get((unit, name))
            if cls is not None and self._fits(cls):
                return cls
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        names = [cls.name for (unit, key), cls in _REGISTRY.items()
                 if unit in self.units and key == cls.name and self._fits(cls)]
        return iter(dict.fromkeys(names))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"RegistryView({', '.join(self)})"


# ------------------------------------------------------------------ the options every data criterion shares
def _optional_int(name: str, value: Any) -> None:
    if value is not None:
        check_int(name, value, 1)


@dataclass(frozen=True)
class _Calibrated(Criterion):
    """A criterion computed on calibration rows, in batches, through a loss."""

    loss: str = "cross_entropy"
    batch_size: int = 1000

    def __post_init__(self) -> None:
        losses.check_loss_name(self.loss)
        check_int("batch_size", self.batch_size, 1)


# ------------------------------------------------------------------ weight criteria
@register_criterion
@dataclass(frozen=True)
class Magnitude(Criterion):
    """``s = |w|^p`` (``criteria.magnitude``), optionally normalised per layer by LAMP (``Lamp``)."""

    name = "magnitude"
    p: float = 1
    normalizer: str | None = None

    def __post_init__(self) -> None:
        check_number("p", self.p, 0, None, low_open=True)
        if self.normalizer is not None:
            check_choice("normalizer", self.normalizer, criteria.NORMALIZERS)

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.magnitude(model, self.p, self.normalizer)


@register_criterion
@dataclass(frozen=True)
class Random(Criterion):
    """``s ~ U(0, 1)`` per weight, from ``prune``'s seed (``criteria.random``): the baseline."""

    name = "random"

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.random(model, seed)


@register_criterion
@dataclass(frozen=True)
class Gradient(_Calibrated):
    """``s = |∂L/∂w|`` on the calibration rows (``criteria.gradient``)."""

    name = "gradient"
    needs = ("inputs", "labels", "gradients")

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.gradient(model, X, y, self.loss, self.batch_size)


@register_criterion
@dataclass(frozen=True)
class Taylor(_Calibrated):
    """``s = |w · ∂L/∂w|``, the first-order estimate of the loss change (``criteria.taylor``)."""

    name = "taylor"
    needs = ("inputs", "labels", "gradients")

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.taylor(model, X, y, self.loss, self.batch_size)


@register_criterion
@dataclass(frozen=True)
class Hybrid(_Calibrated):
    """``s = α norm|w| + (1 - α) norm|w · ∂L/∂w|``, the document's mixed pruning (``criteria.hybrid``)."""

    name = "hybrid"
    needs = ("inputs", "labels", "gradients")
    alpha: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction("alpha", self.alpha, include_one=True, meaning="1 = magnitude only, 0 = Taylor only")

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.hybrid(model, X, y, self.alpha, self.loss, self.batch_size)


@register_criterion
@dataclass(frozen=True)
class OBD(_Calibrated):
    """Optimal Brain Damage, ``s = h_ii w_i² / 2`` (``criteria.obd``); ``hessian`` picks ``h_ii``.

    ``"layerwise"`` (each layer's ``2 X^T X / n``) reads no labels, so then ``needs`` drops them.
    """

    name = "obd"
    needs = ("inputs", "labels", "hessian")
    hessian: str = "lecun"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "hessian", criteria.hessian_name(self.hessian))
        if self.hessian == "layerwise":
            object.__setattr__(self, "needs", ("inputs", "hessian"))

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.obd(model, X, y, self.hessian, self.loss, self.batch_size)


@register_criterion
@dataclass(frozen=True)
class Lamp(Magnitude):
    """LAMP (``criteria.lamp``): magnitude with ``p = 2`` under the LAMP normaliser (as in Torch-Pruning)."""

    name = "lamp"
    p: float = 2
    normalizer: str | None = "lamp"


@register_criterion
@dataclass(frozen=True)
class OBS(Criterion):
    """Optimal Brain Surgeon (``prune.obs``): scores ``w_q² / [H⁻¹]_qq`` and moves the surviving weights.

    ``score`` is the ranking of its first step (``obs.saliency``); ``prune`` calls ``prune_layers``,
    the whole surgery, which counts per output unit (see ``obs.obs_prune``).
    """

    name = "obs"
    needs = ("inputs", "hessian")
    moves_survivors = True
    damping: float = 0.01
    block_size: int | None = None
    max_samples: int | None = None

    def __post_init__(self) -> None:
        check_number("damping", self.damping, 0, None)
        _optional_int("block_size", self.block_size)
        _optional_int("max_samples", self.max_samples)

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return obs.saliency(model, X, damping=self.damping, max_samples=self.max_samples, seed=seed)

    def prune_layers(self, model: MLP, X: np.ndarray, sparsities: dict[int, float], seed: Seed = 0) -> Scores:
        """Prune layer ``l`` to ``sparsities[l]`` by OBS, moving the survivors; ``{name: mask}``."""
        return obs.obs_prune(model, X, sparsities, damping=self.damping, block_size=self.block_size,
                             max_samples=self.max_samples, seed=seed)


@register_criterion
@dataclass(frozen=True)
class MagnitudeActivation(Criterion):
    """``s = |w| · mean |x|`` over the calibration rows (``criteria.magnitude_activation``)."""

    name = "magnitude_activation"
    needs = ("inputs",)
    batch_size: int = 1000

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.magnitude_activation(model, X, batch_size=self.batch_size)


@register_criterion
@dataclass(frozen=True)
class Movement(_Calibrated):
    """Movement pruning, ``S = -Σ_t g_t ⊙ W_t`` (``criteria.movement``): the given ``scores`` (a
    ``MovementScore`` or its dict), which then need no data, or a short fine-tuning of a copy on ``X, y``."""

    name = "movement"
    needs = ("inputs", "labels", "gradients", "training")
    scores: Any = field(default=None, repr=False)
    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("epochs", self.epochs, 1)
        check_number("lr", self.lr, 0, None, low_open=True)
        if self.scores is not None:
            object.__setattr__(self, "needs", ("training",))

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.movement(model, X, y, self.scores, self.epochs, self.lr, self.batch_size, self.loss,
                                 seed)


# ------------------------------------------------------------------ neuron criteria
@register_criterion
@dataclass(frozen=True)
class NeuronNorm(Criterion):
    """``s_j = ||W_l[:, j]||_p`` into hidden unit j, or ``||W_{l+1}[j, :]||_p`` out of it (``outgoing``).

    ``p = 1`` into the unit is Li et al. (2017)'s filter norm (``criteria.neuron_norm``).
    """

    name = "l1"
    unit = "neurons"
    p: int = 1
    outgoing: bool = False

    def __post_init__(self) -> None:
        check_int("p", self.p, 1, 2)

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.neuron_norm(model, self.p, self.outgoing)


@register_criterion
@dataclass(frozen=True)
class NeuronL2(NeuronNorm):
    """The L2 norm of the weights into each hidden unit: the neurons' "magnitude"."""

    name = "l2"
    aliases = ("magnitude",)
    p: int = 2


@register_criterion
@dataclass(frozen=True)
class NeuronL1Out(NeuronNorm):
    """The L1 norm of the weights out of each hidden unit."""

    name = "l1_out"
    outgoing: bool = True


@register_criterion
@dataclass(frozen=True)
class NeuronL2Out(NeuronNorm):
    """The L2 norm of the weights out of each hidden unit."""

    name = "l2_out"
    p: int = 2
    outgoing: bool = True


@register_criterion
@dataclass(frozen=True)
class NeuronActivation(Criterion):
    """``s_j = mean_i |a_ij|`` on the calibration rows (``criteria.neuron_activation``)."""

    name = "activation"
    unit = "neurons"
    needs = ("inputs",)
    batch_size: int = 1000

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.neuron_activation(model, X, self.batch_size)


@register_criterion
@dataclass(frozen=True)
class NeuronTaylor(_Calibrated):
    """``s_j = mean_i |a_ij · ∂ℓ_i/∂a_ij|`` (``criteria.neuron_taylor``)."""

    name = "taylor_activation"
    aliases = ("taylor",)
    unit = "neurons"
    needs = ("inputs", "labels", "gradients")

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.neuron_taylor(model, X, y, self.loss, self.batch_size)


@register_criterion
@dataclass(frozen=True)
class NeuronRandom(Criterion):
    """``s_j ~ U(0, 1)`` per hidden unit, from ``prune``'s seed: the structured baseline."""

    name = "random"
    unit = "neurons"

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.neuron_random(model, seed)


@register_criterion
@dataclass(frozen=True)
class FPGM(Criterion):
    """FPGM: the sum of distances to the layer's other units (``criteria.neuron_fpgm``)."""

    name = "fpgm"
    unit = "neurons"

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.neuron_fpgm(model)


@register_criterion
@dataclass(frozen=True)
class NeuronOBD(OBD):
    """OBD for whole units: the saliencies into unit j and of its bias, summed (``criteria.neuron_obd``)."""

    name = "obd"
    unit = "neurons"

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return criteria.neuron_obd(model, X, y, self.hessian, self.loss, self.batch_size)


@register_criterion
@dataclass(frozen=True)
class NeuronGroup(Criterion):
    """Torch-Pruning's group importance (``prune.group``): a unit's incoming and outgoing weights (and,
    with ``bias``, its bias) each give ``Σ |w|^p``, reduced over the members (``reduction``: mean, sum,
    max, prod, first) and normalised over the layer's living units (``normalizer``: mean, max, sum,
    standarization, gaussian, lamp, or None). The defaults are Torch-Pruning's
    ``GroupMagnitudeImportance()``; global selection uses these scores as they are (``scales_layers``).
    """

    name = "group"
    unit = "neurons"
    scales_layers = True
    p: float = 2
    reduction: str = "mean"
    normalizer: str | None = "mean"
    bias: bool = False

    def __post_init__(self) -> None:
        check_number("p", self.p, 0, None, low_open=True, meaning="the power summed: Σ |w|^p")
        check_choice("reduction", self.reduction, group.REDUCTIONS)
        if self.normalizer is not None:
            check_choice("normalizer", self.normalizer, group.NORMALIZERS)
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be True or False (whether the bias is a member), got {self.bias!r}")

    def score(self, model: MLP, X: Any = None, y: Any = None, *, seed: Seed = 0) -> Scores:
        return group.group_importance(model, self.p, self.reduction, self.normalizer, self.bias)


CRITERIA = RegistryView(("weights",))               # name -> class, live: a registered one appears
NEURON_CRITERIA = RegistryView(("neurons",))
NEEDS_DATA = RegistryView(UNITS, needing="inputs")   # the criteria that read calibration rows

__all__ = [
    "CRITERIA", "FPGM", "NEEDS", "NEEDS_DATA", "NEURON_CRITERIA", "OBD", "OBS", "UNITS", "Criterion",
    "Gradient", "Hybrid", "Lamp", "Magnitude", "MagnitudeActivation", "Movement", "NeuronActivation",
    "NeuronGroup", "NeuronL2", "NeuronL1Out", "NeuronL2Out", "NeuronNorm", "NeuronOBD", "NeuronRandom",
    "NeuronTaylor",
    "Random", "RegistryView", "Taylor", "criterion_class", "criterion_names", "data_free_names",
    "make_criterion", "register_criterion", "unregister_criterion",
]
