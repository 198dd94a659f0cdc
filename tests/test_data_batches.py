"""Dataset validation, split, subset, minibatches and one-hot."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyprune.data import Dataset, one_hot
from tinyprune.errors import DataError


def make(n=10, d=3, k=2, dtype=np.float32):
    X = np.arange(n * d, dtype=dtype).reshape(n, d) / (n * d)
    return Dataset(X, np.arange(n) % k)


BAD = {
    "NaN": (np.array([[0.0, np.nan]]), [0], "finite"),
    "inf": (np.array([[0.0], [np.inf]]), [0, 1], "finite"),
    "1-D X": (np.zeros(3), [0, 1, 2], "2-D"),
    "3-D X": (np.zeros((2, 2, 2)), [0, 1], "reshape"),
    "integer X": (np.zeros((2, 2), dtype=np.uint8), [0, 1], "floats"),
    "float labels": (np.zeros((2, 2)), [0.0, 1.0], "integers"),
    "bool labels": (np.zeros((2, 2)), [True, False], "integers"),
    "2-D labels": (np.zeros((2, 2)), [[0], [1]], "1-D"),
    "negative label": (np.zeros((2, 2)), [1, -1], "never negative; found 1 negative, the first -1 at row 1"),
    "only negative": (np.zeros((1, 2)), [-1], "never negative; found 1 negative, the first -1 at row 0"),
    "huge label": (np.zeros((2, 2)), np.array([0, 2**64 - 1], np.uint64), r"got 1844\d+ \(counted"),
    "fractional labels": (np.zeros((2, 2)), [3.7, 1.0], "integers, got dtype float64"),
    "one-hot labels": (np.zeros((2, 2)), [[0, 1], [1, 0]], "argmax"),
    "ragged X": ([[0.0, 1.0], [2.0]], [0, 1], "features X must be an array of numbers"),
    "text X": (np.array([["a", "b"]]), [0], "floats"),
    "complex X": (np.zeros((1, 2), dtype=complex), [0], "floats"),
    "length mismatch": (np.zeros((3, 2)), [0, 1], "3 rows but y has 2"),
    "empty": (np.zeros((0, 2)), [], "empty"),
}


@pytest.mark.parametrize("X, y, message", BAD.values(), ids=BAD.keys())
def test_validation_errors(X, y, message):
    with pytest.raises(DataError, match=message):
        Dataset(X, y)


def test_label_out_of_range_for_given_num_classes():
    with pytest.raises(DataError, match=r"0\.\.2 \(num_classes=3\); found 1 outside, the first 3 at row 1"):
        Dataset(np.zeros((2, 1)), [0, 3], num_classes=3)


@pytest.mark.parametrize("num_classes", [2.5, True, "3", 0, -1])
def test_bad_num_classes(num_classes):
    with pytest.raises(DataError, match="num_classes must be"):
        Dataset(np.zeros((2, 1)), [0, 1], num_classes=num_classes)
    with pytest.raises(DataError, match="num_classes must be"):
        Dataset(np.zeros((2, 1)), [0, 0], num_classes=num_classes)


def test_keeps_float32_and_does_not_copy():
    X = np.zeros((4, 2), dtype=np.float32)
    data = Dataset(X, np.array([0, 1, 2, 3], dtype=np.uint8))
    assert data.X is X and data.X.dtype == np.float32
    assert data.y.dtype == np.int64 and data.num_classes == 4 and len(data) == 4


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 70), shuffle=st.booleans(), seed=st.integers(0, 99))
def test_minibatches_cover_every_row_once(n, batch_size, shuffle, seed):
    data = Dataset(np.arange(n, dtype=np.float32).reshape(n, 1), np.zeros(n, dtype=int))
    batches = list(data.minibatches(batch_size, shuffle=shuffle, rng=seed))
    sizes = [len(yb) for _, yb in batches]
    assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    rows = np.concatenate([Xb[:, 0] for Xb, _ in batches]).astype(int)
    assert sorted(rows.tolist()) == list(range(n))
    if not shuffle:
        assert rows.tolist() == list(range(n))


def test_minibatches_deterministic_with_seed_and_fresh_each_epoch_with_generator():
    data = make(n=50)

    def order(rng):
        return np.concatenate([Xb[:, 0] for Xb, _ in data.minibatches(8, rng=rng)])

    np.testing.assert_array_equal(order(3), order(3))
    assert not np.array_equal(order(3), order(4))
    gen = np.random.default_rng(0)
    assert not np.array_equal(order(gen), order(gen))  # one generator: a new order every epoch


def test_minibatches_pair_rows_with_their_labels():
    data = make(n=23, k=23)
    for Xb, yb in data.minibatches(5, rng=1):
        np.testing.assert_array_equal(Xb, data.X[yb])  # label i belongs to row i here


def test_unshuffled_batches_are_views():
    data = make(n=10)
    Xb, yb = next(data.minibatches(4, shuffle=False))
    assert np.shares_memory(Xb, data.X) and np.shares_memory(yb, data.y)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size(batch_size):
    with pytest.raises(DataError, match="batch_size"):
        list(make().minibatches(batch_size))


def test_split_is_stratified_exact_and_disjoint():
    data = make(n=103, k=3)
    a, b = data.split(0.8, seed=0)
    assert len(a) == round(0.8 * 103) and len(a) + len(b) == 103
    assert sorted(np.concatenate([a.X[:, 0], b.X[:, 0]]).tolist()) == sorted(data.X[:, 0].tolist())
    share = np.bincount(a.y, minlength=3) / np.bincount(data.y, minlength=3)
    assert np.all(np.abs(share - 0.8) < 0.03)
    assert a.num_classes == b.num_classes == 3


def test_split_depends_only_on_seed():
    data = make(n=40)
    first = data.split(0.5, seed=7)[0].X
    np.testing.assert_array_equal(first, data.split(0.5, seed=7)[0].X)
    assert not np.array_equal(first, data.split(0.5, seed=8)[0].X)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 0.01])
def test_bad_split_fraction(fraction):
    with pytest.raises(DataError):
        make(n=10).split(fraction)


def test_subset_keeps_num_classes():
    data = make(n=10, k=5)
    sub = data.subset(np.flatnonzero(data.y == 0))
    assert len(sub) == 2 and sub.num_classes == 5
    assert len(data.subset(data.y == 1)) == 2


def test_one_hot():
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    encoded = make(n=4, k=2).one_hot()
    assert encoded.shape == (4, 2) and encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded.argmax(1), [0, 1, 0, 1])
    with pytest.raises(DataError):
        one_hot([3], 3)
