"""The recovery levers of issue 16: the residual at every hidden layer (hand-derived == autograd == finite
differences), weight averaging with the mask fixed, RigL regrowth at one sparsity, allocation with a per-layer
head start, OBS at every step of the gradual schedule, and the recipe fields that expose them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyprune import prune, recover
from tinyprune.core import backprop
from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.experiment import prune_and_recover
from tinyprune.experiment.recipe import Recipe, RecipeError
from tinyprune.experiment.run import Run
from tinyprune.experiment.schedules import Gradual
from tinyprune.gradcheck import compare, numeric_gradient
from tinyprune.prune import masks
from tinyprune.testing import MLPCase, mlp_cases
from tinyprune.training import fit

OPTIONS = {"output": "kl", "temperature": 2.0, "alpha": 0.3}


# --------------------------------------------------------------------------- (a) the residual at every layer
def _teacher_targets(case: MLPCase) -> tuple[np.ndarray, list[np.ndarray]]:
    teacher = MLP(case.model.sizes, activation=case.model.activation, seed=99, dtype=np.float64)
    cache = backprop.forward(teacher, case.X)
    return cache.logits, cache.inputs[1:]


def _hand_gradients(model: MLP, X: np.ndarray, y: np.ndarray, z_t: np.ndarray, a_t: list[np.ndarray],
                    weight: float) -> tuple[float, dict[str, np.ndarray]]:
    cache = backprop.forward(model, X)
    value, dlogits = recover.distillation_loss(cache.logits, z_t, y, **OPTIONS)
    hidden_value, dhidden = recover.hidden_residual_loss(cache.inputs[1:], a_t, weight)
    return value + hidden_value, backprop.backward(model, cache, dlogits, dhidden)


@settings(max_examples=25, deadline=None)
@given(mlp_cases(activations=("relu", "tanh", "sigmoid", "gelu_tanh", "leaky_relu:0.2")),
       st.sampled_from([0.0, 0.1, 2.0]))
def test_hidden_residual_gradient_equals_autograd_and_finite_differences(case: MLPCase, weight: float):
    model, X, y = case.model, case.X, case.y
    z_t, a_t = _teacher_targets(case)
    value, grads = _hand_gradients(model, X, y, z_t, a_t, weight)
    model.zero_grad()
    tensor = recover.hidden_distillation_tensor(model, X, z_t, a_t, y, hidden_weight=weight, **OPTIONS)
    tensor.backward()
    assert value == pytest.approx(float(tensor.data), rel=1e-10, abs=1e-12)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad, rtol=1e-8, atol=1e-12, err_msg=name)

    def loss(_: np.ndarray) -> float:
        return _hand_gradients(model, X, y, z_t, a_t, weight)[0]

    names = [name for name, _ in model.named_parameters()]
    numeric = [numeric_gradient(loss, p.data) for _, p in model.named_parameters()]
    result = compare([grads[n] for n in names], numeric, rtol=1e-5, atol=1e-8)
    assert result.ok, f"{names[result.argument]}: {result}"


def test_a_hidden_gradient_left_out_fails_the_check():
    case = MLPCase(MLP([5, 4, 3, 2], seed=0, dtype=np.float64), np.random.default_rng(0).normal(size=(6, 5)),
                   np.arange(6) % 2)
    z_t, a_t = _teacher_targets(case)
    _, full = _hand_gradients(case.model, case.X, case.y, z_t, a_t, 1.0)
    _, outputs_only = _hand_gradients(case.model, case.X, case.y, z_t, a_t, 0.0)
    assert not np.allclose(full["layers.0.W"], outputs_only["layers.0.W"])
    numeric = numeric_gradient(lambda _: _hand_gradients(case.model, case.X, case.y, z_t, a_t, 1.0)[0],
                               case.model.layers[0].W.data)
    assert compare([full["layers.0.W"]], [numeric]).ok
    assert not compare([outputs_only["layers.0.W"]], [numeric]).ok


def test_hidden_residual_is_zero_at_the_teacher_and_masked_entries_stay_zero():
    model = MLP([6, 5, 4, 3], seed=0)
    X = np.random.default_rng(0).random((20, 6)).astype(np.float32)
    a_t = recover.hidden_activations(model, X, chunk=7)
    value, grads = recover.hidden_residual_loss(recover.hidden_activations(model, X), a_t, 3.0)
    assert value == 0.0 and all(not g.any() for g in grads)
    student = copy.deepcopy(model)
    prune.prune(student, 0.5, "magnitude")
    part = recover.Distillation(model, output="kl", temperature=2.0, hidden_weight=1.0)
    history = fit(student, Dataset(X, np.arange(20) % 3), epochs=3, batch_size=5, loss=part, progress=False)
    assert len(history) == 3
    for _, p in student.named_parameters():
        if p.mask is not None:
            assert not p.data[~p.mask].any()


def test_hidden_weight_is_refused_where_it_cannot_work():
    with pytest.raises(ValueError, match="hidden_weight"):
        recover.Distillation(MLP([3, 2]), hidden_weight=-1.0)
    part = recover.Distillation(MLP([3, 2, 2]), hidden_weight=1.0)
    with pytest.raises(ValueError, match="engine='backprop'"):
        part.tensor(None, np.zeros(1), np.zeros(1, int))
    with pytest.raises(RecipeError, match="hidden_weight"):
        Recipe(recovery="finetune", schedule="one-shot", head_start=0.0, hidden_weight=0.5)
    with pytest.raises(RecipeError, match="hidden_weight"):
        Recipe(hidden_weight=float("nan"))


def test_distillation_with_hidden_layers_brings_the_student_closer_to_the_teacher_inside():
    g = np.random.default_rng(0)
    X = g.random((200, 8)).astype(np.float32)
    teacher = MLP([8, 16, 16, 3], seed=0)
    gaps = {}
    for weight in (0.0, 1.0):
        student = MLP([8, 16, 16, 3], seed=1)
        part = recover.Distillation(teacher, hidden_weight=weight)
        fit(student, Dataset(X, np.zeros(200, int)), epochs=30, batch_size=20, loss=part, progress=False)
        hidden_s, hidden_t = recover.hidden_activations(student, X), recover.hidden_activations(teacher, X)
        gaps[weight] = recover.hidden_residual_loss(hidden_s, hidden_t)[0]
    assert gaps[1.0] < gaps[0.0] / 2


# --------------------------------------------------------------------------- (b) weight averaging
def test_swa_is_the_mean_and_ema_the_exponential_average_of_the_iterates():
    model = MLP([3, 2], seed=0, dtype=np.float64)
    W = model.layers[0].W
    iterates = [np.full(W.shape, float(t)) for t in range(1, 5)]
    for kind, expected in (("swa", 2.5), ("ema", None)):
        averager = recover.WeightAverage(kind, start_step=1, end_step=4, decay=0.5)
        for step, values in enumerate(iterates, 1):
            W.data[...] = values
            averager.on_step_end(model, None, 1, step)
        ema = 1.0
        for t in (2, 3, 4):
            ema = 0.5 * ema + 0.5 * t
        np.testing.assert_allclose(W.data, expected if expected is not None else ema)
        assert averager.applied


def test_the_average_keeps_the_mask_and_restarts_when_the_mask_changes():
    model = MLP([4, 3], seed=0, dtype=np.float64)
    W = model.layers[0].W
    averager = recover.WeightAverage("swa", start_step=1, end_step=3)
    averager.on_step_end(model, None, 1, 1)
    W.data += 10.0
    masks.apply_mask(W, np.arange(12).reshape(4, 3) % 2 == 0)      # a new mask: the average starts again
    kept = W.data.copy()
    averager.on_step_end(model, None, 1, 2)
    averager.on_step_end(model, None, 1, 3)
    assert averager.restarts == 1
    np.testing.assert_allclose(W.data, kept)
    assert not W.data[~W.mask].any()


def test_weight_average_is_refused_without_training_or_before_the_ramp_ends():
    with pytest.raises(ValueError, match="unknown weight average"):
        recover.WeightAverage("mean", start_step=0, end_step=1)
    with pytest.raises(RecipeError, match="average"):
        Recipe(average="ema", recovery="reconstruct", schedule="one-shot", head_start=0.0)
    with pytest.raises(RecipeError, match="average_start"):
        Recipe(average="ema", average_start=0.25, ramp=0.5)
    with pytest.raises(RecipeError, match="average"):
        Recipe(average="median")


# --------------------------------------------------------------------------- (c) RigL regrowth
def test_regrow_keeps_each_layers_sparsity_drops_small_and_grows_large_gradient():
    g = np.random.default_rng(0)
    model = MLP([10, 8, 4], seed=0, dtype=np.float64)
    prune.prune(model, 0.6, "magnitude", "layer")
    X, y = g.normal(size=(64, 10)), g.integers(0, 4, size=64)
    before = masks.get_masks(model)
    cache = backprop.forward(model, X)
    from tinyprune.core import losses

    free = backprop.backward(model, cache, losses.loss_and_grad("cross_entropy", cache.logits, y)[1],
                             masked=False)
    weights = {name: p.data.copy() for name, p in model.named_parameters()}
    moved = prune.regrow(model, 0.25, X, y)
    after = masks.get_masks(model)
    for name, mask in before.items():
        assert after[name].sum() == mask.sum()                    # the same sparsity
        dropped, grown = mask & ~after[name], ~mask & after[name]
        assert dropped.sum() == grown.sum() == moved[name] == int(0.25 * mask.sum())
        kept_alive = mask & after[name]
        assert np.abs(weights[name][dropped]).max() <= np.abs(weights[name][kept_alive]).min()
        still_dead = ~mask & ~after[name]
        assert np.abs(free[name][grown]).min() >= np.abs(free[name][still_dead]).max()
        assert not model.named_parameters()[0][1].data[~after["layers.0.W"]].any()
        p = dict(model.named_parameters())[name]
        assert not p.data[grown].any()                            # a grown weight starts at 0


def test_rigl_callback_decays_to_zero_and_stops_before_the_end():
    g = np.random.default_rng(1)
    model = MLP([6, 5, 3], seed=0)
    prune.prune(model, 0.5, "magnitude", "layer")
    callback = prune.RigLRegrowth((g.normal(size=(40, 6)), g.integers(0, 3, 40)), begin_step=0, end_step=10,
                                  every=2, fraction=0.4, batch=16, seed=0)
    assert callback.fraction_at(0) == pytest.approx(0.4) and callback.fraction_at(10) == pytest.approx(0.0)
    for step in range(1, 13):
        callback.on_step_end(model, None, 1, step)
    assert [step for step, _ in callback.history] == [2, 4, 6, 8]


def test_rigl_schedule_reaches_the_target_with_masks_fixed_after_the_ramp(tiny_data):
    model = _trained(tiny_data)
    recipe = Recipe(schedule="rigl", sparsity=0.8, head_start=0.5, epochs=2, check_every=2, tolerance=0.0,
                    calibration=200, prune_every=3, batch_size=16, criterion="magnitude")
    report = prune_and_recover(model, tiny_data, recipe)
    assert report.sparsity == pytest.approx(0.8, abs=0.01)
    assert report.recipe["schedule"] == "rigl"
    with pytest.raises(RecipeError, match="rigl"):
        Recipe(schedule="rigl", structure="neurons", criterion="l2", head_start=0.0, sparsity=0.5)


# --------------------------------------------------------------------------- (d) allocation + head start
@pytest.mark.parametrize("method", ["erk", "lamp"])
def test_allocation_with_a_head_start_prunes_min_of_head_and_each_layer_then_the_rest(tiny_data, method):
    model = _trained(tiny_data)
    recipe = Recipe(allocation=method, sparsity=0.9, head_start=0.6, epochs=2, check_every=2, tolerance=0.0,
                    calibration=200, batch_size=16, prune_every=3)
    target = prune.allocate(copy.deepcopy(model), 0.9, method)
    report = prune_and_recover(model, tiny_data, recipe)
    for name, s in target.items():
        assert report.layer_sparsity[name] == pytest.approx(s, abs=0.03)


# --------------------------------------------------------------------------- (e) OBS at every gradual step
OBS_GRADUAL = dict(schedule="gradual", criterion="obs", scope="layer", sparsity=0.75, head_start=0.0,
                   epochs=2, check_every=2, tolerance=0.0, calibration=200, prune_every=3, batch_size=16)


def _mask(parameter) -> np.ndarray:
    return np.ones(parameter.shape, bool) if parameter.mask is None else parameter.mask.copy()


def _kept_per_unit(model: MLP) -> list[np.ndarray]:
    return [layer.W.mask.sum(axis=0) for layer in model.layers]


def test_a_gradual_obs_run_reaches_obs_counts_per_unit_and_is_deterministic(tiny_data):
    dense = _trained(tiny_data)
    models = [copy.deepcopy(dense) for _ in range(2)]
    reports = [prune_and_recover(m, tiny_data, Recipe(**OBS_GRADUAL)) for m in models]
    for layer, kept in zip(models[0].layers, _kept_per_unit(models[0])):
        d = layer.W.shape[0]                        # OBS counts per unit: each keeps d - round(s d) inputs
        assert (kept == d - round(0.75 * d)).all()
        assert (layer.W.data[~layer.W.mask] == 0).all()
    assert reports[0].closed_form_seconds > 0       # the surgeries count as closed-form time
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert reports[0].final_val_accuracy == reports[1].final_val_accuracy


def _gradual_obs_run(data, **changes) -> tuple[Run, object]:
    train, val = data
    run = Run(_trained(data), Recipe(**{**OBS_GRADUAL, **changes}), (train, val, val), say=lambda _: None)
    Gradual(run.recipe).start(run)
    (pruning,) = [c for c in run.callbacks if hasattr(c, "history")]
    return run, pruning


def test_each_gradual_obs_step_is_the_surgery_with_its_update(tiny_data):
    run, pruning = _gradual_obs_run(tiny_data)
    X = run.calibration[0]
    for step in range(1, 8):
        before = copy.deepcopy(run.model)
        pruning.on_step_end(run.model, None, 0, step)
        if step % 3:
            continue                                # no pruning step: nothing changes
        s = pruning.history[-1][1]
        expected = copy.deepcopy(before)            # OBS alone, on the same rows, from the same weights
        prune.obs.obs_prune(expected, X, {i: s for i in range(3)}, damping=run.recipe.damping)
        moved = 0
        for old, new, want in zip(before.layers, run.model.layers, expected.layers):
            old_mask = _mask(old.W)
            assert not (new.W.mask & ~old_mask).any()                        # masks only lose entries
            np.testing.assert_array_equal(new.W.mask, want.W.mask)
            np.testing.assert_allclose(new.W.data, want.W.data, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(new.b.data, want.b.data, rtol=1e-6, atol=1e-7)
            removed = old_mask & ~new.W.mask
            survivors_of_a_changed_unit = new.W.mask & removed.any(axis=0)
            moved += int((new.W.data != old.W.data)[survivors_of_a_changed_unit].sum())
        assert moved > 0                            # the survivors moved: not a mask alone
    assert run.closed_form_seconds > 0


def test_gradual_obs_masks_only_lose_entries_during_training(tiny_data):
    run, pruning = _gradual_obs_run(tiny_data, epochs=1, check_every=1)
    masks_seen: list[list[np.ndarray]] = []

    class Record:
        def on_step_end(self, model, optimizer, epoch, step):
            masks_seen.append([_mask(layer.W) for layer in model.layers])

    fit(run.model, run.train, epochs=1, batch_size=16, callbacks=[*run.callbacks, Record()], progress=False)
    assert len(pruning.history) > 3
    for earlier, later in zip(masks_seen, masks_seen[1:]):
        assert all(not (b & ~a).any() for a, b in zip(earlier, later))
    for layer, kept in zip(run.model.layers, _kept_per_unit(run.model)):
        assert (kept == layer.W.shape[0] - round(0.75 * layer.W.shape[0])).all()
        assert (layer.W.data[~layer.W.mask] == 0).all()


def test_gradual_obs_within_obd_budgets_takes_each_layer_sparsity_from_one_obd_ranking(tiny_data):
    run, pruning = _gradual_obs_run(tiny_data, scope="global", obs_allocation="obd")
    for step in (1, 2, 3):
        before = copy.deepcopy(run.model)
        pruning.on_step_end(run.model, None, 0, step)
    probe = copy.deepcopy(before)                   # the OBD ranking of the step, on the same rows
    obd = prune.prune(probe, pruning.history[-1][1], "obd", data=run.calibration, seed=run.recipe.seed)
    for name, layer in zip(obd, run.model.layers):
        d = layer.W.shape[0]
        pruned_per_unit = round((1 - obd[name].mean()) * d)         # OBS counts per unit
        assert ((~layer.W.mask).sum(axis=0) == pruned_per_unit).all()
    shares = [1 - layer.W.mask.mean() for layer in run.model.layers]
    assert len(set(np.round(shares, 6))) > 1        # layers differ: not one sparsity for every layer
    with pytest.raises(RecipeError, match="obs_allocation"):
        Recipe(criterion="obd", obs_allocation="obd")


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def tiny_data():
    g = np.random.default_rng(0)
    y = np.arange(500) % 4
    centres = g.normal(size=(4, 12)) * 2
    X = (centres[y] + g.normal(size=(500, 12))).astype(np.float32)
    return (Dataset(X[:400], y[:400]), Dataset(X[400:], y[400:]))


def _trained(data) -> MLP:
    model = MLP([12, 16, 16, 4], seed=0)
    fit(model, data[0], epochs=5, batch_size=32, progress=False)
    return model
