"""Which rows a model trained on, so that a notebook can prove its decisions read held-out rows.

The course's rule: a split that decides anything (did pruning drop the accuracy? is it recovered?) is
made before the model it judges was trained, so none of its rows was a training row. ``fit`` records
what a model trained on; ``held_out`` refuses a split that shares a row with it. A row is known by a
digest of its pixels and its label, so a copy of a row (``Dataset.subset``, ``split``) is the same row.

>>> import numpy as np
>>> from tinyprune.data import Dataset
>>> from tinyprune.core.nn import MLP
>>> data = Dataset(np.eye(6, dtype=np.float32), [0, 1] * 3)
>>> train, val = data.split(0.5, seed=0)
>>> model = MLP([6, 2], seed=0)
>>> _ = fit(model, train, epochs=1, progress=False)
>>> held_out(model, val)                      # none of val's rows was a training row
3
>>> held_out(model, data)                     # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: 3 of the 6 rows of the validation split were training rows of this model; ...
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any

import numpy as np

_TRAINED_ON: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def row_keys(dataset: Any) -> set[bytes]:
    """One digest per row of ``dataset`` (its inputs' bytes and its label)."""
    X, y = np.ascontiguousarray(dataset.X), np.asarray(dataset.y)
    return {hashlib.blake2b(row.tobytes() + int(label).to_bytes(8, "little"), digest_size=16).digest()
            for row, label in zip(X, y)}


def record(model: Any, dataset: Any) -> None:
    """Remember that ``model`` trained on every row of ``dataset`` (added to what it trained on before)."""
    _TRAINED_ON[model] = _TRAINED_ON.get(model, frozenset()) | row_keys(dataset)


def fit(model: Any, dataset: Any, **options: Any) -> Any:
    """``tinyprune.fit(model, dataset, **options)``, recording the rows; returns its history."""
    from tinyprune.training import fit as train_fit

    history = train_fit(model, dataset, **options)
    record(model, dataset)
    return history


def held_out(model: Any, split: Any, name: str = "validation") -> int:
    """The number of rows of ``split``; ``ValueError`` if any of them was a training row of ``model``.

    A model never recorded (trained without ``rows.fit`` or ``record``) is refused too: the check
    cannot vouch for rows it knows nothing about.
    """
    if model not in _TRAINED_ON:
        raise ValueError("no training rows recorded for this model; train it with "
                         "tinyprune.exercises.rows.fit (or call rows.record) first")
    overlap = len(row_keys(split) & _TRAINED_ON[model])
    if overlap:
        raise ValueError(f"{overlap} of the {len(split)} rows of the {name} split were training rows of this "
                         f"model; hold them out (Dataset.split) before the model trains")
    return len(split)
