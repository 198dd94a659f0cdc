"""Data for tinyprune: datasets by name, IDX files, and the ``Dataset`` that training iterates over.

Floor 1: imports only NumPy, the standard library and ``tinyprune.errors``.

>>> from tinyprune import data
>>> splits = data.load("mnist-5k")          # embedded: no network, no files needed
>>> splits.train.X.shape, splits.test.y.dtype.name
((4000, 784), 'int64')
"""

from tinyprune.core.batches import Dataset, one_hot
from tinyprune.data.idx import read_idx, read_idx_bytes, write_idx
from tinyprune.data.loading import load
from tinyprune.data.sources import DATASETS
from tinyprune.data.splits import Splits

__all__ = ["DATASETS", "Dataset", "Splits", "load", "one_hot", "read_idx", "read_idx_bytes", "write_idx"]
