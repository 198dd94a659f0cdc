"""The engines of ``fit`` made fast: the same batches and gradients as ``tinyprune.core.train``'s.

- ``batches``: each batch is gathered into one buffer reused for the whole epoch (``np.take(X, rows,
  out=)``) instead of a new array per batch; same rows, same order, same values.
- ``loss_and_grad``: for the cross-entropy on labels, value and gradient share one stable softmax
  (``cross_entropy_and_grad``), bit-identical to the core's two functions.
- ``backward`` (engine ``"autograd"``): ``tinyprune.fast.autograd.backward``, without the leaves' copies.

``tests/test_fast_paths.py`` proves each equal to the plain one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tinyprune.core import losses, train
from tinyprune.core.autograd import Tensor
from tinyprune.core.batches import Dataset
from tinyprune.fast import autograd


def cross_entropy_and_grad(logits: np.ndarray, labels: Any) -> tuple[float, np.ndarray]:
    """``losses.cross_entropy`` and ``losses.cross_entropy_grad`` at once, sharing one stable softmax.

    With ``s = z - max_k z_k``: ``L = (1/n) sum_i (log sum_k e^{s_ik} - s_{i,y_i})`` and
    ``dL/dz = (e^s / sum_k e^s - onehot(y)) / n``; the same numbers as the two functions, bit for bit,
    for one ``exp`` and one check of the inputs. Shapes: logits (n, k), labels (n,) -> (float, (n, k)).
    """
    losses.check_logits(logits)
    labels = losses.check_labels(labels, logits.shape[0], logits.shape[1])
    n, rows = logits.shape[0], np.arange(logits.shape[0])
    # max z sits at argmax z: read it there (a row-wise max over 10 columns is 4x slower in NumPy)
    shifted = logits - logits[rows, logits.argmax(axis=1)][:, None]     # s = z - max_k z_k
    grad = np.exp(shifted)
    total = grad.sum(axis=1, keepdims=True)                              # sum_k e^{s_k}
    value = float(-(shifted[rows, labels] - np.log(total[:, 0])).sum() / n)   # mean of -log p_y
    grad /= total                                                        # p = softmax(z)
    grad[rows, labels] -= 1                                              # p - onehot(y)
    grad /= n
    return value, grad


class FastBackprop(train.Backprop):
    """``core.train.Backprop`` with batches gathered into one buffer and the fused cross-entropy."""

    def batches(self, data: Dataset, batch_size: int, rng: np.random.Generator) -> Iterator[train.Batch]:
        """The batches of the plain engine, each gathered into one buffer reused for the whole epoch.

        The buffer is overwritten by the next batch: a step must not keep it.
        """
        if type(data).minibatches is not Dataset.minibatches:    # a Dataset-like object batches itself
            yield from super().batches(data, batch_size, rng)
            return
        order = rng.permutation(len(data))
        buffer = np.empty((min(batch_size, len(data)), data.X.shape[1]), dtype=data.X.dtype)
        for start in range(0, len(data), batch_size):
            rows = order[start:start + batch_size]
            # mode="clip": rows of a permutation are in range, and "raise" would copy through a temporary
            yield np.take(data.X, rows, axis=0, out=buffer[:rows.size], mode="clip"), data.y[rows], rows

    def loss_and_grad(self, loss: losses.Loss, logits: np.ndarray, y: np.ndarray,
                      rows: np.ndarray | None) -> tuple[float, np.ndarray]:
        if type(loss) is losses.Loss and loss.name == "cross_entropy":
            return cross_entropy_and_grad(logits, y)
        return loss.value_and_grad(logits, y, rows)


class FastAutograd(FastBackprop, train.Autograd):
    """``core.train.Autograd`` with the fast batches and ``fast.autograd.backward``."""

    def backward(self, value: Tensor) -> None:
        autograd.backward(value)


ENGINES: dict[str, train.Backprop] = {"backprop": FastBackprop(), "autograd": FastAutograd()}
