"""The sparse inference path computes what the model computes, with every kernel, any mask."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune import sparse
from tinyprune.core.nn import MLP
from tinyprune.prune.core import magnitude
from tinyprune.testing import mlp_sizes, seeds
from tinyprune.training import predict


def pruned_model(sizes, seed, sparsity, dtype=np.float64):
    """An MLP with about ``sparsity`` of its weights at exact 0, anywhere (a whole layer may be empty)."""
    model = MLP(sizes, seed=seed, dtype=dtype)
    generator = np.random.default_rng(seed)
    for layer in model.layers:
        layer.W.data[generator.random(layer.W.shape) < sparsity] = 0
    return model


@given(mlp_sizes(max_width=12), seeds, st.floats(0, 1), st.sampled_from(sparse.KERNELS),
       st.integers(1, 9), st.booleans())
def test_every_kernel_gives_the_models_logits(sizes, seed, sparsity, kernel, n, tiny_chunks):
    model = pruned_model(sizes, seed, sparsity)
    X = np.random.default_rng(seed).normal(size=(n, sizes[0]))
    fast = sparse.SparseMLP.from_model(model, kernels=kernel)
    if tiny_chunks:                                       # the chunked paths give the same numbers
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sparse, "CHUNK", 3)
            patch.setattr(sparse, "CACHE", 1)
            logits = fast.logits(X)
    else:
        logits = fast.logits(X)
    assert logits.shape == (n, sizes[-1])
    assert np.allclose(logits, model(X), rtol=1e-10, atol=1e-10)
    assert np.array_equal(fast.predict(X), predict(model, X)) or np.allclose(
        np.sort(model(X), axis=1)[:, -1], np.sort(model(X), axis=1)[:, -2])   # a tie may break either way


def test_float32_models_stay_within_float32_rounding_and_a_fixed_copy_ignores_later_changes():
    model = pruned_model([30, 40, 5], 0, 0.95, dtype=np.float32)
    X = np.random.default_rng(0).random((17, 30), dtype=np.float32)
    fast = sparse.SparseMLP.from_model(model, kernels=["gather", "reduceat"])
    expected = model(X)
    assert fast.logits(X).dtype == np.float32 and np.allclose(fast.logits(X), expected, atol=1e-5)
    model.layers[0].W.data[...] = 0                        # built once: the copy keeps the old weights
    assert np.allclose(fast.logits(X), expected, atol=1e-5)


def test_layers_with_empty_outputs_and_no_weights_at_all():
    model = MLP([6, 4, 3], seed=0, dtype=np.float64)
    model.layers[0].W.data[:, 1] = 0                       # output 1 reads nothing
    model.layers[1].W.data[...] = 0                        # a layer with no weights: the bias alone
    X = np.random.default_rng(1).normal(size=(5, 6))
    for kernel in sparse.KERNELS:
        assert np.allclose(sparse.SparseMLP.from_model(model, kernels=kernel).logits(X), model(X))


def test_choose_follows_the_measured_rule():
    W = np.zeros((1024, 1024), np.float32)
    W[:10] = 1.0                                           # 1 % of the weights
    assert sparse.choose_kernel(W, 1) == "reduceat" and sparse.choose_kernel(W, 32) == "gather"
    W[:100] = 1.0                                          # 10 %: dense BLAS wins everywhere
    assert {sparse.choose_kernel(W, b) for b in (1, 32, 1000)} == {"dense"}
    assert sparse.choose_kernel(np.zeros((64, 64)), 1000) == "dense"      # too small to pay
    W[...] = 0
    W[:9] = 1.0
    W[:, 0] = 1.0                                          # one full output: gather would pad every row
    assert sparse.choose_kernel(W, 1) == "reduceat" and sparse.choose_kernel(W, 1000) == "dense"
    model = MLP([784, 1024, 10], seed=0)
    magnitude(model, 0.99, scope="layer")
    padded = np.count_nonzero(model.layers[0].W.data, axis=0).max() / 784
    assert sparse.choose(model, 1000)[0] == ("gather" if padded <= 0.02 else "dense")
    assert sparse.SparseMLP.from_model(model, batch=1000).kernels == sparse.choose(model, 1000)


def test_bad_requests_are_refused_with_what_is_expected():
    model = MLP([4, 3], seed=0)
    with pytest.raises(ValueError, match="unknown kernel"):
        sparse.SparseMLP.from_model(model, kernels="csr")
    with pytest.raises(ValueError, match="one kernel per layer"):
        sparse.SparseMLP.from_model(model, kernels=["dense", "dense"])
    with pytest.raises(ValueError, match="batch"):
        sparse.choose(model, 0)
    with pytest.raises(TypeError, match="MLP"):
        sparse.SparseMLP.from_model("model")
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        sparse.SparseMLP.from_model(model).logits(np.zeros((2, 5)))


def test_predict_takes_the_sparse_path_where_the_rule_says_and_gives_the_same_classes(monkeypatch):
    """``tp.predict`` runs ``SparseMLP`` when ``choose`` picks a sparse kernel, and the core's dense
    product otherwise (a small model, or inside ``tp.plain()``); the classes are the same either way."""
    from tinyprune.core import train as core_train
    from tinyprune.fast.switch import plain

    model = MLP([300, 1024, 10], seed=0)
    W = model.layers[0].W.data                                # every unit keeps its 3 largest of 300 inputs
    W[np.argsort(-np.abs(W), axis=0) >= 3] = 0
    X = np.random.default_rng(0).random((2500, 300), dtype=np.float32)
    built = []
    real_from_model = sparse.SparseMLP.from_model.__func__

    def counting(cls, *args, **kwargs):
        built.append(kwargs.get("kernels"))
        return real_from_model(cls, *args, **kwargs)

    monkeypatch.setattr(sparse.SparseMLP, "from_model", classmethod(counting))
    expected = core_train.predict(model, X)
    assert sparse.choose(model, 1000) == ["gather", "dense"]
    assert np.array_equal(predict(model, X), expected)
    assert built == [["gather", "dense"]]                     # built once for the call, every batch uses it
    with plain():
        assert np.array_equal(predict(model, X), expected)
    small = MLP([4, 8, 3], seed=0)
    magnitude(small, 0.9, scope="layer")
    predict(small, np.zeros((5, 4), np.float32))
    assert len(built) == 1                                    # dense models and plain() never build one


def test_predict_refuses_bad_input_as_the_core_does():
    model = MLP([300, 1024, 10], seed=0)
    with pytest.raises(ValueError, match="300"):
        predict(model, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, np.zeros((3, 300), np.float32), batch_size=0)
