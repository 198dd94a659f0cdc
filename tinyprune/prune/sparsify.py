"""Sparsification: train so that many weights become (nearly) 0, then prune those below a small threshold.

The document's "sparsify by setting a small threshold" (section 3.2) and its L1 regulariser (section
5.5). Two ways to add ``λ₁ ||W||_1`` to the loss (``lam`` is λ₁ of ``notebooks/README.md``):

- **L1 subgradient**: add ``λ₁ · sign(w)`` to ``∂L/∂w`` before each optimizer step (``L1Regularized``
  wraps any optimizer). Weights hover around 0 but rarely reach it exactly.
- **Proximal (soft-thresholding)**: after each ordinary step of size ``α``, apply the proximal
  operator of ``α λ₁ ||·||_1``: ``w <- sign(w) · max(|w| - α λ₁, 0)`` (``SoftThreshold`` callback).
  Weights that the loss does not defend land exactly on 0.

With plain SGD (no momentum) the proximal route is ISTA for ``L + λ₁ ||W||_1``, and the two routes
minimise the same objective. With momentum ``μ`` they do not: the velocity amplifies a steady gradient
about ``1/(1 - μ)`` times (10x at the default ``μ = 0.9``), the L1 subgradient included, while the
shrink ``α λ₁`` bypasses the velocity; so the proximal route at ``λ₁`` acts like the subgradient at
about ``(1 - μ) λ₁``. Compare the two at one ``λ₁`` with ``SGD(momentum=0)``.

Then ``threshold(model, tau)`` masks every ``|w| < τ`` and ``sparsify`` reports what was reached.
Derived in ``notebooks/05_pruning_criteria.ipynb`` ("sparsify, then cut"); the document's own L1 snippet is
taken apart in ``notebooks/10_the_documents_experiment.ipynb``.

>>> from tinyprune.core.nn import Parameter
>>> w = Parameter(np.array([0.3, -0.05, 0.0]))
>>> SoftThreshold(lam=1.0).shrink([w], step_size=0.1)
>>> w.data
array([ 0.2, -0. ,  0. ])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tinyprune.checks import check_number
from tinyprune.core.batches import Dataset
from tinyprune.core.nn import MLP, Parameter
from tinyprune.fast.optim import SGD, Optimizer
from tinyprune.prune.core import eligible, threshold
from tinyprune.prune.masks import mask_stats
from tinyprune.training import evaluate, fit

METHODS = ("l1", "prox")


def _check_lam(lam: Any) -> float:
    return check_number("lam", lam, 0, None, meaning="the L1 strength λ")


def _weights(model: MLP, prune_biases: bool = False) -> list[Parameter]:
    params = dict(model.named_parameters())
    return [params[name] for name in eligible(model, prune_biases=prune_biases)]


class L1Regularized(Optimizer):
    """An optimizer wrapper adding the L1 subgradient to the gradients: ``g <- ∂L/∂w + λ · sign(w)``.

    ``L1Regularized(Adam(model.parameters()), lam=1e-4, params=weights)`` behaves like the inner
    optimizer (same ``params``, ``lr``, ``steps``, state) on the loss ``L + λ Σ |w|`` over ``params``
    (default: every parameter of the inner optimizer). ``sign(0) = 0``: a pruned weight gets nothing.
    """

    def __init__(self, optimizer: Optimizer, lam: float, params: list[Parameter] | None = None) -> None:
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"L1Regularized wraps an Optimizer, got {type(optimizer).__name__}")
        self.inner = optimizer
        self.lam = _check_lam(lam)
        self.penalised = list(optimizer.params if params is None else params)
        known = {id(p) for p in optimizer.params}
        if any(id(p) not in known for p in self.penalised):
            raise ValueError("every penalised parameter must be one of the optimizer's parameters")

    def __getattr__(self, name: str) -> Any:          # params, schedule, state, ...: the inner one's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def lr(self) -> float:                             # type: ignore[override]
        return self.inner.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.inner.lr = value

    @property
    def steps(self) -> int:                            # type: ignore[override]
        return self.inner.steps

    @steps.setter
    def steps(self, value: int) -> None:
        self.inner.steps = value

    def step(self) -> None:
        for parameter in self.penalised:
            if parameter.grad is not None:
                parameter.grad = parameter.grad + self.lam * np.sign(parameter.data)
        self.inner.step()

    def zero_grad(self) -> None:
        self.inner.zero_grad()

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.inner.load_state_dict(state)


class SoftThreshold:
    """A ``fit`` callback: after every optimizer step, ``w <- sign(w) · max(|w| - α λ, 0)`` on the
    weights (not the biases unless ``prune_biases``), with ``α`` the optimizer's current learning rate:
    the proximal step for ``L + λ₁ ||W||_1`` (ISTA when the optimizer is plain SGD; module docstring).
    ``shrink`` does one such update.
    """

    def __init__(self, lam: float, prune_biases: bool = False) -> None:
        self.lam = _check_lam(lam)
        self.prune_biases = prune_biases

    @staticmethod
    def _shrink(parameter: Parameter, amount: float) -> None:
        data = parameter.data
        np.copyto(data, np.sign(data) * np.maximum(np.abs(data) - amount, 0))

    def shrink(self, params: list[Parameter], step_size: float) -> None:
        """One proximal update of every parameter in ``params`` with threshold ``step_size · λ``."""
        for parameter in params:
            self._shrink(parameter, step_size * self.lam)

    def on_step_end(self, model: MLP, optimizer: Any, epoch: int, step: int) -> None:
        self.shrink(_weights(model, self.prune_biases), float(optimizer.lr))


@dataclass
class SparsifyReport:
    """What ``sparsify`` reached: the fraction of eligible weights pruned by the threshold ``tau``, and
    the accuracy (on ``val`` if given, else on ``train``) before and after that cut."""

    method: str
    lam: float
    tau: float
    epochs: int
    sparsity: float
    accuracy_before_cut: float
    accuracy: float
    history: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.method} (λ = {self.lam:g}, {self.epochs} epochs), cut |w| < {self.tau:g}: sparsity "
                f"{self.sparsity:.2%}, accuracy {self.accuracy_before_cut:.4f} -> {self.accuracy:.4f}")


def sparsify(model: MLP, train: Dataset | tuple[np.ndarray, np.ndarray], *, lam: float, epochs: int,
             method: str = "prox", tau: float = 1e-3, optimizer: Optimizer | None = None,
             val: Any = None, prune_biases: bool = False, **fit_options: Any) -> SparsifyReport:
    """Train ``model`` (in place) with an L1 penalty ``λ ||W||_1``, then prune every ``|w| < tau``.

    ``method``: ``"l1"`` (subgradient, ``L1Regularized``) or ``"prox"`` (``SoftThreshold``).
    ``optimizer`` defaults to ``SGD(lr=0.05, momentum=0.9)`` on the model's parameters, whose plain
    step size makes the proximal threshold ``α λ₁`` meaningful; with this momentum the proximal route is
    not ISTA and is about 10x weaker than the subgradient at the same ``lam`` (module docstring). Pass
    ``SGD(params, lr=..., momentum=0)`` to compare the two at one ``lam``. ``fit_options`` go to ``fit``
    (``batch_size=128``, ``seed=0``, ``progress=False`` here). Returns a ``SparsifyReport``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    lam = _check_lam(lam)
    check_number("tau", tau, 0, None)
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9) if optimizer is None else optimizer
    callbacks: list[Any] = []
    if method == "l1":
        optimizer = L1Regularized(optimizer, lam, _weights(model, prune_biases))
    else:
        callbacks.append(SoftThreshold(lam, prune_biases))
    history = fit(model, train, epochs=epochs, optimizer=optimizer, callbacks=callbacks,
                  **{"progress": False, **fit_options})
    measure_on = train if val is None else val
    before = evaluate(model, measure_on)["accuracy"]
    threshold(model, tau=tau, prune_biases=prune_biases)
    stats = mask_stats(model)
    names = eligible(model, prune_biases=prune_biases)
    pruned = sum(stats[n]["pruned"] for n in names)
    total = sum(stats[n]["total"] for n in names)
    return SparsifyReport(method, lam, float(tau), int(epochs), pruned / total, before,
                          evaluate(model, measure_on)["accuracy"], history.to_dict())
