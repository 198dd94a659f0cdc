"""The residual (distillation) loss of sections 4.2-4.3: closed form == autograd == finite differences."""

import numpy as np
import pytest

from tinyprune.core import backprop
from tinyprune.core.autograd import Tensor
from tinyprune.core.nn import MLP
from tinyprune.gradcheck import compare, gradcheck, numeric_gradient
from tinyprune.recover import OUTPUTS, distillation_gradients, distillation_loss, distillation_loss_tensor

OPTIONS = [
    {"output": output, "temperature": temperature, "alpha": alpha}
    for output in OUTPUTS for temperature in (1.0, 3.0) for alpha in (0.0, 0.3)
]


def _logits(seed: int, n: int = 6, k: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    return g.normal(size=(n, k)) * 2, g.normal(size=(n, k)) * 2, g.integers(0, k, size=n)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: f"{o['output']}-T{o['temperature']}-a{o['alpha']}")
def test_closed_form_gradient_equals_autograd_and_finite_differences(options):
    z_s, z_t, y = _logits(0)
    value, grad = distillation_loss(z_s, z_t, y, **options)
    tensor_value = distillation_loss_tensor(Tensor(z_s), z_t, y, **options)
    assert value == pytest.approx(float(tensor_value.data), rel=1e-12, abs=1e-12)
    result = gradcheck(lambda z: distillation_loss_tensor(z, z_t, y, **options), z_s)
    assert result.ok, str(result)
    numeric = numeric_gradient(lambda z: distillation_loss(z, z_t, y, **options)[0], z_s.copy())
    assert compare([grad], [numeric]).ok
    student = Tensor(z_s, requires_grad=True)
    distillation_loss_tensor(student, z_t, y, **options).backward()
    np.testing.assert_allclose(grad, student.grad, rtol=1e-10, atol=1e-12)


def test_a_wrong_gradient_fails_the_same_check():
    z_s, z_t, _ = _logits(1)
    _, grad = distillation_loss(z_s, z_t)
    numeric = numeric_gradient(lambda z: distillation_loss(z, z_t)[0], z_s.copy())
    assert not compare([grad * 1.01], [numeric]).ok


def test_logit_loss_is_half_the_squared_residual():
    z_s, z_t, _ = _logits(2)
    value, grad = distillation_loss(z_s, z_t)
    residual = z_t - z_s                                   # Δy = ŷ_dense - ŷ_pruned
    assert value == pytest.approx(0.5 * np.sum(residual**2) / len(z_s))
    np.testing.assert_allclose(grad, -residual / len(z_s))
    assert distillation_loss(z_t, z_t)[0] == 0.0


def test_temperature_cancels_on_logits_and_kl_is_zero_at_the_teacher():
    z_s, z_t, _ = _logits(3)
    assert distillation_loss(z_s, z_t, temperature=5.0)[0] == distillation_loss(z_s, z_t)[0]
    value, grad = distillation_loss(z_t, z_t, output="kl", temperature=2.0)
    assert abs(value) < 1e-12 and np.abs(grad).max() < 1e-12


@pytest.mark.parametrize("output", OUTPUTS)
def test_network_gradient_by_hand_equals_autograd_and_finite_differences(output):
    g = np.random.default_rng(4)
    model = MLP([5, 7, 6, 3], seed=0, dtype=np.float64)
    teacher = MLP([5, 7, 6, 3], seed=1, dtype=np.float64)
    W = model.layers[1].W
    W.mask = g.random(W.shape) > 0.5
    W.data *= W.mask
    X = g.normal(size=(8, 5))
    y = g.integers(0, 3, size=8)
    options = {"output": output, "temperature": 2.0, "alpha": 0.25}
    z_t = teacher(X)
    value, grads = distillation_gradients(model, z_t, X, y, **options)
    # autograd through the whole network
    loss = distillation_loss_tensor(model(Tensor(X)), z_t, y, **options)
    model.zero_grad()
    loss.backward()
    assert value == pytest.approx(float(loss.data))
    for name, parameter in model.named_parameters():
        expected = parameter.grad if parameter.mask is None else parameter.grad * parameter.mask
        np.testing.assert_allclose(grads[name], expected, rtol=1e-9, atol=1e-12)
    assert np.all(grads["layers.1.W"][~W.mask] == 0)
    # central differences on every weight of the middle layer
    def value_at(weights: np.ndarray) -> float:
        saved = W.data.copy()
        W.data[...] = weights
        try:
            return distillation_loss(backprop.forward(model, X).logits, z_t, y, **options)[0]
        finally:
            W.data[...] = saved
    numeric = numeric_gradient(value_at, W.data.copy()) * W.mask
    assert compare([grads["layers.1.W"]], [numeric], rtol=1e-5, atol=1e-8).ok


def test_labels_are_needed_only_for_the_mix():
    z_s, z_t, _ = _logits(5)
    distillation_loss(z_s, z_t)                           # no labels: fine
    with pytest.raises(ValueError, match="labels"):
        distillation_loss(z_s, z_t, alpha=0.5)


@pytest.mark.parametrize("bad", [{"output": "mse"}, {"temperature": 0.0}, {"alpha": 1.5}])
def test_bad_options_are_refused(bad):
    z_s, z_t, y = _logits(6)
    with pytest.raises(ValueError):
        distillation_loss(z_s, z_t, y, **bad)
    with pytest.raises(ValueError):
        distillation_loss(z_s, z_t[:, :2])
