"""What pruning buys at inference: compaction against the FLOP ratio, CSR against dense, bytes on disk.

1. **Neurons removed, then compacted.** ``prune(structure="neurons", criterion="l2", scope="layer")``
   removes 25 / 50 / 75 % of the hidden neurons of each hidden layer; ``tinyprune.prune.compact``
   turns the masked model into a smaller dense ``MLP``. The forward pass ``model(X)`` of the masked
   model (as many FLOPs as the dense one) is timed against the compact one's, at batch 1 and 1,000;
   the measured speed-up is compared with the FLOP ratio ``Σ d_in d_out`` before / after (target: at
   least 80 % of it at batch 1,000).
2. **Unstructured sparsity.** ``Z = X @ W`` with ``W`` pruned by magnitude to 50 ... 99 %: the dense
   product (BLAS, zeros included) against a compressed-sparse-row product written in NumPy
   (``csr_matmul``: gather, multiply, segment sums), batch 1 and 1,000. Dense wins wherever it wins.
3. **Bytes on disk** of the document's model pruned by magnitude (layer-wise): the checkpoint
   (``tinyprune.checkpoint.save``: dense values plus a bool mask) against two sparse encodings,
   ``values + bitmask`` (``np.packbits``) and ``values + indices`` (int32), checked to decode exactly.

Median of ``--runs`` measurements, each the mean of many calls. Writes ``benchmarks/results/inference.json``.

    python benchmarks/bench_inference.py
    python benchmarks/bench_inference.py --runs 3 --widths 64
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import best_of, blas_threads, machine_line, table, write_json

from tinyprune import checkpoint
from tinyprune.core.nn import MLP
from tinyprune.prune import core
from tinyprune.prune.compact import compact

FRACTIONS = (0.25, 0.5, 0.75)
BATCHES = (1, 1000)
SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.99)
CHUNK = 1 << 22          # values of the (rows, nnz) products csr_matmul builds at once (16 MiB of float32)


def flops(model: MLP) -> int:
    """Multiply-adds of one row through the model, times 2: ``2 Σ_l d_{l-1} d_l``."""
    return 2 * sum(a * b for a, b in zip(model.sizes[:-1], model.sizes[1:]))


def calls_for(batch: int) -> int:
    """How many forward passes one measurement averages (enough to outlast the timer's noise)."""
    return 400 if batch == 1 else 20


# ------------------------------------------------------------------ 1. compaction
def compaction(width: int, runs: int) -> list[dict[str, Any]]:
    dense = MLP([784, width, width, 10], seed=0)
    rows = []
    for fraction in FRACTIONS:
        masked = copy.deepcopy(dense)
        core.prune(masked, fraction, criterion="l2", scope="layer", structure="neurons")
        small = compact(masked)
        X = np.random.default_rng(0).random((max(BATCHES), 784), dtype=np.float32)
        assert np.allclose(masked(X), small(X), atol=1e-4), "compact changed the outputs"
        ratio = flops(masked) / flops(small)
        for batch in BATCHES:
            Xb = X[:batch]
            t_masked, t_small = [], []
            for _ in range(runs):           # interleaved
                t_masked.append(best_of(lambda m=masked, x=Xb: m(x), repeat=1, number=calls_for(batch)))
                t_small.append(best_of(lambda m=small, x=Xb: m(x), repeat=1, number=calls_for(batch)))
            speedup = float(np.median(t_masked) / np.median(t_small))
            rows.append({"width": width, "removed": fraction, "sizes": small.sizes, "batch": batch,
                         "masked_s": float(np.median(t_masked)), "compact_s": float(np.median(t_small)),
                         "flop_ratio": ratio, "speedup": speedup, "of_flop_ratio": speedup / ratio})
    return rows


# ------------------------------------------------------------------ 2. CSR against dense
def to_csr(W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``W`` (d_in, d_out) as CSR of ``W^T``: output unit j's nonzero weights ``data[indptr[j]:indptr[j+1]]``
    at inputs ``indices[...]`` (so a row of the CSR is what one output neuron reads)."""
    Wt = W.T
    nonzero = Wt != 0
    indptr = np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))]).astype(np.int64)
    rows, cols = np.nonzero(nonzero)
    return Wt[rows, cols], cols.astype(np.int64), indptr


def csr_matmul(X: np.ndarray, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """``Z = X @ W`` from the CSR of ``W^T``: ``Z[:, j] = Σ_k X[:, indices[k]] data[k]`` over row j's k.

    Gather the inputs each weight reads, multiply, and sum each output's segment (``np.add.reduceat``);
    an output with no weight left gets 0. Rows of X go in chunks so that the (rows, nnz) products stay
    under ``CHUNK`` values. Shapes: X (n, d_in) -> (n, d_out).
    """
    starts, empty = indptr[:-1], indptr[:-1] == indptr[1:]
    Z = np.zeros((X.shape[0], starts.size), dtype=X.dtype)
    if data.size == 0:
        return Z
    starts = np.minimum(starts, data.size - 1)
    rows = max(1, CHUNK // data.size)
    for first in range(0, X.shape[0], rows):
        products = X[first:first + rows, indices] * data               # (rows, nnz)
        Z[first:first + rows] = np.add.reduceat(products, starts, axis=1)
    Z[:, empty] = 0                                                   # reduceat copies, not sums, there
    return Z


def unstructured(shape: tuple[int, int], runs: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    W_dense = MLP([shape[0], shape[1]], seed=0).layers[0].W.data
    rows = []
    for sparsity in SPARSITIES:
        k = round(sparsity * W_dense.size)
        threshold = np.partition(np.abs(W_dense).ravel(), k - 1)[k - 1]
        W = np.where(np.abs(W_dense) > threshold, W_dense, 0).astype(np.float32)
        csr = to_csr(W)
        for batch in BATCHES:
            X = rng.random((batch, shape[0]), dtype=np.float32)
            assert np.allclose(csr_matmul(X, *csr), X @ W, rtol=1e-4, atol=1e-4)
            t_dense, t_csr = [], []
            for _ in range(runs):
                t_dense.append(best_of(lambda x=X, w=W: x @ w, repeat=1, number=calls_for(batch)))
                t_csr.append(best_of(lambda x=X, c=csr: csr_matmul(x, *c), repeat=1, number=calls_for(batch)))
            dense_s, csr_s = float(np.median(t_dense)), float(np.median(t_csr))
            rows.append({"shape": list(shape), "sparsity": sparsity, "nonzeros": int(csr[0].size),
                         "batch": batch, "dense_s": dense_s, "csr_s": csr_s, "csr_speedup": dense_s / csr_s,
                         "winner": "CSR" if csr_s < dense_s else "dense"})
    return rows


# ------------------------------------------------------------------ 3. bytes on disk
def encode_sparse(model: MLP, kind: str) -> dict[str, np.ndarray]:
    """The model's weights as ``values`` of the nonzero entries plus where they are: a ``bitmask``
    (``np.packbits``, n/8 bytes) or ``indices`` (int32 flat positions). Config as JSON bytes."""
    arrays: dict[str, np.ndarray] = {"config": np.frombuffer(repr(model.config()).encode(), np.uint8)}
    for name, parameter in model.named_parameters():
        flat = parameter.data.ravel()
        where = flat != 0
        arrays[f"values/{name}"] = flat[where]
        if kind == "bitmask":
            arrays[f"bitmask/{name}"] = np.packbits(where)
        else:
            arrays[f"indices/{name}"] = np.flatnonzero(where).astype(np.int32)
    return arrays


def decode_sparse(arrays: dict[str, np.ndarray], model: MLP) -> dict[str, np.ndarray]:
    """The dense weights back from ``encode_sparse``'s arrays (``model`` gives names and shapes)."""
    out = {}
    for name, parameter in model.named_parameters():
        flat = np.zeros(parameter.data.size, parameter.dtype)
        if f"bitmask/{name}" in arrays:
            where = np.unpackbits(arrays[f"bitmask/{name}"], count=flat.size).astype(bool)
        else:
            where = arrays[f"indices/{name}"]
        flat[where] = arrays[f"values/{name}"]
        out[name] = flat.reshape(parameter.shape)
    return out


def disk_bytes(sparsities: tuple[float, ...]) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for sparsity in (0.0, *sparsities):
            model = MLP([784, 64, 64, 10], seed=0)
            if sparsity:
                core.magnitude(model, sparsity, scope="layer")
            sizes = {}
            path = Path(folder, "model.npz")
            checkpoint.save(path, model)
            sizes["checkpoint (dense + bool masks)"] = os.path.getsize(path)
            np.savez_compressed(path, **{name: p.data for name, p in model.named_parameters()})
            sizes["dense values, zip-compressed"] = os.path.getsize(path)
            for kind in ("bitmask", "indices"):
                arrays = encode_sparse(model, kind)
                decoded = decode_sparse(arrays, model)
                assert all(np.array_equal(decoded[name], p.data) for name, p in model.named_parameters())
                with open(path, "wb") as file:
                    np.savez(file, **arrays)
                sizes[f"values + {kind}"] = os.path.getsize(path)
            rows.append({"sparsity": sparsity, "parameters": sum(p.data.size for p in model.parameters()),
                         "bytes": sizes})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 1024],
                        help="hidden widths of MLP([784, w, w, 10]) for the compaction table")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: the library's default)")
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    with blas_threads(args.threads):
        compacted = [row for width in args.widths for row in compaction(width, args.runs)]
        sparse = [row for shape in ((784, 64), (1024, 1024)) for row in unstructured(shape, args.runs)]
        info = machine_line()
    disk = disk_bytes((0.5, 0.9, 0.95))

    print(f"\nForward pass, masked (neurons pruned) vs compacted, median of {args.runs}\n")
    print(table(["model", "neurons removed", "compact sizes", "batch", "masked µs", "compact µs", "speed-up",
                 "FLOP ratio", "speed-up / FLOP ratio"],
                [[f"784-{r['width']}-{r['width']}-10", f"{r['removed']:.0%}", "-".join(map(str, r["sizes"])),
                  r["batch"], f"{1e6 * r['masked_s']:.1f}", f"{1e6 * r['compact_s']:.1f}",
                  f"{r['speedup']:.2f}", f"{r['flop_ratio']:.2f}", f"{r['of_flop_ratio']:.0%}"]
                 for r in compacted]))
    print(f"\nZ = X @ W, unstructured magnitude sparsity: dense BLAS vs CSR in NumPy, "
          f"median of {args.runs}\n")
    print(table(["W shape", "sparsity", "nonzeros", "batch", "dense µs", "CSR µs", "dense / CSR", "faster"],
                [[f"{r['shape'][0]}x{r['shape'][1]}", f"{r['sparsity']:.0%}", f"{r['nonzeros']:,}",
                  r["batch"], f"{1e6 * r['dense_s']:.1f}", f"{1e6 * r['csr_s']:.1f}",
                  f"{r['csr_speedup']:.2f}", r["winner"]] for r in sparse]))
    kinds = list(disk[0]["bytes"])
    print("\nBytes on disk, MLP([784, 64, 64, 10]) pruned by magnitude, each weight matrix to the "
          "sparsity (biases kept)\n")
    print(table(["sparsity", *kinds],
                [[f"{r['sparsity']:.0%}", *[f"{r['bytes'][k]:,}" for k in kinds]] for r in disk]))
    print(f"\nmachine: {info}")
    if not args.no_json:
        path = write_json("inference", {"runs": args.runs, "blas_threads": args.threads,
                                        "compaction": compacted, "unstructured": sparse, "disk": disk})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
