"""The document's residual method as distillation: the dense model teaches the pruned one.

Sections 4.2-4.3 of the source document recover a pruned network from the residual between the dense
and the pruned model's outputs on the same inputs, ``Δy = ŷ⁽¹⁾ - ŷ⁽²⁾`` (dense minus pruned), then
back-propagate (``Δw = Σ_i ∂L/∂ŷ_i · ∂ŷ_i/∂w``) and step ``w <- w - α Δw``. The document's formulas
leave ``L`` unspecified and never use ``Δy``; this module implements the course's reading,
``L = 1/2 ||Δy||²`` (section 4.1's loss with the dense output as the target), whose gradient at the
pruned output is ``-Δy``: knowledge distillation with the dense model as the teacher (Hinton, Vinyals
& Dean 2015). No labels are needed. ``z⁽¹⁾``, ``p⁽¹⁾`` are the dense (teacher) logits and probabilities,
``z⁽²⁾``, ``p⁽²⁾`` the pruned (student) ones; ``T`` is the temperature.

Which outputs ``ŷ`` are compared is the ``output`` option (averaged over the n rows of a batch):

- ``"logits"`` (default): ``L = 1/(2n) Σ_i ||z⁽¹⁾_i - z⁽²⁾_i||²``, so
  ``dL/dz⁽²⁾ = (z⁽²⁾ - z⁽¹⁾) / n = -Δy / n``.
  The temperature cancels here (dividing both logits by T and scaling by T² gives the same loss).
- ``"probabilities"``: the document's own loss on softmax outputs softened by a temperature T,
  ``p = softmax(z / T)``, ``L = T² / (2n) Σ_i ||p⁽¹⁾_i - p⁽²⁾_i||²``;
  ``dL/dz⁽²⁾ = softmax_backward(p⁽²⁾, T² (p⁽²⁾ - p⁽¹⁾) / n) / T``.
- ``"kl"``: Hinton et al.'s soft cross-entropy, ``L = T²/n Σ_i KL(p⁽¹⁾_i || p⁽²⁾_i)``,
  ``dL/dz⁽²⁾ = T (p⁽²⁾ - p⁽¹⁾) / n``.

The T² factor keeps the gradient's size independent of T (Hinton et al., section 2). With ``alpha > 0``
(``ω`` in ``notebooks/README.md``) the loss mixes in cross-entropy on the labels:
``(1 - ω) L_distill + ω CE(z⁽²⁾, y)``.
Derived in ``notebooks/08_residual_and_reconstruction.ipynb``.

>>> from tinyprune.nn import MLP
>>> teacher, student = MLP([4, 3, 2], seed=0), MLP([4, 3, 2], seed=1)
>>> z_s, z_t = student(np.ones((5, 4))), teacher(np.ones((5, 4)))
>>> value, dlogits = distillation_loss(z_s, z_t)
>>> bool(np.allclose(dlogits, (z_s - z_t) / 5)), dlogits.shape
(True, (5, 2))
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from tinyprune import backprop, losses
from tinyprune.autograd import Tensor
from tinyprune.nn import MLP
from tinyprune.optim import Optimizer
from tinyprune.recover.finetune import build_optimizer
from tinyprune.train import History, epoch_rng, evaluate

OUTPUTS = ("logits", "probabilities", "kl")


def _check_options(output: str, temperature: float, alpha: float) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"unknown distillation output {output!r}; expected one of {OUTPUTS}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (the weight of cross-entropy on labels) must lie in [0, 1], got {alpha}")


def distillation_loss(student_logits: np.ndarray, teacher_logits: np.ndarray, labels: Any = None, *,
                      output: str = "logits", temperature: float = 1.0,
                      alpha: float = 0.0) -> tuple[float, np.ndarray]:
    """Value of the residual loss and its gradient ``dL/dz⁽²⁾`` at the student's logits (closed form).

    ``L = (1 - ω) L_distill(z⁽²⁾, z⁽¹⁾) + ω CE(z⁽²⁾, y)`` (``ω`` = ``alpha``), with ``L_distill`` chosen by
    ``output`` (see the module's docstring: ``1/(2n) ||z⁽¹⁾ - z⁽²⁾||²`` on logits,
    ``T²/(2n) ||p⁽¹⁾ - p⁽²⁾||²`` on softened probabilities, or ``T²/n KL(p⁽¹⁾ || p⁽²⁾)``).
    ``labels`` are needed only when ``alpha > 0``. The gradient is what ``backprop.backward`` takes as
    ``dlogits``.

    Shapes: student_logits, teacher_logits (n, K); labels (n,) -> (float, (n, K)).

    >>> z = np.array([[1.0, 0.0]]); t = np.array([[3.0, 0.0]])
    >>> distillation_loss(z, t)          # 1/2 (3 - 1)^2 and (1 - 3) / 1
    (2.0, array([[-2.,  0.]]))
    """
    _check_options(output, temperature, alpha)
    z_s, z_t = np.asarray(student_logits), np.asarray(teacher_logits)
    if z_s.shape != z_t.shape or z_s.ndim != 2:
        raise ValueError(f"student and teacher logits must be 2-D arrays of one shape (n, k), "
                         f"got {z_s.shape} and {z_t.shape}")
    losses.check_finite("student logits", z_s)
    losses.check_finite("teacher logits", z_t)
    n, T = z_s.shape[0], float(temperature)
    if output == "logits":
        residual = z_t - z_s                                             # Δy = ŷ_dense - ŷ_pruned
        value = 0.5 * float(np.sum(residual * residual)) / n
        grad = -residual / n
    else:
        p_s, p_t = losses.softmax(z_s / T), losses.softmax(z_t / T)
        if output == "probabilities":
            value = T * T * 0.5 * float(np.sum((p_t - p_s) ** 2)) / n
            grad = losses.softmax_backward(p_s, T * T * (p_s - p_t) / n) / T
        else:
            log_p_s, log_p_t = losses.log_softmax(z_s / T), losses.log_softmax(z_t / T)
            value = T * T * float(np.sum(p_t * (log_p_t - log_p_s))) / n
            grad = T * (p_s - p_t) / n
    if alpha > 0:
        if labels is None:
            raise ValueError("alpha > 0 mixes in cross-entropy on labels, so labels are needed")
        value = (1 - alpha) * value + alpha * losses.cross_entropy(z_s, labels)
        grad = (1 - alpha) * grad + alpha * losses.cross_entropy_grad(z_s, labels)
    return value, grad


def distillation_loss_tensor(student_logits: Tensor, teacher_logits: np.ndarray, labels: Any = None, *,
                             output: str = "logits", temperature: float = 1.0, alpha: float = 0.0) -> Tensor:
    """The same loss as ``distillation_loss`` built from ``Tensor`` operations, for autograd.

    The tests check that autograd's gradient of this equals the closed form and finite differences.
    Shapes: student_logits Tensor (n, k), teacher_logits (n, k) -> scalar Tensor.
    """
    _check_options(output, temperature, alpha)
    z_t = np.asarray(teacher_logits)
    n, T = z_t.shape[0], float(temperature)
    if output == "logits":
        value = ((student_logits - z_t) ** 2).sum() * (0.5 / n)
    else:
        log_p_s = (student_logits * (1.0 / T)).log_softmax()
        p_t, log_p_t = losses.softmax(z_t / T), losses.log_softmax(z_t / T)
        if output == "probabilities":
            value = ((log_p_s.exp() - p_t) ** 2).sum() * (T * T * 0.5 / n)
        else:
            value = (float(np.sum(p_t * log_p_t)) - (log_p_s * p_t).sum()) * (T * T / n)
    if alpha > 0:
        if labels is None:
            raise ValueError("alpha > 0 mixes in cross-entropy on labels, so labels are needed")
        value = value * (1 - alpha) + losses.cross_entropy(student_logits, labels) * alpha
    return value


def distillation_gradients(model: MLP, teacher_logits: np.ndarray, X: np.ndarray, labels: Any = None,
                           **options: Any) -> tuple[float, dict[str, np.ndarray]]:
    """Section 4.3 step by step: residual, its gradient at the outputs, the chain rule to every weight.

    1. forward the pruned model: ``ŷ_pruned = z⁽²⁾`` (``backprop.forward``);
    2. the residual loss and ``δ_D = dL/dz⁽²⁾`` (``distillation_loss``);
    3. ``Δw = A_{l-1}^T δ_l``, ``Δb = Σ_rows δ_l`` for every layer (``backprop.backward``), 0 where masked.

    Shapes: X (n, d_0), teacher_logits (n, k) -> (float, {name: gradient of the parameter's shape}).
    """
    cache = backprop.forward(model, X)
    value, dlogits = distillation_loss(cache.logits, teacher_logits, labels, **options)
    return value, backprop.backward(model, cache, dlogits)


# --------------------------------------------------------------------- training
def _features_and_labels(data: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if hasattr(data, "X") and hasattr(data, "y"):
        return np.asarray(data.X), np.asarray(data.y)
    if isinstance(data, tuple) and len(data) == 2:
        return np.asarray(data[0]), np.asarray(data[1])
    return np.asarray(data), None


def distill(model: MLP, teacher: MLP, data: Any, *, epochs: int = 1, batch_size: int = 128,
            optimizer: str | Optimizer = "adam", lr: float = 1e-3,
            schedule: str | Callable[[int], float] | None = "constant", momentum: float = 0.9,
            output: str = "logits", temperature: float = 1.0, alpha: float = 0.0, val: Any = None,
            seed: int = 0, callbacks: Iterable[Any] = (), progress: bool = False,
            initial_epoch: int = 0) -> History:
    """Train the pruned ``model`` to reproduce the dense ``teacher``'s outputs, keeping every mask.

    Every step is the document's section 4.3: the residual ``Δy = ŷ_dense - ŷ_pruned`` on a batch, its
    loss's gradient back-propagated by hand (``distillation_gradients``), and an optimizer step
    ``w <- w - α Δw`` (mask-aware, so pruned weights stay exactly 0). ``data`` is a ``Dataset``, an
    ``(X, y)`` tuple, or just ``X`` (no labels are needed when ``alpha == 0``). ``optimizer`` is ``"adam"``,
    ``"sgd"`` (with ``momentum``) or an ``Optimizer``; ``schedule`` is ``"constant"``, ``"cosine"`` (to 0 over
    this call's steps) or a callable ``step -> lr``. Epochs are shuffled like ``train.fit``'s
    (``epoch_rng(seed, epoch)``) and ``callbacks`` follow its protocol (1-based epochs, global steps), so
    gradual pruning can run inside distillation. The teacher's logits are computed once for the training
    set (one forward pass of the teacher).

    Shapes: data X (n, d_0) -> a ``train.History`` (``accuracy`` is on the labels when there are labels,
    else ``None``; ``loss`` is the distillation loss).

    >>> from tinyprune.nn import MLP
    >>> X = np.random.default_rng(0).random((64, 4)).astype(np.float32)
    >>> teacher, student = MLP([4, 8, 3], seed=0), MLP([4, 8, 3], seed=1)
    >>> before = np.mean((student(X) - teacher(X)) ** 2)
    >>> history = distill(student, teacher, X, epochs=20, batch_size=16, lr=1e-2)
    >>> bool(np.mean((student(X) - teacher(X)) ** 2) < before / 10), len(history)
    (True, 20)
    """
    _check_options(output, temperature, alpha)
    X, y = _features_and_labels(data)
    if alpha > 0 and y is None:
        raise ValueError("alpha > 0 mixes in cross-entropy on labels: pass a Dataset or an (X, y) tuple")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if X.ndim != 2 or X.shape[1] != model.sizes[0]:
        raise ValueError(f"distillation inputs must have shape (n, {model.sizes[0]}), got {X.shape}")
    n = X.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    opt = build_optimizer(model, optimizer, lr=lr, momentum=momentum, schedule=schedule,
                          total_steps=epochs * steps_per_epoch)
    callbacks = list(callbacks)
    teacher_logits = np.concatenate([teacher(X[i:i + 2000]) for i in range(0, n, 2000)])
    history = History()
    _call(callbacks, "on_train_begin", model, opt)
    bar = _progress_bar(epochs * steps_per_epoch, progress)
    step = initial_epoch * steps_per_epoch
    named = model.named_parameters()
    for epoch in range(initial_epoch + 1, initial_epoch + epochs + 1):
        started = time.perf_counter()
        order = epoch_rng(seed, epoch).permutation(n)
        total, correct = 0.0, 0
        for begin in range(0, n, batch_size):
            rows = order[begin:begin + batch_size]
            labels = None if y is None else y[rows]
            cache = backprop.forward(model, X[rows])                         # ŷ_pruned
            value, dlogits = distillation_loss(cache.logits, teacher_logits[rows], labels, output=output,
                                               temperature=temperature, alpha=alpha)
            grads = backprop.backward(model, cache, dlogits)                 # Δw, Δb (0 where masked)
            for name, parameter in named:
                parameter.grad = grads[name]
            opt.step()                                                       # w <- w - α Δw
            step += 1
            total += value * rows.size
            if labels is not None:
                correct += int(np.count_nonzero(cache.logits.argmax(axis=1) == labels))
            if bar is not None:
                bar.update(1)
            _call(callbacks, "on_step_end", model, opt, epoch, step)
        scores = evaluate(model, val) if val is not None else {}
        record = {"epoch": epoch, "loss": total / n, "accuracy": None if y is None else correct / n,
                  "val_loss": scores.get("loss"), "val_accuracy": scores.get("accuracy"),
                  "seconds": time.perf_counter() - started}
        history.append(**record)
        _call(callbacks, "on_epoch_end", model, opt, epoch, dict(record))
    _call(callbacks, "on_train_end", model, opt)
    if bar is not None:
        bar.close()
    model.zero_grad()
    return history


def _call(callbacks: Sequence[Any], hook: str, *args: Any) -> None:
    """Run ``hook`` on every callback that has it (the same protocol as ``train.fit``)."""
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if callable(method):
            method(*args)


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="distill", leave=False)


__all__ = ["OUTPUTS", "distill", "distillation_gradients", "distillation_loss",
           "distillation_loss_tensor"]
