"""Activations as part of the model: every activation's derivative three ways (autograd, the hand-derived
``backprop.derivative``, central differences) in float64, the fast path equal to the core for each, the
closed forms (compaction, reconstruction, sparse inference, criteria) reading the model's activation, and
bad names refused with a suggestion."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyprune
from tinyprune.core import backprop, losses
from tinyprune.core import train as core_train
from tinyprune.core.autograd import Tensor
from tinyprune.core.batches import Dataset
from tinyprune.core.nn import ACTIVATIONS, MLP, activate
from tinyprune.gradcheck import compare, gradcheck, numeric_gradient
from tinyprune.prune.compact import compact
from tinyprune.prune.core import neurons
from tinyprune.prune.criteria import hessian_diagonal
from tinyprune.sparse import SparseMLP
from tinyprune.testing import MLPCase, arrays, mlp_cases, nonzero_arrays, shapes

SPECS = (*ACTIVATIONS, "leaky_relu:0.2")


@pytest.mark.parametrize("spec", SPECS)
@given(x=nonzero_arrays(shapes(), bound=4.0, margin=1e-3))
def test_each_derivative_by_hand_equals_autograd_and_central_differences(spec, x):
    by_hand = np.broadcast_to(backprop.derivative(x, spec), x.shape)
    t = Tensor(x, requires_grad=True)
    activate(t, spec).sum().backward()
    np.testing.assert_allclose(t.grad, by_hand, rtol=1e-12, atol=1e-14)
    eps = 1e-6                              # elementwise, so central differences run on the whole array
    numeric = (activate(x + eps, spec) - activate(x - eps, spec)) / (2 * eps)
    result = compare([by_hand], [numeric], rtol=1e-6, atol=1e-9)
    assert result.ok, str(result)
    assert gradcheck(lambda u: activate(u, spec).sum(), x).ok


@pytest.mark.parametrize(("spec", "z", "a", "slope"), [
    ("relu", [-1.0, 2.0], [0.0, 2.0], [0.0, 1.0]),
    ("tanh", [0.0], [0.0], [1.0]),
    ("sigmoid", [0.0, -800.0, 800.0], [0.5, 0.0, 1.0], [0.25, 0.0, 0.0]),     # no overflow
    ("gelu_tanh", [0.0, 1.0], [0.0, 0.8411919906082768], [0.5, 1.0829640838457826]),
    ("leaky_relu", [-2.0, 3.0], [-0.02, 3.0], [0.01, 1.0]),
    ("leaky_relu:0.3", [-2.0], [-0.6], [0.3]),
    ("identity", [-2.0], [-2.0], [1.0]),
])
def test_values_at_known_points(spec, z, a, slope):
    """gelu_tanh(1) = ½(1 + tanh(√(2/π)·1.044715)) (torch.nn.GELU(approximate="tanh") gives 0.8411920)."""
    z = np.array(z)
    np.testing.assert_allclose(activate(z, spec), a, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(np.broadcast_to(backprop.derivative(z, spec), z.shape), slope, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(mlp_cases(activations=SPECS), st.sampled_from(losses.LOSSES))
def test_model_gradients_three_ways_for_every_activation(case: MLPCase, loss: str):
    model, X, y = case.model, case.X, case.y
    _, grads = backprop.gradients(model, X, y, loss=loss)
    model.zero_grad()
    losses.loss_tensor(loss, model(Tensor(X)), y).backward()
    names = [name for name, _ in model.named_parameters()]
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad, rtol=1e-8, atol=1e-13, err_msg=f"{model} {name}")
    numeric = {name: numeric_gradient(lambda _: losses.loss_and_grad(loss, model(X), y)[0], p.data)
               for name, p in model.named_parameters()}
    result = compare([grads[n] for n in names], [numeric[n] for n in names], rtol=1e-5, atol=1e-8)
    assert result.ok, f"{model}: {names[result.argument]}: {result}"


@pytest.mark.parametrize("engine", ["backprop", "autograd"])
@pytest.mark.parametrize("spec", SPECS)
def test_fast_fit_equals_core_fit_for_every_activation(spec, engine):
    X = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    data = Dataset(X, (X[:, 0] + X[:, 1] > 0).astype(np.int64))
    plain, quick = MLP([5, 6, 2], activation=spec, seed=1), MLP([5, 6, 2], activation=spec, seed=1)
    with tinyprune.plain():
        core_train.fit(plain, data, epochs=2, batch_size=8, engine=engine, seed=3)
    tinyprune.fit(quick, data, epochs=2, batch_size=8, engine=engine, seed=3, progress=False)
    for (name, a), (_, b) in zip(plain.named_parameters(), quick.named_parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-6, atol=1e-7, err_msg=f"{spec} {name}")


@pytest.mark.parametrize("spec", SPECS)
def test_compaction_folds_act_of_the_bias_and_keeps_the_function(spec):
    model = MLP([6, 8, 5, 3], activation=spec, seed=0)
    for layer in model.layers:
        layer.b.data[...] = np.random.default_rng(1).uniform(-0.5, 0.5, size=layer.b.shape)
    model.layers[0].W.data[:, 1] = 0          # neuron 1: the constant act(b_0[1]), folded into the next bias
    _ = neurons(model, 0.4, scope="layer")
    small = compact(model)
    assert small.activation == spec and small.sizes[1] < 8
    X = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    np.testing.assert_allclose(small(X), model(X), atol=2e-6)


def test_a_sigmoid_unit_with_everything_pruned_still_emits_one_half():
    model = MLP([3, 2, 2], activation="sigmoid", seed=0, dtype=np.float64)
    model.layers[0].W.data[:, 0], model.layers[0].b.data[0] = 0, 0
    small = compact(model)
    expected = model.layers[1].b.data + 0.5 * model.layers[1].W.data[0]
    np.testing.assert_allclose(small.layers[1].b.data, expected)
    X = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_allclose(small(X), model(X), atol=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_sparse_inference_and_reconstruction_read_the_activation(spec):
    model = MLP([6, 7, 3], activation=spec, seed=2)
    model.layers[0].W.mask = np.random.default_rng(0).random((6, 7)) < 0.5
    model.layers[0].W.data[~model.layers[0].W.mask] = 0
    X = np.random.default_rng(1).normal(size=(12, 6)).astype(np.float32)
    for kernel in ("dense", "gather"):
        np.testing.assert_allclose(SparseMLP.from_model(model, kernels=kernel).logits(X), model(X), atol=1e-5)
    dense = MLP([6, 7, 3], activation=spec, seed=2)
    pruned = copy.deepcopy(dense)
    pruned.layers[1].W.mask = np.ones((7, 3), bool)
    pruned.layers[1].W.mask[:3] = False
    pruned.layers[1].W.data[:3] = 0
    report = tinyprune.recover.reconstruct(pruned, dense, X, layers=[1])
    assert report.error_after[0] <= report.error_before[0] + 1e-9      # least squares on the true inputs


@pytest.mark.parametrize(("bad", "hint"), [("gelu", "gelu_tanh"), ("tanhh", "did you mean tanh"),
                                           ("Sigmoid", "sigmoid"), ("leaky_relu:-1", "leaky_relu"),
                                           ("softmax", "expected one of")])
def test_bad_names_are_refused_with_a_suggestion(bad, hint):
    with pytest.raises(ValueError, match=f"unknown activation '{bad}'.*{hint}"):
        MLP([2, 2], activation=bad)


@given(arrays(shapes(), bound=50.0))
def test_float32_stays_float32(x):
    for spec in SPECS:
        assert activate(x.astype(np.float32), spec).dtype == np.float32
        assert np.asarray(backprop.derivative(x.astype(np.float32), spec)).dtype in (np.float32, np.bool_,
                                                                                       np.dtype(int))


@pytest.mark.parametrize("spec", ["tanh", "sigmoid", "gelu_tanh", "leaky_relu:0.2"])
def test_per_sample_criteria_backpropagate_through_the_models_activation(spec):
    """The empirical Fisher diagonal ``mean_i (∂ℓ_i/∂w)²`` equals the per-row gradients of the hand pass,
    one row at a time: the criteria's per-sample errors use ``act'``, not ReLU's step."""
    model = MLP([5, 6, 4, 3], activation=spec, seed=0, dtype=np.float64)
    X, y = np.random.default_rng(0).normal(size=(7, 5)), np.arange(7) % 3
    fisher = hessian_diagonal(model, X, y, hessian="fisher")
    rows = [backprop.gradients(model, X[i:i + 1], y[i:i + 1])[1] for i in range(7)]
    for name in fisher:
        np.testing.assert_allclose(fisher[name], np.mean([g[name] ** 2 for g in rows], axis=0),
                                   rtol=1e-10, atol=1e-14, err_msg=name)
