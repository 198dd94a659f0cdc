"""Layers and models: ``Parameter``, ``Module``, ``Linear``, ``ReLU``, ``Sequential`` and ``MLP``.

Conventions (``notebooks/01_mlp_and_losses.ipynb``): a batch ``X`` has shape ``(n, d)``; a layer
holds ``W`` of shape ``(d, h)`` and ``b`` of shape ``(h,)`` and computes ``Z = X @ W + b``; hidden
layers apply ``A = relu(Z)``. The last layer returns logits; softmax lives in the loss.

Pruning enters the core only through ``Parameter.mask``: a pruned weight is an exact 0 and its
mask entry is ``False``.

>>> model = MLP([784, 64, 64, 10], seed=0)      # the document's model
>>> [name for name, _ in model.named_parameters()][:2]
['layers.0.W', 'layers.0.b']
>>> model(np.zeros((3, 784), dtype=np.float32)).shape
(3, 10)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tinyprune.autograd import Tensor
from tinyprune.errors import ShapeError
from tinyprune.random import Seed, rng

ACTIVATIONS = ("relu",)


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
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != self.shape:
                raise ShapeError(f"a mask must be a bool array of the parameter's shape {self.shape}, "
                                 f"got dtype {mask.dtype} and shape {mask.shape}")
        self._mask = mask


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
        """``{name: copy of the values}`` for every parameter (masks are not included)."""
        return {name: parameter.data.copy() for name, parameter in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy values in from ``state``; names and shapes must match this module exactly.

        Everything is checked before anything is copied, so a state dict that does not fit
        leaves the module unchanged.
        """
        own = dict(self.named_parameters())
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ShapeError(f"state dict does not fit this model: missing {missing}, "
                             f"unexpected {unexpected}")
        values = {name: np.asarray(state[name]) for name in own}
        for name, parameter in own.items():
            if values[name].shape != parameter.shape:
                raise ShapeError(f"state dict entry {name!r} has shape {values[name].shape}, "
                                 f"the model expects {parameter.shape}")
        for name, parameter in own.items():
            parameter.data[...] = values[name]


class Linear(Module):
    """``Z = X @ W + b`` with ``W`` (d_in, d_out) Glorot-uniform and ``b`` (d_out,) zero, as Keras does.

    Glorot (Xavier) uniform draws ``W`` from ``U(-a, a)`` with ``a = sqrt(6 / (d_in + d_out))``, so
    ``Var(W) = 2 / (d_in + d_out)``: for *linear* (or tanh-like) layers this keeps the variance of the
    signal roughly equal from layer to layer (Glorot & Bengio 2010). Under ReLU it does not: ReLU zeroes
    about half of its inputs, halving the second moment, so the variance shrinks layer after layer
    (He et al. 2015 double the variance to compensate); the document's Keras model uses Glorot anyway.
    """

    def __init__(self, d_in: int, d_out: int, seed: Seed = None, dtype: Any = np.float32) -> None:
        for label, size in (("d_in", d_in), ("d_out", d_out)):
            if not isinstance(size, (int, np.integer)) or size < 1:
                raise ValueError(f"{label} must be a positive integer, got {size!r}")
        limit = np.sqrt(6.0 / (d_in + d_out))
        self.W = Parameter(rng(seed).uniform(-limit, limit, size=(d_in, d_out)).astype(dtype))
        self.b = Parameter(np.zeros(d_out, dtype=dtype))

    def forward(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            return x @ self.W + self.b
        return x @ self.W.data + self.b.data


class ReLU(Module):
    """``A = max(Z, 0)`` elementwise."""

    def forward(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            return x.relu()
        return np.maximum(x, 0)


class Sequential(Module):
    """Modules applied one after the other; ``.layers`` is their list."""

    def __init__(self, *modules: Module) -> None:
        self.layers = list(modules)

    def forward(self, x: Any) -> Any:
        for module in self.layers:
            x = module(x)
        return x


class MLP(Module):
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]``: ReLU between layers, logits out.

    ``MLP([784, 64, 64, 10])`` is the document's model (55,050 parameters). Called on a ``Tensor``
    it builds the autograd graph; called on an ndarray it returns the logits as an ndarray.
    Shapes: X (n, sizes[0]) -> logits (n, sizes[-1]).
    """

    def __init__(self, sizes: list[int], activation: str = "relu", seed: Seed = 0,
                 dtype: Any = np.float32) -> None:
        sizes = list(sizes)
        if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in sizes):
            raise ValueError(f"sizes must list at least two positive integers (input, ..., output), "
                             f"got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
        self.sizes = [int(s) for s in sizes]
        self.activation = activation
        self.dtype = np.dtype(dtype)
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
                x = x.relu() if isinstance(x, Tensor) else np.maximum(x, 0)
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
