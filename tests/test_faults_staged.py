"""What ``kill -9`` of a run leaves, the next run removes: dead writers' staged folders, whatever their name.

A run with the default ``--out`` stages into ``runs/.<time>.<pid>.<token>.tinyprune-tmp/``; the next run has
another time in its name, so a clean-up by name alone never finds it. The writer really dies (SIGKILL: no
``finally``, no clean-up).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from tinyprune.files import TEMPORARY_SUFFIX, atomic_write, staged_folder, staged_unique_folder

KILLED_MID_RUN = textwrap.dedent("""
    import sys, time
    from tinyprune.files import atomic_write, staged_unique_folder

    with staged_unique_folder(sys.argv[1], "20260101-000000") as stage:
        atomic_write(stage.folder / "dense.npz", b"half a run")
        print("staged", flush=True)
        time.sleep(60)
""")


def killed_writer_leaves_a_staged_folder(runs):
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_RUN, str(runs)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "staged"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    left = [name for name in os.listdir(runs) if name.endswith(TEMPORARY_SUFFIX)]
    assert len(left) == 1 and (runs / left[0] / "dense.npz").is_file()
    return left[0]


def test_the_next_run_with_another_default_name_removes_a_killed_runs_staged_folder(tmp_path):
    runs = tmp_path / "runs"
    killed_writer_leaves_a_staged_folder(runs)
    with staged_unique_folder(runs, time.strftime("%Y%m%d-%H%M%S")) as stage:
        atomic_write(stage.folder / "report.json", "{}")
    assert os.listdir(runs) == [stage.path.name]


def test_a_run_into_a_named_folder_cleans_its_parent_too(tmp_path):
    runs = tmp_path / "runs"
    killed_writer_leaves_a_staged_folder(runs)
    with staged_folder(runs / "mine") as stage:
        atomic_write(stage / "report.json", "{}")
    assert os.listdir(runs) == ["mine"]


def test_a_live_writers_staged_folder_and_other_hidden_folders_stay(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    live = runs / f".20260101-000000.{os.getppid()}.0123abcd{TEMPORARY_SUFFIX}"     # a running process's
    live.mkdir()
    (runs / ".git").mkdir()
    (runs / f".x.99999999.zzzzzzzz{TEMPORARY_SUFFIX}").mkdir()                        # not our pattern
    with staged_unique_folder(runs, "later") as stage:
        atomic_write(stage.folder / "report.json", "{}")
    assert sorted(os.listdir(runs)) == sorted([live.name, ".git", f".x.99999999.zzzzzzzz{TEMPORARY_SUFFIX}",
                                               "later"])
