"""Read and write the IDX format, the plain binary layout in which MNIST and Fashion-MNIST are published.

An IDX file is a header followed by the array's values, row-major and big-endian::

    bytes 0-1   0x00 0x00                     (magic: two zero bytes)
    byte  2     type code                     (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                               0x0D float32, 0x0E float64)
    byte  3     ndim                          (number of dimensions)
    then        ndim big-endian uint32 sizes  (dims[0] is the number of items)
    then        prod(dims) values of the type, big-endian

The published files are usually gzip-compressed. ``read_idx`` decides by the content (gzip files begin
with the bytes 0x1f 0x8b), not by the file name, so a renamed file still reads.

>>> import numpy as np
>>> a = np.arange(6, dtype=np.uint8).reshape(2, 3)
>>> read_idx_bytes(idx_bytes(a)).tolist()
[[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

from tinyprune.errors import DataError

#: IDX type code -> big-endian NumPy dtype of the stored values.
TYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"
#: The most bytes a gzip file may decompress to: 256 MiB, five times the largest known IDX file.
MAX_IDX_BYTES = 256 << 20
_HEADER_START = 4  # two magic bytes, the type code and ndim


def is_gzip(raw: bytes) -> bool:
    """True when ``raw`` starts like a gzip stream.

    >>> is_gzip(gzip.compress(b"x")), is_gzip(b"\\x00\\x00\\x08\\x01")
    (True, False)
    """
    return raw[:2] == GZIP_MAGIC


def gunzip_if_needed(raw: bytes, name: str = "<bytes>", max_bytes: int | None = None) -> bytes:
    """Return the IDX bytes inside ``raw``: decompressed if it is gzip, unchanged otherwise.

    At most ``max_bytes`` (default ``MAX_IDX_BYTES``) are decompressed: a few kilobytes of gzip can
    expand to gigabytes (a "gzip bomb"), so a larger content raises ``DataError`` before it fills the
    memory. A damaged gzip stream raises ``DataError`` naming ``name``.
    """
    if not is_gzip(raw):
        return raw
    limit = MAX_IDX_BYTES if max_bytes is None else max_bytes
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            content = stream.read(limit + 1)       # reads no further than one byte past the limit
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; EOFError = cut short
        raise DataError(f"{name}: corrupt gzip data ({exc}); delete the file and fetch it again") from exc
    if len(content) > limit:
        raise DataError(f"{name}: decompresses to more than {limit} bytes, more than any IDX file tinyprune "
                        "reads (the largest known, MNIST's training images, is 47,040,016); refusing it")
    return content


def parse_idx(content: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode uncompressed IDX bytes into a native-endian array of the shape the header gives.

    Every inconsistency (short header, bad magic, unknown type, payload shorter or longer than the
    header promises) raises ``DataError`` naming ``name`` and saying what was wrong.
    """
    if len(content) == 0:
        raise DataError(f"{name}: file is empty; expected an IDX header")
    if len(content) < _HEADER_START:
        raise DataError(f"{name}: truncated header: {len(content)} bytes, expected at least {_HEADER_START}")
    zero0, zero1, type_code, ndim = content[:_HEADER_START]
    if zero0 != 0 or zero1 != 0:
        raise DataError(
            f"{name}: not an IDX file: magic bytes {content[:2].hex(' ')}, expected 00 00 "
            f"(is it gzip-compressed with another tool, or not IDX at all?)"
        )
    if type_code not in TYPE_CODES:
        known = ", ".join(f"0x{code:02X}" for code in TYPE_CODES)
        raise DataError(f"{name}: unknown IDX type code 0x{type_code:02X}; expected one of {known}")
    dtype = TYPE_CODES[type_code]

    header_size = _HEADER_START + 4 * ndim
    if len(content) < header_size:
        raise DataError(
            f"{name}: truncated header: {len(content)} bytes, but {ndim} dimensions need {header_size}"
        )
    shape = struct.unpack(f">{ndim}I", content[_HEADER_START:header_size])
    expected = header_size + math.prod(shape) * dtype.itemsize
    if len(content) < expected:
        raise DataError(
            f"{name}: truncated payload: header says shape {shape} of {dtype.name} "
            f"({expected} bytes in all), file has {len(content)} bytes"
        )
    if len(content) > expected:
        raise DataError(
            f"{name}: {len(content) - expected} extra bytes after the payload: header says shape {shape} "
            f"of {dtype.name} ({expected} bytes in all)"
        )
    values = np.frombuffer(content, dtype=dtype, offset=header_size)
    # astype copies into native byte order, so the result is writable and fast to compute with.
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_idx_bytes(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes, gzip-compressed or not (see ``parse_idx``)."""
    return parse_idx(gunzip_if_needed(raw, name), name)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, into a native-endian array.

    Shapes: as the header says; MNIST images are (n, 28, 28) uint8, labels (n,) uint8.
    """
    return read_idx_bytes(read_file_bytes(path), str(path))


def read_file_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (default ``MAX_IDX_BYTES``), else ``DataError``.

    Checked before reading: a FIFO would block forever and a huge file would fill the memory.
    """
    path, limit = Path(path), MAX_IDX_BYTES if max_bytes is None else max_bytes
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before we can look at it.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        os.close(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"{path}: not a regular file; expected an IDX file")
        raise DataError(f"{path}: {info.st_size} bytes, more than any IDX file tinyprune reads ({limit}); "
                        "refusing it")
    with open(descriptor, "rb") as file:
        try:
            return file.read()             # O_NONBLOCK does not apply to regular files
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def type_code_of(dtype: np.dtype) -> int:
    """The IDX type code that stores ``dtype`` (any byte order).

    >>> hex(type_code_of(np.dtype(np.float32)))
    '0xd'
    """
    for code, idx_dtype in TYPE_CODES.items():
        if np.dtype(dtype).newbyteorder(">") == idx_dtype:
            return code
    names = ", ".join(d.newbyteorder("=").name for d in TYPE_CODES.values())
    raise DataError(f"IDX cannot store dtype {np.dtype(dtype).name}; convert to one of {names}")


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as uncompressed IDX bytes (header, then big-endian values)."""
    array = np.asarray(array)
    code = type_code_of(array.dtype)
    if array.ndim > 255 or any(size >= 2**32 for size in array.shape):
        raise DataError(f"IDX cannot store shape {array.shape}: at most 255 dims, each below 2**32")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    return header + array.astype(TYPE_CODES[code], copy=False).tobytes(order="C")


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, gzipped if ``compress`` (by default: if the name ends in .gz).

    ``mtime=0`` in the gzip header makes the same array always give the same bytes (and checksum).
    """
    path = Path(path)
    content = idx_bytes(array)
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(content, mtime=0) if compress else content)
    return path
