"""Metrics: accuracy, confusion matrix, and exact counts on hand-made masked models."""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune import metrics
from tinyprune.core.nn import MLP, Linear, Module, ReLU, Sequential


def set_param(parameter, values, mask=None):
    parameter.data[...] = values
    if mask is not None:
        parameter.mask = mask
        parameter.data *= mask


def hand_made_model(dtype=np.float32):
    """3 -> 4 -> 2. Hidden neuron 1 is dead (its column and bias pruned), so is its outgoing row;
    weight W0[0, 0] is pruned too; b0[3] is an unpruned zero of a neuron that is alive."""
    model = MLP([3, 4, 2], seed=0, dtype=dtype)
    mask0 = np.ones((3, 4), dtype=bool)
    mask0[:, 1] = False
    mask0[0, 0] = False
    set_param(model.layers[0].W, np.ones((3, 4)), mask0)
    set_param(model.layers[0].b, [0.5, 0.0, 0.5, 0.0], np.array([True, False, True, True]))
    mask1 = np.ones((4, 2), dtype=bool)
    mask1[1] = False
    set_param(model.layers[1].W, np.ones((4, 2)), mask1)
    set_param(model.layers[1].b, [0.1, 0.2])
    return model


def test_exact_counts_per_layer_on_a_hand_made_model():
    first, second = metrics.layer_stats(hand_made_model())
    assert (first.name, first.shape, first.params, first.weight_nonzeros, first.bias_nonzeros) == (
        "layers.0", (3, 4), 16, 8, 2)
    assert first.nonzeros == 10 and first.sparsity == pytest.approx(6 / 16)
    assert first.flops_dense == 2 * 3 * 4 + 4 == 28
    assert first.flops_effective == 2 * 8 + 3 == 19          # 3 alive neurons add their bias
    assert (first.neurons, first.alive, first.dead, first.pruned) == (4, 3, 1, 5)
    assert first.bytes_dense == 4 * 16
    assert first.bytes_bitmask == 4 * 10 + 2 + 1             # ceil(12/8) + ceil(4/8) bytes of bits
    assert first.bytes_indices == (4 + 4) * 10
    assert (second.params, second.nonzeros, second.flops_dense, second.flops_effective) == (10, 8, 18, 14)
    assert (second.alive, second.pruned, second.bytes_bitmask) == (2, 2, 4 * 8 + 1 + 1)


def test_totals_ratios_and_helpers():
    model = hand_made_model()
    summary = metrics.summary(model)
    total = summary.total
    assert (total.params, total.nonzeros, total.flops_dense, total.flops_effective) == (26, 18, 46, 33)
    assert (total.alive, total.neurons) == (5, 6)
    assert summary.compression_ratio == pytest.approx(26 / 18)
    assert summary.speedup == pytest.approx(46 / 33)
    assert metrics.count_parameters(model) == 26 and metrics.count_nonzeros(model) == 18
    assert metrics.sparsity(model) == pytest.approx(8 / 26)
    assert metrics.flops(model) == 46 and metrics.flops(model, effective=True) == 33
    assert metrics.alive_neurons(model) == [3, 2]
    assert [metrics.storage_bytes(model, f) for f in metrics.STORAGE_FORMATS] == [104, 77, 144]
    with pytest.raises(ValueError, match="storage format"):
        metrics.storage_bytes(model, "csr")


def test_summary_table_text_and_dict():
    summary = metrics.summary(hand_made_model())
    text = str(summary)
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "shape", "params", "nonzeros", "sparsity", "W+b", "FLOPs", "dense",
                                "FLOPs", "eff.", "alive"]
    assert lines[2].split() == ["layers.0", "3", "x", "4", "16", "10", "37.50%", "28", "19", "3/4"]
    assert lines[5].split()[:4] == ["total", "26", "18", "30.77%"]
    assert len({len(line) for line in lines[:6] if not line.startswith("-")}) <= 2   # aligned columns
    assert "compression 1.44x" in text and "speed-up 1.39x" in text
    as_dict = json.loads(json.dumps(summary.to_dict()))
    assert as_dict["total"]["params"] == 26 and as_dict["layers"][0]["shape"] == [3, 4]
    assert as_dict["layers"][0]["alive"] == 3 and as_dict["speedup"] == pytest.approx(46 / 33)
    assert summary.rows[1].name == "layers.1" and "Summary(2 layers" in repr(summary)


def test_the_documents_model_dense():
    summary = metrics.summary(MLP([784, 64, 64, 10], seed=0))
    assert summary.total.params == 55_050
    assert summary.total.flops_dense == 2 * (784 * 64 + 64 * 64 + 64 * 10) + 64 + 64 + 10
    assert summary.total.flops_effective == summary.total.flops_dense     # nothing pruned, all alive
    assert summary.total.bytes_dense == 4 * 55_050 and summary.total.pruned == 0


def test_float64_model_counts_eight_bytes_per_value():
    assert metrics.storage_bytes(hand_made_model(np.float64)) == 8 * 26


def test_everything_pruned_gives_infinite_ratios_and_json_none():
    model = MLP([3, 2], seed=0)
    model.layers[0].W.data[...] = 0
    summary = metrics.summary(model)
    assert summary.total.nonzeros == 0 and summary.total.alive == 0
    assert math.isinf(summary.compression_ratio) and math.isinf(summary.speedup)
    assert summary.to_dict()["compression_ratio"] is None
    assert "compression inf" in str(summary)


def test_other_modules():
    sequential = Sequential(Linear(3, 4, seed=0), ReLU(), Linear(4, 2, seed=1))
    assert [row.name for row in metrics.layer_stats(sequential)] == ["layers.0", "layers.2"]
    assert metrics.count_parameters(Linear(3, 4, seed=0)) == 16
    with pytest.raises(ValueError, match="count Linear layers"):
        metrics.summary(Module())


@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4), seed=st.integers(0, 1000),
       keep=st.floats(0.0, 1.0))
def test_counts_agree_with_masks_when_biases_are_nonzero(sizes, seed, keep):
    model = MLP(sizes, seed=seed, dtype=np.float64)
    generator = np.random.default_rng(seed)
    for layer in model.layers:
        layer.b.data[...] = 1.0
        layer.W.data[layer.W.data == 0] = 0.5           # no accidental zeros
        mask = generator.random(layer.W.shape) < keep
        layer.W.mask = mask
        layer.W.data *= mask
    total = metrics.summary(model).total
    assert total.nonzeros == total.params - total.pruned
    assert total.flops_effective == 2 * sum(int(layer.W.mask.sum()) for layer in model.layers) + total.neurons
    assert 0.0 <= metrics.sparsity(model) <= 1.0


# ------------------------------------------------------------------ accuracy, confusion matrix
def test_accuracy_from_logits_or_labels():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    y = np.array([1, 1, 1])
    assert metrics.accuracy(logits, y) == pytest.approx(2 / 3)
    assert metrics.accuracy(np.array([1, 0, 1]), y) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="integer labels"):
        metrics.accuracy(np.array([0.5, 1.0, 1.0]), y)
    with pytest.raises(ValueError, match="one label per prediction"):
        metrics.accuracy(logits, np.array([1, 1]))
    with pytest.raises(ValueError, match="zero rows"):
        metrics.accuracy(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


def test_confusion_matrix_counts():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    matrix = metrics.confusion_matrix(y_true, y_pred)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]] and matrix.dtype == np.int64
    assert np.trace(matrix) / matrix.sum() == metrics.accuracy(y_pred, y_true)
    assert metrics.confusion_matrix(y_true, y_pred, k=4).shape == (4, 4)
    with pytest.raises(ValueError, match="must lie in 0..1"):
        metrics.confusion_matrix(y_true, y_pred, k=2)
    with pytest.raises(ValueError, match="differ in length"):
        metrics.confusion_matrix(y_true, y_pred[:3])
    with pytest.raises(ValueError, match="integer labels"):
        metrics.confusion_matrix(y_true.astype(float), y_pred)
