"""`tinyprune run`, `sweep` and `recipes` end to end on tiny settings of the embedded digits: the flags come
from the Recipe, every refusal comes before training, and a run folder is a complete run or absent."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tinyprune import checkpoint, cli
from tinyprune.experiment.recipe import Recipe, recipe_names

TINY = ["--dense-epochs", "1", "--no-progress"]
REPORT_FIELDS = ("dense_accuracy", "pruned_accuracy", "final_accuracy", "dense_val_accuracy",
                 "final_val_accuracy", "sparsity", "layer_sparsity", "epochs_used", "seconds", "rounds",
                 "accuracy_per_epoch", "recipe", "files", "rows")


def test_run_end_to_end_writes_report_checkpoints_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["run", *TINY, "--recipe", "document", "--budget-epochs", "2", "--sparsity", "0.8",
                     "--recovery", "reconstruct+finetune", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "validation accuracy" in printed and "layers.0.W sparsity" in printed
    report = json.loads((out / "report.json").read_text())
    for key in REPORT_FIELDS:
        assert key in report, key
    assert report["sparsity"] == pytest.approx(0.8, abs=0.005)
    assert report["epochs_used"] <= 2 and report["recipe"]["recovery"] == "reconstruct+finetune"
    assert report["rows"] == {"train": 3600, "val": 400, "test": 1000}
    assert report["data_verified"] is True
    assert checkpoint.load(out / "pruned.npz").meta["data_verified"] is True
    pruned = checkpoint.load(out / "pruned.npz").model
    assert all(layer.W.mask is not None for layer in pruned.layers)
    assert checkpoint.load(out / "dense.npz").model.layers[0].W.mask is None
    for name in report["files"]:
        assert (out / name).stat().st_size > 0, name
    assert sum(name.endswith(".png") for name in report["files"]) == 5
    assert sorted(p.name for p in out.iterdir()) == sorted(report["files"])


def test_run_from_a_dense_checkpoint_with_the_default_recipe(tmp_path):
    first = tmp_path / "first"
    assert cli.main(["run", *TINY, "--recipe", "document", "--budget-epochs", "1", "--sparsity", "0.5",
                     "--recovery", "none", "--out", str(first), "--no-figures"]) == 0
    second = tmp_path / "second"
    assert cli.main(["run", "--dense", str(first / "dense.npz"), "--budget-epochs", "1", "--sparsity", "0.7",
                     "--head-start", "0.5", "--out", str(second), "--no-figures", "--no-progress"]) == 0
    report = json.loads((second / "report.json").read_text())
    assert report["recipe"]["schedule"] == "gradual" and report["sparsity"] == pytest.approx(0.7, abs=0.005)
    assert report["dense_checkpoint"].endswith("dense.npz") and not (second / "dense.npz").exists()


def test_a_recipe_file_and_flags_override_it(tmp_path):
    from tinyprune.experiment.recipe import Recipe

    path = Recipe.from_file("document").replace(sparsity=0.6, epochs=1).to_file(tmp_path / "mine.toml")
    out = tmp_path / "run"
    assert cli.main(["run", *TINY, "--recipe", str(path), "--layer-sparsity", "layers.0.W=0.7,layers.1.W=0.4",
                     "--out", str(out), "--no-figures"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["recipe"]["sparsity"] == {"layers.0.W": 0.7, "layers.1.W": 0.4}
    assert report["layer_sparsity"]["layers.0.W"] == pytest.approx(0.7, abs=0.005)
    assert report["layer_sparsity"]["layers.2.W"] == 0


@pytest.mark.parametrize("argv, message", [
    (["--budget-epochs", "0"], "epochs"),
    (["--recovery", "magic"], "recovery"),
    (["--sparsity", "nan"], "sparsity"),
    (["--sparsity", "-0.1"], "sparsity"),
    (["--lr", "nan"], "lr"),
    (["--lr", "-1"], "lr"),
    (["--seed", "-1"], "seed"),
    (["--out", ""], "output folder"),
    (["--recipe", "nope"], "no recipe named"),
    (["--recipe", "document", "--structure", "n:m", "--sparsity", "0.9"], "n:m"),
    (["--recipe", "document", "--structure", "neurons", "--criterion", "l2", "--sparsity", "0.999"], "unit"),
    (["--recovery", "reconstruct+finetune"], "gradual"),
    (["--recipe", "lottery", "--dense", "missing.npz"], "missing.npz"),
    (["--dense-epochs", "0"], "dense-epochs"),
])
def test_run_refuses_bad_input_before_training_with_exit_code_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "fit", lambda *a, **k: pytest.fail("trained before refusing"))
    assert cli.main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert "error" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_run_never_replaces_or_mixes_with_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", *TINY, "--recipe", "document", "--budget-epochs", "1", "--recovery", "none",
            "--out", str(out), "--no-figures"]
    assert cli.main(argv) == 0
    first = (out / "report.json").read_bytes()
    assert cli.main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "report.json").read_bytes() == first
    assert cli.main([*argv, "--overwrite", "--seed", "1"]) == 0
    assert (out / "report.json").read_bytes() != first
    assert [p.name for p in tmp_path.iterdir()] == ["run"]         # no temporary left beside it


def test_default_folders_are_unique_even_in_the_same_second(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli.time, "strftime", lambda pattern: "same-second")
    argv = ["run", *TINY, "--recipe", "document", "--budget-epochs", "1", "--recovery", "none",
            "--no-figures"]
    assert cli.main(argv) == 0 and cli.main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["same-second", "same-second-2"]


def test_an_interrupted_run_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    # a shell's background job (`cmd &`) ignores SIGINT and its children inherit that: restore the default
    # in the child, so Python turns the signal into KeyboardInterrupt however the suite was started
    child = subprocess.Popen([sys.executable, "-m", "tinyprune", "run", "--dense-epochs", "30",
                              "--no-progress", "--out", str(out)], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for _ in range(600):                       # wait until the run is under way (its temporary folder exists)
        if any(p.name.endswith(".tinyprune-tmp") for p in tmp_path.iterdir()):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert list(tmp_path.iterdir()) == []


def test_a_figure_that_fails_never_loses_the_report(tmp_path, monkeypatch, capsys):
    from tinyprune import plot

    def broken(*args, **kwargs):
        raise RuntimeError("no display")

    monkeypatch.setattr(plot, "weight_histograms", broken)
    out = tmp_path / "run"
    assert cli.main(["run", *TINY, "--recipe", "document", "--budget-epochs", "1", "--out", str(out)]) == 0
    assert "no figures" in capsys.readouterr().out
    files = json.loads((out / "report.json").read_text())["files"]
    assert files == ["dense.npz", "pruned.npz", "report.json"]


def test_sweep_prints_the_table_and_draws_the_figure(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = cli.main(["sweep", *TINY, "--criteria", "magnitude", "--sparsities", "0.5,0.9",
                     "--recoveries", "none,reconstruct", "--seeds", "0,1", "--budget-epochs", "1",
                     "--out", str(out)])
    assert code == 0
    assert "±" in capsys.readouterr().out
    result = json.loads((out / "sweep.json").read_text())
    assert len(result["cells"]) == 4 and len(result["runs"]) == 8
    assert (out / "accuracy_vs_sparsity.png").stat().st_size > 0


@pytest.mark.parametrize("argv", [["--recoveries", "rewind"], ["--sparsities", ""], ["--criteria", "vibes"],
                                  ["--budget-epochs", "0"], ["--workers", "0"]])
def test_sweep_refuses_bad_input_before_training(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "fit", lambda *a, **k: pytest.fail("trained before refusing"))
    assert cli.main(["sweep", *argv, "--out", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()


def test_budget_epochs_means_the_same_in_run_and_sweep():
    parser = cli.build_parser()
    run = parser.parse_args(["run", "--budget-epochs", "4"])
    sweep = parser.parse_args(["sweep", "--budget-epochs", "4"])
    assert cli.recipe_from_args(run).epochs == cli.recipe_from_args(sweep).epochs == 4


def test_recipes_lists_every_named_recipe(capsys):
    assert cli.main(["recipes"]) == 0
    printed = capsys.readouterr().out
    assert [line.split()[0] for line in printed.splitlines()] == recipe_names()
    assert cli.main(["recipes", "han2015"]) == 0
    assert "iterative" in capsys.readouterr().out


def test_structure_n_m_takes_its_sparsity_from_n_and_m(tmp_path):
    out = tmp_path / "nm"
    assert cli.main(["run", *TINY, "--recipe", "document", "--structure", "n:m", "--n-m", "1,4",
                     "--budget-epochs", "1", "--check-every", "1", "--out", str(out), "--no-figures"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["recipe"]["sparsity"] == 0.75 and report["sparsity"] == pytest.approx(0.75)


@pytest.mark.parametrize("argv, suggestion", [
    (["run", "--sparsty", "0.5"], "did you mean '--sparsity'?"),
    (["run", "--criterion", "magnitud"], "did you mean 'magnitude'?"),
    (["run", "--recipe", "han2016"], "did you mean 'han2015'?"),
    (["run", "--recovery", "distil"], "did you mean 'distill'?"),
    (["trian"], "did you mean 'train'?"),
])
def test_a_typo_gets_a_did_you_mean_and_the_subcommands_help(argv, suggestion, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert suggestion in err and "Traceback" not in err
    assert f"(see tinyprune {argv[0]} --help)" in err or argv == ["trian"]


def test_recipes_name_shows_what_differs_from_the_default_and_all_shows_every_field(capsys):
    assert cli.main(["recipes", "han2015"]) == 0
    changes = capsys.readouterr().out.splitlines()
    assert changes[0].endswith("fields differ from the default recipe")
    assert all("(default " in line for line in changes[1:]) and any("criterion" in line for line in changes)
    assert cli.main(["recipes", "han2015", "--all"]) == 0
    every = capsys.readouterr().out.splitlines()
    assert len(every) == 1 + len(Recipe.__dataclass_fields__) > len(changes)
    assert max(len(line) for line in every) < 100


def test_run_help_lists_the_choices_by_name(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "one of magnitude," in text and "CRITERIA" not in text and "one of one-shot, iterative" in text


def test_train_holds_out_the_validation_rows_run_decides_on_and_run_dense_never_scores_trained_rows(
        tmp_path, capsys):
    dense = tmp_path / "dense.npz"
    assert cli.main(["train", "--epochs", "1", "--no-progress", "--out", str(dense)]) == 0
    assert "3600 train rows, 10% held out for validation by seed 0" in capsys.readouterr().out
    assert checkpoint.load(dense).meta["held_out"] == {"dataset": "mnist-5k", "validation": 0.1, "seed": 0}
    argv = ["run", "--dense", str(dense), "--recipe", "document", "--budget-epochs", "1", "--no-progress",
            "--no-figures"]
    assert cli.main([*argv, "--out", str(tmp_path / "ok")]) == 0
    assert "may have been seen" not in capsys.readouterr().out
    assert cli.main([*argv, "--seed", "1", "--out", str(tmp_path / "leak")]) == 2
    err = capsys.readouterr().err
    assert "--validation 0.1 --seed 0" in err and not (tmp_path / "leak").exists()
    everything = tmp_path / "all.npz"
    assert cli.main(["train", "--epochs", "1", "--no-progress", "--validation", "0",
                     "--out", str(everything)]) == 0
    assert cli.main([*argv[:1], "--dense", str(everything), *argv[3:], "--out", str(tmp_path / "all")]) == 2
    assert "trained on every training row" in capsys.readouterr().err


def test_a_model_from_elsewhere_is_marked_as_such_in_the_log_and_the_report(tmp_path, capsys):
    from tinyprune.core.nn import MLP

    outside = tmp_path / "outside.npz"
    checkpoint.save(outside, MLP([784, 64, 64, 10], seed=0), meta={"imported_from": "model.safetensors"})
    out = tmp_path / "run"
    assert cli.main(["run", "--dense", str(outside), "--recipe", "document", "--budget-epochs", "1",
                     "--no-progress", "--no-figures", "--out", str(out)]) == 0
    assert "warning: the dense model is imported from model.safetensors" in capsys.readouterr().out
    assert "may have been seen" in json.loads((out / "report.json").read_text())["warnings"][0]
