"""One way to turn a seed into a random generator: no global random state anywhere in tinyprune."""

from __future__ import annotations

import numpy as np

Seed = int | np.random.Generator | None


def rng(seed: Seed = None) -> np.random.Generator:
    """Return a ``numpy.random.Generator``: a new one from an int (or None), or the one given."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}")
    return np.random.default_rng(seed)
