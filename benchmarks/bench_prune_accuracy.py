"""Benchmark: test accuracy right after one-shot pruning (no recovery), for every criterion, global scope.

The document's model (MLP 784-64-64-10, ReLU) is trained with its recipe (Adam lr 1e-3, batch 128,
10 epochs, seed 0) on the embedded ``mnist-5k``; then, for each criterion of ``tinyprune.prune.CRITERIA``
and each sparsity (0.5, 0.8, 0.9, 0.95 of the weights, biases kept), a copy is pruned with
``scope="global"`` and evaluated on the test split. Data-dependent criteria are calibrated on
``--calibration`` training rows drawn at random (seed 0). Random pruning is averaged over
``--random-seeds`` seeds. ``movement`` is given no accumulated scores, so it runs its own short
accumulation, ``S = -Σ_t g_t ⊙ W_t`` (``tinyprune.prune.movement``): ``--movement-epochs`` (default 1)
epochs of Adam (lr 1e-3, batches of 128, seed 0) on a copy over the calibration rows; the sums then
score the trained model.

Neuron criteria (every one of ``tinyprune.prune.NEURON_CRITERIA``, FPGM and OBD among them): 25, 50 and
75 % of the hidden neurons of each hidden layer removed (layer scope), no recovery, same calibration rows.

Also measured (the issue's "done means"): removing 50 % of the hidden neurons (``l2`` criterion, layer
scope) and ``compact``-ing the model: its accuracy, parameter count and the speed-up of inference on the
1,000 test rows (the best of ``--repeats`` interleaved timings, dense masked model vs compact model).

Prints the table and writes ``benchmarks/results/prune_accuracy.json``.

    python benchmarks/bench_prune_accuracy.py                 # a few seconds to half a minute
    python benchmarks/bench_prune_accuracy.py --epochs 2      # a quick look
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "prune_accuracy.json"
SPARSITIES = (0.5, 0.8, 0.9, 0.95)
NEURON_FRACTIONS = (0.25, 0.5, 0.75)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="model initialisation and shuffling seed")
    parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)))
    parser.add_argument("--calibration", type=int, default=1000,
                        help="training rows used by data-dependent criteria (default: 1000)")
    parser.add_argument("--random-seeds", type=int, default=5, help="seeds averaged for 'random'")
    parser.add_argument("--movement-epochs", type=int, default=1,
                        help="epochs of the short accumulation that scores 'movement' (default: 1)")
    parser.add_argument("--repeats", type=int, default=50, help="timings of inference (the best is kept)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.sparsities = [float(s) for s in args.sparsities.split(",") if s]
    return args


def best_seconds(functions: list[Any], repeats: int) -> list[float]:
    """The fastest of ``repeats`` timings of each function, run interleaved (fair under a shared CPU)."""
    best = [float("inf")] * len(functions)
    for _ in range(repeats):
        for index, function in enumerate(functions):
            started = time.perf_counter()
            function()
            best[index] = min(best[index], time.perf_counter() - started)
    return best


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from tinyprune.core.nn import MLP
    from tinyprune.data import load
    from tinyprune.fast.optim import Adam
    from tinyprune.prune import CRITERIA, NEURON_CRITERIA, compact, prune
    from tinyprune.training import evaluate, fit

    splits = load("mnist-5k")
    model = MLP([784, 64, 64, 10], seed=args.seed)
    fit(model, splits.train, epochs=args.epochs, batch_size=128, optimizer=Adam(model.parameters(), lr=1e-3),
        seed=args.seed, progress=False)
    dense = evaluate(model, splits.test)["accuracy"]
    print(f"dense: test accuracy {dense:.4f} after {args.epochs} epochs", flush=True)
    # A seeded random subset: mnist-5k's rows are sorted by class, so the first rows would be 0s and 1s.
    rows = np.random.default_rng(0).choice(len(splits.train), min(args.calibration, len(splits.train)),
                                           replace=False)
    calibration = splits.train.subset(np.sort(rows))

    accuracy: dict[str, dict[str, float | None]] = {}
    seconds: dict[str, float] = {}
    for criterion in CRITERIA:
        accuracy[criterion] = {}
        started = time.perf_counter()
        for sparsity in args.sparsities:
            seeds = range(args.random_seeds) if criterion == "random" else [args.seed]
            values = []
            for seed in seeds:
                pruned = copy.deepcopy(model)
                try:
                    options = {"epochs": args.movement_epochs} if criterion == "movement" else {}
                    prune(pruned, sparsity, criterion, scope="global", data=calibration, seed=seed, **options)
                except ValueError as error:       # e.g. a layer left without weights
                    print(f"{criterion} at {sparsity}: refused ({error})", flush=True)
                    values = []
                    break
                values.append(evaluate(pruned, splits.test)["accuracy"])
            accuracy[criterion][str(sparsity)] = statistics.fmean(values) if values else None
        seconds[criterion] = (time.perf_counter() - started) / len(args.sparsities)
        cells = "  ".join(f"{s}: {a:.4f}" if a is not None else f"{s}: -"
                          for s, a in accuracy[criterion].items())
        print(f"{criterion:10s} {cells}", flush=True)

    neuron_accuracy: dict[str, dict[str, float]] = {}
    for criterion in NEURON_CRITERIA:
        neuron_accuracy[criterion] = {}
        for fraction in NEURON_FRACTIONS:
            seeds = range(args.random_seeds) if criterion == "random" else [args.seed]
            values = []
            for seed in seeds:
                pruned = copy.deepcopy(model)
                prune(pruned, fraction, criterion, scope="layer", structure="neurons", data=calibration,
                      seed=seed)
                values.append(evaluate(pruned, splits.test)["accuracy"])
            neuron_accuracy[criterion][str(fraction)] = statistics.fmean(values)
        cells = "  ".join(f"{f}: {a:.4f}" for f, a in neuron_accuracy[criterion].items())
        print(f"neurons {criterion:17s} {cells}", flush=True)

    structured = copy.deepcopy(model)
    prune(structured, 0.5, "l2", scope="layer", structure="neurons")
    small = compact(structured)
    X = splits.test.X
    assert np.allclose(small(X), structured(X), atol=1e-4)
    dense_time, small_time = best_seconds([lambda: structured(X), lambda: small(X)], args.repeats)
    neurons = {"criterion": "l2", "scope": "layer", "sparsity": 0.5,
               "accuracy": evaluate(structured, splits.test)["accuracy"],
               "sizes": [structured.sizes, small.sizes],
               "parameters": [sum(p.data.size for p in structured.parameters()),
                              sum(p.data.size for p in small.parameters())],
               "inference_seconds": {"masked_dense": dense_time, "compact": small_time},
               "speedup": dense_time / small_time, "rows": int(X.shape[0])}
    return {"recipe": {"sizes": [784, 64, 64, 10], "optimizer": "adam", "lr": 1e-3, "epochs": args.epochs,
                       "batch_size": 128, "seed": args.seed, "dataset": "mnist-5k",
                       "calibration_rows": len(calibration), "scope": "global", "biases_pruned": False,
                       "random_seeds": args.random_seeds, "movement_epochs": args.movement_epochs},
            "dense_accuracy": dense, "sparsities": args.sparsities, "accuracy": accuracy,
            "seconds_per_pruning": seconds, "neurons_50": neurons,
            "neuron_fractions": list(NEURON_FRACTIONS), "neuron_accuracy": neuron_accuracy,
            "machine": {"python": platform.python_version(), "numpy": np.__version__,
                        "platform": platform.platform()}}


def grid(rows: list[list[str]]) -> str:
    """Rows of cells as aligned text, the first row a header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def table(report: dict[str, Any]) -> str:
    sparsities = report["sparsities"]
    rows = [["criterion"] + [f"{s:.0%}" for s in sparsities]]
    for criterion, values in report["accuracy"].items():
        rows.append([criterion] + [f"{100 * v:.2f}" if v is not None else "-" for v in values.values()])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    if "neuron_accuracy" in report:
        lines += ["", grid([["neuron criterion"] + [f"{f:.0%}" for f in report["neuron_fractions"]]]
                           + [[criterion] + [f"{100 * v:.2f}" for v in values.values()]
                              for criterion, values in report["neuron_accuracy"].items()])]
    n = report["neurons_50"]
    lines += [f"(test accuracy %, right after pruning (weights: global; neurons: per layer), no recovery; "
              f"dense: {100 * report['dense_accuracy']:.2f} %; random = mean of "
              f"{report['recipe']['random_seeds']} seeds)",
              f"50 % hidden neurons removed (l2, layer scope): accuracy {100 * n['accuracy']:.2f} %, compact "
              f"{n['sizes'][0]} -> {n['sizes'][1]}, {n['parameters'][0]:,} -> {n['parameters'][1]:,} "
              f"parameters, "
              f"inference on {n['rows']} rows {1e3 * n['inference_seconds']['masked_dense']:.2f} ms -> "
              f"{1e3 * n['inference_seconds']['compact']:.2f} ms ({n['speedup']:.2f}x)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report = run(args)
    report["total_seconds"] = time.perf_counter() - started
    report["command"] = " ".join(["python", "benchmarks/bench_prune_accuracy.py", *(argv or sys.argv[1:])])
    print()
    print(table(report))
    from tinyprune.files import atomic_write

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
