"""Allocation of sparsity to layers: exact in counts, the four methods by hand, then through ``prune``."""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune import prune as tpp
from tinyprune.core.nn import MLP
from tinyprune.prune import allocate, implied_sparsity, mask_stats
from tinyprune.prune.allocate import SENSITIVITY_GRID, round_counts, tolerated_sparsity
from tinyprune.testing import mlp_sizes, seeds
from tinyprune.training import evaluate


def sizes_of(model):
    return [layer.W.data.size for layer in model.layers]


@given(mlp_sizes(max_width=10), seeds, st.floats(0, 0.95), st.sampled_from(["uniform", "erk", "lamp"]))
def test_an_allocation_meets_the_overall_sparsity_exactly(sizes, seed, sparsity, method):
    model = MLP(sizes, seed=seed)
    n = sizes_of(model)
    if round(sparsity * sum(n)) > sum(n) - len(n):
        with pytest.raises(ValueError, match="keeps at least one"):
            allocate(model, sparsity, method)
        return
    mapping = allocate(model, sparsity, method)
    assert list(mapping) == [f"layers.{i}.W" for i in range(len(n))]
    counts = [round(s * size) for s, size in zip(mapping.values(), n)]
    assert sum(counts) == round(sparsity * sum(n))                    # exact, in counts
    assert all(0 <= k < size for k, size in zip(counts, n))           # no layer emptied
    assert implied_sparsity(model, mapping) == round(sparsity * sum(n)) / sum(n)
    tpp.prune(model, mapping)                                          # and prune does just that
    stats = mask_stats(model)
    assert [stats[name]["pruned"] for name in mapping] == counts


def test_uniform_is_the_sparsity_itself_where_it_divides():
    model = MLP([20, 10, 4], seed=0)                        # 200 and 40 weights
    assert allocate(model, 0.5) == {"layers.0.W": 0.5, "layers.1.W": 0.5}
    assert allocate(model, 0.0) == {"layers.0.W": 0.0, "layers.1.W": 0.0}


def test_erk_by_hand():
    """Density ε (d_in + d_out)/(d_in d_out): kept counts proportional to d_in + d_out."""
    model = MLP([100, 20, 10], seed=0)                      # 2000 and 200 weights; d_in + d_out: 120, 30
    mapping = allocate(model, 0.9, "erk")                   # 220 kept: ε = 220 / 150
    kept = [round((1 - s) * n) for s, n in zip(mapping.values(), [2000, 200])]
    assert kept == [176, 44]                                # 120 ε = 176, 30 ε = 44
    capped = allocate(MLP([1000, 4, 2], seed=0), 0.5, "erk")   # 4000 and 8 weights; 2004 kept
    assert capped["layers.1.W"] == 0.0                       # 6 ε > 8: the small layer stays dense
    assert round((1 - capped["layers.0.W"]) * 4000) == 2004 - 8


def test_lamp_allocation_is_what_global_lamp_prunes():
    model = MLP([30, 12, 8, 4], seed=1)
    mapping = allocate(model, 0.8, "lamp")
    probe = copy.deepcopy(model)
    tpp.lamp(probe, 0.8)
    stats = mask_stats(probe)
    assert [round(s * stats[name]["total"]) for name, s in mapping.items()] == \
        [stats[name]["pruned"] for name in mapping]


def test_round_counts_respects_bounds_and_total():
    assert round_counts([0.4, 0.4, 0.2], 1, [5, 5, 5]).tolist() == [1, 0, 0]     # ties: lower index
    assert round_counts([3.0, 0.0], 3, [2, 9]).tolist() == [2, 1]               # a full layer overflows
    with pytest.raises(ValueError, match="at most"):
        round_counts([1.0], 3, [2])


@pytest.fixture(scope="module")
def trained(dense, clusters):
    return dense[0], clusters[1]


def test_sensitivity_allocation_follows_the_probe(trained):
    model, validation = trained
    tolerated = tolerated_sparsity(model, validation, budget=0.01)
    baseline = evaluate(model, validation)["accuracy"]
    for name in tolerated:              # up to t_l the drop stays within budget ...
        for s in [g for g in SENSITIVITY_GRID if g <= tolerated[name]]:
            probe = copy.deepcopy(model)
            tpp.prune(probe, {name: s})
            assert evaluate(probe, validation)["accuracy"] >= baseline - 0.01
        following = [g for g in SENSITIVITY_GRID if g > tolerated[name]]
        if following:                                      # ... and at the next grid point it does not
            probe = copy.deepcopy(model)
            tpp.prune(probe, {name: following[0]})
            assert evaluate(probe, validation)["accuracy"] < baseline - 0.01
    n = np.array(sizes_of(model))
    density = 1 - np.array(list(tolerated.values()))
    for target in (0.3, 0.9):
        mapping = allocate(model, target, "sensitivity", validation, budget=0.01)
        s = np.array(list(mapping.values()))
        assert round(float(np.sum(np.round(s * n)))) == round(target * n.sum())
        beta = np.log(1 - s) / np.log(density)             # one power of the densities for every layer
        assert np.allclose(beta, beta[0], rtol=0.05)


def test_allocate_refuses_bad_input(trained):
    model, validation = trained
    with pytest.raises(ValueError, match="unknown allocation method"):
        allocate(model, 0.5, "magnitude")
    with pytest.raises(ValueError, match="needs validation rows"):
        allocate(model, 0.5, "sensitivity")
    with pytest.raises(ValueError, match="budget"):
        allocate(model, 0.5, "sensitivity", validation, budget=-0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        allocate(model, 1.0)
    assert all(p.mask is None for p in model.parameters())
