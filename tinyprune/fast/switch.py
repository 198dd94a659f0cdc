"""The switch between the fast paths and the core's plain code: ``plain()``.

>>> from tinyprune.fast.switch import is_plain, plain
>>> with plain():
...     is_plain()
True
>>> is_plain()
False
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_plain = False


@contextlib.contextmanager
def plain() -> Iterator[None]:
    """Within this block ``tinyprune.fit`` and the optimizers of ``tinyprune.fast`` run the core's code.

    ``fit`` trains with the core's engines (``tinyprune.core.train``) and builds the core's ``Adam``; a fast
    ``SGD``/``Adam`` takes the core's plain step on its own buffers. The numbers are the same (bit for bit,
    or within the tolerance ``tests/test_fast_paths.py`` states); this is for reading and checking the code.
    """
    global _plain
    previous, _plain = _plain, True
    try:
        yield
    finally:
        _plain = previous


def is_plain() -> bool:
    """True inside a ``plain()`` block."""
    return _plain
