"""Fault tests of tinyprune.files: outputs are whole or absent, whatever happens while they are written.

kill -9 in the middle of a write, a full disk (simulated, and a real 64 KiB tmpfs when the tests run as
root), an exception or Ctrl-C inside a run, two runs with the same name, and targets that must never be
replaced (symlinks, devices, FIFOs, sockets, folders).
"""

import ast
import errno
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tinyprune import files
from tinyprune.errors import OutputError
from tinyprune.files import (
    TEMPORARY_SUFFIX,
    atomic_write,
    remove_stale_temporaries,
    staged_folder,
    staged_unique_folder,
)

REPO = Path(__file__).resolve().parents[1]


def temporaries(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(TEMPORARY_SUFFIX))


def listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def dead_pid():
    """The id of a process that has exited (and been reaped): no process runs under it now."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def temporary_name(target_name, pid, token="0badcafe"):
    return f".{target_name}.{pid}.{token}{TEMPORARY_SUFFIX}"


# ---------------------------------------------------------------- what may be replaced


def special_targets(tmp_path):
    """Things at an output path that atomic_write must refuse, never replace: name -> (path, kind)."""
    regular = tmp_path / "regular"
    regular.write_text("keep")
    made = {"symlink": tmp_path / "link", "folder": tmp_path / "folder", "fifo": tmp_path / "fifo",
            "socket": tmp_path / "socket"}
    made["symlink"].symlink_to(regular)
    made["folder"].mkdir()
    os.mkfifo(made["fifo"])
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(made["socket"]))
    if os.geteuid() == 0:
        made["device"] = tmp_path / "null"
        os.mknod(made["device"], stat.S_IFCHR | 0o600, os.makedev(1, 3))   # a /dev/null of our own
    return made, server


@pytest.mark.parametrize("kind", ["symlink", "folder", "fifo", "socket", "device"])
def test_targets_that_are_not_regular_files_are_refused(tmp_path, kind):
    made, server = special_targets(tmp_path)
    try:
        if kind not in made:
            pytest.skip("making a device node needs root")
        before = os.lstat(made[kind])
        words = {"symlink": "symbolic link", "fifo": "FIFO"}.get(kind, kind)
        with pytest.raises(OutputError, match=f"exists and is a {words}, not a regular file"):
            atomic_write(made[kind], b"new")
        after = os.lstat(made[kind])
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)   # the same thing, untouched
        assert (tmp_path / "regular").read_text() == "keep"                        # a link's target too
        assert temporaries(tmp_path) == []
    finally:
        server.close()


@pytest.mark.parametrize("path, message", [("", "an output path is needed"),
                                           ("missing/out.bin", "the folder .*missing does not exist")])
def test_bad_paths_are_refused(tmp_path, path, message):
    with pytest.raises(OutputError, match=message):
        atomic_write(tmp_path / path if path else path, b"x")


@pytest.mark.parametrize("content", [{"a": 1}, 3, None, [b"x"]], ids=["dict", "int", "None", "list"])
def test_content_that_cannot_be_written_is_refused(tmp_path, content):
    with pytest.raises(OutputError, match="expected bytes, text, or a function"):
        atomic_write(tmp_path / "out", content)
    assert listing(tmp_path) == []


def test_contents_of_every_accepted_kind(tmp_path):
    target = tmp_path / "out"
    for content, expected in ((b"ab", b"ab"), ("é", "é".encode()), (bytearray(b"cd"), b"cd"),
                              (memoryview(b"ef"), b"ef"), (lambda f: f.write(b"gh"), b"gh")):
        assert atomic_write(target, content).read_bytes() == expected
    assert listing(tmp_path) == ["out"]


def test_overwrite_semantics(tmp_path):
    target = tmp_path / "out"
    atomic_write(target, b"first", overwrite=False)                 # absent: written
    with pytest.raises(OutputError, match="already exists: refusing to replace it"):
        atomic_write(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    atomic_write(target, b"third")                                  # overwrite=True (the default) replaces
    assert target.read_bytes() == b"third" and listing(tmp_path) == ["out"]


def test_no_overwrite_when_the_target_appears_during_the_write(tmp_path):
    target = tmp_path / "out"

    def racing_writer(file):
        target.write_bytes(b"another writer's")                      # lands while we write
        file.write(b"ours")

    with pytest.raises(OutputError, match="already exists"):
        atomic_write(target, racing_writer, overwrite=False)
    assert target.read_bytes() == b"another writer's" and temporaries(tmp_path) == []


def test_no_overwrite_without_hard_links(tmp_path, monkeypatch):
    """On FAT and some network file systems os.link fails with EPERM: the write must still work."""
    def no_hard_links(source, destination):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    target = tmp_path / "out"
    assert atomic_write(target, b"first", overwrite=False).read_bytes() == b"first"
    with pytest.raises(OutputError, match="already exists"):
        atomic_write(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first" and listing(tmp_path) == ["out"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "out", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# ---------------------------------------------------------------- faults in the middle of a write


def test_kill_9_during_a_write_keeps_the_old_file_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    child_code = textwrap.dedent(f"""
        import sys, time
        from tinyprune.files import atomic_write
        def slow(file):
            file.write(b"x" * 1_000_000)
            file.flush()
            print("writing", flush=True)
            time.sleep(60)
        atomic_write({str(target)!r}, slow)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", child_code], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout.readline() == b"writing\n"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        child.kill()
        child.stdout.close()
    assert target.read_bytes() == b"old"
    [left] = temporaries(tmp_path)                                  # the dead writer's, under its pid
    pattern = re.escape(f".model.npz.{child.pid}.") + "[0-9a-f]{8}" + re.escape(TEMPORARY_SUFFIX)
    assert re.fullmatch(pattern, left)
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and temporaries(tmp_path) == []


def test_stale_temporaries_of_dead_writers_go_and_live_ones_stay(tmp_path):
    target = tmp_path / "a"
    dead, live = dead_pid(), os.getppid()
    stale = tmp_path / temporary_name("a", dead)
    concurrent = tmp_path / temporary_name("a", live)
    other_target = tmp_path / temporary_name(f"a.{dead}", live)    # of the target "a.<dead>", written by live
    not_ours = tmp_path / f".a.{dead}.notatoken{TEMPORARY_SUFFIX}"
    stale_folder = tmp_path / temporary_name("a", dead, "0000abcd")
    for path in (stale, concurrent, other_target, not_ours):
        path.write_bytes(b"")
    stale_folder.mkdir()
    (stale_folder / "report.json").write_text("{}")
    assert sorted(remove_stale_temporaries(target)) == sorted([stale, stale_folder])
    assert listing(tmp_path) == sorted(p.name for p in (concurrent, other_target, not_ours))


def test_names_with_pattern_characters(tmp_path):
    target = tmp_path / "run[1]*"
    stale = tmp_path / temporary_name(target.name, dead_pid())
    stale.write_bytes(b"")
    atomic_write(target, b"x")
    assert listing(tmp_path) == [target.name]


def test_exception_in_the_middle_of_a_write(tmp_path):
    target = tmp_path / "out"
    target.write_bytes(b"old")

    def half_then_disk_full(file):
        file.write(b"half of it")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as info:
        atomic_write(target, half_then_disk_full)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)  # it names the file
    assert str(target) in str(info.value) and "No space left on device" in str(info.value)
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["out"]


@pytest.mark.parametrize("fault", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
                         ids=["ENOSPC at fsync", "Ctrl-C at fsync"])
def test_fault_at_fsync(tmp_path, monkeypatch, fault):
    target = tmp_path / "out"
    target.write_bytes(b"old")

    def failing_fsync(descriptor):
        raise fault

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(type(fault)) as info:
        atomic_write(target, b"new" * 1000)
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["out"]
    if isinstance(fault, OSError):
        assert info.value.filename == str(target)


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 64 KiB tmpfs (root only; skipped where it cannot be mounted)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                          capture_output=True, timeout=10)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True, timeout=10)


def test_real_full_disk_keeps_the_old_file_and_leaves_no_temporary(tiny_filesystem):
    target = tiny_filesystem / "report.json"
    atomic_write(target, b"{}" * 1000)
    with pytest.raises(OSError) as info:
        atomic_write(target, b"x" * 200_000)                        # three times what the disk holds
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_bytes() == b"{}" * 1000 and listing(tiny_filesystem) == ["report.json"]
    atomic_write(target, b"fits")                                   # the space was given back
    assert target.read_bytes() == b"fits"


# ---------------------------------------------------------------- run folders: complete or absent


def test_staged_folder_complete_on_success(tmp_path):
    with staged_folder(tmp_path / "runs" / "a") as stage:
        atomic_write(stage / "report.json", "{}")
        assert not (tmp_path / "runs" / "a").exists()                # nothing visible until complete
    assert listing(tmp_path / "runs" / "a") == ["report.json"]
    assert listing(tmp_path / "runs") == ["a"]


@pytest.mark.parametrize("fault", [RuntimeError("training diverged"), KeyboardInterrupt()],
                         ids=["exception", "Ctrl-C"])
def test_staged_folder_absent_after_a_failure(tmp_path, fault):
    with pytest.raises(type(fault)):
        with staged_folder(tmp_path / "runs" / "deep" / "a") as stage:
            atomic_write(stage / "dense.npz", b"weights")
            raise fault
    assert listing(tmp_path) == []                                  # no run, no stage, no parents it made


def test_staged_folder_keeps_parents_that_existed(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(tmp_path / "runs" / "a"):
            raise KeyboardInterrupt
    assert listing(tmp_path) == ["runs"] and listing(tmp_path / "runs") == []


def test_staged_folder_never_replaces_an_earlier_run_unless_asked(tmp_path):
    target = tmp_path / "run"
    with staged_folder(target) as stage:
        atomic_write(stage / "report.json", "old")
        atomic_write(stage / "extra.png", b"png")
    with pytest.raises(OutputError, match="already holds files"):
        with staged_folder(target):
            pytest.fail("the block must not run: the folder is checked before any work")
    with staged_folder(target, overwrite=True) as stage:
        atomic_write(stage / "report.json", "new")
    assert listing(target) == ["report.json"] and (target / "report.json").read_text() == "new"
    assert listing(tmp_path) == ["run"]


def test_staged_folder_into_an_empty_folder(tmp_path):
    (tmp_path / "run").mkdir()
    with staged_folder(tmp_path / "run") as stage:
        atomic_write(stage / "report.json", "{}")
    assert listing(tmp_path / "run") == ["report.json"]


def test_a_run_that_lands_meanwhile_is_not_mixed_and_ours_is_kept_beside(tmp_path):
    target = tmp_path / "run"
    with pytest.raises(files.RunKeptError, match="the run is kept, whole, in .*run.unpublished") as caught:
        with staged_folder(target) as stage:
            atomic_write(stage / "report.json", "mine")
            target.mkdir()
            (target / "report.json").write_text("theirs")           # a concurrent run finished first
    assert listing(target) == ["report.json"] and (target / "report.json").read_text() == "theirs"
    assert caught.value.kept == tmp_path / "run.unpublished"
    assert (caught.value.kept / "report.json").read_text() == "mine"
    assert listing(tmp_path) == ["run", "run.unpublished"]


@pytest.mark.parametrize("existing", ["file", "symlink"])
def test_a_run_folder_path_that_is_not_a_folder_is_refused(tmp_path, existing):
    target = tmp_path / "run"
    if existing == "file":
        target.write_text("x")
    else:
        target.symlink_to(tmp_path)
    with pytest.raises(OutputError, match="not a folder"):
        with staged_folder(target, overwrite=True):
            pass


def test_two_runs_with_the_same_stem_get_two_folders(tmp_path):
    with staged_unique_folder(tmp_path, "2026-11-28T20-00-00") as first:
        with staged_unique_folder(tmp_path, "2026-11-28T20-00-00") as second:   # started in the same second
            atomic_write(second.folder / "report.json", "second")
        atomic_write(first.folder / "report.json", "first")
    assert second.path.name == "2026-11-28T20-00-00" and first.path.name == "2026-11-28T20-00-00-2"
    assert (first.path / "report.json").read_text() == "first"
    assert (second.path / "report.json").read_text() == "second"
    assert listing(tmp_path) == ["2026-11-28T20-00-00", "2026-11-28T20-00-00-2"]


def test_a_name_taken_at_the_last_moment_moves_on(tmp_path, monkeypatch):
    real = files.unique_folder

    def taken_just_before_the_rename(parent, stem):
        candidate = real(parent, stem)
        if not candidate.exists():
            candidate.mkdir()
            (candidate / "report.json").write_text("theirs")          # a concurrent run lands first
        return candidate if candidate.name == stem else real(parent, stem)

    monkeypatch.setattr(files, "unique_folder", taken_just_before_the_rename)
    with staged_unique_folder(tmp_path, "run") as stage:
        atomic_write(stage.folder / "report.json", "mine")
    assert stage.path.name != "run" and (stage.path / "report.json").read_text() == "mine"
    assert (tmp_path / "run" / "report.json").read_text() == "theirs"


def test_unique_folder_other_rename_failures_are_reported_and_the_run_is_kept(tmp_path, monkeypatch):
    def refused(source, destination):
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(OutputError, match=r"cannot move the finished run onto .*run \(Permission denied\); "
                                          "the run is kept") as caught:
        with staged_unique_folder(tmp_path / "runs", "run") as stage:
            atomic_write(stage.folder / "report.json", "{}")
            monkeypatch.setattr(os, "rename", refused)
    monkeypatch.undo()
    assert caught.value.kept == stage.folder and listing(stage.folder) == ["report.json"]


def test_staged_unique_folder_absent_after_a_failure(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with staged_unique_folder(tmp_path / "runs", "run") as stage:
            atomic_write(stage.folder / "dense.npz", b"w")
            raise KeyboardInterrupt
    assert stage.path is None and listing(tmp_path) == []


@pytest.mark.parametrize("stem", ["", ".", "..", "a/b"])
def test_bad_stems_are_refused(tmp_path, stem):
    with pytest.raises(OutputError, match="one plain folder name"):
        with staged_unique_folder(tmp_path, stem):
            pass
    assert listing(tmp_path) == []


# ---------------------------------------------------------------- no pickle anywhere


PICKLERS = ("pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal")


def pickle_offences(node):
    """What is wrong with one syntax node: an import of a pickler, or np.load without allow_pickle=False."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
        if any(name.split(".")[0] in PICKLERS for name in names):
            return ["imports a pickler"]
    function = node.func if isinstance(node, ast.Call) else None
    is_np_load = (isinstance(function, ast.Attribute) and function.attr == "load"
                  and isinstance(function.value, ast.Name) and function.value.id in ("np", "numpy"))
    if is_np_load:
        flag = {keyword.arg: keyword.value for keyword in node.keywords}.get("allow_pickle")
        if not (isinstance(flag, ast.Constant) and flag.value is False):
            return ["calls np.load without allow_pickle=False"]
    return []


def test_no_module_unpickles():
    """No module imports pickle (or its cousins), and every np.load says allow_pickle=False."""
    offences = [f"{path.relative_to(REPO)}:{node.lineno} {offence}"
                for path in sorted((REPO / "tinyprune").rglob("*.py"))
                for node in ast.walk(ast.parse(path.read_text(), str(path)))
                for offence in pickle_offences(node)]
    assert offences == []
    assert pickle_offences(ast.parse("import pickle").body[0]) == ["imports a pickler"]     # the check bites
    assert pickle_offences(ast.parse("np.load(f)").body[0].value) != []


def test_every_test_the_readme_cites_exists():
    """The README's "What tinyprune promises" names the tests behind each promise: they must exist."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## What tinyprune promises", 1)[1].split("\n## ", 1)[0]
    cited_files = set(re.findall(r"tests/(test_\w+\.py)", section))
    cited_tests = set(re.findall(r"\b(test_\w+)\b(?!\.py)", section))
    assert cited_files and cited_tests
    assert {name for name in cited_files if not (REPO / "tests" / name).is_file()} == set()
    defined = {match for path in (REPO / "tests").glob("test_*.py")
               for match in re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE)}
    assert cited_tests - defined == set()
