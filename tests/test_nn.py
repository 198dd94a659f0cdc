"""Layers and models: initialisation, names, state dicts, forward passes, masks and bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune.core.autograd import Tensor
from tinyprune.core.nn import MLP, Linear, Parameter, ReLU, Sequential
from tinyprune.errors import ShapeError
from tinyprune.testing import mlp_sizes, seeds

DOCUMENT_SIZES = [784, 64, 64, 10]


# ------------------------------------------------------------ initialisation
@given(st.integers(1, 40), st.integers(1, 40), seeds, st.sampled_from([np.float32, np.float64]))
def test_linear_is_glorot_uniform_with_zero_bias(d_in, d_out, seed, dtype):
    layer = Linear(d_in, d_out, seed=seed, dtype=dtype)
    limit = np.sqrt(6.0 / (d_in + d_out))
    assert layer.W.shape == (d_in, d_out) and layer.b.shape == (d_out,)
    assert layer.W.dtype == dtype and layer.b.dtype == dtype
    assert np.all(np.abs(layer.W.data) <= dtype(limit))
    np.testing.assert_array_equal(layer.b.data, 0)
    assert layer.W.mask is None and layer.b.mask is None
    assert layer.W.requires_grad and layer.b.requires_grad


def test_glorot_uniform_statistics_of_the_documents_first_layer():
    W = Linear(784, 64, seed=0).W.data.astype(np.float64)
    limit = np.sqrt(6.0 / (784 + 64))
    # U(-a, a): mean 0, standard deviation a / sqrt(3), and the extremes come close to +-a
    assert abs(W.mean()) < 0.01 * limit
    assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert W.max() > 0.999 * limit and W.min() < -0.999 * limit


@given(mlp_sizes(), seeds)
def test_same_seed_same_weights_different_seed_different(sizes, seed):
    a, b = MLP(sizes, seed=seed), MLP(sizes, seed=seed)
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert p.data.tobytes() == q.data.tobytes()
    other = MLP(sizes, seed=seed + 1)
    assert any(not np.array_equal(p.data, q.data) for p, q in zip(a.parameters(), other.parameters()))


def test_a_generator_seed_is_used_as_given():
    generator = np.random.default_rng(5)
    first, second = MLP([3, 4, 2], seed=generator), MLP([3, 4, 2], seed=generator)
    assert not np.array_equal(first.layers[0].W.data, second.layers[0].W.data)
    np.testing.assert_array_equal(MLP([3, 4, 2], seed=np.random.default_rng(5)).layers[0].W.data,
                                  first.layers[0].W.data)


def test_layers_of_an_mlp_get_different_weights():
    model = MLP([8, 8, 8, 8], seed=0)
    assert not np.array_equal(model.layers[1].W.data, model.layers[2].W.data)


# ------------------------------------------------------------ names and counts
def test_named_parameters_of_the_documents_model():
    model = MLP(DOCUMENT_SIZES, seed=0)
    named = model.named_parameters()
    assert [name for name, _ in named] == ["layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b",
                                           "layers.2.W", "layers.2.b"]
    assert [p.shape for _, p in named] == [(784, 64), (64,), (64, 64), (64,), (64, 10), (10,)]
    assert sum(p.data.size for _, p in named) == 55_050
    assert all(p is q for (_, p), q in zip(named, model.parameters()))
    assert model.layers[1].W is dict(named)["layers.1.W"]
    assert model.dtype == np.float32 and model.sizes == DOCUMENT_SIZES


@given(mlp_sizes())
def test_parameter_count_for_any_sizes(sizes):
    model = MLP(sizes, seed=0)
    expected = sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))
    assert sum(p.data.size for p in model.parameters()) == expected
    assert len(model.layers) == len(sizes) - 1


def test_sequential_names_and_output():
    model = MLP([5, 4, 3], seed=1, dtype=np.float64)
    sequential = Sequential(model.layers[0], ReLU(), model.layers[1])
    assert [name for name, _ in sequential.named_parameters()] == ["layers.0.W", "layers.0.b",
                                                                   "layers.2.W", "layers.2.b"]
    X = np.random.default_rng(0).normal(size=(6, 5))
    np.testing.assert_array_equal(sequential(X), model(X))
    np.testing.assert_array_equal(sequential(Tensor(X)).data, model(X))
    assert [n for n, _ in Linear(2, 3).named_parameters(prefix="fc.")] == ["fc.W", "fc.b"]


# ------------------------------------------------------------ state dicts
def test_state_dict_round_trip():
    source, target = MLP([6, 5, 3], seed=0), MLP([6, 5, 3], seed=1)
    X = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    assert not np.array_equal(source(X), target(X))
    state = source.state_dict()
    assert list(state) == [name for name, _ in source.named_parameters()]
    target.load_state_dict(state)
    np.testing.assert_array_equal(source(X), target(X))
    # the dict holds copies: changing it (or the model) afterwards changes nothing else
    state["layers.0.W"][...] = 7.0
    assert not np.any(source.layers[0].W.data == 7.0) and not np.any(target.layers[0].W.data == 7.0)
    source.layers[0].b.data[...] = 3.0
    assert not np.any(target.layers[0].b.data == 3.0)


def test_load_state_dict_with_a_wrong_name_raises():
    model = MLP([3, 2], seed=0)
    state = model.state_dict()
    state["layers.0.weight"] = state.pop("layers.0.W")
    with pytest.raises(ShapeError, match=r"missing \['layers.0.W'\], unexpected \['layers.0.weight'\]"):
        model.load_state_dict(state)
    del state["layers.0.weight"]
    with pytest.raises(ValueError, match="missing.*layers.0.W"):
        model.load_state_dict(state)


def test_load_state_dict_with_a_wrong_shape_raises_and_changes_nothing_it_should_not():
    model = MLP([3, 4, 2], seed=0)
    before = model.state_dict()
    state = {name: np.full_like(values, 9.0) for name, values in before.items()}
    state["layers.1.W"] = np.zeros((2, 4))
    with pytest.raises(ShapeError, match=r"'layers.1.W' has shape \(2, 4\).*expects \(4, 2\)"):
        model.load_state_dict(state)
    assert issubclass(ShapeError, ValueError)
    for name, values in model.state_dict().items():  # not even the layers before the bad one changed
        np.testing.assert_array_equal(values, before[name], err_msg=name)


def pruned(model, seed=0):
    """Mask about half of every weight matrix and one bias entry at random (weights zeroed)."""
    generator = np.random.default_rng(seed)
    for layer in model.layers:
        layer.W.mask = generator.random(layer.W.shape) < 0.5
        layer.W.data *= layer.W.mask
    model.layers[0].b.mask = np.arange(model.layers[0].b.shape[0]) != 0
    return model


def test_state_dict_carries_masks_under_dot_mask_keys():
    model = pruned(MLP([6, 5, 3], seed=0))
    state = model.state_dict()
    assert list(state) == ["layers.0.W", "layers.0.W.mask", "layers.0.b", "layers.0.b.mask",
                           "layers.1.W", "layers.1.W.mask", "layers.1.b"]
    np.testing.assert_array_equal(state["layers.0.W.mask"], model.layers[0].W.mask)
    state["layers.0.W.mask"][...] = True           # a copy: the model's mask does not change
    assert not model.layers[0].W.mask.all()


@given(mlp_sizes(), seeds)
def test_state_dict_round_trip_restores_values_and_masks_exactly(sizes, seed):
    source, target = pruned(MLP(sizes, seed=seed), seed), MLP(sizes, seed=seed + 1)
    target.load_state_dict(source.state_dict())
    for (name, p), (_, q) in zip(source.named_parameters(), target.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
        assert (p.mask is None and q.mask is None) or np.array_equal(p.mask, q.mask), name
        assert p.is_pruned == q.is_pruned


def test_masks_survive_state_dict_load_and_fine_tuning():
    from tinyprune.data import Dataset
    from tinyprune.training import fit

    generator = np.random.default_rng(0)
    X = generator.normal(size=(64, 6)).astype(np.float32)
    data = Dataset(X, (X[:, 0] > 0).astype(np.int64), num_classes=3)
    source = pruned(MLP([6, 5, 3], seed=0))
    zeros = {name: ~p.mask for name, p in source.named_parameters() if p.mask is not None}
    fresh = MLP([6, 5, 3], seed=7)
    fresh.load_state_dict(source.state_dict())
    fit(fresh, data, epochs=3, batch_size=16, progress=False)
    params = dict(fresh.named_parameters())
    for name, where in zeros.items():
        assert np.all(params[name].data[where] == 0), name
    assert np.any(fresh.layers[0].W.data != source.layers[0].W.data)     # it did train


def test_load_state_dict_without_masks_keeps_and_applies_the_current_masks():
    model = pruned(MLP([6, 5, 3], seed=0))
    masks = {name: p.mask.copy() for name, p in model.named_parameters() if p.mask is not None}
    dense = MLP([6, 5, 3], seed=3).state_dict()           # no masks: e.g. rewinding to the initial weights
    model.load_state_dict(dense)
    for name, p in model.named_parameters():
        if name in masks:
            np.testing.assert_array_equal(p.mask, masks[name])
            np.testing.assert_array_equal(p.data, dense[name] * masks[name])
        else:
            assert p.mask is None
            np.testing.assert_array_equal(p.data, dense[name])


def test_bad_masks_in_a_state_dict_raise_and_change_nothing():
    model = MLP([4, 3, 2], seed=0)
    before = model.state_dict()
    state = {name: np.zeros_like(values) for name, values in before.items()}
    state["layers.1.W.mask"] = np.ones((3, 2), dtype=np.int64)
    with pytest.raises(ShapeError, match=r"'layers.1.W.mask' must be a bool array of shape \(3, 2\)"):
        model.load_state_dict(state)
    state["layers.1.W.mask"] = np.ones((2, 3), dtype=bool)
    with pytest.raises(ShapeError, match="'layers.1.W.mask'.*got dtype bool and shape \\(2, 3\\)"):
        model.load_state_dict(state)
    state["layers.1.W.mask"] = np.zeros((3, 2), dtype=bool)
    state["layers.1.W"] = np.ones((3, 2))
    with pytest.raises(ValueError, match="'layers.1.W' has nonzero values where 'layers.1.W.mask' is False"):
        model.load_state_dict(state)
    state["layers.7.W.mask"] = np.ones((3, 2), dtype=bool)
    with pytest.raises(ShapeError, match=r"unexpected \['layers.7.W.mask'\]"):
        model.load_state_dict(state)
    for name, values in model.state_dict().items():
        np.testing.assert_array_equal(values, before[name], err_msg=name)
    assert all(p.mask is None for p in model.parameters())


def test_is_pruned_per_parameter_and_per_model():
    from tinyprune import prune

    model = MLP([4, 3, 2], seed=0)
    assert not prune.is_pruned(model) and not any(p.is_pruned for p in model.parameters())
    model.layers[0].W.mask = np.ones((4, 3), dtype=bool)       # a mask that prunes nothing
    model.layers[0].W.data[0, 0] = 0.0                          # a zero that no mask holds
    assert not prune.is_pruned(model) and not model.layers[0].W.is_pruned
    prune.magnitude(model, 0.5)
    assert prune.is_pruned(model) and model.layers[0].W.is_pruned
    prune.reset(model)
    assert not prune.is_pruned(model)


# ------------------------------------------------------------ forward
@given(mlp_sizes(), st.integers(1, 8), seeds)
def test_ndarray_and_tensor_forward_agree(sizes, n, seed):
    model = MLP(sizes, seed=seed, dtype=np.float64)
    X = np.random.default_rng(seed).normal(size=(n, sizes[0]))
    out = model(X)
    assert isinstance(out, np.ndarray) and out.shape == (n, sizes[-1])
    graph = model(Tensor(X))
    assert isinstance(graph, Tensor) and graph.requires_grad
    np.testing.assert_array_equal(out, graph.data)
    # by hand: relu after every layer but the last
    A = X
    for index, layer in enumerate(model.layers):
        A = A @ layer.W.data + layer.b.data
        if index < len(model.layers) - 1:
            A = np.maximum(A, 0)
    np.testing.assert_allclose(out, A, rtol=1e-12, atol=1e-12)


def test_float32_forward_stays_float32():
    model = MLP(DOCUMENT_SIZES, seed=0)
    assert model(np.zeros((3, 784), dtype=np.float32)).dtype == np.float32


@pytest.mark.parametrize("shape", [(2, 5), (2, 3), (4,), (1, 2, 4)])
def test_wrong_input_width_raises(shape):
    model = MLP([4, 3, 2], seed=0)
    with pytest.raises(ShapeError, match=r"\(n, 4\), got " + re_shape(shape)):
        model(np.zeros(shape))
    with pytest.raises(ShapeError, match=r"\(n, 4\)"):
        model(Tensor(np.zeros(shape)))


def re_shape(shape: tuple[int, ...]) -> str:
    return str(shape).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("sizes", [[], [3], [3, 0], [3, -1, 2], [3, 2.5], ["3", 2], [True, True],
                                   [3, np.bool_(True)]])
def test_bad_sizes_raise(sizes):
    with pytest.raises(ValueError, match="sizes must list at least two positive integers"):
        MLP(sizes)


def test_bad_activation_and_layer_sizes_raise():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        MLP([3, 2], activation="swish")
    with pytest.raises(ValueError, match="d_in must be a positive integer, got 0"):
        Linear(0, 3)
    with pytest.raises(ValueError, match="d_out must be a positive integer"):
        Linear(3, 2.0)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, "int8", np.bool_, np.complex128, "nope"])
def test_mlp_refuses_dtypes_other_than_float32_and_float64(dtype):
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'float64'\)"):
        MLP([3, 2], dtype=dtype)
    with pytest.raises(ValueError, match="dtype must be one of"):
        MLP.from_config({"sizes": [3, 2], "activation": "relu", "dtype": np.dtype(dtype).name
                         if dtype != "nope" else dtype})


# ------------------------------------------------------------ masks
def test_parameter_mask_checks_shape_and_dtype():
    p = Parameter(np.ones((2, 3)))
    assert p.mask is None and p.requires_grad
    mask = np.array([[True, False, True], [False, True, True]])
    p.mask = mask
    np.testing.assert_array_equal(p.mask, mask)
    with pytest.raises(ShapeError, match=r"shape \(2, 3\).*shape \(3, 2\)"):
        p.mask = mask.T
    with pytest.raises(ValueError, match="bool array.*dtype int64"):
        p.mask = np.ones((2, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="bool array.*dtype float64"):
        Parameter(np.ones(2), mask=np.ones(2))
    np.testing.assert_array_equal(p.mask, mask)      # a rejected mask leaves the old one
    p.mask = None
    assert p.mask is None


# ------------------------------------------------------------ config and copies
def test_config_round_trip():
    model = MLP([5, 7, 3], seed=3, dtype=np.float64)
    config = model.config()
    assert config == {"sizes": [5, 7, 3], "activation": "relu", "dtype": "float64"}
    assert json.loads(json.dumps(config)) == config
    clone = MLP.from_config(config, seed=3)
    assert clone.config() == config and clone.dtype == np.float64
    for p, q in zip(model.parameters(), clone.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert MLP.from_config(MLP([2, 2]).config()).dtype == np.float32
    assert "MLP([5, 7, 3]" in repr(model)


@pytest.mark.parametrize("config", [{}, {"sizes": [2, 2]}, {"sizes": [2, 2], "activation": "relu"},
                                    {"sizes": [2, 0], "activation": "relu", "dtype": "float32"},
                                    {"sizes": [2, 2], "activation": "relu", "dtype": 5}])
def test_bad_config_raises(config):
    with pytest.raises(ValueError):
        MLP.from_config(config)


def test_deepcopy_is_independent():
    model = MLP([4, 3, 2], seed=0)
    model.layers[0].W.mask = np.ones((4, 3), dtype=bool)
    clone = copy.deepcopy(model)
    X = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_array_equal(model(X), clone(X))
    clone.layers[0].W.data[...] = 0.0
    clone.layers[0].W.mask[0, 0] = False
    clone.layers[1].b.grad = np.ones(2)
    assert np.any(model.layers[0].W.data != 0)
    assert model.layers[0].W.mask.all()
    assert model.layers[1].b.grad is None
    assert clone.layers[0].W is not model.layers[0].W


def test_zero_grad():
    model = MLP([3, 2], seed=0)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_backward_through_a_model_fills_every_parameter_gradient():
    model = MLP([3, 4, 2], seed=0, dtype=np.float64)
    model(Tensor(np.ones((2, 3)))).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
