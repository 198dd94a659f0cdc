"""The training loop: ``fit``, ``evaluate``, ``predict`` and the ``History`` of a run.

One step of minibatch gradient descent (``notebooks/04_training.ipynb``):

1. take a batch ``(X_b, y_b)`` of the shuffled training set;
2. forward: ``logits = model(X_b)``, loss ``L = loss(logits, y_b)`` (mean over the batch);
3. backward: ``g = dL/dθ`` for every parameter, by the hand-derived chain rule
   (``engine="backprop"``, ``core.backprop``) or by the autograd graph (``engine="autograd"``);
4. update: ``θ <- optimizer(θ, g)`` (Adam with ``lr = 1e-3`` by default); masked weights stay 0.

An epoch is one pass over the training set; its order is a permutation drawn from a generator seeded
with ``(seed, epoch)``, so epoch ``e`` is shuffled the same way whether training runs in one call or is
resumed later (``epochs=range(4, 7)`` runs epochs 4, 5 and 6).

This is the plain loop. ``tinyprune.fit`` runs the same loop with the engines of ``tinyprune.fast``
(the same numbers, faster), a progress display and ``initial_epoch``; inside ``plain()`` it runs this one.

>>> from tinyprune.core.nn import MLP
>>> from tinyprune.core.batches import Dataset
>>> X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
>>> train = Dataset(X, (X[:, 0] > 0).astype(np.int64))
>>> model = MLP([4, 8, 2], seed=0)
>>> from tinyprune.core.optim import Adam
>>> history = fit(model, train, epochs=10, batch_size=16, optimizer=Adam(model.parameters(), lr=0.05))
>>> history.epochs[-1], history.last["accuracy"] > 0.95
(10, True)
>>> evaluate(model, train)["accuracy"] > 0.95
True
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyprune.core import backprop, losses
from tinyprune.core.autograd import Tensor
from tinyprune.core.batches import Dataset
from tinyprune.core.nn import MLP, Module
from tinyprune.core.optim import Adam, Optimizer

DataLike = Dataset | tuple[np.ndarray, np.ndarray]
Batch = tuple[np.ndarray, np.ndarray, np.ndarray | None]

_plain = False


@contextlib.contextmanager
def plain() -> Iterator[None]:
    """Within this block ``tinyprune.fit`` and the optimizers of ``tinyprune.fast`` run this core's code.

    The fast paths give the same numbers (bit for bit, or within the tolerance ``tests/test_fast_paths.py``
    states); this switch is for reading, stepping through and checking the textbook code.
    """
    global _plain
    previous, _plain = _plain, True
    try:
        yield
    finally:
        _plain = previous


def is_plain() -> bool:
    """True inside a ``plain()`` block."""
    return _plain


@dataclass
class History:
    """What ``fit`` measured, one entry per epoch (``epoch`` numbers are 1-based and global).

    ``loss`` and ``accuracy`` are the running means over the epoch's training batches (the model
    changes during the epoch, as in Keras); ``val_loss``/``val_accuracy`` are measured on ``val`` at the
    end of the epoch (``None`` without ``val``); ``seconds`` is the time of the epoch's training steps.

    >>> h = History()
    >>> h.append(epoch=1, loss=0.5, accuracy=0.9, val_loss=None, val_accuracy=None, seconds=0.1)
    >>> h.last["accuracy"], len(h), h.to_dict()["loss"]
    (0.9, 1, [0.5])
    """

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")

    def append(self, **record: Any) -> None:
        """Add one epoch's record (every key of ``KEYS``)."""
        for key in self.KEYS:
            getattr(self, key).append(record[key])

    @property
    def epochs(self) -> list[int]:
        """The epoch numbers recorded, e.g. ``[1, 2, 3]`` (``[3, 4]`` after resuming at epoch 2)."""
        return list(self.epoch)

    def __len__(self) -> int:
        return len(self.epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One epoch's record as a dict: ``history[-1]["val_accuracy"]``."""
        return {key: getattr(self, key)[index] for key in self.KEYS}

    @property
    def last(self) -> dict[str, Any]:
        """The last epoch's record (``{}`` if nothing was recorded)."""
        return self[-1] if self.epoch else {}

    def to_dict(self) -> dict[str, list]:
        """``{key: [value per epoch]}``: plain lists of numbers (or ``None``), JSON-able."""
        return {key: list(getattr(self, key)) for key in self.KEYS}

    def __add__(self, other: History) -> History:
        """The two histories one after the other (e.g. before and after resuming)."""
        joined = History()
        for key in self.KEYS:
            setattr(joined, key, getattr(self, key) + getattr(other, key))
        return joined


# --------------------------------------------------------------------------- checks
def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int if it is one (not a bool) and ``>= minimum``, else a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_dataset(data: Any, what: str) -> Dataset:
    """A ``Dataset`` as it is; an ``(X, y)`` pair becomes one (validated, not copied)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return Dataset(*data)
    if hasattr(data, "X") and hasattr(data, "y") and hasattr(data, "minibatches"):
        return data  # a Dataset-like object (duck typing)
    raise ValueError(f"{what} must be a tinyprune.data.Dataset or an (X, y) pair, got {type(data).__name__}")


def check_fits_model(model: Module, data: Dataset, what: str) -> None:
    """The dataset's width must be the model's input size, and its labels must be model outputs."""
    sizes = getattr(model, "sizes", None)
    if sizes is None:
        return
    if data.X.ndim != 2 or data.X.shape[1] != sizes[0]:
        raise ValueError(f"{what} has {data.X.shape[1:]} features per row but the model expects "
                         f"{sizes[0]} (its sizes are {sizes})")
    if len(data.y) and int(np.max(data.y)) >= sizes[-1]:
        raise ValueError(f"{what} has labels up to {int(np.max(data.y))} but the model has only "
                         f"{sizes[-1]} outputs (classes 0..{sizes[-1] - 1})")


def _base_seed(seed: Any) -> int:
    """An int seed as it is; a Generator gives one draw; None gives fresh OS entropy."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63))
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, a numpy Generator or None, got {seed!r}")
    return int(seed)


def _epoch_numbers(epochs: int | range) -> range:
    """``epochs`` as the range of 1-based epoch numbers to run: ``3 -> 1, 2, 3``; a range as it is."""
    if isinstance(epochs, range):
        if len(epochs) == 0 or epochs.start < 1 or epochs.step != 1:
            raise ValueError(f"epochs as a range must count up by 1 from an epoch >= 1, got {epochs}")
        return epochs
    return range(1, positive_int("epochs", epochs) + 1)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator that shuffles epoch ``epoch`` (1-based): ``default_rng(SeedSequence([seed, epoch]))``.

    Each epoch's order depends only on ``(seed, epoch)``, never on how many epochs ran before in
    this process: that is what makes resuming from a checkpoint exact.

    >>> a = epoch_rng(0, 3).permutation(5); b = epoch_rng(0, 3).permutation(5)
    >>> bool((a == b).all())
    True
    """
    return np.random.default_rng(np.random.SeedSequence([seed, epoch]))


# --------------------------------------------------------------------------- the engines
class Backprop:
    """How ``fit`` computes one epoch: its shuffled batches, and ``dL/dθ`` by the hand-derived chain rule.

    ``tinyprune.fast`` subclasses it with the same numbers computed faster (MiniTorch keeps its
    ``SimpleOps`` and ``FastOps`` behind one interface the same way).
    """

    name = "backprop"

    def batches(self, data: Dataset, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """``(X_b, y_b, rows)`` in the order of ``data.minibatches(batch_size, shuffle=True, rng=rng)``;
        ``rows`` are the batch's row numbers (``None`` for a Dataset-like object that batches itself)."""
        if type(data).minibatches is not Dataset.minibatches:
            for Xb, yb in data.minibatches(batch_size, shuffle=True, rng=rng):
                yield Xb, yb, None
            return
        order = rng.permutation(len(data))
        for start in range(0, len(data), batch_size):
            rows = order[start:start + batch_size]
            yield data.X[rows], data.y[rows], rows

    def step(self, model: Module, batch: Batch, loss: losses.Loss) -> tuple[float, np.ndarray]:
        """Set every ``parameter.grad`` to ``dL/dθ`` of the batch; return the loss and the logits."""
        Xb, yb, rows = batch
        cache = backprop.forward(model, Xb, check=False)     # the Dataset checked X once, when it was built
        value, dlogits = self.loss_and_grad(loss, cache.logits, yb, rows)
        hidden_value, dhidden = loss.hidden_value_and_grads(cache.inputs[1:], rows)  # (0, None): logits only
        grads = backprop.backward(model, cache, dlogits, dhidden)
        for name, parameter in model.named_parameters():
            parameter.grad = grads[name]
        return value + hidden_value, cache.logits

    def loss_and_grad(self, loss: losses.Loss, logits: np.ndarray, y: np.ndarray,
                      rows: np.ndarray | None) -> tuple[float, np.ndarray]:
        """``L`` and ``dL/dz`` at the logits (the loss part's own closed form)."""
        return loss.value_and_grad(logits, y, rows)


class Autograd(Backprop):
    """``dL/dθ`` by the autograd graph: build ``loss(model(X_b), y_b)`` from Tensors, call ``backward()``."""

    name = "autograd"

    def step(self, model: Module, batch: Batch, loss: losses.Loss) -> tuple[float, np.ndarray]:
        Xb, yb, rows = batch
        for parameter in model.parameters():
            parameter.grad = None          # leaves accumulate: start each step from nothing
        logits = model(Tensor(Xb))
        value = loss.tensor(logits, yb, rows)
        self.backward(value)
        return float(value.data), logits.data

    def backward(self, value: Tensor) -> None:
        """``dL/dθ`` into every parameter's ``.grad``."""
        value.backward()


ENGINES: dict[str, Backprop] = {"backprop": Backprop(), "autograd": Autograd()}


def as_engine(engine: str | Backprop, engines: dict[str, Backprop] = ENGINES) -> Backprop:
    """An engine object from its name in ``engines``, or an engine object as it is."""
    if isinstance(engine, Backprop):
        return engine
    if engine not in engines:
        raise ValueError(f"unknown engine {engine!r}; expected one of {tuple(engines)}")
    return engines[engine]


def _hooks(callbacks: Sequence[Any], name: str) -> list[Callable[..., Any]]:
    return [getattr(cb, name) for cb in callbacks if callable(getattr(cb, name, None))]


# --------------------------------------------------------------------------- fit
def fit(model: Module, train: DataLike, *, epochs: int | range, batch_size: int = 128,
        optimizer: Optimizer | None = None, loss: str | losses.Loss = "cross_entropy",
        val: DataLike | None = None, engine: str | Backprop = "backprop",
        seed: int | np.random.Generator | None = 0, callbacks: Sequence[Any] = ()) -> History:
    """Train ``model`` on ``train`` with minibatch steps; return the ``History``.

    Each step: ``g = dL/dθ`` on a batch (``engine``: ``"backprop"`` by hand, ``"autograd"`` by the graph;
    same trajectory), then ``optimizer.step()`` (default ``Adam(model.parameters(), lr=1e-3)``).

    - ``epochs``: how many (epochs 1..epochs) or which (a range of epoch numbers, to resume).
    - ``loss``: ``"cross_entropy"``, ``"squared_error"`` or a ``losses.Loss`` part (``recover.Distillation``).
    - ``val``: a Dataset (or ``(X, y)``) evaluated once per epoch, after its steps.
    - ``seed``: epoch ``e`` is shuffled by ``epoch_rng(seed, e)``; the same seed gives bit-identical weights.
    - ``callbacks``: objects with any of ``on_train_begin(model, optimizer)``, ``on_epoch_begin(model,
      optimizer, epoch)``, ``on_step_end(model, optimizer, epoch, step)`` (``step`` counts from the first
      epoch ever), ``on_batch_end(epoch, batch, logs)`` (running loss and accuracy), ``on_epoch_end(model,
      optimizer, epoch, logs)``, ``on_train_end(model, optimizer)`` (``tinyprune.training.Callback``).

    Shapes: ``train.X`` (n, d) with d = ``model.sizes[0]``, ``train.y`` (n,) integer labels.
    """
    epoch_numbers, batch_size = _epoch_numbers(epochs), positive_int("batch_size", batch_size)
    engine, loss = as_engine(engine), losses.as_loss(loss)
    if engine.name == "backprop" and not isinstance(model, MLP):
        raise ValueError(f"engine='backprop' trains an MLP, got {type(model).__name__}; "
                         "use engine='autograd'")
    train = as_dataset(train, "train")
    check_fits_model(model, train, "train")
    if val is not None:
        val = as_dataset(val, "val")
        check_fits_model(model, val, "val")
    if optimizer is None:
        optimizer = Adam(model.parameters(), lr=1e-3)
    elif not {id(p) for p in optimizer.params} <= {id(p) for p in model.parameters()}:
        raise ValueError("the optimizer holds parameters that are not this model's (was it built on "
                         "another model, e.g. before copy.deepcopy?); build it on model.parameters()")
    loss.bind(train.X)
    loop = _Loop(model, optimizer, loss, engine, callbacks)
    loop.step = (epoch_numbers.start - 1) * math.ceil(len(train) / batch_size)
    base_seed, history = _base_seed(seed), History()
    loop.call("on_train_begin", model, optimizer)
    for epoch in epoch_numbers:
        record = loop.epoch(epoch, engine.batches(train, batch_size, epoch_rng(base_seed, epoch)))
        scores = evaluate(model, val, loss=loss.evaluate_as) if val is not None else {}
        record.update(val_loss=scores.get("loss"), val_accuracy=scores.get("accuracy"))
        history.append(**record)
        loop.call("on_epoch_end", model, optimizer, epoch, dict(record))
    loop.call("on_train_end", model, optimizer)
    return history


class _Loop:
    """The inner loop of ``fit``: one epoch of steps, and the callbacks it calls."""

    def __init__(self, model: Module, optimizer: Optimizer, loss: losses.Loss, engine: Backprop,
                 callbacks: Sequence[Any]) -> None:
        self.model, self.optimizer, self.loss, self.engine = model, optimizer, loss, engine
        self.callbacks, self.step = list(callbacks), 0
        self.on_step_end = _hooks(callbacks, "on_step_end")
        self.on_batch_end = _hooks(callbacks, "on_batch_end")

    def call(self, name: str, *arguments: Any) -> None:
        for hook in _hooks(self.callbacks, name):
            hook(*arguments)

    def epoch(self, epoch: int, batches: Iterator[Batch]) -> dict[str, Any]:
        """Run the steps of one epoch; return its record (running loss and accuracy, seconds)."""
        self.call("on_epoch_begin", self.model, self.optimizer, epoch)
        total_loss, correct, seen = 0.0, 0, 0
        started = time.perf_counter()
        for done, batch in enumerate(batches, 1):
            value, logits = self.engine.step(self.model, batch, self.loss)      # g = dL/dθ
            self.optimizer.step()                                                # θ <- θ - step(g)
            self.step += 1
            total_loss += value * batch[1].shape[0]
            correct += int(np.count_nonzero(logits.argmax(axis=1) == batch[1]))
            seen += batch[1].shape[0]
            for hook in self.on_step_end:
                hook(self.model, self.optimizer, epoch, self.step)
            for hook in self.on_batch_end:
                hook(epoch, done, {"loss": total_loss / seen, "accuracy": correct / seen})
        return {"epoch": epoch, "loss": total_loss / seen, "accuracy": correct / seen,
                "seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------- evaluate / predict
def _loss_value(name: str, logits: np.ndarray, y: np.ndarray) -> float:
    """Mean loss of a batch, without the gradient (``losses.loss_and_grad`` without its second half)."""
    if name == "cross_entropy":
        return losses.cross_entropy(logits, y)
    target = losses.one_hot(y, logits.shape[1], dtype=logits.dtype)
    return losses.squared_error(losses.softmax(logits), target, reduction="mean")


def evaluate(model: Module, dataset: DataLike, loss: str = "cross_entropy",
             batch_size: int = 1000) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``dataset``: ``{"loss": L, "accuracy": a}``.

    ``L = (1/n) Σ_i loss(z_i, y_i)`` and ``a = (1/n) Σ_i [argmax_j z_ij = y_i]`` over all n rows, computed
    ``batch_size`` rows at a time without building a graph. Shapes: ``dataset.X`` (n, d), ``dataset.y`` (n,).

    >>> from tinyprune.core.nn import MLP
    >>> scores = evaluate(MLP([3, 2], seed=0), (np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])))
    >>> sorted(scores), scores["accuracy"]
    (['accuracy', 'loss'], 0.5)
    """
    losses.check_loss_name(loss)
    batch_size = positive_int("batch_size", batch_size)
    dataset = as_dataset(dataset, "dataset")
    check_fits_model(model, dataset, "dataset")
    total_loss, correct = 0.0, 0
    for Xb, yb in dataset.minibatches(batch_size, shuffle=False):
        logits = model(Xb)
        total_loss += _loss_value(loss, logits, yb) * yb.shape[0]
        correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
    n = len(dataset)
    return {"loss": total_loss / n, "accuracy": correct / n}


def predict(model: Module, X: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The predicted class of every row: ``argmax_j z_ij`` of the logits. Shapes: X (n, d) -> (n,) int64.

    >>> from tinyprune.core.nn import MLP
    >>> predict(MLP([3, 4], seed=0), np.zeros((2, 3), np.float32))
    array([0, 0])
    """
    batch_size = positive_int("batch_size", batch_size)
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"predict needs X of shape (n, d), got {X.shape}")
    sizes = getattr(model, "sizes", None)
    if sizes is not None and X.shape[1] != sizes[0]:
        raise ValueError(f"X has {X.shape[1]} features per row but the model expects {sizes[0]}")
    labels = np.empty(X.shape[0], dtype=np.int64)
    for start in range(0, X.shape[0], batch_size):
        labels[start:start + batch_size] = model(X[start:start + batch_size]).argmax(axis=1)
    return labels
