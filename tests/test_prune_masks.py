"""The mask laws of tinyprune.prune.masks: apply, combine, remove, reset, stats, get/set."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune.core.nn import MLP, Parameter
from tinyprune.errors import ShapeError
from tinyprune.prune import masks as mk
from tinyprune.testing import mlp_sizes, seeds


def random_masks(model, seed, keep=0.6):
    generator = np.random.default_rng(seed)
    return {name: generator.random(p.shape) < keep for name, p in model.named_parameters()}


def test_apply_mask_zeroes_and_assigns_a_new_array():
    p = Parameter(np.arange(1.0, 7.0).reshape(2, 3))
    first = np.array([[True, False, True], [True, True, True]])
    mk.apply_mask(p, first)
    assert p.mask is not first and p.mask.dtype == np.bool_
    held = p.mask
    mk.apply_mask(p, np.array([[True, True, True], [False, True, True]]))
    assert p.mask is not held                                  # never changed in place ...
    assert held.tolist() == first.tolist()                     # ... so an old mask stays as it was
    assert p.mask.tolist() == [[True, False, True], [False, True, True]]   # AND: only loses Trues
    assert p.data.tolist() == [[1.0, 0.0, 3.0], [0.0, 5.0, 6.0]]


@given(mlp_sizes(), seeds, seeds)
def test_masks_only_lose_entries(sizes, seed_a, seed_b):
    model = MLP(sizes, seed=0, dtype=np.float64)
    a, b = random_masks(model, seed_a), random_masks(model, seed_b)
    params = dict(model.named_parameters())
    for name, mask in a.items():
        mk.apply_mask(params[name], mask)
    for name, mask in b.items():
        mk.apply_mask(params[name], mask)
    for name, p in params.items():
        assert p.mask.shape == p.shape and p.mask.dtype == np.bool_
        assert np.array_equal(p.mask, a[name] & b[name])
        assert np.all(p.data[~p.mask] == 0)


def test_combine():
    a, b = np.array([True, True, False]), np.array([True, False, True])
    assert mk.combine(a, b).tolist() == [True, False, False]
    assert mk.combine(None, None) is None
    out = mk.combine(a)
    assert out is not a and out.tolist() == a.tolist()
    with pytest.raises(ShapeError):
        mk.combine(a, np.array([True, False]))
    with pytest.raises(ValueError, match="bool"):
        mk.combine(a, np.array([1, 0, 1]))


def test_apply_mask_rejects_bad_masks():
    p = Parameter(np.ones((2, 2)))
    with pytest.raises(ShapeError):
        mk.apply_mask(p, np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="bool"):
        mk.apply_mask(p, np.ones((2, 2)))
    with pytest.raises(TypeError):
        mk.apply_mask(np.ones((2, 2)), np.ones((2, 2), bool))
    assert p.mask is None and np.all(p.data == 1)


def test_remove_keeps_zeros_and_drops_masks():
    model = MLP([4, 3, 2], seed=0)
    for name, mask in random_masks(model, 1).items():
        mk.apply_mask(dict(model.named_parameters())[name], mask)
    zeros = {name: p.data == 0 for name, p in model.named_parameters()}
    pruned = sum(int((~p.mask).sum()) for p in model.parameters())
    assert mk.remove(model) == pruned
    for name, p in model.named_parameters():
        assert p.mask is None and np.array_equal(p.data == 0, zeros[name])


def test_reset_drops_masks_and_optionally_restores():
    model = MLP([4, 3, 2], seed=0)
    before = model.state_dict()
    W = model.layers[0].W
    mk.apply_mask(W, np.zeros(W.shape, bool) | (np.arange(3) == 0))
    mk.reset(model)
    assert all(p.mask is None for p in model.parameters())
    assert np.all(W.data[:, 1:] == 0)                         # weights stay as they are
    mk.apply_mask(W, np.zeros(W.shape, bool) | (np.arange(3) == 0))
    mk.reset(model, before)
    assert np.array_equal(W.data, before["layers.0.W"]) and W.mask is None


def test_mask_stats_and_get_set_masks():
    model = MLP([4, 3, 2], seed=0)
    masks = random_masks(model, 3)
    mk.set_masks(model, masks)
    stats = mk.mask_stats(model)
    for name, mask in masks.items():
        assert stats[name]["total"] == mask.size
        assert stats[name]["pruned"] == int((~mask).sum())
        assert stats[name]["sparsity"] == pytest.approx((~mask).mean())
    got = mk.get_masks(model)
    assert all(np.array_equal(got[n], masks[n]) for n in masks)
    got["layers.0.W"][...] = False                           # a copy: the model is not affected
    assert model.layers[0].W.mask.any()
    mk.set_masks(model, {"layers.0.W": None})
    assert model.layers[0].W.mask is None and "layers.0.W" not in mk.get_masks(model)
    assert mk.mask_stats(model)["layers.0.W"]["pruned"] == 0
    with pytest.raises(ValueError, match="unknown parameter"):
        mk.set_masks(model, {"layers.9.W": np.ones((1, 1), bool)})
    with pytest.raises(ShapeError):
        mk.set_masks(model, {"layers.0.W": np.ones((1, 1), bool)})


@given(st.integers(1, 6), st.integers(1, 6), seeds)
def test_set_masks_replaces_rather_than_ands(d_in, d_out, seed):
    model = MLP([d_in, d_out], seed=seed)
    first, second = random_masks(model, seed), random_masks(model, seed + 1)
    mk.set_masks(model, first)
    mk.set_masks(model, second)
    for name, p in model.named_parameters():
        assert np.array_equal(p.mask, second[name]) and np.all(p.data[~p.mask] == 0)
