"""The criteria of issue 13 (FPGM, movement, magnitude x activation, OBD for neurons) against hand
computations on tiny models, their use from ``prune.prune``, and the renamed ``hessian="lecun"``."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyprune.core import backprop, losses
from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.errors import ShapeError
from tinyprune.fast.optim import SGD
from tinyprune.prune import NEEDS_DATA, core, movement
from tinyprune.prune import criteria as crit
from tinyprune.testing import small_problem
from tinyprune.training import fit

tiny = small_problem


# ------------------------------------------------------------ magnitude x activation
def test_magnitude_activation_by_hand_in_any_batching():
    model, X, y = tiny()
    (W1, b1), (W2, b2) = [(layer.W.data, layer.b.data) for layer in model.layers]
    A = np.maximum(X @ W1 + b1, 0)
    expected = {"layers.0.W": np.abs(W1) * np.abs(X).mean(axis=0)[:, None], "layers.0.b": np.abs(b1),
                "layers.1.W": np.abs(W2) * A.mean(axis=0)[:, None], "layers.1.b": np.abs(b2)}
    for batch_size in (1, 3, 1000):
        scores = crit.magnitude_activation(model, X, batch_size=batch_size)
        for name, value in expected.items():
            np.testing.assert_allclose(scores[name], value, rtol=1e-12, atol=1e-15)


def test_magnitude_activation_an_input_that_is_always_zero_scores_zero():
    model, X, _ = tiny()
    X[:, 1] = 0
    scores = crit.magnitude_activation(model, X)
    assert np.all(scores["layers.0.W"][1] == 0) and np.all(scores["layers.0.W"][0] > 0)


def test_magnitude_activation_needs_x():
    model, _, _ = tiny()
    with pytest.raises(ValueError, match="calibration data"):
        crit.magnitude_activation(model, None)
    with pytest.raises(ShapeError, match="shape"):
        crit.magnitude_activation(model, np.ones((2, 5)))


# ------------------------------------------------------------ FPGM
def fpgm_by_hand(W, alive):
    h = W.shape[1]
    scores = np.zeros(h)
    for j in range(h):
        if alive[j]:
            scores[j] = sum(np.linalg.norm(W[:, j] - W[:, k]) for k in range(h) if alive[k] and k != j)
    return scores


def test_fpgm_is_the_sum_of_distances_to_the_other_units():
    model, _, _ = tiny(sizes=(5, 6, 4, 3))
    scores = crit.neuron_fpgm(model)
    assert sorted(scores) == ["layers.0", "layers.1"]
    for index in (0, 1):
        W = model.layers[index].W.data
        np.testing.assert_allclose(scores[f"layers.{index}"], fpgm_by_hand(W, np.ones(W.shape[1], bool)),
                                   rtol=1e-10)


def test_fpgm_leaves_removed_units_out():
    model, _, _ = tiny(sizes=(5, 6, 3))
    core.prune(model, 2 / 6, "l2", scope="layer", structure="neurons")
    alive = model.layers[0].b.mask.copy()
    assert alive.sum() == 4
    scores = crit.neuron_fpgm(model)["layers.0"]
    np.testing.assert_allclose(scores, fpgm_by_hand(model.layers[0].W.data, alive), rtol=1e-10, atol=1e-12)
    assert np.all(scores[~alive] == 0)


def test_fpgm_a_duplicate_near_the_median_goes_first():
    # units 0 and 1 identical, 2 and 3 far on either side: 0 and 1 sit at the geometric median
    model = MLP([2, 4, 2], seed=0, dtype=np.float64)
    model.layers[0].W.data[...] = [[0.0, 0.0, -5.0, 5.0], [1.0, 1.0, 1.0, 1.0]]
    scores = crit.neuron_fpgm(model)["layers.0"]
    np.testing.assert_allclose(scores, [10.0, 10.0, 20.0, 20.0], atol=1e-6)
    core.prune(model, 0.25, "fpgm", scope="layer", structure="neurons")
    assert model.layers[0].b.mask.tolist() == [False, True, True, True]      # tie broken by position


# ------------------------------------------------------------ OBD for neurons
def test_neuron_obd_by_hand():
    model, X, y = tiny()
    W1, b1 = model.layers[0].W.data, model.layers[0].b.data
    W2, b2 = model.layers[1].W.data, model.layers[1].b.data
    Z1 = X @ W1 + b1
    P = losses.softmax(np.maximum(Z1, 0) @ W2 + b2)
    c1 = ((P * (1 - P)) @ (W2**2).T) * (Z1 > 0)          # LeCun's recursion, per sample
    h_W1, h_b1 = (X**2).T @ c1 / len(X), c1.mean(axis=0)
    expected = 0.5 * (h_W1 * W1**2).sum(axis=0) + 0.5 * h_b1 * b1**2
    got = crit.neuron_obd(model, X, y, batch_size=2)
    assert sorted(got) == ["layers.0"]
    np.testing.assert_allclose(got["layers.0"], expected, rtol=1e-10)
    fisher = crit.neuron_obd(model, X, y, hessian="fisher")["layers.0"]
    assert fisher.shape == (4,) and not np.allclose(fisher, expected)


# ------------------------------------------------------------ movement
def test_movement_score_callback_is_minus_the_sum_of_g_times_w_by_hand():
    model, X, y = tiny()
    by_hand = copy.deepcopy(model)
    lr, steps = 0.1, 4
    score = movement.MovementScore()
    # one full batch per epoch: the shuffling cannot change the gradient beyond rounding
    fit(model, Dataset(X, y, num_classes=2), epochs=steps, batch_size=len(X), progress=False,
        optimizer=SGD(model.parameters(), lr=lr), callbacks=[score])
    expected = {name: np.zeros(p.shape) for name, p in by_hand.named_parameters()}
    for _ in range(steps):
        _, grads = backprop.gradients(by_hand, X, y)
        for name, p in by_hand.named_parameters():
            expected[name] -= grads[name] * p.data            # S -= g_t · W_t, then the step
            p.data -= lr * grads[name]
    assert score.steps == steps
    for name in expected:
        np.testing.assert_allclose(score.scores[name], expected[name], rtol=1e-9, atol=1e-13)


def test_movement_scores_keep_growing_across_fits_and_pruned_weights_score_zero():
    model, X, y = tiny()
    core.magnitude(model, 0.5)
    data = Dataset(X, y, num_classes=2)
    score = movement.MovementScore()
    fit(model, data, epochs=2, batch_size=3, progress=False, callbacks=[score])
    first = {name: value.copy() for name, value in score.scores.items()}
    fit(model, data, epochs=1, batch_size=3, progress=False, callbacks=[score])
    assert score.steps == 3 * 3
    assert not np.array_equal(first["layers.0.W"], score.scores["layers.0.W"])
    pruned = ~model.layers[0].W.mask
    assert np.all(score.scores["layers.0.W"][pruned] == 0)


def test_movement_criterion_runs_a_short_accumulation_on_a_copy():
    model, X, y = tiny()
    before = model.state_dict()
    scores = crit.movement(model, X, y, epochs=2, lr=0.01, batch_size=3, seed=5)
    assert all(np.array_equal(before[name], p.data) for name, p in model.named_parameters())
    trainee, callback = copy.deepcopy(model), movement.MovementScore()
    from tinyprune.fast.optim import Adam
    fit(trainee, Dataset(X, y, num_classes=2), epochs=2, batch_size=3, seed=5, progress=False,
        optimizer=Adam(trainee.parameters(), lr=0.01), callbacks=[callback])
    for name in scores:
        np.testing.assert_array_equal(scores[name], callback.scores[name])
    again = crit.movement(model, X, y, epochs=2, lr=0.01, batch_size=3, seed=5)
    other = crit.movement(model, X, y, epochs=2, lr=0.01, batch_size=3, seed=6)
    assert all(np.array_equal(scores[n], again[n]) for n in scores)
    assert not np.array_equal(scores["layers.0.W"], other["layers.0.W"])


def test_movement_criterion_takes_accumulated_scores():
    model, X, y = tiny()
    callback = movement.MovementScore()
    with pytest.raises(ValueError, match="no step"):
        crit.movement(model, scores=callback)
    fit(copy.deepcopy(model), Dataset(X, y, num_classes=2), epochs=1, batch_size=4, progress=False,
        callbacks=[callback])
    given_scores = crit.movement(model, scores=callback)
    assert all(np.array_equal(given_scores[n], callback.scores[n]) for n in callback.scores)
    bad = dict(callback.scores)
    bad["layers.0.W"] = np.zeros((2, 2))
    with pytest.raises(ShapeError, match="layers.0.W"):
        crit.movement(model, scores=bad)
    del bad["layers.0.W"]
    with pytest.raises(ValueError, match="no entry"):
        crit.movement(model, scores=bad)
    with pytest.raises(ValueError, match="calibration data"):
        crit.movement(model)


def test_prune_with_movement_scores_needs_no_data_and_prunes_the_lowest():
    model, _, _ = tiny(sizes=(3, 4, 2))
    generator = np.random.default_rng(1)
    scores = {name: generator.normal(size=p.shape) for name, p in model.named_parameters()}
    core.prune(model, 0.5, "movement", scope="layer", scores=scores)
    for name in ("layers.0.W", "layers.1.W"):
        mask, s = model.layers[int(name[7])].W.mask, scores[name]
        assert (~mask).sum() == round(0.5 * s.size)
        assert s[~mask].max() <= s[mask].min()                  # signed: the most negative go first
    with pytest.raises(ValueError, match="needs calibration data"):
        core.prune(tiny()[0], 0.5, "movement")


# ------------------------------------------------------------ from prune.prune
@pytest.mark.parametrize("criterion", ["magnitude_activation", "movement"])
def test_new_weight_criteria_from_prune_exact_count(criterion):
    model, X, y = tiny(sizes=(6, 5, 3), n=12)
    masks = core.prune(model, 0.6, criterion, data=(X, y), batch_size=4)
    total = sum(m.size for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.6 * total)
    assert criterion in NEEDS_DATA


@pytest.mark.parametrize("criterion", ["fpgm", "obd"])
@settings(max_examples=10)
@given(sparsity=st.sampled_from([0.25, 0.5, 0.75]), seed=st.integers(0, 50))
def test_new_neuron_criteria_from_prune_exact_count(criterion, sparsity, seed):
    model, X, y = tiny(sizes=(5, 8, 8, 3), seed=seed, n=10)
    core.prune(model, sparsity, criterion, scope="layer", structure="neurons", data=(X, y))
    for index in (0, 1):
        assert int((~model.layers[index].b.mask).sum()) == round(sparsity * 8)


def test_neuron_obd_from_prune_removes_the_smallest_saliency():
    model, X, y = tiny(sizes=(5, 8, 3), n=10)
    scores = crit.neuron_obd(model, X, y)["layers.0"]
    core.prune(model, 0.25, "obd", scope="layer", structure="neurons", data=(X, y))
    assert sorted(np.flatnonzero(~model.layers[0].b.mask)) == sorted(np.argsort(scores)[:2])


# ------------------------------------------------------------ hessian names
def test_an_unknown_hessian_name_is_refused_and_the_old_gauss_newton_name_is_gone():
    model, X, y = tiny()
    for name in ("exact", "gauss_newton"):
        with pytest.raises(ValueError, match="expected one of"):
            crit.hessian_diagonal(model, X, y, hessian=name)
