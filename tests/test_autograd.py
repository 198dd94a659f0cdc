"""Autograd: every operation's gradient equals central finite differences (float64), broadcasting
included; accumulation, ``no_grad``, explicit upstream gradients and bad input.

Each check scalarises an operation's output with fixed, unequal weights (``_weighted_sum``), so the
upstream gradient that reaches the operation is not all ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune.core.autograd import Tensor, is_grad_enabled, no_grad
from tinyprune.errors import ShapeError
from tinyprune.gradcheck import gradcheck
from tinyprune.testing import arrays, broadcast_pairs, labels, nonzero_arrays, positive_arrays, shapes

# Central differences in float64 carry a rounding error of about 2e-16 * |f| / eps ~ 2e-10 |f|;
# the functions below stay under a few thousand in size, so an absolute slack of 1e-6 covers it
# while a wrong rule (an error of a percent or more of an O(1) gradient) still fails.
ATOL = 1e-6


def _weights(shape: tuple[int, ...]) -> np.ndarray:
    return np.cos(np.arange(int(np.prod(shape))) + 1.0).reshape(shape)


def _weighted_sum(t: Tensor) -> Tensor:
    """``sum_i w_i t_i`` with fixed weights ``w_i = cos(i + 1)``: a scalar with a non-uniform gradient."""
    return (t * _weights(t.shape)).sum()


def check(f, *inputs: np.ndarray) -> None:
    result = gradcheck(lambda *ts: _weighted_sum(f(*ts)), *inputs, atol=ATOL)
    assert result.ok, str(result)


# ------------------------------------------------------------ arithmetic
@given(broadcast_pairs(bound=3.0))
def test_add_sub_mul_match_numpy_and_finite_differences(pair):
    x, y = pair
    for op in (np.add, np.subtract, np.multiply):
        for a, b in ((x, y), (y, x)):  # the broadcast operand on either side
            out = op(Tensor(a), Tensor(b))
            np.testing.assert_array_equal(out.data, op(a, b))
            check(lambda s, t, op=op: op(s, t), a, b)


@given(broadcast_pairs(bound=3.0))
def test_div_matches_numpy_and_finite_differences(pair):
    x, y = pair
    for a, b in ((x, np.abs(y) + 0.5), (y, np.abs(x) + 0.5)):
        np.testing.assert_array_equal((Tensor(a) / Tensor(b)).data, a / b)
        check(lambda s, t: s / t, a, b)


@given(positive_arrays(shapes(), low=0.5, high=3.0),
       st.sampled_from([2, 3, -1, 0.5, 1.5, -2.5, 0]))
def test_pow_scalar_exponent(x, p):
    np.testing.assert_allclose((Tensor(x) ** p).data, x**p, rtol=1e-15)
    check(lambda t: t**p, x)


@given(arrays(shapes(), bound=3.0), st.sampled_from([1, 2, 3]))
def test_pow_integer_exponent_of_signed_values(x, p):
    check(lambda t: t**p, x)


def test_pow_rejects_tensor_or_array_exponent():
    with pytest.raises(TypeError, match="scalar exponent"):
        Tensor([1.0]) ** Tensor(2.0)
    with pytest.raises(TypeError, match="scalar exponent"):
        Tensor([1.0]) ** np.array([2.0, 3.0])


@given(arrays(shapes(), bound=10.0))
def test_neg(x):
    np.testing.assert_array_equal((-Tensor(x)).data, -x)
    check(lambda t: -t, x)


@given(arrays(shapes(max_dims=2), bound=3.0), st.sampled_from(["scalar", "numpy scalar", "array"]),
       st.sampled_from(["+", "-", "*", "/"]))
def test_reflected_operators_with_a_constant_on_the_left(x, kind, op):
    constant = {"scalar": 1.75, "numpy scalar": np.float64(1.75), "array": _weights(x.shape) + 2.0}[kind]
    apply = {"+": lambda c, t: c + t, "-": lambda c, t: c - t,
             "*": lambda c, t: c * t, "/": lambda c, t: c / t}[op]
    if op == "/":
        x = np.abs(x) + 0.5
    out = apply(constant, Tensor(x, requires_grad=True))
    assert isinstance(out, Tensor) and out.requires_grad
    np.testing.assert_array_equal(out.data, apply(constant, x))
    check(lambda t: apply(constant, t), x)


def test_reflected_operators_known_gradients():
    x = Tensor([1.0, 2.0, 4.0], requires_grad=True)
    (np.array([1.0, 1.0, 1.0]) - x).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, -1.0, -1.0])
    x.grad = None
    (2.0 / x).sum().backward()                      # d(2/x)/dx = -2/x^2
    np.testing.assert_array_equal(x.grad, [-2.0, -0.5, -0.125])


# ---------------------------------------------------------- matrix product
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5),
       st.sampled_from(["2-D @ 2-D", "2-D @ 1-D", "1-D @ 2-D", "1-D @ 1-D"]), st.data())
def test_matmul(n, d, h, case, data):
    left_shape = (n, d) if case.startswith("2-D") else (d,)
    right_shape = (d, h) if case.endswith("2-D") else (d,)
    a = data.draw(arrays(left_shape, bound=3.0))
    b = data.draw(arrays(right_shape, bound=3.0))
    out = Tensor(a) @ Tensor(b)
    assert out.shape == (a @ b).shape
    np.testing.assert_allclose(out.data, a @ b, rtol=1e-12, atol=1e-12)
    if out.ndim == 0:
        result = gradcheck(lambda s, t: s @ t, a, b, atol=ATOL)
        assert result.ok, str(result)
    else:
        check(lambda s, t: s @ t, a, b)


def test_matmul_with_ndarray_on_either_side():
    W = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    x = np.array([[1.0, -1.0]])
    (x @ W).sum().backward()                         # d/dW sum(x W) = x^T 1
    np.testing.assert_array_equal(W.grad, [[1.0, 1.0], [-1.0, -1.0]])
    W.grad = None
    (W @ x.T).sum().backward()                       # d/dW sum(W x^T) = 1 x
    np.testing.assert_array_equal(W.grad, [[1.0, -1.0], [1.0, -1.0]])


@pytest.mark.parametrize("left, right", [((2, 3), (4, 5)), ((3,), (2,)), ((2, 3), (2,)), ((4,), (3, 2))])
def test_matmul_mismatched_inner_dimensions_raise(left, right):
    with pytest.raises(ValueError, match=r"inner dimensions.*\(" + str(left[-1])):
        Tensor(np.ones(left)) @ Tensor(np.ones(right))
    with pytest.raises(ShapeError):
        Tensor(np.ones(left)) @ np.ones(right)


def test_matmul_rejects_3d():
    with pytest.raises(ShapeError, match=r"1-D or 2-D.*\(2, 2, 2\)"):
        Tensor(np.ones((2, 2, 2))) @ Tensor(np.ones((2, 2)))


# --------------------------------------------------------------- reductions
@st.composite
def arrays_and_axes(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=4), bound=5.0))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-x.ndim, x.ndim - 1))
    else:
        axis = tuple(draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, max_size=x.ndim, unique=True)))
    return x, axis, draw(st.booleans())


@given(arrays_and_axes())
def test_sum_and_mean_with_axis_and_keepdims(case):
    x, axis, keepdims = case
    for method, reference in (("sum", np.sum), ("mean", np.mean)):
        out = getattr(Tensor(x), method)(axis=axis, keepdims=keepdims)
        expected = reference(x, axis=axis, keepdims=keepdims)
        assert out.shape == np.shape(expected)
        np.testing.assert_allclose(out.data, expected, rtol=1e-13, atol=1e-13)
        if out.ndim == 0:
            result = gradcheck(lambda t, m=method: getattr(t, m)(axis=axis, keepdims=keepdims), x, atol=ATOL)
            assert result.ok, str(result)
        else:
            check(lambda t, m=method: getattr(t, m)(axis=axis, keepdims=keepdims), x)


def test_mean_gradient_is_one_over_count():
    x = Tensor(np.ones((2, 5)), requires_grad=True)
    x.mean(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 5), 0.2))


# ------------------------------------------------------------------ shapes
@given(arrays(shapes(min_dims=1, max_dims=3, max_side=4), bound=5.0),
       st.sampled_from(["flat", "reversed", "list"]))
def test_reshape(x, how):
    target = {"flat": (-1,), "reversed": x.shape[::-1], "list": list(x.shape[::-1])}[how]
    out = Tensor(x).reshape(target) if how == "list" else Tensor(x).reshape(*target)
    np.testing.assert_array_equal(out.data, x.reshape(tuple(target)))
    check(lambda t: t.reshape(tuple(target)), x)


@given(arrays(shapes(min_dims=1, max_dims=3, max_side=4), bound=5.0))
def test_transpose(x):
    np.testing.assert_array_equal(Tensor(x).T.data, x.T)
    check(lambda t: t.T, x)


# ------------------------------------------------- elementwise functions
@given(arrays(shapes(), bound=3.0))
def test_exp(x):
    np.testing.assert_array_equal(Tensor(x).exp().data, np.exp(x))
    check(lambda t: t.exp(), x)


@given(positive_arrays(shapes(), low=0.1, high=10.0))
def test_log_of_positive_inputs(x):
    np.testing.assert_array_equal(Tensor(x).log().data, np.log(x))
    check(lambda t: t.log(), x)


@given(nonzero_arrays(shapes(), bound=10.0, margin=1e-3))
def test_relu_away_from_the_kink(x):
    np.testing.assert_array_equal(Tensor(x).relu().data, np.maximum(x, 0))
    check(lambda t: t.relu(), x)


def test_relu_gradient_is_zero_at_the_kink():
    x = Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


@given(arrays(shapes(min_dims=1, max_dims=3, max_side=4), bound=20.0), st.data())
def test_log_softmax(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    out = Tensor(x).log_softmax(axis=axis)
    # the probabilities along the axis sum to 1
    np.testing.assert_allclose(np.exp(out.data).sum(axis=axis), 1.0, rtol=1e-12)
    reference = x - np.log(np.exp(x - x.max(axis=axis, keepdims=True)).sum(axis=axis, keepdims=True)) \
        - x.max(axis=axis, keepdims=True)
    np.testing.assert_allclose(out.data, reference, rtol=1e-12, atol=1e-12)
    check(lambda t: t.log_softmax(axis=axis), x)


def test_log_softmax_is_stable_for_huge_logits():
    z = Tensor(np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]]), requires_grad=True)
    out = z.log_softmax()
    np.testing.assert_array_equal(out.data[0], [0.0, -1e4, -2e4])
    np.testing.assert_allclose(out.data[1], -np.log(3.0), rtol=1e-15)
    out.pick(np.array([2, 0])).sum().backward()
    assert np.all(np.isfinite(z.grad))
    np.testing.assert_allclose(z.grad.sum(axis=1), 0.0, atol=1e-15)


@given(st.integers(1, 6), st.integers(1, 5), st.data())
def test_pick(n, k, data):
    x = data.draw(arrays((n, k), bound=5.0))
    y = data.draw(labels(n, k))
    out = Tensor(x).pick(y)
    np.testing.assert_array_equal(out.data, x[np.arange(n), y])
    check(lambda t: t.pick(y), x)


def test_pick_rejects_bad_labels():
    x = Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="integer label"):
        x.pick(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        x.pick(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"0\.\.2"):
        x.pick(np.array([0, 3]))
    with pytest.raises(ValueError, match=r"0\.\.2"):
        x.pick(np.array([-1, 0]))
    with pytest.raises(ShapeError, match="2-D"):
        Tensor(np.zeros(3)).pick(np.array([0, 1, 2]))


# -------------------------------------------------------- a composite graph
@given(arrays((3, 4), bound=2.0), arrays((4, 2), bound=2.0), arrays((2,), bound=2.0), labels(3, 2))
def test_a_small_network_end_to_end(X, W, b, y):
    result = gradcheck(lambda w, c: -((Tensor(X) @ w + c).relu().log_softmax().pick(y)).mean(), W, b,
                       atol=ATOL)
    # the ReLU may sit on its kink for some draws; gradcheck must then report, not crash
    Z = X @ W + b
    if np.all(np.abs(Z) > 1e-4):
        assert result.ok, str(result)


# ---------------------------------------------------------- the graph laws
def test_a_tensor_used_twice_accumulates():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = x * x + x                                    # dy/dx = 2x + 1
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data + 1)


@given(arrays(shapes(max_dims=2), bound=3.0))
def test_a_tensor_used_many_times_matches_finite_differences(x):
    check(lambda t: t * t * t - t / (t * t + 1.0) + t.exp() * t, x)


def test_diamond_graph_accumulates_through_both_paths():
    x = Tensor(2.0, requires_grad=True)
    a = x * 3.0
    b = x * x
    (a * b).backward()                               # d(3x * x^2)/dx = 9x^2
    assert x.grad == pytest.approx(36.0, rel=1e-15)


def test_leaf_gradients_accumulate_across_backward_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0 + 2.0, 3.0 + 4.0])


def test_leaves_own_their_gradients():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    (a + b).sum().backward()
    assert a.grad is not b.grad
    a.grad *= 10                                     # an in-place change of one leaf's gradient ...
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])  # ... leaves the other alone


def test_constants_receive_no_gradient():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = Tensor(np.array([5.0, 7.0]))
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad
    np.testing.assert_array_equal(x.grad, [5.0, 7.0])


def test_no_grad_records_no_graph():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2.0).exp().sum()
    assert is_grad_enabled()
    assert not y.requires_grad and y._parents == () and y._backward is None
    with pytest.raises(ValueError, match="does not require a gradient"):
        y.backward()
    assert x.grad is None


def test_no_grad_restores_the_flag_after_an_exception():
    with pytest.raises(RuntimeError), no_grad():
        raise RuntimeError("boom")
    assert is_grad_enabled()


def test_backward_on_a_non_scalar_needs_grad():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"grad=.*|scalar"):
        y.backward()
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        y.backward(np.ones((3, 2)))


@given(arrays((2, 3), bound=3.0), arrays((2, 3), bound=3.0))
def test_backward_with_an_explicit_upstream_gradient(x, g):
    t = Tensor(x, requires_grad=True)
    (t * t).backward(g)                              # vector-Jacobian product: g * 2x
    np.testing.assert_allclose(t.grad, g * 2 * x, rtol=1e-15, atol=1e-300)  # subnormals round


def test_a_deep_chain_does_not_recurse():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


def test_detach_and_numpy():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = (x * 2.0).detach()
    assert not d.requires_grad and d._parents == ()
    np.testing.assert_array_equal(d.numpy(), [2.0, 4.0])
    assert x.numpy() is x.data


def test_dtypes():
    assert Tensor([1, 2]).dtype == np.float64
    assert Tensor(np.array([True])).dtype == np.float64
    assert Tensor(np.zeros(2, dtype=np.float32)).dtype == np.float32
    assert (Tensor(np.zeros(2, dtype=np.float32)) * 2.0).dtype == np.float32
    assert Tensor(np.zeros((2, 3))).shape == (2, 3) and Tensor(np.zeros((2, 3))).ndim == 2


def test_python_numbers_keep_a_float32_graph_float32():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    loss = (2.0 - (x * 0.5 + 1) / 3.0).mean()       # mean multiplies by the Python float 1/count
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32
    # a NumPy float64 scalar is a float64 value, as in NumPy itself
    assert (x * np.float64(0.5)).dtype == np.float64
