"""The project's error types: every one is a ``ValueError``, so callers may catch either.

``TinypruneError``, ``DataError`` and ``ShapeError`` are the core's (``tinyprune.core.errors``); the
errors of checkpoints and output files are added here.
"""

from tinyprune.core.errors import DataError, ShapeError, TinypruneError

__all__ = ["CheckpointError", "DataError", "OutputError", "ShapeError", "TinypruneError"]


class CheckpointError(TinypruneError):
    """A checkpoint file is truncated, corrupted, foreign, or does not fit the model."""


class OutputError(TinypruneError):
    """An output cannot be written safely: the target is not a regular file, or holds a run already."""
