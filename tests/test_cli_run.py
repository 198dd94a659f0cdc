"""`tinyprune run` and `tinyprune sweep` end to end on a tiny configuration of the embedded digits."""

import json

import pytest

from tinyprune import checkpoint, cli

REPORT_FIELDS = ("dense_accuracy", "pruned_accuracy", "final_accuracy", "sparsity", "layer_sparsity",
                 "epochs_used", "seconds", "rounds", "accuracy_per_epoch", "config", "files")


def test_run_end_to_end_writes_report_checkpoints_and_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    code = cli.main(["run", "--dense-epochs", "1", "--budget-epochs", "2", "--sparsity", "0.8",
                     "--schedule", "one-shot", "--recovery", "reconstruct+finetune", "--out", str(out),
                     "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "dense" in printed and "recovered" in printed and "layers.0.W sparsity" in printed
    report = json.loads((out / "report.json").read_text())
    for key in REPORT_FIELDS:
        assert key in report, key
    assert report["sparsity"] == pytest.approx(0.8, abs=0.005)
    assert 1 <= report["epochs_used"] <= 2 and report["config"]["recovery"] == "reconstruct+finetune"
    pruned = checkpoint.load(out / "pruned.npz").model
    assert all(layer.W.mask is not None for layer in pruned.layers)
    assert checkpoint.load(out / "dense.npz").model.layers[0].W.mask is None
    for name in report["files"]:
        assert (out / name).stat().st_size > 0, name
    assert sum(name.endswith(".png") for name in report["files"]) == 5


def test_run_from_a_dense_checkpoint_with_the_default_recipe(tmp_path):
    first = tmp_path / "first"
    assert cli.main(["run", "--dense-epochs", "1", "--budget-epochs", "1", "--sparsity", "0.5",
                     "--schedule", "one-shot", "--recovery", "none", "--out", str(first), "--no-figures",
                     "--no-progress"]) == 0
    second = tmp_path / "second"
    assert cli.main(["run", "--dense", str(first / "dense.npz"), "--budget-epochs", "1", "--sparsity", "0.7",
                     "--out", str(second), "--no-figures", "--no-progress"]) == 0
    report = json.loads((second / "report.json").read_text())
    assert report["config"]["schedule"] == "gradual" and report["sparsity"] == pytest.approx(0.7, abs=0.005)
    assert report["dense_checkpoint"].endswith("dense.npz") and not (second / "dense.npz").exists()


def test_run_refuses_bad_input_with_exit_code_2(tmp_path, capsys):
    assert cli.main(["run", "--budget-epochs", "0", "--out", str(tmp_path)]) == 2
    assert cli.main(["run", "--recovery", "magic"]) == 2
    assert cli.main(["run", "--dense", str(tmp_path / "missing.npz"), "--out", str(tmp_path)]) == 2
    assert "error" in capsys.readouterr().err


def test_sweep_prints_the_table_and_draws_the_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "sweep"
    code = cli.main(["sweep", "--dense-epochs", "1", "--criteria", "magnitude", "--sparsities", "0.5,0.9",
                     "--recoveries", "none,reconstruct", "--seeds", "0,1", "--budget-epochs", "1",
                     "--out", str(out), "--no-progress"])
    assert code == 0
    assert "±" in capsys.readouterr().out
    result = json.loads((out / "sweep.json").read_text())
    assert len(result["cells"]) == 4 and len(result["runs"]) == 8
    assert (out / "accuracy_vs_sparsity.png").stat().st_size > 0
    assert cli.main(["sweep", "--recoveries", "rewind", "--out", str(out)]) == 2
