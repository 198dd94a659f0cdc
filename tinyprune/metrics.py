"""What a model gets right and what it costs: accuracy, confusion matrix, and counts per layer.

For a ``Linear`` layer with ``W`` (d_in, d_out) and ``b`` (d_out,)
(``notebooks/09_structured_pruning_and_speed.ipynb``):

- parameters ``P = d_in · d_out + d_out``; nonzeros ``N = nnz(W) + nnz(b)``; sparsity ``1 - N / P``;
- FLOPs of a forward pass for one sample: dense ``2 · d_in · d_out + d_out`` (a multiply and an add per
  weight, an add per bias; the ReLU's comparisons are not counted); effective ``2 · nnz(W) + a``, where
  ``a`` is the number of *alive* output neurons, whose bias is added (a neuron is *dead* when its
  column of ``W`` and its bias are all zero: it always outputs 0 and costs nothing);
- bytes stored: dense ``s · P`` with ``s`` the bytes per value (4 for float32); sparse with a bitmask
  ``s · N + ceil(size/8)`` per tensor (values, plus one bit per position); sparse with indices
  ``(s + 4) · N`` (values, plus one int32 flat index per nonzero: a coordinate list).

The model's compression ratio is ``P_total / N_total`` and its theoretical speed-up
``FLOPs_dense / FLOPs_effective``: the two figures pruning papers are asked to report.

>>> from tinyprune.core.nn import MLP
>>> model = MLP([784, 64, 64, 10], seed=0)
>>> count_parameters(model), flops(model)
(55050, 109962)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinyprune.core.nn import Linear, Module

INDEX_BYTES = 4    # one int32 flat index per nonzero in the "indices" sparse format
STORAGE_FORMATS = ("dense", "bitmask", "indices")

__all__ = [
    "STORAGE_FORMATS", "LayerStats", "Summary", "accuracy", "alive_neurons", "confusion_matrix",
    "count_nonzeros", "count_parameters", "flops", "layer_stats", "sparsity", "storage_bytes", "summary",
]


# --------------------------------------------------------------------------- accuracy
def accuracy(logits_or_labels: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows predicted right: ``(1/n) Σ_i [ŷ_i = y_i]``.

    ``logits_or_labels`` is either logits (n, k), whose row-wise argmax is the prediction, or predicted
    integer labels (n,). Shapes: (n, k) or (n,), and y (n,) -> float in [0, 1].

    >>> accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0]))
    0.5
    >>> accuracy(np.array([1, 1, 0]), np.array([1, 0, 0]))
    0.6666666666666666
    """
    predictions = np.asarray(logits_or_labels)
    y = np.asarray(y)
    if predictions.ndim == 2:
        predictions = predictions.argmax(axis=1)
    elif predictions.ndim != 1 or not np.issubdtype(predictions.dtype, np.integer):
        raise ValueError(f"accuracy needs logits (n, k) or integer labels (n,), got dtype "
                         f"{predictions.dtype} and shape {predictions.shape}")
    if y.shape != predictions.shape:
        raise ValueError(f"accuracy needs one label per prediction: {predictions.shape[0]} predictions, "
                         f"y of shape {y.shape}")
    if y.size == 0:
        raise ValueError("accuracy of zero rows is undefined")
    return float(np.count_nonzero(predictions == y) / y.size)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` = rows of true class i predicted as j (rows: truth, columns: prediction).

    The diagonal holds the correct predictions, so ``trace(C) / n`` is the accuracy.
    Shapes: y_true (n,), y_pred (n,) integer labels in 0..k-1 -> (k, k) int64;
    ``k`` defaults to ``max(labels) + 1``.

    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]))
    array([[1, 0],
           [1, 1]])
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{name} must be a 1-D array of integer labels, got dtype {labels.dtype} "
                             f"and shape {labels.shape}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape[0]} vs {y_pred.shape[0]}")
    if k is None:
        k = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"{name} must lie in 0..{k - 1}, got values from {labels.min()} "
                             f"to {labels.max()}")
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k).astype(np.int64)


# --------------------------------------------------------------------------- per layer
@dataclass(frozen=True)
class LayerStats:
    """The counts of one ``Linear`` layer (or, for ``Summary.total``, of all of them summed).

    ``shape`` is ``(d_in, d_out)`` (``None`` for the total); ``neurons`` = d_out, ``alive`` = output
    neurons not dead; FLOPs are for one sample; bytes as described in the module docstring.
    ``nonzeros`` counts values that are not exactly 0 (what storage and compute depend on; a bias that
    is still at its initial 0 counts as zero); ``pruned`` counts entries whose mask is ``False``.
    """

    name: str
    shape: tuple[int, int] | None
    params: int
    nonzeros: int
    weight_nonzeros: int
    bias_nonzeros: int
    flops_dense: int
    flops_effective: int
    bytes_dense: int
    bytes_bitmask: int
    bytes_indices: int
    neurons: int
    alive: int
    pruned: int = 0

    @property
    def sparsity(self) -> float:
        """``1 - nonzeros / params``: the fraction of entries that are zero."""
        return 1.0 - self.nonzeros / self.params if self.params else 0.0

    @property
    def dead(self) -> int:
        """Output neurons whose weights in and bias are all zero."""
        return self.neurons - self.alive

    def to_dict(self) -> dict[str, Any]:
        """The fields and the sparsity as plain JSON-able values."""
        record = asdict(self)
        record["shape"] = list(self.shape) if self.shape is not None else None
        record["sparsity"] = self.sparsity
        return record


def _linear_layers(model: Module) -> list[tuple[str, Linear]]:
    """``[(name, Linear)]`` of an MLP or Sequential (``layers.i``), or of a single Linear."""
    if isinstance(model, Linear):
        return [("linear", model)]
    layers = [(f"layers.{i}", m) for i, m in enumerate(getattr(model, "layers", [])) if isinstance(m, Linear)]
    if not layers:
        raise ValueError(f"metrics count Linear layers; {type(model).__name__} has none "
                         "(expected an MLP, a Sequential of Linear layers, or a Linear)")
    return layers


def _stats(name: str, layer: Linear) -> LayerStats:
    W, b = layer.W.data, layer.b.data
    d_in, d_out = W.shape
    itemsize = W.dtype.itemsize
    weight_nonzeros, bias_nonzeros = int(np.count_nonzero(W)), int(np.count_nonzero(b))
    nonzeros = weight_nonzeros + bias_nonzeros
    alive = int(np.count_nonzero(np.any(W != 0, axis=0) | (b != 0)))
    return LayerStats(
        name=name, shape=(d_in, d_out), params=W.size + b.size, nonzeros=nonzeros,
        weight_nonzeros=weight_nonzeros, bias_nonzeros=bias_nonzeros,
        flops_dense=2 * d_in * d_out + d_out, flops_effective=2 * weight_nonzeros + alive,
        bytes_dense=itemsize * (W.size + b.size),
        bytes_bitmask=itemsize * nonzeros + math.ceil(W.size / 8) + math.ceil(b.size / 8),
        bytes_indices=(itemsize + INDEX_BYTES) * nonzeros,
        neurons=d_out, alive=alive, pruned=sum(int(np.count_nonzero(~p.mask)) for p in (layer.W, layer.b)
                                               if p.mask is not None))


def layer_stats(model: Module) -> list[LayerStats]:
    """One ``LayerStats`` per ``Linear`` layer, input to output.

    >>> from tinyprune.core.nn import MLP
    >>> [s.params for s in layer_stats(MLP([784, 64, 64, 10]))]
    [50240, 4160, 650]
    """
    return [_stats(name, layer) for name, layer in _linear_layers(model)]


def _total(rows: list[LayerStats]) -> LayerStats:
    summed = {key: sum(getattr(row, key) for row in rows) for key in (
        "params", "nonzeros", "weight_nonzeros", "bias_nonzeros", "flops_dense", "flops_effective",
        "bytes_dense", "bytes_bitmask", "bytes_indices", "neurons", "alive", "pruned")}
    return LayerStats(name="total", shape=None, **summed)


def count_parameters(model: Module) -> int:
    """Number of weights and biases of every Linear layer: ``Σ_l d_in·d_out + d_out``."""
    return _total(layer_stats(model)).params


def count_nonzeros(model: Module) -> int:
    """Number of weights and biases that are not exactly zero."""
    return _total(layer_stats(model)).nonzeros


def sparsity(model: Module) -> float:
    """Fraction of all weights and biases that are zero: ``1 - nonzeros / parameters``.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([2, 2], seed=0)
    >>> model.layers[0].W.data[0] = 0          # 2 of 6 entries zero (the biases start at 0 too)
    >>> round(sparsity(model), 4)
    0.6667
    """
    return _total(layer_stats(model)).sparsity


def flops(model: Module, effective: bool = False) -> int:
    """FLOPs of a forward pass for one sample: dense ``Σ 2·d_in·d_out + d_out``, or effective
    ``Σ 2·nnz(W) + alive neurons`` (``effective=True``). See the module docstring."""
    total = _total(layer_stats(model))
    return total.flops_effective if effective else total.flops_dense


def storage_bytes(model: Module, format: str = "dense") -> int:  # noqa: A002 (the natural name)
    """Bytes to store every weight and bias: ``"dense"``, ``"bitmask"`` (values + 1 bit per position) or
    ``"indices"`` (values + an int32 flat index per nonzero).

    >>> from tinyprune.core.nn import MLP
    >>> storage_bytes(MLP([784, 64, 64, 10]))        # 55,050 float32 values
    220200
    """
    if format not in STORAGE_FORMATS:
        raise ValueError(f"unknown storage format {format!r}; expected one of {STORAGE_FORMATS}")
    return getattr(_total(layer_stats(model)), f"bytes_{format}")


def alive_neurons(model: Module) -> list[int]:
    """Alive output neurons of each Linear layer (not dead: some nonzero weight in, or a nonzero bias).

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([3, 4, 2], seed=0)
    >>> model.layers[0].W.data[:, 1] = 0              # neuron 1 of the hidden layer: no input, bias 0
    >>> alive_neurons(model)
    [3, 2]
    """
    return [row.alive for row in layer_stats(model)]


# --------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class Summary:
    """A table of ``LayerStats``: ``.rows`` (one per layer), ``.total``; ``str()`` prints it aligned.

    ``compression_ratio = params / nonzeros`` and ``speedup = FLOPs dense / FLOPs effective`` of the
    whole model (``inf`` when nothing is left).
    """

    rows: list[LayerStats]
    total: LayerStats

    @property
    def compression_ratio(self) -> float:
        return self.total.params / self.total.nonzeros if self.total.nonzeros else math.inf

    @property
    def speedup(self) -> float:
        return (self.total.flops_dense / self.total.flops_effective
                if self.total.flops_effective else math.inf)

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-able values (an infinite ratio becomes ``None``)."""
        def finite(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {
            "layers": [row.to_dict() for row in self.rows],
            "total": self.total.to_dict(),
            "compression_ratio": finite(self.compression_ratio),
            "speedup": finite(self.speedup),
            "notes": {
                "flops": "one sample's forward pass; dense 2*d_in*d_out + d_out per layer; effective "
                         "2 per nonzero weight + 1 per alive neuron's bias; ReLU not counted",
                "bytes_bitmask": "values + 1 bit per position (per tensor, rounded up to bytes)",
                "bytes_indices": "values + one int32 flat index per nonzero (coordinate list)",
            },
        }

    def __str__(self) -> str:
        header = ("layer", "shape", "params", "nonzeros", "sparsity W+b", "FLOPs dense", "FLOPs eff.",
                  "alive")
        lines = [header]
        for row in [*self.rows, self.total]:
            shape = f"{row.shape[0]} x {row.shape[1]}" if row.shape else ""
            lines.append((row.name, shape, f"{row.params:,}", f"{row.nonzeros:,}", f"{row.sparsity:.2%}",
                          f"{row.flops_dense:,}", f"{row.flops_effective:,}", f"{row.alive}/{row.neurons}"))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in
                          enumerate(zip(line, widths))).rstrip() for line in lines]
        text.insert(1, "-" * len(text[0]))
        text.insert(len(text) - 1, "-" * len(text[0]))
        t = self.total
        text.append(f"compression {self.compression_ratio:.2f}x ({t.params:,} parameters, weights and "
                    f"biases, -> {t.nonzeros:,} nonzeros); theoretical speed-up {self.speedup:.2f}x "
                    f"({t.flops_dense:,} -> "
                    f"{t.flops_effective:,} FLOPs per sample)")
        text.append(f"storage: dense {t.bytes_dense:,} B; sparse values+bitmask {t.bytes_bitmask:,} B; "
                    f"sparse values+int32 indices {t.bytes_indices:,} B")
        return "\n".join(text)

    def __repr__(self) -> str:
        return (f"Summary({len(self.rows)} layers, params={self.total.params}, "
                f"nonzeros={self.total.nonzeros}, compression={self.compression_ratio:.2f}x, "
                f"speedup={self.speedup:.2f}x)")


def summary(model: Module) -> Summary:
    """Per-layer and total parameters, nonzeros, sparsity, FLOPs, bytes and alive neurons.

    >>> from tinyprune.core.nn import MLP
    >>> model = MLP([4, 3, 2], seed=0)
    >>> model.layers[0].W.data[:2] = 0                    # prune the first two inputs' weights
    >>> s = summary(model)
    >>> s.total.params, s.total.nonzeros, round(s.compression_ratio, 3)
    (23, 12, 1.917)
    >>> print(s)                                          # doctest: +NORMALIZE_WHITESPACE
    layer     shape  params  nonzeros  sparsity W+b  FLOPs dense  FLOPs eff.  alive
    -------------------------------------------------------------------------------
    layers.0  4 x 3      15         6        60.00%           27          15    3/3
    layers.1  3 x 2       8         6        25.00%           14          14    2/2
    -------------------------------------------------------------------------------
    total                23        12        47.83%           41          29    5/5
    compression 1.92x (23 parameters, weights and biases, -> 12 nonzeros); theoretical speed-up 1.41x
    (41 -> 29 FLOPs per sample)
    storage: dense 92 B; sparse values+bitmask 53 B; sparse values+int32 indices 96 B
    """
    rows = layer_stats(model)
    return Summary(rows=rows, total=_total(rows))
