"""What pruning costs: global magnitude pruning against one ``np.partition``, and every criterion.

1. ``tinyprune.prune.magnitude(model, 0.9, scope="global")`` on MLPs with about 10^5, 10^6 and 10^7
   weights, against one ``np.partition`` of as many float32 values (the least any exact global top-k
   can do: it has to look at every score once). Target: within 2x of it, and linear in n (the time
   per weight stays flat; a full sort would grow with log n). The prune is split into its parts:
   scores (``|w|``), selection (``select.global_``: gather, partition, threshold) and masks written.
2. Every criterion on the document's model ``MLP([784, 64, 64, 10])`` (prune to 50 %, calibration
   data from mnist-5k where a criterion needs it).

Median of ``--runs`` runs, each on a fresh copy of the model. Writes ``benchmarks/results/prune.json``.

    python benchmarks/bench_prune.py
    python benchmarks/bench_prune.py --runs 3 --sizes 1e5 1e6 --calibration 500
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from common import blas_threads, machine_line, median, table, write_json

from tinyprune.core.nn import MLP
from tinyprune.data import load
from tinyprune.prune import core, criteria, parts, select
from tinyprune.prune.masks import apply_mask

SPARSITY = 0.9


def model_with(n_weights: float) -> MLP:
    """``MLP([1000, w, w, 10])`` with ``w`` chosen so that it holds about ``n_weights`` weights."""
    width = int(round((-1010 + math.sqrt(1010**2 + 4 * n_weights)) / 2))
    return MLP([1000, width, width, 10], seed=0)


def timed(function: Callable[[Any], Any], prepare: Callable[[], Any], runs: int) -> list[float]:
    """Seconds of ``function(prepare())`` over ``runs`` runs (``prepare`` is not timed)."""
    times = []
    for _ in range(runs):
        argument = prepare()
        started = time.perf_counter()
        function(argument)
        times.append(time.perf_counter() - started)
    return times


def magnitude_parts(model: MLP, names: list[str]) -> tuple[float, float, float]:
    """Seconds of the three parts of a global magnitude prune: scores, selection, masks written."""
    started = time.perf_counter()
    scores = criteria.magnitude(model)
    chosen = [scores[name] for name in names]
    scored = time.perf_counter()
    keep = select.global_(chosen, SPARSITY, [None] * len(names))
    selected = time.perf_counter()
    params = dict(model.named_parameters())
    for name, mask in zip(names, keep):
        apply_mask(params[name], mask)
    return scored - started, selected - scored, time.perf_counter() - selected


def global_magnitude_at(target: float, runs: int) -> dict:
    """Prune and ``np.partition`` of the same n values, interleaved, ``runs`` times each."""
    model = model_with(target)
    params = dict(model.named_parameters())
    names = core.eligible(model)
    values = np.concatenate([np.abs(params[name].data).ravel() for name in names])
    n = values.size
    k = round(SPARSITY * n)
    prune_times, partition_times, prune_cpu, partition_cpu, split = [], [], [], [], []
    for _ in range(runs):
        fresh = copy.deepcopy(model)
        started, started_cpu = time.perf_counter(), time.process_time()
        core.magnitude(fresh, SPARSITY, scope="global")
        prune_times.append(time.perf_counter() - started)
        prune_cpu.append(time.process_time() - started_cpu)
        started, started_cpu = time.perf_counter(), time.process_time()
        np.partition(values, k - 1)
        partition_times.append(time.perf_counter() - started)
        partition_cpu.append(time.process_time() - started_cpu)
        split.append(magnitude_parts(copy.deepcopy(model), names))
    prune_s, partition_s = median(prune_times), median(partition_times)
    print(f"n = {n:,}: prune {prune_s * 1e3:.2f} ms, partition {partition_s * 1e3:.2f} ms", flush=True)
    return {"target": target, "n": n, "sizes": model.sizes, "prune_s": prune_s, "partition_s": partition_s,
            "ratio": prune_s / partition_s, "cpu_ratio": median(prune_cpu) / median(partition_cpu),
            "prune_ns_per_weight": 1e9 * prune_s / n,
            "partition_ns_per_value": 1e9 * partition_s / n, "scores_s": median([s[0] for s in split]),
            "select_s": median([s[1] for s in split]), "apply_s": median([s[2] for s in split]),
            "prune_runs": prune_times, "partition_runs": partition_times, "prune_cpu_runs": prune_cpu,
            "partition_cpu_runs": partition_cpu}


def every_criterion(runs: int, calibration: int) -> list[dict]:
    splits = load("mnist-5k")
    X, y = splits.train.X[:calibration], splits.train.y[:calibration]
    model = MLP([784, 64, 64, 10], seed=0)
    cases = [(name, {"criterion": name}) for name in parts.CRITERIA]
    cases += [(f"neurons/{name}", {"criterion": name, "structure": "neurons", "scope": "layer"})
              for name in parts.NEURON_CRITERIA]
    cases += [("n:m 2:4", {"criterion": "magnitude", "structure": "n:m", "n": 2, "m": 4})]
    rows = []
    for label, options in cases:
        sparsity = None if options.get("structure") == "n:m" else 0.5
        needs = parts.criterion_class(options["criterion"], options.get("structure", "weights")).needs
        data = (X, y) if "inputs" in needs else None
        times = timed(lambda m, o=options, d=data, s=sparsity: core.prune(m, s, data=d, **o),
                      lambda: copy.deepcopy(model), runs)
        rows.append({"criterion": label, "data_rows": 0 if data is None else len(y), "seconds": median(times),
                     "runs": times})
    magnitude_s = rows[0]["seconds"]
    for row in rows:
        row["vs_magnitude"] = row["seconds"] / magnitude_s
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6, 1e7],
                        help="approximate numbers of weights of the models pruned globally")
    parser.add_argument("--calibration", type=int, default=1000, help="rows of data for the criteria")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: the library's default)")
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    with blas_threads(args.threads):
        scaling = [global_magnitude_at(target, args.runs) for target in args.sizes]
        per_criterion = every_criterion(args.runs, args.calibration)
        info = machine_line()

    print(f"\nGlobal magnitude pruning to {SPARSITY:.0%} vs one np.partition of the same n float32 values "
          f"(median of {args.runs})\n")
    print(table(["weights n", "prune ms", "np.partition ms", "ratio (wall)", "ratio (CPU)", "prune ns/weight",
                 "partition ns/value", "scores / select / masks ms"],
                [[f"{r['n']:,}", f"{1e3 * r['prune_s']:.2f}", f"{1e3 * r['partition_s']:.2f}",
                  f"{r['ratio']:.2f}", f"{r['cpu_ratio']:.2f}", f"{r['prune_ns_per_weight']:.1f}",
                  f"{r['partition_ns_per_value']:.1f}",
                  f"{1e3 * r['scores_s']:.2f} / {1e3 * r['select_s']:.2f} / {1e3 * r['apply_s']:.2f}"]
                 for r in scaling]))
    print(f"\nEvery criterion on MLP([784, 64, 64, 10]) (55,050 parameters), prune to 50 % "
          f"(n:m: 2 of 4), median of {args.runs}\n")
    print(table(["criterion", "calibration rows", "ms", "x magnitude"],
                [[r["criterion"], r["data_rows"] or "-", f"{1e3 * r['seconds']:.2f}",
                  f"{r['vs_magnitude']:.1f}"] for r in per_criterion]))
    print(f"\nmachine: {info}")
    if not args.no_json:
        path = write_json("prune", {"sparsity": SPARSITY, "runs": args.runs, "blas_threads": args.threads,
                                    "global_magnitude": scaling, "criteria": per_criterion})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
