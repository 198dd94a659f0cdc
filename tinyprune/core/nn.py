"""Layers and models: ``Parameter``, ``Module``, ``Linear``, ``ReLU``, ``Sequential`` and ``MLP``.

Conventions (``notebooks/01_mlp_and_losses.ipynb``): a batch ``X`` has shape ``(n, d)``; a layer
holds ``W`` of shape ``(d, h)`` and ``b`` of shape ``(h,)`` and computes ``Z = X @ W + b``; hidden
layers apply ``A = act(Z)`` (``activate``; ReLU unless told). The last layer returns logits.

Pruning enters the core only through ``Parameter.mask``: a pruned weight is an exact 0 and its mask
entry ``False``; ``state_dict()`` keeps each mask under ``"<name>.mask"``, so a pruned model stays pruned.

>>> model = MLP([784, 64, 64, 10], seed=0)      # the document's model
>>> [name for name, _ in model.named_parameters()][:2]
['layers.0.W', 'layers.0.b']
>>> model(np.zeros((3, 784), dtype=np.float32)).shape
(3, 10)
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinyprune.core.autograd import Tensor
from tinyprune.core.errors import ShapeError
from tinyprune.core.random import Seed, rng

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu_tanh", "leaky_relu", "identity")
LEAKY_SLOPE = 0.01                  # "leaky_relu" (torch's default); "leaky_relu:0.2" states another slope
GELU_C, GELU_A = math.sqrt(2 / math.pi), 0.044715     # gelu_tanh's constants (Hendrycks & Gimpel 2016)
DTYPES = ("float32", "float64")     # training runs in float32, gradient checks in float64
MASK_SUFFIX = ".mask"               # state_dict key of a parameter's mask: "layers.0.W.mask"


class Parameter(Tensor):
    """A trainable tensor with an optional pruning ``mask`` (bool, same shape; ``None`` = unpruned)."""

    def __init__(self, data: Any, mask: np.ndarray | None = None) -> None:
        super().__init__(data, requires_grad=True)
        self._mask: np.ndarray | None = None
        self.mask = mask

    @property
    def mask(self) -> np.ndarray | None:
        return self._mask

    @mask.setter
    def mask(self, mask: np.ndarray | None) -> None:
        self._mask = None if mask is None else _bool_array(mask, self.shape, "a mask")

    @property
    def is_pruned(self) -> bool:
        """``True`` when a mask holds at least one ``False`` (a pruned entry)."""
        return self._mask is not None and not bool(self._mask.all())


class Module:
    """Base class: finds its ``Parameter``s in its attributes (and in lists of sub-modules)."""

    def forward(self, x: Any) -> Any:
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Parameter]]:
        """``[(dotted name, Parameter)]`` in definition order, e.g. ``("layers.0.W", W)``."""
        return list(self._walk(prefix))

    def _walk(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        for attribute, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + attribute, value
            elif isinstance(value, Module):
                yield from value._walk(f"{prefix}{attribute}.")
            elif isinstance(value, (list, tuple)):
                for index, item in enumerate(value):
                    if isinstance(item, Module):
                        yield from item._walk(f"{prefix}{attribute}.{index}.")

    def parameters(self) -> list[Parameter]:
        """Every ``Parameter``, in the order of ``named_parameters()``."""
        return [parameter for _, parameter in self.named_parameters()]

    def zero_grad(self) -> None:
        """Forget every parameter's gradient."""
        for parameter in self.parameters():
            parameter.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """``{name: copy of the values}`` for every parameter, and ``{name + ".mask": copy of the mask}``
        for every parameter that has a mask (``"layers.0.W"``, ``"layers.0.W.mask"``)."""
        state = {}
        for name, parameter in self.named_parameters():
            state[name] = parameter.data.copy()
            if parameter.mask is not None:
                state[name + MASK_SUFFIX] = parameter.mask.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy values (and masks) in from ``state``; names and shapes must match this module exactly.
        A ``"<name>.mask"`` entry (bool, ``False`` only where the value is 0) replaces that parameter's
        mask; a parameter without one keeps its mask, applied to the new values (``W <- W_new ⊙ M``: rewinding
        a pruned model to dense weights keeps it pruned). All is checked before anything is copied."""
        own = dict(self.named_parameters())
        masks = {key.removesuffix(MASK_SUFFIX): value for key, value in state.items()
                 if key.endswith(MASK_SUFFIX) and key.removesuffix(MASK_SUFFIX) in own}
        expected = set(own) | {name + MASK_SUFFIX for name in masks}
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ShapeError(f"state dict does not fit the model: missing {missing}, unexpected {unexpected}")
        values = {name: np.asarray(state[name]) for name in own}
        for name, parameter in own.items():
            if values[name].shape != parameter.shape:
                raise ShapeError(f"state dict entry {name!r} has shape {values[name].shape}, "
                                 f"the model expects {parameter.shape}")
        masks = {name: _checked_mask(name, mask, values[name]) for name, mask in masks.items()}
        for name, parameter in own.items():
            if name in masks:
                parameter.mask = masks[name]
            parameter.data[...] = values[name]
            if parameter.mask is not None:
                parameter.data[~parameter.mask] = 0


def _bool_array(mask: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != shape:
        raise ShapeError(f"{what} must be a bool array of shape {shape}, got dtype {mask.dtype} and shape "
                         f"{mask.shape}")
    return mask


def _checked_mask(name: str, mask: Any, values: np.ndarray) -> np.ndarray:
    """A copy of ``mask`` if it is a bool array of ``values``' shape that is ``False`` only on zeros."""
    mask = _bool_array(mask, values.shape, f"state dict entry {name + MASK_SUFFIX!r}")
    if np.any(values[~mask]):
        raise ValueError(f"state dict entry {name!r} has nonzero values where {name + MASK_SUFFIX!r} "
                         "is False (a pruned weight must be an exact 0)")
    return mask.copy()


class Linear(Module):
    """``Z = X @ W + b`` with ``W`` (d_in, d_out) Glorot-uniform and ``b`` (d_out,) zero, as Keras does.
    Glorot uniform: ``W ~ U(-a, a)``, ``a = sqrt(6 / (d_in + d_out))``, so ``Var(W) = 2 / (d_in + d_out)``
    keeps the signal's variance from layer to layer for linear layers (Glorot & Bengio 2010); ReLU halves it
    (He et al. 2015 double ``Var(W)``); the document's Keras model uses Glorot anyway."""

    def __init__(self, d_in: int, d_out: int, seed: Seed = None, dtype: Any = np.float32) -> None:
        for label, size in (("d_in", d_in), ("d_out", d_out)):
            if not _is_size(size):
                raise ValueError(f"{label} must be a positive integer, got {size!r}")
        limit = np.sqrt(6.0 / (d_in + d_out))
        self.W = Parameter(rng(seed).uniform(-limit, limit, size=(d_in, d_out)).astype(dtype))
        self.b = Parameter(np.zeros(d_out, dtype=dtype))

    def forward(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            return x @ self.W + self.b
        return x @ self.W.data + self.b.data


class ReLU(Module):
    """``A = max(Z, 0)`` elementwise (``activate`` has the others)."""

    def forward(self, x: Any) -> Any:
        return activate(x, "relu")


class Sequential(Module):
    """Modules applied one after the other; ``.layers`` is their list."""

    def __init__(self, *modules: Module) -> None:
        self.layers = list(modules)

    def forward(self, x: Any) -> Any:
        for module in self.layers:
            x = module(x)
        return x


def activation_name(spec: Any) -> tuple[str, float]:
    """``(name, slope)``: ``"tanh"`` -> ``("tanh", 0.0)``, ``"leaky_relu:0.2"`` -> ``("leaky_relu", 0.2)``.
    ``gelu_tanh`` is GELU's tanh approximation (torch's ``approximate="tanh"``); the exact erf GELU, torch's
    and Keras's default, is not here (NumPy has no erf), so ``"gelu"`` is refused."""
    name, _, slope = str(spec).partition(":")
    if spec not in ACTIVATIONS and not (name == "leaky_relu" and re.fullmatch(r"\d+(\.\d*)?", slope)):
        close = difflib.get_close_matches(str(spec).lower(), ACTIVATIONS, n=1, cutoff=0.5) + [""]
        hint = "gelu_tanh, GELU's tanh form (the erf GELU is not here)" if "gelu" in str(spec) else close[0]
        raise ValueError(f"unknown activation {spec!r}; {f'did you mean {hint}? ' if hint else ''}expected "
                         f"one of {ACTIVATIONS} or leaky_relu:SLOPE (a number >= 0)")
    return name, (float(slope) if slope else LEAKY_SLOPE) if name == "leaky_relu" else 0.0


def activate(Z: Any, spec: str) -> Any:
    """``A = act(Z)`` elementwise, on an ndarray (NumPy) or a ``Tensor`` (built from autograd's own ops).
    >>> activate(np.array([-2.0, 0.0, 2.0]), "leaky_relu:0.5")
    array([-1.,  0.,  2.])
    """
    name, s = activation_name(spec)
    if isinstance(Z, Tensor):
        return {"relu": Z.relu, "tanh": Z.tanh, "identity": lambda: Z,
                "sigmoid": lambda: (Z * 0.5).tanh() * 0.5 + 0.5,                 # σ(z) = (1 + tanh(z/2)) / 2
                "leaky_relu": lambda: Z.relu() - (-Z).relu() * s,               # max(z,0) + s·min(z,0)
                "gelu_tanh": lambda: Z * 0.5 * ((Z + Z**3 * GELU_A) * GELU_C).tanh() + Z * 0.5}[name]()
    return {"relu": lambda: np.maximum(Z, 0),                                    # max(z, 0)
            "tanh": lambda: np.tanh(Z),                                          # tanh z
            "sigmoid": lambda: 0.5 * np.tanh(0.5 * Z) + 0.5,                     # 1/(1+e^-z), cannot overflow
            "gelu_tanh": lambda: 0.5 * Z * (1 + np.tanh(GELU_C * (Z + GELU_A * Z**3))),  # z/2 (1+tanh(u))
            "leaky_relu": lambda: np.where(Z > 0, Z, s * Z),                     # z if z > 0 else s z
            "identity": lambda: Z}[name]()


def _is_size(size: Any) -> bool:
    """A layer width: a positive integer, and not a bool (``True`` is an int to Python, not a width)."""
    return isinstance(size, (int, np.integer)) and not isinstance(size, (bool, np.bool_)) and size >= 1


def _float_dtype(dtype: Any) -> np.dtype:
    """``dtype`` if it is float32 or float64 (integers cannot learn; float16 overflows going forward)."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return resolved


class MLP(Module):
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]``: ``activation`` between layers, logits out.
    ``MLP([784, 64, 64, 10])`` is the document's model (55,050 parameters). Called on a ``Tensor`` it builds
    the autograd graph; on an ndarray it returns the logits. Shapes: X (n, sizes[0]) -> (n, sizes[-1])."""

    def __init__(self, sizes: list[int], activation: str = "relu", seed: Seed = 0,
                 dtype: Any = np.float32) -> None:
        sizes = list(sizes)
        if len(sizes) < 2 or not all(_is_size(s) for s in sizes):
            raise ValueError(f"sizes must list at least two positive integers (input, ..., output), "
                             f"got {sizes}")
        activation_name(activation)
        self.sizes = [int(s) for s in sizes]
        self.activation = activation
        self.dtype = _float_dtype(dtype)
        generator = rng(seed)
        self.layers = [Linear(d_in, d_out, seed=generator, dtype=self.dtype)
                       for d_in, d_out in zip(self.sizes[:-1], self.sizes[1:])]

    def forward(self, x: Any) -> Any:
        data = x.data if isinstance(x, Tensor) else np.asarray(x)
        if data.ndim != 2 or data.shape[1] != self.sizes[0]:
            raise ShapeError(f"MLP input must have shape (n, {self.sizes[0]}), got {data.shape}")
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < last:
                x = activate(x, self.activation)
        return x

    def config(self) -> dict[str, Any]:
        """The architecture as plain JSON-able values (what checkpoints store)."""
        return {"sizes": list(self.sizes), "activation": self.activation, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config: dict[str, Any], seed: Seed = 0) -> MLP:
        """Build an (untrained) MLP from ``config()``'s output."""
        try:
            return cls(config["sizes"], activation=config["activation"], seed=seed, dtype=config["dtype"])
        except (KeyError, TypeError) as error:
            raise ValueError(f"not an MLP config (needs sizes, activation, dtype): {config!r}") from error

    def __repr__(self) -> str:
        return f"MLP({self.sizes}, activation={self.activation!r}, dtype={self.dtype.name})"
