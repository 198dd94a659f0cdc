"""``tinyprune run`` measured whole: its peak memory, and the seconds its gradual pruning steps take.

Each case is one ``tinyprune run --no-figures`` in a fresh interpreter (BLAS on one thread) that reports:

- ``peak MiB``: the process's peak resident set size (``ru_maxrss``, the figure ``/usr/bin/time -v``
  prints as "Maximum resident set size");
- ``pruning s`` / ``steps``: the seconds spent in, and the number of, the gradual schedule's pruning
  steps (``prune.PolynomialPruning.on_step_end`` calls that pruned; the default recipe's ramp from its
  94 % head start to the target, by OBD);
- the final validation and test accuracies from ``report.json`` (validation decides; test is reported).

With ``--before DIR`` (a checkout of an earlier tinyprune, e.g. ``git worktree add /tmp/before main``)
every case also runs on that code, interleaved with this one's, so both see the same machine load.
Writes ``benchmarks/results/run_memory.json``.

    python benchmarks/bench_run_memory.py --before /tmp/before
    python benchmarks/bench_run_memory.py --datasets mnist-5k --sparsities 0.95 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, machine_line, median, table, write_json

CHILD = r"""
import json, resource, sys, time
from tinyprune import prune
from tinyprune.cli import main
spent = {"seconds": 0.0, "steps": 0}
inner = prune.PolynomialPruning.on_step_end
def timed(self, model, optimizer, epoch, step):
    if not self.prunes_at(step):
        return inner(self, model, optimizer, epoch, step)
    began = time.perf_counter()
    inner(self, model, optimizer, epoch, step)
    spent["seconds"] += time.perf_counter() - began
    spent["steps"] += 1
prune.PolynomialPruning.on_step_end = timed
dataset, sparsity, out, every, seed = sys.argv[1:6]
if every:   # this code only: gradual OBD's Hessian diagonal recomputed every `every` pruning steps
    from tinyprune.experiment import schedules
    schedules.CURVATURE_EVERY = int(every)
began = time.perf_counter()
code = main(["run", "--dataset", dataset, "--sparsity", sparsity, "--no-figures", "--no-progress",
             "--seed", seed, "--out", out])
seconds = time.perf_counter() - began
report = json.load(open(out + "/report.json"))
print(json.dumps({"code": code, "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "pruning_seconds": spent["seconds"], "pruning_steps": spent["steps"], "seconds": seconds,
                  "val_accuracy": report["final_val_accuracy"], "test_accuracy": report["final_accuracy"]}))
"""


def measure(code_dir: Path, dataset: str, sparsity: float, every: str = "", seed: int = 0) -> dict:
    """One ``tinyprune run`` on the package in ``code_dir`` (with ``CURVATURE_EVERY = every``, if given),
    in a fresh interpreter; what it reported."""
    env = {**os.environ, "PYTHONPATH": str(code_dir), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as folder:
        child = [sys.executable, "-c", CHILD, dataset, str(sparsity), f"{folder}/run", every, str(seed)]
        result = subprocess.run(child, capture_output=True, text=True, check=True, env=env, cwd=folder)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="fashion-mnist,mnist-5k")
    parser.add_argument("--sparsities", default="0.9,0.95")
    parser.add_argument("--seeds", default="0", help="recipe seeds (split, pruning, recovery), e.g. 0,1")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case (the median is shown)")
    parser.add_argument("--before", type=Path, default=None, metavar="DIR",
                        help="a checkout of the code to compare against (its tinyprune/ is imported)")
    parser.add_argument("--curvature-every", default="", metavar="K,K",
                        help="also run this code with gradual OBD's Hessian diagonal recomputed every K "
                             "pruning steps (experiment.schedules.CURVATURE_EVERY), e.g. 1,4,8")
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    trees = {"this": (ROOT, ""), **({"before": (args.before.resolve(), "")} if args.before else {})}
    trees.update({f"this, h every {k}": (ROOT, k) for k in args.curvature_every.split(",") if k})
    cases = [(d, float(s), int(seed)) for d in args.datasets.split(",") for s in args.sparsities.split(",")
             for seed in args.seeds.split(",")]
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeat):               # interleaved: before, this, before, this, ...
        for dataset, sparsity, seed in cases:
            for tree in sorted(trees):
                code_dir, every = trees[tree]
                runs.setdefault(f"{dataset}|{sparsity}|{seed}|{tree}", []).append(
                    measure(code_dir, dataset, sparsity, every, seed))
    rows = []
    for key, results in runs.items():
        dataset, sparsity, seed, tree = key.split("|")
        peak = median([r["peak_bytes"] for r in results]) / 2**20
        rows.append([dataset, sparsity, seed, tree, f"{peak:.0f}",
                     f"{median([r['pruning_seconds'] for r in results]):.2f}", results[0]["pruning_steps"],
                     f"{median([r['seconds'] for r in results]):.1f}", f"{results[0]['val_accuracy']:.2%}",
                     f"{results[0]['test_accuracy']:.2%}"])
    print(table(["dataset", "sparsity", "seed", "code", "peak MiB", "pruning s", "steps", "run s",
                 "validation", "test"], rows))
    print(f"\nmachine: {machine_line()}")
    if not args.no_json:
        path = write_json("run_memory", {"trees": {k: str(v[0]) for k, v in trees.items()}, "runs": runs})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
