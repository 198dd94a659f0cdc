"""Download dataset files: try each mirror in turn, verify the checksum, then move into place atomically.

A file is first written to a temporary name in the destination folder, flushed to disk (fsync), checked,
and only then renamed to its real name with ``os.replace``; a rename within one folder is atomic, so the
real name only ever holds a complete, verified file. A failed or mismatching download leaves nothing.

Command line (also ``data_scripts/fetch_mnist.py`` and ``data_scripts/fetch_fashion_mnist.py``)::

    python -m tinyprune.data.download mnist [--root DIR]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from tinyprune.data.idx import gunzip_if_needed
from tinyprune.data.sources import (
    DataFile,
    EmbeddedSource,
    IdxSource,
    cache_dir,
    find_file,
    get_source,
    locate,
    search_dirs,
    verify,
)
from tinyprune.errors import DataError
from tinyprune.files import fsync_folder

CHUNK_BYTES = 1 << 20
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_url(url: str) -> None:
    """Allow https, and plain http only to this machine (the tests' local server).

    >>> check_url("http://example.org/x.gz")
    Traceback (most recent call last):
    ...
    tinyprune.errors.DataError: refusing http://example.org/x.gz: downloads must use https
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return
    raise DataError(f"refusing {url}: downloads must use https")


def file_url(mirror: str, filename: str) -> str:
    """The URL of ``filename`` on ``mirror`` (a folder URL, with or without the trailing slash).

    >>> file_url("https://example.org/mnist", "t10k-labels-idx1-ubyte.gz")
    'https://example.org/mnist/t10k-labels-idx1-ubyte.gz'
    """
    return mirror.rstrip("/") + "/" + filename


def download_to_temp(url: str, directory: Path, timeout: float) -> Path:
    """Stream ``url`` into a new hidden ``.part`` file in ``directory``, fsync it, return its path."""
    check_url(url)
    fd, name = tempfile.mkstemp(dir=directory, prefix="." + url.rsplit("/", 1)[-1] + ".", suffix=".part")
    temp = Path(name)
    request = urllib.request.Request(url, headers={"User-Agent": "tinyprune"})
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            shutil.copyfileobj(response, out, CHUNK_BYTES)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def fetch_file(
    datafile: DataFile,
    mirrors: list[str] | tuple[str, ...],
    directory: str | os.PathLike,
    timeout: float = 60.0,
) -> Path:
    """Download ``datafile`` into ``directory`` from the first mirror that serves a file matching its
    checksums; return its path. Raise ``DataError`` listing every mirror's failure if none does.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / datafile.filename
    failures = []
    for mirror in mirrors:
        url = file_url(mirror, datafile.filename)
        try:
            temp = download_to_temp(url, directory, timeout)
        except (OSError, http.client.HTTPException, DataError) as exc:  # URLError, HTTPError are OSErrors
            failures.append(f"{url}: {exc}")
            continue
        try:
            raw = temp.read_bytes()
            verify(url, raw, gunzip_if_needed(raw, url), datafile.checksums)
            os.replace(temp, final)
            fsync_folder(directory)
            return final
        except DataError as exc:
            failures.append(f"{exc} (deleted; nothing saved as {final})")
        finally:
            temp.unlink(missing_ok=True)  # gone already after a successful os.replace
    tried = "\n  ".join(failures) if failures else "no mirrors given"
    raise DataError(f"could not fetch {datafile.filename}:\n  {tried}")


def fetch_dataset(
    source: str | IdxSource,
    root: str | os.PathLike | None = None,
    *,
    mirrors: list[str] | tuple[str, ...] | None = None,
    timeout: float = 60.0,
    verbose: bool = True,
) -> Path:
    """Download the files of ``source`` that are missing from ``root`` (default: its cache folder).

    Returns the folder. ``mirrors`` defaults to the registry's list and is tried in order.
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
        fetch_file(datafile, source.mirrors if mirrors is None else mirrors, directory, timeout)
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
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait on a mirror (60)")
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
        directory = fetch_dataset(source, args.root, mirrors=args.mirror, timeout=args.timeout)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{source.name} is in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
