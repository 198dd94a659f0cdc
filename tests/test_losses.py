"""Losses: closed-form gradients == autograd == finite differences; stability for huge logits;
bad input raises ``ValueError`` naming what was wrong."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune.core import losses
from tinyprune.core.autograd import Tensor
from tinyprune.errors import ShapeError
from tinyprune.gradcheck import gradcheck
from tinyprune.testing import arrays, finite_floats, labels


@st.composite
def logits_and_labels(draw, bound: float = 10.0, max_rows: int = 8, max_classes: int = 6):
    n = draw(st.integers(1, max_rows))
    k = draw(st.integers(2, max_classes))
    return draw(arrays((n, k), bound=bound)), draw(labels(n, k))


@st.composite
def prediction_pairs(draw):
    shape = draw(st.tuples(st.integers(1, 6), st.integers(1, 5)))
    return draw(arrays(shape, bound=5.0)), draw(arrays(shape, bound=5.0))


def _autograd(f, x: np.ndarray) -> tuple[float, np.ndarray]:
    t = Tensor(x.copy(), requires_grad=True)
    out = f(t)
    out.backward()
    return float(out.data), t.grad


# ------------------------------------------------------ closed form == autograd
@given(logits_and_labels())
def test_cross_entropy_grad_equals_autograd(case):
    z, y = case
    value, grad = _autograd(lambda t: losses.cross_entropy(t, y), z)
    assert value == pytest.approx(losses.cross_entropy(z, y), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(losses.cross_entropy_grad(z, y), grad, rtol=1e-9, atol=1e-14)
    result = gradcheck(lambda t: losses.cross_entropy(t, y), z)
    assert result.ok, str(result)


@given(prediction_pairs(), st.sampled_from(losses.REDUCTIONS))
def test_squared_error_grad_equals_autograd(pair, reduction):
    y_hat, target = pair
    value, grad = _autograd(lambda t: losses.squared_error(t, target, reduction=reduction), y_hat)
    n = y_hat.shape[0] if reduction == "mean" else 1
    expected = 0.5 * np.sum((y_hat - target) ** 2) / n
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert losses.squared_error(y_hat, target, reduction) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(losses.squared_error_grad(y_hat, target, reduction), (y_hat - target) / n,
                               rtol=1e-15)
    np.testing.assert_allclose(grad, (y_hat - target) / n, rtol=1e-12, atol=1e-15)
    result = gradcheck(lambda t: losses.squared_error(t, target, reduction=reduction), y_hat, atol=1e-6)
    assert result.ok, str(result)


@given(logits_and_labels(), st.sampled_from(losses.LOSSES))
def test_loss_and_grad_equals_autograd_of_loss_tensor(case, name):
    z, y = case
    value, dlogits = losses.loss_and_grad(name, z, y)
    assert isinstance(value, float) and dlogits.shape == z.shape
    auto_value, auto_grad = _autograd(lambda t: losses.loss_tensor(name, t, y), z)
    assert value == pytest.approx(auto_value, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(dlogits, auto_grad, rtol=1e-8, atol=1e-14)
    result = gradcheck(lambda t: losses.loss_tensor(name, t, y), z)
    assert result.ok, str(result)


@given(logits_and_labels())
def test_squared_error_of_a_classifier_is_the_documents_loss_on_softmax_outputs(case):
    z, y = case
    p = losses.softmax(z)
    t = np.eye(z.shape[1])[y]
    value, dlogits = losses.loss_and_grad("squared_error", z, y)
    assert value == pytest.approx(0.5 * np.sum((p - t) ** 2) / z.shape[0], rel=1e-12, abs=1e-15)
    # the same with the one-hot rows given as a float target
    float_value, float_grad = losses.loss_and_grad("squared_error", z, t)
    assert float_value == value
    np.testing.assert_array_equal(float_grad, dlogits)


@given(arrays((3, 4), bound=5.0), arrays((3, 4), bound=5.0))
def test_softmax_backward_is_the_jacobian_transpose_product(z, g):
    p = losses.softmax(z)
    expected = np.stack([(np.diag(row) - np.outer(row, row)).T @ grow for row, grow in zip(p, g)])
    np.testing.assert_allclose(losses.softmax_backward(p, g), expected, rtol=1e-10, atol=1e-13)


def test_values_by_hand():
    z = np.array([[2.0, 0.0, -1.0]])
    expected = -(2.0 - np.log(np.exp(2.0) + 1.0 + np.exp(-1.0)))
    assert losses.cross_entropy(z, np.array([0])) == pytest.approx(expected, rel=1e-15)
    assert losses.squared_error(np.array([1.0, 2.0]), np.array([0.0, 0.0])) == 2.5
    assert losses.squared_error(np.array([[1.0], [2.0]]), np.zeros((2, 1)), reduction="mean") == 1.25
    np.testing.assert_array_equal(losses.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    assert losses.one_hot(np.array([1]), 2, dtype=np.float32).dtype == np.float32


def test_float32_logits_give_float32_gradients():
    z = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    for name in losses.LOSSES:
        assert losses.loss_and_grad(name, z, np.array([1]))[1].dtype == np.float32
        t = Tensor(z, requires_grad=True)
        out = losses.loss_tensor(name, t, np.array([1]))
        out.backward()
        assert out.dtype == np.float32 and t.grad.dtype == np.float32


# ------------------------------------------------------------- stability
def test_cross_entropy_exact_for_logits_of_1e4():
    z = np.array([[1e4, 0.0, -1e4]] * 3)
    y = np.array([0, 1, 2])
    # by hand: -log softmax(z)_y = max(z) - z_y + log(1 + e^-1e4 + e^-2e4) = 1e4 - z_y exactly
    per_row = [0.0, 1e4, 2e4]
    assert losses.cross_entropy(z, y) == np.mean(per_row)
    for row, label, expected in zip(z, y, per_row):
        assert losses.cross_entropy(row[None], label[None]) == expected
        tensor_value = losses.cross_entropy(Tensor(row[None]), label[None])
        assert float(tensor_value.data) == expected
    grad = losses.cross_entropy_grad(z, y)
    np.testing.assert_array_equal(grad, np.array([[0.0, 0, 0], [1, -1, 0], [1, 0, -1]]) / 3)
    _, auto_grad = _autograd(lambda t: losses.cross_entropy(t, y), z)
    np.testing.assert_array_equal(auto_grad, grad)


@given(logits_and_labels(bound=1e4))
def test_cross_entropy_finite_for_huge_logits_and_gradient_rows_sum_to_zero(case):
    z, y = case
    value = losses.cross_entropy(z, y)
    rows = np.arange(len(y))
    reference = np.mean(np.logaddexp.reduce(z, axis=1) - z[rows, y])
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(reference, rel=1e-12, abs=1e-9)
    for name in losses.LOSSES:
        value, grad = losses.loss_and_grad(name, z, y)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)
    _, auto_grad = _autograd(lambda t: losses.cross_entropy(t, y), z)
    np.testing.assert_allclose(auto_grad, losses.cross_entropy_grad(z, y), rtol=1e-9, atol=1e-15)


@given(st.integers(1, 5), st.integers(1, 6), st.data())
def test_softmax_and_log_softmax_stable_for_large_inputs(n, k, data):
    z = data.draw(arrays((n, k), bound=1e4))
    shift = data.draw(finite_floats(1e4))
    p = losses.softmax(z)
    log_p = losses.log_softmax(z)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(log_p))
    assert np.all(p >= 0) and np.all(log_p <= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.exp(log_p), p, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(losses.softmax(z + shift), p, rtol=1e-9, atol=1e-12)  # shift-invariant
    np.testing.assert_allclose(Tensor(z).log_softmax().data, log_p, rtol=1e-15, atol=0)


def test_softmax_documented_examples():
    np.testing.assert_array_equal(losses.softmax(np.array([1000.0, 1000.0])), [0.5, 0.5])
    assert losses.log_softmax(np.array([0.0, -1e4]))[1] == -1e4
    np.testing.assert_array_equal(losses.softmax(np.array([[-1e4, 1e4]])), [[0.0, 1.0]])


# ------------------------------------------------------------- bad input
Z = np.zeros((2, 3))


@pytest.mark.parametrize("loss", [losses.cross_entropy, losses.cross_entropy_grad,
                                  lambda z, y: losses.loss_and_grad("squared_error", z, y),
                                  lambda z, y: losses.loss_tensor("cross_entropy", Tensor(z), y),
                                  lambda z, y: losses.loss_tensor("squared_error", Tensor(z), y)])
def test_bad_labels_raise(loss):
    with pytest.raises(ValueError, match=r"0\.\.2.*from 0 to 3"):
        loss(Z, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"0\.\.2.*from -1 to 1"):
        loss(Z, np.array([-1, 1]))
    with pytest.raises(ValueError, match="integers"):
        loss(Z, np.array([0.0, 1.0]))
    with pytest.raises(ShapeError, match=r"one label per row: shape \(2,\), got \(3,\)"):
        loss(Z, np.array([0, 1, 1]))
    with pytest.raises(ShapeError, match=r"shape \(2,\), got \(2, 1\)"):
        loss(Z, np.array([[0], [1]]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_inputs_to_a_loss_raise(bad):
    z = np.array([[0.0, bad, 1.0], [0.0, 0.0, 0.0]])
    y = np.array([0, 1])
    for call in (lambda: losses.cross_entropy(z, y), lambda: losses.cross_entropy_grad(z, y),
                 lambda: losses.cross_entropy(Tensor(z), y),
                 lambda: losses.loss_and_grad("squared_error", z, y),
                 lambda: losses.loss_tensor("squared_error", Tensor(z), y)):
        with pytest.raises(ValueError, match="logits contains 1 NaN or infinite"):
            call()
    with pytest.raises(ValueError, match="prediction contains 1 NaN"):
        losses.squared_error(z, np.zeros_like(z))
    with pytest.raises(ValueError, match="target contains 1 NaN"):
        losses.squared_error_grad(np.zeros_like(z), z)


def test_mismatched_shapes_in_squared_error_raise():
    with pytest.raises(ShapeError, match=r"\(2, 3\) vs \(3, 2\)"):
        losses.squared_error(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ShapeError, match=r"\(2, 3\) vs \(2,\)"):
        losses.squared_error_grad(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ShapeError, match=r"\(2, 3\) vs \(2, 2\)"):
        losses.squared_error(Tensor(np.zeros((2, 3))), np.zeros((2, 2)))
    with pytest.raises(ShapeError, match=r"\(2, 3\) vs \(2, 4\)"):
        losses.loss_and_grad("squared_error", Z, np.zeros((2, 4)))


def test_other_bad_arguments_raise():
    with pytest.raises(ShapeError, match=r"2-D.*\(3,\)"):
        losses.cross_entropy(np.zeros(3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.loss_and_grad("hinge", Z, np.array([0, 1]))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.loss_tensor("hinge", Tensor(Z), np.array([0, 1]))
    with pytest.raises(ValueError, match="unknown reduction 'max'"):
        losses.squared_error(Z, Z, reduction="max")
    with pytest.raises(ValueError, match=r"0\.\.2"):
        losses.one_hot(np.array([3]), 3)
    with pytest.raises(ValueError, match="1-D"):
        losses.one_hot(np.array([[1]]), 3)
