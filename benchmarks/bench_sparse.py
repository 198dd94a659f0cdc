"""Where unstructured sparsity starts to pay at inference: ``tinyprune.sparse`` against dense BLAS.

1. **One layer** ``Z = X W + b`` of width w x w (w = 256, 1024, 4096), every output keeping the same
   number of inputs (as OBS leaves them), at densities 20 ... 1 % and batches 1, 32, 1,000: the dense
   product (BLAS, zeros included) against the two compressed kernels of ``tinyprune.sparse``
   (``reduceat``: CSR rows and segmented sums; ``gather``: padded rows, one gather per slot). The
   crossover is the highest density at which the best compressed kernel beats dense.
2. **The whole model** ``MLP([784, w, w, 10])`` pruned to 90 / 95 / 98 % by magnitude (layer scope:
   unequal rows) and per unit (every output keeps as many inputs, as OBS leaves it): ``model(X)``
   against ``SparseMLP.from_model(model, batch=...)`` (kernels by ``tinyprune.sparse.choose``),
   beside compaction (``tinyprune.prune.compact``) of a model with 50 / 75 % of its hidden neurons
   removed, whose speed-up the FLOPs predict.
3. **``tp.predict``**, which picks the sparse path itself (``sparse.choose``) and builds it once per call,
   against the core's dense ``predict`` on the same pruned models, 10,000 rows in batches of 1,000: what a
   user gains without asking (the build included).

The least of ``--runs`` interleaved measurements (each the mean of as many calls as fit in 50 ms;
the least, because other processes share the machine), one BLAS thread.
Writes ``benchmarks/results/sparse.json``.

    python benchmarks/bench_sparse.py
    python benchmarks/bench_sparse.py --runs 3 --widths 256 1024
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import numpy as np
from common import blas_threads, machine_line, table, write_json

from tinyprune import sparse
from tinyprune.core import train as core_train
from tinyprune.core.nn import MLP
from tinyprune.prune import core
from tinyprune.prune.compact import compact
from tinyprune.training import predict

DENSITIES = (0.2, 0.1, 0.05, 0.02, 0.01)
BATCHES = (1, 32, 1000)


def mean_seconds(function: Any, budget: float = 0.05) -> float:
    """Mean seconds per call over as many calls as fit in about ``budget`` seconds (at least one)."""
    started, calls = time.perf_counter(), 0
    while calls == 0 or time.perf_counter() - started < budget:
        function()
        calls += 1
    return (time.perf_counter() - started) / calls


def equal_rows(width: int, density: float, seed: int = 0) -> np.ndarray:
    """A w x w float32 weight matrix whose every output (column) keeps ``round(density · w)`` inputs."""
    generator = np.random.default_rng(seed)
    kept = np.argsort(generator.random((width, width)), axis=0) < max(1, round(density * width))
    return np.where(kept, generator.normal(size=(width, width)), 0).astype(np.float32)


def layer_rows(width: int, runs: int) -> list[dict[str, Any]]:
    rows = []
    for density in DENSITIES:
        W = equal_rows(width, density)
        b = np.zeros(width, np.float32)
        layers = {kernel: sparse.build_layer(W, b, kernel) for kernel in sparse.KERNELS}
        for batch in BATCHES:
            XT = np.random.default_rng(1).random((width, batch), dtype=np.float32)
            times: dict[str, list[float]] = {kernel: [] for kernel in layers}
            for _ in range(runs):                                       # interleaved
                for kernel, layer in layers.items():
                    times[kernel].append(mean_seconds(lambda f=layer, x=XT: f(x)))
            median = {kernel: float(np.min(t)) for kernel, t in times.items()}
            best = min(("reduceat", "gather"), key=median.get)
            rows.append({"width": width, "density": density, "batch": batch, **{f"{k}_s": v for k, v in
                         median.items()}, "best_sparse": best, "speedup": median["dense"] / median[best],
                         "chosen": sparse.choose_kernel(W, batch)})
    return rows


def crossovers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per width and batch: the highest density at which the best compressed kernel beat dense."""
    out = []
    for width in sorted({r["width"] for r in rows}):
        for batch in BATCHES:
            wins = [r["density"] for r in rows
                    if r["width"] == width and r["batch"] == batch and r["speedup"] > 1]
            out.append({"width": width, "batch": batch, "crossover_density": max(wins) if wins else None})
    return out


def per_unit(model: MLP, sparsity: float) -> MLP:
    """Every output of every layer keeps its ``d - round(s · d)`` largest weights: the counts OBS leaves."""
    for layer in model.layers:
        W = layer.W.data
        keep = np.argsort(-np.abs(W), axis=0, kind="stable") < W.shape[0] - round(sparsity * W.shape[0])
        W[~keep] = 0
    return model


def model_rows(width: int, runs: int) -> list[dict[str, Any]]:
    dense = MLP([784, width, width, 10], seed=0)
    X = np.random.default_rng(2).random((1000, 784), dtype=np.float32)
    cases: list[tuple[str, Any]] = []
    for sparsity in (0.9, 0.95, 0.98):
        pruned = copy.deepcopy(dense)
        core.magnitude(pruned, sparsity, scope="layer")
        cases.append((f"{sparsity:.0%} of weights, layer magnitude", pruned))
        cases.append((f"{sparsity:.0%} of weights, per unit (as OBS)",
                      per_unit(copy.deepcopy(dense), sparsity)))
    for fraction in (0.5, 0.75):
        pruned = copy.deepcopy(dense)
        core.prune(pruned, fraction, criterion="l2", scope="layer", structure="neurons")
        cases.append((f"{fraction:.0%} of neurons, compacted", pruned))
    rows = []
    for label, masked in cases:
        for batch in (1, 1000):
            fast = compact(masked) if "neurons" in label else sparse.SparseMLP.from_model(masked, batch=batch)
            call = fast.logits if isinstance(fast, sparse.SparseMLP) else fast
            assert np.allclose(call(X[:50]), masked(X[:50]), rtol=1e-4, atol=1e-4)
            Xb = X[:batch]
            t_dense, t_fast = [], []
            for _ in range(runs):
                t_dense.append(mean_seconds(lambda m=masked, x=Xb: m(x)))
                t_fast.append(mean_seconds(lambda f=call, x=Xb: f(x)))
            rows.append({"width": width, "case": label, "batch": batch, "dense_s": float(np.min(t_dense)),
                         "fast_s": float(np.min(t_fast)), "speedup": float(np.min(t_dense) / np.min(t_fast)),
                         "kernels": fast.kernels if isinstance(fast, sparse.SparseMLP) else "compact "
                         + "-".join(map(str, fast.sizes))})
    return rows


def predict_rows(width: int, runs: int) -> list[dict[str, Any]]:
    """``tp.predict`` (its own choice, its build included) against the core's dense ``predict``."""
    dense = MLP([784, width, width, 10], seed=0)
    X = np.random.default_rng(3).random((10_000, 784), dtype=np.float32)
    rows = []
    cases = [(s, how) for s in (0.9, 0.95, 0.98) for how in ("layer magnitude", "per unit (as OBS)")]
    for sparsity, how in cases:
        pruned = copy.deepcopy(dense)
        if how == "per unit (as OBS)":
            per_unit(pruned, sparsity)
        else:
            core.magnitude(pruned, sparsity, scope="layer")
        assert np.array_equal(predict(pruned, X[:2000]), core_train.predict(pruned, X[:2000]))
        t_core, t_tp = [], []
        for _ in range(runs):
            t_core.append(mean_seconds(lambda m=pruned: core_train.predict(m, X), budget=0.2))
            t_tp.append(mean_seconds(lambda m=pruned: predict(m, X), budget=0.2))
        rows.append({"width": width, "sparsity": sparsity, "pruned_by": how, "rows": len(X),
                     "core_s": float(np.min(t_core)),
                     "tp_s": float(np.min(t_tp)), "speedup": float(np.min(t_core) / np.min(t_tp)),
                     "kernels": sparse.choose(pruned, 1000)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--model-widths", type=int, nargs="*", default=[256, 1024])
    args = parser.parse_args()
    with blas_threads(1):
        layers = [row for width in args.widths for row in layer_rows(width, args.runs)]
        models = [row for width in args.model_widths for row in model_rows(width, args.runs)]
        predicts = [row for width in args.model_widths for row in predict_rows(width, args.runs)]
    print(machine_line(), "\n")
    print(table(["width", "density", "batch", "dense ms", "reduceat ms", "gather ms", "best sparse / dense",
                 "choose"],
                [[r["width"], f"{r['density']:.0%}", r["batch"], f"{r['dense_s'] * 1e3:.3f}",
                  f"{r['reduceat_s'] * 1e3:.3f}", f"{r['gather_s'] * 1e3:.3f}", f"{r['speedup']:.2f}x",
                  r["chosen"]] for r in layers]))
    cross = crossovers(layers)
    print("\n" + table(["width", "batch", "sparse wins at density <="],
                       [[c["width"], c["batch"], "never (in 1-20 %)" if c["crossover_density"] is None
                         else f"{c['crossover_density']:.0%}"] for c in cross]))
    print("\n" + table(["width", "model", "batch", "masked dense ms", "sparse / compact ms", "speed-up",
                        "kernels"],
                       [[r["width"], r["case"], r["batch"], f"{r['dense_s'] * 1e3:.3f}",
                         f"{r['fast_s'] * 1e3:.3f}", f"{r['speedup']:.2f}x", r["kernels"]] for r in models]))
    print("\n" + table(["width", "weights pruned", "rows", "core predict ms",
                        "tp.predict ms", "speed-up", "kernels tp.predict chose"],
                       [[r["width"], f"{r['sparsity']:.0%}, {r['pruned_by']}", f"{r['rows']:,}",
                         f"{r['core_s'] * 1e3:.1f}",
                         f"{r['tp_s'] * 1e3:.1f}", f"{r['speedup']:.2f}x", "-".join(r["kernels"])]
                        for r in predicts]))
    write_json("sparse", {"layers": layers, "crossovers": cross, "models": models, "predict": predicts})


if __name__ == "__main__":
    main()
