"""``load``: a dataset by name, from disk if its files are there, else downloaded (then verified).

The one place where the registry (``sources``: which datasets exist, where their files are looked for,
how they are checked) meets the network (``download``). Both depend on nothing here, and ``download``
on ``sources`` only: no import circle.

>>> splits = load("mnist-5k")
>>> len(splits.train), len(splits.test), splits.train.X.dtype.name, splits.verified
(4000, 1000, 'float32', True)
"""

from __future__ import annotations

import os

import numpy as np

from tinyprune.data.sources import (
    DEFAULT_DEADLINE,
    DEFAULT_TIMEOUT,
    EmbeddedSource,
    check_download_options,
    get_source,
    load_embedded,
    load_idx_source,
    locate,
    not_found_error,
    search_dirs,
)
from tinyprune.data.splits import Splits
from tinyprune.errors import DataError


def load(
    name: str = "mnist-5k",
    root: str | os.PathLike | None = None,
    download: bool = True,
    *,
    mirrors: list[str] | tuple[str, ...] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    trust: bool = False,
) -> Splits:
    """Load a dataset by name as ``Splits(train, test, name, num_classes=10, source, verified)``.

    X is float32 in [0, 1] of shape (n, 784), y is int64 (n,). ``mnist-5k`` is embedded (4,000 train,
    1,000 test). For ``mnist`` and ``fashion-mnist`` the files are looked for in ``root``, the cache and
    system folders; if none holds all four and ``download`` is true, they are downloaded (from
    ``mirrors``, default the registry's, in order; each read waits at most ``timeout`` seconds and each
    file must arrive within ``deadline`` seconds) into ``root`` or else the cache.

    Every file is checked against its known checksums, and one that none vouches for is refused, unless
    ``trust`` is true: then files found on disk are used even so (downloads are always verified), and
    ``Splits.verified`` says whether every file did match. ``Splits.source`` is the folder read.
    """
    source = get_source(name)
    for flag, value in (("download", download), ("trust", trust)):
        if not isinstance(value, (bool, np.bool_)):
            raise DataError(f"{flag} must be True or False, got {value!r}")
    check_download_options(mirrors, timeout, deadline)
    if isinstance(source, EmbeddedSource):
        return load_embedded(source)
    found = locate(source, [d for d, _ in search_dirs(source, root)])
    if found is None:
        if not download:
            raise not_found_error(source, root)
        # Imported here, not at the top: an offline load never needs urllib, and
        # `python -m tinyprune.data.download` then runs without being imported twice (the package
        # imports this module).
        from tinyprune.data.download import fetch_dataset

        target = fetch_dataset(source, root, mirrors=mirrors, timeout=timeout, deadline=deadline)
        found = locate(source, [target])
        if found is None:  # fetch_dataset raises before this can happen; kept as a guard
            raise not_found_error(source, target)
    return load_idx_source(source, found, trust=bool(trust))


__all__ = ["load"]
