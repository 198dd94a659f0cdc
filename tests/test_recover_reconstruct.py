"""Closed-form reconstruction and OBS pruning: exactness where the pruned inputs are redundant, masks kept."""

import copy

import numpy as np
import pytest

from tinyprune.core.nn import MLP
from tinyprune.prune.obs import obs_prune
from tinyprune.recover import reconstruct, reconstruct_layer
from tinyprune.training import evaluate


@pytest.fixture(scope="module")
def trained(dense):
    return dense[0]


@pytest.fixture
def pruned_copy(trained):
    """A function returning a copy of the trained model pruned to 90 % by global magnitude."""
    def make():
        model = copy.deepcopy(trained)
        scores = np.concatenate([np.abs(layer.W.data).ravel() for layer in model.layers])
        threshold = np.sort(scores)[int(0.9 * scores.size) - 1]
        for layer in model.layers:
            layer.W.mask = np.abs(layer.W.data) > threshold
            layer.W.data *= layer.W.mask
        return model
    return make


def _prune_rows(parameter, rows) -> None:
    mask = np.ones(parameter.shape, dtype=bool) if parameter.mask is None else parameter.mask.copy()
    mask[rows] = False
    parameter.mask = mask
    parameter.data *= mask


def test_duplicated_input_columns_are_recovered_exactly():
    g = np.random.default_rng(0)
    dense = MLP([6, 5, 4, 3], seed=0, dtype=np.float64)
    X = g.random((300, 6))
    X[:, 5] = X[:, 4]                     # input 5 repeats input 4
    X[:, 3] = 2.0 * X[:, 0]               # input 3 is a multiple of input 0
    pruned = copy.deepcopy(dense)
    _prune_rows(pruned.layers[0].W, [3, 5])
    assert not np.allclose(pruned(X), dense(X))
    report = reconstruct(pruned, dense, X, damping=0.0)
    np.testing.assert_allclose(pruned(X), dense(X), rtol=1e-9, atol=1e-9)
    assert report.error_after[0] < 1e-20 and report.error_before[0] > 1e-3
    assert np.all(pruned.layers[0].W.data[[3, 5]] == 0)


def test_duplicated_hidden_units_are_recovered_exactly():
    g = np.random.default_rng(1)
    dense = MLP([4, 6, 3], seed=2, dtype=np.float64)
    dense.layers[0].W.data[:, 5] = dense.layers[0].W.data[:, 2]      # hidden unit 5 == hidden unit 2
    dense.layers[0].b.data[5] = dense.layers[0].b.data[2] = 0.1
    X = g.normal(size=(200, 4))
    pruned = copy.deepcopy(dense)
    _prune_rows(pruned.layers[1].W, [5])  # the next layer no longer reads unit 5
    reconstruct(pruned, dense, X, damping=0.0)
    np.testing.assert_allclose(pruned(X), dense(X), rtol=1e-9, atol=1e-9)


def test_masks_are_kept_and_pruned_weights_stay_exactly_zero():
    g = np.random.default_rng(3)
    dense = MLP([8, 10, 4], seed=0)
    pruned = copy.deepcopy(dense)
    masks = {}
    for layer in pruned.layers:
        layer.W.mask = g.random(layer.W.shape) > 0.6
        layer.W.data *= layer.W.mask
        masks[id(layer)] = layer.W.mask.copy()
    reconstruct(pruned, dense, g.random((100, 8)))
    for layer in pruned.layers:
        assert np.array_equal(layer.W.mask, masks[id(layer)])
        assert np.all(layer.W.data[~layer.W.mask] == 0)
        assert layer.W.data.dtype == np.float32


def test_grouped_solve_equals_one_ridge_problem_per_unit():
    g = np.random.default_rng(4)
    A, Z = g.normal(size=(50, 7)), g.normal(size=(50, 6))
    mask = g.random((7, 6)) > 0.4
    mask[:, 3] = mask[:, 1]                              # two units share a mask: one solve
    damping = 0.05
    W, b = reconstruct_layer(A, Z, mask, damping=damping)
    lam = damping * np.mean(np.sum(A * A, axis=0) / 50)  # the stated damping
    for j in range(6):
        S = np.flatnonzero(mask[:, j])
        A_tilde = np.hstack([A[:, S], np.ones((50, 1))])
        penalty = np.diag(np.r_[np.full(S.size, lam), 0.0])      # the bias is not damped
        expected = np.linalg.solve(A_tilde.T @ A_tilde / 50 + penalty, A_tilde.T @ Z[:, j] / 50)
        np.testing.assert_allclose(W[S, j], expected[:-1], rtol=1e-8, atol=1e-10)
        assert b[j] == pytest.approx(expected[-1])
        assert np.all(W[~mask[:, j], j] == 0)


def test_a_masked_bias_stays_zero_and_is_not_fitted():
    g = np.random.default_rng(5)
    A, Z = g.normal(size=(40, 3)), g.normal(size=(40, 2)) + 5.0
    W, b = reconstruct_layer(A, Z, np.ones((3, 2), bool), np.array([True, False]), damping=0.0)
    assert b[1] == 0.0 and abs(b[0]) > 1.0


def test_reconstruction_raises_the_accuracy_of_a_pruned_model(clusters, trained, pruned_copy):
    train, test = clusters
    model = pruned_copy()
    before = evaluate(model, test)["accuracy"]
    reconstruct(model, trained, train.X)                  # no labels used
    assert evaluate(model, test)["accuracy"] > before + 0.05


def test_obs_prunes_exactly_the_requested_count_per_unit_and_keeps_old_masks():
    g = np.random.default_rng(6)
    model = MLP([10, 8, 4], seed=0)
    W = model.layers[0].W
    _prune_rows(W, [0, 1])                                 # already pruned: they count
    masks = obs_prune(model, g.random((120, 10)), {0: 0.5, 1: 0.25})
    assert (~masks["layers.0.W"]).sum(axis=0).tolist() == [5] * 8
    assert (~masks["layers.1.W"]).sum(axis=0).tolist() == [2] * 4
    assert not masks["layers.0.W"][[0, 1]].any()
    for layer in model.layers:
        assert np.all(layer.W.data[~layer.W.mask] == 0)


def test_obs_removes_the_best_weight_with_the_optimal_update():
    """One linear unit, one removal: OBS must pick the weight whose removal costs least, with LS weights."""
    g = np.random.default_rng(7)
    X = g.normal(size=(400, 5)) @ g.normal(size=(5, 5))      # correlated inputs
    model = MLP([5, 1], seed=0, dtype=np.float64)
    model.layers[0].W.data[:, 0] = [1.0, -0.5, 0.3, 2.0, -1.2]
    Z = X @ model.layers[0].W.data + model.layers[0].b.data
    obs_prune(model, X, 0.2, damping=1e-12, block_size=1)
    costs = []
    for q in range(5):                                       # brute force: refit without q
        S = [i for i in range(5) if i != q]
        A = np.hstack([X[:, S], np.ones((400, 1))])
        solution = np.linalg.lstsq(A, Z[:, 0], rcond=None)[0]
        costs.append((np.sum((A @ solution - Z[:, 0]) ** 2), q, solution))
    _, best, solution = min(costs, key=lambda item: item[0])
    W = model.layers[0].W
    assert not W.mask[best, 0] and W.mask.sum() == 4
    np.testing.assert_allclose(W.data[W.mask[:, 0], 0], solution[:-1], rtol=1e-6, atol=1e-8)
    assert model.layers[0].b.data[0] == pytest.approx(solution[-1], abs=1e-8)


@pytest.mark.parametrize("block_size", [1, None])
def test_obs_beats_magnitude_on_layer_output_error(block_size):
    g = np.random.default_rng(8)
    X = g.normal(size=(300, 12)) @ g.normal(size=(12, 12))
    dense = MLP([12, 6], seed=0, dtype=np.float64)
    by_obs, by_magnitude = copy.deepcopy(dense), copy.deepcopy(dense)
    obs_prune(by_obs, X, 0.5, block_size=block_size, damping=1e-6)
    W = by_magnitude.layers[0].W
    order = np.argsort(np.abs(W.data), axis=0)
    mask = np.ones(W.shape, bool)
    for j in range(6):
        mask[order[:6, j], j] = False
    W.mask = mask
    W.data *= mask
    error = [np.sum((m(X) - dense(X)) ** 2) for m in (by_obs, by_magnitude)]
    assert error[0] < error[1]


def test_bad_arguments_are_refused():
    model = MLP([4, 3], seed=0)
    with pytest.raises(ValueError):
        obs_prune(model, np.ones((5, 4)), 1.5)
    with pytest.raises(ValueError):
        reconstruct(model, MLP([4, 2], seed=0), np.ones((5, 4)))
    with pytest.raises(ValueError):
        reconstruct(model, model, np.ones((5, 4)), damping=-1.0)
