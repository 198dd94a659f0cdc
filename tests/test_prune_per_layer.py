"""Sparsity per layer: a mapping wherever a sparsity is accepted, its laws, and the sparsity it implies."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune import prune as tpp
from tinyprune.core.nn import MLP
from tinyprune.prune import mask_stats
from tinyprune.prune.core import hidden_alive
from tinyprune.testing import mlp_sizes, seeds


@st.composite
def mapped_models(draw, max_width=8):
    sizes = draw(mlp_sizes(max_width=max_width))
    names = [f"layers.{i}.W" for i in range(len(sizes) - 1)]
    chosen = draw(st.lists(st.sampled_from(names), unique=True))
    mapping = {name: draw(st.floats(0, 0.95)) for name in chosen}
    return MLP(sizes, seed=draw(seeds), dtype=np.float64), mapping


def pruned(model):
    stats = mask_stats(model)
    names = [f"layers.{i}.W" for i in range(len(model.layers))]
    return {name: stats.get(name, {"pruned": 0})["pruned"] for name in names}


@given(mapped_models(), st.sampled_from(["magnitude", "random", "lamp"]))
def test_a_mapping_prunes_each_layer_exactly_and_the_rest_not_at_all(case, criterion):
    model, mapping = case
    sizes = {f"layers.{i}.W": layer.W.data.size for i, layer in enumerate(model.layers)}
    try:
        tpp.prune(model, mapping, criterion)
    except ValueError as error:
        assert "no weights at all" in str(error)
        return
    counts = pruned(model)
    for name, size in sizes.items():
        assert counts[name] == round(mapping.get(name, 0.0) * size)
    assert sum(counts.values()) / sum(sizes.values()) == tpp.implied_sparsity(model, mapping)


@given(mapped_models(), st.floats(0, 0.45))
def test_masks_only_lose_entries_under_a_mapping(case, first):
    model, mapping = case
    tpp.random(model, first, scope="layer")
    before = {name: p.mask.copy() for name, p in model.named_parameters() if p.mask is not None}
    counts_before = pruned(model)
    try:
        tpp.prune(model, mapping)
    except ValueError:
        return
    params = dict(model.named_parameters())
    for name, mask in before.items():
        assert not np.any(params[name].mask & ~mask)
        assert pruned(model)[name] == max(counts_before[name], round(mapping.get(name, 0.0) * mask.size))


@given(mlp_sizes(max_width=8), seeds)
def test_an_all_zero_or_empty_mapping_is_the_identity(sizes, seed):
    model = MLP(sizes, seed=seed, dtype=np.float64)
    X = np.random.default_rng(seed).normal(size=(5, sizes[0]))
    before = model(X)
    tpp.prune(model, {})
    tpp.prune(model, {f"layers.{i}.W": 0.0 for i in range(len(sizes) - 1)}, scope="layer")
    assert np.array_equal(model(X), before)
    assert sum(pruned(model).values()) == 0


def test_neurons_take_a_mapping_of_hidden_layers():
    model = MLP([6, 8, 10, 3], seed=0)
    tpp.prune(model, {"layers.1": 0.5}, "l2", structure="neurons")
    alive = hidden_alive(model)
    assert alive["layers.0"].all() and int((~alive["layers.1"]).sum()) == 5
    with pytest.raises(ValueError, match="unknown hidden layer"):
        tpp.prune(model, {"layers.0.W": 0.5}, structure="neurons")


def test_unknown_names_and_bad_values_are_refused_before_anything_changes():
    model = MLP([4, 3, 2], seed=0)
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['layers.5.W'\]"):
        tpp.prune(model, {"layers.5.W": 0.5})
    with pytest.raises(ValueError, match="unknown layer"):
        tpp.prune(model, {"layers.0.b": 0.5})                 # biases only with prune_biases=True
    with pytest.raises(ValueError, match="unknown layer"):
        tpp.prune(model, {"layers.1.W": 0.5}, include_output=False)
    with pytest.raises(ValueError, match="'layers.0.W' must lie in"):
        tpp.prune(model, {"layers.0.W": 1.0})
    with pytest.raises(ValueError, match="'layers.0.W' must be a number"):
        tpp.prune(model, {"layers.0.W": "0.5"})
    with pytest.raises(ValueError, match="per-layer mapping does not apply"):
        tpp.prune(MLP([8, 4, 2]), {"layers.0.W": 0.5}, structure="n:m")
    assert all(p.mask is None for p in model.parameters())
    tpp.prune(model, {"layers.0.b": 0.5}, prune_biases=True)
    assert pruned(model)["layers.0.W"] == 0 and int((~model.layers[0].b.mask).sum()) == 2


def test_implied_sparsity_by_hand():
    model = MLP([10, 4, 5], seed=0)                  # 40 and 20 weights
    assert tpp.implied_sparsity(model, {"layers.0.W": 0.5, "layers.1.W": 0.25}) == 25 / 60
    assert tpp.implied_sparsity(model, {"layers.1.W": 0.33}) == 7 / 60      # round(6.6) = 7
    assert tpp.implied_sparsity(model, 0.5) == 0.5
    with pytest.raises(ValueError, match="unknown layer"):
        tpp.implied_sparsity(model, {"layers.2.W": 0.5})


def test_short_forms_take_a_mapping():
    model = MLP([8, 8, 4], seed=0)
    tpp.magnitude(model, {"layers.0.W": 0.75})
    X = np.random.default_rng(0).normal(size=(10, 8))
    y = np.arange(10) % 4
    tpp.taylor(model, {"layers.1.W": 0.5}, data=(X, y))
    counts = pruned(model)
    assert counts == {"layers.0.W": 48, "layers.1.W": 16}
