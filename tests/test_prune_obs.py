"""OBS as a criterion of ``prune``: bit-identical to the code before the move, per-unit counts, refusals."""

import copy
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune import prune as tpp
from tinyprune.core.nn import MLP
from tinyprune.prune.obs import obs_reference
from tinyprune.testing import mlp_sizes, seeds

REFERENCE = Path(__file__).parent / "data" / "obs_reference.npz"


@pytest.fixture(scope="module")
def reference():
    """Weights and masks that ``obs_prune`` and ``experiment._prune_to`` gave at commit 93d992c,
    before OBS moved to ``prune/obs.py`` (model ``MLP([12, 8, 6, 4], seed=3)``, float32)."""
    with np.load(REFERENCE) as stored:
        return {key: stored[key] for key in stored.files}


def assert_matches(model, reference, tag):
    for name, p in model.named_parameters():
        assert np.array_equal(p.data, reference[f"{tag}/{name}/data"]), (tag, name)
        mask = np.ones(p.shape, bool) if p.mask is None else p.mask
        assert np.array_equal(mask, reference[f"{tag}/{name}/mask"]), (tag, name)


def test_the_reference_obs_is_bit_identical_to_the_code_before_the_move(reference, monkeypatch):
    """``obs_reference`` is the per-unit algorithm that was ``obs_prune`` at 93d992c; through the verb too."""
    monkeypatch.setattr(tpp.obs, "obs_prune", obs_reference)
    X = reference["X"]
    model = MLP([12, 8, 6, 4], seed=3)
    obs_reference(model, X, 0.5)
    assert_matches(model, reference, "layer50")
    model = MLP([12, 8, 6, 4], seed=3)                     # the experiment's global OBS, now prune's
    tpp.prune(model, 0.7, "obs", scope="global", data=X, damping=0.01)
    assert_matches(model, reference, "global70")
    model = MLP([12, 8, 6, 4], seed=3)
    tpp.prune(model, 0.6, "obs", scope="layer", data=(X, reference["y"]), damping=0.03)
    assert_matches(model, reference, "layerfn60")
    model = MLP([12, 8, 6, 4], seed=3)
    tpp.magnitude(model, 0.3)
    tpp.prune(model, {"layers.0.W": 0.6, "layers.2.W": 0.3}, "obs", data=X, block_size=1, damping=0.02)
    assert_matches(model, reference, "mapped")


def test_a_different_result_is_noticed(reference, monkeypatch):
    """The comparison above can fail: another damping gives other weights."""
    monkeypatch.setattr(tpp.obs, "obs_prune", obs_reference)
    model = MLP([12, 8, 6, 4], seed=3)
    tpp.prune(model, 0.7, "obs", scope="global", data=reference["X"], damping=0.02)
    with pytest.raises(AssertionError):
        assert_matches(model, reference, "global70")


@given(mlp_sizes(max_width=8), seeds, st.floats(0, 0.95), st.sampled_from(["global", "layer"]))
def test_obs_counts_per_unit_and_only_loses_entries(sizes, seed, sparsity, scope):
    generator = np.random.default_rng(seed)
    model = MLP(sizes, seed=seed, dtype=np.float64)
    X = generator.normal(size=(30, sizes[0]))
    tpp.random(model, 0.2, scope="layer", seed=seed)
    before = {i: layer.W.mask.copy() for i, layer in enumerate(model.layers)}
    probe = copy.deepcopy(model)
    try:
        masks = tpp.prune(model, sparsity, "obs", scope, data=X)
    except ValueError as error:
        assert "no weights" in str(error)
        return
    if scope == "global":
        tpp.magnitude(probe, sparsity, scope="global")
        shares = [1 - float(layer.W.mask.mean()) for layer in probe.layers]
    else:
        shares = [sparsity] * len(model.layers)
    for index, layer in enumerate(model.layers):
        mask = masks[f"layers.{index}.W"]
        assert mask is layer.W.mask and not np.any(mask & ~before[index])
        d = layer.W.shape[0]
        expected = np.maximum(round(shares[index] * d), (~before[index]).sum(axis=0))
        assert np.array_equal((~mask).sum(axis=0), expected)          # d - round(s·d) kept per unit
        assert np.all(layer.W.data[~mask] == 0) and mask.any()


def test_obs_refusals_change_nothing():
    model = MLP([4, 3, 2], seed=0)
    X = np.random.default_rng(0).normal(size=(10, 4))
    with pytest.raises(ValueError, match="single weights"):
        tpp.prune(model, 0.5, "obs", structure="blocks", data=X, block=(2, 2))
    with pytest.raises(ValueError, match="needs calibration data"):
        tpp.prune(model, 0.5, "obs")
    with pytest.raises(ValueError, match="prune_biases"):
        tpp.prune(model, 0.5, "obs", data=X, prune_biases=True)
    with pytest.raises(ValueError, match="no weights"):
        tpp.prune(MLP([1, 3, 2]), 0.6, "obs", scope="layer", data=np.ones((5, 1)))
    with pytest.raises(ValueError, match="unknown layer"):
        tpp.prune(model, {"layers.7.W": 0.5}, "obs", data=X)
    assert all(p.mask is None for p in model.parameters())


def test_obs_saliency_by_hand():
    """One unit, two inputs: H = Ã^T Ã / n + λ I, L_q = w_q² / [H⁻¹]_qq, and 0 for a pruned weight."""
    model = MLP([2, 1], seed=0, dtype=np.float64)
    model.layers[0].W.data[...] = [[2.0], [-1.0]]
    model.layers[0].b.data[...] = [0.5]
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    A_tilde = np.hstack([X, np.ones((4, 1))])
    H = A_tilde.T @ A_tilde / 4 + 0.1 * np.mean(np.sum(X**2, axis=0) / 4) * np.eye(3)
    diagonal = np.diag(np.linalg.inv(H))
    scores = tpp.obs.saliency(model, X, damping=0.1)
    assert np.allclose(scores["layers.0.W"].ravel(), [4.0 / diagonal[0], 1.0 / diagonal[1]])
    assert np.allclose(scores["layers.0.b"], 0.25 / diagonal[2])
    through_the_verb = tpp.core.weight_scores(model, "obs", X, damping=0.1)
    assert np.allclose(through_the_verb["layers.0.W"], scores["layers.0.W"])
