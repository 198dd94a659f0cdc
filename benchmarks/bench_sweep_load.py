"""The "load to hold" of issue #24: a 30-run sweep on Fashion-MNIST with 2 workers, one worker killed.

Runs ``tinyprune sweep`` (2 criteria x 5 sparsities x 3 recoveries = 30 runs, one seed) twice from the
command line: with ``--workers 2``, killing one pool worker with ``kill -9`` once a few runs are saved,
and with ``--workers 1``. While each runs, the memory of the sweep and its workers is sampled every
0.2 s from ``/proc`` (resident set summed over the processes, which counts pages shared after ``fork``
once per process, and the proportional set size, which shares them out). Reports whether a run was
lost, the peak memory summed over the processes, and whether the two sweeps' results are identical
(every field but the timings). Needs Fashion-MNIST on disk (``apt-get install dataset-fashion-mnist``).
Writes ``benchmarks/results/sweep_load.json``.

    python benchmarks/bench_sweep_load.py
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine_line, table, write_json

GRID = ["--criteria", "magnitude,random", "--sparsities", "0.5,0.8,0.9,0.95,0.98",
        "--recoveries", "none,finetune,reconstruct"]
TIMINGS = ("seconds", "closed_form_seconds")


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux ``/proc``)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def memory(pid: int) -> tuple[int, int]:
    """(resident set, proportional set) of ``pid`` in bytes; (0, 0) once it is gone."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0, 0
    fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in rollup if line.endswith("kB")}
    return fields.get("Rss", 0), fields.get("Pss", 0)


def sweep(folder: Path, workers: int, epochs: int, kill_after: int | None) -> dict:
    """Run one sweep; sample its memory; kill one worker with -9 after ``kill_after`` saved runs."""
    out = folder / f"sweep-{workers}"
    command = [sys.executable, "-m", "tinyprune", "sweep", "--dataset", "fashion-mnist", "--no-download",
               "--dense-epochs", str(epochs), "--budget-epochs", "1", "--workers", str(workers),
               "--no-progress", "--out", str(out), *GRID]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    peak_rss = peak_pss = 0
    killed = None
    while process.poll() is None:
        pids = [process.pid, *children(process.pid)]
        sizes = [memory(pid) for pid in pids]
        peak_rss = max(peak_rss, sum(rss for rss, _ in sizes))
        peak_pss = max(peak_pss, sum(pss for _, pss in sizes))
        saved = len(list((folder / f"sweep-{workers}.partial").glob("run-*.json")))
        if kill_after is not None and killed is None and saved >= kill_after and len(pids) > 1:
            killed = pids[-1]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the sweep with {workers} worker(s) failed:\n{stdout}\n{stderr}")
    result = json.loads((out / "sweep.json").read_text())
    return {"workers": workers, "seconds": time.perf_counter() - started, "peak_rss_bytes": peak_rss,
            "peak_pss_bytes": peak_pss, "killed_worker": killed, "runs": result["runs"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense-epochs", type=int, default=3)
    parser.add_argument("--kill-after", type=int, default=4, help="saved runs before the kill (default: 4)")
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        two = sweep(Path(folder), 2, args.dense_epochs, args.kill_after)
        one = sweep(Path(folder), 1, args.dense_epochs, None)
    strip = [[{k: v for k, v in run.items() if k not in TIMINGS} for run in result["runs"]]
             for result in (two, one)]
    identical = strip[0] == strip[1]
    def missing(result: dict) -> list:
        return [run for run in result["runs"] if run.get("lost") or run.get("error")]

    lost = missing(two)
    gib = 1 << 30
    print(table(["workers", "runs", "lost or failed", "worker killed (-9)", "peak RSS summed GiB",
                 "peak PSS summed GiB", "seconds"],
                [[r["workers"], len(r["runs"]), len(missing(r)), r["killed_worker"] or "-",
                  f"{r['peak_rss_bytes'] / gib:.2f}", f"{r['peak_pss_bytes'] / gib:.2f}",
                  f"{r['seconds']:.0f}"]
                 for r in (two, one)]))
    print(f"\nresults identical (every field but the timings): {identical}; "
          f"lost with a worker killed: {len(lost)}")
    print(f"machine: {machine_line()}")
    if not args.no_json:
        summary = {key: value for key, value in two.items() if key != "runs"}
        path = write_json("sweep_load", {"two_workers": summary,
                                         "one_worker": {k: v for k, v in one.items() if k != "runs"},
                                         "identical": identical, "lost": len(lost), "runs": len(two["runs"])})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
