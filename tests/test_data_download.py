"""Downloads from a local http.server on 127.0.0.1 (never the network): good, failing and lying mirrors."""

import dataclasses
import functools
import gzip
import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest

from tinyprune.data import load, sources, write_idx
from tinyprune.data.download import check_url, fetch_dataset, fetch_file, main
from tinyprune.data.idx import idx_bytes
from tinyprune.data.sources import Checksum, DataFile, verify
from tinyprune.errors import DataError

N_TRAIN, N_TEST = 6, 4


def tiny_arrays():
    """Small MNIST-shaped arrays: the file name each is published under -> array."""
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.arange(N_TRAIN, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.arange(N_TEST, dtype=np.uint8)[::-1].copy(),
    }


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1: good/ holds the tiny files, bad/ corrupted copies."""
    www = tmp_path / "www"
    for folder in ("good", "bad"):
        (www / folder).mkdir(parents=True)
    for filename, array in tiny_arrays().items():
        write_idx(www / "good" / filename, array)
        corrupted = array.copy()
        corrupted.flat[0] ^= 1
        write_idx(www / "bad" / filename, corrupted)
    handler = functools.partial(QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield {"good": f"{base}/good/", "bad": f"{base}/bad/", "missing": f"{base}/missing/", "www": www}
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def md5_of(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_mnist(server, monkeypatch, tmp_path):
    """Register the tiny files as 'mnist' (their checksums, no mirrors, no system folders)."""
    good = server["www"] / "good"
    fake = dataclasses.replace(
        sources.MNIST,
        train_images=sources._md5("train-images-idx3-ubyte.gz", md5_of(good / "train-images-idx3-ubyte.gz")),
        train_labels=sources._md5("train-labels-idx1-ubyte.gz", md5_of(good / "train-labels-idx1-ubyte.gz")),
        test_images=sources._md5("t10k-images-idx3-ubyte.gz", md5_of(good / "t10k-images-idx3-ubyte.gz")),
        test_labels=sources._md5("t10k-labels-idx1-ubyte.gz", md5_of(good / "t10k-labels-idx1-ubyte.gz")),
        mirrors=(),
        system_dirs=(),
    )
    monkeypatch.setitem(sources.SOURCES, "mnist", fake)
    monkeypatch.setenv("TINYPRUNE_DATA", str(tmp_path / "cache"))
    return fake


def refused_port():
    """A localhost URL on which nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_good_mirror(server, tiny_mnist, tmp_path):
    splits = load("mnist", mirrors=[server["good"]], timeout=5)
    arrays = tiny_arrays()
    assert (len(splits.train), len(splits.test)) == (N_TRAIN, N_TEST)
    np.testing.assert_array_equal(splits.test.y, arrays["t10k-labels-idx1-ubyte.gz"])
    expected = arrays["train-images-idx3-ubyte.gz"].reshape(N_TRAIN, 784) / np.float32(255)
    np.testing.assert_array_equal(splits.train.X, expected)
    assert splits.train.X.dtype == np.float32
    assert leftovers(tmp_path / "cache" / "mnist") == sorted(tiny_arrays())  # no .part files
    # The second load finds the cache and never touches a mirror.
    assert len(load("mnist", mirrors=[refused_port()]).train) == N_TRAIN


@pytest.mark.parametrize("failing", ["missing", "refused"])
def test_failing_mirror_then_good_one(server, tiny_mnist, tmp_path, failing):
    first = server["missing"] if failing == "missing" else refused_port()
    splits = load("mnist", root=tmp_path / "mine", mirrors=[first, server["good"]], timeout=5)
    assert len(splits.test) == N_TEST
    assert leftovers(tmp_path / "mine") == sorted(tiny_arrays())


def test_corrupted_mirror_is_refused(server, tiny_mnist, tmp_path):
    datafile = tiny_mnist.train_images
    with pytest.raises(DataError) as info:
        fetch_file(datafile, [server["bad"]], tmp_path / "dest", timeout=5)
    message = str(info.value)
    actual = md5_of(server["www"] / "bad" / datafile.filename)
    assert datafile.filename in message and "checksum mismatch" in message
    assert datafile.checksums[0].digest in message and actual in message
    assert leftovers(tmp_path / "dest") == []  # neither the real name nor a temporary file


def test_all_mirrors_failing_lists_each(server, tiny_mnist, tmp_path):
    with pytest.raises(DataError) as info:
        load("mnist", mirrors=[server["missing"], server["bad"]], timeout=5)
    message = str(info.value)
    assert "404" in message and "checksum mismatch" in message
    assert leftovers(tmp_path / "cache" / "mnist") == []


def test_corrupted_mirror_then_good_one(server, tiny_mnist, tmp_path):
    path = fetch_file(tiny_mnist.test_labels, [server["bad"], server["good"]], tmp_path, timeout=5)
    assert md5_of(path) == tiny_mnist.test_labels.checksums[0].digest


def test_download_false_says_where_it_looked_and_how_to_fetch(tiny_mnist, tmp_path):
    with pytest.raises(DataError) as info:
        load("mnist", root=tmp_path / "mine", download=False)
    message = str(info.value)
    assert str(tmp_path / "mine") in message and str(tmp_path / "cache" / "mnist") in message
    assert f"python -m tinyprune.data.download mnist --root {tmp_path / 'mine'}" in message


def test_the_fetch_command_works(server, tiny_mnist, tmp_path, capsys):
    assert main(["mnist", "--root", str(tmp_path / "mine"), "--mirror", server["good"]]) == 0
    assert len(load("mnist", root=tmp_path / "mine", download=False).train) == N_TRAIN
    assert main(["mnist", "--root", str(tmp_path / "mine")]) == 0  # already there: no mirror needed
    assert "already present" in capsys.readouterr().out
    assert main(["mnist", "--root", str(tmp_path / "x"), "--mirror", server["bad"], "--timeout", "5"]) == 1


def test_decompressed_local_files_need_trust(tiny_mnist, tmp_path):
    """Only the MD5 of the .gz files is known: nothing vouches for decompressed ones but the user."""
    for filename, array in tiny_arrays().items():
        write_idx(tmp_path / filename.removesuffix(".gz"), array)
    with pytest.raises(DataError, match="cannot be verified"):
        load("mnist", root=tmp_path, download=False)
    splits = load("mnist", root=tmp_path, download=False, trust=True)
    assert len(splits.train) == N_TRAIN and splits.verified is False


def test_local_file_with_wrong_checksum_is_refused(server, tiny_mnist, tmp_path):
    for filename in tiny_arrays():
        (tmp_path / filename).write_bytes((server["www"] / "bad" / filename).read_bytes())
    with pytest.raises(DataError, match="checksum mismatch"):
        load("mnist", root=tmp_path, download=False)


def test_content_checksum_survives_recompression():
    content = idx_bytes(np.arange(5, dtype=np.uint8))
    original, recompressed = gzip.compress(content, mtime=0), gzip.compress(content, 1, mtime=123)
    checksums = (
        Checksum("md5-gz", hashlib.md5(original).hexdigest()),
        Checksum("sha256-idx", hashlib.sha256(content).hexdigest()),
    )
    verify("original", original, content, checksums)
    verify("recompressed", recompressed, content, checksums)  # md5 differs, sha256 of content matches
    with pytest.raises(DataError, match="expected md5-gz .* expected sha256-idx"):
        other = content + b"\x00"
        verify("other", gzip.compress(other), other, checksums)


def test_http_only_to_this_machine(tmp_path):
    check_url("https://example.org/a.gz")
    check_url("http://127.0.0.1:8000/a.gz")
    for url in ("http://example.org/a.gz", "ftp://example.org/a.gz", "file:///etc/passwd"):
        with pytest.raises(DataError, match="https"):
            check_url(url)
    # Refused before any connection is made, so this never reaches the network.
    with pytest.raises(DataError, match="https"):
        fetch_file(DataFile("a.gz", ()), ["http://example.org/"], tmp_path)
    assert leftovers(tmp_path) == []


def test_embedded_dataset_has_nothing_to_fetch():
    with pytest.raises(DataError, match="embedded"):
        fetch_dataset("mnist-5k")
