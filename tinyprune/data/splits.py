"""``Splits``: what ``load`` returns: the train and test ``Dataset`` of a named dataset, and their source."""

from __future__ import annotations

from dataclasses import dataclass

from tinyprune.core.batches import Dataset
from tinyprune.errors import DataError


@dataclass(frozen=True)
class Splits:
    """What ``load`` returns: a train and a test ``Dataset`` of one named dataset, and where it came from.

    ``source`` is the folder (or embedded file) that was read; ``verified`` is True when every file
    matched a known checksum, False when the caller trusted files that did not (``load(trust=True)``),
    and None for Splits made by hand. Reports and checkpoints record both.
    """

    train: Dataset
    test: Dataset
    name: str
    num_classes: int = 10
    source: str | None = None
    verified: bool | None = None

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            if not isinstance(getattr(self, part), Dataset):
                raise DataError(f"Splits.{part} must be a Dataset, got {type(getattr(self, part)).__name__}")
        if self.train.X.shape[1] != self.test.X.shape[1]:
            raise DataError(f"train has {self.train.X.shape[1]} features but test has "
                            f"{self.test.X.shape[1]}; they must match")
        if self.verified not in (True, False, None):
            raise DataError(f"Splits.verified must be True, False or None, got {self.verified!r}")

    def __repr__(self) -> str:
        state = {True: "verified", False: "UNVERIFIED", None: "made by hand"}[self.verified]
        return f"Splits(name={self.name!r}, {state}, train={self.train!r}, test={self.test!r})"
