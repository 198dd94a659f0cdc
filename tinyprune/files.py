"""Small file-system helpers shared by the writers (checkpoints, downloads): durable renames."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_folder(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX); skipped where folders cannot be opened (Windows).

    ``os.replace`` is atomic, but until the folder's entry is flushed a power cut may still forget
    the new name; ``fsync`` on the folder flushes it.

    >>> fsync_folder(".")
    """
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
