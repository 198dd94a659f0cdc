"""Download MNIST (60,000 / 10,000 handwritten digits),
verify its checksums, and store it in the tinyprune cache (or --root DIR).

    python data_scripts/fetch_mnist.py [--root DIR] [--mirror URL] [--timeout SECONDS] [--force]

The same as ``python -m tinyprune.data.download mnist``;
``tinyprune.data.load("mnist")`` then finds it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tinyprune.data.download import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(name="mnist"))
