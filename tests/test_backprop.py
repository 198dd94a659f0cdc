"""The hand-derived backward pass: autograd == ``backprop.gradients`` == central differences, for
generated MLPs, batches and both losses, with and without masks; and a wrong gradient fails."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyprune.core import backprop, losses
from tinyprune.core.autograd import Tensor
from tinyprune.core.nn import MLP, Linear, Sequential
from tinyprune.errors import ShapeError
from tinyprune.gradcheck import compare, numeric_gradient
from tinyprune.testing import MLPCase, mlp_cases

RTOL, ATOL = 1e-5, 1e-8


def autograd_gradients(model: MLP, X: np.ndarray, y: np.ndarray, loss: str) -> tuple[float, dict]:
    model.zero_grad()
    value = losses.loss_tensor(loss, model(Tensor(X)), y)
    value.backward()
    return float(value.data), {name: p.grad for name, p in model.named_parameters()}


def numeric_gradients(model: MLP, X: np.ndarray, y: np.ndarray, loss: str) -> dict:
    """Central differences of the loss in every parameter entry (each perturbed in place)."""

    def value(_: np.ndarray) -> float:
        return losses.loss_and_grad(loss, model(X), y)[0]

    return {name: numeric_gradient(value, p.data) for name, p in model.named_parameters()}


def assert_gradcheck(analytic: dict, numeric: dict) -> None:
    names = list(numeric)
    result = compare([analytic[n] for n in names], [numeric[n] for n in names], rtol=RTOL, atol=ATOL)
    assert result.ok, f"{names[result.argument]}: {result}"


@settings(max_examples=25)
@given(mlp_cases(), st.sampled_from(losses.LOSSES))
def test_autograd_equals_backprop_equals_finite_differences(case: MLPCase, loss: str):
    model, X, y = case.model, case.X, case.y
    value, grads = backprop.gradients(model, X, y, loss=loss)
    auto_value, auto = autograd_gradients(model, X, y, loss)
    assert list(grads) == [name for name, _ in model.named_parameters()]
    assert value == pytest.approx(auto_value, rel=1e-12, abs=1e-15)
    for name, p in model.named_parameters():
        assert grads[name].shape == p.shape
        np.testing.assert_allclose(grads[name], auto[name], rtol=1e-8, atol=1e-13, err_msg=name)
    assert_gradcheck(grads, numeric_gradients(model, X, y, loss))


@settings(max_examples=25)
@given(mlp_cases(masked=True), st.sampled_from(losses.LOSSES))
def test_with_masks_the_pruned_entries_get_exactly_zero(case: MLPCase, loss: str):
    model, X, y = case.model, case.X, case.y
    _, grads = backprop.gradients(model, X, y, loss=loss)
    _, auto = autograd_gradients(model, X, y, loss)           # autograd knows nothing of masks
    numeric = numeric_gradients(model, X, y, loss)
    for name, p in model.named_parameters():
        mask = p.mask
        assert mask is not None and mask.dtype == bool
        assert np.all(p.data[~mask] == 0)
        assert np.all(grads[name][~mask] == 0), name
        np.testing.assert_allclose(grads[name], auto[name] * mask, rtol=1e-8, atol=1e-13, err_msg=name)
    assert_gradcheck({n: g[p.mask] for (n, p), g in zip(model.named_parameters(), grads.values())},
                     {n: numeric[n][p.mask] for n, p in model.named_parameters()})


@settings(max_examples=15)
@given(mlp_cases(), st.sampled_from(losses.LOSSES))
def test_set_gradients_writes_each_parameter_grad(case: MLPCase, loss: str):
    model = case.model
    value, grads = backprop.gradients(model, case.X, case.y, loss=loss)
    model.zero_grad()
    assert backprop.set_gradients(model, case.X, case.y, loss=loss) == value
    assert value == losses.loss_and_grad(loss, model(case.X), case.y)[0]
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, grads[name])


@settings(max_examples=15)
@given(mlp_cases())
def test_forward_cache(case: MLPCase):
    model, X = case.model, case.X
    cache = backprop.forward(model, X)
    assert cache.inputs[0] is X or np.array_equal(cache.inputs[0], X)
    assert len(cache.inputs) == len(cache.Z) == len(model.layers)
    for index, layer in enumerate(model.layers):
        assert cache.Z[index].shape == (X.shape[0], layer.W.shape[1])
        np.testing.assert_array_equal(cache.Z[index], cache.inputs[index] @ layer.W.data + layer.b.data)
        if index > 0:
            np.testing.assert_array_equal(cache.inputs[index], np.maximum(cache.Z[index - 1], 0))
    np.testing.assert_array_equal(cache.logits, model(X))


def test_float32_model_gradients_are_close_to_float64():
    model32 = MLP([6, 5, 4, 3], seed=0)
    model64 = MLP.from_config({**model32.config(), "dtype": "float64"}, seed=0)
    X = np.random.default_rng(0).normal(size=(8, 6))
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    _, g32 = backprop.gradients(model32, X.astype(np.float32), y)
    _, g64 = backprop.gradients(model64, X, y)
    for name in g64:
        assert g32[name].dtype == np.float32
        np.testing.assert_allclose(g32[name], g64[name], rtol=1e-4, atol=1e-6, err_msg=name)


# --------------------------------------------------- the negative tests
def _document_case() -> tuple[MLP, np.ndarray, np.ndarray]:
    model = MLP([5, 4, 3], seed=2, dtype=np.float64)
    rng = np.random.default_rng(2)
    for layer in model.layers:
        layer.b.data[...] = rng.uniform(-0.5, 0.5, size=layer.b.shape)
    return model, rng.normal(size=(6, 5)), rng.integers(0, 3, size=6)


def test_a_gradient_scaled_by_one_percent_fails_and_is_named():
    model, X, y = _document_case()
    _, grads = backprop.gradients(model, X, y)
    numeric = numeric_gradients(model, X, y, "cross_entropy")
    assert_gradcheck(grads, numeric)                           # the true gradient passes ...
    names = list(numeric)
    wrong = dict(grads)
    wrong["layers.1.W"] = grads["layers.1.W"] * 1.01            # ... dW of layer 1 off by 1 % fails
    result = compare([wrong[n] for n in names], [numeric[n] for n in names], rtol=RTOL, atol=ATOL)
    assert not result.ok
    assert names[result.argument] == "layers.1.W"
    worst = np.unravel_index(np.argmax(np.abs(grads["layers.1.W"])), grads["layers.1.W"].shape)
    assert result.index == tuple(int(i) for i in worst)         # the largest entry errs the most
    assert result.analytic == pytest.approx(1.01 * grads["layers.1.W"][worst], rel=1e-12)
    assert result.numeric == pytest.approx(grads["layers.1.W"][worst], rel=1e-6)
    assert f"argument {result.argument} index {result.index}" in str(result)
    assert "MISMATCH" in str(result)


@pytest.mark.parametrize("corrupt", ["transpose", "shift", "one entry"])
def test_a_shuffled_gradient_fails(corrupt):
    model = MLP([4, 4, 3], seed=3, dtype=np.float64)
    X = np.random.default_rng(3).normal(size=(5, 4))
    y = np.array([0, 1, 2, 1, 0])
    _, grads = backprop.gradients(model, X, y)
    numeric = numeric_gradients(model, X, y, "cross_entropy")
    dW = grads["layers.0.W"]
    wrong = dict(grads)
    if corrupt == "transpose":
        wrong["layers.0.W"] = dW.T.copy()
    elif corrupt == "shift":
        wrong["layers.0.W"] = np.roll(dW, 1, axis=0)
    else:
        wrong["layers.0.W"] = dW.copy()
        wrong["layers.0.W"][2, 1] += 1e-3
    names = list(numeric)
    result = compare([wrong[n] for n in names], [numeric[n] for n in names], rtol=RTOL, atol=ATOL)
    assert not result.ok and names[result.argument] == "layers.0.W", str(result)
    if corrupt == "one entry":
        assert result.index == (2, 1)
        assert result.analytic == pytest.approx(dW[2, 1] + 1e-3, rel=1e-12)


def test_a_wrong_relu_derivative_fails():
    """Forgetting the ``⊙ relu'(Z)`` factor of the backward pass is caught by the check."""
    model, X, y = _document_case()
    cache = backprop.forward(model, X)
    _, dlogits = losses.loss_and_grad("cross_entropy", cache.logits, y)
    delta = dlogits @ model.layers[1].W.data.T               # the ReLU factor left out
    wrong = backprop.backward(model, cache, dlogits)
    wrong["layers.0.W"] = cache.inputs[0].T @ delta
    assert np.any(cache.Z[0] < 0), "the example needs an inactive unit"
    numeric = numeric_gradients(model, X, y, "cross_entropy")
    names = list(numeric)
    result = compare([wrong[n] for n in names], [numeric[n] for n in names], rtol=RTOL, atol=ATOL)
    assert not result.ok and names[result.argument] == "layers.0.W"


# ------------------------------------------------------------- bad input
def test_bad_input_raises():
    model = MLP([4, 3, 2], seed=0, dtype=np.float64)
    y = np.array([0, 1])
    with pytest.raises(ShapeError, match=r"\(n, 4\), got \(2, 5\)"):
        backprop.gradients(model, np.zeros((2, 5)), y)
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        backprop.gradients(model, np.array([[0.0, np.nan, 0.0, 0.0], [0.0] * 4]), y)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        backprop.gradients(model, np.zeros((2, 4)), np.array([0, 2]))
    with pytest.raises(ValueError, match="unknown loss"):
        backprop.gradients(model, np.zeros((2, 4)), y, loss="hinge")
    cache = backprop.forward(model, np.zeros((2, 4)))
    with pytest.raises(ShapeError, match=r"dlogits has shape \(2, 3\).*\(2, 2\)"):
        backprop.backward(model, cache, np.zeros((2, 3)))
    with pytest.raises(TypeError, match="MLP"):
        backprop.forward(Sequential(Linear(4, 2)), np.zeros((2, 4)))
