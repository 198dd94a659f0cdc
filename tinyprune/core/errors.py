"""The core's error types: each is a ``ValueError``, so callers may catch either (``tinyprune.errors``
adds the errors of files and checkpoints)."""


class TinypruneError(ValueError):
    """Base class of every error that tinyprune raises on bad input."""


class DataError(TinypruneError):
    """A dataset, IDX file or download is missing, malformed or fails its checksum."""


class ShapeError(TinypruneError):
    """Arrays whose shapes do not fit together (for example in ``@`` or a loss)."""
