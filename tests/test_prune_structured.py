"""Structured pruning: whole neurons, N:M groups, and compaction to a smaller dense MLP."""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune.core.nn import MLP
from tinyprune.prune import NEURON_CRITERIA, compact, compaction_report, core, prune
from tinyprune.prune.core import hidden_alive
from tinyprune.testing import mlp_sizes, seeds


def make(sizes, seed, n=10):
    generator = np.random.default_rng(seed)
    model = MLP(sizes, seed=generator, dtype=np.float64)
    for layer in model.layers:
        layer.b.data[...] = generator.uniform(-0.5, 0.5, size=layer.b.shape)
    return model, generator.normal(size=(n, sizes[0])), generator.integers(0, sizes[-1], size=n)


def check_neuron_masks(model):
    """Removed neurons have their column, bias entry and outgoing row masked and zero."""
    alive = hidden_alive(model)
    for index in range(len(model.layers) - 1):
        gone = ~alive[f"layers.{index}"]
        W, b, W_next = model.layers[index].W, model.layers[index].b, model.layers[index + 1].W
        if gone.any():
            assert not W.mask[:, gone].any() and not b.mask[gone].any() and not W_next.mask[gone, :].any()
            assert np.all(W.data[:, gone] == 0) and np.all(b.data[gone] == 0)
            assert np.all(W_next.data[gone] == 0)
    return alive


@given(mlp_sizes(min_hidden=1, max_hidden=3, max_width=8), seeds, st.floats(0, 0.9),
       st.sampled_from(tuple(NEURON_CRITERIA)), st.sampled_from(["global", "layer"]))
def test_neuron_pruning_counts_and_masks(sizes, seed, sparsity, criterion, scope):
    model, X, y = make(sizes, seed)
    hidden = sizes[1:-1]
    try:
        prune(model, sparsity, criterion, scope, structure="neurons", data=(X, y))
    except ValueError as error:
        assert "every neuron" in str(error)
        return
    alive = check_neuron_masks(model)
    removed = [int((~alive[f"layers.{i}"]).sum()) for i in range(len(hidden))]
    if scope == "global":
        assert sum(removed) == round(sparsity * sum(hidden))
    else:
        assert removed == [round(sparsity * h) for h in hidden]
    assert all(a.any() for a in alive.values())
    assert model.layers[0].W.mask.any(axis=1).all()               # no input unit is ever removed
    assert model.layers[-1].b.mask is None                         # nor an output unit


@given(mlp_sizes(min_hidden=1, max_hidden=3, max_width=8), seeds, st.floats(0, 0.9), st.floats(0, 0.9))
def test_neuron_pruning_again_counts_the_total(sizes, seed, s1, s2):
    model, _, _ = make(sizes, seed)
    try:
        core.neurons(model, s1, scope="global")
        first = {k: v.copy() for k, v in hidden_alive(model).items()}
        core.neurons(model, s2, "l1_out", scope="global")
    except ValueError as error:
        assert "every neuron" in str(error)
        return
    alive = hidden_alive(model)
    assert all(not np.any(alive[k] & ~first[k]) for k in first)
    total = sum(sizes[1:-1])
    assert sum(int((~a).sum()) for a in alive.values()) == max(round(s1 * total), round(s2 * total))


@given(mlp_sizes(min_hidden=1, max_hidden=3, max_width=8), seeds, st.floats(0, 0.9))
def test_compact_keeps_the_outputs_and_counts(sizes, seed, sparsity):
    model, X, _ = make(sizes, seed)
    try:
        core.neurons(model, sparsity, "l2", scope="layer")
    except ValueError:
        return
    alive = [sizes[0]] + [int(hidden_alive(model)[f"layers.{i}"].sum()) for i in range(len(sizes) - 2)] + \
        [sizes[-1]]
    before = copy.deepcopy(model)
    small = compact(model)
    np.testing.assert_allclose(small(X), model(X), rtol=1e-10, atol=1e-10)
    # the count equals the entries of the surviving rows and columns; dead-in-other-ways units may go too
    expected = sum(a * b + b for a, b in zip(alive[:-1], alive[1:]))
    assert sum(p.data.size for p in small.parameters()) <= expected
    if all(np.all(layer.W.data[:, layer.b.mask] != 0) for layer in model.layers[:-1]):
        assert small.sizes == alive and sum(p.data.size for p in small.parameters()) == expected
    for p, q in zip(model.parameters(), before.parameters()):       # the model is left as it was
        assert np.array_equal(p.data, q.data)


@given(mlp_sizes(min_hidden=1, max_hidden=3, max_width=8), seeds, st.floats(0, 0.95))
def test_compact_after_unstructured_pruning_folds_constant_neurons(sizes, seed, sparsity):
    model, X, _ = make(sizes, seed)
    try:
        prune(model, sparsity, "random", scope="layer", seed=seed)
    except ValueError:
        return
    small = compact(model)
    np.testing.assert_allclose(small(X), model(X), rtol=1e-9, atol=1e-9)
    assert all(a <= b for a, b in zip(small.sizes, model.sizes))
    for layer in small.layers:                                       # masks carried over, law intact
        for p in (layer.W, layer.b):
            if p.mask is not None:
                assert p.mask.shape == p.shape and np.all(p.data[~p.mask] == 0)


def test_compact_by_hand():
    model = MLP([3, 4, 2], seed=0, dtype=np.float64)
    model.layers[0].b.data[...] = [0.1, 0.2, 0.3, 0.4]
    model.layers[0].W.data[:, 1] = 0          # neuron 1: constant relu(0.2), folded into the next bias
    model.layers[1].W.data[3, :] = 0          # neuron 3: nobody listens
    X = np.random.default_rng(0).normal(size=(5, 3))
    small = compact(model)
    assert small.sizes == [3, 2, 2]
    np.testing.assert_allclose(small(X), model(X))
    np.testing.assert_allclose(small.layers[1].b.data, 0.2 * model.layers[1].W.data[1])
    report = compaction_report(model, small)
    assert report["sizes"] == ([3, 4, 2], [3, 2, 2]) and report["parameters"] == (26, 14)


def test_compact_a_dead_layer_keeps_one_zero_neuron():
    model = MLP([3, 4, 2], seed=0, dtype=np.float64)
    model.layers[1].W.data[...] = 0
    model.layers[1].b.data[...] = [1.0, -1.0]
    small = compact(model)
    assert small.sizes == [3, 1, 2]
    X = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(small(X), model(X))
    with pytest.raises(TypeError):
        compact("model")


def test_compact_the_documents_model_at_half_the_neurons():
    model = MLP([784, 64, 64, 10], seed=0)
    core.neurons(model, 0.5, scope="layer")
    small = compact(model)
    assert small.sizes == [784, 32, 32, 10]
    X = np.random.default_rng(0).random((20, 784)).astype(np.float32)
    np.testing.assert_allclose(small(X), model(X), rtol=1e-5, atol=1e-5)


@given(mlp_sizes(min_hidden=1, max_hidden=2, max_width=4).map(lambda s: [4 * d for d in s[:-1]] + [s[-1]]),
       seeds, st.sampled_from([(2, 4), (1, 4), (1, 2), (3, 4)]),
       st.sampled_from(["magnitude", "random", "taylor"]))
def test_n_m_holds_in_every_group(sizes, seed, nm, criterion):
    n, m = nm
    if any(d % m for d in sizes[:-1]):
        return
    model, X, y = make(sizes, seed)
    original = {name: p.data.copy() for name, p in model.named_parameters()}
    masks = prune(model, None, criterion, structure="n:m", data=(X, y), n=n, m=m, seed=seed)
    assert sorted(masks) == [f"layers.{i}.W" for i in range(len(model.layers))]
    for name, mask in masks.items():
        groups = mask.reshape(mask.shape[0] // m, m, -1)
        assert np.all(groups.sum(axis=1) == n)
        if criterion == "magnitude":
            w = np.abs(original[name]).reshape(groups.shape)
            kept_min = np.where(groups, w, np.inf).min(axis=1)
            gone_max = np.where(~groups, w, -np.inf).max(axis=1)
            assert np.all(kept_min >= gone_max)
    again = prune(model, 1 - n / m, criterion, structure="n:m", data=(X, y), n=n, m=m, seed=seed + 1)
    for name, mask in again.items():                           # masks only lose entries, n:m kept
        assert np.array_equal(mask, masks[name]) or not np.any(mask & ~masks[name])


def test_n_m_short_form_and_default():
    model = MLP([8, 8, 4], seed=0)
    masks = core.n_m(model)
    assert all(m.reshape(-1, 4, m.shape[1]).sum(axis=1).max() == 2 for m in masks.values())
    model = MLP([8, 8, 3], seed=0)
    masks = core.n_m(model, exclude=["layers.1"])
    assert sorted(masks) == ["layers.0.W"]


# ---------------------------------------------------- global neuron pruning (normalised, with a floor)
@st.composite
def wide_models(draw):
    """Hidden layers of equal width and fan-in, each scaled by its own factor in 1e-3..1e3."""
    width, hidden = draw(st.integers(24, 40)), draw(st.integers(2, 3))
    seed = draw(seeds)
    model = MLP([width] * (hidden + 1) + [draw(st.integers(2, 5))], seed=seed, dtype=np.float64)
    scales = [10.0 ** draw(st.floats(-3, 3)) for _ in model.layers]
    return model, scales, seed


@given(wide_models(), st.sampled_from([0.25, 0.5, 0.75]),
       st.sampled_from(["l1", "l2", "l2_out", "random"]))
def test_global_neuron_pruning_takes_the_lowest_normalised_scores_and_never_a_whole_layer(case, sparsity,
                                                                                          criterion):
    model, scales, seed = case
    reference = copy.deepcopy(model)
    for layer, scale in zip(model.layers, scales):        # ReLU is positively homogeneous: only the
        layer.W.data *= scale                               # scale of each layer's scores changes
        layer.b.data *= scale
    scores = core.neuron_scores(model, criterion, seed=seed)
    prune(model, sparsity, criterion, "global", structure="neurons", seed=seed)
    prune(reference, sparsity, criterion, "global", structure="neurons", seed=seed)
    alive = check_neuron_masks(model)
    assert all(np.array_equal(alive[k], v) for k, v in hidden_alive(reference).items())   # scale-free
    removed = [int((~flags).sum()) for flags in alive.values()]
    total = sum(flags.size for flags in alive.values())
    assert sum(removed) == round(sparsity * total)                                      # exact count
    # never a whole layer; a layer whose scores are close together may give up none (its scores
    # sit near its mean, 1 after normalising, while a layer with a wide spread has scores far below 1)
    assert all(r < flags.size for r, flags in zip(removed, alive.values()))
    everyone = [np.ones(flags.size, bool) for flags in alive.values()]
    normalised = core.normalise_neuron_scores(list(scores.values()), everyone)
    gone = np.concatenate([n[~alive[k]] for n, k in zip(normalised, alive)])
    # the lowest normalised scores went, but for the floor: a layer's last (best) unit always stays
    kept = np.concatenate([n[alive[k]] for n, k in zip(normalised, alive) if alive[k].sum() > 1]
                          or [[np.inf]])
    assert gone.max() <= kept.min()


def test_the_floor_keeps_the_best_neuron_of_every_layer():
    model = MLP([6, 4, 8, 3], seed=0)
    scores = core.neuron_scores(model, "l2")
    prune(model, 10 / 12, "l2", "global", structure="neurons")     # 10 of 12: the most the floor allows
    alive = hidden_alive(model)
    assert [int(a.sum()) for a in alive.values()] == [1, 1]
    assert [int(np.argmax(a)) for a in alive.values()] == [int(np.argmax(s)) for s in scores.values()]
    with pytest.raises(ValueError, match="every neuron of some hidden layer"):
        prune(MLP([6, 4, 8, 3], seed=0), 0.9, "l2", "global", structure="neurons")   # 11 of 12


def test_global_l2_on_the_documents_model_no_longer_empties_a_layer():
    """Issue 13: raw column norms (784 inputs against 64) emptied the second layer at 50 %."""
    model = MLP([784, 64, 64, 10], seed=0)
    prune(model, 0.5, "l2", "global", structure="neurons")
    removed = [int((~a).sum()) for a in hidden_alive(model).values()]
    assert sum(removed) == 64 and min(removed) > 0
