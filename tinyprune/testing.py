"""Hypothesis strategies shared by tinyprune's tests and by courses that grade students' code.

Importable only where ``hypothesis`` is installed (the ``dev`` extra). Values are bounded and
finite; ``mlp_cases`` keeps pre-activations away from ReLU's kink at 0, where the derivative does
not exist and finite differences straddle it.

Profile ``"ci"`` (``deadline=None``, ``derandomize=True``) makes runs repeatable:
``settings.load_profile("ci")``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    from hypothesis import HealthCheck, assume, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("tinyprune.testing needs hypothesis: pip install 'tinyprune[dev]'") from error

from tinyprune.core.nn import MLP, activate

settings.register_profile("ci", deadline=None, derandomize=True, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=40)

seeds = st.integers(min_value=0, max_value=2**31 - 1)


def finite_floats(bound: float = 10.0) -> st.SearchStrategy[float]:
    """Finite float64 values in ``[-bound, bound]``."""
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=64)


def shapes(min_dims: int = 1, max_dims: int = 3, max_side: int = 5) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes with every side in ``1..max_side``."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def arrays(shape: tuple[int, ...] | st.SearchStrategy, bound: float = 10.0) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays of ``shape`` with finite entries in ``[-bound, bound]``."""
    return hnp.arrays(np.float64, shape, elements=finite_floats(bound))


def positive_arrays(shape: tuple[int, ...] | st.SearchStrategy, low: float = 0.1,
                    high: float = 10.0) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays with entries in ``[low, high]`` (for ``log``, division, powers)."""
    return hnp.arrays(np.float64, shape, elements=st.floats(low, high, width=64))


def nonzero_arrays(shape: tuple[int, ...] | st.SearchStrategy, bound: float = 10.0,
                   margin: float = 1e-3) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays with ``margin <= |x| <= bound`` (for ``relu``, away from its kink at 0)."""
    magnitude = st.floats(margin, bound, width=64)
    return hnp.arrays(np.float64, shape, elements=st.one_of(magnitude, magnitude.map(lambda v: -v)))


@st.composite
def broadcast_pairs(draw: st.DrawFn, bound: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays whose shapes broadcast together (one side may have 1s or fewer axes)."""
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    other = tuple(1 if draw(st.booleans()) else side for side in shape)
    other = other[draw(st.integers(0, len(other) - 1)):]
    return draw(arrays(shape, bound)), draw(arrays(other, bound))


def labels(n: int, num_classes: int) -> st.SearchStrategy[np.ndarray]:
    """Integer label vectors of length ``n`` with values in ``0..num_classes-1``."""
    return hnp.arrays(np.int64, (n,), elements=st.integers(0, num_classes - 1))


def mlp_sizes(min_hidden: int = 1, max_hidden: int = 4, max_width: int = 16) -> st.SearchStrategy[list[int]]:
    """MLP size lists ``[d_in, h_1, ..., h_H, k]`` with 1..4 hidden layers and widths 1..16, k >= 2."""
    return st.tuples(st.integers(1, max_width),
                     st.lists(st.integers(1, max_width), min_size=min_hidden, max_size=max_hidden),
                     st.integers(2, max_width)).map(lambda t: [t[0], *t[1], t[2]])


@dataclass
class MLPCase:
    """A float64 MLP with a batch ``X`` and labels ``y`` whose pre-activations avoid ReLU's kink."""

    model: MLP
    X: np.ndarray
    y: np.ndarray


def _far_from_kink(model: MLP, X: np.ndarray, margin: float) -> bool:
    activation = X
    for layer in model.layers[:-1]:
        Z = activation @ layer.W.data + layer.b.data
        if np.any(np.abs(Z) < margin):
            return False
        activation = activate(Z, model.activation)
    return True


@st.composite
def mlp_cases(draw: st.DrawFn, max_batch: int = 8, margin: float = 1e-3, masked: bool = False,
              activations: tuple[str, ...] = ("relu",)) -> MLPCase:
    """An ``MLPCase``: generated sizes, seed, batch of 1..max_batch rows and labels.

    Biases are drawn nonzero so that ReLU units are not all on the same side; examples with a
    pre-activation within ``margin`` of 0 are rejected (``assume``-style filtering). With
    ``masked=True`` every parameter gets a random ``mask`` (keeping each entry with a drawn
    probability 0.2, 0.5 or 0.9) and its masked entries are set to exactly 0, as pruning leaves
    them; a hidden unit whose incoming weights are all masked keeps its bias (else its
    pre-activation would sit exactly on the kink). The activation is drawn from ``activations``.
    """
    sizes = draw(mlp_sizes())
    seed = draw(seeds)
    generator = np.random.default_rng(seed)
    model = MLP(sizes, activation=draw(st.sampled_from(activations)), seed=generator, dtype=np.float64)
    for layer in model.layers:
        layer.b.data[...] = generator.uniform(-0.5, 0.5, size=layer.b.shape)
    if masked:
        keep = draw(st.sampled_from([0.2, 0.5, 0.9]))
        for index, layer in enumerate(model.layers):
            layer.W.mask = generator.random(layer.W.shape) < keep
            bias_mask = generator.random(layer.b.shape) < keep
            if index < len(model.layers) - 1:
                bias_mask |= ~layer.W.mask.any(axis=0)
            layer.b.mask = bias_mask
            for parameter in (layer.W, layer.b):
                parameter.data[~parameter.mask] = 0.0
    n = draw(st.integers(1, max_batch))
    X = generator.normal(size=(n, sizes[0]))
    y = generator.integers(0, sizes[-1], size=n)
    assume(_far_from_kink(model, X, margin))
    return MLPCase(model, X, y)


def small_problem(sizes: tuple[int, ...] = (3, 4, 2), seed: int = 0,
                  n: int = 7) -> tuple[MLP, np.ndarray, np.ndarray]:
    """A small float64 MLP with random biases, and ``n`` rows of normal inputs with random labels, for
    checking a criterion or a gradient against a hand computation. Shapes: X (n, sizes[0]), y (n,).

    >>> model, X, y = small_problem()
    >>> model.sizes, X.shape, y.shape
    ([3, 4, 2], (7, 3), (7,))
    """
    generator = np.random.default_rng(seed)
    model = MLP(list(sizes), seed=generator, dtype=np.float64)
    for layer in model.layers:
        layer.b.data[...] = generator.uniform(-0.5, 0.5, size=layer.b.shape)
    X = generator.normal(size=(n, sizes[0]))
    y = generator.integers(0, sizes[-1], size=n)
    return model, X, y
