"""Shared test set-up: the hypothesis profile (repeatable "ci" under CI, else "dev") and small tasks."""

import os

import numpy as np
import pytest
from hypothesis import settings

import tinyprune.testing  # noqa: F401  (registers the "ci" and "dev" profiles)
from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.training import WeightSnapshot, fit

settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="module")
def clusters():
    """Four Gaussian clusters in 20 dimensions: a small seeded task a 20-32-32-4 MLP learns to ~96 %."""
    g = np.random.default_rng(0)
    y = np.arange(1200) % 4
    X = (0.8 * g.normal(size=(4, 20))[y] + g.normal(size=(1200, 20))).astype(np.float32)
    return Dataset(X[:800], y[:800], 4), Dataset(X[800:], y[800:], 4)


@pytest.fixture(scope="module")
def dense(clusters):
    """A 20-32-32-4 MLP trained 30 epochs on ``clusters``, and the snapshot of its weights at epochs 0, 1."""
    model = MLP([20, 32, 32, 4], seed=0)
    snapshot = WeightSnapshot(epochs=[0, 1])
    fit(model, clusters[0], epochs=30, batch_size=32, progress=False, callbacks=[snapshot])
    return model, snapshot
