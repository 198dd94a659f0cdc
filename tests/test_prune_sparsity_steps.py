"""Schedules (one-shot, iterative, polynomial), sparsification (L1, soft threshold), sensitivity."""

import copy
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune.core.nn import MLP, Parameter
from tinyprune.data import Dataset
from tinyprune.fast.optim import SGD, Adam
from tinyprune.prune import (
    IterativePruning,
    L1Regularized,
    PolynomialPruning,
    SoftThreshold,
    geometric_steps,
    mask_stats,
    one_shot,
    polynomial_sparsity,
    polynomial_steps,
    sensitivity,
    sparsify,
)
from tinyprune.training import evaluate, fit


@pytest.fixture(scope="module")
def toy():
    generator = np.random.default_rng(0)
    X = generator.normal(size=(256, 12)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64) + 2 * (X[:, 2] > 0.5)
    return Dataset(X, y, num_classes=4)


def weight_sparsity(model):
    stats = mask_stats(model)
    names = [f"layers.{i}.W" for i in range(len(model.layers))]
    return sum(stats[n]["pruned"] for n in names) / sum(stats[n]["total"] for n in names)


@given(st.floats(0.01, 0.99), st.floats(0.05, 0.9))
def test_geometric_steps(target, rate):
    values = geometric_steps(target, rate)
    assert values[-1] == target and all(a < b for a, b in zip(values, values[1:]))
    for r, value in enumerate(values[:-1], start=1):
        assert value == pytest.approx(1 - (1 - rate) ** r)
    assert len(values) == math.ceil(math.log(1 - target) / math.log(1 - rate) - 1e-12)


def test_geometric_steps_errors():
    assert geometric_steps(0.5, start=0.5) == []
    for bad in (0.0, 1.0, True):
        with pytest.raises(ValueError, match="rate"):
            geometric_steps(0.5, bad)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        geometric_steps(1.0)


def test_one_shot_prunes_to_the_target_at_once(toy):
    one = MLP([12, 16, 4], seed=0)
    one_shot(one, 0.5)
    assert weight_sparsity(one) == pytest.approx(0.5, abs=1e-3)


@given(st.floats(0, 0.5), st.floats(0.5, 0.99), st.integers(0, 50), st.integers(1, 100))
def test_polynomial_sparsity(initial, final, begin, length):
    end = begin + length
    values = [polynomial_sparsity(t, final, begin, end, initial) for t in range(begin - 2, end + 3)]
    assert values[0] == pytest.approx(initial) and polynomial_sparsity(begin, final, begin, end, initial) == \
        pytest.approx(initial)
    assert values[-1] == pytest.approx(final)
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))
    middle = begin + length / 2
    assert polynomial_sparsity(middle, final, begin, end, initial) == pytest.approx(
        final + (initial - final) * 0.5**3)


@pytest.mark.parametrize("scope, structure", [("global", "weights"), ("layer", "weights"),
                                              ("global", "neurons")])
def test_polynomial_pruning_during_fit(toy, scope, structure):
    model = MLP([12, 16, 16, 4], seed=0)
    callback = PolynomialPruning(0.75, begin_step=2, end_step=12, every=3, scope=scope, structure=structure)
    fit(model, toy, epochs=3, batch_size=32, progress=False, callbacks=[callback])       # 24 steps
    assert [t for t, _ in callback.history] == [2, 5, 8, 11, 12]
    assert callback.history[-1][1] == pytest.approx(0.75)
    assert all(a[1] <= b[1] for a, b in zip(callback.history, callback.history[1:]))
    if structure == "weights":
        assert weight_sparsity(model) == pytest.approx(0.75, abs=2e-3)
    else:
        assert sum(int((~layer.b.mask).sum()) for layer in model.layers[:-1]) == 24
    for p in model.parameters():
        if p.mask is not None:
            assert np.all(p.data[~p.mask] == 0)


def test_polynomial_pruning_errors():
    with pytest.raises(ValueError, match="end_step"):
        PolynomialPruning(0.5, begin_step=10, end_step=5)
    with pytest.raises(ValueError, match="every"):
        PolynomialPruning(0.5, begin_step=0, end_step=5, every=0)
    with pytest.raises(ValueError, match="initial_sparsity"):
        PolynomialPruning(0.5, begin_step=0, end_step=5, initial_sparsity=0.6)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        PolynomialPruning(1.0, begin_step=0, end_step=5)


def test_iterative_pruning_callback(toy):
    model = MLP([12, 16, 4], seed=0)
    callback = IterativePruning(0.6, rate=0.5, every_epochs=2)
    fit(model, toy, epochs=6, progress=False, callbacks=[callback])
    assert callback.history == [(2, 0.5), (4, 0.6)]
    assert weight_sparsity(model) == pytest.approx(0.6, abs=2e-3)


def test_soft_threshold_is_the_proximal_operator():
    w = Parameter(np.array([0.3, -0.3, 0.05, -0.05, 0.0]))
    SoftThreshold(lam=2.0).shrink([w], step_size=0.1)
    np.testing.assert_allclose(w.data, [0.1, -0.1, 0.0, 0.0, 0.0])


def test_l1_regularized_adds_the_subgradient():
    w = Parameter(np.array([0.5, -0.5, 0.0]))
    inner = SGD([w], lr=0.1)
    optimizer = L1Regularized(inner, lam=1.0)
    w.grad = np.array([0.0, 0.0, 0.0])
    optimizer.step()
    np.testing.assert_allclose(w.data, [0.4, -0.4, 0.0])
    assert optimizer.steps == 1 and optimizer.params == [w] and optimizer.lr == 0.1
    optimizer.lr = 0.5
    assert inner.lr == 0.5
    assert set(optimizer.state_dict()) == set(inner.state_dict())
    with pytest.raises(ValueError, match="lam"):
        L1Regularized(inner, lam=-1.0)
    with pytest.raises(ValueError, match="wraps"):
        L1Regularized("sgd", lam=1.0)


@pytest.mark.parametrize("method", ["prox", "l1"])
def test_sparsify_reaches_sparsity_and_reports(toy, method):
    model = MLP([12, 32, 4], seed=0)
    report = sparsify(model, toy, lam=0.1 if method == "prox" else 0.01, epochs=5, method=method,
                      tau=1e-2 if method == "l1" else 1e-3, batch_size=16)
    assert report.sparsity == pytest.approx(weight_sparsity(model))
    assert report.sparsity > 0.3
    assert report.accuracy == pytest.approx(evaluate(model, toy)["accuracy"])
    assert report.accuracy > 0.8 and report.to_dict()["method"] == method and method in str(report)
    with pytest.raises(ValueError, match="method"):
        sparsify(model, toy, lam=1e-3, epochs=1, method="l2")
    with pytest.raises(ValueError, match="lam"):
        sparsify(model, toy, lam=float("nan"), epochs=1)


def test_sensitivity_table_leaves_the_model_alone(toy):
    model = MLP([12, 16, 4], seed=0)
    fit(model, toy, epochs=3, progress=False, optimizer=Adam(model.parameters(), lr=0.01))
    before = copy.deepcopy(model)
    table = sensitivity(model, toy, sparsities=(0.0, 0.5, 0.99))
    assert table.layers == ["layers.0.W", "layers.1.W"] and table.sparsities == [0.0, 0.5, 0.99]
    assert table.baseline == pytest.approx(evaluate(model, toy)["accuracy"])
    for row in table.accuracy.values():
        assert row[0] == table.baseline
    assert table.accuracy["layers.0.W"][2] < table.baseline
    assert all(p.mask is None and np.array_equal(p.data, q.data)
               for p, q in zip(model.parameters(), before.parameters()))
    assert table.to_dict()["layers"] == table.layers and "layers.1.W" in str(table)
    taylor = sensitivity(model, (toy.X, toy.y), sparsities=(0.5,), criterion="taylor", layers=["layers.1.W"])
    assert list(taylor.accuracy) == ["layers.1.W"]
    with pytest.raises(ValueError, match="unknown layer"):
        sensitivity(model, toy, layers=["layers.5.W"])
    with pytest.raises(ValueError, match="labelled"):
        sensitivity(model, toy.X)


# ------------------------------------------------------------------ one family each: polynomial, geometric
def old_iterative_steps(sparsity, steps):
    """``experiment.iterative_steps`` as it was (commit 93d992c), which ``polynomial_steps`` replaces."""
    return [sparsity * (1 - (1 - r / steps) ** 3) for r in range(1, steps + 1)]


@given(st.floats(0, 0.99), st.integers(1, 30))
def test_polynomial_steps_is_bit_identical_to_the_old_iterative_steps(target, steps):
    assert polynomial_steps(target, steps) == old_iterative_steps(target, steps)


@given(st.floats(0, 0.5), st.floats(0.5, 0.99), st.integers(1, 20), st.sampled_from([1, 2, 3, 0.5]))
def test_polynomial_steps_follow_the_curve(initial, target, steps, power):
    values = polynomial_steps(target, steps, power=power, initial=initial)
    assert len(values) == steps and values[-1] == pytest.approx(target)
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))
    for r, value in enumerate(values, start=1):       # the same curve as the gradual schedule
        assert value == pytest.approx(polynomial_sparsity(r, target, 0, steps, initial, power))
    if power == 1:
        assert np.allclose(np.diff([initial, *values]), (target - initial) / steps)      # linear: equal steps


def test_schedule_arguments_are_checked():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="steps"):
            polynomial_steps(0.5, bad)
    for bad in (0, -2, float("inf"), "3", True):
        with pytest.raises(ValueError, match="power"):
            polynomial_steps(0.5, 3, power=bad)
        with pytest.raises(ValueError, match="power"):
            PolynomialPruning(0.5, begin_step=0, end_step=5, power=bad)
    with pytest.raises(ValueError, match="must not exceed"):
        polynomial_steps(0.5, 3, initial=0.6)
    with pytest.raises(ValueError, match="only when the target"):
        polynomial_steps(0.5, 3, initial={"layers.0.W": 0.1})
    with pytest.raises(ValueError, match="the start names"):
        geometric_steps({"layers.0.W": 0.5}, start={"layers.1.W": 0.1})


def test_polynomial_pruning_takes_its_power():
    linear = PolynomialPruning(0.8, begin_step=0, end_step=4, power=1)
    cubic = PolynomialPruning(0.8, begin_step=0, end_step=4)
    assert [linear.sparsity_at(t) for t in range(5)] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert cubic.sparsity_at(2) == pytest.approx(0.8 * (1 - 0.5**3))


def test_schedules_interpolate_each_layers_sparsity(toy):
    target = {"layers.0.W": 0.8, "layers.1.W": 0.4}
    steps = polynomial_steps(target, 4, power=1)
    assert [s["layers.1.W"] for s in steps] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    rounds = geometric_steps(target, rate=0.5)                 # 0.5, 0.75, 0.8 | 0.4 then stays
    assert [r["layers.0.W"] for r in rounds] == pytest.approx([0.5, 0.75, 0.8])
    assert [r["layers.1.W"] for r in rounds] == pytest.approx([0.4, 0.4, 0.4])

    model = MLP([12, 16, 16, 4], seed=0)
    callback = PolynomialPruning({"layers.0.W": 0.75, "layers.2.W": 0.5}, begin_step=2, end_step=12, every=3,
                                 initial_sparsity=0.25)
    fit(model, toy, epochs=3, batch_size=32, progress=False, callbacks=[callback])
    assert callback.history[0][1] == pytest.approx({"layers.0.W": 0.25, "layers.2.W": 0.25})
    assert callback.history[-1][1] == {"layers.0.W": 0.75, "layers.2.W": 0.5}
    stats = mask_stats(model)
    assert stats["layers.0.W"]["pruned"] == 144 and stats["layers.2.W"]["pruned"] == 32
    assert stats["layers.1.W"]["pruned"] == 0                  # missing from the mapping: not pruned

    model = MLP([12, 16, 16, 4], seed=0)
    callback = IterativePruning(target, rate=0.5)
    fit(model, toy, epochs=4, batch_size=64, progress=False, callbacks=[callback])
    assert [s for _, s in callback.history] == rounds
    stats = mask_stats(model)
    assert stats["layers.0.W"]["pruned"] == round(0.8 * 192)
    assert stats["layers.1.W"]["pruned"] == round(0.4 * 256)
    steps = geometric_steps({"layers.0.W": 0.5}, rate=0.3)
    assert [s["layers.0.W"] for s in steps] == pytest.approx([0.3, 0.5])
    with pytest.raises(ValueError, match="must not exceed"):
        PolynomialPruning({"layers.0.W": 0.5}, begin_step=0, end_step=3, initial_sparsity=0.6)
