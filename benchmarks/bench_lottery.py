"""Benchmark: the lottery ticket on mnist-5k, iterative magnitude pruning with rewinding against its controls.

The document's model (MLP 784-64-64-10, ReLU, Glorot-uniform, seed s) runs
``tinyprune.recover.iterative_magnitude_pruning``: at every level the globally smallest 20 % of the
surviving weights go (biases kept, the output layer included), the survivors are rewound to
``--rewind-to`` (default 0: the initialisation, as Frankle & Carbin 2019 for LeNet-300-100) and trained
for ``--epochs`` epochs (Adam lr 1e-3, batches of 128: the document's recipe). At every level two
controls run from the same mask for the same epochs: ``shuffle`` (the mask permuted at random within each
layer, same rewound weights: OpenLTH's random-mask control) and ``reinit`` (same mask, fresh Glorot
weights). 10 % of the 4,000 training rows are held out (stratified, by seed) as validation rows; the
1,000 test rows are only reported. Each cell is the mean over ``--seeds`` seeds.

Prints the per-level table and writes ``benchmarks/results/lottery.json`` (every seed's rows).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lottery.py              # about a minute
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lottery.py --levels 4 --seeds 1 --epochs 2   # a look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # before NumPy loads: one thread is faster here

from common import RESULTS, command, machine  # noqa: E402

BRANCHES = ("imp", "shuffle", "reinit")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, default=15, help="pruning levels after the dense one")
    parser.add_argument("--rate", type=float, default=0.2, help="fraction of the survivors pruned per level")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of training per level and branch")
    parser.add_argument("--rewind-to", default="0", help="0 (init), N or 'Nep' (epochs), 'Nit' (steps)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. seeds-1 (init, order, split)")
    parser.add_argument("--out", type=Path, default=RESULTS / "lottery.json")
    args = parser.parse_args(argv)
    args.rewind_to = int(args.rewind_to) if args.rewind_to.isdigit() else args.rewind_to
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tinyprune.core.nn import MLP
    from tinyprune.data import load
    from tinyprune.recover import iterative_magnitude_pruning

    splits = load("mnist-5k")
    runs = []
    for seed in range(args.seeds):
        started = time.perf_counter()
        rows = iterative_magnitude_pruning(MLP([784, 64, 64, 10], seed=seed), splits, levels=args.levels,
                                           rate=args.rate, epochs_per_level=args.epochs,
                                           rewind_to=args.rewind_to, seed=seed, val=0.1,
                                           controls=("shuffle", "reinit"))
        runs.append({"seed": seed, "seconds": time.perf_counter() - started,
                     "rows": [row.to_dict() for row in rows]})
        print(f"seed {seed}: {len(rows)} rows in {runs[-1]['seconds']:.1f} s", flush=True)
    return {"dataset": "mnist-5k", "sizes": [784, 64, 64, 10], "levels": args.levels, "rate": args.rate,
            "epochs_per_level": args.epochs, "rewind_to": args.rewind_to, "optimizer": "adam", "lr": 1e-3,
            "batch_size": 128, "val_fraction": 0.1, "scope": "global", "seeds": args.seeds, "runs": runs,
            "mean": mean_rows(runs)}


def mean_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per level: its sparsity, and per branch the mean validation and test accuracy over seeds."""
    levels: dict[int, dict[str, Any]] = {}
    for run_ in runs:
        for row in run_["rows"]:
            cell = levels.setdefault(row["level"], {"level": row["level"], "sparsity": row["sparsity"],
                                                    "remaining": row["remaining"]})
            cell.setdefault(row["branch"], {"val": [], "test": []})
            cell[row["branch"]]["val"].append(row["val_accuracy"])
            cell[row["branch"]]["test"].append(row["test_accuracy"])
    for cell in levels.values():
        for branch in BRANCHES:
            if branch in cell:
                cell[branch] = {split: statistics.fmean(values) for split, values in cell[branch].items()}
    return [levels[level] for level in sorted(levels)]


def table(report: dict[str, Any]) -> str:
    """The mean rows as a Markdown table (accuracies in %)."""
    header = ["level", "sparsity", "weights left"] + [f"{b} {s}" for b in BRANCHES for s in ("val", "test")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in report["mean"]:
        values = [str(cell["level"]), f"{100 * cell['sparsity']:.1f} %", f"{cell['remaining']:,}"]
        for branch in BRANCHES:
            values += ([f"{100 * cell[branch][s]:.2f}" for s in ("val", "test")] if branch in cell
                       else ["", ""])
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tinyprune.files import atomic_write

    args = parse_args(argv)
    started = time.perf_counter()
    report = run(args)
    report["total_seconds"] = time.perf_counter() - started
    report = {"command": command(), "machine": machine(), **report}
    print()
    print(table(report))
    print(f"(mean of {args.seeds} seeds; test accuracy reported only; {report['total_seconds']:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
