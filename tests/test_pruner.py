"""``Pruner``: a pruning schedule stepped by the user's own training loop (and by ``fit``)."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

import tinyprune as tp
from tinyprune import prune
from tinyprune.core.backprop import gradients
from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.experiment.recipe import Recipe
from tinyprune.experiment.run import Run, calibration_rows
from tinyprune.experiment.schedules import Gradual
from tinyprune.prune.masks import reapply
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


# ------------------------------------------------------------------ from a Recipe
def _recipe(**changes) -> Recipe:
    fields = dict(sparsity=0.8, criterion="obd", scope="global", schedule="gradual", head_start=0.0, epochs=2,
                  ramp=0.5, recovery="finetune", batch_size=32, calibration=128, seed=0)
    return Recipe(**{**fields, **changes})


@pytest.mark.parametrize("criterion, scope", [("magnitude", "layer"), ("obd", "global"), ("lamp", "global")])
def test_a_hand_written_loop_reaches_the_recipes_sparsity_with_its_criterions_masks(criterion, scope):
    X, y = _blobs(320)
    model = MLP([12, 24, 16, 4], seed=0)
    recipe = _recipe(criterion=criterion, scope=scope)
    pruner = tp.Pruner.from_recipe(model, recipe, data=(X, y))           # 10 steps an epoch: ramp to step 10
    assert (pruner.schedule.end_step, pruner.schedule.every) == (10, 1)
    calibration = calibration_rows(Dataset(X, y), recipe.calibration, recipe.seed)
    g = np.random.default_rng(1)
    for t in range(1, 21):
        rows = g.choice(len(X), 32, replace=False)
        _, grads = gradients(model, X[rows], y[rows])
        for name, parameter in model.named_parameters():
            parameter.data -= 0.05 * grads[name]
        if t == 10:                       # the last pruning step: the criterion's own masks, on this model
            expected = copy.deepcopy(model)
            reapply(expected)
            options = {"data": calibration} if criterion == "obd" else {}
            prune.prune(expected, 0.8, criterion=criterion, scope=scope, seed=recipe.seed, **options)
        pruner.step()
        if t == 10:
            for name, mask in pruner.masks.items():
                kept = dict(expected.named_parameters())[name].mask
                np.testing.assert_array_equal(mask, kept, err_msg=name)
    assert pruner.history[-1] == (10, 0.8) and len(pruner.history) == 10
    weights = sum(layer.W.data.size for layer in model.layers)
    if scope == "global":
        assert round(pruner.sparsity * weights) == round(0.8 * weights)
    else:
        assert all(int((~mask).sum()) == round(0.8 * mask.size) for mask in pruner.masks.values())


@pytest.mark.parametrize("criterion", ["obd", "magnitude", "obs"])
def test_the_experiments_gradual_schedule_and_the_pruner_from_the_same_recipe_give_the_same_masks(criterion):
    X, y = _blobs(300)
    train, val = Dataset(X[:240], y[:240]), Dataset(X[240:], y[240:])
    dense = MLP([12, 16, 4], seed=0)
    fit(dense, train, epochs=2, batch_size=32, progress=False)
    recipe = _recipe(criterion=criterion, epochs=1)
    models = [copy.deepcopy(dense) for _ in range(2)]
    run = Run(models[0], recipe, (train, val, val), say=lambda _: None)
    Gradual(recipe).start(run)
    theirs = [c for c in run.callbacks if hasattr(c, "history")][0]     # the experiment's, as its loop has it
    mine = tp.Pruner.from_recipe(models[1], recipe, data=train)
    assert type(getattr(theirs, "callback", theirs).schedule) is type(mine.schedule)   # one builder for both
    for model, callback in zip(models, (theirs, mine)):
        fit(model, train, epochs=1, batch_size=32, callbacks=[callback], progress=False, seed=0)
    assert theirs.history == mine.history and mine.history[-1][1] == 0.8
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_array_equal(a.data, b.data)
        assert (a.mask is None and b.mask is None) or (a.mask == b.mask).all()


def test_a_recipes_epochs_become_optimizer_steps():
    model = MLP([4, 3, 2], seed=0)
    pruner = tp.Pruner.from_recipe(model, _recipe(criterion="magnitude", epochs=3), steps_per_epoch=40)
    assert (pruner.schedule.end_step, pruner.schedule.every, pruner.schedule.power) == (60, 2, 3.0)
    pruner = tp.Pruner.from_recipe(model, _recipe(criterion="magnitude", prune_every=7, ramp=1.0, power=1.0),
                                   steps_per_epoch=40)
    assert (pruner.schedule.end_step, pruner.schedule.every, pruner.schedule.power) == (80, 7, 1.0)
    layers = {"layers.0.W": 0.5, "layers.1.W": 0.25}
    pruner = tp.Pruner.from_recipe(model, _recipe(criterion="magnitude", sparsity=layers), steps_per_epoch=5)
    assert pruner.final_sparsity == layers


def test_a_one_shot_recipe_prunes_at_the_first_step_by_its_criterion():
    X, y = _blobs(200)
    model = MLP([12, 16, 4], seed=0)
    expected = copy.deepcopy(model)
    recipe = _recipe(schedule="one-shot", criterion="obd", scope="layer")
    pruner = tp.Pruner.from_recipe(model, recipe, data=(X, y))
    prune.prune(expected, 0.8, criterion="obd", scope="layer", seed=0,
                data=calibration_rows(Dataset(X, y), recipe.calibration, recipe.seed))
    assert pruner.step() is True and pruner.history == [(1, 0.8)]
    assert not any(pruner.step() for _ in range(5))
    for name, mask in pruner.masks.items():
        np.testing.assert_array_equal(mask, dict(expected.named_parameters())[name].mask)


@pytest.mark.parametrize("changes, message", [
    ({"head_start": 0.94}, "head_start 0.94: the gradual schedule's head start prunes at once and solves the "
                           "survivors in closed form"),
    ({"schedule": "iterative", "steps": 2, "epochs": 2, "check_every": 1},
     "schedule 'iterative' prunes between the rounds of tinyprune's loop"),
    ({"schedule": "rigl", "criterion": "magnitude"}, "schedule 'rigl' regrows weights by their gradients"),
    ({"schedule": "one-shot", "recovery": "reconstruct"}, "recovery 'reconstruct' solves the survivors in "
                                                          "closed form"),
    ({"criterion": "movement"}, "criterion 'movement' scores by the gradients tinyprune's fit accumulates"),
    ({"allocation": "sensitivity", "criterion": "magnitude"}, "pass validation=(X, y)"),
])
def test_what_a_stepwise_pruner_cannot_run_is_refused_naming_the_field(changes, message):
    X, y = _blobs(100)
    with pytest.raises(ValueError, match=re.escape(message)):
        tp.Pruner.from_recipe(MLP([12, 8, 4], seed=0), _recipe(**changes), data=(X, y))


def test_a_recipe_without_the_rows_or_steps_it_needs_is_refused():
    model = MLP([4, 3, 2], seed=0)
    with pytest.raises(ValueError, match="criterion 'obd' reads inputs: pass data=\\(X, y\\)"):
        tp.Pruner.from_recipe(model, _recipe(), steps_per_epoch=10)
    with pytest.raises(ValueError, match="give steps_per_epoch"):
        tp.Pruner.from_recipe(model, _recipe(criterion="magnitude"))
    with pytest.raises(ValueError, match="Pruner.from_recipe"):
        tp.Pruner(model, _recipe())
    with pytest.raises(TypeError, match="recipe must be a tp.Recipe"):
        tp.Pruner.from_recipe(model, {"sparsity": 0.9}, steps_per_epoch=10)
