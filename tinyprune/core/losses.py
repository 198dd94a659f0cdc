"""Losses and their gradients: the document's squared error and softmax cross-entropy.

Each loss exists twice, side by side: on ``Tensor``s (so autograd differentiates it) and as a
closed-form gradient on arrays (what the hand-derived backward pass starts from). Derived in
``notebooks/01_mlp_and_losses.ipynb`` and ``notebooks/02_backprop_by_hand.ipynb``; symbols as in
``notebooks/README.md`` (``Y = onehot(y)``, ``K`` classes, ``P = softmax(z)``).

>>> z = np.array([[2.0, 0.0, -1.0]])
>>> round(cross_entropy(z, np.array([0])), 4)
0.1698
>>> abs(float(cross_entropy_grad(z, np.array([0])).sum())) < 1e-12   # each row of P - Y sums to 0
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyprune.core.autograd import Tensor
from tinyprune.core.batches import one_hot
from tinyprune.core.errors import ShapeError

LOSSES = ("cross_entropy", "squared_error")
REDUCTIONS = ("sum", "mean")


def check_finite(name: str, values: np.ndarray) -> None:
    """Raise ``ValueError`` if ``values`` holds NaN or inf (a loss of them would be meaningless)."""
    if not np.isfinite(values).all():
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected finite numbers")


def check_labels(labels: Any, n: int, k: int) -> np.ndarray:
    """Return ``labels`` as an integer array after checking: shape ``(n,)``, values in ``0..k-1``."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":                # signed or unsigned integers (not bool)
        raise ValueError(f"labels must be integers (class indices 0..{k - 1}), got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ShapeError(f"expected one label per row: shape ({n},), got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in 0..{k - 1}, got values from {labels.min()} to {labels.max()}")
    return labels


def check_logits(logits: np.ndarray) -> None:
    if logits.ndim != 2:
        raise ShapeError(f"logits must be 2-D (rows, classes), got shape {logits.shape}")
    check_finite("logits", logits)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """``p_j = e^{z_j - z_max} / sum_k e^{z_k - z_max}``, ``z_max = max_k z_k`` (the shift keeps e^. finite).
    >>> softmax(np.array([1000.0, 1000.0]))
    array([0.5, 0.5])
    """
    shifted = z - np.max(z, axis=axis, keepdims=True)
    exps = np.exp(shifted)
    return exps / exps.sum(axis=axis, keepdims=True)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log p_j = (z_j - z_max) - log sum_k e^{z_k - z_max}``: log-sum-exp, finite for any finite z.
    >>> log_softmax(np.array([0.0, -1e4]))[1]
    np.float64(-10000.0)
    """
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_backward(probabilities: np.ndarray, grad_probabilities: np.ndarray) -> np.ndarray:
    """Carry ``dL/dp`` back through ``p = softmax(z)``: ``dL/dz = p * (g - sum_j g_j p_j)``, that is ``J^T g``
    with the softmax Jacobian ``J = diag(p) - p p^T``, row by row. Shapes: (n, k)."""
    inner = np.sum(grad_probabilities * probabilities, axis=1, keepdims=True)
    return probabilities * (grad_probabilities - inner)


def cross_entropy(logits: Tensor | np.ndarray, labels: Any) -> Tensor | float:
    """Mean softmax cross-entropy ``L = -(1/n) sum_i log softmax(z_i)[y_i]``: a scalar ``Tensor`` from a
    ``Tensor`` (for autograd), a ``float`` from an array. Shapes: logits (n, k), labels (n,) in ``0..k-1``."""
    data = logits.data if isinstance(logits, Tensor) else np.asarray(logits)
    check_logits(data)
    labels = check_labels(labels, data.shape[0], data.shape[1])
    if isinstance(logits, Tensor):
        return -logits.log_softmax().pick(labels).mean()
    return float(-log_softmax(data)[np.arange(data.shape[0]), labels].mean())


def cross_entropy_grad(logits: np.ndarray, labels: Any) -> np.ndarray:
    """dL/dz of the mean softmax cross-entropy: with P = softmax(z), Y = onehot(y), dL/dz = (P - Y) / n
    (notebooks/02_backprop_by_hand.ipynb, "the softmax meets the log"). Shapes: (n, k), (n,) -> (n, k)."""
    check_logits(logits)
    labels = check_labels(labels, logits.shape[0], logits.shape[1])
    grad = softmax(logits)
    grad[np.arange(logits.shape[0]), labels] -= 1
    grad /= logits.shape[0]
    return grad


def _check_pair(y_hat: np.ndarray, target: np.ndarray, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")
    if y_hat.shape != target.shape:
        raise ShapeError(f"prediction and target shapes differ: {y_hat.shape} vs {target.shape}")
    check_finite("prediction", y_hat)
    check_finite("target", target)


def _rows(values: np.ndarray) -> int:
    return values.shape[0] if values.ndim else 1


def squared_error(y_hat: Tensor | np.ndarray, target: Any, reduction: str = "sum") -> Tensor | float:
    """The document's loss ``L = 1/2 sum_i (y_hat_i - y_i)^2`` (its section 4.1; the 1/2 makes the gradient
    ``y_hat - y``). ``reduction="mean"`` divides by the rows n. Tensor in -> Tensor out; array in -> float."""
    target_data = target.data if isinstance(target, Tensor) else np.asarray(target)
    data = y_hat.data if isinstance(y_hat, Tensor) else np.asarray(y_hat)
    _check_pair(data, target_data, reduction)
    scale = 0.5 / (_rows(data) if reduction == "mean" else 1)
    if isinstance(y_hat, Tensor):
        return ((y_hat - target) ** 2).sum() * scale
    return float(np.sum((data - target_data) ** 2) * scale)


def squared_error_grad(y_hat: np.ndarray, target: Any, reduction: str = "sum") -> np.ndarray:
    """``dL/dy_hat = y_hat - y`` (``reduction="sum"``) or ``(y_hat - y) / n`` (``"mean"``). Shapes kept."""
    target = np.asarray(target)
    _check_pair(y_hat, target, reduction)
    grad = y_hat - target
    return grad / _rows(y_hat) if reduction == "mean" else grad


def _class_targets(labels: Any, logits: np.ndarray) -> np.ndarray:
    """Integer labels become one-hot rows; a float array of the logits' shape is used as given."""
    labels = np.asarray(labels)
    if np.issubdtype(labels.dtype, np.integer) or labels.ndim == 1:
        return one_hot(check_labels(labels, logits.shape[0], logits.shape[1]), logits.shape[1], logits.dtype)
    return labels


def check_loss_name(name: str) -> str:
    """Return ``name`` if it is a known loss, else raise ``ValueError`` listing them."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")
    return name


def loss_and_grad(name: str, logits: np.ndarray, y: Any) -> tuple[float, np.ndarray]:
    """Value and ``dL/dz`` at the logits ``z`` for a classifier's loss, in closed form.

    - ``"cross_entropy"``: mean over rows of ``-log softmax(z)[y]``; ``dL/dz = (p - onehot(y)) / n``.
    - ``"squared_error"``: the document's loss on the softmax outputs, mean over rows of
      ``1/2 ||p - Y||^2`` with ``Y = onehot(y)`` (or ``y`` itself if it is a float ``(n, K)`` target);
      ``dL/dz = softmax_backward(p, (p - Y) / n)``. Shapes: logits (n, k) -> (float, (n, k))."""
    if check_loss_name(name) == "cross_entropy":
        return cross_entropy(logits, y), cross_entropy_grad(logits, y)
    check_logits(logits)
    probabilities = softmax(logits)
    target = _class_targets(y, logits)
    value = squared_error(probabilities, target, reduction="mean")
    return value, softmax_backward(probabilities, squared_error_grad(probabilities, target, "mean"))


def loss_tensor(name: str, logits: Tensor, y: Any) -> Tensor:
    """The same losses as ``loss_and_grad`` built from ``Tensor`` operations (for autograd)."""
    check_loss_name(name)
    if name == "cross_entropy":
        return cross_entropy(logits, y)
    check_logits(logits.data)
    return squared_error(logits.log_softmax().exp(), _class_targets(y, logits.data), reduction="mean")


class Loss:
    """A training loss as a part of ``train.fit``: ``Loss("cross_entropy")`` or ``Loss("squared_error")`` on
    the labels (``loss_and_grad``, ``loss_tensor``), or a subclass of yours (``recover.Distillation`` is one).

    ``fit`` calls ``bind(X)`` once with the training input (per-row targets are computed there), then per
    batch ``value_and_grad(logits, y, rows)`` (engine ``"backprop"``) or ``tensor(logits, y, rows)``
    (``"autograd"``), ``rows`` the batch's rows of ``X`` (or ``None``); ``evaluate_as`` names the label loss
    that ``fit`` reports on the validation rows.
    >>> value, grad = Loss("cross_entropy").value_and_grad(np.zeros((2, 2)), np.array([0, 1]), None)
    >>> round(value, 4), grad.shape
    (0.6931, (2, 2))
    """

    name = evaluate_as = "cross_entropy"

    def __init__(self, name: str = "cross_entropy") -> None:
        self.name = self.evaluate_as = check_loss_name(name)

    def bind(self, X: np.ndarray) -> None:
        """Prepare per-row targets for the training input ``X`` (n, d); nothing for a label loss."""

    def value_and_grad(self, logits: np.ndarray, y: np.ndarray,
                       rows: np.ndarray | None) -> tuple[float, np.ndarray]:
        return loss_and_grad(self.name, logits, y)

    def tensor(self, logits: Tensor, y: np.ndarray, rows: np.ndarray | None) -> Tensor:
        return loss_tensor(self.name, logits, y)

    def hidden_value_and_grads(self, hidden: list[np.ndarray],
                               rows: np.ndarray | None) -> tuple[float, list[np.ndarray] | None]:
        """A term of the loss on the hidden activations ``A_1..A_{L-1}`` and ``∂L/∂A_l`` (for
        ``backprop.backward(..., dhidden=)``); most losses read only the logits: ``(0.0, None)``."""
        return 0.0, None

    def __repr__(self) -> str:
        return f"Loss({self.name!r})"


def as_loss(loss: str | Loss) -> Loss:
    """A ``Loss`` part from a name of ``LOSSES`` or a ``Loss`` as it is; anything else is refused.
    >>> as_loss("squared_error")
    Loss('squared_error')
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        return Loss(loss)
    raise ValueError(f"loss must be one of {LOSSES} or a tinyprune.core.losses.Loss, "
                     f"got {type(loss).__name__}")
