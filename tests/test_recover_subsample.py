"""Calibration subsets of the closed-form recoveries are random rows, not the first ones."""

import numpy as np
import pytest

from tinyprune.core.nn import MLP
from tinyprune.prune.obs import obs_prune
from tinyprune.recover import reconstruct


def sorted_by_class(n=400, d=6, k=4):
    X = np.repeat(np.arange(k, dtype=np.float64), n // k)[:, None] + np.zeros((n, d))
    return X + np.random.default_rng(0).normal(scale=0.1, size=(n, d))


def test_subsample_spans_a_class_sorted_dataset_and_is_seeded():
    from tinyprune.recover.reconstruct import _subsample
    X = sorted_by_class()
    rows = _subsample(X, 40, seed=3)
    assert rows.shape == (40, 6)
    assert len(np.unique(np.round(rows[:, 0]))) == 4          # every class present, not only the first
    np.testing.assert_array_equal(rows, _subsample(X, 40, seed=3))
    assert not np.array_equal(rows, _subsample(X, 40, seed=4))
    assert _subsample(X, None, 0) is X and _subsample(X, 10_000, 0) is X


def test_max_samples_must_be_positive():
    model, dense = MLP([6, 5, 3], seed=0), MLP([6, 5, 3], seed=0)
    with pytest.raises(ValueError, match="max_samples"):
        reconstruct(model, dense, sorted_by_class(), max_samples=0)


def test_obs_and_reconstruct_accept_max_samples_with_seed():
    X = sorted_by_class()
    model = MLP([6, 5, 3], seed=0, dtype=np.float64)
    dense = MLP([6, 5, 3], seed=0, dtype=np.float64)
    masks = obs_prune(model, X, 0.5, max_samples=50, seed=1)
    assert all(m.dtype == bool for m in masks.values())
    report = reconstruct(model, dense, X, max_samples=50, seed=1)
    assert report.samples == 50
