"""Faults during a checkpoint save: a writer killed with SIGKILL mid-save, a full disk.

The child process really dies mid-write (``kill -9``: no ``finally``, no cleanup); what it leaves is
what a crash leaves. The earlier checkpoint must be intact, and the next save to the same target must
remove the dead writer's temporary (``files.remove_stale_temporaries``).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinyprune.checkpoint import load, save
from tinyprune.core.nn import MLP
from tinyprune.files import TEMPORARY_SUFFIX

CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from tinyprune.checkpoint import save
    from tinyprune.core.nn import MLP

    def stalled_savez_compressed(file, **arrays):    # writes part of an archive, then hangs mid-write
        file.write(b"PK\\x03\\x04" + b"\\x00" * 4096)
        file.flush()
        print("writing", flush=True)
        time.sleep(60)

    np.savez_compressed = stalled_savez_compressed
    save(sys.argv[1], MLP([784, 64, 64, 10], seed=1), meta={"who": "killed"})
""")


def temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(TEMPORARY_SUFFIX))


def test_kill_9_during_a_save_keeps_the_old_file_and_the_next_save_cleans_up(tmp_path):
    target = tmp_path / "model.npz"
    save(target, MLP([784, 64, 64, 10], seed=0), meta={"who": "first"})
    before = target.read_bytes()

    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    try:
        assert child.stdout.readline().strip() == "writing"      # the child is inside the write now
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()

    left = temporaries(tmp_path)
    assert len(left) == 1 and left[0].startswith(".model.npz.") and f".{child.pid}." in left[0]
    assert target.read_bytes() == before and load(target).meta == {"who": "first"}

    save(target, MLP([784, 64, 64, 10], seed=2), meta={"who": "next"})
    assert temporaries(tmp_path) == []                           # the dead writer's temporary is gone
    assert load(target).meta == {"who": "next"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    target = tmp_path / "model.npz"
    ours = tmp_path / f".model.npz.{os.getppid()}.abcd1234{TEMPORARY_SUFFIX}"   # a running process's
    ours.write_bytes(b"in progress")
    save(target, MLP([3, 2], seed=0))
    assert ours.exists()


def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "model.npz"
    save(target, MLP([3, 2], seed=0), meta={"who": "first"})
    before = target.read_bytes()

    def full_disk(file, **arrays):
        file.write(b"PK\x03\x04")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save(target, MLP([3, 2], seed=1), meta={"who": "second"})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
