"""A ``Dataset`` of features ``X`` (n, d) and integer labels ``y`` (n,): validation, splits, minibatches.

>>> import numpy as np
>>> data = Dataset(np.eye(4, dtype=np.float32), [0, 1, 0, 1])
>>> len(data), data.num_classes
(4, 2)
>>> [yb.tolist() for _, yb in data.minibatches(3, shuffle=False)]
[[0, 1, 0], [1]]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tinyprune.core.errors import DataError
from tinyprune.core.random import Seed
from tinyprune.core.random import rng as generator

MAX_CLASSES = 2**31 - 1      # the most classes a Dataset may have (a one-hot row of more would not fit)


def _as_array(values: object, what: str) -> np.ndarray:
    # np.asarray of a ragged list raises NumPy's own ValueError; say what was wrong in our terms instead.
    try:
        return np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{what} must be an array of numbers with one row per sample, got "
                        f"{type(values).__name__} that NumPy cannot turn into one ({exc})") from None


def check_labels(y: np.ndarray | list, num_classes: int | None = None) -> tuple[np.ndarray, int]:
    """Check that ``y`` is a 1-D array of integer labels in 0..k-1; return it as int64 and k, which is
    ``num_classes`` if given, else ``y.max() + 1``. Float labels are refused: 3.7 is not a class."""
    y = _as_array(y, "labels y")
    if y.ndim != 1:
        hint = " (one-hot rows? use y.argmax(axis=1))" if y.ndim == 2 and y.shape[1] > 1 else ""
        raise DataError(f"labels y must be 1-D (n,), got shape {y.shape}{hint}")
    if y.size and not np.issubdtype(y.dtype, np.integer):        # (bool is not an np.integer: refused)
        raise DataError(f"labels y must be integers, got dtype {y.dtype}; for whole numbers use "
                        "y.astype(np.int64)")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer, type(None))):
        raise DataError(f"num_classes must be a positive int, got {num_classes!r}")
    negative = np.flatnonzero(y < 0)          # checked as given: a uint64 2**64 - 1 must not become -1
    if negative.size:
        raise DataError(f"labels must be class indices 0, 1, 2, ..., never negative; found {negative.size} "
                        f"negative, the first {y[negative[0]]} at row {negative[0]}")
    if num_classes is None and not y.size:
        raise DataError("num_classes must be given when there are no labels to count the classes from")
    k = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if not 1 <= k <= MAX_CLASSES:
        raise DataError(f"num_classes must be at least 1 and at most {MAX_CLASSES}, got {k}"
                        + (" (counted from the largest label)" if num_classes is None else ""))
    outside = np.flatnonzero(y >= k)
    if outside.size:
        raise DataError(f"labels must lie in 0..{k - 1} (num_classes={k}); "
                        f"found {outside.size} outside, the first {y[outside[0]]} at row {outside[0]}")
    return y.astype(np.int64, copy=False), k


def one_hot(y: np.ndarray | list, num_classes: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """One-hot encode integer labels: row i is all zeros but a 1 in column y[i]. Shapes: (n,) -> (n, k).
    >>> one_hot([1, 0], 3).tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    y, num_classes = check_labels(y, num_classes)
    encoded = np.zeros((y.size, num_classes), dtype=dtype)
    encoded[np.arange(y.size), y] = 1
    return encoded


def _check_features(X: np.ndarray) -> np.ndarray:
    X = _as_array(X, "features X")
    if X.ndim != 2:
        hint = " (reshape images to (n, height * width))" if X.ndim > 2 else ""
        raise DataError(f"features X must be 2-D (n, d), got shape {X.shape}{hint}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"a Dataset must not be empty, got X of shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise DataError(f"features X must be floats, got dtype {X.dtype}; e.g. scale pixels with X / 255")
    finite = np.isfinite(X)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise DataError(f"features X must be finite: {np.count_nonzero(~finite)} NaN or inf values, "
                        f"the first at row {row}, column {col} ({X[row, col]})")
    return X


class Dataset:
    """Features ``X`` (n, d), floating point and finite (not copied), with integer labels ``y`` (n,) in
    0..k-1 (stored as int64); ``num_classes`` defaults to ``y.max() + 1`` (give it for a subset)."""

    def __init__(self, X: np.ndarray, y: np.ndarray | list, num_classes: int | None = None) -> None:
        self.X = _check_features(X)
        self.y, self.num_classes = check_labels(y, num_classes)
        if self.y.shape[0] != self.X.shape[0]:
            raise DataError(f"X has {len(self.X)} rows but y has {len(self.y)} labels; they must match")

    def __len__(self) -> int:
        return self.X.shape[0]

    def __repr__(self) -> str:
        n, d = self.X.shape
        return f"Dataset(n={n}, d={d}, num_classes={self.num_classes}, X dtype={self.X.dtype})"

    def subset(self, indices: np.ndarray | list) -> Dataset:
        """The rows at ``indices`` (integer positions or a boolean mask), as a new Dataset (copied)."""
        indices = np.asarray(indices)
        return Dataset(self.X[indices], self.y[indices], num_classes=self.num_classes)

    def split(self, fraction: float, seed: Seed = 0) -> tuple[Dataset, Dataset]:
        """Split into two Datasets, the first with ``round(fraction * n)`` rows, stratified by class: each
        class goes to the first part in (nearly) the proportion ``fraction``; which rows go where is drawn
        with ``seed``; rows keep their original order.
        >>> a, b = Dataset(np.ones((10, 1)), [0, 1] * 5).split(0.6, seed=0)
        >>> len(a), len(b), np.bincount(a.y).tolist()
        (6, 4, [3, 3])
        """
        if not 0.0 < fraction < 1.0:
            raise DataError(f"split fraction must lie strictly between 0 and 1, got {fraction}")
        n_first = round(fraction * len(self))
        if n_first == 0 or n_first == len(self):
            raise DataError(f"split({fraction}) of {len(self)} rows would leave one part empty")
        first = stratified_choice(self.y, n_first, generator(seed))
        in_first = np.zeros(len(self), dtype=bool)
        in_first[first] = True
        return self.subset(in_first), self.subset(~in_first)

    def minibatches(self, batch_size: int, shuffle: bool = True,
                    rng: Seed = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(Xb, yb)`` batches covering every row once; the last batch may be smaller. With ``shuffle``
        the order is a permutation drawn from ``rng`` (a seed or Generator; the same
        Generator every epoch gives a new, reproducible order each time) and each batch is gathered by
        ``X[rows]``; without, the batches are views of ``X`` and ``y``. Shapes: Xb (b, d), yb (b,)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"batch_size must be a positive int, got {batch_size!r}")
        order = generator(rng).permutation(len(self)) if shuffle else None
        for start in range(0, len(self), batch_size):
            if order is None:
                yield self.X[start : start + batch_size], self.y[start : start + batch_size]
            else:
                rows = order[start : start + batch_size]
                yield self.X[rows], self.y[rows]

    def one_hot(self, dtype: np.dtype | type = np.float32) -> np.ndarray:
        """The labels one-hot encoded, shape (n, num_classes)."""
        return one_hot(self.y, self.num_classes, dtype=dtype)


def stratified_choice(y: np.ndarray, n_chosen: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of ``n_chosen`` rows drawn so that every class is represented in proportion.
    Class c gets ``floor(share_c)`` rows, ``share_c = n_chosen * count_c / n``; the rows still missing go
    to the classes with the largest remainders, so the total is exact."""
    classes, counts = np.unique(y, return_counts=True)
    shares = n_chosen * counts / y.size
    quota = np.floor(shares).astype(np.int64)
    by_remainder = np.argsort(-(shares - quota), kind="stable")
    quota[by_remainder[: n_chosen - quota.sum()]] += 1
    chosen = [rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c, k in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))
