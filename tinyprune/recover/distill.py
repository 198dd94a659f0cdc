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
**The residual at every layer** (``hidden_weight`` β > 0): the document's section 4.2 residual applied to
each hidden layer's activations too, ``L += β Σ_{l=1}^{D-1} 1/(2n) ||A_l,dense - A_l,pruned||²``, so the
pruned model is taught what every layer of the dense one computes, not only its outputs. Its gradient
``∂L/∂A_l = β (A_l,pruned - A_l,dense) / n`` joins the backward pass at ``A_l`` (``backprop.backward``'s
``dhidden``); ``hidden_distillation_tensor`` builds the same loss for autograd, and the tests compare both
with finite differences.
Derived in ``notebooks/08_residual_and_reconstruction.ipynb``.

>>> from tinyprune.core.nn import MLP, activate
>>> teacher, student = MLP([4, 3, 2], seed=0), MLP([4, 3, 2], seed=1)
>>> z_s, z_t = student(np.ones((5, 4))), teacher(np.ones((5, 4)))
>>> value, dlogits = distillation_loss(z_s, z_t)
>>> bool(np.allclose(dlogits, (z_s - z_t) / 5)), dlogits.shape
(True, (5, 2))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyprune.core import backprop, losses
from tinyprune.core.autograd import Tensor
from tinyprune.core.batches import Dataset
from tinyprune.core.nn import MLP, activate
from tinyprune.recover.finetune import finetune
from tinyprune.training import History, predict

OUTPUTS = ("logits", "probabilities", "kl")


def _check_hidden_weight(hidden_weight: float) -> None:
    if isinstance(hidden_weight, bool) or not isinstance(hidden_weight, (int, float)) or not (
            math.isfinite(hidden_weight) and hidden_weight >= 0):
        raise ValueError(f"hidden_weight (β, the weight of the hidden layers' residual) must be a finite "
                         f"number >= 0, got {hidden_weight!r}")


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


def hidden_residual_loss(student_hidden: list[np.ndarray], teacher_hidden: list[np.ndarray],
                         weight: float = 1.0) -> tuple[float, list[np.ndarray]]:
    """The residual at every hidden layer: ``β Σ_l 1/(2n) ||A_l,T - A_l,S||²`` and each ``∂L/∂A_l,S``.

    ``∂L/∂A_l,S = β (A_l,S - A_l,T) / n``: what ``backprop.backward(..., dhidden=)`` adds to the error
    flowing back at ``A_l``. Shapes: lists of (n, d_l), one per hidden layer -> (float, list of (n, d_l)).

    >>> value, grads = hidden_residual_loss([np.array([[1.0, 2.0]])], [np.array([[0.0, 2.0]])], weight=2.0)
    >>> value, grads[0].tolist()                     # 2 · 1/2 · 1² and 2 · (1 - 0) / 1
    (1.0, [[2.0, 0.0]])
    """
    _check_hidden_weight(weight)
    if len(student_hidden) != len(teacher_hidden):
        raise ValueError(f"{len(student_hidden)} student and {len(teacher_hidden)} teacher hidden layers: "
                         "expected one activation per hidden layer from each")
    value, grads = 0.0, []
    for a_s, a_t in zip(student_hidden, teacher_hidden):
        if a_s.shape != a_t.shape:
            raise ValueError(f"hidden activations of shapes {a_s.shape} and {a_t.shape}: expected one shape")
        n = a_s.shape[0]
        difference = a_s - a_t                                           # -(A_l,dense - A_l,pruned)
        value += weight * 0.5 * float(np.sum(difference * difference)) / n
        grads.append(difference * (weight / n))
    return value, grads


def hidden_activations(model: MLP, X: np.ndarray, chunk: int = 2000) -> list[np.ndarray]:
    """The hidden activations ``A_1..A_{L-1}`` of ``model`` on every row of ``X``, ``chunk`` rows at a time.

    Shapes: X (n, d_0) -> list of (n, d_l), one per hidden layer.
    """
    parts = [backprop.forward(model, X[i:i + chunk]).inputs[1:] for i in range(0, X.shape[0], chunk)]
    return [np.concatenate([p[layer] for p in parts]) for layer in range(len(model.layers) - 1)]


def hidden_distillation_tensor(model: MLP, X: np.ndarray, teacher_logits: np.ndarray,
                               teacher_hidden: list[np.ndarray], labels: Any = None, *,
                               hidden_weight: float = 1.0, **options: Any) -> Tensor:
    """The whole loss, outputs and every hidden layer, built from ``Tensor`` operations on ``model``.

    ``distillation_loss_tensor`` at the logits plus ``β Σ_l 1/(2n) ||A_l,T - A_l,S||²``; autograd's
    gradients of it are what the hand-derived pass (``Distillation`` in ``fit``) must reproduce.
    """
    _check_hidden_weight(hidden_weight)
    activation, hidden = Tensor(np.asarray(X)), []
    for index, layer in enumerate(model.layers):
        activation = layer(activation)
        if index < len(model.layers) - 1:
            activation = activate(activation, model.activation)
            hidden.append(activation)
    value = distillation_loss_tensor(activation, teacher_logits, labels, **options)
    n = np.asarray(X).shape[0]
    for a_s, a_t in zip(hidden, teacher_hidden):
        value = value + ((a_s - a_t) ** 2).sum() * (0.5 * hidden_weight / n)
    return value


# --------------------------------------------------------------------- training
class Distillation(losses.Loss):
    """The residual loss as a part of ``train.fit``: each batch is compared with the teacher's outputs.

    ``bind(X)`` runs the dense ``teacher`` once over the training input and keeps its logits ``z_T``;
    each step then takes ``distillation_loss(z_S, z_T[rows], y)`` (see its docstring for the three
    ``output`` choices, ``temperature`` and ``alpha``). A batch whose rows are unknown (a Dataset-like
    object that batches itself) asks the teacher for that batch.
    With ``hidden_weight`` β > 0, ``bind`` keeps the teacher's hidden activations too and each step adds
    the residual at every hidden layer (``hidden_residual_loss``; engine ``"backprop"`` only).

    >>> from tinyprune.core.nn import MLP, activate
    >>> part = Distillation(MLP([4, 3], seed=0)); part.bind(np.ones((2, 4)))
    >>> value, grad = part.value_and_grad(part.teacher_logits, np.array([0, 0]), np.arange(2))
    >>> value, bool(np.all(grad == 0))
    (0.0, True)
    """

    evaluate_as = "cross_entropy"

    def __init__(self, teacher: MLP, *, output: str = "logits", temperature: float = 1.0,
                 alpha: float = 0.0, hidden_weight: float = 0.0) -> None:
        _check_options(output, temperature, alpha)
        _check_hidden_weight(hidden_weight)
        self.teacher, self.output, self.temperature, self.alpha = teacher, output, temperature, alpha
        self.hidden_weight = float(hidden_weight)
        self.teacher_logits: np.ndarray | None = None
        self.teacher_hidden: list[np.ndarray] | None = None

    def _teacher(self, X: np.ndarray) -> np.ndarray:
        return np.concatenate([self.teacher(X[i:i + 2000]) for i in range(0, X.shape[0], 2000)])

    def bind(self, X: np.ndarray) -> None:
        self.teacher_logits = self._teacher(X)
        if self.hidden_weight > 0:
            self.teacher_hidden = hidden_activations(self.teacher, X)

    def hidden_value_and_grads(self, hidden: list[np.ndarray],
                               rows: np.ndarray | None) -> tuple[float, list[np.ndarray] | None]:
        if self.hidden_weight == 0:
            return 0.0, None
        if rows is None or self.teacher_hidden is None:
            raise ValueError("hidden-layer distillation needs the batch's rows (bind() the training input)")
        return hidden_residual_loss(hidden, [a[rows] for a in self.teacher_hidden], self.hidden_weight)

    def _targets(self, rows: np.ndarray | None) -> np.ndarray:
        if rows is None or self.teacher_logits is None:
            raise ValueError("Distillation needs the batch's rows (bind() the training input first)")
        return self.teacher_logits[rows]

    def value_and_grad(self, logits: np.ndarray, y: np.ndarray,
                       rows: np.ndarray | None) -> tuple[float, np.ndarray]:
        return distillation_loss(logits, self._targets(rows), y if self.alpha > 0 else None,
                                 output=self.output, temperature=self.temperature, alpha=self.alpha)

    def tensor(self, logits: Tensor, y: np.ndarray, rows: np.ndarray | None) -> Tensor:
        if self.hidden_weight > 0:
            raise ValueError("hidden_weight > 0 reads the hidden activations, which fit's autograd engine "
                             "does not pass to the loss: use engine='backprop' (hidden_distillation_tensor "
                             "builds the same loss for autograd)")
        return distillation_loss_tensor(logits, self._targets(rows),
                                        y if self.alpha > 0 else None, output=self.output,
                                        temperature=self.temperature, alpha=self.alpha)


def _dataset(data: Any, teacher: MLP, alpha: float) -> Dataset:
    """A Dataset from a Dataset, an ``(X, y)`` pair, or ``X`` alone (labelled by the teacher)."""
    if hasattr(data, "X") and hasattr(data, "y"):
        return data if isinstance(data, Dataset) else Dataset(np.asarray(data.X), np.asarray(data.y))
    if isinstance(data, tuple) and len(data) == 2:
        return Dataset(np.asarray(data[0]), np.asarray(data[1]))
    if alpha > 0:
        raise ValueError("alpha > 0 mixes in cross-entropy on labels: pass a Dataset or an (X, y) tuple")
    X = np.asarray(data)
    if X.ndim != 2 or X.shape[1] != teacher.sizes[0]:
        raise ValueError(f"distillation inputs must have shape (n, {teacher.sizes[0]}), got {X.shape}")
    return Dataset(X, predict(teacher, X))


def distill(model: MLP, teacher: MLP, data: Any, *, output: str = "logits", temperature: float = 1.0,
            alpha: float = 0.0, epochs: int = 1, lr: float = 1e-3, **training: Any) -> History:
    """Train the pruned ``model`` to reproduce the dense ``teacher``'s outputs, keeping every mask.

    ``finetune`` with the loss ``Distillation(teacher, output=, temperature=, alpha=)``: every step is the
    document's section 4.3, the residual ``Δy = ŷ_dense - ŷ_pruned`` on a batch, its loss's gradient
    back-propagated by hand, and an optimizer step ``w <- w - α Δw`` (mask-aware, so pruned weights stay
    exactly 0). ``data`` is a ``Dataset``, an ``(X, y)`` tuple, or just ``X`` (then the labels are the
    teacher's predictions, so ``accuracy`` in the history is the agreement with the teacher; ``alpha`` must
    be 0). ``training``: ``finetune``'s keywords (``optimizer``, ``batch_size``, ``val``, ``seed``,
    ``progress``, and ``fit``'s ``callbacks``, ``initial_epoch``, e.g. to prune while distilling).

    Shapes: data X (n, d_0) -> a ``train.History`` (``loss`` is the distillation loss).

    >>> from tinyprune.core.nn import MLP, activate
    >>> X = np.random.default_rng(0).random((64, 4)).astype(np.float32)
    >>> teacher, student = MLP([4, 8, 3], seed=0), MLP([4, 8, 3], seed=1)
    >>> before = np.mean((student(X) - teacher(X)) ** 2)
    >>> history = distill(student, teacher, X, epochs=20, batch_size=16, lr=1e-2)
    >>> bool(np.mean((student(X) - teacher(X)) ** 2) < before / 10), len(history)
    (True, 20)
    """
    loss = Distillation(teacher, output=output, temperature=temperature, alpha=alpha)
    return finetune(model, _dataset(data, teacher, alpha), epochs=epochs, lr=lr, loss=loss, **training)


__all__ = ["OUTPUTS", "Distillation", "distill", "distillation_gradients", "distillation_loss",
           "distillation_loss_tensor", "hidden_activations", "hidden_distillation_tensor",
           "hidden_residual_loss"]
