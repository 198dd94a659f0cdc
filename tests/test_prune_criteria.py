"""Each criterion against a hand computation on a tiny example (float64)."""

import numpy as np
import pytest

from tinyprune.core import backprop, losses
from tinyprune.prune import criteria as crit
from tinyprune.testing import small_problem

tiny = small_problem


def mean_loss(model, X, y):
    return losses.cross_entropy(model(X), y)


def two_layer_by_hand(model, X, y):
    """Per-sample quantities of MLP([d, h, k]) written out: a = relu(X W1 + b1), p = softmax(a W2 + b2)."""
    W1, b1, W2, b2 = (p.data for p in model.parameters())
    Z1 = X @ W1 + b1
    A = np.maximum(Z1, 0)
    P = losses.softmax(A @ W2 + b2)
    Y = losses.one_hot(y, P.shape[1])
    delta2 = P - Y                       # dℓ_i/dz2, per sample
    dA = delta2 @ W2.T                   # dℓ_i/da
    delta1 = dA * (Z1 > 0)
    return Z1, A, P, delta2, dA, delta1


def test_magnitude_and_random():
    model, _, _ = tiny()
    scores = crit.magnitude(model)
    assert all(np.array_equal(scores[n], np.abs(p.data)) for n, p in model.named_parameters())
    a, b, c = crit.random(model, seed=1), crit.random(model, seed=1), crit.random(model, seed=2)
    for name, p in model.named_parameters():
        assert a[name].shape == p.shape and np.array_equal(a[name], b[name])
        assert np.all((a[name] >= 0) & (a[name] < 1))
    assert not np.array_equal(a["layers.0.W"], c["layers.0.W"])


def test_gradient_is_the_mean_gradient_by_hand_in_any_batching():
    model, X, y = tiny()
    _, A, _, delta2, _, delta1 = two_layer_by_hand(model, X, y)
    n = X.shape[0]
    by_hand = {"layers.0.W": X.T @ delta1 / n, "layers.0.b": delta1.mean(0),
               "layers.1.W": A.T @ delta2 / n, "layers.1.b": delta2.mean(0)}
    for batch_size in (1, 3, 1000):
        scores = crit.gradient(model, X, y, batch_size=batch_size)
        for name in by_hand:
            np.testing.assert_allclose(scores[name], np.abs(by_hand[name]), rtol=1e-10, atol=1e-12)


def test_taylor_is_w_times_gradient():
    model, X, y = tiny()
    _, grads = backprop.gradients(model, X, y)
    scores = crit.taylor(model, X, y, batch_size=2)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(scores[name], np.abs(p.data * grads[name]), rtol=1e-10, atol=1e-14)


def test_taylor_approximates_the_loss_change_of_zeroing_a_small_weight():
    model, X, y = tiny()
    W = model.layers[1].W
    W.data[0, 0] = 1e-3
    score = crit.taylor(model, X, y)["layers.1.W"][0, 0]
    base = mean_loss(model, X, y)
    W.data[0, 0] = 0
    assert abs(mean_loss(model, X, y) - base) == pytest.approx(score, rel=1e-2)


def test_hybrid_mixes_layer_normalised_scores():
    model, X, y = tiny()
    magnitude, first_order = crit.magnitude(model), crit.taylor(model, X, y)
    mixed = crit.hybrid(model, X, y, alpha=0.25)
    for name in magnitude:
        by_hand = (0.25 * magnitude[name] / magnitude[name].max()
                   + 0.75 * first_order[name] / first_order[name].max())
        np.testing.assert_allclose(mixed[name], by_hand, rtol=1e-12)
        assert mixed[name].max() <= 1 + 1e-12
    ends = crit.hybrid(model, X, y, alpha=1.0)
    np.testing.assert_allclose(ends["layers.0.W"], magnitude["layers.0.W"] / magnitude["layers.0.W"].max())
    with pytest.raises(ValueError, match="alpha"):
        crit.hybrid(model, X, y, alpha=-0.1)


def test_obd_lecun_is_the_exact_hessian_diagonal_for_a_linear_model():
    model, X, y = tiny(sizes=(3, 4), n=5)
    scores = crit.obd(model, X, y)
    diagonal = crit.hessian_diagonal(model, X, y)
    eps = 1e-4
    W = model.layers[0].W.data
    for j, k in [(0, 0), (1, 2), (2, 3)]:
        values = []
        for shift in (-eps, 0.0, eps):
            W[j, k] += shift
            values.append(mean_loss(model, X, y))
            W[j, k] -= shift
        second = (values[0] - 2 * values[1] + values[2]) / eps**2
        assert diagonal["layers.0.W"][j, k] == pytest.approx(second, rel=1e-4)
        assert scores["layers.0.W"][j, k] == pytest.approx(0.5 * second * W[j, k] ** 2, rel=1e-4)


def test_obd_lecun_recursion_by_hand():
    model, X, y = tiny()
    Z1, A, P, _, _, _ = two_layer_by_hand(model, X, y)
    W2 = model.layers[1].W.data
    c2 = P * (1 - P)                                  # ∂²ℓ/∂z2² (diagonal) for cross-entropy
    c1 = (c2 @ (W2**2).T) * (Z1 > 0)                  # LeCun's backward recursion (ReLU: f'' = 0)
    expected = {"layers.1.W": (A**2).T @ c2 / len(X), "layers.1.b": c2.mean(0),
                "layers.0.W": (X**2).T @ c1 / len(X), "layers.0.b": c1.mean(0)}
    got = crit.hessian_diagonal(model, X, y, batch_size=3)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-10)
    scores = crit.obd(model, X, y, batch_size=3)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(scores[name], 0.5 * expected[name] * p.data**2, rtol=1e-10)


def test_obd_fisher_is_the_mean_of_squared_per_sample_gradients():
    model, X, y = tiny()
    per_sample = [backprop.gradients(model, X[i:i + 1], y[i:i + 1])[1] for i in range(len(X))]
    got = crit.hessian_diagonal(model, X, y, hessian="fisher", batch_size=2)
    for name, _ in model.named_parameters():
        fisher = np.mean([g[name] ** 2 for g in per_sample], axis=0)
        np.testing.assert_allclose(got[name], fisher, rtol=1e-10, atol=1e-15)


def test_obd_layerwise_and_squared_error():
    model, X, y = tiny()
    got = crit.hessian_diagonal(model, X, hessian="layerwise")       # needs no labels
    A = np.maximum(X @ model.layers[0].W.data + model.layers[0].b.data, 0)
    np.testing.assert_allclose(got["layers.0.W"], np.repeat(2 * (X**2).mean(0)[:, None], 4, axis=1))
    np.testing.assert_allclose(got["layers.1.W"], np.repeat(2 * (A**2).mean(0)[:, None], 2, axis=1))
    assert np.all(got["layers.1.b"] == 2)
    # the document's loss: Gauss–Newton diagonal of 1/2 ||softmax(z) - t||² at the logits is diag(J^T J)
    linear, Xl, yl = tiny(sizes=(3, 3), n=4)
    P = losses.softmax(linear(Xl))
    expected = np.zeros_like(P)
    for i, p in enumerate(P):
        J = np.diag(p) - np.outer(p, p)
        expected[i] = np.diag(J.T @ J)
    got = crit.hessian_diagonal(linear, Xl, yl, loss="squared_error")
    np.testing.assert_allclose(got["layers.0.b"], expected.mean(0), rtol=1e-10)


def test_lamp_by_hand():
    model, _, _ = tiny(sizes=(2, 2))
    model.layers[0].W.data[...] = [[1.0, -3.0], [0.5, 2.0]]
    got = crit.lamp(model)["layers.0.W"]
    np.testing.assert_allclose(got, [[1 / 14, 1.0], [0.25 / 14.25, 4 / 13]])
    model, _, _ = tiny(sizes=(6, 5, 3))
    for name, p in model.named_parameters():
        scores = crit.lamp(model)[name]
        assert scores.shape == p.shape
        if np.any(p.data):
            assert scores.max() == pytest.approx(1.0)
        order = np.argsort(np.abs(p.data).ravel(), kind="stable")
        assert np.all(np.diff(scores.ravel()[order]) >= 0)        # the same order as magnitude


def test_neuron_norms():
    model, _, _ = tiny(sizes=(3, 4, 5, 2))
    for index in range(2):
        W_in, W_out = model.layers[index].W.data, model.layers[index + 1].W.data
        np.testing.assert_allclose(crit.neuron_norm(model, 1)[f"layers.{index}"], np.abs(W_in).sum(0))
        np.testing.assert_allclose(crit.neuron_norm(model, 2)[f"layers.{index}"], np.sqrt((W_in**2).sum(0)))
        np.testing.assert_allclose(crit.neuron_norm(model, 1, outgoing=True)[f"layers.{index}"],
                                   np.abs(W_out).sum(1))
        np.testing.assert_allclose(crit.neuron_norm(model, 2, outgoing=True)[f"layers.{index}"],
                                   np.sqrt((W_out**2).sum(1)))
    assert sorted(crit.neuron_norm(model)) == ["layers.0", "layers.1"]
    with pytest.raises(ValueError, match="order"):
        crit.neuron_norm(model, 3)


def test_neuron_activation_and_taylor_by_hand():
    model, X, y = tiny()
    _, A, _, _, dA, _ = two_layer_by_hand(model, X, y)
    np.testing.assert_allclose(crit.neuron_activation(model, X, batch_size=2)["layers.0"], np.abs(A).mean(0))
    np.testing.assert_allclose(crit.neuron_taylor(model, X, y, batch_size=2)["layers.0"],
                               np.abs(A * dA).mean(0), rtol=1e-10)
    random = crit.neuron_random(model, seed=0)["layers.0"]
    assert random.shape == (4,) and np.array_equal(random, crit.neuron_random(model, seed=0)["layers.0"])


def test_criteria_check_their_input():
    model, X, y = tiny()
    with pytest.raises(ValueError, match="calibration data"):
        crit.gradient(model, X, None)
    with pytest.raises(ValueError, match="shape"):
        crit.taylor(model, X[:, :2], y)
    with pytest.raises(ValueError, match="rows"):
        crit.taylor(model, X, y[:3])
    with pytest.raises(ValueError, match="batch_size"):
        crit.obd(model, X, y, batch_size=0)
    with pytest.raises(ValueError, match="unknown loss"):
        crit.obd(model, X, y, loss="hinge")
    with pytest.raises(TypeError):
        crit.magnitude("not a model")
