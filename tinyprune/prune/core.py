"""The public verb: ``prune(model, sparsity, criterion, scope, structure, data)`` scores, selects, masks.

    scores = criterion.score(model[, X, y])    # parts.py: a Criterion object rates every weight or neuron
    masks  = select(scores, sparsity, scope)   # select.py: exactly round(s · n) pruned, in total
    apply_mask(parameter, mask)                # masks.py: mask <- mask AND old; pruned weights <- 0

``sparsity`` is the *total* fraction pruned among the eligible entries, counting earlier pruning:
``prune(m, 0.5)`` then ``prune(m, 0.8)`` leaves 80 % pruned, not 90 %. It may also be a mapping
``{"layers.0.W": 0.95, "layers.1.W": 0.8}``: each named layer to its own sparsity (missing layers: 0;
``prune.implied_sparsity`` gives the global sparsity it implies; ``prune.allocate`` makes one). Nothing
is changed when an argument is rejected. Derived in ``notebooks/05_pruning_criteria.ipynb`` and
``notebooks/09_structured_pruning_and_speed.ipynb``.

>>> from tinyprune.core.nn import MLP
>>> model = MLP([784, 64, 64, 10], seed=0)
>>> masks = magnitude(model, 0.9, scope="global")
>>> sorted(masks)                                 # biases are not pruned unless asked
['layers.0.W', 'layers.1.W', 'layers.2.W']
>>> sum(int((~m).sum()) for m in masks.values()) == round(0.9 * (784 * 64 + 64 * 64 + 64 * 10))
True
>>> _ = neurons(model, 0.25)                      # then a quarter of the 128 hidden neurons
>>> int((~model.layers[0].b.mask).sum() + (~model.layers[1].b.mask).sum())
32
>>> masks = prune(MLP([784, 64, 64, 10], seed=0), {"layers.0.W": 0.95, "layers.1.W": 0.5})
>>> [int((~m).sum()) for m in masks.values()]     # the output layer is missing: not pruned
[47667, 2048, 0]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tinyprune.checks import check_choice, check_int, check_number, is_number
from tinyprune.core.nn import MLP
from tinyprune.core.random import Seed
from tinyprune.errors import ShapeError
from tinyprune.prune import select
from tinyprune.prune.masks import apply_mask
from tinyprune.prune.parts import Criterion, data_free_names, make_criterion

STRUCTURES = ("weights", "neurons", "n:m", "blocks")
SCOPES = ("layer", "global")
SELECT_OPTIONS = {"weights": ("prune_biases", "exclude", "include_output"),
                  "n:m": ("n", "m", "exclude", "include_output"),
                  "neurons": ("exclude",),
                  "blocks": ("block", "exclude", "include_output")}

Masks = dict[str, np.ndarray]
Sparsity = float | Mapping[str, float]        # one total sparsity, or one per named layer
CriterionLike = str | Criterion | type[Criterion]


# ------------------------------------------------------------------ argument checks
def check_sparsity(sparsity: Any, label: str = "sparsity") -> float:
    """``sparsity`` as a float in ``[0, 1)``, or ``ValueError`` saying so (NaN and bools rejected)."""
    if not is_number(sparsity):
        raise ValueError(f"{label} must be a number in [0, 1) (the fraction pruned), got {sparsity!r}")
    value = float(sparsity)
    if math.isnan(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{label} must lie in [0, 1) (the fraction pruned; 1 would remove everything), "
                         f"got {sparsity!r}")
    return value


def per_layer_sparsity(sparsity: Mapping[str, Any], names: Sequence[str], what: str = "layer") -> list[float]:
    """The sparsity of each of ``names`` from a mapping ``{name: sparsity}`` (0 where a name is missing).

    A name that is not in ``names`` is refused (a typo would otherwise prune nothing, silently).

    >>> per_layer_sparsity({"layers.1.W": 0.5}, ["layers.0.W", "layers.1.W"])
    [0.0, 0.5]
    """
    if not isinstance(sparsity, Mapping):
        raise ValueError(f"expected a mapping {{{what} name: sparsity}}, got {type(sparsity).__name__}")
    unknown = [name for name in sparsity if name not in names]
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown} in the sparsity mapping; expected names from "
                         f"{list(names)} (a missing one is not pruned)")
    return [check_sparsity(sparsity.get(name, 0.0), f"the sparsity of {name!r}") for name in names]


def resolve_data(data: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``data`` as ``(X, y)``: a tuple ``(X, y)``, a Dataset-like object with ``.X`` and ``.y``, an array
    ``X`` alone (enough for ``"activation"``), or ``None``."""
    if data is None:
        return None, None
    if hasattr(data, "X"):
        return np.asarray(data.X), None if getattr(data, "y", None) is None else np.asarray(data.y)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return np.asarray(data[0]), None if data[1] is None else np.asarray(data[1])
    if isinstance(data, np.ndarray):
        return data, None
    raise ValueError("data must be (X, y), a Dataset (with .X and .y) or an array X; "
                     f"got {type(data).__name__}")


def _exclusions(model: MLP, exclude: Any) -> set[str]:
    if exclude is None:
        return set()
    names = [exclude] if isinstance(exclude, str) else list(exclude)
    params = {name for name, _ in model.named_parameters()}
    layers = {f"layers.{i}" for i in range(len(model.layers))}
    unknown = [n for n in names if n not in params and n not in layers]
    if unknown:
        raise ValueError(f"cannot exclude {unknown}: expected parameter names such as 'layers.0.W' or "
                         f"layer names such as 'layers.0' (this model has {len(model.layers)} layers)")
    out = set()
    for name in names:
        out |= {name} if name in params else {f"{name}.W", f"{name}.b", name}
    return out


def eligible(model: MLP, prune_biases: bool = False, exclude: Any = None,
             include_output: bool = True) -> list[str]:
    """Names of the parameters that unstructured pruning may touch, in model order.

    >>> from tinyprune.core.nn import MLP
    >>> eligible(MLP([3, 4, 2]), include_output=False)
    ['layers.0.W']
    """
    excluded = _exclusions(model, exclude)
    last = len(model.layers) - 1
    names = []
    for index in range(len(model.layers)):
        if index == last and not include_output:
            continue
        kinds = ("W", "b") if prune_biases else ("W",)
        names += [f"layers.{index}.{kind}" for kind in kinds if f"layers.{index}.{kind}" not in excluded]
    if not names:
        raise ValueError("no parameter is left to prune: every layer was excluded")
    return names


def _check_not_empty(masks: Masks) -> None:
    for name, keep in masks.items():
        if name.endswith(".W") and not keep.any():
            raise ValueError(f"this pruning would leave {name} with no weights at all (the network would be "
                             f"cut in two); lower the sparsity, use scope='layer' or criterion='lamp', "
                             f"or exclude that layer")


def _apply(model: MLP, masks: Masks) -> Masks:
    params = dict(model.named_parameters())
    for name, keep in masks.items():
        apply_mask(params[name], keep)
    return {name: params[name].mask for name in masks}


# ------------------------------------------------------------------ scores
def weight_scores(model: MLP, criterion: CriterionLike, X: Any = None, y: Any = None, seed: Seed = 0,
                  **options: Any) -> dict[str, np.ndarray]:
    """``{param_name: score}`` of a weight criterion (an object, or a name of ``CRITERIA`` and options)."""
    return make_criterion(criterion, "weights", **options).score(model, X, y, seed=seed)


def neuron_scores(model: MLP, criterion: CriterionLike, X: Any = None, y: Any = None, seed: Seed = 0,
                  **options: Any) -> dict[str, np.ndarray]:
    """``{"layers.l": score per hidden neuron}`` of a neuron criterion (an object, or a name of
    ``NEURON_CRITERIA`` and its options)."""
    return make_criterion(criterion, "neurons", **options).score(model, X, y, seed=seed)


# ------------------------------------------------------------------ the verb
def prune(model: MLP, sparsity: Sparsity | None, criterion: CriterionLike = "magnitude",
          scope: str = "global", structure: str = "weights", data: Any = None, seed: Seed = 0,
          **options: Any) -> Masks:
    """Prune ``model`` in place to a total ``sparsity`` and return ``{param_name: new mask}``.

    - ``sparsity``: a number in [0, 1), or a mapping ``{"layers.l.W": s_l}`` (``{"layers.l": s_l}`` for
      neurons): each named layer to its own sparsity, the rest to 0 (a name that cannot be pruned is
      refused). With a mapping the scope is per layer by definition and ``scope`` is not used.
    - ``criterion``: a ``Criterion`` object (``prune.Taylor(loss="squared_error")``, or one of your own),
      or a registered name: for weights, blocks and n:m one of ``CRITERIA``, for neurons one of
      ``NEURON_CRITERIA`` (``"magnitude"`` means ``"l2"`` and ``"taylor"`` means ``"taylor_activation"``
      there). ``"obs"`` (weights only) is Optimal Brain Surgeon (``prune.obs``): it also moves the
      surviving weights and biases, and it counts per output unit (see ``obs_prune``).
    - ``scope``: ``"global"`` (one threshold over all eligible entries) or ``"layer"`` (each parameter,
      or each hidden layer for neurons, to the same sparsity). Ignored by ``"n:m"``. For neurons the
      global comparison divides each layer's scores by the mean |score| of its living neurons
      (``normalise_neuron_scores``; not for a criterion that normalises itself, ``scales_layers``, as
      ``"group"`` does) and keeps at least one neuron per hidden layer.
    - ``structure``: ``"weights"`` (unstructured), ``"neurons"`` (whole hidden neurons: a column of
      ``W_l``, the entry of ``b_l``, the row of ``W_{l+1}``; ``sparsity`` is the fraction of hidden
      neurons), ``"blocks"`` (``block=(r, c)`` tiles of ``W``; ``sparsity`` is the fraction of *blocks*,
      see ``select.block_scores``), or ``"n:m"`` (``n`` of every ``m`` weights along the input dimension
      are kept; options ``n=2, m=4``; ``sparsity`` must be ``None`` or ``1 - n/m``).
    - ``data``: calibration data ``(X, y)``, a Dataset, or ``X`` alone, for the criteria whose ``needs``
      name ``"inputs"`` (and ``"labels"``: then ``y`` too).
    - ``options``: the selection's (``SELECT_OPTIONS``: ``prune_biases=False``, ``exclude=()`` with names
      like ``"layers.2"`` or ``"layers.2.W"``, ``include_output=True``, ``block``, ``n``, ``m``) and,
      with a criterion given by name, the criterion's own (``alpha``, ``hessian``, ``loss``, ``damping``,
      ...: the arguments of its class, e.g. ``prune.Hybrid``).

    Exactly ``round(sparsity · n)`` eligible entries (neurons, blocks) end up pruned, in total or per
    layer (earlier pruning counts; if more are already pruned, nothing more is); OBS: per output unit.
    Everything is checked before anything changes. Shapes: masks have their parameters' shapes, bool.
    """
    check_choice("structure", structure, STRUCTURES)
    check_choice("scope", scope, SCOPES)
    selecting = {key: value for key, value in options.items() if key in SELECT_OPTIONS[structure]}
    part = make_criterion(criterion, structure, also_taken=SELECT_OPTIONS[structure],
                          **{key: value for key, value in options.items() if key not in selecting})
    if part.moves_survivors and structure != "weights":
        raise ValueError(f"criterion {part.name!r} prunes single weights and moves the survivors: use "
                         f"structure='weights', not {structure!r}")
    if not isinstance(model, MLP):
        raise TypeError(f"prune works on an MLP, got {type(model).__name__}")
    target = _check_target(sparsity, structure, selecting)
    X, y = _calibration(part, data)
    if structure == "neurons":
        return _prune_neurons(model, target, part, scope, X, y, seed, **selecting)
    if part.moves_survivors:
        return _prune_by_surgery(model, target, part, scope, X, seed, **selecting)
    return _prune_weights(model, target, part, scope, structure, (X, y), seed, selecting)


def _check_target(sparsity: Any, structure: str, selecting: dict[str, Any]) -> Sparsity | None:
    """The sparsity checked for ``structure``: n:m fixes it at ``1 - n/m``; a mapping is checked later,
    against the names of the layers that may be pruned."""
    if structure != "n:m":
        return sparsity if isinstance(sparsity, Mapping) else check_sparsity(sparsity)
    n, m = check_int("n", selecting.get("n", 2), 1), check_int("m", selecting.get("m", 4), 1)
    if isinstance(sparsity, Mapping):
        raise ValueError(f"with structure='n:m' every layer has the sparsity 1 - n/m = {1 - n / m}; a "
                         f"per-layer mapping does not apply (exclude layers instead)")
    if sparsity is not None and not (is_number(sparsity) and math.isclose(float(sparsity), 1 - n / m)):
        raise ValueError(f"with structure='n:m' the sparsity is 1 - n/m = {1 - n / m}; pass "
                         f"sparsity=None (or that value), got {sparsity!r}")
    return None


def _calibration(part: Criterion, data: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``data`` as ``(X, y)``, refused if the criterion needs rows (or labels) that are not there."""
    X, y = resolve_data(data)
    if ("inputs" in part.needs and X is None) or ("labels" in part.needs and y is None):
        wanted = "X, y" if "labels" in part.needs else "X"
        raise ValueError(f"criterion {part.name!r} needs calibration data ({wanted}): pass data=(X, y) or "
                         f"a Dataset; criteria without data: {', '.join(data_free_names())}")
    return X, y


def _prune_weights(model: MLP, sparsity: Sparsity | None, part: Criterion, scope: str, structure: str,
                   data: tuple[Any, Any], seed: Seed, selecting: dict[str, Any]) -> Masks:
    """Score every weight, select per ``structure`` (single weights, n:m groups, blocks), mask."""
    n, m, block = selecting.pop("n", 2), selecting.pop("m", 4), selecting.pop("block", None)
    params = dict(model.named_parameters())
    names = eligible(model, **selecting)
    targets = per_layer_sparsity(sparsity, names) if isinstance(sparsity, Mapping) else sparsity
    shapes = {name: params[name].shape for name in names}
    chosen = _scores_of(part, part.score(model, *data, seed=seed), shapes)
    alive = [params[name].mask for name in names]
    if structure == "n:m":
        keep = [select.n_of_m(s, n, m, a) for s, a in zip(chosen, alive)]
    elif structure == "blocks":
        keep = _select_blocks(chosen, targets, scope, alive, block)
    else:
        keep = _select(chosen, targets, scope, alive)
    masks = dict(zip(names, keep))
    _check_not_empty(masks)
    return _apply(model, masks)


def _scores_of(part: Criterion, scores: Any, shapes: dict[str, tuple[int, ...]]) -> list[np.ndarray]:
    """The scores of the names in ``shapes``, in order, each checked for its shape: a criterion written
    outside the package may forget a name or score the wrong thing, and that should say so."""
    missing = [name for name in shapes if not isinstance(scores, Mapping) or name not in scores]
    if missing:
        each = "hidden layer" if part.unit == "neurons" else "parameter"
        raise ValueError(f"criterion {part.name!r} gave no scores for {missing}: score() must return "
                         f"{{name: scores}} for every {each}")
    chosen = [np.asarray(scores[name]) for name in shapes]
    wrong = {name: score.shape for name, score in zip(shapes, chosen) if score.shape != tuple(shapes[name])}
    if wrong:
        raise ShapeError(f"criterion {part.name!r} scored {wrong}; expected the shapes {shapes}")
    return chosen


def _select(scores: list[np.ndarray], targets: float | list[float], scope: str,
            alive: list[np.ndarray | None]) -> list[np.ndarray]:
    """One global threshold, or every array to its own (or the common) sparsity."""
    if scope == "global" and not isinstance(targets, list):
        return select.global_(scores, targets, alive)
    return select.layerwise(scores, targets, alive)


def _select_blocks(scores: list[np.ndarray], targets: float | list[float], scope: str,
                   alive: list[np.ndarray | None], block: Any) -> list[np.ndarray]:
    """Block scores (RMS of each tile's scores), the usual selection over blocks, then back to weights."""
    block = select.check_block(block)
    tiles = [select.block_scores(score, block, mask) for score, mask in zip(scores, alive)]
    keep = _select([rms for rms, _ in tiles], targets, scope, [living for _, living in tiles])
    return [select.expand_blocks(kept, block, score.shape) & (True if mask is None else mask)
            for kept, score, mask in zip(keep, scores, alive)]


def _prune_by_surgery(model: MLP, sparsity: Sparsity, part: Criterion, scope: str, X: np.ndarray, seed: Seed,
                      prune_biases: bool = False, exclude: Any = None, include_output: bool = True) -> Masks:
    """A criterion that moves the survivors (OBS) to per-layer sparsities: the mapping's, the common one
    (layer scope), or those that one global magnitude threshold gives (global scope, as the experiment's
    OBS head start has always done)."""
    if prune_biases:
        raise ValueError(f"criterion {part.name!r} prunes weights only (it updates the biases): "
                         f"prune_biases=True is not supported")
    names = eligible(model, False, exclude, include_output)
    indices = [int(name.split(".")[1]) for name in names]
    if isinstance(sparsity, Mapping):
        allocation = dict(zip(indices, per_layer_sparsity(sparsity, names)))
    elif scope == "global":
        probe = copy.deepcopy(model)
        prune(probe, sparsity, "magnitude", "global", exclude=exclude, include_output=include_output)
        allocation = {i: 1 - float(probe.layers[i].W.mask.mean()) for i in indices}
    else:
        allocation = {i: sparsity for i in indices}
    for index, share in allocation.items():
        d = model.layers[index].W.shape[0]
        if round(share * d) >= d:
            raise ValueError(f"OBS at sparsity {share:.4f} would leave layers.{index}.W with no weights "
                             f"at all (each unit keeps d - round(s · d) of its d = {d} inputs); lower the "
                             f"sparsity")
    return part.prune_layers(model, X, allocation, seed)


def hidden_alive(model: MLP) -> dict[str, np.ndarray]:
    """``{"layers.l": bool per hidden neuron}``: False where the neuron was removed (its incoming column
    and its bias are both fully masked)."""
    alive = {}
    for index in range(len(model.layers) - 1):
        W, b = model.layers[index].W, model.layers[index].b
        flags = np.ones(b.shape, dtype=bool)
        if W.mask is not None and b.mask is not None:
            flags = W.mask.any(axis=0) | b.mask
        alive[f"layers.{index}"] = flags
    return alive


def normalise_neuron_scores(scores: Sequence[np.ndarray],
                            alive: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every layer's neuron scores divided by the mean |score| of its living neurons: ``ŝ_j = s_j / mean|s|``.

    The global comparison of neurons needs scores on one scale: a layer with 784 inputs has column norms
    ``sqrt(784 / 64)`` times those of a layer with 64, so raw scores would empty one layer first (issue
    13). Dividing by the layer's mean (Torch-Pruning's default ``normalizer="mean"``) makes scores
    invariant to a layer's scale and to its width, and keeps each layer's spread: a layer whose neurons
    differ a lot gives up more. (Dividing by the L2 norm of the score vector would shrink wide layers'
    scores by ``1/sqrt(h)``.) A layer whose living scores are all 0 is left as it is.
    Shapes: one (h_l,) array per hidden layer -> float64 arrays of the same shapes.

    >>> normalise_neuron_scores([np.array([1.0, 3.0]), np.array([10.0, 30.0, 20.0])],
    ...                         [np.array([True, True]), np.array([True, True, False])])
    [array([0.5, 1.5]), array([0.5, 1.5, 1. ])]
    """
    normalised = []
    for score, living in zip(scores, alive):
        score = np.asarray(score, dtype=np.float64)
        scale = float(np.mean(np.abs(score[living]))) if np.any(living) else 0.0
        normalised.append(score / scale if scale > 0 else score.copy())
    return normalised


def _global_neurons(scores: list[np.ndarray], sparsity: float, alive: list[np.ndarray],
                    scaled: bool = False) -> list[np.ndarray]:
    """Exactly ``round(s · Σ h_l)`` neurons go, the lowest normalised scores across layers (``scaled``:
    the criterion normalised them itself), and the best living neuron of every layer stays (the floor:
    one neuron per hidden layer)."""
    normalised = ([np.asarray(score, dtype=np.float64).copy() for score in scores] if scaled
                  else normalise_neuron_scores(scores, alive))
    total = sum(score.size for score in normalised)
    k = round(sparsity * total)
    if k > total - len(normalised):
        raise ValueError(f"global neuron pruning to {sparsity} would remove {k} of the {total} hidden "
                         f"neurons, that is every neuron of some hidden layer: each keeps at least one, so "
                         f"at most {total - len(normalised)} can go; lower the sparsity")
    for score, living in zip(normalised, alive):
        if living.any():
            score[np.argmax(np.where(living, score, -np.inf))] = np.inf      # the floor: never pruned
    return select.smallest_k(normalised, k, alive)


def _prune_neurons(model: MLP, sparsity: Sparsity, part: Criterion, scope: str, X: Any, y: Any, seed: Seed,
                   exclude: Any = None) -> Masks:
    """Score the hidden neurons, select (per layer, or globally on normalised scores), mask whole units."""
    if len(model.layers) < 2:
        raise ValueError(f"structure='neurons' needs a hidden layer; {model} has none (input and output "
                         f"units are never pruned)")
    excluded = _exclusions(model, exclude)
    layers = [f"layers.{i}" for i in range(len(model.layers) - 1) if f"layers.{i}" not in excluded]
    if not layers:
        raise ValueError("no hidden layer is left to prune: every one was excluded")
    targets = per_layer_sparsity(sparsity, layers, "hidden layer") if isinstance(sparsity, Mapping) else None
    widths = {name: (model.sizes[int(name.split(".")[1]) + 1],) for name in layers}
    chosen = _scores_of(part, part.score(model, X, y, seed=seed), widths)
    alive_now = hidden_alive(model)
    alive = [alive_now[name] for name in layers]
    if targets is not None:
        keep = select.layerwise(chosen, targets, alive)
    elif scope == "global":
        keep = _global_neurons(chosen, sparsity, alive, part.scales_layers)
    else:
        keep = select.layerwise(chosen, sparsity, alive)
    for name, flags in zip(layers, keep):
        if not flags.any():
            raise ValueError(f"this pruning would remove every neuron of hidden layer {name}; lower the "
                             f"sparsity, use scope='layer', or exclude that layer")
    masks: Masks = {}
    for name, flags in zip(layers, keep):
        index = int(name.split(".")[1])
        W, b, W_next = model.layers[index].W, model.layers[index].b, model.layers[index + 1].W
        for param_name, shape, mask in ((f"{name}.W", W.shape, np.broadcast_to(flags[None, :], W.shape)),
                                        (f"{name}.b", b.shape, flags),
                                        (f"layers.{index + 1}.W", W_next.shape,
                                         np.broadcast_to(flags[:, None], W_next.shape))):
            masks[param_name] = masks.get(param_name, np.ones(shape, bool)) & mask
    return _apply(model, masks)


# ------------------------------------------------------------------ short forms
def magnitude(model: MLP, sparsity: float, scope: str = "global", **options: Any) -> Masks:
    """``prune(model, sparsity, "magnitude", scope, ...)``: the smallest ``|w|`` go."""
    return prune(model, sparsity, "magnitude", scope, **options)


def random(model: MLP, sparsity: float, scope: str = "global", seed: Seed = 0, **options: Any) -> Masks:
    """``prune(model, sparsity, "random", ...)``: a uniformly random ``round(s · n)`` go (the baseline)."""
    return prune(model, sparsity, "random", scope, seed=seed, **options)


def gradient(model: MLP, sparsity: float, data: Any, scope: str = "global", **options: Any) -> Masks:
    """``prune(model, sparsity, "gradient", data=data, ...)``: the smallest ``|∂L/∂w|`` go."""
    return prune(model, sparsity, "gradient", scope, data=data, **options)


def taylor(model: MLP, sparsity: float, data: Any, scope: str = "global", **options: Any) -> Masks:
    """``prune(model, sparsity, "taylor", data=data, ...)``: the smallest ``|w · ∂L/∂w|`` go."""
    return prune(model, sparsity, "taylor", scope, data=data, **options)


def hybrid(model: MLP, sparsity: float, data: Any, alpha: float = 0.5, scope: str = "global",
           **options: Any) -> Masks:
    """``prune(model, sparsity, "hybrid", data=data, alpha=alpha)``: the document's mixed pruning."""
    return prune(model, sparsity, "hybrid", scope, data=data, alpha=alpha, **options)


def obd(model: MLP, sparsity: float, data: Any, hessian: str = "lecun", scope: str = "global",
        **options: Any) -> Masks:
    """``prune(model, sparsity, "obd", data=data, hessian=hessian)``: the smallest ``h_ii w_i² / 2`` go."""
    return prune(model, sparsity, "obd", scope, data=data, hessian=hessian, **options)


def lamp(model: MLP, sparsity: float, **options: Any) -> Masks:
    """``prune(model, sparsity, "lamp", scope="global")``: LAMP scores under one global threshold."""
    return prune(model, sparsity, "lamp", "global", **options)


def neurons(model: MLP, sparsity: float, criterion: str = "l2", scope: str = "global", data: Any = None,
            **options: Any) -> Masks:
    """``prune(model, sparsity, criterion, scope, structure="neurons")``: remove whole hidden neurons."""
    return prune(model, sparsity, criterion, scope, structure="neurons", data=data, **options)


def blocks(model: MLP, sparsity: Sparsity, block: tuple[int, int] = (4, 4), criterion: str = "magnitude",
           scope: str = "global", data: Any = None, **options: Any) -> Masks:
    """``prune(model, sparsity, criterion, scope, structure="blocks", block=block)``: whole (r, c) tiles go.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([8, 8, 2], seed=0)
    >>> masks = blocks(model, 0.5, block=(4, 4), scope="layer", include_output=False)
    >>> int((~masks["layers.0.W"]).sum())             # 2 of the 4 tiles of 4x4
    32
    """
    return prune(model, sparsity, criterion, scope, structure="blocks", data=data, block=block, **options)


def n_m(model: MLP, n: int = 2, m: int = 4, criterion: str = "magnitude", data: Any = None,
        **options: Any) -> Masks:
    """``prune(model, None, criterion, structure="n:m", n=n, m=m)``: keep n of every m input weights."""
    return prune(model, None, criterion, structure="n:m", data=data, n=n, m=m, **options)


def threshold(model: MLP, tau: float | None = None, quality: float | None = None, prune_biases: bool = False,
              exclude: Any = None, include_output: bool = True) -> Masks:
    """Prune every weight with ``|w| < τ``: a fixed ``tau``, or per layer ``τ = quality · std(w)`` over
    the layer's surviving weights (Han et al. 2015). The sparsity is whatever results.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([4, 3], seed=0)
    >>> masks = threshold(model, tau=0.5)
    >>> bool(np.all(np.abs(model.layers[0].W.data[~masks["layers.0.W"]]) == 0))
    True
    """
    if (tau is None) == (quality is None):
        raise ValueError("give exactly one of tau (an absolute threshold) or quality (τ = quality · std)")
    check_number("the threshold", tau if tau is not None else quality, 0, None)
    params = dict(model.named_parameters())
    masks = {}
    for name in eligible(model, prune_biases, exclude, include_output):
        p = params[name]
        tau_here = tau if tau is not None else select.std_threshold(p.data, quality, p.mask)
        masks[name] = select.below_threshold(np.abs(p.data), tau_here, p.mask)
    _check_not_empty(masks)
    return _apply(model, masks)
