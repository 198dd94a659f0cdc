"""Sweeps that lose nothing: a killed worker, a killed sweep, a sweep stopped half way.

Real processes, really killed (``kill -9``, ``kill -TERM``): the sweep runs in a child process whose runs
are slowed down (``RUN_SECONDS``) so that a kill lands while runs are in flight; each run leaves a file
``started-<pid>-...`` so the test knows which processes run them. Every wait is bounded.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tinyprune import cli
from tinyprune.experiment.recipe import Recipe
from tinyprune.experiment.sweep import sweep

sweep_module = importlib.import_module("tinyprune.experiment.sweep")   # the package's "sweep" is the function
FAST = Recipe.from_file("document").replace(batch_size=50, lr_schedule="constant", calibration=400, epochs=1)
GRID = dict(grid={"criterion": ["magnitude"], "sparsity": [0.5, 0.8, 0.9], "recovery": ["finetune"]},
            seeds=[0], progress=False)
SLOW_SWEEP = textwrap.dedent("""
    import importlib, os, sys, time
    sweep_module = importlib.import_module("tinyprune.experiment.sweep")   # the module, not the function

    real_run_cell = sweep_module.run_cell

    def slow_run_cell(model, data, recipe, snapshot=None):   # says which process runs it, then takes a while
        name = f"started-{os.getpid()}-{recipe.sparsity}-{recipe.seed}-{time.monotonic_ns()}"
        open(os.path.join(sys.argv[1], name), "w").close()
        time.sleep(float(os.environ["RUN_SECONDS"]))
        return real_run_cell(model, data, recipe, snapshot)

    sweep_module.run_cell = slow_run_cell                    # forked workers inherit it
    from tinyprune import cli
    sys.exit(cli.main(sys.argv[2:]))
""")
SWEEP_ARGS = ["sweep", "--dense-epochs", "1", "--criteria", "magnitude", "--sparsities", "0.5,0.9",
              "--recoveries", "none", "--seeds", "0,1", "--budget-epochs", "1", "--no-progress"]


def start_slow_sweep(tmp_path, seconds, *argv):
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    env = {**os.environ, "RUN_SECONDS": str(seconds), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SLOW_SWEEP, str(markers), *SWEEP_ARGS, *argv],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True), markers


def running_pids(process, markers, at_least, timeout=120):
    """The pids that have started runs, once ``at_least`` of them have (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the sweep ended first (exit {process.returncode}): {process.communicate()}")
        pids = {int(name.split("-")[1]) for name in os.listdir(markers)}
        if len(pids) >= at_least:
            return pids
        time.sleep(0.05)
    pytest.fail(f"fewer than {at_least} workers started runs within {timeout} s")


def alive(pid):
    """True while ``pid`` runs (a zombie waiting to be reaped has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_killed_with_sigkill_loses_no_run_and_the_numbers_match_one_worker(tmp_path, capsys):
    process, markers = start_slow_sweep(tmp_path, 1.0, "--workers", "2", "--out", str(tmp_path / "two"))
    try:
        victim = min(running_pids(process, markers, 1))
        os.kill(victim, signal.SIGKILL)                               # one worker dies mid-run
        stdout, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    two = json.loads((tmp_path / "two" / "sweep.json").read_text())
    assert len(two["runs"]) == 4 and not any(run.get("error") for run in two["runs"])
    assert not (tmp_path / "two.partial").exists()                   # published: the journal is gone
    assert cli.main([*SWEEP_ARGS, "--workers", "1", "--out", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "sweep.json").read_text())
    drop = ("seconds", "closed_form_seconds")
    assert [{k: v for k, v in run.items() if k not in drop} for run in two["runs"]] == \
        [{k: v for k, v in run.items() if k not in drop} for run in one["runs"]]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_pool_workers_end_when_the_sweep_is_killed_and_a_rerun_resumes(tmp_path, how):
    out = tmp_path / "sweep"
    process, markers = start_slow_sweep(tmp_path, 60, "--workers", "2", "--out", str(out))
    workers = set()
    try:
        workers = running_pids(process, markers, 2)
        process.send_signal(how)
        process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers), "pool workers outlived the sweep"
    finally:
        process.kill()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    journal = tmp_path / "sweep.partial"
    assert (journal / "dense.npz").is_file()                         # the stopped sweep's dense model is kept
    assert cli.main([*SWEEP_ARGS, "--dense-epochs", "2", "--out", str(out)]) == 2     # other options: refused
    rerun, _ = start_slow_sweep(tmp_path, 0, "--workers", "2", "--out", str(out))
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert "the sweep being resumed" in stdout
    assert len(json.loads((out / "sweep.json").read_text())["runs"]) == 4 and not journal.exists()


def test_a_stopped_sweep_resumes_from_its_journal_and_redoes_only_what_is_missing(dense, clusters, tmp_path,
                                                                                  monkeypatch):
    whole = sweep(dense[0], clusters, FAST, **GRID)
    real, calls = sweep_module.run_cell, []

    def stopped_at_the_third(model, data, recipe, snapshot=None):
        calls.append(recipe.sparsity)
        if len(calls) == 3:
            raise KeyboardInterrupt                                   # Ctrl-C during the third run
        return real(model, data, recipe, snapshot)

    monkeypatch.setattr(sweep_module, "run_cell", stopped_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        sweep(dense[0], clusters, FAST, journal=tmp_path / "journal", **GRID)
    assert len(list((tmp_path / "journal").glob("run-*.json"))) == 2
    calls.clear()
    monkeypatch.setattr(sweep_module, "run_cell", lambda *a: calls.append(a[2].sparsity) or real(*a))
    resumed = sweep(dense[0], clusters, FAST, journal=tmp_path / "journal", **GRID)
    assert calls == [0.9]                                             # only the missing run
    drop = ("seconds", "closed_form_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed.runs] == \
        [{k: v for k, v in r.items() if k not in drop} for r in whole.runs]


def test_a_journal_of_another_sweep_is_refused_not_mixed(dense, clusters, tmp_path):
    sweep(dense[0], clusters, FAST, journal=tmp_path / "journal", **GRID)
    with pytest.raises(ValueError, match="holds the finished runs of another sweep"):
        sweep(dense[0], clusters, FAST.replace(batch_size=25), journal=tmp_path / "journal", **GRID)


def test_a_run_whose_worker_always_dies_is_reported_lost_and_the_others_are_kept(dense, clusters, tmp_path,
                                                                                 monkeypatch):
    real = sweep_module.run_cell

    def dies_at_0_8(model, data, recipe, snapshot=None):
        if recipe.sparsity == 0.8:
            os._exit(1)                                               # the worker process dies
        return real(model, data, recipe, snapshot)

    monkeypatch.setattr(sweep_module, "run_cell", dies_at_0_8)
    result = sweep(dense[0], clusters, FAST, executor=2, journal=tmp_path / "journal", **GRID)
    assert [run["sparsity"] for run in result.lost] == [0.8]
    assert "died on each of 3 attempt(s)" in result.lost[0]["error"]
    assert sorted(cell["sparsity"] for cell in result.cells) == [0.5, 0.9]
    assert len(list((tmp_path / "journal").glob("run-*.json"))) == 2  # the finished runs are saved


def test_an_exception_in_a_run_is_raised_not_retried(dense, clusters, monkeypatch):
    def broken(model, data, recipe, snapshot=None):
        raise RuntimeError("a bug in the run")

    monkeypatch.setattr(sweep_module, "run_cell", broken)
    with pytest.raises(RuntimeError, match="a bug in the run"):
        sweep(dense[0], clusters, FAST, executor=2, **GRID)
