"""Writing outputs so that they are whole or absent: atomic files, run folders, durable renames.

Every file tinyprune writes (checkpoints, reports, downloads) goes through ``atomic_write``: the bytes
go to a temporary file beside the target, are flushed to disk (``fsync``) and only then renamed onto
the target's name, so a crash, a full disk or ``kill -9`` leaves the old file or the new one, never a
torn one. A temporary's name carries the writer's process id (``.NAME.<pid>.<token>.tinyprune-tmp``),
so the next write to the same target finds and removes those left by processes that died.

A run (``tinyprune run``, ``sweep``) writes a whole folder the same way: ``staged_folder`` yields a
temporary sibling folder and renames it into place only when the run completes, so a run folder is a
complete run or absent, and an existing run is never replaced unless ``overwrite=True``.

Targets must be absent or regular files: a symlink, a device node, a FIFO or a folder is refused, never
replaced. New files get the permissions the umask gives (``0o666 & ~umask``), like any other program's.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write(folder / "note.txt", "hello\\n").read_text()
'hello\\n'
>>> with staged_folder(folder / "run") as stage:
...     _ = atomic_write(stage / "report.json", "{}")
>>> sorted(p.name for p in (folder / "run").iterdir())
['report.json']
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tinyprune.errors import OutputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TEMPORARY_SUFFIX = ".tinyprune-tmp"
PathLike = str | os.PathLike


def fsync_folder(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX); skipped where folders cannot be opened (Windows).

    ``os.replace`` is atomic, but until the folder's entry is flushed a power cut may still forget
    the new name; ``fsync`` on the folder flushes it.

    >>> fsync_folder(".")
    """
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symbolic link"), (stat.S_ISDIR, "folder"), (stat.S_ISCHR, "device"),
                       (stat.S_ISBLK, "device"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def check_target(path: PathLike, *, overwrite: bool = True) -> Path:
    """``path`` as a ``Path`` if a file may be written there, else ``OutputError`` saying why.

    Allowed: an absent path in an existing folder, or (with ``overwrite``) an existing regular file.

    >>> check_target("/dev/null")
    Traceback (most recent call last):
    ...
    tinyprune.errors.OutputError: /dev/null exists and is a device, not a regular file: refusing to replace it
    """
    if str(path).strip() in ("", "."):
        raise OutputError(f"an output path is needed, got {str(path)!r}")
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        folder = path.parent
        if not folder.is_dir():
            raise OutputError(f"cannot write {path}: the folder {folder} does not exist") from None
        return path
    if not stat.S_ISREG(mode):
        raise OutputError(f"{path} exists and is a {_kind(mode)}, not a regular file: refusing to replace it")
    if not overwrite:
        raise OutputError(f"{path} already exists: refusing to replace it (ask for overwrite)")
    return path


def check_writable(path: PathLike, *, overwrite: bool = True) -> Path:
    """``check_target``, then prove a temporary can be made beside ``path`` (so the write at the end will
    work): a read-only, immutable or unwritable folder is refused now, before any work.

    >>> import tempfile, pathlib
    >>> check_writable(pathlib.Path(tempfile.mkdtemp()) / "model.npz").name
    'model.npz'
    """
    path = check_target(path, overwrite=overwrite)
    probe = _temporary_sibling(path)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error} in its folder {path.parent}"
                          ) from None
    os.unlink(probe)
    return path


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")


def _temporary_pattern(path: Path) -> re.Pattern:
    # Exactly what _temporary_sibling makes for this name: the target "a" must not claim the temporaries
    # of "a.123" (".a.123.<pid>.<token>..."), and a name holding "[" or "*" is no pattern.
    return re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[0-9a-f]{8}" + re.escape(TEMPORARY_SUFFIX))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by writers that died (their process no longer runs).

    Returns what was removed. Temporaries of running processes (a concurrent writer) are left alone.
    """
    path = Path(path)
    pattern = _temporary_pattern(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []                         # no folder yet: nothing can be left in it
    removed = []
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _alive(pid):
            continue                      # ours, or a concurrent writer's
        candidate = path.parent / name
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


_ANY_TEMPORARY = re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}" + re.escape(TEMPORARY_SUFFIX))


def remove_stale_staged_folders(parent: PathLike) -> list[Path]:
    """Remove from ``parent`` the staged run folders (``.<name>.<pid>.<token>.tinyprune-tmp/``) of every
    writer that died, whatever the name it was writing.

    A run with a default name (``runs/<time>``) is the only writer of its name, so the next run, with another
    time in its name, would never find what a ``kill -9`` left behind by name alone.
    """
    parent = Path(parent)
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    removed = []
    for name in names:
        match = _ANY_TEMPORARY.fullmatch(name)
        candidate = parent / name
        if match is None or not candidate.is_dir() or candidate.is_symlink():
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


#: What os.link says on a file system without hard links (FAT, some network and FUSE file systems).
_NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS)


def _place_without_replacing(temporary: Path, path: Path) -> None:
    # A hard link fails if the target exists, atomically; without hard links, check and rename (a writer
    # landing between the two would be replaced: the best such a file system allows).
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise OutputError(f"{path} already exists: refusing to replace it (ask for overwrite)") from None
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(path):
            raise OutputError(f"{path} already exists: refusing to replace it (ask for overwrite)") from None
        os.replace(temporary, path)
        return
    os.unlink(temporary)


def atomic_write(path: PathLike, content: bytes | str | Callable[[Any], None], *,
                 overwrite: bool = True, by_name: bool = False) -> Path:
    """Write ``content`` (bytes, text as UTF-8, or a function that writes to a binary file) to ``path``;
    with ``by_name``, ``content`` is a function given the temporary's path (for a library that writes a
    file by its name, such as ``safetensors.numpy.save_file``).

    Whole or absent: temporary sibling, ``fsync``, then ``os.replace`` (or, with ``overwrite=False``, a
    hard link that fails if the target appeared meanwhile). On any failure (a full disk, an exception in
    ``content``, an interrupt) the temporary is removed and the target is untouched; an ``OSError`` that
    names no file (``ENOSPC`` at a write or ``fsync``) is raised again naming ``path``. Returns the path.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> atomic_write(target, b"\\x00\\x01").read_bytes()
    b'\\x00\\x01'
    >>> atomic_write(target, b"again", overwrite=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tinyprune.errors.OutputError: ... already exists: refusing to replace it (ask for overwrite)
    """
    if not (callable(content) or isinstance(content, (bytes, bytearray, memoryview, str))):
        raise OutputError(f"cannot write {type(content).__name__} to {path}: expected bytes, text, "
                          "or a function that writes to a binary file")
    path = check_target(path, overwrite=overwrite)
    remove_stale_temporaries(path)
    temporary = _temporary_sibling(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)   # the umask applies
    try:
        with os.fdopen(descriptor, "wb") as file:
            if callable(content) and not by_name:
                content(file)
            elif not callable(content):
                file.write(content.encode("utf-8") if isinstance(content, str) else bytes(content))
        if by_name:
            content(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        if overwrite:
            check_target(path)            # still a regular file or absent (not swapped for a link meanwhile)
            os.replace(temporary, path)
        else:
            _place_without_replacing(temporary, path)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if error.errno is None or error.filename is not None:
            raise
        # a full disk or a failed fsync names no file: say which one could not be written
        raise OSError(error.errno, error.strerror, str(path)) from error
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_folder(path.parent)
    return path


def check_folder(path: PathLike, *, overwrite: bool = False) -> Path:
    """``path`` as a ``Path`` if a run may be written there, else ``OutputError``: call it before any work.

    Allowed: an absent path (its parents are made when the run completes), an empty folder, or (with
    ``overwrite``) a folder holding an earlier run.
    """
    if str(path).strip() in ("", "."):
        raise OutputError(f"an output folder is needed, got {str(path)!r}")
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISDIR(mode):
        raise OutputError(f"{path} exists and is a {_kind(mode) if not stat.S_ISREG(mode) else 'file'}, "
                          "not a folder: refusing to write a run there")
    if any(path.iterdir()) and not overwrite:
        raise OutputError(f"{path} already holds files (an earlier run?): refusing to mix or replace them; "
                          "choose another folder or pass --overwrite")
    return path


class RunKeptError(OutputError):
    """A finished run could not be moved onto its target; it was kept in ``kept`` instead (not discarded)."""

    def __init__(self, message: str, kept: Path) -> None:
        super().__init__(message)
        self.kept = kept


def _keep_beside(stage: Path, target: Path, why: str) -> RunKeptError:
    """Move a finished run that cannot land on ``target`` to a visible name beside it and say where.

    The stage's own name is a temporary one that the next writer would remove (its writer will have
    exited), so the run moves to ``<target>.unpublished`` (``-2``, ... if taken) first.
    """
    kept = unique_folder(target.parent, f"{target.name}.unpublished")
    try:
        os.rename(stage, kept)
    except OSError:
        kept = stage
    return RunKeptError(f"cannot move the finished run onto {target} ({why}); the run is kept, whole, in "
                        f"{kept}", kept)


def _move_into_place(stage: Path, target: Path, overwrite: bool) -> None:
    try:
        os.rename(stage, target)           # replaces an absent or empty folder atomically
        return
    except OSError as error:
        if not target.is_dir() or not overwrite or error.errno not in _NAME_TAKEN:
            raise _keep_beside(stage, target, error.strerror or str(error)) from None
    retired = _temporary_sibling(target)   # overwrite: swap the old run out, the new one in, drop the old
    try:
        os.rename(target, retired)
    except OSError as error:
        raise _keep_beside(stage, target, error.strerror or str(error)) from None
    os.rename(stage, target)
    shutil.rmtree(retired, ignore_errors=True)


def _probe_rename(target: Path) -> None:
    """Do, on an empty stand-in, the rename that publishing a run onto ``target`` will do."""
    probe = _temporary_sibling(target)
    probe.mkdir()                          # fails on a read-only mount or a folder we may not write in
    try:
        if not os.path.lexists(target):
            return
        mode = stat.S_IMODE(os.stat(target).st_mode)
        if not any(target.iterdir()):
            os.rename(probe, target)       # what publishing does; the empty folder is replaced by another
            os.chmod(target, mode)
            return
        os.rename(target, probe.with_name(probe.name + "-old"))     # --overwrite: the old run steps aside
        os.rename(probe.with_name(probe.name + "-old"), target)     # and comes back
    finally:
        if probe.is_dir():
            probe.rmdir()


def check_publishable(target: PathLike, *, overwrite: bool = False) -> Path:
    """``check_folder``, then prove before any work that a finished run can be moved onto ``target``.

    A folder that exists and is empty may still refuse the final rename (a mount point: ``EBUSY``; an
    immutable folder: ``EPERM``; a read-only mount: ``EROFS``): the same rename is tried now on an empty
    stand-in, so the run is refused before training, not thrown away after it.

    >>> import tempfile, pathlib
    >>> check_publishable(pathlib.Path(tempfile.mkdtemp()) / "run").name
    'run'
    """
    target = check_folder(target, overwrite=overwrite)
    existing = next(folder for folder in [target, *target.parents] if os.path.lexists(folder))
    if existing != target and not existing.is_dir():
        raise OutputError(f"cannot write a run into {target}: {existing} is not a folder")
    try:
        _probe_rename(target if existing == target else existing / f".{target.name}")
    except OSError as error:
        raise OutputError(f"cannot publish a run at {target}: {error.strerror or error} (a mount point, an "
                          "immutable or read-only folder?); choose a folder inside it, e.g. "
                          f"{target / 'run'}") from None
    return target


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it made, deepest first (to remove them if the run fails)."""
    made = []
    for parent in [folder, *folder.parents]:
        if os.path.lexists(parent):
            break
        made.append(parent)
    folder.mkdir(parents=True, exist_ok=True)
    return made


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break                         # not empty (someone else wrote there) or gone: leave the rest


@contextlib.contextmanager
def staged_folder(target: PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; rename it to ``target`` when the block completes.

    If the block raises (an error, ``KeyboardInterrupt``), the temporary folder is removed, and so are the
    parent folders made for it, and ``target`` is untouched: a run folder is a complete run or absent.
    ``target`` is checked first (``check_folder``).
    """
    target = check_folder(target, overwrite=overwrite)
    made = _make_parents(target.parent)
    remove_stale_temporaries(target)
    remove_stale_staged_folders(target.parent)
    stage = _temporary_sibling(target)
    stage.mkdir()
    try:
        yield stage
        _move_into_place(stage, target, overwrite)
    except RunKeptError:
        raise                              # the finished run is kept beside: nothing to remove
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_if_empty(made)
        raise
    fsync_folder(target.parent)


def unique_folder(parent: PathLike, stem: str) -> Path:
    """The first of ``parent/stem``, ``parent/stem-2``, ... that does not exist yet (checked, not made).

    Two runs that pick the same name at once are told apart when they move into place: ``staged_folder``
    refuses to mix them, so a default name is chosen again at the end by ``publish_unique``.
    """
    parent = Path(parent)
    candidate, number = parent / stem, 1
    while os.path.lexists(candidate):
        number += 1
        candidate = parent / f"{stem}-{number}"
    return candidate


@dataclass
class Stage:
    """A run being written: files go into ``folder``; ``path`` is where it lands once complete."""

    folder: Path
    path: Path | None = None


#: Why a rename onto a candidate name fails when another run took that name first.
_NAME_TAKEN = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR)


def check_stem(stem: str) -> str:
    """A default run name must be one plain folder name (no ``/``, not ``.`` or ``..``)."""
    if not isinstance(stem, str) or stem in ("", ".", "..") or "/" in stem or os.sep in stem or "\0" in stem:
        raise OutputError(f"a run name must be one plain folder name, got {stem!r}")
    return stem


@contextlib.contextmanager
def staged_unique_folder(parent: PathLike, stem: str) -> Iterator[Stage]:
    """Like ``staged_folder`` for a default name: yields a ``Stage`` whose ``path`` is set on completion.

    The unique name (``stem``, ``stem-2``, ...) is taken when the run completes, with an atomic rename
    that never replaces a non-empty folder, so two runs started in the same second both keep their results.
    """
    parent, stem = Path(parent), check_stem(stem)
    made = _make_parents(parent)
    remove_stale_temporaries(parent / stem)
    remove_stale_staged_folders(parent)
    stage = Stage(_temporary_sibling(parent / stem))
    stage.folder.mkdir()
    try:
        yield stage
        for _ in range(1000):
            target = unique_folder(parent, stem)
            try:
                os.rename(stage.folder, target)
            except OSError as error:
                if error.errno in _NAME_TAKEN:
                    continue               # taken meanwhile by a concurrent run: the next name
                raise _keep_beside(stage.folder, target, error.strerror or str(error)) from None
            stage.path = target
            break
        else:
            raise _keep_beside(stage.folder, parent / stem, "no free folder name")
    except RunKeptError:
        raise
    except BaseException:
        shutil.rmtree(stage.folder, ignore_errors=True)
        _remove_if_empty(made)
        raise
    fsync_folder(parent)


# --------------------------------------------------------------------------- reading files from strangers
#: Bounds on what a configuration file (a recipe, a ``.keras`` config) may be: bytes, and nesting depth.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 32
#: How much of a refused value an error message shows.
SHOWN_CHARACTERS = 200
_READ_PIECE = 1 << 20


def shown(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """``repr(value)``, cut to ``limit`` characters with a note of how many were left out.

    An error message echoes the bad value; a 100 MB value must not become a 100 MB message.

    >>> shown("x" * 1000, 12)
    "'xxxxxxxxxxxx'… (988 more characters)"
    >>> shown([1, 2])
    '[1, 2]'
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value) - limit} more characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def open_regular(path: PathLike, what: str, error: type[Exception] = OutputError) -> BinaryIO:
    """``path`` opened for reading if it is a regular file; a FIFO, device, socket or folder is refused.

    ``O_NONBLOCK`` makes opening a FIFO return at once (it would otherwise wait for a writer); ``fstat`` on
    the opened descriptor then tells what it really is, so a symlink to ``/dev/zero`` is refused too and
    there is no window for a swap between a check and the open. ``error`` is the type raised (the caller's
    own, e.g. ``CheckpointError``).
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such {what} (cannot read it)") from None
    except OSError as failure:
        raise error(f"{path}: cannot be read ({failure.strerror or failure})") from failure
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        kind = "device or special file" if _kind(mode) in ("device", "special file") else _kind(mode)
        raise error(f"{path}: is a {kind}, not a regular file: a {what} is a file")
    return os.fdopen(descriptor, "rb")


def read_bounded(file: BinaryIO, limit: int, where: str, error: type[Exception] = OutputError) -> bytes:
    """At most ``limit`` bytes from ``file``, read in 1 MiB pieces; more is refused, not read.

    A file (or a compressed archive member) that says it is small may still grow while read or inflate
    to gigabytes: counting what actually arrives bounds the memory whatever the file declared.
    """
    pieces, total = [], 0
    while True:
        piece = file.read(min(_READ_PIECE, limit + 1 - total))
        if not piece:
            return b"".join(pieces)
        total += len(piece)
        if total > limit:
            raise error(f"{where}: holds more than {limit} bytes, the most it may hold")
        pieces.append(piece)


def read_regular(path: PathLike, limit: int, what: str, error: type[Exception] = OutputError) -> bytes:
    """The bytes of the regular file ``path`` (``open_regular``), refused above ``limit`` bytes.

    >>> import tempfile, pathlib
    >>> note = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> _ = note.write_text("hi")
    >>> read_regular(note, 10, "note")
    b'hi'
    """
    with open_regular(path, what, error) as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise error(f"{path}: {size} bytes is more than a {what} may hold ({limit})")
        return read_bounded(file, limit, str(path), error)


def _nesting_depth(text: str, comment: str | None) -> int:
    """The deepest nesting of ``[`` and ``{`` in ``text``, outside strings (and ``comment`` lines)."""
    depth = deepest = 0
    quote, escaped, in_comment = "", False, False
    for character in text:
        if in_comment:
            in_comment = character != "\n"
        elif quote:
            if escaped:
                escaped = False
            elif character == "\\" and quote == '"':
                escaped = True
            elif character == quote:
                quote = ""
        elif character in "\"'":
            quote = character
        elif character == comment:
            in_comment = True
        elif character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth -= 1
    return deepest


def _no_repeated_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"the key(s) {', '.join(map(shown, repeated))} appear more than once in one object "
                         "(which one was meant?)")
    return dict(pairs)


def parse_config(raw: bytes, kind: str, where: str, error: type[Exception] = OutputError) -> object:
    """``raw`` parsed as ``kind`` ("json" or "toml"), nested at most ``MAX_CONFIG_DEPTH`` deep, a JSON key
    at most once per object (the last would silently win); any failure is ``error`` naming ``where``.

    >>> parse_config(b'{"a": [1, 2]}', "json", "x.json")
    {'a': [1, 2]}
    >>> parse_config(b'{"a": 1, "a": 2}', "json", "x.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tinyprune.errors.OutputError: x.json is not valid JSON: the key(s) 'a' appear more than once in one ...
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as failure:
        raise error(f"{where} is not UTF-8 text ({failure.reason} at byte {failure.start})") from None
    depth = _nesting_depth(text, "#" if kind == "toml" else None)
    if depth > MAX_CONFIG_DEPTH:
        raise error(f"{where}: nested {depth} deep; a {kind.upper()} file here nests at most "
                    f"{MAX_CONFIG_DEPTH} deep")
    try:
        if kind == "json":
            return json.loads(text, object_pairs_hook=_no_repeated_keys)
        return tomllib.loads(text)
    except (ValueError, RecursionError) as failure:
        message = shown(str(failure), SHOWN_CHARACTERS).strip("'\"")
        raise error(f"{where} is not valid {kind.upper()}: {message}") from None


def read_config(path: PathLike, what: str, error: type[Exception] = OutputError) -> object:
    """A ``.json`` or ``.toml`` file read safely (``read_regular`` with ``MAX_CONFIG_BYTES``) and parsed
    (``parse_config``): a FIFO, a device, an endless or deeply nested file is refused, never waited on."""
    kind = Path(path).suffix.lower().lstrip(".")
    if kind not in ("json", "toml"):
        raise error(f"{path}: a {what} is a .toml or .json file")
    return parse_config(read_regular(path, MAX_CONFIG_BYTES, what, error), kind, str(path), error)


__all__ = ["MAX_CONFIG_BYTES", "MAX_CONFIG_DEPTH", "TEMPORARY_SUFFIX", "RunKeptError", "Stage",
           "atomic_write", "check_folder", "check_publishable", "check_stem", "check_target",
           "check_writable", "fsync_folder", "open_regular", "parse_config", "read_bounded", "read_config",
           "read_regular", "remove_stale_staged_folders", "remove_stale_temporaries", "shown",
           "staged_folder", "staged_unique_folder", "unique_folder"]
