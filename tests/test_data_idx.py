"""IDX reading and writing: round trips, the exact byte layout, and every way a file can be broken."""

import gzip
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyprune.data.idx import TYPE_CODES, idx_bytes, read_idx, read_idx_bytes, write_idx
from tinyprune.errors import DataError

NATIVE_DTYPES = [dtype.newbyteorder("=") for dtype in TYPE_CODES.values()]


@st.composite
def idx_arrays(draw):
    dtype = draw(st.sampled_from(NATIVE_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    return draw(hnp.arrays(dtype, shape))


@settings(max_examples=60, deadline=None)
@given(array=idx_arrays(), compress=st.booleans())
def test_bytes_round_trip(array, compress):
    raw = idx_bytes(array)
    if compress:
        raw = gzip.compress(raw, mtime=0)
    back = read_idx_bytes(raw, "x.idx")
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)  # treats NaN == NaN


@pytest.mark.parametrize("filename", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", NATIVE_DTYPES, ids=lambda d: d.name)
def test_file_round_trip(tmp_path, filename, dtype):
    array = (np.arange(24) - 5).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / filename, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == filename.endswith(".gz")
    back = read_idx(path)
    np.testing.assert_array_equal(back, array)
    assert back.dtype.isnative and back.flags.writeable


def test_byte_layout_is_big_endian():
    raw = idx_bytes(np.array([1, 2], dtype=np.int16))
    assert raw == b"\x00\x00\x0b\x01" + b"\x00\x00\x00\x02" + b"\x00\x01\x00\x02"


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    compressed = write_idx(tmp_path / "named-raw.idx", array, compress=True)
    plain = write_idx(tmp_path / "named-gz.idx.gz", array, compress=False)
    np.testing.assert_array_equal(read_idx(compressed), array)
    np.testing.assert_array_equal(read_idx(plain), array)


def test_write_refuses_dtypes_idx_cannot_hold(tmp_path):
    with pytest.raises(DataError, match="int64"):
        write_idx(tmp_path / "x.idx", np.arange(3, dtype=np.int64))


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))  # 4 + 8 header bytes, 12 payload bytes

BROKEN = {
    "empty": (b"", "empty"),
    "short header": (GOOD[:3], "truncated header"),
    "short dims": (GOOD[:9], "truncated header"),
    "short payload": (GOOD[:-1], "truncated payload"),
    "extra bytes": (GOOD + b"\x00\x00", "2 extra bytes"),
    "bad magic": (b"\x01\x00" + GOOD[2:], "not an IDX file"),
    "unknown type": (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX type code 0x07"),
    "corrupt gzip": (gzip.compress(GOOD)[:10] + b"garbage!" * 4, "corrupt gzip"),
    "cut gzip": (gzip.compress(GOOD)[:-6], "corrupt gzip"),
    "gzip of broken IDX": (gzip.compress(GOOD[:-1]), "truncated payload"),
    "a foreign file": (b"PK\x03\x04 this is a zip", "not an IDX file"),
}


@pytest.mark.parametrize("raw, message", BROKEN.values(), ids=BROKEN.keys())
def test_broken_file_raises_data_error_naming_file(tmp_path, raw, message):
    path = tmp_path / "broken-file.gz"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_huge_header_does_not_allocate():
    # A header promising 2**32-1 ** 3 items must fail on size, not try to allocate them.
    raw = struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\x00" * 8
    with pytest.raises(DataError, match="truncated payload"):
        read_idx_bytes(raw, "huge")


def test_gzip_bomb_is_refused_before_it_fills_the_memory(tmp_path, monkeypatch):
    from tinyprune.data import idx

    bomb = gzip.compress(bytes(100_000))                          # 100 kB of zeros in a few hundred bytes
    with pytest.raises(DataError, match="bomb.gz: decompresses to more than 10000 bytes"):
        idx.gunzip_if_needed(bomb, "bomb.gz", max_bytes=10_000)
    monkeypatch.setattr(idx, "MAX_IDX_BYTES", 10_000)               # the default limit applies to files read
    (tmp_path / "bomb.gz").write_bytes(bomb)
    with pytest.raises(DataError, match="decompresses to more than 10000 bytes"):
        read_idx(tmp_path / "bomb.gz")
    exactly_the_limit = gzip.compress(bytes(10_000))
    assert idx.gunzip_if_needed(exactly_the_limit, max_bytes=10_000) == bytes(10_000)


@pytest.mark.parametrize("kind", ["FIFO", "folder", "huge"])
def test_what_is_not_a_small_regular_file_is_refused_unread(tmp_path, monkeypatch, kind):
    """A FIFO would block the reader forever, a huge file would fill the memory: both refused by stat."""
    from tinyprune.data import idx

    path = tmp_path / "train-images-idx3-ubyte"
    if kind == "FIFO":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(bytes(2000))
        monkeypatch.setattr(idx, "MAX_IDX_BYTES", 1000)
    message = "not a regular file" if kind != "huge" else "2000 bytes, more than any IDX file tinyprune reads"
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope.gz")
