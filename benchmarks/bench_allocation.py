"""Benchmark: per-layer sparsity. Which allocation wins, global against layer-wise neurons, and blocks' speed.

Three parts, each on the document's model (MLP 784-64-64-10, ReLU) trained with its recipe (Adam lr 1e-3,
batch 128, 10 epochs) on the embedded ``mnist-5k``, with 10 % of the training rows held out (stratified,
seed 0) as validation rows; the model trains on the other 90 %. Every choice is made on the validation
rows; the test split (1,000 rows) is only reported. Mean over ``--seeds`` seeds (model init and shuffling).

- ``allocation``: ``prune.allocate(model, s, method)`` for uniform, ERK, LAMP and sensitivity (on the
  validation rows, budget 1 point), then magnitude pruning to that mapping, at 90 / 95 / 98 %; test
  accuracy right after pruning and after a short recovery (``recover.finetune``, ``--recovery-epochs``
  epochs at the original learning rate 1e-3, Adam). Global magnitude (the document's) for reference.
- ``neurons``: whole hidden neurons by ``l2`` norm, layer-wise (the same fraction of each layer) against
  global (scores divided by each layer's mean, one threshold), at equal parameter count: for each
  layer-wise fraction, the global pruning removes the number of neurons whose compacted model has the
  parameter count closest to the layer-wise one. Test accuracy right after and after the same recovery.
- ``blocks``: the product ``X @ W`` of the first layer (1,000 x 784 by 784 x 64, float32) with a dense W,
  with W block-pruned to 90 % (stored dense: the same product), and with a block-sparse product in NumPy
  that multiplies only the kept blocks (packed once per block column; per call one gather of the input
  columns and one product per block column). The best of ``--repeats`` interleaved timings.

Prints the tables and writes ``benchmarks/results/allocation.json``.

    python benchmarks/bench_allocation.py                    # about 2 minutes on 1 thread
    python benchmarks/bench_allocation.py --seeds 1 --parts blocks
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_of, blas_threads, machine_line, table, write_json  # noqa: E402

from tinyprune.core.nn import MLP  # noqa: E402
from tinyprune.data import load  # noqa: E402
from tinyprune.fast.optim import Adam  # noqa: E402
from tinyprune.prune import allocate, compact, prune, select  # noqa: E402
from tinyprune.recover import finetune  # noqa: E402
from tinyprune.training import evaluate, fit  # noqa: E402

SPARSITIES = (0.9, 0.95, 0.98)
METHODS = ("uniform", "erk", "lamp", "sensitivity")
NEURON_FRACTIONS = (0.25, 0.5, 0.75)
BLOCKS = ((1, 1), (4, 4), (8, 8), (16, 16))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="allocation,neurons,blocks")
    parser.add_argument("--seeds", type=int, default=3, help="seeds averaged (model init and shuffling)")
    parser.add_argument("--epochs", type=int, default=10, help="dense training epochs")
    parser.add_argument("--recovery-epochs", type=int, default=2)
    parser.add_argument("--budget", type=float, default=0.01, help="sensitivity: accuracy drop per layer")
    parser.add_argument("--repeats", type=int, default=50, help="timings of each product (the best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: leave as it is)")
    args = parser.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    return args


def dense_models(args: argparse.Namespace) -> tuple[Any, Any, Any, list[MLP]]:
    data = load("mnist-5k")
    validation, train = data.train.split(0.1, seed=0)
    models = []
    for seed in range(args.seeds):
        model = MLP([784, 64, 64, 10], seed=seed)
        fit(model, train, epochs=args.epochs, batch_size=128, optimizer=Adam(model.parameters(), lr=1e-3),
            seed=seed, progress=False)
        models.append(model)
    return train, validation, data.test, models


def recovered(model: MLP, train: Any, test: Any, epochs: int, seed: int) -> float:
    finetune(model, train, epochs=epochs, lr=1e-3, batch_size=128, seed=seed)
    return evaluate(model, test)["accuracy"]


# ------------------------------------------------------------------ part 1: the four allocations
def allocation_part(args: argparse.Namespace, train: Any, validation: Any, test: Any,
                    models: list[MLP]) -> dict[str, Any]:
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for method in (*METHODS, "global magnitude"):
        rows[method] = {}
        for sparsity in SPARSITIES:
            pruned_acc, recovered_acc, shares = [], [], []
            for seed, dense in enumerate(models):
                model = copy.deepcopy(dense)
                if method == "global magnitude":
                    prune(model, sparsity, "magnitude", "global")
                    mapping = {f"layers.{i}.W": 1 - float(layer.W.mask.mean())
                               for i, layer in enumerate(model.layers)}
                else:
                    mapping = allocate(model, sparsity, method, validation, budget=args.budget, seed=seed)
                    prune(model, mapping, "magnitude")
                shares.append(list(mapping.values()))
                pruned_acc.append(evaluate(model, test)["accuracy"])
                recovered_acc.append(recovered(model, train, test, args.recovery_epochs, seed))
            rows[method][str(sparsity)] = {
                "pruned": statistics.fmean(pruned_acc), "recovered": statistics.fmean(recovered_acc),
                "recovered_runs": recovered_acc, "layer_sparsity": np.mean(shares, axis=0).tolist()}
            print(f"{method:16s} {sparsity:.0%}: pruned {statistics.fmean(pruned_acc):.4f}, recovered "
                  f"{statistics.fmean(recovered_acc):.4f}, layers "
                  f"{[round(float(s), 3) for s in np.mean(shares, axis=0)]}", flush=True)
    return rows


def allocation_table(rows: dict[str, Any], dense: float) -> str:
    header = ["allocation"] + [f"{s:.0%}: pruned → recovered" for s in SPARSITIES] + \
        ["layer sparsities at 98 % (W1, W2, W3)"]
    body = []
    for method, cells in rows.items():
        line = [method] + [f"{100 * c['pruned']:.2f} → **{100 * c['recovered']:.2f}**"
                           for c in cells.values()]
        line.append(", ".join(f"{s:.3f}" for s in cells[str(SPARSITIES[-1])]["layer_sparsity"]))
        body.append(line)
    return f"dense test accuracy {100 * dense:.2f} %\n\n" + table(header, body)


# ------------------------------------------------------------------ part 2: global against layer-wise neurons
def parameters(model: MLP) -> int:
    return sum(p.data.size for p in compact(model).parameters())


def neurons_part(args: argparse.Namespace, train: Any, test: Any, models: list[MLP]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for fraction in NEURON_FRACTIONS:
        runs = []
        for seed, dense in enumerate(models):
            layer = copy.deepcopy(dense)
            prune(layer, fraction, "l2", "layer", structure="neurons")
            target = parameters(layer)
            best = None
            for removed in range(1, 127):                    # the global count closest in parameters
                trial = copy.deepcopy(dense)
                try:
                    prune(trial, removed / 128, "l2", "global", structure="neurons")
                except ValueError:
                    break
                gap = abs(parameters(trial) - target)
                if best is None or gap < best[0]:
                    best = (gap, removed, trial)
            _, removed, glob = best
            run = {}
            for label, model in (("layer", layer), ("global", glob)):
                run[label] = {"sizes": compact(model).sizes, "parameters": parameters(model),
                              "pruned": evaluate(model, test)["accuracy"],
                              "recovered": recovered(model, train, test, args.recovery_epochs, seed)}
            runs.append(run)
            print(f"neurons {fraction:.0%} seed {seed}: layer {run['layer']['sizes']} "
                  f"{run['layer']['parameters']} "
                  f"{run['layer']['pruned']:.4f}->{run['layer']['recovered']:.4f} | global "
                  f"{run['global']['sizes']} {run['global']['parameters']} {run['global']['pruned']:.4f}->"
                  f"{run['global']['recovered']:.4f}", flush=True)
        rows[str(fraction)] = {
            label: {"sizes": [r[label]["sizes"] for r in runs],
                    "parameters": statistics.fmean(r[label]["parameters"] for r in runs),
                    "pruned": statistics.fmean(r[label]["pruned"] for r in runs),
                    "recovered": statistics.fmean(r[label]["recovered"] for r in runs)}
            for label in ("layer", "global")}
    return rows


def neurons_table(rows: dict[str, Any]) -> str:
    body = []
    for fraction, cells in rows.items():
        for label in ("layer", "global"):
            c = cells[label]
            body.append([f"{float(fraction):.0%} of the layer-wise count", label,
                         " / ".join(str(s) for s in c["sizes"]), f"{c['parameters']:.0f}",
                         f"{100 * c['pruned']:.2f}", f"**{100 * c['recovered']:.2f}**"])
    return table(["neurons", "scope", "sizes after compact (per seed)", "parameters (mean)",
                  "test right after", "after recovery"], body)


# ------------------------------------------------------------------ part 3: do blocks make X @ W faster?
Packed = list[tuple[slice, np.ndarray, np.ndarray]]


def pack_blocks(W: np.ndarray, keep: np.ndarray, block: tuple[int, int]) -> Packed:
    """A block-sparse format built once: per block column, the input rows its kept blocks read and those
    blocks' weights stacked, ``(columns, rows, W_packed)``. Shapes: W (d, h), keep (⌈d/r⌉, ⌈h/c⌉) bool."""
    r, c = block
    packed = []
    for j in range(keep.shape[1]):
        columns = slice(j * c, min((j + 1) * c, W.shape[1]))
        kept = np.flatnonzero(keep[:, j])
        rows = np.concatenate([np.arange(i * r, min((i + 1) * r, W.shape[0])) for i in kept]
                              or [np.zeros(0, np.int64)])
        packed.append((columns, rows, np.ascontiguousarray(W[rows, columns])))
    return packed


def block_sparse_product(X: np.ndarray, packed: Packed, h: int) -> np.ndarray:
    """``X @ W`` from the packed kept blocks: one gather and one product per block column (no loop over
    samples or weights). Shapes: X (n, d) -> (n, h)."""
    out = np.zeros((X.shape[0], h), dtype=X.dtype)
    for columns, rows, W_packed in packed:
        if rows.size:
            out[:, columns] = X[:, rows] @ W_packed
    return out


def interleaved_best(functions: list[Any], repeats: int, number: int = 5) -> list[float]:
    """The fastest mean seconds per call (over ``number`` calls) of each function in ``repeats`` rounds,
    timed in turn: fair, and the least disturbed by the other processes that share the CPU."""
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for index, function in enumerate(functions):
            times[index].append(best_of(function, repeat=1, number=number))
    return [min(t) for t in times]


def blocks_part(args: argparse.Namespace, test: Any, models: list[MLP]) -> dict[str, Any]:
    X = np.ascontiguousarray(test.X, dtype=np.float32)
    rows: dict[str, Any] = {}
    with blas_threads(args.threads):
        W_dense = models[0].layers[0].W.data.astype(np.float32)
        for block in BLOCKS:
            model = copy.deepcopy(models[0])
            prune(model, {"layers.0.W": 0.9}, "magnitude", structure="blocks", block=block)
            W = model.layers[0].W.data
            keep = select.block_scores(model.layers[0].W.mask.astype(np.float64), block)[0] > 0
            packed = pack_blocks(W, keep, block)
            assert np.allclose(block_sparse_product(X, packed, W.shape[1]), X @ W, atol=1e-4)
            dense_time, masked_time, sparse_time = interleaved_best(
                [lambda: X @ W_dense, lambda W=W: X @ W,
                 lambda p=packed, h=W.shape[1]: block_sparse_product(X, p, h)], args.repeats)
            rows[f"{block[0]}x{block[1]}"] = {"kept_blocks": int(keep.sum()), "blocks": int(keep.size),
                                              "dense_ms": 1e3 * dense_time, "masked_ms": 1e3 * masked_time,
                                              "block_sparse_ms": 1e3 * sparse_time}
            print(f"blocks {block}: dense {1e3 * dense_time:.3f} ms, masked {1e3 * masked_time:.3f} ms, "
                  f"block-sparse {1e3 * sparse_time:.3f} ms ({int(keep.sum())}/{keep.size} blocks)",
                  flush=True)
    return rows


def blocks_table(rows: dict[str, Any]) -> str:
    body = [[name, f"{c['kept_blocks']} / {c['blocks']}", f"{c['dense_ms']:.3f}", f"{c['masked_ms']:.3f}",
             f"{c['masked_ms'] / c['dense_ms']:.2f}", f"{c['block_sparse_ms']:.3f}",
             f"{c['block_sparse_ms'] / c['dense_ms']:.2f}"] for name, c in rows.items()]
    return table(["block", "kept blocks", "dense W (ms)", "block-masked W, dense storage (ms)", "ratio",
                  "only the kept blocks, gathered (ms)", "ratio"], body)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with blas_threads(args.threads):
        train, validation, test, models = dense_models(args)
    dense = statistics.fmean(evaluate(m, test)["accuracy"] for m in models)
    payload: dict[str, Any] = {"dense_test_accuracy": dense, "seeds": args.seeds, "epochs": args.epochs,
                               "recovery": {"method": "finetune", "epochs": args.recovery_epochs, "lr": 1e-3,
                                            "optimizer": "adam", "batch_size": 128},
                               "train_rows": len(train), "validation_rows": len(validation),
                               "test_rows": len(test), "budget": args.budget}
    print(machine_line())
    if "allocation" in args.parts:
        with blas_threads(args.threads):
            payload["allocation"] = allocation_part(args, train, validation, test, models)
        print(allocation_table(payload["allocation"], dense))
    if "neurons" in args.parts:
        with blas_threads(args.threads):
            payload["neurons"] = neurons_part(args, train, test, models)
        print(neurons_table(payload["neurons"]))
    if "blocks" in args.parts:
        payload["blocks"] = blocks_part(args, test, models)
        print(blocks_table(payload["blocks"]))
    print(f"wrote {write_json('allocation', payload)}")


if __name__ == "__main__":
    main()
