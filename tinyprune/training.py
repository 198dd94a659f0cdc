"""Training as users call it: ``fit`` with a progress display, resuming, callbacks and the fast engines.

``fit`` here is ``tinyprune.core.train.fit`` (the plain loop, the textbook) run with the engines and the
optimizer of ``tinyprune.fast`` (the same numbers, faster; inside ``tinyprune.plain()`` the core's
own), plus what a textbook loop leaves out: a progress bar or one line per epoch, ``initial_epoch`` to
resume, the ``Callback`` base class and ``WeightSnapshot`` (weights kept for rewinding).

>>> import numpy as np
>>> from tinyprune.core.nn import MLP
>>> from tinyprune.core.batches import Dataset
>>> X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
>>> train = Dataset(X, (X[:, 0] > 0).astype(np.int64))
>>> model = MLP([4, 8, 2], seed=0)
>>> from tinyprune.fast.optim import Adam
>>> history = fit(model, train, epochs=10, batch_size=16, progress=False,
...               optimizer=Adam(model.parameters(), lr=0.05))
>>> history.epochs[-1], history.last["accuracy"] > 0.95
(10, True)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tinyprune.core import train as core
from tinyprune.core.nn import MLP, Module
from tinyprune.core.optim import Optimizer
from tinyprune.core.train import DataLike, epoch_rng, evaluate
from tinyprune.fast import optim as fast_optim
from tinyprune.fast import train as fast_train
from tinyprune.fast.switch import is_plain, plain
from tinyprune.sparse import SparseMLP, choose

Progress = bool | Literal["bar", "lines"]
ENGINES = tuple(core.ENGINES)

__all__ = ["ENGINES", "Callback", "History", "WeightSnapshot", "epoch_rng", "evaluate", "fit", "plain",
           "predict", "progress_bar"]


# --------------------------------------------------------------------------- history
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


# --------------------------------------------------------------------------- callbacks
class Callback:
    """Base class of callbacks (optional: ``fit`` calls whichever of these methods an object has).

    - ``on_train_begin(model, optimizer)`` before the first step;
    - ``on_epoch_begin(model, optimizer, epoch)`` before an epoch's first step;
    - ``on_step_end(model, optimizer, epoch, step)`` after each update; ``epoch`` is the current epoch
      (1-based), ``step`` the global step count (1-based, counted from the first epoch ever, so it
      continues across ``initial_epoch``);
    - ``on_batch_end(epoch, batch, logs)`` after each update, with the epoch's running ``loss`` and
      ``accuracy`` in ``logs`` (what the progress bar shows; not a method of this class, so that a
      callback without it costs the loop nothing);
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
    >>> from tinyprune.core.nn import MLP
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
    """Per-epoch progress, a callback of ``fit``: a tqdm bar, one printed line per epoch, or nothing."""

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

    def on_epoch_begin(self, model: Module, optimizer: Optimizer, epoch: int) -> None:
        if self.mode == "bar":
            self.bar = progress_bar(self.steps_per_epoch, f"epoch {epoch}/{self.total_epochs}", "batch")

    def on_batch_end(self, epoch: int, done: int, logs: dict[str, float]) -> None:
        if self.bar is not None:
            if done % self.every == 0:
                self.bar.set_postfix(loss=f"{logs['loss']:.4f}", acc=f"{logs['accuracy']:.4f}", refresh=False)
            self.bar.update(1)

    def on_epoch_end(self, model: Module, optimizer: Optimizer, epoch: int, record: dict[str, Any]) -> None:
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
def fit(model: Module, train: DataLike, *, epochs: int, initial_epoch: int = 0, engine: str = "backprop",
        progress: Progress = True, callbacks: Sequence[Any] = (), **options: Any) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs of minibatch steps; return the ``History``.

    Each step: ``g = dL/dθ`` on a batch (``engine``: ``"backprop"`` by hand, ``"autograd"`` by the graph;
    same trajectory), then ``optimizer.step()`` (default ``Adam(model.parameters(), lr=1e-3)``).
    Derived in ``notebooks/04_training.ipynb``.

    - ``loss``: ``"cross_entropy"`` or ``"squared_error"`` (``core.losses.LOSSES``), or a
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
    - ``options``: ``batch_size``, ``optimizer``, ``loss``, ``val``, ``seed``, as in ``core.train.fit``.

    Shapes: ``train.X`` (n, d) with d = ``model.sizes[0]``, ``train.y`` (n,) integer labels.
    Inside ``tinyprune.plain()`` the engines and the default optimizer are the core's plain ones.
    Example: see the module docstring.
    """
    epochs = core.positive_int("epochs", epochs)
    initial_epoch = core.positive_int("initial_epoch", initial_epoch, minimum=0)
    batch_size = core.positive_int("batch_size", options.pop("batch_size", 128))
    engine = core.as_engine(engine, core.ENGINES if is_plain() else fast_train.ENGINES)
    train = core.as_dataset(train, "train")
    bar = _Progress(progress, initial_epoch + epochs, math.ceil(len(train) / batch_size))
    if options.get("optimizer") is None and not is_plain():
        options["optimizer"] = fast_optim.Adam(model.parameters(), lr=1e-3)
    try:
        records = core.fit(model, train, epochs=range(initial_epoch + 1, initial_epoch + epochs + 1),
                           batch_size=batch_size, engine=engine,
                           callbacks=[bar, *callbacks] if bar.mode != "off" else callbacks, **options)
    finally:
        bar.close()
    history = History()
    for record in records:
        history.append(**record)
    return history


# --------------------------------------------------------------------------- predict
def predict(model: Module, X: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The predicted class of every row, ``argmax_j z_ij``: the core's ``predict``, except that a pruned
    ``MLP`` whose layers are sparse enough for the measured rule (``sparse.choose`` at this call's batch,
    ``min(batch_size, n)`` rows) runs on ``sparse.SparseMLP``, built once for the call (the same logits to
    float rounding; ``benchmarks/bench_sparse.py`` measures where it pays). Inside ``tp.plain()`` it is
    always the core's. Shapes: X (n, d) -> (n,) int64.

    >>> from tinyprune.core.nn import MLP
    >>> predict(MLP([3, 4], seed=0), np.zeros((2, 3), np.float32))
    array([0, 0])
    """
    X = np.asarray(X)
    if is_plain() or not isinstance(model, MLP) or X.ndim != 2 or X.shape[1] != model.sizes[0]:
        return core.predict(model, X, batch_size)       # the core checks and explains bad input
    batch_size = core.positive_int("batch_size", batch_size)
    kernels = choose(model, max(1, min(batch_size, X.shape[0])))
    if all(kernel == "dense" for kernel in kernels):
        return core.predict(model, X, batch_size)
    sparse_model = SparseMLP.from_model(model, kernels=kernels)
    labels = np.empty(X.shape[0], dtype=np.int64)
    for start in range(0, X.shape[0], batch_size):
        labels[start:start + batch_size] = sparse_model.predict(X[start:start + batch_size])
    return labels
