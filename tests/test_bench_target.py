"""``benchmarks/bench_target.py`` runs end to end on tiny settings: the protocol's script, not its figures
(speed and accuracy are measured in benchmarks/, never asserted here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_target.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_target", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_protocol_runs_caches_and_reports(bench, tmp_path, capsys):
    argv = ["--quick", "--levers", "recipe,control", "--control-rates", "0.01", "--workers", "1",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "target.json")]
    assert bench.main(argv) == 0
    result = json.loads((tmp_path / "target.json").read_text())
    assert result["options"]["dataset"] == "mnist-5k"
    runs = result["runs"]
    # 2 seeds + the SGD model, for the recipe at 90 % and for the control
    assert {(r["lever"], str(r["model"])) for r in runs} == {
        (lever, m) for lever in ("control", "recipe") for m in ("0", "1", "sgd")}
    for r in runs:
        assert 0 <= r["val"] <= 1 and 0 <= r["test"] <= 1 and r["epochs_used"] in (0, 1)  # 0: no drop
    recipe_runs = [r for r in runs if r["lever"] == "recipe"]
    assert all(abs(r["sparsity_reached"] - 0.9) < 0.01 for r in recipe_runs)
    assert result["summary"]["chosen"] == {"recipe@0.9": "the recipe",
                                           "control@0": "Adam 0.01, cosine, batch 32"}
    verdict = result["summary"]["verdicts"][0]
    assert verdict["models"] == 3 and verdict["sparsity"] == 0.9
    assert len(list((tmp_path / "cache" / "dense").glob("*.npz"))) == 3
    out = capsys.readouterr().out
    assert "| recipe: the recipe **(kept)** | 90% |" in out
    # a second call finds every run in the cache and runs nothing
    assert bench.main(argv) == 0
    assert "0 dense model(s) to train, 0 of 6 run(s) to do" in capsys.readouterr().out
    assert json.loads((tmp_path / "target.json").read_text())["runs"] == runs


def test_unknown_lever_is_refused(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--levers", "recipe,magic"])


def test_a_refused_setting_is_recorded_not_fatal(bench, tmp_path, capsys, monkeypatch):
    def refuse(task):
        raise ValueError("OBS at sparsity 0.9994 would leave layers.0.W with no weights at all")

    monkeypatch.setattr(bench, "run_recipe", refuse)
    argv = ["--quick", "--levers", "recipe", "--no-sgd", "--workers", "1",  # --quick: seeds 0 and 1
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "target.json")]
    assert bench.main(argv) == 0
    result = json.loads((tmp_path / "target.json").read_text())
    assert result["runs"] == [] and result["summary"]["cells"] == []
    assert [f["error"] for f in result["summary"]["failed"]] == 2 * [
        "ValueError: OBS at sparsity 0.9994 would leave layers.0.W with no weights at all"]
    out = capsys.readouterr().out
    assert "failed: ValueError: OBS at sparsity" in out and "failed: recipe: the recipe | model 0" in out
    # the refusal is deterministic, so it is cached like a result: a second call runs nothing
    assert bench.main(argv) == 0
    assert "0 of 2 run(s) to do" in capsys.readouterr().out


@pytest.mark.parametrize("readme", ["README.md", "benchmarks/README.md"])
def test_the_readmes_target_and_lever_tables_are_the_committed_results(bench, readme):
    # the tables are regenerated from benchmarks/results/bench_target.json, never typed by hand
    result = json.loads((SCRIPT.parent / "results" / "bench_target.json").read_text())
    text = (SCRIPT.parent.parent / readme).read_text(encoding="utf-8")
    table = bench.target_table(result["summary"])
    assert table.count("\n") == 4  # a header, a rule and one row per sparsity
    assert table in text
    levers = bench.lever_table(result["summary"])
    assert levers.count("\n") == len(result["summary"]["adoption"]) + 3   # and the line of runs and hours
    assert levers in text


def test_the_lever_table_marks_a_dominating_setting_and_counts_the_runs(bench):
    summary = {"adoption": [{"lever": "l", "setting": "s", "val_gain": {"0.9": 0.001, "0.95": 0.0},
                             "test_gain": {"0.9": -0.002, "0.95": 0.003}, "dominates": True}],
               "run_count": 1234, "run_hours": 2.25, "failed": [{}]}
    assert bench.lever_table(summary).splitlines() == [
        "| lever: setting | 90%: val (test) | 95%: val (test) | dominates on validation? |",
        "|---|---|---|---|", "| l: s | +0.10 (−0.20) | +0.00 (+0.30) | **yes** |", "",
        "1,234 distinct runs gathered, and 1 refused; 2.2 h of run time (each run's own wall-clock seconds, "
        "summed)."]
