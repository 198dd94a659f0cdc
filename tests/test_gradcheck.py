"""The checking tools themselves: finite differences, ``gradcheck`` and ``compare`` (which must both
pass correct gradients and *fail* wrong ones, naming the worst entry)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from tinyprune.core.autograd import Tensor
from tinyprune.gradcheck import GradcheckResult, compare, gradcheck, numeric_gradient
from tinyprune.testing import arrays, positive_arrays, shapes


def _polynomial(x: np.ndarray) -> float:
    return float(np.sum(3 * x**3 - 2 * x**2 + x - 7))


@given(arrays(shapes(), bound=3.0))
def test_numeric_gradient_of_a_polynomial(x):
    numeric = numeric_gradient(_polynomial, x.copy())
    analytic = 9 * x**2 - 4 * x + 1
    np.testing.assert_allclose(numeric, analytic, rtol=1e-6, atol=1e-5)


@given(arrays(shapes(), bound=3.0))
def test_numeric_gradient_restores_its_input(x):
    before = x.copy()
    numeric_gradient(_polynomial, x)
    np.testing.assert_array_equal(x, before)


def test_numeric_gradient_of_a_non_contiguous_array():
    x = np.arange(6.0).reshape(2, 3).T               # Fortran order: reshape(-1) would be a copy
    assert not x.flags.c_contiguous
    numeric = numeric_gradient(lambda a: float(np.sum(a * a)), x)
    np.testing.assert_allclose(numeric, 2 * x, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(numeric_gradient(lambda a: float(a), np.array(3.0)), 1.0)


@given(arrays(shapes(), bound=3.0), positive_arrays(shapes(max_dims=1, max_side=1), low=0.5, high=2.0))
def test_gradcheck_passes_correct_functions(x, c):
    for f in (lambda t, s: (t * t * t).sum() * s.sum(),
              lambda t, s: (t.exp() / (s + t * t)).sum(),
              lambda t, s: (t.relu() * 0 + (t - s) ** 2).mean()):
        result = gradcheck(f, x, c, atol=1e-6)
        assert isinstance(result, GradcheckResult)
        assert result.ok and bool(result), str(result)
        assert result.max_error <= 0
        assert "gradcheck ok" in str(result)


def test_gradcheck_on_transposed_input():
    W = np.arange(1.0, 7.0).reshape(2, 3).T
    result = gradcheck(lambda w: (w * w).sum(), W)
    assert result.ok, str(result)


def test_gradcheck_gives_an_unused_argument_a_zero_gradient():
    assert gradcheck(lambda a, b: (a * a).sum(), np.ones(3), np.ones(2)).ok


def _sin_with_wrong_rule(x: Tensor) -> Tensor:
    """``sin`` whose backward rule is wrong (``sin`` instead of ``cos``): what a student might write."""
    return Tensor._result(np.sin(x.data), (x,), lambda g: (g * np.sin(x.data),))


def _sin_with_right_rule(x: Tensor) -> Tensor:
    return Tensor._result(np.sin(x.data), (x,), lambda g: (g * np.cos(x.data),))


def test_gradcheck_fails_a_wrong_backward_rule_and_names_the_worst_entry():
    x = np.array([0.1, 1.0, 2.5, -0.7])
    assert gradcheck(lambda t: _sin_with_right_rule(t).sum(), x).ok
    result = gradcheck(lambda t: _sin_with_wrong_rule(t).sum(), x)
    assert not result.ok and not bool(result)
    errors = np.abs(np.sin(x) - np.cos(x)) - 1e-5 * np.abs(np.cos(x))
    worst = int(np.argmax(errors))
    assert result.argument == 0 and result.index == (worst,)
    assert result.analytic == pytest.approx(np.sin(x[worst]), rel=1e-12)
    assert result.numeric == pytest.approx(np.cos(x[worst]), rel=1e-7)
    assert result.max_error > 0
    text = str(result)
    assert "MISMATCH" in text and f"index ({worst},)" in text
    assert f"{np.sin(x[worst]):.6g}"[:6] in text and f"{np.cos(x[worst]):.6g}"[:6] in text


def test_compare_names_argument_index_and_values():
    numeric = [np.zeros((2, 2)), np.array([[1.0, 2.0], [3.0, 4.0]])]
    analytic = [numeric[0].copy(), numeric[1].copy()]
    assert compare(analytic, numeric).ok
    analytic[1][1, 0] *= 1.01                         # one entry off by 1 %
    result = compare(analytic, numeric)
    assert not result.ok
    assert (result.argument, result.index) == (1, (1, 0))
    assert result.analytic == pytest.approx(3.03) and result.numeric == 3.0
    assert "argument 1 index (1, 0)" in str(result) and "3.03" in str(result)


def test_compare_tolerances():
    n = [np.array([100.0])]
    assert compare([np.array([100.0 + 9e-4])], n, rtol=1e-5).ok       # within 1e-5 relative
    assert not compare([np.array([100.0 + 2e-3])], n, rtol=1e-5).ok
    assert compare([np.array([5e-9])], [np.array([0.0])]).ok            # within atol
    assert not compare([np.array([5e-8])], [np.array([0.0])]).ok


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_compare_fails_nan_and_inf(bad):
    result = compare([np.array([1.0, bad])], [np.array([1.0, 1.0])])
    assert not result.ok and result.index == (1,), str(result)
    assert not compare([np.array([1.0, 1.0])], [np.array([1.0, bad])]).ok


def test_compare_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(2,\)"):
        compare([np.zeros(3)], [np.zeros(2)])
    with pytest.raises(ValueError, match="2 analytic.*1 numeric"):
        compare([np.zeros(2), np.zeros(2)], [np.zeros(2)])


def test_gradcheck_needs_a_scalar_output():
    with pytest.raises(ValueError, match="scalar"):
        gradcheck(lambda t: t * 2.0, np.ones(3))
