"""Optimizers: one step equals its formula (computed here by hand in float64), schedules, state
dicts, and the mask law (``W[~mask] == 0`` exactly, optimizer state 0 there) over hundreds of steps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune.core import optim as core_optim
from tinyprune.core.nn import MLP, Parameter
from tinyprune.fast.optim import SGD, Adam, constant, cosine, make_optimizer, step_decay
from tinyprune.testing import arrays

W0 = np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]])
GRADS = [np.array([[0.1, -0.2, 0.3], [1.0, 0.0, -0.5]]),
         np.array([[-0.4, 0.2, 0.1], [0.3, 2.0, 0.5]]),
         np.array([[0.05, 0.05, -1.0], [-0.2, 0.1, 0.0]])]


def run(optimizer_factory, grads=GRADS, w0=W0):
    """Apply ``len(grads)`` steps to one parameter; return its values after each step."""
    p = Parameter(w0.copy())
    optimizer = optimizer_factory([p])
    history = []
    for g in grads:
        p.grad = g.copy()
        optimizer.step()
        history.append(p.data.copy())
    return history


# ------------------------------------------------------------------ SGD
def test_sgd_plain_is_the_documents_update():
    lr = 0.1
    history = run(lambda ps: SGD(ps, lr=lr))
    w = W0.copy()
    for g, got in zip(GRADS, history):
        w = w - lr * g                                     # w <- w - alpha dw
        np.testing.assert_allclose(got, w, rtol=1e-15, atol=1e-16)


@given(arrays((2, 3), bound=5.0), arrays((2, 3), bound=5.0), st.floats(1e-4, 1.0))
def test_one_sgd_step(w, g, lr):
    p = Parameter(w.copy())
    p.grad = g.copy()
    SGD([p], lr=lr).step()
    np.testing.assert_allclose(p.data, w - lr * g, rtol=1e-14, atol=1e-14)


def test_sgd_momentum():
    lr, mu = 0.1, 0.9
    history = run(lambda ps: SGD(ps, lr=lr, momentum=mu))
    w, v = W0.copy(), np.zeros_like(W0)
    for g, got in zip(GRADS, history):
        v = mu * v + g
        w = w - lr * v
        np.testing.assert_allclose(got, w, rtol=1e-14, atol=1e-15)
    # by hand for the first entry: v1 = 0.1, v2 = 0.09 - 0.4 = -0.31, v3 = -0.279 + 0.05 = -0.229
    assert history[-1][0, 0] == pytest.approx(0.5 - 0.1 * (0.1 - 0.31 - 0.229), rel=1e-14)


def test_sgd_nesterov():
    lr, mu = 0.05, 0.8
    history = run(lambda ps: SGD(ps, lr=lr, momentum=mu, nesterov=True))
    w, v = W0.copy(), np.zeros_like(W0)
    for g, got in zip(GRADS, history):
        v = mu * v + g
        w = w - lr * (g + mu * v)                         # the look-ahead direction
        np.testing.assert_allclose(got, w, rtol=1e-14, atol=1e-15)


def test_sgd_weight_decay():
    lr, lam = 0.1, 0.01
    history = run(lambda ps: SGD(ps, lr=lr, weight_decay=lam))
    w = W0.copy()
    for g, got in zip(GRADS, history):
        w = w - lr * (g + lam * w)
        np.testing.assert_allclose(got, w, rtol=1e-14, atol=1e-15)


def test_sgd_momentum_nesterov_and_weight_decay_together():
    lr, mu, lam = 0.02, 0.9, 0.1
    history = run(lambda ps: SGD(ps, lr=lr, momentum=mu, nesterov=True, weight_decay=lam))
    w, v = W0.copy(), np.zeros_like(W0)
    for g, got in zip(GRADS, history):
        d = g + lam * w
        v = mu * v + d
        w = w - lr * (d + mu * v)
        np.testing.assert_allclose(got, w, rtol=1e-14, atol=1e-15)


# ------------------------------------------------------------------ Adam
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_with_bias_correction(weight_decay):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    grads = GRADS + [np.full_like(W0, 0.3), -GRADS[0]]
    history = run(lambda ps: Adam(ps, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=weight_decay),
                  grads=grads)
    w, m, v = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    for t, (g, got) in enumerate(zip(grads, history), start=1):
        g = g + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-15, err_msg=f"step {t}")


def test_adam_first_step_moves_each_weight_by_about_lr():
    """With bias correction, step 1 is ``lr * g / (|g| + eps)``: about ``lr * sign(g)``."""
    p = Parameter(W0.copy())
    p.grad = GRADS[0].copy()
    Adam([p], lr=0.01).step()
    expected = W0 - 0.01 * GRADS[0] / (np.abs(GRADS[0]) + 1e-7)
    np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-15)
    assert p.data[1, 1] == W0[1, 1]                       # a zero gradient does not move the weight


def test_adam_defaults_are_keras():
    optimizer = Adam([Parameter(np.zeros(2))])
    assert (optimizer.lr, optimizer.beta1, optimizer.beta2, optimizer.eps) == (1e-3, 0.9, 0.999, 1e-7)


# ------------------------------------------------------------------ schedules
def test_schedules():
    assert [constant(0.1)(t) for t in (0, 5, 10_000)] == [0.1, 0.1, 0.1]
    decay = step_decay(1.0, every=10, gamma=0.5)
    assert [decay(t) for t in (0, 9, 10, 19, 20, 25)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert step_decay(2.0, every=3)(3) == pytest.approx(0.2)
    schedule = cosine(1.0, total_steps=100, final_lr=0.1)
    assert schedule(0) == 1.0
    assert schedule(50) == pytest.approx(0.55, rel=1e-14)
    assert schedule(25) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-14)
    assert schedule(100) == pytest.approx(0.1, abs=1e-15) and schedule(1000) == pytest.approx(0.1)
    values = [schedule(t) for t in range(120)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert cosine(0.3, total_steps=0)(0) == 0.3
    with pytest.raises(ValueError, match="every >= 1"):
        step_decay(1.0, every=0)


def test_an_optimizer_follows_its_schedule():
    p = Parameter(np.zeros(1))
    optimizer = SGD([p], lr=1.0, schedule=step_decay(1.0, every=2, gamma=0.1))
    lrs = []
    for _ in range(5):
        p.grad = np.ones(1)
        optimizer.step()
        lrs.append(optimizer.lr)
    np.testing.assert_allclose(lrs, [1.0, 1.0, 0.1, 0.1, 0.01], rtol=1e-12)  # lr(t) for t = 0, 1, ...
    assert p.data[0] == pytest.approx(-(1.0 + 1.0 + 0.1 + 0.1 + 0.01), rel=1e-12)
    assert optimizer.steps == 5


# ------------------------------------------------------------------ state dicts
CONFIGS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 0.05, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.5, "nesterov": True, "weight_decay": 0.01,
             "schedule": cosine(0.05, 300)}),
    ("adam", {"lr": 1e-2}),
    ("adam", {"lr": 1e-2, "weight_decay": 0.1}),
    ("adam", {"lr": 1e-2, "beta1": 0.5, "beta2": 0.9, "schedule": step_decay(1e-2, every=50, gamma=0.5)}),
]
CONFIG_IDS = ["sgd", "momentum", "nesterov", "sgd-decay", "nesterov-decay-cosine", "adam", "adam-decay",
              "adam-betas-step"]


@pytest.mark.parametrize("name, options", CONFIGS, ids=CONFIG_IDS)
def test_state_dict_round_trip(name, options, tmp_path):
    rng = np.random.default_rng(0)
    first, second = MLP([3, 4, 2], seed=0, dtype=np.float64), MLP([3, 4, 2], seed=1, dtype=np.float64)
    optimizer = make_optimizer(name, first.parameters(), **options)
    for _ in range(3):
        for p in first.parameters():
            p.grad = rng.normal(size=p.shape)
        optimizer.step()
    state = optimizer.state_dict()
    slots = {"sgd": ("velocity",), "adam": ("m", "v")}[name]
    assert set(state) == {"steps", "lr"} | {f"{s}.{i}" for s in slots for i in range(4)}
    assert all(isinstance(value, np.ndarray) for value in state.values())
    # arrays only: it survives an npz file that refuses pickles
    np.savez(tmp_path / "state.npz", **state)
    with np.load(tmp_path / "state.npz", allow_pickle=False) as stored:
        state = {key: stored[key] for key in stored.files}
    second.load_state_dict(first.state_dict())
    restored = make_optimizer(name, second.parameters(), **options)
    restored.load_state_dict(state)
    assert restored.steps == 3 and restored.lr == optimizer.lr
    for _ in range(3):                                      # from here on both move identically
        grads = [rng.normal(size=p.shape) for p in first.parameters()]
        for model, opt in ((first, optimizer), (second, restored)):
            for p, g in zip(model.parameters(), grads):
                p.grad = g.copy()
            opt.step()
    for p, q in zip(first.parameters(), second.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_is_a_copy():
    p = Parameter(np.ones(3))
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(3)
    optimizer.step()
    state = optimizer.state_dict()
    state["velocity.0"][...] = 100.0
    np.testing.assert_array_equal(optimizer.state["velocity"][0], np.ones(3))


def test_load_state_dict_rejects_wrong_keys_and_shapes():
    params = [Parameter(np.ones((2, 2))), Parameter(np.ones(2))]
    sgd, adam = SGD(params, lr=0.1, momentum=0.9), Adam(params)
    with pytest.raises(ValueError, match="does not fit SGD.*m.0"):
        sgd.load_state_dict(adam.state_dict())
    state = sgd.state_dict()
    del state["velocity.1"]
    with pytest.raises(ValueError, match="expected keys.*velocity.1"):
        sgd.load_state_dict(state)
    state = sgd.state_dict()
    state["velocity.0"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"velocity.0 has shape \(4,\), expected \(2, 2\)"):
        sgd.load_state_dict(state)
    state = adam.state_dict()
    state["v.1"] = np.zeros((2, 1))
    before = adam.state["m"][0].copy()
    with pytest.raises(ValueError, match=r"v.1 has shape \(2, 1\)"):
        adam.load_state_dict(state)
    np.testing.assert_array_equal(adam.state["m"][0], before)


# ------------------------------------------------------------------ the mask law
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, options", CONFIGS, ids=CONFIG_IDS)
def test_mask_law_over_hundreds_of_steps(name, options, dtype):
    rng = np.random.default_rng(42)
    model = MLP([6, 5, 4, 3], seed=0, dtype=dtype)
    for p in model.parameters():
        p.mask = rng.random(p.shape) < 0.5
        p.data[~p.mask] = 0
    start = [p.data.copy() for p in model.parameters()]
    optimizer = make_optimizer(name, model.parameters(), **options)
    for step in range(300):
        for p in model.parameters():
            p.grad = rng.normal(size=p.shape).astype(dtype)   # nonzero at the pruned entries too
        optimizer.step()
        for index, p in enumerate(model.parameters()):
            assert np.all(p.data[~p.mask] == 0), f"step {step}, parameter {index}"
            for slot, buffers in optimizer.state.items():
                assert np.all(buffers[index][~p.mask] == 0), f"step {step}, {slot}.{index}"
    for p, p0 in zip(model.parameters(), start):
        assert p.dtype == dtype
        assert np.all(p.data[p.mask] != p0[p.mask])          # the surviving weights did train
        assert np.all(np.isfinite(p.data))


@pytest.mark.parametrize("name, options", CONFIGS, ids=CONFIG_IDS)
def test_mask_law_when_masks_arrive_and_grow_during_training(name, options):
    """Gradual pruning: masks set mid-training on weights *not* zeroed yet (weight decay included)
    and later masks that remove more; the next step and every later one keep the law."""
    rng = np.random.default_rng(1)
    params = [Parameter(rng.normal(size=(4, 5))), Parameter(rng.normal(size=5))]
    optimizer = make_optimizer(name, params, **options)
    for step in range(120):
        if step in (10, 50, 90):
            for p in params:                                   # masks only lose Trues
                keep = rng.random(p.shape) < 0.7
                p.mask = keep if p.mask is None else p.mask & keep
        for p in params:
            p.grad = rng.normal(size=p.shape)
        optimizer.step()
        for index, p in enumerate(params):
            if p.mask is None:
                continue
            assert np.all(p.data[~p.mask] == 0), f"step {step}"
            for slot, buffers in optimizer.state.items():
                assert np.all(buffers[index][~p.mask] == 0), f"step {step}, {slot}.{index}"


def test_a_mask_edited_in_place_is_followed():
    p = Parameter(np.ones(4), mask=np.ones(4, dtype=bool))
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    for _ in range(3):
        p.grad = np.ones(4)
        optimizer.step()
    p.mask[1] = False                                          # the same array, one entry pruned
    p.grad = np.ones(4)
    optimizer.step()
    assert p.data[1] == 0 and optimizer.state["velocity"][0][1] == 0


def test_a_gradient_of_the_wrong_shape_raises():
    a, b = Parameter(np.zeros((2, 3))), Parameter(np.zeros((3, 2)))
    optimizer = SGD([a, b], lr=1.0)
    a.grad, b.grad = np.zeros((3, 2)), np.zeros((2, 3))        # same sizes, swapped shapes
    with pytest.raises(ValueError, match=r"shape \(2, 3\) but its gradient has shape \(3, 2\)"):
        optimizer.step()
    np.testing.assert_array_equal(a.data, 0)


def test_step_does_not_change_the_gradient():
    p = Parameter(np.ones(4), mask=np.array([True, False, True, False]))
    grad = np.array([1.0, 2.0, 3.0, 4.0])
    p.grad = grad
    Adam([p], weight_decay=0.1).step()
    np.testing.assert_array_equal(grad, [1.0, 2.0, 3.0, 4.0])


# ------------------------------------------------------------------ skipping and bad input
@pytest.mark.parametrize("name, options", CONFIGS, ids=CONFIG_IDS)
def test_a_parameter_without_gradient_is_skipped(name, options):
    a, b = Parameter(np.ones(3)), Parameter(np.full(2, 5.0))
    optimizer = make_optimizer(name, [a, b], **options)
    a.grad = np.ones(3)
    optimizer.step()
    assert np.all(a.data != 1.0)
    np.testing.assert_array_equal(b.data, [5.0, 5.0])
    for buffers in optimizer.state.values():
        np.testing.assert_array_equal(buffers[1], 0.0)
    assert optimizer.steps == 1


def test_zero_grad():
    params = [Parameter(np.ones(2)), Parameter(np.ones(3))]
    optimizer = SGD(params)
    for p in params:
        p.grad = np.ones_like(p.data)
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


def test_bad_arguments_raise():
    params = [Parameter(np.ones(2))]
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", params)
    with pytest.raises(ValueError, match="non-empty list of Parameters"):
        SGD([])
    with pytest.raises(ValueError, match="non-empty list of Parameters"):
        SGD([np.ones(2)])
    for lr in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lr must be a finite number > 0"):
            Adam(params, lr=lr)
    with pytest.raises(ValueError, match="momentum must be a finite number >= 0"):
        SGD(params, momentum=-0.5)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        SGD(params, nesterov=True)
    with pytest.raises(ValueError, match=r"beta1 must lie in \[0, 1\)"):
        Adam(params, beta1=1.0)
    with pytest.raises(ValueError, match="eps must be"):
        Adam(params, eps=0.0)
    with pytest.raises(ValueError, match="weight_decay must be"):
        SGD(params, weight_decay=-1.0)
    assert isinstance(make_optimizer("sgd", params, lr=0.5), SGD)


# ------------------------------------------------------------------ per-parameter rates
@pytest.mark.parametrize("factory", [SGD, Adam, core_optim.SGD, core_optim.Adam])
def test_a_parameter_with_scale_k_steps_as_with_rate_k_lr(factory):
    """``lr_scales[i] = k`` moves parameter i exactly as ``lr = k · lr`` would (k = 2: the product is
    exact), and leaves the other parameters at ``lr``; with a schedule, the rate is ``schedule(t) · k``.
    Bit for bit, except the fast Adam, which multiplies by a rate per entry after its bias correction
    instead of before (float64 rounding)."""
    same = np.array_equal if factory is not Adam else lambda x, y: np.allclose(x, y, rtol=1e-13, atol=0)
    schedule = cosine(0.1, 3)
    a, b = Parameter(W0.copy()), Parameter(W0.copy())
    scaled = factory([a, b], lr=0.1, schedule=schedule, lr_scales=[2.0, 1.0])
    alone = [factory([Parameter(W0.copy())], lr=k * 0.1, schedule=lambda t, k=k: k * schedule(t))
             for k in (2.0, 1.0)]
    for g in GRADS:
        for p in (a, b, *(o.params[0] for o in alone)):
            p.grad = g.copy()
        scaled.step()
        for o in alone:
            o.step()
        assert same(a.data, alone[0].params[0].data)
        assert same(b.data, alone[1].params[0].data)


def test_lr_scales_default_to_one_and_bad_ones_are_refused():
    p = Parameter(W0.copy())
    assert Adam([p]).lr_scales == [1.0]
    with pytest.raises(ValueError, match=r"lr_scales: expected one factor per parameter \(1\), got 2"):
        Adam([p], lr_scales=[1.0, 2.0])
    optimizer = SGD([p], lr=0.1)
    for bad in ([0.0], [-1.0], [math.inf]):
        with pytest.raises(ValueError, match="lr_scales must be a finite number > 0"):
            optimizer.lr_scales = bad
    assert optimizer.lr_scales == [1.0]                   # a refused assignment leaves the factors alone
