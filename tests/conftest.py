"""Shared test set-up: the hypothesis profile (repeatable "ci" under CI, else "dev"), small tasks, and
one execution per notebook for the whole session (nbmake's items and the rules on their outputs)."""

import importlib.util
import os
from pathlib import Path

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


# ------------------------------------------------------------------ one execution per notebook
# The notebooks run once per session: ``executed_notebook`` (rule (a) of test_notebook_rules reads the
# outputs) and nbmake's own items (``--nbmake``) share one cache, so reading the outputs costs no run.
_EXECUTED: dict = {}


def pytest_configure(config: pytest.Config) -> None:
    """Route nbmake's ``NotebookRun.execute`` through the session's cache (once per notebook)."""
    try:
        from nbmake.nb_run import NotebookRun
    except ImportError:                       # no nbmake: the notebooks are not run by this session
        return
    if getattr(NotebookRun.execute, "cached", False):
        return
    original = NotebookRun.execute

    def execute(self):
        key = Path(self.filename).resolve()
        if key not in _EXECUTED:
            _EXECUTED[key] = original(self)
        return _EXECUTED[key]

    execute.cached = True
    NotebookRun.execute = execute


@pytest.fixture(scope="session")
def executed_notebook(request: pytest.FixtureRequest):
    """``executed_notebook(path)`` -> the notebook run by nbmake (cached: nbmake's item reuses it).

    Fails the test with the notebook's own error if a cell raised."""
    nb_run = pytest.importorskip("nbmake.nb_run")
    option = request.config.option

    def run(path: Path):
        result = nb_run.NotebookRun(Path(path).resolve(), getattr(option, "nbmake_timeout", 300),
                                    kernel=getattr(option, "nbmake_kernel", None)).execute()
        if result.error is not None:
            pytest.fail(f"{Path(path).name} did not run: cell {result.error.failing_cell_index}: "
                        f"{result.error.summary}")
        return result.nb
    return run


# ------------------------------------------------------------------ optional frameworks
@pytest.fixture(scope="session")
def keras():
    """Keras 3 for the optional interop tests (skipped when absent), on PyTorch when no backend is named
    and TensorFlow (Keras's default) is absent."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    if ("KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None
            and importlib.util.find_spec("torch") is not None):
        os.environ["KERAS_BACKEND"] = "torch"
    return pytest.importorskip("keras")
