"""``tinyprune train``: where the checkpoint goes is checked before the first epoch, and ``--resume`` refuses
flags that contradict the checkpoint instead of ignoring them.

Each case would otherwise cost a whole training (and lose it), or train something other than what was asked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tinyprune import cli

QUICK = ["--epochs", "1", "--hidden", "8", "--no-progress"]


def train(argv, capsys):
    code = cli.main(["train", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", ["empty", "missing folder", "a folder", "inside a file"])
def test_a_bad_out_is_refused_before_the_first_epoch(tmp_path, capsys, case):
    (tmp_path / "file").write_text("x")
    out = {"empty": "", "missing folder": str(tmp_path / "absent" / "m.npz"), "a folder": str(tmp_path),
           "inside a file": str(tmp_path / "file" / "m.npz")}[case]
    code, stdout, stderr = train(["--out", out, *QUICK], capsys)
    assert code == 2 and stderr.startswith("tinyprune") and " error: " in stderr and stderr.count("\n") == 1
    assert "training" not in stdout                                  # refused before any work


def test_an_immutable_folder_is_refused_before_the_first_epoch(tmp_path, capsys):
    folder = tmp_path / "frozen"
    folder.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        code, stdout, stderr = train(["--out", str(folder / "m.npz"), *QUICK], capsys)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert code == 2 and "Operation not permitted" in stderr and "training" not in stdout
    assert os.listdir(folder) == []


def test_a_good_out_is_still_written(tmp_path, capsys):
    code, stdout, _ = train(["--out", str(tmp_path / "m.npz"), *QUICK], capsys)
    assert code == 0 and (tmp_path / "m.npz").is_file() and sorted(os.listdir(tmp_path)) == ["m.npz"]


@pytest.fixture(scope="module")
def adam_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "m.npz"
    assert cli.main(["train", "--out", str(path), *QUICK]) == 0
    return path


@pytest.mark.parametrize("flags, says", [
    (["--hidden", "16"], ("--hidden [16]: the checkpoint ", " fixes it at [8]")),
    (["--optimizer", "sgd"], ("--optimizer sgd: the checkpoint ", " fixes it at adam")),
    (["--momentum", "0.9"], ("--momentum 0.9: the checkpoint ", " fixes it at 0.0")),
])
def test_resume_refuses_flags_that_contradict_the_checkpoint(adam_checkpoint, tmp_path, capsys, flags, says):
    code, stdout, stderr = train(["--resume", str(adam_checkpoint), "--epochs", "1", "--no-progress",
                                  "--out", str(tmp_path / "more.npz"), *flags], capsys)
    assert code == 2 and "training" not in stdout
    assert re.search(".*".join(map(re.escape, says)), stderr), stderr
    assert not (tmp_path / "more.npz").exists()


def test_resume_accepts_flags_that_agree_with_the_checkpoint(adam_checkpoint, tmp_path, capsys):
    agreeing = ["--hidden", "8", "--optimizer", "adam", "--out", str(tmp_path / "more.npz")]
    code, _, stderr = train(["--resume", str(adam_checkpoint), "--epochs", "1", "--no-progress", *agreeing],
                            capsys)
    assert code == 0, stderr


def test_a_diverging_training_is_one_clean_line_without_a_numpy_warning(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinyprune", "train", "--optimizer", "sgd", "--lr", "1e30",
                             "--epochs", "2", "--no-progress"], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 2
    assert result.stderr.startswith("tinyprune") and " error: " in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "RuntimeWarning" not in result.stderr


@pytest.fixture()
def corrupt_optimizer_state(tmp_path):
    """A checkpoint whose Adam state holds ``steps = -5`` (Adam then takes the log of a negative number)."""
    from tinyprune import checkpoint
    from tinyprune.core.nn import MLP
    from tinyprune.fast.optim import Adam

    model = MLP([784, 8, 10], seed=0)
    optimizer = Adam(model.parameters())
    path = checkpoint.save(tmp_path / "m.npz", model, optimizer, meta={"epochs": 1, "hidden": [8]})
    stored = checkpoint.load(path)
    stored.optimizer_state["steps"] = np.array(-5)
    return path, stored


def test_a_corrupt_optimizer_state_names_the_file_and_the_entry(corrupt_optimizer_state):
    from tinyprune import checkpoint
    from tinyprune.errors import CheckpointError

    path, stored = corrupt_optimizer_state
    says = f"{re.escape(str(path))}: the optimizer state optim/steps must be a non-negative integer, got -5"
    with pytest.raises(CheckpointError, match=says):
        checkpoint.restore_optimizer(stored)
