"""The project's error types: every one is a ``ValueError``, so callers may catch either."""


class TinypruneError(ValueError):
    """Base class of every error that tinyprune raises on bad input."""


class DataError(TinypruneError):
    """A dataset, IDX file or download is missing, malformed or fails its checksum."""


class CheckpointError(TinypruneError):
    """A checkpoint file is truncated, corrupted, foreign, or does not fit the model."""


class ShapeError(TinypruneError):
    """Arrays whose shapes do not fit together (for example in ``@`` or a loss)."""


class OutputError(TinypruneError):
    """An output cannot be written safely: the target is not a regular file, or holds a run already."""
