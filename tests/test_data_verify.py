"""Every file load() reads is verified and checked: checksums (or an explicit trust=True), image shapes,
label dtypes and ranges, each error naming the file. Small IDX files made here, never the network."""

import dataclasses
import gzip
import hashlib

import numpy as np
import pytest

from tinyprune.data import Splits, load, sources, write_idx
from tinyprune.data.idx import idx_bytes
from tinyprune.errors import DataError

N_TRAIN, N_TEST = 6, 4
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def tiny_arrays():
    """MNIST-shaped arrays under the names they are published with."""
    rng = np.random.default_rng(0)
    return dict(zip(FILES, (
        rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        np.arange(N_TRAIN, dtype=np.uint8),
        rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        np.arange(N_TEST, dtype=np.uint8),
    )))


def register(monkeypatch, arrays, *, content_sha256=False):
    """Register ``arrays`` (as published, gzip with mtime 0) as 'mnist'. Like MNIST, only the MD5 of each
    .gz is known; with ``content_sha256`` the SHA-256 of the content too, like Fashion-MNIST."""
    files = []
    for filename, array in arrays.items():
        content = idx_bytes(array)
        md5 = hashlib.md5(gzip.compress(content, mtime=0)).hexdigest()
        files.append(sources._md5_and_sha256(filename, md5, hashlib.sha256(content).hexdigest())
                     if content_sha256 else sources._md5(filename, md5))
    fake = dataclasses.replace(sources.MNIST, train_images=files[0], train_labels=files[1],
                               test_images=files[2], test_labels=files[3], mirrors=(), system_dirs=())
    monkeypatch.setitem(sources.SOURCES, "mnist", fake)
    return fake


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYPRUNE_DATA", str(tmp_path / "cache"))


def decompressed(filename):
    return filename.removesuffix(".gz")


def write_all(folder, arrays, *, compress=True, names=None):
    folder.mkdir(exist_ok=True)
    for filename, array in arrays.items():
        name = filename if names is None else names(filename)
        write_idx(folder / name, array, compress=compress)
    return folder


# ---------------------------------------------------------------- checksums and trust


def test_published_files_are_verified_and_say_where_they_came_from(tmp_path, monkeypatch):
    register(monkeypatch, tiny_arrays())
    folder = write_all(tmp_path / "mine", tiny_arrays())
    splits = load("mnist", root=folder, download=False)
    assert splits.verified is True and splits.source == str(folder)
    assert load("mnist", root=folder, download=False, trust=True).verified is True  # trusted, yet all match


def test_raw_idx_under_gz_names_is_refused(tmp_path, monkeypatch):
    """The hole of issue 15 item 1: uncompressed bytes saved under the .gz names used to be trained on."""
    register(monkeypatch, tiny_arrays())
    folder = write_all(tmp_path / "mine", tiny_arrays(), compress=False)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: named \.gz but not gzip data") as info:
        load("mnist", root=folder, download=False)
    assert "trust=True" in str(info.value) and "--trust-data" in str(info.value)


def test_decompressed_files_with_only_a_gz_checksum_are_refused(tmp_path, monkeypatch):
    register(monkeypatch, tiny_arrays())
    folder = write_all(tmp_path / "mine", tiny_arrays(), compress=False, names=decompressed)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: cannot be verified: the known checksums "
                                        r"\(md5-gz\) are of the gzip file"):
        load("mnist", root=folder, download=False)


def test_recompressed_file_with_only_a_gz_checksum_is_refused(tmp_path, monkeypatch):
    register(monkeypatch, tiny_arrays())
    folder = write_all(tmp_path / "mine", tiny_arrays())
    path = folder / FILES[1]
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), 1, mtime=123))  # same content
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: checksum mismatch"):
        load("mnist", root=folder, download=False)


@pytest.mark.parametrize("how", ["decompressed", "recompressed"])
def test_known_content_checksum_accepts_other_compressions(tmp_path, monkeypatch, how):
    """Like Debian's recompressed Fashion-MNIST: the SHA-256 of the content vouches for the file."""
    register(monkeypatch, tiny_arrays(), content_sha256=True)
    if how == "decompressed":
        folder = write_all(tmp_path / "mine", tiny_arrays(), compress=False, names=decompressed)
    else:
        folder = tmp_path / "mine"
        folder.mkdir()
        for filename, array in tiny_arrays().items():
            (folder / filename).write_bytes(gzip.compress(idx_bytes(array), 1, mtime=99))
    splits = load("mnist", root=folder, download=False)
    assert splits.verified is True and len(splits.train) == N_TRAIN


def test_content_checksum_still_refuses_other_content(tmp_path, monkeypatch):
    register(monkeypatch, tiny_arrays(), content_sha256=True)
    changed = tiny_arrays()
    changed[FILES[3]] = changed[FILES[3]][::-1].copy()
    folder = write_all(tmp_path / "mine", changed, compress=False, names=decompressed)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: checksum mismatch: expected sha256-idx"):
        load("mnist", root=folder, download=False)


@pytest.mark.parametrize("compress", [True, False])
def test_trust_loads_unverified_files_and_records_it(tmp_path, monkeypatch, compress):
    register(monkeypatch, tiny_arrays())
    changed = tiny_arrays()
    changed[FILES[0]][0, 0, 0] ^= 1                     # matches no checksum
    folder = write_all(tmp_path / "mine", changed, compress=compress)
    splits = load("mnist", root=folder, download=False, trust=True)
    assert splits.verified is False and splits.source == str(folder)
    assert "UNVERIFIED" in repr(splits)
    assert splits.train.X[0, 0] == changed[FILES[0]][0, 0, 0] / np.float32(255)


def test_trust_does_not_excuse_a_broken_file(tmp_path, monkeypatch):
    register(monkeypatch, tiny_arrays())
    folder = write_all(tmp_path / "mine", tiny_arrays(), compress=False)
    path = folder / FILES[2]
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: truncated payload"):
        load("mnist", root=folder, download=False, trust=True)


@pytest.mark.parametrize("option, value, message", [
    ("trust", "yes", "trust must be True or False"),
    ("download", 1, "download must be True or False"),
    ("timeout", 0, "timeout must be a positive number"),
    ("deadline", float("nan"), "deadline must be a positive number"),
    ("mirrors", "https://example.org/", "mirrors must be a list of URL strings"),
])
def test_bad_load_options(option, value, message):
    with pytest.raises(DataError, match=message):
        load("mnist", **{option: value})


def test_embedded_dataset_is_verified(tmp_path, monkeypatch):
    splits = load("mnist-5k")
    assert splits.verified is True and splits.source == str(sources.EMBEDDED_PATH)
    with np.load(sources.EMBEDDED_PATH, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["labels"][0] = (arrays["labels"][0] + 1) % 10       # one label changed
    tampered = tmp_path / "mnist_5k.npz"
    np.savez_compressed(tampered, **arrays)
    monkeypatch.setitem(sources.SOURCES, "mnist-5k", dataclasses.replace(sources.MNIST_5K, path=tampered))
    with pytest.raises(DataError, match=f"{tampered}: checksum mismatch: expected sha256"):
        load("mnist-5k")


# ---------------------------------------------------------------- what the files hold (issue 15 item 4)


def crafted(monkeypatch, tmp_path, **replace):
    """Write the tiny files with some arrays replaced, register their checksums, return the load error."""
    arrays = {**tiny_arrays(), **{FILES[int(k[1:])]: v for k, v in replace.items()}}
    register(monkeypatch, arrays)
    folder = write_all(tmp_path / "mine", arrays)
    with pytest.raises(DataError) as info:
        load("mnist", root=folder, download=False)
    return str(info.value).replace(str(folder) + "/", "")


def test_images_must_be_28_by_28(monkeypatch, tmp_path):
    message = crafted(monkeypatch, tmp_path, f0=np.zeros((N_TRAIN, 20, 20), np.uint8))
    assert message == ("train-images-idx3-ubyte.gz: expected uint8 images of shape (n, 28, 28), "
                       "got uint8 (6, 20, 20)")


def test_images_must_be_uint8(monkeypatch, tmp_path):
    message = crafted(monkeypatch, tmp_path, f2=np.zeros((N_TEST, 28, 28), np.float32))
    assert message.startswith("t10k-images-idx3-ubyte.gz: expected uint8 images") and "float32" in message


def test_float_labels_are_refused_not_truncated(monkeypatch, tmp_path):
    message = crafted(monkeypatch, tmp_path, f1=np.full(N_TRAIN, 3.7, np.float32))
    assert message == ("train-labels-idx1-ubyte.gz: labels must be integers, got float32; "
                       "refusing to round them")


def test_negative_labels_say_so_and_name_the_file(monkeypatch, tmp_path):
    message = crafted(monkeypatch, tmp_path, f3=np.array([0, 1, -1, 2], np.int8))
    assert message == ("t10k-labels-idx1-ubyte.gz: labels must lie in 0..9; found 1 outside, "
                       "the first -1 at row 2")


def test_labels_beyond_the_classes_name_the_file(monkeypatch, tmp_path):
    message = crafted(monkeypatch, tmp_path, f1=np.array([0, 1, 2, 10, 11, 3], np.uint8))
    assert message.startswith("train-labels-idx1-ubyte.gz: labels must lie in 0..9; found 2 outside, "
                              "the first 10 at row 3")


def test_label_count_must_match_the_images(monkeypatch, tmp_path):
    message = crafted(monkeypatch, tmp_path, f3=np.arange(N_TEST + 1, dtype=np.uint8))
    assert message == "t10k-labels-idx1-ubyte.gz: 5 labels, but t10k-images-idx3-ubyte.gz holds 4 images"


def test_labels_must_be_one_dimensional(monkeypatch, tmp_path):
    message = crafted(monkeypatch, tmp_path, f1=np.zeros((N_TRAIN, 1), np.uint8))
    assert message == "train-labels-idx1-ubyte.gz: expected labels of shape (n,), got shape (6, 1)"


# ---------------------------------------------------------------- Splits made by hand


def test_splits_check_their_parts():
    from tinyprune.data import Dataset

    a, b = Dataset(np.zeros((2, 3)), [0, 1]), Dataset(np.zeros((2, 4)), [0, 1])
    assert Splits(a, a, name="x").verified is None
    with pytest.raises(DataError, match="train has 3 features but test has 4"):
        Splits(a, b, name="x")
    with pytest.raises(DataError, match="Splits.test must be a Dataset, got list"):
        Splits(a, [1, 2], name="x")


def test_embedded_file_with_an_object_array_is_refused_unread(tmp_path, monkeypatch):
    """No pickle: an object array (which only unpickling could read) is refused, never unpickled."""
    import numpy as np

    crafted = tmp_path / "mnist_5k.npz"
    np.savez(crafted, images=np.array([None], dtype=object), labels=np.zeros(1, np.uint8),
             test_index=np.zeros(1, np.uint16))
    monkeypatch.setitem(sources.SOURCES, "mnist-5k", dataclasses.replace(sources.MNIST_5K, path=crafted))
    with pytest.raises(DataError, match="embedded dataset unreadable .*allow_pickle=False"):
        load("mnist-5k")
