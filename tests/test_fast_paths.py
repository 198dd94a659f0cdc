"""The fast paths give the numbers of the plain ones (no timing here: speed lives in benchmarks/).

- the flat, in-place SGD and Adam equal their textbook formulas, written here with fresh arrays,
  over many steps, with masks that arrive, change and are edited in place;
- the per-parameter path (some gradient missing) equals the flat path;
- tiny optimizer state is flushed to 0 and nothing else is touched;
- ``fit``'s batches gathered into a reused buffer equal ``Dataset.minibatches`` (fancy indexing);
- the fused softmax cross-entropy equals ``cross_entropy``/``cross_entropy_grad`` bit for bit and
  ``(softmax - onehot) / n``;
- ``fit`` follows the plain loop ``minibatches -> backprop.set_gradients -> optimizer.step`` exactly;
- autograd's matrix product gives no gradient to an input that needs none, and the right one otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune.core import backprop, losses
from tinyprune.core.autograd import Tensor
from tinyprune.core.nn import MLP, Parameter
from tinyprune.data import Dataset
from tinyprune.fast import optim
from tinyprune.fast.optim import SGD, Adam
from tinyprune.testing import arrays
from tinyprune.training import _shuffled_batches, epoch_rng, fit

SHAPES = [(7, 5), (5,), (5, 3), (3,)]


def textbook_adam(w, m, v, g, t, lr, b1, b2, eps, wd):
    g = g + wd * w
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def textbook_sgd(w, velocity, g, lr, mu, nesterov, wd):
    g = g + wd * w
    if mu:
        velocity = mu * velocity + g
        g = g + mu * velocity if nesterov else velocity
    return w - lr * g, velocity


def mask_schedule(rng, step, shape, current):
    """No mask for 10 steps, then a mask that only loses entries, replaced or edited in place."""
    if step < 10:
        return None
    if current is None or step % 15 == 0:
        fresh = rng.random(shape) < 0.7
        return fresh if current is None else current & fresh          # a new array
    if step % 7 == 0:
        current[tuple(rng.integers(0, s) for s in shape)] = False     # the same array, edited
    return current


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_adam_equals_the_textbook_over_steps_with_masks(dtype, rtol, wd):
    rng = np.random.default_rng(0)
    params = [Parameter(rng.normal(size=s).astype(dtype)) for s in SHAPES]
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    optimizer = Adam(params, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
    w = [p.data.astype(np.float64) for p in params]
    m, v = [np.zeros_like(x) for x in w], [np.zeros_like(x) for x in w]
    for t in range(1, 61):
        for i, p in enumerate(params):
            p.mask = mask_schedule(rng, t, p.shape, p.mask)
            if p.mask is not None:                                     # the law, by hand
                keep = p.mask
                w[i], m[i], v[i] = w[i] * keep, m[i] * keep, v[i] * keep
                p.data *= p.mask
            p.grad = rng.normal(size=p.shape).astype(dtype)
            g = p.grad.astype(np.float64) * (1 if p.mask is None else p.mask)
            w[i], m[i], v[i] = textbook_adam(w[i], m[i], v[i], g, t, lr, b1, b2, eps, wd)
        optimizer.step()
        for i, p in enumerate(params):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, w[i], rtol=rtol, atol=rtol * 1e-2, err_msg=f"step {t}")
            np.testing.assert_allclose(optimizer.state["m"][i], m[i], rtol=rtol, atol=rtol * 1e-3)
            if p.mask is not None:
                assert np.all(p.data[~p.mask] == 0)
                assert np.all(optimizer.state["m"][i][~p.mask] == 0)
                assert np.all(optimizer.state["v"][i][~p.mask] == 0)


@pytest.mark.parametrize("mu, nesterov, wd", [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.0),
                                              (0.8, True, 0.05), (0.0, False, 0.05)])
def test_sgd_equals_the_textbook_over_steps_with_masks(mu, nesterov, wd):
    rng = np.random.default_rng(1)
    params = [Parameter(rng.normal(size=s)) for s in SHAPES]
    optimizer = SGD(params, lr=0.05, momentum=mu, nesterov=nesterov, weight_decay=wd)
    w = [p.data.copy() for p in params]
    vel = [np.zeros_like(x) for x in w]
    for t in range(1, 61):
        for i, p in enumerate(params):
            p.mask = mask_schedule(rng, t, p.shape, p.mask)
            if p.mask is not None:
                w[i], vel[i] = w[i] * p.mask, vel[i] * p.mask
                p.data *= p.mask
            p.grad = rng.normal(size=p.shape)
            g = p.grad * (1 if p.mask is None else p.mask)
            w[i], vel[i] = textbook_sgd(w[i], vel[i], g, 0.05, mu, nesterov, wd)
        optimizer.step()
        for i, p in enumerate(params):
            np.testing.assert_allclose(p.data, w[i], rtol=1e-12, atol=1e-14, err_msg=f"step {t}")
            if p.mask is not None:
                assert np.all(p.data[~p.mask] == 0)
                assert np.all(optimizer.state["velocity"][i][~p.mask] == 0)


@pytest.mark.parametrize("name, options", [("adam", {"weight_decay": 0.01}),
                                           ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True})])
def test_the_per_parameter_path_equals_the_flat_path(name, options):
    """With one gradient missing the others are updated one by one: the same numbers, bit for bit."""
    rng = np.random.default_rng(2)
    first = [Parameter(rng.normal(size=s).astype(np.float32)) for s in SHAPES]
    second = [Parameter(p.data.copy()) for p in first]
    a = optim.make_optimizer(name, first, **options)
    b = optim.make_optimizer(name, second, **options)
    for p, q in zip(first, second):
        p.mask = q.mask = rng.random(p.shape) < 0.6
        p.data *= p.mask
        q.data *= q.mask
    for _ in range(5):
        grads = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
        for p, q, g in zip(first, second, grads):
            p.grad, q.grad = g, g.copy()
        second[-1].grad = None                              # forces the per-parameter path in b
        a.step()
        b.step()
        second[-1].data[...] = first[-1].data               # keep the skipped one in step for the next
        for slot in a.state:
            b.state[slot][-1][...] = a.state[slot][-1]
        for p, q in zip(first[:-1], second[:-1]):
            assert np.array_equal(p.data, q.data)


def test_mixed_dtypes_get_one_block_each_and_keep_their_dtype():
    params = [Parameter(np.ones((2, 2), np.float32)), Parameter(np.ones(3, np.float64))]
    optimizer = Adam(params, lr=0.1)
    for p in params:
        p.grad = np.full(p.shape, 0.5, dtype=p.dtype)
    optimizer.step()
    assert [p.dtype for p in params] == [np.float32, np.float64]
    assert [optimizer.state["m"][i].dtype for i in range(2)] == [np.float32, np.float64]
    for p in params:                                        # step 1 of Adam: w - lr * g / (|g| + eps)
        np.testing.assert_allclose(p.data, 1 - 0.1 * 0.5 / (0.5 + 1e-7), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_state_is_flushed_to_zero_and_nothing_else(dtype):
    p = Parameter(np.ones(6, dtype=dtype))
    optimizer = Adam([p])
    tiny = np.finfo(dtype).tiny
    values = np.array([tiny / 4, -tiny * 1e3, 1e-20, -1e-3, 0.0, 1.0], dtype=dtype)
    p.grad = np.zeros(6, dtype=dtype)
    for step in range(optim.FLUSH_EVERY):
        if step == optim.FLUSH_EVERY - 1:
            optimizer.state["m"][0][...] = values / optimizer.beta1    # m after this step's β1 m
        optimizer.step()
    m = optimizer.state["m"][0]
    assert m[0] == 0 and m[1] == 0                         # subnormal, or about to become one: flushed
    np.testing.assert_array_equal(m[2:], (values / optimizer.beta1 * optimizer.beta1)[2:])


# ------------------------------------------------------------------ batches
@pytest.mark.parametrize("n, batch_size", [(100, 16), (64, 64), (10, 128), (37, 1)])
def test_batches_gathered_into_a_buffer_equal_fancy_indexing(n, batch_size):
    rng = np.random.default_rng(3)
    data = Dataset(rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 3, size=n))
    fast = [(Xb.copy(), yb) for Xb, yb, _ in _shuffled_batches(data, batch_size, epoch_rng(0, 1))]
    plain = list(data.minibatches(batch_size, shuffle=True, rng=epoch_rng(0, 1)))
    assert len(fast) == len(plain)
    for (Xa, ya), (Xb, yb) in zip(fast, plain):
        assert np.array_equal(Xa, Xb) and Xa.dtype == Xb.dtype
        assert np.array_equal(ya, yb)


def test_a_dataset_like_object_keeps_its_own_batches():
    class Doubled(Dataset):
        def minibatches(self, batch_size, shuffle=True, rng=None):
            for Xb, yb in super().minibatches(batch_size, shuffle, rng):
                yield 2 * Xb, yb

    data = Doubled(np.ones((4, 2), np.float32), [0, 1, 0, 1])
    assert all(np.all(Xb == 2) for Xb, _, _ in _shuffled_batches(data, 3, epoch_rng(0, 1)))


# ------------------------------------------------------------------ the fused loss
@given(st.integers(1, 12), st.integers(1, 6), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([1.0, 30.0, 1e4]), st.integers(0, 2**31 - 1))
def test_fused_cross_entropy_equals_the_two_plain_functions(n, k, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(n, k)) * scale).astype(dtype)
    y = rng.integers(0, k, size=n)
    value, grad = losses.cross_entropy_and_grad(z, y)
    assert value == losses.cross_entropy(z, y)
    assert np.array_equal(grad, losses.cross_entropy_grad(z, y)) and grad.dtype == dtype
    assert np.all(np.isfinite(grad)) and np.isfinite(value)
    expected = (losses.softmax(z.astype(np.float64)) - losses.one_hot(y, k)) / n
    np.testing.assert_allclose(grad, expected, atol=1e-6 if dtype == np.float32 else 1e-14)


@given(arrays((5, 4), bound=50.0))
def test_loss_and_grad_uses_the_fused_gradient(z):
    y = np.array([0, 3, 1, 2, 3])
    value, grad = losses.loss_and_grad("cross_entropy", z, y)
    assert (value, grad.tolist()) == (losses.cross_entropy(z, y), losses.cross_entropy_grad(z, y).tolist())


# ------------------------------------------------------------------ engines
def test_forward_without_checks_gives_the_same_cache():
    model = MLP([6, 5, 3], seed=0)
    X = np.random.default_rng(4).random((8, 6), dtype=np.float32)
    checked, unchecked = backprop.forward(model, X), backprop.forward(model, X, check=False)
    for a, b in zip(checked.Z + checked.inputs, unchecked.Z + unchecked.inputs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("masked", [False, True])
def test_fit_follows_the_plain_loop_exactly(masked):
    """fit (buffer gather, unchecked forward, fused loss) == minibatches + set_gradients + step."""
    rng = np.random.default_rng(5)
    data = Dataset(rng.normal(size=(90, 6)).astype(np.float32), rng.integers(0, 3, size=90))
    fast, plain = MLP([6, 8, 3], seed=0), MLP([6, 8, 3], seed=0)
    if masked:
        for p, q in zip(fast.parameters(), plain.parameters()):
            p.mask = q.mask = rng.random(p.shape) < 0.5
            p.data *= p.mask
            q.data *= q.mask
    fit(fast, data, epochs=2, batch_size=16, seed=3, progress=False)
    optimizer = Adam(plain.parameters(), lr=1e-3)
    for epoch in (1, 2):
        for Xb, yb in data.minibatches(16, shuffle=True, rng=epoch_rng(3, epoch)):
            backprop.set_gradients(plain, Xb, yb)
            optimizer.step()
    for p, q in zip(fast.parameters(), plain.parameters()):
        assert np.array_equal(p.data, q.data)


def test_autograd_matmul_gives_no_gradient_to_an_input_that_needs_none():
    rng = np.random.default_rng(6)
    X, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    w = Tensor(W, requires_grad=True)
    x = Tensor(X)
    (x @ w).sum().backward()
    assert x.grad is None
    np.testing.assert_allclose(w.grad, X.T @ np.ones((4, 2)))
    x, w = Tensor(X, requires_grad=True), Tensor(W)
    (x @ w).sum().backward()
    assert w.grad is None
    np.testing.assert_allclose(x.grad, np.ones((4, 2)) @ W.T)


def test_a_leaf_gradient_is_never_shared_with_another_array():
    """Leaves keep fresh products as they are (no copy) but copy anything that aliases another array."""
    rng = np.random.default_rng(7)
    a = Tensor(rng.normal(size=(3, 2)), requires_grad=True)
    b = Tensor(rng.normal(size=(3, 2)), requires_grad=True)
    c = Tensor(rng.normal(size=(2, 3)), requires_grad=True)
    s = a + b                                        # both parents receive the node's own gradient
    out = (s * 2.0 + c.T).sum() + (s.reshape(6) * 1.0).sum()
    out.backward()
    grads = [a.grad, b.grad, c.grad, s.grad]
    for i, first in enumerate(grads):
        for second in grads[i + 1:]:
            assert not np.may_share_memory(first, second)
    np.testing.assert_allclose(a.grad, np.full((3, 2), 3.0))
    np.testing.assert_allclose(c.grad, np.ones((2, 3)))
    w = Tensor(rng.normal(size=(3, 2)), requires_grad=True)
    (Tensor(rng.normal(size=(4, 3))) @ w).sum().backward()
    first = w.grad
    (Tensor(rng.normal(size=(4, 3))) @ w).sum().backward()   # a second call accumulates into a new array
    assert w.grad is not first
