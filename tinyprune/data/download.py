"""Download dataset files: try each mirror in turn, verify the checksum, then save the file atomically.

A file is received into memory, never more than its known size (``DataFile.size``) and within a deadline
for the whole file (``deadline`` seconds; ``timeout`` bounds each read), checked against its checksums,
and only then written with ``tinyprune.files.atomic_write`` (temporary sibling, fsync, rename): the real
name only ever holds a complete, verified file, and a failed, slow, oversized or lying download leaves
nothing on disk. Only https is used (plain http only to this machine, for the tests), and every redirect
is checked by the same rule before it is followed.

Command line (also ``data_scripts/fetch_mnist.py`` and ``data_scripts/fetch_fashion_mnist.py``)::

    python -m tinyprune.data.download mnist [--root DIR]
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tinyprune.data.idx import gunzip_if_needed
from tinyprune.data.sources import (
    DEFAULT_DEADLINE,
    DEFAULT_TIMEOUT,
    DataFile,
    EmbeddedSource,
    IdxSource,
    cache_dir,
    check_download_options,
    find_file,
    get_source,
    locate,
    search_dirs,
    verify,
)
from tinyprune.errors import DataError, OutputError, TinypruneError
from tinyprune.files import atomic_write

CHUNK_BYTES = 1 << 20
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: The most bytes accepted for a file whose size the registry does not give.
MAX_UNKNOWN_BYTES = 64 << 20


def check_url(url: str) -> None:
    """Allow https, and plain http only to this machine (the tests' local server).

    >>> check_url("http://example.org/x.gz")
    Traceback (most recent call last):
    ...
    tinyprune.errors.DataError: refusing http://example.org/x.gz: downloads must use https
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError as exc:                 # e.g. an unclosed [ of an IPv6 address
        raise DataError(f"refusing {url!r}: not a valid URL ({exc})") from None
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return
    raise DataError(f"refusing {url}: downloads must use https")


class CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL that ``check_url`` allows: a mirror cannot lead to plain http."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201 (urllib's hook)
        try:
            check_url(newurl)
        except DataError as exc:
            fp.close()
            raise DataError(f"{req.full_url} redirected ({code}) to {newurl}: {exc}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def file_url(mirror: str, filename: str) -> str:
    """The URL of ``filename`` on ``mirror`` (a folder URL, with or without the trailing slash).

    >>> file_url("https://example.org/mnist", "t10k-labels-idx1-ubyte.gz")
    'https://example.org/mnist/t10k-labels-idx1-ubyte.gz'
    """
    return mirror.rstrip("/") + "/" + filename


def download_bytes(url: str, max_bytes: int, timeout: float = DEFAULT_TIMEOUT,
                   deadline: float = DEFAULT_DEADLINE) -> bytes:
    """The body of ``url``: at most ``max_bytes``, all of it within ``deadline`` seconds, else ``DataError``.

    Each read waits at most ``min(timeout, deadline)`` seconds and the clock is checked between reads,
    so a server that trickles a byte at a time is cut off within that long after the deadline.
    """
    check_url(url)
    started = time.monotonic()
    opener = urllib.request.build_opener(CheckedRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "tinyprune"})
    body = bytearray()
    with opener.open(request, timeout=min(timeout, deadline)) as response:
        announced = response.headers.get("Content-Length", "")
        if announced.strip().isdigit() and int(announced) > max_bytes:
            raise DataError(f"{url}: the server announces {int(announced)} bytes, more than the "
                            f"{max_bytes} this file has; refusing it")
        while chunk := response.read1(CHUNK_BYTES):   # read1: one network read, so the clock is checked
            body += chunk
            if len(body) > max_bytes:
                raise DataError(f"{url}: more than the {max_bytes} bytes this file has; refusing it")
            if time.monotonic() - started > deadline:
                raise DataError(f"{url}: not complete after the deadline of {deadline:g} s "
                                f"({len(body)} bytes received); try again or raise the deadline")
    return bytes(body)


def save_downloaded(final: Path, raw: bytes) -> Path:
    """Write verified bytes to ``final`` atomically; never replace a different file already there."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(final, raw, overwrite=False)
    except OutputError:
        if final.is_file() and final.read_bytes() == raw:   # a concurrent download saved the same file
            return final
        raise
    except OSError as exc:
        raise DataError(f"cannot save {final}: {exc.strerror or exc}; nothing was saved") from exc


def fetch_file(
    datafile: DataFile,
    mirrors: list[str] | tuple[str, ...],
    directory: str | os.PathLike,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
) -> Path:
    """Download ``datafile`` into ``directory`` from the first mirror that serves a file matching its
    checksums; return its path. Raise ``DataError`` listing every mirror's failure if none does.
    """
    check_download_options(mirrors, timeout, deadline)
    final = Path(directory) / datafile.filename
    max_bytes = datafile.size if datafile.size is not None else MAX_UNKNOWN_BYTES
    failures = []
    for mirror in mirrors:
        url = file_url(mirror, datafile.filename)
        try:
            raw = download_bytes(url, max_bytes, timeout, deadline)
            verify(url, raw, gunzip_if_needed(raw, url), datafile.checksums)
        except (OSError, http.client.HTTPException, DataError) as exc:  # URLError, HTTPError are OSErrors
            failures.append(f"{exc} (nothing saved as {final})" if isinstance(exc, DataError)
                            else f"{url}: {exc}")
            continue
        return save_downloaded(final, raw)
    tried = "\n  ".join(failures) if failures else "no mirrors given"
    raise DataError(f"could not fetch {datafile.filename}:\n  {tried}")


def fetch_dataset(
    source: str | IdxSource,
    root: str | os.PathLike | None = None,
    *,
    mirrors: list[str] | tuple[str, ...] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    verbose: bool = True,
) -> Path:
    """Download the files of ``source`` that are missing from ``root`` (default: its cache folder).

    Returns the folder. ``mirrors`` defaults to the registry's list and is tried in order; ``timeout``
    bounds each read and ``deadline`` each file (see ``download_bytes``).
    """
    if isinstance(source, str):
        source = get_source(source)
    if isinstance(source, EmbeddedSource):
        raise DataError(f"{source.name!r} is embedded in the package; there is nothing to fetch")
    directory = Path(root) if root is not None else cache_dir(source.name)
    for datafile in source.files:
        if find_file(directory, datafile) is not None:
            continue
        if verbose:
            print(f"fetching {datafile.filename} into {directory} ...", file=sys.stderr, flush=True)
        fetch_file(datafile, source.mirrors if mirrors is None else mirrors, directory, timeout, deadline)
    return directory


def build_parser(name: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``name`` fixed (the fetch scripts) the dataset argument is left out."""
    what = name or "a dataset"
    parser = argparse.ArgumentParser(
        prog=None if name else "python -m tinyprune.data.download",
        description=f"Download {what} for tinyprune, verify its checksums, store it where load() finds it.",
    )
    if name is None:
        parser.add_argument("dataset", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--root", help="folder to store the files in (default: the cache, $TINYPRUNE_DATA)")
    parser.add_argument("--mirror", action="append", help="mirror URL to use instead of the built-in ones")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds to wait for each read from a mirror ({DEFAULT_TIMEOUT:g})")
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE,
                        help=f"seconds each whole file may take ({DEFAULT_DEADLINE:g})")
    parser.add_argument("--force", action="store_true", help="download even if a copy is found elsewhere")
    return parser


def main(argv: list[str] | None = None, name: str | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser(name).parse_args(argv)
    source = get_source(name or args.dataset)
    try:
        found = locate(source, [d for d, _ in search_dirs(source, args.root)])
        if found is not None and not args.force:
            print(f"{source.name} is already present in {next(iter(found.values())).parent}")
            return 0
        directory = fetch_dataset(source, args.root, mirrors=args.mirror, timeout=args.timeout,
                                  deadline=args.deadline)
    except TinypruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{source.name} is in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
