"""The public verb ``prune``: its laws for every criterion and scope, training under masks, bad input."""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune.core import backprop
from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.fast.optim import SGD, Adam
from tinyprune.prune import CRITERIA, NEEDS_DATA, core, mask_stats
from tinyprune.prune import prune as prune_verb
from tinyprune.testing import mlp_sizes, seeds
from tinyprune.training import fit

sparsities = st.floats(0.0, 0.95)
COUNTED = tuple(c for c in CRITERIA if not CRITERIA[c].moves_survivors)   # OBS: per unit, test_prune_obs.py


def make(sizes, seed, n=12):
    generator = np.random.default_rng(seed)
    model = MLP(sizes, seed=generator, dtype=np.float64)
    for layer in model.layers:
        layer.b.data[...] = generator.uniform(-0.3, 0.3, size=layer.b.shape)
    X = generator.normal(size=(n, sizes[0]))
    y = generator.integers(0, sizes[-1], size=n)
    return model, X, y


def pruned_count(model, names):
    stats = mask_stats(model)
    return sum(stats[name]["pruned"] for name in names)


def weight_names(model):
    return [f"layers.{i}.W" for i in range(len(model.layers))]


def safe_prune(*args, **kwargs):
    """Prune, or return None where prune refuses to empty a layer (small random models can)."""
    try:
        return prune_verb(*args, **kwargs)
    except ValueError as error:
        assert "no weights at all" in str(error) or "every neuron" in str(error)
        return None


@given(mlp_sizes(max_width=8), seeds, sparsities, st.sampled_from(COUNTED),
       st.sampled_from(["global", "layer"]))
def test_every_criterion_prunes_exactly_round_s_n(sizes, seed, sparsity, criterion, scope):
    model, X, y = make(sizes, seed)
    masks = safe_prune(model, sparsity, criterion, scope, data=(X, y), seed=seed)
    if masks is None:
        return
    names = weight_names(model)
    assert sorted(masks) == sorted(names)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert mask.dtype == np.bool_ and mask.shape == params[name].shape
        assert np.all(params[name].data[~mask] == 0)
        assert params[name].mask is mask
    if scope == "global":
        assert pruned_count(model, names) == round(sparsity * sum(params[n].data.size for n in names))
    else:
        for name in names:
            assert mask_stats(model)[name]["pruned"] == round(sparsity * params[name].data.size)
    assert all(params[f"layers.{i}.b"].mask is None for i in range(len(model.layers)))


@given(mlp_sizes(max_width=8), seeds, st.sampled_from(tuple(CRITERIA)))
def test_sparsity_zero_changes_nothing(sizes, seed, criterion):
    model, X, y = make(sizes, seed)
    before = model(X)
    _, grads_before = backprop.gradients(model, X, y)
    prune_verb(model, 0.0, criterion, data=(X, y))
    _, grads_after = backprop.gradients(model, X, y)
    assert np.array_equal(model(X), before)
    assert all(np.array_equal(grads_before[k], grads_after[k]) for k in grads_before)


@given(mlp_sizes(max_width=8), seeds, sparsities, sparsities, st.sampled_from(COUNTED),
       st.sampled_from(["global", "layer"]))
def test_pruning_again_only_loses_entries_and_counts_the_total(sizes, seed, s1, s2, criterion, scope):
    model, X, y = make(sizes, seed)
    if safe_prune(model, s1, criterion, scope, data=(X, y)) is None:
        return
    first = {n: p.mask for n, p in model.named_parameters() if p.mask is not None}
    if safe_prune(model, s2, criterion, scope, data=(X, y), seed=seed + 1) is None:
        return
    params = dict(model.named_parameters())
    for name, mask in first.items():
        assert not np.any(params[name].mask & ~mask)
    names = weight_names(model)
    if scope == "global":
        n = sum(params[name].data.size for name in names)
        assert pruned_count(model, names) == max(round(s1 * n), round(s2 * n))
    else:
        for name in names:
            n = params[name].data.size
            assert mask_stats(model)[name]["pruned"] == max(round(s1 * n), round(s2 * n))


@given(mlp_sizes(max_width=8), seeds, sparsities)
def test_global_magnitude_removes_the_globally_smallest(sizes, seed, sparsity):
    model, _, _ = make(sizes, seed)
    original = {n: np.abs(p.data.copy()) for n, p in model.named_parameters()}
    if safe_prune(model, sparsity) is None:
        return
    gone = np.concatenate([original[n][~p.mask] for n, p in model.named_parameters() if p.mask is not None])
    kept = np.concatenate([original[n][p.mask] for n, p in model.named_parameters() if p.mask is not None])
    if gone.size and kept.size:
        assert gone.max() <= kept.min()


def test_biases_output_and_exclusions():
    model, X, y = make([6, 5, 4, 3], 0)
    masks = prune_verb(model, 0.5, prune_biases=True)
    assert sorted(masks) == sorted(n for n, _ in model.named_parameters())
    model, _, _ = make([6, 5, 4, 3], 0)
    masks = prune_verb(model, 0.5, include_output=False, scope="layer")
    assert sorted(masks) == ["layers.0.W", "layers.1.W"] and model.layers[2].W.mask is None
    model, _, _ = make([6, 5, 4, 3], 0)
    masks = prune_verb(model, 0.5, exclude=["layers.0"], scope="layer")
    assert sorted(masks) == ["layers.1.W", "layers.2.W"]
    masks = prune_verb(model, 0.5, exclude="layers.1.W", prune_biases=True, scope="layer")
    assert "layers.1.W" not in masks and "layers.1.b" in masks


def test_data_as_dataset_tuple_or_array():
    model, X, y = make([6, 5, 3], 1)
    a, b, c = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    prune_verb(a, 0.5, "taylor", data=(X, y))
    prune_verb(b, 0.5, "taylor", data=Dataset(X, y, num_classes=3))
    assert all(np.array_equal(p.mask, q.mask)
               for p, q in zip(a.parameters(), b.parameters()) if p.mask is not None)
    prune_verb(c, 0.5, "activation", structure="neurons", data=X)


def test_short_forms_agree_with_prune():
    model, X, y = make([8, 6, 6, 3], 2)
    calls = {
        "magnitude": lambda m: core.magnitude(m, 0.6),
        "random": lambda m: core.random(m, 0.6, seed=3),
        "gradient": lambda m: core.gradient(m, 0.6, (X, y)),
        "taylor": lambda m: core.taylor(m, 0.6, (X, y)),
        "hybrid": lambda m: core.hybrid(m, 0.6, (X, y), alpha=0.3),
        "obd": lambda m: core.obd(m, 0.6, (X, y), hessian="fisher"),
        "lamp": lambda m: core.lamp(m, 0.6),
    }
    options = {"random": {"seed": 3}, "hybrid": {"alpha": 0.3}, "obd": {"hessian": "fisher"}}
    for name, call in calls.items():
        short, long = copy.deepcopy(model), copy.deepcopy(model)
        call(short)
        prune_verb(long, 0.6, name, data=(X, y), **options.get(name, {}))
        for p, q in zip(short.parameters(), long.parameters()):
            assert (p.mask is None and q.mask is None) or np.array_equal(p.mask, q.mask), name


def test_lamp_keeps_every_layer_alive_at_high_sparsity():
    model, _, _ = make([20, 16, 16, 3], 4)
    model.layers[2].W.data *= 1e-3                      # a layer of tiny weights
    with pytest.raises(ValueError, match="no weights at all"):
        prune_verb(copy.deepcopy(model), 0.95, "magnitude")
    prune_verb(model, 0.95, "lamp")
    assert all(layer.W.mask.any() for layer in model.layers)


def test_threshold_verb():
    model, _, _ = make([10, 8, 3], 5)
    original = {n: p.data.copy() for n, p in model.named_parameters()}
    masks = core.threshold(model, tau=0.2)
    for name, mask in masks.items():
        assert np.array_equal(mask, np.abs(original[name]) >= 0.2)
    model, _, _ = make([10, 8, 3], 5)
    masks = core.threshold(model, quality=0.5)
    for name, mask in masks.items():
        assert np.array_equal(mask, np.abs(original[name]) >= 0.5 * original[name].std())
    with pytest.raises(ValueError, match="exactly one"):
        core.threshold(model)
    with pytest.raises(ValueError, match="exactly one"):
        core.threshold(model, tau=0.1, quality=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        core.threshold(model, tau=-1.0)
    with pytest.raises(ValueError, match="no weights at all"):
        core.threshold(model, tau=100.0)


OPTIMIZERS = [
    lambda ps: SGD(ps, lr=0.1),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: Adam(ps, lr=0.01),
    lambda ps: Adam(ps, lr=0.01, weight_decay=1e-3),
]


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS)
@pytest.mark.parametrize("structure", ["weights", "neurons", "n:m"])
def test_pruned_weights_stay_zero_through_fit(make_optimizer, structure):
    generator = np.random.default_rng(0)
    X = generator.normal(size=(64, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = MLP([8, 8, 8, 2], seed=0)
    optimizer = make_optimizer(model.parameters())
    fit(model, (X, y), epochs=1, batch_size=16, optimizer=optimizer, progress=False)   # state is nonzero now
    sparsity = None if structure == "n:m" else 0.5
    masks = prune_verb(model, sparsity, structure=structure, prune_biases=True) if structure == "weights" \
        else prune_verb(model, sparsity, structure=structure)
    fit(model, (X, y), epochs=3, batch_size=16, optimizer=optimizer, progress=False)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert np.all(params[name].data[~mask] == 0)
        if name.endswith(".W"):
            assert np.count_nonzero(params[name].data[mask]) > 0     # the survivors did train


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, float("nan"), float("inf"), True, "0.5", None])
def test_bad_sparsity(sparsity):
    model, _, _ = make([4, 3, 2], 0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        prune_verb(model, sparsity)
    assert all(p.mask is None for p in model.parameters())


@pytest.mark.parametrize("kwargs, message", [
    ({"criterion": "size"}, "unknown criterion"),
    ({"criterion": "l1"}, "unknown criterion"),
    ({"scope": "model"}, "unknown scope"),
    ({"structure": "filters"}, "unknown structure"),
    ({"structure": "neurons", "criterion": "lamp"}, "unknown neuron criterion"),
    ({"criterion": "taylor"}, "needs calibration data"),
    ({"criterion": "gradient", "data": (np.ones((2, 4)), None)}, "needs calibration data"),
    ({"structure": "neurons", "criterion": "activation"}, "needs calibration data"),
    ({"structure": "neurons", "criterion": "taylor"}, "needs calibration data"),
    ({"bias": True}, "unknown option"),
    ({"alpha": 0.5}, "unknown option"),
    ({"structure": "neurons", "prune_biases": True}, "unknown option"),
    ({"exclude": ["layers.7"]}, "cannot exclude"),
    ({"exclude": ["layers.0", "layers.1"]}, "every layer was excluded"),
    ({"data": "train"}, "data must be"),
    ({"criterion": "hybrid", "alpha": 2.0, "data": (np.ones((2, 4)), np.array([0, 1]))}, "alpha"),
    ({"criterion": "obd", "hessian": "exact", "data": (np.ones((2, 4)), np.array([0, 1]))},
     "unknown hessian"),
    ({"criterion": "taylor", "data": (np.ones((2, 5)), np.array([0, 1]))}, "shape"),
])
def test_bad_arguments_say_what_is_allowed(kwargs, message):
    model, _, _ = make([4, 3, 2], 0)
    with pytest.raises(ValueError, match=message):
        prune_verb(model, 0.5, **kwargs)
    assert all(p.mask is None for p in model.parameters())


def test_structural_errors():
    model, _, _ = make([4, 3, 2], 0)
    with pytest.raises(ValueError, match="every neuron"):
        prune_verb(model, 0.9, structure="neurons", scope="layer")
    with pytest.raises(ValueError, match="needs a hidden layer"):
        prune_verb(MLP([4, 2]), 0.5, structure="neurons")
    with pytest.raises(ValueError, match="multiple of m"):
        prune_verb(MLP([6, 4, 2]), None, structure="n:m")
    with pytest.raises(ValueError, match="1 - n/m"):
        prune_verb(MLP([8, 4, 2]), 0.9, structure="n:m")
    with pytest.raises(ValueError, match="no weights at all"):
        prune_verb(MLP([1, 1, 2]), 0.6, scope="layer")
    with pytest.raises(TypeError):
        prune_verb(object(), 0.5)
    assert all(p.mask is None for p in model.parameters())


def test_needs_data_table_is_honest():
    model, X, y = make([4, 3, 2], 0)
    for criterion in CRITERIA:
        structure = "weights"
        if criterion in NEEDS_DATA:
            with pytest.raises(ValueError, match="needs calibration data"):
                prune_verb(copy.deepcopy(model), 0.5, criterion, structure=structure)
        else:
            prune_verb(copy.deepcopy(model), 0.5, criterion, structure=structure)
