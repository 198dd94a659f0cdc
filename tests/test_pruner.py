"""``Pruner``: a pruning schedule stepped by the user's own training loop (and by ``fit``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import tinyprune as tp
from tinyprune import prune
from tinyprune.core.backprop import gradients
from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.experiment.recipe import Recipe
from tinyprune.experiment.run import Run
from tinyprune.experiment.schedules import Gradual
from tinyprune.training import fit, predict


def _blobs(n: int = 600, d: int = 12, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = (g.normal(size=(classes, d))[y] * 2 + g.normal(size=(n, d))).astype(np.float32)
    return X, y


def _kept(model: MLP) -> list[np.ndarray]:
    return [np.ones(layer.W.shape, bool) if layer.W.mask is None else layer.W.mask.copy()
            for layer in model.layers]


def test_a_hand_written_numpy_loop_prunes_to_the_target_exactly():
    X, y = _blobs()
    model = MLP([12, 32, 16, 4], seed=0)
    weights = sum(layer.W.data.size for layer in model.layers)          # 384 + 512 + 64 = 960
    pruner = tp.Pruner(model, 0.9, begin_step=0, end_step=60, every=10)
    g, lr, revived = np.random.default_rng(1), 0.05, 0
    velocity = {name: np.zeros_like(p.data) for name, p in model.named_parameters()}
    before = _kept(model)
    for _ in range(100):
        rows = g.choice(len(X), 32, replace=False)
        _, grads = gradients(model, X[rows], y[rows])
        for name, parameter in model.named_parameters():   # SGD with momentum that knows nothing of masks:
            velocity[name] = 0.9 * velocity[name] + grads[name]     # the velocity from before a pruning
            parameter.data -= lr * velocity[name]                  # keeps moving the pruned weights
        revived += sum(int(np.count_nonzero(layer.W.data[~kept]))
                       for layer, kept in zip(model.layers, before))
        pruner.step()
        after = _kept(model)
        for old, new, layer in zip(before, after, model.layers):
            assert not (new & ~old).any()                               # masks only lose entries
            assert (layer.W.data[~new] == 0).all()                      # pruned: exactly 0 after step()
        for layer in model.layers:
            assert layer.b.mask is None or (layer.b.data[~layer.b.mask] == 0).all()
        before = after
    assert revived > 0                     # the foreign update did move pruned weights: the re-masking counts
    assert [step for step, _ in pruner.history] == [10, 20, 30, 40, 50, 60]
    assert pruner.history[-1][1] == 0.9 and pruner.step_count == 100
    pruned = sum(int((~layer.W.mask).sum()) for layer in model.layers)
    assert pruned == round(0.9 * weights) == 864
    assert pruner.sparsity == pruned / weights
    assert set(pruner.masks) == {f"layers.{i}.W" for i in range(3)}
    assert all(mask.dtype == np.bool_ for mask in pruner.masks.values())
    assert (predict(model, X) == y).mean() > 0.9                        # the sparse model still classifies


def test_each_pruning_reaches_the_cubic_exactly():
    model = MLP([10, 20, 5], seed=0)                                    # 300 weights
    pruner = tp.Pruner(model, 0.8, begin_step=0, end_step=20, every=5)
    pruned_at = {t: round(pruner.sparsity * 300) for t in range(1, 26) if pruner.step()}
    assert pruned_at == {t: round(prune.polynomial_sparsity(t, 0.8, 0, 20) * 300) for t in (5, 10, 15, 20)}
    assert pruned_at[20] == 240 and pruner.step_count == 25


def test_sparsity_counts_the_weight_matrices_not_the_biases():
    model = MLP([10, 20, 5], seed=0)                                    # 300 weights, 25 biases
    pruner = tp.Pruner(model, 0.8, prune_biases=True)
    pruner.step()
    weights = sum(int((~layer.W.mask).sum()) for layer in model.layers)
    biases = sum(int((~layer.b.mask).sum()) for layer in model.layers)
    assert weights + biases == round(0.8 * 325) and biases > 0
    assert pruner.sparsity == weights / 300 != (weights + biases) / 325


def test_a_number_alone_prunes_once_at_the_first_step():
    model = MLP([8, 6, 3], seed=0)
    pruner = tp.Pruner(model, 0.5)
    assert pruner.sparsity == 0.0
    assert pruner.step() is True and pruner.history == [(1, 0.5)]
    masks = pruner.masks
    assert [pruner.step() for _ in range(5)] == [False] * 5
    assert all((masks[name] == mask).all() for name, mask in pruner.masks.items())
    assert pruner.sparsity == pytest.approx(round(0.5 * 66) / 66)


def test_fit_with_the_pruner_equals_fit_with_its_schedule():
    X, y = _blobs(200)
    data = Dataset(X, y)
    models = [MLP([12, 16, 4], seed=3) for _ in range(2)]
    schedule = prune.PolynomialPruning(0.75, begin_step=0, end_step=12, every=3)
    pruner = tp.Pruner.from_schedule(models[1], copy.deepcopy(schedule))
    for model, callback in zip(models, (schedule, pruner)):
        fit(model, data, epochs=3, batch_size=32, callbacks=[callback], progress=False, seed=0)
    assert schedule.history == pruner.history and pruner.step_count == 21
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_array_equal(a.data, b.data)
        assert (a.mask is None and b.mask is None) or (a.mask == b.mask).all()


def test_the_experiments_gradual_schedule_prunes_through_a_pruner():
    X, y = _blobs(300)
    train, val = Dataset(X[:240], y[:240]), Dataset(X[240:], y[240:])
    model = MLP([12, 16, 4], seed=0)
    fit(model, train, epochs=2, batch_size=32, progress=False)
    recipe = Recipe(sparsity=0.8, criterion="magnitude", schedule="gradual", head_start=0.0, epochs=1,
                    recovery="finetune", calibration=64)
    run = Run(model, recipe, (train, val, val), say=lambda _: None)
    Gradual(recipe).start(run)
    (pruner,) = [c for c in run.callbacks if isinstance(c, prune.Pruner)]
    assert pruner.model is run.model and pruner.schedule.final_sparsity == 0.8


def test_bad_input_is_refused_with_what_is_expected():
    model = MLP([4, 3, 2], seed=0)
    pruner = tp.Pruner(model, 0.5, begin_step=2, end_step=6, every=2)
    pruner.step(3)
    with pytest.raises(ValueError, match=r"step \(after step 3\) must be an int >= 4, got 3"):
        pruner.step(3)
    with pytest.raises(ValueError, match="another model"):
        pruner.on_step_end(MLP([4, 3, 2], seed=0), None, 1, 4)
    schedule = prune.PolynomialPruning(0.5, 0, 10)
    with pytest.raises(ValueError, match="from_schedule"):
        tp.Pruner(model, schedule)
    with pytest.raises(ValueError, match="must be a prune.PolynomialPruning"):
        tp.Pruner.from_schedule(model, 0.5)
    with pytest.raises(ValueError, match="end_step must be an int >= 1, got 0"):
        tp.Pruner(model, 0.5, begin_step=0, end_step=0)
    with pytest.raises(ValueError, match="final_sparsity"):
        tp.Pruner(model, 1.5)
    with pytest.raises(TypeError, match="prunes an MLP"):
        tp.Pruner("model", 0.5)
    assert tp.Pruner is prune.Pruner
