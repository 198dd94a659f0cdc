"""The core's error types, each a ``ValueError`` (``tinyprune.errors``, their public home, adds the rest)."""


class TinypruneError(ValueError):
    """Base class of every error that tinyprune raises on bad input."""


class DataError(TinypruneError):
    """A dataset, IDX file or download is missing, malformed or fails its checksum."""


class ShapeError(TinypruneError):
    """Arrays whose shapes do not fit together (for example in ``@`` or a loss)."""


for _error in (TinypruneError, DataError, ShapeError):
    _error.__module__ = "tinyprune.errors"       # how tracebacks name them (as NumPy's set_module does)
