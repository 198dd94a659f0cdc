"""The command line: train then evaluate on the embedded digits, resume, --help, bad input -> exit 2."""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinyprune import checkpoint
from tinyprune.cli import COMMANDS, build_parser, main

FAST = ["--hidden", "16", "--epochs", "1", "--no-progress"]


def test_train_then_evaluate_on_the_embedded_data(tmp_path, capsys):
    out = tmp_path / "dense.npz"
    assert main(["train", "--dataset", "mnist-5k", "--epochs", "1", "--batch-size", "128", "--lr", "1e-3",
                 "--seed", "0", "--engine", "backprop", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "epoch 1/1  loss" in text                      # per-epoch line (stdout is not a terminal)
    assert "test accuracy 0." in text and f"saved {out}" in text
    restored = checkpoint.load(out)
    assert restored.model.sizes == [784, 64, 64, 10]
    meta = restored.meta
    assert (meta["dataset"], meta["epochs"], meta["seed"], meta["engine"]) == ("mnist-5k", 1, 0, "backprop")
    assert 0.5 < meta["test_accuracy"] <= 1.0 and len(meta["history"]["loss"]) == 1
    assert restored.optimizer_class == "Adam"

    assert main(["evaluate", str(out), "--dataset", "mnist-5k"]) == 0
    text = capsys.readouterr().out
    assert f"accuracy {meta['test_accuracy']:.4f}" in text and "loss" in text
    assert "layers.0  784 x 64" in text and "compression" in text

    assert main(["evaluate", str(out), "--json", "--split", "train"]) == 0     # dataset from the meta
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "mnist-5k" and report["split"] == "train"
    assert report["summary"]["total"]["params"] == 55_050


def test_resume_continues_exactly(tmp_path, capsys):
    one_go, first, second = (tmp_path / name for name in ("two.npz", "first.npz", "second.npz"))
    assert main(["train", *FAST, "--epochs", "2", "--out", str(one_go)]) == 0
    assert main(["train", *FAST, "--out", str(first)]) == 0
    assert main(["train", "--resume", str(first), "--epochs", "1", "--no-progress",
                 "--out", str(second)]) == 0
    capsys.readouterr()
    a, b = checkpoint.load(one_go), checkpoint.load(second)
    for (name, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert np.array_equal(p.data, q.data), name
    assert b.meta["epochs"] == 2 and b.meta["history"]["epoch"] == [1, 2]
    assert b.meta["history"]["loss"] == a.meta["history"]["loss"]


def test_other_options(tmp_path, capsys):
    out = tmp_path / "sgd.npz"
    assert main(["train", *FAST, "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05",
                 "--engine", "autograd", "--loss", "squared_error", "--out", str(out)]) == 0
    restored = checkpoint.load(out)
    assert restored.optimizer_class == "SGD" and restored.optimizer_options["momentum"] == 0.9
    assert restored.meta["loss"] == "squared_error" and restored.model.sizes == [784, 16, 10]
    capsys.readouterr()
    assert main(["train", "--hidden", "", "--epochs", "1", "--no-progress"]) == 0   # no hidden layer, no save
    assert "saved" not in capsys.readouterr().out


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"]])
def test_help_on_every_command(command, capsys):
    assert main([*command, "--help"]) == 0
    assert f"usage: tinyprune {' '.join(command)}".strip() in capsys.readouterr().out


def test_every_registered_command_has_help(capsys):
    parser = build_parser()
    names = [action for action in parser._subparsers._group_actions][0].choices   # noqa: SLF001
    assert set(names) == {"train", "evaluate", "run", "sweep", "recipes", "export", "import"}
    assert len(COMMANDS) == len(names)
    for name in names:
        assert main([name, "--help"]) == 0
        assert f"usage: tinyprune {name}" in capsys.readouterr().out


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tinyprune") and "error" in err[0]
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--epochs", "0", "--no-progress"], "epochs must be an integer >= 1"),
    (["train", "--batch-size", "0", *FAST], "batch_size"),
    (["train", "--epochs", "many"], "invalid int value"),
    (["train", "--dataset", "cifar"], "invalid choice"),
    (["train", "--hidden", "64,x"], "comma-separated"),
    (["train", "--lr", "-1", *FAST], "lr must be"),
    (["train", "--engine", "jax"], "invalid choice"),
    (["evaluate"], "required: CHECKPOINT"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    assert message in one_error_line(capsys)


def test_broken_or_missing_checkpoint_exits_2(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    assert "no such checkpoint file" in one_error_line(capsys)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    assert main(["evaluate", str(text)]) == 2
    assert "not an .npz archive" in one_error_line(capsys)
    assert main(["train", "--resume", str(text), "--epochs", "1"]) == 2
    one_error_line(capsys)


def test_missing_dataset_without_download_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TINYPRUNE_DATA", str(tmp_path))
    assert main(["train", "--dataset", "mnist", "--data-root", str(tmp_path), "--no-download",
                 "--epochs", "1"]) == 2
    assert "not found" in one_error_line(capsys)


def test_evaluate_with_a_dataset_that_does_not_fit(tmp_path, capsys):
    out = tmp_path / "small.npz"
    checkpoint.save(out, __import__("tinyprune.core.nn", fromlist=["MLP"]).MLP([5, 3], seed=0))
    assert main(["evaluate", str(out), "--dataset", "mnist-5k"]) == 2
    assert "features per row but the model expects 5" in one_error_line(capsys)


def test_no_command_exits_2(capsys):
    assert main([]) == 2
    assert "choose a command" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="no such checkpoint"):
        main(["--debug", "evaluate", str(tmp_path / "missing.npz")])


def test_python_dash_m_tinyprune(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    done = subprocess.run([sys.executable, "-m", "tinyprune", "evaluate", str(tmp_path / "none.npz")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("tinyprune evaluate: error:") and not done.stdout
    done = subprocess.run([sys.executable, "-m", "tinyprune", "--help"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0 and "usage: tinyprune" in done.stdout


def test_a_full_disk_is_a_clear_error_naming_the_file(tmp_path, monkeypatch, capsys):
    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    out = tmp_path / "model.npz"
    assert main(["train", *FAST, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyprune train: error: [Errno 28] No space left on device") and str(out) in err
    assert list(tmp_path.iterdir()) == []            # and nothing half-written is left
