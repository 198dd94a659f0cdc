"""A run whose folder cannot be published: refused before training, and a finished run is never thrown away.

An existing empty ``--out`` may still refuse the final rename of the finished run onto it: a mount point
(``EBUSY``), an immutable folder (``chattr +i``: ``EPERM``), a read-only mount (``EROFS``).
``files.check_publishable`` tries that same rename on an empty stand-in before any work; and should
the rename still fail at the end (the folder changed meanwhile), the finished run is moved beside the
target (``<out>.unpublished``) and the error says where.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess

import pytest

from tinyprune import cli, files
from tinyprune.errors import OutputError
from tinyprune.files import RunKeptError, atomic_write, check_publishable, staged_folder


def refuse_renames_onto(monkeypatch, target, code=errno.EBUSY):
    """``os.rename(x, target)`` fails as it does onto a mount point; every other rename works."""
    real = os.rename

    def rename(source, destination):
        if os.fspath(destination) == os.fspath(target):
            raise OSError(code, os.strerror(code), os.fspath(source), None, os.fspath(destination))
        return real(source, destination)
    monkeypatch.setattr(os, "rename", rename)


def test_an_empty_folder_that_cannot_be_renamed_onto_is_refused_before_any_work(tmp_path, monkeypatch):
    target = tmp_path / "mnt"
    target.mkdir()
    refuse_renames_onto(monkeypatch, target)
    with pytest.raises(OutputError, match="cannot publish a run at .*mnt: Device or resource busy"):
        check_publishable(target)
    assert sorted(os.listdir(tmp_path)) == ["mnt"]                  # the stand-in is gone


def test_the_probe_leaves_a_publishable_empty_folder_as_it_was(tmp_path):
    target = tmp_path / "out"
    target.mkdir(mode=0o750)
    os.chmod(target, 0o750)
    assert check_publishable(target) == target
    assert target.is_dir() and os.listdir(target) == [] and (os.stat(target).st_mode & 0o777) == 0o750
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_an_overwrite_of_an_earlier_run_is_probed_and_the_earlier_run_stays(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "report.json").write_text("earlier")
    assert check_publishable(target, overwrite=True) == target
    assert (target / "report.json").read_text() == "earlier" and sorted(os.listdir(tmp_path)) == ["out"]


def test_a_finished_run_whose_rename_fails_is_kept_beside_and_the_error_says_where(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    kept_message = "Device or resource busy.*kept, whole, in .*out.unpublished"
    with pytest.raises(RunKeptError, match=kept_message) as caught:
        with staged_folder(target) as stage:
            atomic_write(stage / "report.json", "finished")
            refuse_renames_onto(monkeypatch, target)               # became a mount point meanwhile
    assert caught.value.kept == tmp_path / "out.unpublished"
    assert (caught.value.kept / "report.json").read_text() == "finished"
    monkeypatch.undo()
    files.remove_stale_temporaries(target)                          # a later run's cleanup keeps it too
    assert (caught.value.kept / "report.json").is_file()


def immutable_folder(path):
    """An empty folder with the immutable attribute, or skip where chattr is not allowed."""
    path.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root on a file system that supports it)")
    return path


def test_cli_run_into_an_immutable_empty_folder_is_refused_before_training(tmp_path, capsys):
    target = immutable_folder(tmp_path / "frozen")
    try:
        code = cli.main(["run", "--out", str(target), "--dense-epochs", "1", "--budget-epochs", "1",
                         "--no-figures", "--no-progress"])
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    captured = capsys.readouterr()
    assert code == 2 and "cannot publish a run at" in captured.err
    assert "Operation not permitted" in captured.err
    assert "training" not in captured.out                           # refused before the first epoch
    assert sorted(os.listdir(tmp_path)) == ["frozen"] and os.listdir(target) == []
