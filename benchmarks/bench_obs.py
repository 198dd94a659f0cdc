"""What OBS costs against the work it cannot avoid, and what the shared factorization gives up.

1. Cost: ``prune.obs.obs_prune(model, X, 0.9)`` (one factorization per layer shared by every unit) and
   ``obs_reference`` (the textbook's per-unit algorithm) on ``MLP([784, w, w, 10])`` (random weights,
   3,600 mnist-5k training rows), against the work any layer-wise OBS must do: each layer's Gram matrix
   ``Ã^T Ã`` and one Cholesky factorization of ``H`` (the "unavoidable" column). Goal: the shared one
   at most 6x the unavoidable at width 512; width 4096 in under a minute.
2. Quality: the default recipe's head start (OBS to 90 %, global scope, damping 1e-4, then
   ``recover.reconstruct``) on ``MLP([784, 64, 64, 10])`` trained 10 epochs with three seeds: the
   accuracy on the training rows after OBS alone and after the reconstruction, validation and test
   (the default run's splits), shared against reference.

One BLAS thread. Writes ``benchmarks/results/obs.json``.

    python benchmarks/bench_obs.py
    python benchmarks/bench_obs.py --widths 64 512 --reference-widths 64 512 --seeds 0
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import numpy as np
from common import blas_threads, machine_line, table, write_json

from tinyprune import recover
from tinyprune.core.nn import MLP
from tinyprune.data import load
from tinyprune.experiment.run import three_splits
from tinyprune.prune import obs
from tinyprune.prune.core import prune
from tinyprune.training import evaluate, fit

SPARSITY = 0.9


def unavoidable_seconds(model: MLP, X: np.ndarray, damping: float) -> float:
    """Each layer's ``H = Ã^T Ã / n + λ I`` and one Cholesky of it, on the dense model's layer inputs."""
    started = time.perf_counter()
    A = X.astype(np.float64)
    for index, layer in enumerate(model.layers):
        np.linalg.cholesky(obs._layer_hessian(A, damping))
        Z = A @ layer.W.data.astype(np.float64) + layer.b.data
        A = np.maximum(Z, 0) if index < len(model.layers) - 1 else Z
    return time.perf_counter() - started


def cost_row(width: int, X: np.ndarray, reference: bool, repeat: int) -> dict[str, Any]:
    """Seconds of the unavoidable work, of ``obs_prune`` and (if asked) of ``obs_reference`` at one width;
    the first two the least of ``repeat`` interleaved runs (the machine is shared)."""
    model = MLP([784, width, width, 10], seed=0)
    row: dict[str, Any] = {"width": width, "rows": X.shape[0]}
    unavoidable, times = [], []
    for _ in range(repeat):
        unavoidable.append(unavoidable_seconds(model, X, 0.01))
        shared = copy.deepcopy(model)
        started = time.perf_counter()
        obs.obs_prune(shared, X, SPARSITY)
        times.append(time.perf_counter() - started)
    row["unavoidable_s"], row["shared_s"] = min(unavoidable), min(times)
    row["reference_s"] = None
    if reference:
        slow = copy.deepcopy(model)
        started = time.perf_counter()
        obs.obs_reference(slow, X, SPARSITY)
        row["reference_s"] = time.perf_counter() - started
        row["same_masks"] = all(np.array_equal(a.W.mask, b.W.mask)
                                for a, b in zip(shared.layers, slow.layers))
    return row


def quality_row(seed: int, splits: tuple[Any, Any, Any]) -> dict[str, Any]:
    """The default head start by the shared and the reference OBS on one trained dense model."""
    train, val, test = splits
    dense = MLP([784, 64, 64, 10], seed=seed)
    fit(dense, train, epochs=10, batch_size=128, seed=seed, progress=False)
    row: dict[str, Any] = {"seed": seed}
    for name, function in (("shared", obs.obs_prune), ("reference", obs.obs_reference)):
        model, original = copy.deepcopy(dense), obs.obs_prune
        obs.obs_prune = function                       # the verb's global allocation, either algorithm
        try:
            started = time.perf_counter()
            prune(model, SPARSITY, "obs", scope="global", data=train.X, damping=1e-4)
            row[f"{name}_s"] = time.perf_counter() - started
        finally:
            obs.obs_prune = original
        row[f"{name}_train_after_obs"] = evaluate(model, train)["accuracy"]
        recover.reconstruct(model, dense, train.X, damping=1e-4)
        for split, rows in (("train", train), ("val", val), ("test", test)):
            row[f"{name}_{split}"] = evaluate(model, rows)["accuracy"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 512, 1024, 4096])
    parser.add_argument("--reference-widths", type=int, nargs="*", default=[64, 256, 512])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs at widths below 4096")
    args = parser.parse_args()
    train, val, test, _ = three_splits(load("mnist-5k"), 0.1, 0)
    with blas_threads(1):
        costs = [cost_row(w, train.X, w in args.reference_widths, args.repeat if w < 4096 else 1)
                 for w in args.widths]
        quality = [quality_row(seed, (train, val, test)) for seed in args.seeds]
    print(machine_line())
    print(f"\nOBS to {SPARSITY:.0%} per layer, MLP([784, w, w, 10]), {train.X.shape[0]} rows, "
          "one BLAS thread\n")
    print(table(["width", "unavoidable s", "shared s", "shared / unavoidable", "reference s",
                 "reference / unavoidable", "same masks"],
                [[r["width"], f"{r['unavoidable_s']:.2f}", f"{r['shared_s']:.2f}",
                  f"{r['shared_s'] / r['unavoidable_s']:.1f}x",
                  "-" if r["reference_s"] is None else f"{r['reference_s']:.2f}",
                  "-" if r["reference_s"] is None else f"{r['reference_s'] / r['unavoidable_s']:.1f}x",
                  r.get("same_masks", "-")] for r in costs]))
    if quality:
        print("\nthe default head start (OBS to 90 % global + reconstruction), MLP([784, 64, 64, 10])\n")
        keys = ["s", "train_after_obs", "train", "val", "test"]
        print(table(["seed", *[f"{a} {k}" for k in keys for a in ("shared", "reference")]],
                    [[r["seed"], *[f"{r[f'{a}_{k}']:.4f}" for k in keys for a in ("shared", "reference")]]
                     for r in quality]))
    write_json("obs", {"sparsity": SPARSITY, "costs": costs, "quality": quality})


if __name__ == "__main__":
    main()
