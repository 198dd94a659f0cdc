"""The proof that ``tinyprune.fast`` computes what ``tinyprune.core`` computes (no timing here: speed lives in
benchmarks/). Random models, masks, batches and seeds (hypothesis); the plain side is always the core's code.

Bit for bit, where the arithmetic is the same:
- ``fast.optim.SGD`` == ``core.optim.SGD`` (weights and velocity), with masks that arrive, change, are
  edited in place, gradients that are sometimes missing, and per-parameter rates (``lr_scales``) that are
  given, changed between steps, or reset to 1;
- Adam's moments ``m`` and ``v``; a fast optimizer inside ``plain()`` == the core one;
- the fast engines' batches == the plain ones (values, order, rows);
- the fused softmax cross-entropy == ``losses.loss_and_grad`` (value and gradient);
- ``fast.autograd.backward`` == ``Tensor.backward`` (every gradient), and no leaf shares its gradient;
- ``tinyprune.fit`` (fast engines, fast SGD) == ``core.train.fit`` (plain), both engines;
  ``tinyprune.fit`` inside ``plain()`` == ``core.train.fit`` with any optimizer.

Within a stated tolerance, where it is not: Adam's weights (fast computes ``α_t m / (sqrt(v) + ε_t)``, the
core ``α m̂ / (sqrt(v̂) + ε)``: the same number up to rounding) ``ADAM_RTOL``; and the flush of tiny
optimizer state every ``FLUSH_EVERY`` steps (moves no weight by more than ``lr · 1e-24``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyprune as tp
from tinyprune import fast, training
from tinyprune.core import backprop, losses
from tinyprune.core import optim as core_optim
from tinyprune.core import train as core_train
from tinyprune.core.autograd import Tensor
from tinyprune.core.batches import Dataset
from tinyprune.core.nn import MLP, Parameter
from tinyprune.fast import optim as fast_optim
from tinyprune.fast.train import FastBackprop, cross_entropy_and_grad
from tinyprune.testing import arrays

ADAM_RTOL = {np.float32: 1e-5, np.float64: 1e-12}   # per step; the trajectories below compare after each
SHAPES = [(7, 5), (5,), (5, 3), (3,)]
SEEDS = st.integers(0, 2**31 - 1)


def twin_params(rng, dtype):
    """Two lists of parameters with the same values, and the same masks (edited alike below)."""
    first = [Parameter(rng.normal(size=s).astype(dtype)) for s in SHAPES]
    return first, [Parameter(p.data.copy()) for p in first]


def next_mask(rng, step, current, shape):
    """No mask for a few steps, then a mask that only loses entries: replaced, or edited in place."""
    if step < 3:
        return None
    if current is None or step % 7 == 0:
        fresh = rng.random(shape) < 0.7
        return fresh if current is None else current & fresh       # a new array
    if step % 5 == 0:
        current[tuple(rng.integers(0, s) for s in shape)] = False   # the same array, edited
    return current


def drive(pairs, optimizers, rng, steps, check):
    """Step both optimizers on the same gradients and masks; ``check(step)`` after each step."""
    for step in range(1, steps + 1):
        for p, q in pairs:
            p.mask = next_mask(rng, step, p.mask, p.shape)
            q.mask = None if p.mask is None else p.mask.copy()
            if p.mask is not None:
                p.data *= p.mask
                q.data *= q.mask
            missing = rng.random() < 0.1                           # a parameter without a gradient
            p.grad = None if missing else rng.normal(size=p.shape).astype(p.dtype)
            q.grad = None if missing else p.grad.copy()
        for optimizer in optimizers:
            optimizer.step()
        check(step)


# ------------------------------------------------------------------ optimizers
#: Per-parameter rates (``lr_scales``) for the four parameters of ``SHAPES``: none (every factor 1), or
#: factors given at the start; ``rescale`` then changes them at step 10 and sets them back to 1 at step 25.
SCALES = st.sampled_from([None, (1.0, 2.5, 0.3, 1.7)])


def rescale(optimizers, step, rng):
    """Between steps, the same new factors for every optimizer (drawn at step 10, every 1 at step 25)."""
    factors = {10: list(rng.uniform(0.2, 3.0, len(SHAPES))), 25: None}.get(step, "keep")
    if factors != "keep":
        for optimizer in optimizers:
            optimizer.lr_scales = factors


@given(SEEDS, st.sampled_from([0.0, 0.9]), st.booleans(), st.sampled_from([0.0, 0.05]),
       st.sampled_from([np.float32, np.float64]), SCALES)
def test_fast_sgd_is_the_core_sgd_bit_for_bit(seed, momentum, nesterov, weight_decay, dtype, scales):
    rng = np.random.default_rng(seed)
    plain, quick = twin_params(rng, dtype)
    options = {"lr": 0.05, "momentum": momentum, "nesterov": nesterov and momentum > 0,
               "weight_decay": weight_decay, "lr_scales": scales}
    a, b = core_optim.SGD(plain, **options), fast_optim.SGD(quick, **options)

    def check(step):
        rescale([a, b], step, rng)
        for i, (p, q) in enumerate(zip(plain, quick)):
            assert np.array_equal(p.data, q.data), f"step {step}, parameter {i}"
            assert np.array_equal(a.state["velocity"][i], b.state["velocity"][i])
            if p.mask is not None and p.grad is not None:      # (a step without a gradient skips it)
                assert not np.any(q.data[~q.mask]) and not np.any(b.state["velocity"][i][~q.mask])

    drive(list(zip(plain, quick)), [a, b], rng, 40, check)


@given(SEEDS, st.sampled_from([0.0, 0.01]), st.sampled_from([np.float32, np.float64]), SCALES)
def test_fast_adam_is_the_core_adam_within_rounding(seed, weight_decay, dtype, scales):
    """``m`` and ``v`` are bit-identical; the weights agree to ``ADAM_RTOL`` (re-synchronised each step),
    with per-parameter rates too (given, changed, reset)."""
    rng = np.random.default_rng(seed)
    plain, quick = twin_params(rng, dtype)
    a = core_optim.Adam(plain, lr=0.01, weight_decay=weight_decay, lr_scales=scales)
    b = fast_optim.Adam(quick, lr=0.01, weight_decay=weight_decay, lr_scales=scales)

    def check(step):
        rescale([a, b], step, rng)
        for i, (p, q) in enumerate(zip(plain, quick)):
            for slot in ("m", "v"):
                assert np.array_equal(a.state[slot][i], b.state[slot][i]), f"{slot}, step {step}"
            np.testing.assert_allclose(q.data, p.data, rtol=ADAM_RTOL[dtype], atol=ADAM_RTOL[dtype] * 1e-3)
            q.data[...] = p.data                  # the next step starts from the same weights again
            if p.mask is not None and p.grad is not None:
                assert not np.any(q.data[~q.mask]) and not np.any(b.state["m"][i][~q.mask])

    drive(list(zip(plain, quick)), [a, b], rng, 40, check)


@given(SEEDS, st.sampled_from(["sgd", "adam"]), SCALES)
def test_a_fast_optimizer_inside_plain_is_the_core_one(seed, name, scales):
    rng = np.random.default_rng(seed)
    plain, quick = twin_params(rng, np.float32)
    options = {"lr": 0.05, "momentum": 0.9, "nesterov": True} if name == "sgd" else {"lr": 0.01}
    options["lr_scales"] = scales
    a = {"sgd": core_optim.SGD, "adam": core_optim.Adam}[name](plain, **options)
    b = fast_optim.make_optimizer(name, quick, **options)

    def check(step):
        for p, q in zip(plain, quick):
            assert np.array_equal(p.data, q.data), f"step {step}"

    with tp.plain():
        drive(list(zip(plain, quick)), [a, b], rng, 25, check)
    assert not fast.is_plain()


def test_tiny_state_is_flushed_to_zero_and_nothing_else():
    for dtype in (np.float32, np.float64):
        p = Parameter(np.ones(6, dtype=dtype))
        optimizer = fast_optim.Adam([p])
        tiny = np.finfo(dtype).tiny
        values = np.array([tiny / 4, -tiny * 1e3, 1e-20, -1e-3, 0.0, 1.0], dtype=dtype)
        p.grad = np.zeros(6, dtype=dtype)
        for step in range(fast_optim.FLUSH_EVERY):
            if step == fast_optim.FLUSH_EVERY - 1:
                optimizer.state["m"][0][...] = values / optimizer.beta1   # m after this step's β1 m
            optimizer.step()
        m = optimizer.state["m"][0]
        assert m[0] == 0 and m[1] == 0                     # subnormal, or about to become one: flushed
        np.testing.assert_array_equal(m[2:], (values / optimizer.beta1 * optimizer.beta1)[2:])


def test_mixed_dtypes_get_one_block_each_and_keep_their_dtype():
    params = [Parameter(np.ones((2, 2), np.float32)), Parameter(np.ones(3, np.float64))]
    optimizer = fast_optim.Adam(params, lr=0.1)
    for p in params:
        p.grad = np.full(p.shape, 0.5, dtype=p.dtype)
    optimizer.step()
    assert [p.dtype for p in params] == [np.float32, np.float64]
    assert [optimizer.state["m"][i].dtype for i in range(2)] == [np.float32, np.float64]
    for p in params:                                        # step 1 of Adam: w - lr * g / (|g| + eps)
        np.testing.assert_allclose(p.data, 1 - 0.1 * 0.5 / (0.5 + 1e-7), rtol=1e-6)


def test_a_loaded_state_is_masked_again_at_the_next_step():
    p = Parameter(np.ones(4, np.float32), mask=np.array([True, False, True, True]))
    p.data *= p.mask
    optimizer = fast_optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(4, np.float32)
    optimizer.step()
    state = optimizer.state_dict()
    state["velocity.0"] = np.full(4, 5.0, np.float32)      # a state that ignores the mask
    optimizer.load_state_dict(state)
    optimizer.step()
    assert optimizer.state["velocity"][0][1] == 0 and p.data[1] == 0


# ------------------------------------------------------------------ batches and the loss
@given(st.integers(1, 60), st.integers(1, 70), SEEDS)
def test_fast_batches_are_the_plain_batches(n, batch_size, seed):
    rng = np.random.default_rng(seed)
    data = Dataset(rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 3, size=n))
    order = core_train.epoch_rng(seed, 1), core_train.epoch_rng(seed, 1)
    quick = [(Xb.copy(), yb, rows) for Xb, yb, rows in FastBackprop().batches(data, batch_size, order[0])]
    plain = list(core_train.Backprop().batches(data, batch_size, order[1]))
    minibatches = list(data.minibatches(batch_size, shuffle=True, rng=core_train.epoch_rng(seed, 1)))
    assert len(quick) == len(plain) == len(minibatches)
    for (Xa, ya, ra), (Xb, yb, rb), (Xm, ym) in zip(quick, plain, minibatches):
        assert np.array_equal(Xa, Xb) and np.array_equal(Xa, Xm) and Xa.dtype == Xb.dtype
        assert np.array_equal(ya, yb) and np.array_equal(ya, ym) and np.array_equal(ra, rb)


def test_a_dataset_like_object_keeps_its_own_batches():
    class Doubled(Dataset):
        def minibatches(self, batch_size, shuffle=True, rng=None):
            for Xb, yb in super().minibatches(batch_size, shuffle, rng):
                yield 2 * Xb, yb

    data = Doubled(np.ones((4, 2), np.float32), [0, 1, 0, 1])
    for engine in (FastBackprop(), core_train.Backprop()):
        assert all(np.all(Xb == 2) and rows is None
                   for Xb, _, rows in engine.batches(data, 3, core_train.epoch_rng(0, 1)))


@given(st.integers(1, 12), st.integers(1, 6), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([1.0, 30.0, 1e4]), SEEDS)
def test_fused_cross_entropy_is_the_plain_loss_bit_for_bit(n, k, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(n, k)) * scale).astype(dtype)
    y = rng.integers(0, k, size=n)
    value, grad = cross_entropy_and_grad(z, y)
    plain_value, plain_grad = losses.loss_and_grad("cross_entropy", z, y)
    assert value == plain_value == losses.cross_entropy(z, y)
    assert np.array_equal(grad, plain_grad) and grad.dtype == dtype
    expected = (losses.softmax(z.astype(np.float64)) - losses.one_hot(y, k)) / n
    np.testing.assert_allclose(grad, expected, atol=1e-6 if dtype == np.float32 else 1e-14)


@given(arrays((5, 4), bound=50.0))
def test_the_fast_engine_uses_the_fused_loss_only_for_the_label_cross_entropy(z):
    y = np.array([0, 3, 1, 2, 3])
    for name in ("cross_entropy", "squared_error"):
        part = losses.Loss(name)
        value, grad = FastBackprop().loss_and_grad(part, z, y, None)
        plain_value, plain_grad = core_train.Backprop().loss_and_grad(part, z, y, None)
        assert value == plain_value and np.array_equal(grad, plain_grad)


# ------------------------------------------------------------------ autograd
@given(SEEDS, st.booleans())
def test_fast_backward_gives_every_gradient_of_the_plain_one(seed, masked):
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(2, 7)) for _ in range(int(rng.integers(2, 5)))]
    X, y = rng.normal(size=(6, sizes[0])), rng.integers(0, sizes[-1], size=6)
    grads = []
    for run in (lambda value: value.backward(), fast.autograd.backward):
        model = MLP(sizes, seed=seed % 1000, dtype=np.float64)
        if masked:
            for parameter in model.parameters():
                parameter.mask = np.random.default_rng(seed).random(parameter.shape) < 0.6
        for _ in range(2):                               # the second call accumulates
            value = losses.cross_entropy(model(Tensor(X)), y) + (model(Tensor(X)) ** 2).mean()
            run(value)
        grads.append([p.grad for p in model.parameters()])
    for plain, quick in zip(*grads):
        assert np.array_equal(plain, quick)


@pytest.mark.parametrize("backward", [Tensor.backward, fast.autograd.backward])
def test_a_leaf_gradient_is_never_shared_with_another_array(backward):
    rng = np.random.default_rng(7)
    a = Tensor(rng.normal(size=(3, 2)), requires_grad=True)
    b = Tensor(rng.normal(size=(3, 2)), requires_grad=True)
    c = Tensor(rng.normal(size=(2, 3)), requires_grad=True)
    s = a + b                                        # both parents receive the node's own gradient
    backward((s * 2.0 + c.T).sum() + (s.reshape(6) * 1.0).sum())
    grads = [a.grad, b.grad, c.grad, s.grad]
    for i, first in enumerate(grads):
        for second in grads[i + 1:]:
            assert not np.may_share_memory(first, second)
    np.testing.assert_allclose(a.grad, np.full((3, 2), 3.0))
    np.testing.assert_allclose(c.grad, np.ones((2, 3)))
    w = Tensor(rng.normal(size=(3, 2)), requires_grad=True)
    backward((Tensor(rng.normal(size=(4, 3))) @ w).sum())
    first = w.grad
    backward((Tensor(rng.normal(size=(4, 3))) @ w).sum())   # a second call accumulates into a new array
    assert w.grad is not first


def test_autograd_matmul_gives_no_gradient_to_an_input_that_needs_none():
    rng = np.random.default_rng(6)
    X, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    w, x = Tensor(W, requires_grad=True), Tensor(X)
    (x @ w).sum().backward()
    assert x.grad is None
    np.testing.assert_allclose(w.grad, X.T @ np.ones((4, 2)))
    x, w = Tensor(X, requires_grad=True), Tensor(W)
    (x @ w).sum().backward()
    assert w.grad is None
    np.testing.assert_allclose(x.grad, np.ones((4, 2)) @ W.T)


# ------------------------------------------------------------------ fit: fast == plain
def random_task(seed, dtype=np.float32):
    """A random MLP (with random masks, half the time) and a random dataset it fits."""
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(2, 8)) for _ in range(int(rng.integers(2, 5)))]
    n = int(rng.integers(5, 60))
    data = Dataset(rng.normal(size=(n, sizes[0])).astype(dtype), rng.integers(0, sizes[-1], size=n),
                   num_classes=sizes[-1])
    masks = [rng.random(s) < 0.6 if rng.random() < 0.5 else None
             for s in [p.shape for p in MLP(sizes, dtype=dtype).parameters()]]
    return sizes, data, masks, int(rng.integers(1, 20))


def build(sizes, masks, dtype):
    model = MLP(sizes, seed=1, dtype=dtype)
    for parameter, mask in zip(model.parameters(), masks):
        if mask is not None:
            parameter.mask = mask.copy()
            parameter.data *= mask
    return model


@given(SEEDS, st.sampled_from(["backprop", "autograd"]), st.sampled_from([np.float32, np.float64]))
def test_fit_on_the_fast_path_is_the_plain_fit_bit_for_bit_with_sgd(seed, engine, dtype):
    sizes, data, masks, batch_size = random_task(seed, dtype)
    quick, plain = build(sizes, masks, dtype), build(sizes, masks, dtype)
    options = {"lr": 0.1, "momentum": 0.9}
    history = tp.fit(quick, data, epochs=2, batch_size=batch_size, seed=seed, engine=engine, progress=False,
                     optimizer=fast_optim.SGD(quick.parameters(), **options), val=data)
    records = core_train.fit(plain, data, epochs=2, batch_size=batch_size, seed=seed, engine=engine,
                             optimizer=core_optim.SGD(plain.parameters(), **options), val=data)
    for p, q in zip(quick.parameters(), plain.parameters()):
        assert np.array_equal(p.data, q.data)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert getattr(history, key) == [record[key] for record in records]


@given(SEEDS, st.sampled_from(["backprop", "autograd"]))
def test_fit_inside_plain_is_the_core_fit_bit_for_bit(seed, engine):
    sizes, data, masks, batch_size = random_task(seed)
    inside, plain = build(sizes, masks, np.float32), build(sizes, masks, np.float32)
    with tp.plain():
        tp.fit(inside, data, epochs=2, batch_size=batch_size, seed=seed, engine=engine, progress=False)
    core_train.fit(plain, data, epochs=2, batch_size=batch_size, seed=seed, engine=engine)
    for p, q in zip(inside.parameters(), plain.parameters()):
        assert np.array_equal(p.data, q.data)


@given(SEEDS)
def test_fit_with_the_default_adam_is_the_plain_fit_within_rounding(seed):
    """Adam's weights differ by rounding per step (``ADAM_RTOL``); over a few epochs they stay close."""
    sizes, data, masks, batch_size = random_task(seed, np.float64)
    quick, plain = build(sizes, masks, np.float64), build(sizes, masks, np.float64)
    tp.fit(quick, data, epochs=2, batch_size=batch_size, seed=seed, progress=False)
    core_train.fit(plain, data, epochs=2, batch_size=batch_size, seed=seed)
    for p, q in zip(quick.parameters(), plain.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-9, atol=1e-12)
        if p.mask is not None:
            assert not np.any(p.data[~p.mask]) and not np.any(q.data[~q.mask])


def test_fit_follows_the_plain_loop_of_minibatches_set_gradients_and_step():
    rng = np.random.default_rng(5)
    data = Dataset(rng.normal(size=(90, 6)).astype(np.float32), rng.integers(0, 3, size=90))
    quick, plain = MLP([6, 8, 3], seed=0), MLP([6, 8, 3], seed=0)
    tp.fit(quick, data, epochs=2, batch_size=16, seed=3, progress=False,
           optimizer=fast_optim.SGD(quick.parameters(), lr=0.1))
    optimizer = core_optim.SGD(plain.parameters(), lr=0.1)
    for epoch in (1, 2):
        for Xb, yb in data.minibatches(16, shuffle=True, rng=core_train.epoch_rng(3, epoch)):
            backprop.set_gradients(plain, Xb, yb)
            optimizer.step()
    for p, q in zip(quick.parameters(), plain.parameters()):
        assert np.array_equal(p.data, q.data)


def test_fit_uses_the_fast_path_by_default_and_the_plain_one_inside_plain(monkeypatch):
    seen = []
    monkeypatch.setattr(core_train, "fit", lambda *args, **kwargs: seen.append(kwargs) or [])
    data = Dataset(np.ones((4, 3), np.float32), [0, 1, 0, 1])
    training.fit(MLP([3, 2]), data, epochs=1, progress=False)
    with tp.plain():
        training.fit(MLP([3, 2]), data, epochs=1, progress=False)
    assert isinstance(seen[0]["engine"], FastBackprop) and isinstance(seen[0]["optimizer"], fast_optim.Adam)
    assert type(seen[1]["engine"]) is core_train.Backprop and seen[1].get("optimizer") is None


# ------------------------------------------------------------------ the textbook's own rules
CORE = Path(tp.__file__).parent / "core"
FAST = Path(tp.__file__).parent / "fast"


def test_the_core_is_at_most_1600_lines_and_imports_only_numpy_the_standard_library_and_itself():
    files = sorted(CORE.glob("*.py"))
    assert sum(len(path.read_text(encoding="utf-8").splitlines()) for path in files) <= 1600
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                assert name.startswith("tinyprune.core") or top == "numpy" or top in sys.stdlib_module_names \
                    or top == "__future__", f"{path.name} imports {name}"


@pytest.mark.parametrize("folder", [CORE, FAST])
def test_no_function_of_core_or_fast_is_over_60_lines_or_10_parameters(folder):
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                lines = body[-1].end_lineno - body[0].lineno + 1 if body else 0
                arguments = node.args
                count = len(arguments.posonlyargs + arguments.args + arguments.kwonlyargs) + \
                    (arguments.vararg is not None) + (arguments.kwarg is not None)
                assert lines <= 60 and count <= 10, f"{path.name}:{node.name}: {lines} lines, {count} params"


def test_the_public_names_are_the_fast_ones():
    assert tp.fit is training.fit and tp.Adam is fast_optim.Adam and tp.SGD is fast_optim.SGD
    assert issubclass(tp.Adam, core_optim.Adam) and tp.optim is fast_optim
