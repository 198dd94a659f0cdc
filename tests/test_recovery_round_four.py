"""The recovery levers of issue 25: each layer's rate by its own density (``lr_scaling =
"sqrt-density-per-layer"``: the rule, the callback that follows the masks, the run that uses it) and the
closed-form solve after training (``final_solve``: OBS's update for the fixed mask, a least-squares refit to
the dense outputs), with the recipe's refusals."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyprune import recover
from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.experiment import prune_and_recover
from tinyprune.experiment.recipe import Recipe, RecipeError
from tinyprune.fast.optim import Adam
from tinyprune.training import fit

RUN = dict(sparsity=0.95, head_start=0.9, epochs=2, check_every=2, tolerance=0.0, calibration=10_000,
           prune_every=3, batch_size=16)


@pytest.fixture(scope="module")
def tiny_data():
    g = np.random.default_rng(0)
    y = np.arange(500) % 4
    X = (g.normal(size=(4, 12))[y] * 2 + g.normal(size=(500, 12))).astype(np.float32)
    return Dataset(X[:400], y[:400]), Dataset(X[400:], y[400:])


@pytest.fixture(scope="module")
def dense(tiny_data):
    model = MLP([12, 16, 16, 4], seed=0)
    fit(model, tiny_data[0], epochs=5, batch_size=32, progress=False)
    return model


def _run(dense, data, **changes):
    model = copy.deepcopy(dense)
    report = prune_and_recover(model, (data[0], data[1], data[1]), Recipe(**{**RUN, **changes}))
    return model, report


# --------------------------------------------------------------------------- the rule
@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), st.integers(0, 2**31 - 1))
def test_each_layer_moves_at_the_density_factor_of_its_own_sparsity(fractions, seed):
    model = MLP([20, 10, 8, 3], seed=0)
    g = np.random.default_rng(seed)
    for layer, fraction in zip(model.layers, fractions):
        layer.W.mask = g.random(layer.W.shape) >= fraction
    scales = recover.layer_density_scales(model)
    assert len(scales) == len(model.parameters())
    for index, layer in enumerate(model.layers):
        s = 1 - layer.W.mask.mean()
        expected = 1.0 if s == 1 else max(1.0, math.sqrt(0.1 / (1 - s)))
        assert scales[2 * index] == pytest.approx(expected, rel=1e-12)   # W_l
        assert scales[2 * index + 1] == scales[2 * index]                # b_l: its layer's factor
    assert min(scales) >= 1.0


def test_an_unpruned_layer_keeps_its_rate_and_the_factor_refuses_bad_fractions():
    assert recover.layer_density_scales(MLP([5, 4, 2], seed=0)) == [1.0] * 4
    assert recover.density_factor(0.98) == pytest.approx(math.sqrt(5))
    assert recover.density_factor(1.0) == 1.0            # an empty matrix has nothing to move
    for bad in ({"sparsity": 1.5}, {"sparsity": -0.1}, {"sparsity": math.nan}, {"reference": 1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            recover.density_factor(**{"sparsity": 0.9, **bad})


def test_the_callback_sets_the_rates_at_the_start_and_after_a_mask_changes():
    model = MLP([10, 6, 3], seed=0)
    optimizer, rates = Adam(model.parameters(), lr=1e-2), recover.LayerDensityRates()
    rates.on_train_begin(model, optimizer)
    assert optimizer.lr_scales == [1.0] * 4
    W = model.layers[0].W
    W.mask = np.zeros(W.shape, bool)
    W.mask[:3, 0] = True                                  # 3 of 60 kept: sparsity 0.95
    rates.on_step_end(model, optimizer, 1, 1)
    assert optimizer.lr_scales[:2] == pytest.approx([math.sqrt(2)] * 2) and optimizer.lr_scales[2:] == [1, 1]


# --------------------------------------------------------------------------- the rule in a run
def test_a_run_with_rates_per_layer_says_so_and_differs_from_one_factor(dense, tiny_data):
    model, report = _run(dense, tiny_data, lr_scaling="sqrt-density-per-layer")
    action = report.rounds[0].action
    assert "lr 0.01 cosine x each layer's density factor" in action   # the own rate, unscaled, per layer
    again, _ = _run(dense, tiny_data, lr_scaling="sqrt-density-per-layer")
    assert all(np.array_equal(a.data, b.data) for a, b in zip(model.parameters(), again.parameters()))
    network, other = _run(dense, tiny_data, lr_scaling="sqrt-density")
    assert "lr 0.0141421 cosine)" in other.rounds[0].action
    assert not np.array_equal(model.layers[0].W.data, network.layers[0].W.data)


def test_an_explicit_rate_has_no_factor_per_layer(dense, tiny_data):
    _, report = _run(dense, tiny_data, lr_scaling="sqrt-density-per-layer", lr=3e-3)
    assert "lr 0.003 cosine)" in report.rounds[0].action


# --------------------------------------------------------------------------- the solve after training
@pytest.mark.parametrize("which", ["every-layer", "output-layer"])
def test_the_final_solve_is_the_least_squares_refit_of_the_trained_model(dense, tiny_data, which):
    model, report = _run(dense, tiny_data, final_solve=which)
    trained, _ = _run(dense, tiny_data)                    # the same run without the solve
    layers = None if which == "every-layer" else [len(model.layers) - 1]
    expected = copy.deepcopy(trained)
    recover.reconstruct(expected, dense, tiny_data[0].X, damping=Recipe().damping, layers=layers)
    for a, b in zip(model.parameters(), expected.parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-6)
        assert np.array_equal(a.mask, b.mask) if a.mask is not None else b.mask is None
    kept = trained.layers[0] if which == "output-layer" else None
    if kept is not None:                                   # the trained hidden layers are kept as they are
        assert np.array_equal(model.layers[0].W.data, kept.W.data)
    assert report.steps[-2]["kind"] == "closed form" and "final solve" in report.steps[-2]["action"]
    assert report.steps[-3]["kind"] == "epoch" and report.closed_form_seconds > 0


def test_the_final_solve_needs_a_training_recovery_and_a_known_name():
    with pytest.raises(RecipeError, match="final_solve 'every-layer' .* needs a training recovery"):
        Recipe(final_solve="every-layer", recovery="reconstruct", schedule="one-shot")
    with pytest.raises(RecipeError, match="final_solve: expected one of none, every-layer, output-layer"):
        Recipe(final_solve="all")
    assert Recipe().final_solve == "none" and Recipe(recovery="reconstruct+finetune", schedule="one-shot",
                                                      final_solve="output-layer").final_solve
