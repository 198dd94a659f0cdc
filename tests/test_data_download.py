"""Downloads from a local http.server on 127.0.0.1 (never the network): good, failing, lying, redirecting,
trickling and oversized mirrors. Every case is bounded in time (the module runs in a few seconds)."""

import dataclasses
import errno
import functools
import gzip
import hashlib
import http.server
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tinyprune.data import load, sources, write_idx
from tinyprune.data.download import check_url, fetch_dataset, fetch_file, main
from tinyprune.data.idx import idx_bytes
from tinyprune.data.sources import Checksum, DataFile, verify
from tinyprune.errors import DataError, OutputError

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


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Serves good/ and bad/ as files; the other first path parts misbehave on purpose (see serve_*)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        kind, _, filename = self.path.lstrip("/").partition("/")
        misbehave = getattr(self, "serve_" + kind.replace("-", "_"), None)
        if misbehave is None:
            return super().do_GET()
        return misbehave(filename)

    def good_bytes(self, filename):
        return (Path(self.directory) / "good" / filename).read_bytes()

    def send_body(self, body, announce=True):
        self.send_response(200)
        if announce:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass                                # the client gave up: so do we

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def serve_to_http(self, filename):          # a redirect to plain http elsewhere (refused, never followed)
        self.redirect(f"http://example.org/{filename}")

    def serve_to_good(self, filename):          # a redirect that check_url allows
        self.redirect(f"/good/{filename}")

    def serve_trickle(self, filename):          # the right bytes, one every 0.2 s: no single read times out
        body = self.good_bytes(filename)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def serve_oversize(self, filename):         # announces and sends more than the file has
        self.send_body(self.good_bytes(filename) + bytes(1000))

    def serve_unannounced(self, filename):      # sends more than the file has without a Content-Length
        self.send_body(self.good_bytes(filename) + bytes(100_000), announce=False)

    def serve_raw(self, filename):              # the IDX bytes uncompressed, under the .gz name
        self.send_body(gzip.decompress(self.good_bytes(filename)))


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
    handler = functools.partial(MirrorHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    urls = {kind: f"{base}/{kind}/" for kind in ("good", "bad", "missing", "to-http", "to-good", "trickle",
                                                   "oversize", "unannounced", "raw")}
    yield {**urls, "www": www}
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def md5_of(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def published(path):
    """The registry entry of a file served from good/: its MD5 and its size, like the real ones."""
    return sources._md5(path.name, md5_of(path), path.stat().st_size)


@pytest.fixture
def tiny_mnist(server, monkeypatch, tmp_path):
    """Register the tiny files as 'mnist' (their checksums and sizes, no mirrors, no system folders)."""
    good = server["www"] / "good"
    fake = dataclasses.replace(
        sources.MNIST,
        train_images=published(good / "train-images-idx3-ubyte.gz"),
        train_labels=published(good / "train-labels-idx1-ubyte.gz"),
        test_images=published(good / "t10k-images-idx3-ubyte.gz"),
        test_labels=published(good / "t10k-labels-idx1-ubyte.gz"),
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


# ------------------------------------------------------- hostile and unlucky mirrors (issue 15 item 2)


def test_redirect_to_plain_http_is_refused(server, tiny_mnist, tmp_path):
    with pytest.raises(DataError) as info:
        fetch_file(tiny_mnist.test_labels, [server["to-http"]], tmp_path / "dest", timeout=5)
    message = str(info.value)
    assert "redirected (302) to http://example.org/t10k-labels-idx1-ubyte.gz" in message
    assert "downloads must use https" in message
    assert leftovers(tmp_path / "dest") == []


def test_redirect_that_check_url_allows_is_followed(server, tiny_mnist, tmp_path):
    path = fetch_file(tiny_mnist.test_labels, [server["to-good"]], tmp_path, timeout=5)
    assert md5_of(path) == tiny_mnist.test_labels.checksums[0].digest


def test_trickling_mirror_is_cut_off_at_the_deadline(server, tiny_mnist, tmp_path):
    started = time.monotonic()
    with pytest.raises(DataError, match=r"not complete after the deadline of 0\.6 s \(\d+ bytes received\)"):
        fetch_file(tiny_mnist.train_images, [server["trickle"]], tmp_path / "dest", timeout=5, deadline=0.6)
    assert time.monotonic() - started < 2.0          # each read returns within 0.2 s; the clock stops it
    assert leftovers(tmp_path / "dest") == []


def test_trickling_mirror_then_good_one(server, tiny_mnist, tmp_path):
    splits = load("mnist", root=tmp_path / "mine", mirrors=[server["trickle"], server["good"]],
                  timeout=5, deadline=0.4)
    assert splits.verified is True
    assert leftovers(tmp_path / "mine") == sorted(tiny_arrays())


@pytest.mark.parametrize("kind, message", [
    ("oversize", r"the server announces \d+ bytes, more than the \d+ this file has"),
    ("unannounced", r"more than the \d+ bytes this file has"),
])
def test_more_bytes_than_the_file_has_are_refused(server, tiny_mnist, tmp_path, kind, message):
    with pytest.raises(DataError, match=message):
        fetch_file(tiny_mnist.train_labels, [server[kind]], tmp_path / "dest", timeout=5)
    assert leftovers(tmp_path / "dest") == []


def test_uncompressed_bytes_under_a_gz_name_are_refused(server, tiny_mnist, tmp_path):
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: named \.gz but not gzip data"):
        fetch_file(tiny_mnist.test_images, [server["raw"]], tmp_path / "dest", timeout=5)
    assert leftovers(tmp_path / "dest") == []


@pytest.mark.parametrize("fault", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk full", "interrupt"])
def test_fault_while_saving_leaves_nothing(server, tiny_mnist, tmp_path, monkeypatch, fault):
    def failing_fsync(descriptor):
        raise fault

    monkeypatch.setattr(os, "fsync", failing_fsync)
    expected = DataError if isinstance(fault, OSError) else KeyboardInterrupt
    with pytest.raises(expected, match="No space left on device" if expected is DataError else None):
        fetch_file(tiny_mnist.test_labels, [server["good"]], tmp_path / "dest", timeout=5)
    assert leftovers(tmp_path / "dest") == []        # neither the file nor a temporary


def test_an_existing_file_is_never_replaced(server, tiny_mnist, tmp_path):
    target = tmp_path / tiny_mnist.test_labels.filename
    target.write_bytes(b"mine")
    with pytest.raises(OutputError, match="already exists"):
        fetch_file(tiny_mnist.test_labels, [server["good"]], tmp_path, timeout=5)
    assert target.read_bytes() == b"mine"
    # What a concurrent fetch of the same file leaves: accepted as it is.
    target.write_bytes((server["www"] / "good" / target.name).read_bytes())
    assert fetch_file(tiny_mnist.test_labels, [server["good"]], tmp_path, timeout=5) == target


def test_fetch_command_deadline_and_bad_numbers(server, tiny_mnist, tmp_path, capsys):
    root = str(tmp_path / "x")
    assert main(["mnist", "--root", root, "--mirror", server["trickle"], "--deadline", "0.3"]) == 1
    assert "deadline of 0.3 s" in capsys.readouterr().err
    assert main(["mnist", "--root", root, "--timeout", "-1"]) == 1
    assert "timeout must be a positive number of seconds, got -1.0" in capsys.readouterr().err
    assert leftovers(tmp_path / "x") == []


def test_registry_knows_every_published_size():
    for name in ("mnist", "fashion-mnist"):
        assert all(f.size and f.size > 0 for f in sources.get_source(name).files)
    assert sources.MNIST.train_images.size == 9_912_422
