"""The training loop: ``fit``, ``evaluate``, ``predict``, the ``History`` and the callbacks.

One step of minibatch gradient descent (``notebooks/04_training.ipynb``):

1. take a batch ``(X_b, y_b)`` of the shuffled training set;
2. forward: ``logits = model(X_b)``, loss ``L = loss(logits, y_b)`` (mean over the batch);
3. backward: ``g = dL/dθ`` for every parameter, by the hand-derived chain rule
   (``engine="backprop"``, ``tinyprune.backprop``) or by the autograd graph (``engine="autograd"``);
4. update: ``θ <- optimizer(θ, g)`` (Adam with ``lr = 1e-3`` by default); masked weights stay 0.

An epoch is one pass over the training set; its order is a permutation drawn from a generator seeded
with ``(seed, epoch)``, so epoch ``e`` is shuffled the same way whether training runs in one call or is
resumed from a checkpoint with ``initial_epoch`` (see ``tinyprune.checkpoint``).

>>> import numpy as np
>>> from tinyprune.nn import MLP
>>> from tinyprune.data import Dataset
>>> X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
>>> train = Dataset(X, (X[:, 0] > 0).astype(np.int64))
>>> model = MLP([4, 8, 2], seed=0)
>>> from tinyprune.optim import Adam
>>> history = fit(model, train, epochs=10, batch_size=16, progress=False,
...               optimizer=Adam(model.parameters(), lr=0.05))
>>> history.epochs[-1], history.last["accuracy"] > 0.95
(10, True)
>>> evaluate(model, train)["accuracy"] > 0.95
True
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tinyprune import backprop, losses
from tinyprune.autograd import Tensor
from tinyprune.data.batches import Dataset
from tinyprune.nn import MLP, Module
from tinyprune.optim import Adam, Optimizer

ENGINES = ("backprop", "autograd")
Progress = bool | Literal["bar", "lines"]
DataLike = Dataset | tuple[np.ndarray, np.ndarray]

__all__ = ["ENGINES", "Callback", "History", "WeightSnapshot", "epoch_rng", "evaluate", "fit", "predict",
           "progress_bar"]


# --------------------------------------------------------------------------- history
@dataclass
class History:
    """What ``fit`` measured, one entry per epoch (``epoch`` numbers are 1-based and global).

    ``loss`` and ``accuracy`` are the running means over the epoch's training batches (the model
    changes during the epoch, as in Keras); ``val_loss``/``val_accuracy`` are measured on ``val`` at the
    end of the epoch (``None`` without ``val``); ``seconds`` is the time of the epoch's training steps
    (validation excluded).

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


# --------------------------------------------------------------------------- callbacks
class Callback:
    """Base class of callbacks (optional: ``fit`` calls whichever of these methods an object has).

    - ``on_train_begin(model, optimizer)`` before the first step;
    - ``on_step_end(model, optimizer, epoch, step)`` after each update; ``epoch`` is the current epoch
      (1-based), ``step`` the global step count (1-based, counted from the first epoch ever, so it
      continues across ``initial_epoch``);
    - ``on_epoch_end(model, optimizer, epoch, logs)`` with ``logs`` the epoch's ``History`` record;
    - ``on_train_end(model, optimizer)`` after the last epoch.

    A callback may change masks between steps (gradual pruning): the optimizer applies the current
    masks at every step, so nothing else is needed.
    """

    def on_train_begin(self, model: Module, optimizer: Optimizer) -> None:
        """Called once before training."""

    def on_step_end(self, model: Module, optimizer: Optimizer, epoch: int, step: int) -> None:
        """Called after every optimizer step."""

    def on_epoch_end(self, model: Module, optimizer: Optimizer, epoch: int, logs: dict[str, Any]) -> None:
        """Called after every epoch (and its validation)."""

    def on_train_end(self, model: Module, optimizer: Optimizer) -> None:
        """Called once after training."""


class WeightSnapshot(Callback):
    """Keep copies of the weights (``model.state_dict()``) at chosen epochs and steps: for rewinding.

    Epoch ``e`` means "after ``e`` epochs"; epoch 0 and step 0 are the weights when training begins
    (``on_train_begin``: the initialisation, when training starts from scratch). Lottery-ticket
    rewinding (Frankle et al. 2019) resets the surviving weights to such an early snapshot.

    >>> import numpy as np
    >>> from tinyprune.nn import MLP
    >>> from tinyprune.data import Dataset
    >>> model = MLP([2, 3, 2], seed=0)
    >>> snap = WeightSnapshot(epochs=[0, 1], steps=[2])
    >>> _ = fit(model, Dataset(np.eye(2, dtype=np.float32), [0, 1]), epochs=2, batch_size=1,
    ...         progress=False, callbacks=[snap])
    >>> sorted(snap.epochs), sorted(snap.steps), sorted(snap.at_epoch(0))[:2]
    ([0, 1], [2], ['layers.0.W', 'layers.0.b'])
    """

    def __init__(self, epochs: Iterable[int] = (0,), steps: Iterable[int] = ()) -> None:
        self.wanted_epochs = {int(e) for e in epochs}
        self.wanted_steps = {int(s) for s in steps}
        if any(value < 0 for value in self.wanted_epochs | self.wanted_steps):
            raise ValueError("WeightSnapshot epochs and steps must be >= 0")
        self.epochs: dict[int, dict[str, np.ndarray]] = {}
        self.steps: dict[int, dict[str, np.ndarray]] = {}

    def on_train_begin(self, model: Module, optimizer: Optimizer) -> None:
        if 0 in self.wanted_epochs and 0 not in self.epochs:
            self.epochs[0] = model.state_dict()
        if 0 in self.wanted_steps and 0 not in self.steps:
            self.steps[0] = model.state_dict()

    def on_step_end(self, model: Module, optimizer: Optimizer, epoch: int, step: int) -> None:
        if step in self.wanted_steps:
            self.steps[step] = model.state_dict()

    def on_epoch_end(self, model: Module, optimizer: Optimizer, epoch: int, logs: dict[str, Any]) -> None:
        if epoch in self.wanted_epochs:
            self.epochs[epoch] = model.state_dict()

    def at_epoch(self, epoch: int) -> dict[str, np.ndarray]:
        """The weights stored after ``epoch`` epochs (``KeyError`` naming what is stored if absent)."""
        if epoch not in self.epochs:
            raise KeyError(f"no snapshot at epoch {epoch}; stored: {sorted(self.epochs)}")
        return self.epochs[epoch]

    def at_step(self, step: int) -> dict[str, np.ndarray]:
        """The weights stored after ``step`` optimizer steps."""
        if step not in self.steps:
            raise KeyError(f"no snapshot at step {step}; stored: {sorted(self.steps)}")
        return self.steps[step]


def _hooks(callbacks: Sequence[Any], name: str) -> list[Callable[..., Any]]:
    return [getattr(cb, name) for cb in callbacks if callable(getattr(cb, name, None))]


# --------------------------------------------------------------------------- checks
def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_dataset(data: Any, what: str) -> Dataset:
    """A ``Dataset`` as it is; an ``(X, y)`` pair becomes one (validated, not copied)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return Dataset(*data)
    if hasattr(data, "X") and hasattr(data, "y") and hasattr(data, "minibatches"):
        return data  # a Dataset-like object (duck typing)
    raise ValueError(f"{what} must be a tinyprune.data.Dataset or an (X, y) pair, got {type(data).__name__}")


def _check_fits_model(model: Module, data: Dataset, what: str) -> None:
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


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator that shuffles epoch ``epoch`` (1-based): ``default_rng(SeedSequence([seed, epoch]))``.

    Each epoch's order depends only on ``(seed, epoch)``, never on how many epochs ran before in
    this process: that is what makes resuming from a checkpoint exact.

    >>> a = epoch_rng(0, 3).permutation(5); b = epoch_rng(0, 3).permutation(5)
    >>> bool((a == b).all())
    True
    """
    return np.random.default_rng(np.random.SeedSequence([seed, epoch]))


# --------------------------------------------------------------------------- batches
def _shuffled_batches(data: Dataset, batch_size: int, rng: np.random.Generator
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """``(X_b, y_b, rows)``: the batches of ``data.minibatches(batch_size, shuffle=True, rng=rng)``, same
    rows, same order, each gathered into one buffer reused for the whole epoch (``np.take(X, rows,
    out=)``) instead of a new array per batch. The buffer is overwritten by the next batch: a step must not
    keep it. ``rows`` are the batch's row numbers (``None`` for a Dataset-like object that batches itself).
    """
    if type(data).minibatches is not Dataset.minibatches:    # a Dataset-like object batches itself
        for Xb, yb in data.minibatches(batch_size, shuffle=True, rng=rng):
            yield Xb, yb, None
        return
    order = rng.permutation(len(data))
    buffer = np.empty((min(batch_size, len(data)), data.X.shape[1]), dtype=data.X.dtype)
    for start in range(0, len(data), batch_size):
        rows = order[start:start + batch_size]
        # mode="clip": rows of a permutation are in range, and "raise" would copy through a temporary
        yield np.take(data.X, rows, axis=0, out=buffer[:rows.size], mode="clip"), data.y[rows], rows


# --------------------------------------------------------------------------- one step
def _backprop_step(model: MLP, Xb: np.ndarray, yb: np.ndarray, rows: np.ndarray | None,
                   loss: losses.Loss, named: list[tuple[str, Any]]) -> tuple[float, np.ndarray]:
    """Hand-derived gradients: forward cache, ``dL/dz`` in closed form, chain rule back."""
    cache = backprop.forward(model, Xb, check=False)     # the Dataset checked X once, when it was built
    value, dlogits = loss.value_and_grad(cache.logits, yb, rows)
    hidden_value, dhidden = loss.hidden_value_and_grads(cache.inputs[1:], rows)   # (0, None): logits only
    grads = backprop.backward(model, cache, dlogits, dhidden)
    for name, parameter in named:
        parameter.grad = grads[name]
    return value + hidden_value, cache.logits


def _autograd_step(model: Module, Xb: np.ndarray, yb: np.ndarray, rows: np.ndarray | None,
                   loss: losses.Loss, named: list[tuple[str, Any]]) -> tuple[float, np.ndarray]:
    """Autograd gradients: build the graph of ``loss(model(X_b), y_b)`` and call ``backward()``."""
    for _, parameter in named:
        parameter.grad = None          # leaves accumulate: start each step from nothing
    logits = model(Tensor(Xb))
    value = loss.tensor(logits, yb, rows)
    value.backward()
    return float(value.data), logits.data


# --------------------------------------------------------------------------- progress
class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True) -> Any:
    """A tqdm bar of ``total`` ``unit``s if ``enabled`` and tqdm is installed, else one that shows nothing.

    The one progress bar of the project: ``fit`` draws one per epoch, ``sweep`` one over its runs.
    """
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stdout, leave=True, dynamic_ncols=True)


class _Progress:
    """Per-epoch progress: a tqdm bar, one printed line per epoch, or nothing."""

    def __init__(self, mode: Progress, total_epochs: int, steps_per_epoch: int) -> None:
        self.mode = self._resolve(mode)
        self.total_epochs = total_epochs
        self.steps_per_epoch = steps_per_epoch
        self.every = max(1, steps_per_epoch // 50)    # refresh the bar's numbers ~50 times an epoch
        self.bar: Any = None

    @staticmethod
    def _resolve(mode: Progress) -> str:
        if mode not in (True, False, "bar", "lines"):
            raise ValueError(f"progress must be True, False, 'bar' or 'lines', got {mode!r}")
        if mode is False:
            return "off"
        if mode is True and not _is_terminal():
            return "off"
        if mode == "lines":
            return "lines"
        try:
            import tqdm  # noqa: F401  (optional: the "progress" extra)
        except ImportError:
            return "lines"
        return "bar"

    def begin_epoch(self, epoch: int) -> None:
        if self.mode == "bar":
            self.bar = progress_bar(self.steps_per_epoch, f"epoch {epoch}/{self.total_epochs}", "batch")

    def step(self, done: int, loss: float, accuracy: float) -> None:
        if self.bar is not None:
            if done % self.every == 0:
                self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.4f}", refresh=False)
            self.bar.update(1)

    def end_epoch(self, record: dict[str, Any]) -> None:
        text = {"loss": f"{record['loss']:.4f}", "acc": f"{record['accuracy']:.4f}"}
        if record["val_loss"] is not None:
            text.update(val_loss=f"{record['val_loss']:.4f}", val_acc=f"{record['val_accuracy']:.4f}")
        if self.bar is not None:
            self.bar.set_postfix(text)
            self.bar.close()
            self.bar = None
        elif self.mode == "lines":
            fields = "  ".join(f"{key} {value}" for key, value in text.items())
            print(f"epoch {record['epoch']}/{self.total_epochs}  {fields}  ({record['seconds']:.2f} s)",
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------- fit
def fit(
    model: Module,
    train: DataLike,
    *,
    epochs: int,
    batch_size: int = 128,
    optimizer: Optimizer | None = None,
    loss: str | losses.Loss = "cross_entropy",
    val: DataLike | None = None,
    engine: str = "backprop",
    seed: int | np.random.Generator | None = 0,
    progress: Progress = True,
    callbacks: Sequence[Any] = (),
    initial_epoch: int = 0,
) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs of minibatch steps; return the ``History``.

    Each step: ``g = dL/dθ`` on a batch (``engine``: ``"backprop"`` by hand, ``"autograd"`` by the graph;
    same trajectory), then ``optimizer.step()`` (default ``Adam(model.parameters(), lr=1e-3)``).
    Derived in ``notebooks/04_training.ipynb``.

    - ``loss``: ``"cross_entropy"`` or ``"squared_error"`` (``tinyprune.losses.LOSSES``), or a
      ``losses.Loss`` part, such as ``recover.Distillation(teacher)`` (the document's residual method:
      ``recover.distill`` is ``fit`` with that loss).
    - ``val``: a Dataset (or ``(X, y)``) evaluated once per epoch, after its steps.
    - ``seed``: epoch ``e`` is shuffled by ``epoch_rng(seed, e)``; the same seed gives bit-identical
      weights. ``initial_epoch`` = epochs already done: to resume, pass the restored optimizer and
      ``initial_epoch``; epochs ``initial_epoch + 1 .. initial_epoch + epochs`` then run exactly as
      they would have in one call.
    - ``progress``: ``True`` = a tqdm bar per epoch when stdout is a terminal (one line per epoch
      if tqdm is not installed), nothing otherwise; ``"lines"`` = always one line per epoch;
      ``"bar"`` = always a bar; ``False`` = silent.
    - ``callbacks``: objects with any of the methods of ``Callback``.

    Shapes: ``train.X`` (n, d) with d = ``model.sizes[0]``, ``train.y`` (n,) integer labels.
    Example: see the module docstring.
    """
    epochs = _positive_int("epochs", epochs)
    batch_size = _positive_int("batch_size", batch_size)
    initial_epoch = _positive_int("initial_epoch", initial_epoch, minimum=0)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    loss = losses.as_loss(loss)
    if engine == "backprop" and not isinstance(model, MLP):
        raise ValueError(f"engine='backprop' trains an MLP, got {type(model).__name__}; "
                         "use engine='autograd'")
    train = _as_dataset(train, "train")
    _check_fits_model(model, train, "train")
    if val is not None:
        val = _as_dataset(val, "val")
        _check_fits_model(model, val, "val")
    named = model.named_parameters()
    if optimizer is None:
        optimizer = Adam(model.parameters(), lr=1e-3)
    elif not {id(p) for p in optimizer.params} <= {id(p) for _, p in named}:
        raise ValueError("the optimizer holds parameters that are not this model's (was it built on "
                         "another model, e.g. before copy.deepcopy?); build it on model.parameters()")
    loss.bind(train.X)
    base_seed = _base_seed(seed)
    step_fn = _backprop_step if engine == "backprop" else _autograd_step
    steps_per_epoch = math.ceil(len(train) / batch_size)
    step = initial_epoch * steps_per_epoch
    last_epoch = initial_epoch + epochs
    on_step_end = _hooks(callbacks, "on_step_end")
    on_epoch_end = _hooks(callbacks, "on_epoch_end")
    bar = _Progress(progress, last_epoch, steps_per_epoch)
    history = History()
    for hook in _hooks(callbacks, "on_train_begin"):
        hook(model, optimizer)
    try:
        for epoch in range(initial_epoch + 1, last_epoch + 1):
            bar.begin_epoch(epoch)
            total_loss, correct, seen = 0.0, 0, 0
            started = time.perf_counter()
            for done, (Xb, yb, rows) in enumerate(
                    _shuffled_batches(train, batch_size, epoch_rng(base_seed, epoch)), 1):
                value, logits = step_fn(model, Xb, yb, rows, loss, named)
                optimizer.step()
                step += 1
                n = yb.shape[0]
                total_loss += value * n
                correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
                seen += n
                for hook in on_step_end:
                    hook(model, optimizer, epoch, step)
                bar.step(done, total_loss / seen, correct / seen)
            seconds = time.perf_counter() - started
            scores = evaluate(model, val, loss=loss.evaluate_as) if val is not None else {}
            record = {"epoch": epoch, "loss": total_loss / seen, "accuracy": correct / seen,
                      "val_loss": scores.get("loss"), "val_accuracy": scores.get("accuracy"),
                      "seconds": seconds}
            history.append(**record)
            bar.end_epoch(record)
            for hook in on_epoch_end:
                hook(model, optimizer, epoch, dict(record))
    finally:
        bar.close()
    for hook in _hooks(callbacks, "on_train_end"):
        hook(model, optimizer)
    return history


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
    ``batch_size`` rows at a time without building a graph (``notebooks/04_training.ipynb``).
    Shapes: ``dataset.X`` (n, d), ``dataset.y`` (n,).

    >>> from tinyprune.nn import MLP
    >>> scores = evaluate(MLP([3, 2], seed=0), (np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])))
    >>> sorted(scores), scores["accuracy"]
    (['accuracy', 'loss'], 0.5)
    """
    losses.check_loss_name(loss)
    batch_size = _positive_int("batch_size", batch_size)
    dataset = _as_dataset(dataset, "dataset")
    _check_fits_model(model, dataset, "dataset")
    total_loss, correct = 0.0, 0
    for Xb, yb in dataset.minibatches(batch_size, shuffle=False):
        logits = model(Xb)
        total_loss += _loss_value(loss, logits, yb) * yb.shape[0]
        correct += int(np.count_nonzero(logits.argmax(axis=1) == yb))
    n = len(dataset)
    return {"loss": total_loss / n, "accuracy": correct / n}


def predict(model: Module, X: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The predicted class of every row: ``argmax_j z_ij`` of the logits. Shapes: X (n, d) -> (n,) int64.

    >>> from tinyprune.nn import MLP
    >>> predict(MLP([3, 4], seed=0), np.zeros((2, 3), np.float32))
    array([0, 0])
    """
    batch_size = _positive_int("batch_size", batch_size)
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
