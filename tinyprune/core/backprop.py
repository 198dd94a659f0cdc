"""The backward pass of an MLP derived by hand: the chain rule, one line per equation.

For weight layers ``l = 1..D`` with ``A_0 = X``, ``Z_l = A_{l-1} W_l + b_l``, ``A_l = act(Z_l)`` (the
last layer outputs ``Z_D``, the logits; ``L`` is the loss, symbols as in ``notebooks/README.md``), the
document's section 4 reads, in matrix form:

1. ``δ_D = dL/dZ_D``                                  (the error at the logits: ``(P - Y)/n`` for CE)
2. ``dW_l = A_{l-1}^T δ_l``,  ``db_l = Σ_rows δ_l``   (``Δw = Σ_i ∂L/∂ŷ_i · ∂ŷ_i/∂w``, summed over rows)
3. ``δ_{l-1} = (δ_l W_l^T) ⊙ act'(Z_{l-1})``            (back through ``W_l`` and ``act``: ``derivative``)

Derived in ``notebooks/02_backprop_by_hand.ipynb``; ``tests/test_backprop.py`` checks it against
autograd and finite differences. A masked weight's gradient is exactly 0.

>>> from tinyprune.core.nn import MLP, Parameter
>>> model = MLP([4, 3, 2], seed=0, dtype=np.float64)
>>> loss, grads = gradients(model, np.ones((5, 4)), np.array([0, 1, 0, 1, 1]))
>>> sorted(grads), grads["layers.0.W"].shape
(['layers.0.W', 'layers.0.b', 'layers.1.W', 'layers.1.b'], (4, 3))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.core import losses
from tinyprune.core.errors import ShapeError
from tinyprune.core.nn import GELU_A, GELU_C, MLP, Parameter, activate, activation_name


@dataclass
class Cache:
    """What the forward pass keeps for the backward pass. The lists count layers from 0, the maths
    from 1: ``inputs[l]`` is the input of ``model.layers[l]``, ``A_l`` (``inputs[0]`` is ``X = A_0``);
    ``Z[l]`` is that layer's pre-activation, ``Z_{l+1}``; ``logits`` is ``Z[-1]``."""

    inputs: list[np.ndarray]
    Z: list[np.ndarray]

    @property
    def logits(self) -> np.ndarray:
        return self.Z[-1]


def _check_model_and_input(model: MLP, X: np.ndarray) -> None:
    if not isinstance(model, MLP):
        raise TypeError(f"backprop works on an MLP, got {type(model).__name__}")
    if X.ndim != 2 or X.shape[1] != model.sizes[0]:
        raise ShapeError(f"X must have shape (n, {model.sizes[0]}), got {X.shape}")
    losses.check_finite("X", X)


def forward(model: MLP, X: np.ndarray, check: bool = True) -> Cache:
    """``Z_l = A_{l-1} W_l + b_l``, ``A_l = act(Z_l)``, keeping every ``A_{l-1}`` and ``Z_l``; ``check=False``
    skips the checks of ``X`` (a ``Dataset`` checked it once). Shapes: X (n, d_0) -> ``Z[l]`` (n, d_{l+1})."""
    X = np.asarray(X)
    if check:
        _check_model_and_input(model, X)
    inputs, pre_activations, activation = [], [], X
    last = len(model.layers) - 1
    for index, layer in enumerate(model.layers):
        inputs.append(activation)
        Z = activation @ layer.W.data
        Z += layer.b.data                                               # Z_l = A_{l-1} W_l + b_l
        pre_activations.append(Z)
        activation = activate(Z, model.activation) if index < last else Z      # A_l = act(Z_l)
    return Cache(inputs, pre_activations)


def backward(model: MLP, cache: Cache, dlogits: np.ndarray,
             dhidden: list[np.ndarray | None] | None = None, masked: bool = True) -> dict[str, np.ndarray]:
    """From ``δ_D = dL/dZ_D`` (``dlogits``, shape (n, K)) to ``{name: dL/dθ}`` for every parameter.

    Keys are ``named_parameters()`` names (``layers.0.W``, ...); a gradient is 0 where the mask is ``False``.
    ``dhidden[l-1] = ∂L/∂A_l`` (or ``None``), for a loss that also reads the hidden activations
    (``recover.Distillation``), joins the error: ``δ_l = (δ_{l+1} W_{l+1}^T + ∂L/∂A_l) ⊙ act'(Z_l)``.
    ``masked=False`` keeps the pruned entries' gradients too (RigL regrows by them: ``prune.regrow``)."""
    if dlogits.shape != cache.logits.shape:
        raise ShapeError(f"dlogits has shape {dlogits.shape}, the logits have {cache.logits.shape}")
    if dhidden is not None and len(dhidden) != len(model.layers) - 1:
        raise ShapeError(f"dhidden has {len(dhidden)} entries, the model has {len(model.layers) - 1} "
                         "hidden layers (one gradient per hidden activation, or None)")
    grads: dict[str, np.ndarray] = {}
    delta = dlogits                                                      # δ_D
    for index in reversed(range(len(model.layers))):
        layer = model.layers[index]
        dW = cache.inputs[index].T @ delta                              # dW_l = A_{l-1}^T δ_l
        db = delta.sum(axis=0)                                          # db_l = Σ_rows δ_l
        if masked:
            db, dW = _masked(db, layer.b), _masked(dW, layer.W)
        grads[f"layers.{index}.b"], grads[f"layers.{index}.W"] = db, dW
        if index > 0:
            delta = delta @ layer.W.data.T                              # δ_l W_l^T ...
            if dhidden is not None and dhidden[index - 1] is not None:
                delta += dhidden[index - 1]                             # ... + ∂L/∂A_{l-1} ...
            delta *= derivative(cache.Z[index - 1], model.activation)   # ... ⊙ act'(Z_{l-1})
    return dict(reversed(grads.items()))      # named_parameters() order: layers.0.W, layers.0.b, ...


def derivative(Z: np.ndarray, spec: str) -> np.ndarray | float:
    """``act'(Z)`` elementwise, by hand (``tests/test_backprop.py`` checks each against autograd and finite
    differences). At the kink z = 0, ReLU and leaky ReLU take their left slope (0 and s)."""
    name, s = activation_name(spec)
    t = np.tanh(GELU_C * (Z + GELU_A * Z**3)) if name == "gelu_tanh" else None     # t = tanh(u)
    return {"relu": lambda: Z > 0,                                               # 1 if z > 0 else 0
            "tanh": lambda: 1 - np.tanh(Z) ** 2,                                 # 1 - tanh² z
            "sigmoid": lambda: activate(Z, "sigmoid") * (1 - activate(Z, "sigmoid")),   # σ (1 - σ)
            "gelu_tanh": lambda: 0.5 * (1 + t) + 0.5 * Z * (1 - t**2) * GELU_C * (1 + 3 * GELU_A * Z**2),
            "leaky_relu": lambda: np.where(Z > 0, 1, s).astype(Z.dtype),         # 1 if z > 0 else s
            "identity": lambda: 1}[name]()                                       # d z / dz


def _masked(grad: np.ndarray, parameter: Parameter) -> np.ndarray:
    """The gradient with its pruned entries set to exactly 0 (in place)."""
    if parameter.mask is not None:
        grad *= parameter.mask
    return grad


def gradients(model: MLP, X: np.ndarray, y: Any,
              loss: str = "cross_entropy") -> tuple[float, dict[str, np.ndarray]]:
    """The loss (``losses.loss_and_grad``'s ``"cross_entropy"`` or ``"squared_error"``) and ``{name: dL/dθ}``
    for a batch, by the hand-derived chain rule. Shapes: X (n, d_0), y (n,) -> (float, {name: array})."""
    cache = forward(model, X)
    value, dlogits = losses.loss_and_grad(loss, cache.logits, y)
    return value, backward(model, cache, dlogits)


def set_gradients(model: MLP, X: np.ndarray, y: Any, loss: str = "cross_entropy") -> float:
    """Like ``gradients``, but store each gradient in its ``Parameter.grad``; return the loss."""
    value, grads = gradients(model, X, y, loss)
    for index, layer in enumerate(model.layers):
        layer.W.grad, layer.b.grad = grads[f"layers.{index}.W"], grads[f"layers.{index}.b"]
    return value
