"""The training loop: ``fit``, ``evaluate``, ``predict``.

One step of minibatch gradient descent (``notebooks/04_training.ipynb``):

1. take a batch ``(X_b, y_b)`` of the shuffled training set;
2. forward: ``logits = model(X_b)``, loss ``L = loss(logits, y_b)`` (mean over the batch);
3. backward: ``g = dL/dθ`` for every parameter, by the hand-derived chain rule
   (``engine="backprop"``, ``core.backprop``) or by the autograd graph (``engine="autograd"``);
4. update: ``θ <- optimizer(θ, g)`` (Adam with ``lr = 1e-3`` by default); masked weights stay 0.

An epoch is one pass over the training set in an order drawn from ``(seed, epoch)``, the same whether
training runs in one call or resumes (``epochs=range(4, 7)``). ``tinyprune.fit`` runs this loop with the
engines of ``tinyprune.fast`` (the same numbers, faster).

>>> from tinyprune.core.nn import MLP
>>> from tinyprune.core.optim import Adam
>>> X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
>>> train, model = Dataset(X, (X[:, 0] > 0).astype(np.int64)), MLP([4, 8, 2], seed=0)
>>> history = fit(model, train, epochs=10, batch_size=16, optimizer=Adam(model.parameters(), lr=0.05))
>>> history[-1]["epoch"], history[-1]["accuracy"] > 0.95
(10, True)
>>> evaluate(model, train)["accuracy"] > 0.95
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tinyprune.core import backprop, losses
from tinyprune.core.autograd import Tensor
from tinyprune.core.batches import Dataset
from tinyprune.core.nn import MLP, Module
from tinyprune.core.optim import Adam, Optimizer

DataLike = Dataset | tuple[np.ndarray, np.ndarray]
Batch = tuple[np.ndarray, np.ndarray, np.ndarray | None]


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
    return int(np.random.SeedSequence().entropy) if seed is None else positive_int("seed", seed, minimum=0)


def _epoch_numbers(epochs: int | range) -> range:
    """``epochs`` as the range of 1-based epoch numbers to run: ``3 -> 1, 2, 3``; a range as it is."""
    if isinstance(epochs, range):
        if len(epochs) == 0 or epochs.start < 1 or epochs.step != 1:
            raise ValueError(f"epochs as a range must count up by 1 from an epoch >= 1, got {epochs}")
        return epochs
    return range(1, positive_int("epochs", epochs) + 1)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator that shuffles epoch ``epoch`` (1-based): ``default_rng(SeedSequence([seed, epoch]))``.
    The order depends only on ``(seed, epoch)``, not on the epochs run before: resuming is exact."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch]))


class Backprop:
    """An engine of ``fit``: the shuffled batches, and ``dL/dθ`` by the hand-derived chain rule.
    ``tinyprune.fast`` subclasses it: the same numbers, faster (as MiniTorch's ``SimpleOps``/``FastOps``)."""

    name = "backprop"

    def batches(self, data: Dataset, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """``(X_b, y_b, rows)`` as ``data.minibatches(batch_size, shuffle=True, rng=rng)`` gives them, with
        the batch's row numbers (``None`` for a Dataset-like object that batches itself)."""
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
        for index, layer in enumerate(model.layers):                # the names backprop gives them
            layer.W.grad, layer.b.grad = grads[f"layers.{index}.W"], grads[f"layers.{index}.b"]
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


def _call(callbacks: Sequence[Any], name: str, *arguments: Any) -> None:
    """Call the method ``name`` of every callback that has one."""
    for callback in callbacks:
        if callable(getattr(callback, name, None)):
            getattr(callback, name)(*arguments)


def _checked(model: Module, train: DataLike, val: DataLike | None, optimizer: Optimizer | None,
             engine: Backprop) -> tuple[Dataset, Dataset | None, Optimizer]:
    """``fit``'s inputs checked against the model: the datasets, and the optimizer (a new Adam if None)."""
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
    return train, val, optimizer


def fit(model: Module, train: DataLike, *, epochs: int | range, batch_size: int = 128,
        optimizer: Optimizer | None = None, loss: str | losses.Loss = "cross_entropy",
        val: DataLike | None = None, engine: str | Backprop = "backprop",
        seed: int | np.random.Generator | None = 0, callbacks: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Train ``model`` on ``train`` with minibatch steps; return one record (a dict) per epoch.

    Each step: ``g = dL/dθ`` on a batch (``engine``: ``"backprop"`` by hand, ``"autograd"`` by the graph;
    same trajectory), then ``optimizer.step()`` (default ``Adam(model.parameters(), lr=1e-3)``).

    - ``epochs``: how many (epochs 1..epochs) or which (a range of epoch numbers, to resume).
    - ``loss``: ``"cross_entropy"``, ``"squared_error"`` or a ``losses.Loss`` part (``recover.Distillation``).
    - ``val``: a Dataset (or ``(X, y)``) evaluated once per epoch, after its steps.
    - ``seed``: epoch ``e`` is shuffled by ``epoch_rng(seed, e)``; the same seed gives bit-identical weights.
    - ``callbacks``: objects with any of the methods of ``tinyprune.training.Callback``.
    Shapes: ``train.X`` (n, d) with d = ``model.sizes[0]``, ``train.y`` (n,) integer labels."""
    epoch_numbers, batch_size = _epoch_numbers(epochs), positive_int("batch_size", batch_size)
    engine, loss = as_engine(engine), losses.as_loss(loss)
    train, val, optimizer = _checked(model, train, val, optimizer, engine)
    loss.bind(train.X)
    base_seed, history = _base_seed(seed), []
    step = (epoch_numbers.start - 1) * math.ceil(len(train) / batch_size)   # the steps of earlier epochs
    _call(callbacks, "on_train_begin", model, optimizer)
    for epoch in epoch_numbers:
        _call(callbacks, "on_epoch_begin", model, optimizer, epoch)
        total_loss, correct, seen, started = 0.0, 0, 0, time.perf_counter()
        for done, batch in enumerate(engine.batches(train, batch_size, epoch_rng(base_seed, epoch)), 1):
            value, logits = engine.step(model, batch, loss)          # g = dL/dθ into every parameter.grad
            optimizer.step()                                         # θ <- θ - (the optimizer's step)
            step, yb = step + 1, batch[1]
            total_loss, seen = total_loss + value * len(yb), seen + len(yb)
            correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
            _call(callbacks, "on_step_end", model, optimizer, epoch, step)
            running = {"loss": total_loss / seen, "accuracy": correct / seen}    # the means so far
            _call(callbacks, "on_batch_end", epoch, done, running)
        seconds = time.perf_counter() - started
        scores = evaluate(model, val, loss=loss.evaluate_as) if val is not None else {}
        history.append({"epoch": epoch, **running, "val_loss": scores.get("loss"),
                        "val_accuracy": scores.get("accuracy"), "seconds": seconds})
        _call(callbacks, "on_epoch_end", model, optimizer, epoch, dict(history[-1]))
    _call(callbacks, "on_train_end", model, optimizer)
    return history


def evaluate(model: Module, dataset: DataLike, loss: str = "cross_entropy",
             batch_size: int = 1000) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``dataset``: ``{"loss": L, "accuracy": a}``, where
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
        total_loss += losses.loss_and_grad(loss, logits, yb)[0] * yb.shape[0]
        correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
    return {"loss": total_loss / len(dataset), "accuracy": correct / len(dataset)}


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
