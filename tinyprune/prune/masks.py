"""The mask laws: apply a mask, combine masks, make pruning permanent, reset, and count what is pruned.

A pruned weight is stored as an exact 0 and its ``Parameter.mask`` entry is ``False``; the optimizers
multiply gradients and their own state by the mask, so ``W[~mask] == 0`` survives training. Masks only
lose ``True``s: ``apply_mask`` ANDs the new mask with the old one, so pruning again prunes among the
survivors. Only ``reset`` (or ``set_masks``, which replaces) gives entries back. A mask is never changed
in place: every change assigns a new array, so a mask you were handed earlier stays as it was.
Derived in ``notebooks/05_pruning_criteria.ipynb`` ("masks, not deletions").

>>> from tinyprune.core.nn import MLP
>>> model = MLP([3, 2], seed=0)
>>> W = model.layers[0].W
>>> apply_mask(W, np.array([[True, False], [True, True], [False, True]]))
>>> int(np.count_nonzero(W.data)), mask_stats(model)["layers.0.W"]
(4, {'total': 6, 'pruned': 2, 'sparsity': 0.3333333333333333})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tinyprune.core.nn import Module, Parameter
from tinyprune.errors import ShapeError


def _as_mask(mask: Any, shape: tuple[int, ...], name: str = "mask") -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"{name} must be a bool array (True = keep, False = pruned), got dtype {mask.dtype}")
    if mask.shape != tuple(shape):
        raise ShapeError(f"{name} has shape {mask.shape}, the parameter has shape {tuple(shape)}")
    return mask


def combine(*masks: np.ndarray | None) -> np.ndarray | None:
    """The logical AND of masks (``None`` = nothing pruned): an entry survives only if all keep it.

    Shapes: masks of one shape -> a new bool array of that shape (``None`` if every mask is ``None``).

    >>> combine(np.array([True, True, False]), None, np.array([True, False, True]))
    array([ True, False, False])
    """
    given = [np.asarray(m) for m in masks if m is not None]
    if not given:
        return None
    result = _as_mask(given[0], given[0].shape).copy()
    for mask in given[1:]:
        np.logical_and(result, _as_mask(mask, result.shape), out=result)
    return result


def apply_mask(parameter: Parameter, mask: np.ndarray) -> None:
    """Prune ``parameter`` where ``mask`` is False: ``mask <- old_mask AND mask``, ``W <- W * mask``.

    Assigns a new bool array to ``parameter.mask`` (the old array is not touched) and sets the pruned
    weights to exactly 0. Shapes: mask has the parameter's shape.
    """
    if not isinstance(parameter, Parameter):
        raise TypeError(f"apply_mask needs a Parameter, got {type(parameter).__name__}")
    new = combine(parameter.mask, _as_mask(mask, parameter.shape))
    parameter.mask = new
    np.multiply(parameter.data, new, out=parameter.data)     # as the optimizers do: W <- W * mask


def reapply(model: Module) -> None:
    """``W <- W ⊙ M`` for every masked parameter: zero the pruned entries again after the values were
    replaced (a re-initialisation, a rewind to earlier weights, a loaded state dict). Masks are unchanged.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([2, 2], seed=0); W = model.layers[0].W; W.mask = np.array([[True, False]] * 2)
    >>> reapply(model); W.data[:, 1].tolist()
    [0.0, 0.0]
    """
    for parameter in model.parameters():
        if parameter.mask is not None:
            np.multiply(parameter.data, parameter.mask, out=parameter.data)


def get_masks(model: Module) -> dict[str, np.ndarray]:
    """``{name: copy of the mask}`` for every parameter that has one (unpruned parameters are left out)."""
    return {name: p.mask.copy() for name, p in model.named_parameters() if p.mask is not None}


def set_masks(model: Module, masks: Mapping[str, np.ndarray | None]) -> None:
    """Replace the masks of the named parameters by ``masks`` (``None`` drops one) and zero what they prune.

    Unlike ``apply_mask`` this *replaces* rather than ANDs: it is how a saved set of masks is put back
    (for example after rewinding the weights to their initial values). Names must exist in the model.
    """
    params = dict(model.named_parameters())
    unknown = sorted(set(masks) - set(params))
    if unknown:
        raise ValueError(f"unknown parameter name(s) {unknown}; the model has {sorted(params)}")
    checked = {name: None if m is None else _as_mask(m, params[name].shape, f"mask of {name}").copy()
               for name, m in masks.items()}
    for name, mask in checked.items():
        params[name].mask = mask
        if mask is not None:
            params[name].data[~mask] = 0


def remove(model: Module) -> int:
    """Make pruning permanent: zero every masked weight once more, then drop the masks.

    The zeros stay in the weights but nothing holds them at 0 any more: further training may move them
    (the PyTorch name for this step is ``prune.remove``). Returns how many zeros were made permanent.
    """
    count = 0
    for _, parameter in model.named_parameters():
        if parameter.mask is not None:
            pruned = ~parameter.mask
            parameter.data[pruned] = 0
            count += int(np.count_nonzero(pruned))
            parameter.mask = None
    return count


def reset(model: Module, state: Mapping[str, np.ndarray] | None = None) -> None:
    """Undo pruning: drop every mask. Without ``state`` the weights stay as they are (the pruned ones
    at 0, now free to train again); with ``state`` (a ``model.state_dict()`` saved before pruning) the
    weights are restored from it too.
    """
    for _, parameter in model.named_parameters():
        parameter.mask = None
    if state is not None:                 # its values only: a "<name>.mask" entry would prune again
        model.load_state_dict({k: v for k, v in state.items() if not k.endswith(".mask")})


def is_pruned(model: Module) -> bool:
    """``True`` when some parameter of ``model`` has a mask with a pruned (``False``) entry.

    A mask of all ``True`` prunes nothing, and zeros without a mask are not pruning (training may move
    them): both answer ``False``. Per parameter: ``Parameter.is_pruned``.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([3, 2], seed=0)
    >>> is_pruned(model)
    False
    >>> apply_mask(model.layers[0].W, np.array([[True, False], [True, True], [True, True]]))
    >>> is_pruned(model), model.layers[0].W.is_pruned, model.layers[0].b.is_pruned
    (True, True, False)
    """
    return any(parameter.is_pruned for parameter in model.parameters())


def weight_sparsity(model: Module) -> float:
    """The fraction of pruned weights (mask ``False``) over every weight matrix ``layers.l.W``; biases are
    not counted: ``Σ_l |{M_l = 0}| / Σ_l |W_l|``.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([4, 5, 2], seed=0); model.layers[0].W.mask = np.arange(20).reshape(4, 5) < 10
    >>> weight_sparsity(model)                               # 10 of 20 + 10 weights
    0.3333333333333333
    """
    pruned = sum(0 if layer.W.mask is None else int(np.count_nonzero(~layer.W.mask))
                 for layer in model.layers)
    return pruned / sum(layer.W.data.size for layer in model.layers)


def mask_stats(model: Module) -> dict[str, dict[str, Any]]:
    """Per parameter ``{"total": n, "pruned": count of mask False, "sparsity": pruned / n}``."""
    stats = {}
    for name, parameter in model.named_parameters():
        total = int(parameter.data.size)
        pruned = 0 if parameter.mask is None else total - int(np.count_nonzero(parameter.mask))
        stats[name] = {"total": total, "pruned": pruned, "sparsity": pruned / total if total else 0.0}
    return stats
