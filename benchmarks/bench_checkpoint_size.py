"""Bytes on disk of the document's model, dense, pruned and compacted, in every format tinyprune writes.

The model: ``MLP([784, 64, 64, 10])`` trained with the document's recipe (Adam 1e-3, batch 128, 10 epochs,
seed 0) on the embedded ``mnist-5k``. Then, each from that dense model:

- ``magnitude s``: global magnitude pruning to sparsity ``s`` (``tp.prune.magnitude(model, s)``);
- ``magnitude 90 % compacted``: the same at 90 %, then ``tp.prune.compact`` (dead neurons removed; what
  ``tinyprune export --compact`` writes);
- ``neurons 50 %``: half of each hidden layer's neurons pruned
  (``tp.prune.neurons(model, 0.5, scope="layer")``), masked, and compacted.

Columns: the tinyprune checkpoint (format 2: survivors + packed bits or indices, zip-compressed), its
ratio to the dense model's checkpoint, the same model in the format-1 layout (dense values + a bool mask
per masked array, ``np.savez``; what ``checkpoint.save`` wrote before), PyTorch safetensors and Keras 3
``.weights.h5`` (both dense: their plain layouts have no place for a mask; zeros are stored as zeros), and
how each masked matrix was encoded. Every checkpoint is loaded back and checked (same weights and masks).
Writes ``benchmarks/results/checkpoint_size.json``.

    python benchmarks/bench_checkpoint_size.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import machine_line, table, write_json

import tinyprune as tp
from tinyprune import checkpoint, interop

SIZES = [784, 64, 64, 10]
SPARSITIES = (0.5, 0.9, 0.95, 0.98)


def trained_model(epochs: int) -> tp.MLP:
    data = tp.data.load("mnist-5k")
    model = tp.MLP(SIZES, seed=0)
    tp.fit(model, data.train, epochs=epochs, batch_size=128, seed=0, progress=False)
    return model


def version_1_bytes(model: tp.MLP, path: Path) -> int:
    """The size of ``model`` in the format-1 layout (dense values, bool masks, uncompressed)."""
    arrays = {"format": np.array(checkpoint.MARKER), "version": np.array(1, dtype=np.int64),
              "model.json": np.frombuffer(json.dumps({"class": "MLP", **model.config()}).encode(), np.uint8),
              "meta.json": np.frombuffer(b"{}", np.uint8)}
    for name, parameter in model.named_parameters():
        arrays[f"param/{name}"] = parameter.data
        if parameter.mask is not None:
            arrays[f"mask/{name}"] = parameter.mask
    arrays["sha256"] = np.array(checkpoint._digest(arrays))
    np.savez(path, **arrays)
    return os.path.getsize(path)


def encodings(path: Path) -> str:
    """How each masked array was stored: ``layers.0.W:index`` or ``:bits`` (``dense`` when unmasked)."""
    with np.load(path) as archive:
        kinds = [f"{name.split('/', 1)[1]}:{name.split('/')[0]}" for name in archive.files
                 if name.startswith(("bits/", "index/")) and name.endswith(".W")]
    return ", ".join(sorted(kinds)) or "dense"


def measure(label: str, model: tp.MLP, folder: Path, dense_bytes: int | None) -> dict[str, Any]:
    path = checkpoint.save(folder / f"{label}.npz", model)
    restored = checkpoint.load(path).model
    for p, q in zip(model.parameters(), restored.parameters()):
        assert np.array_equal(p.data, q.data), label
        assert (p.mask is None and q.mask is None) or np.array_equal(p.mask, q.mask), label
    size = path.stat().st_size
    return {
        "model": label, "sizes": model.sizes, "parameters": tp.metrics.count_parameters(model),
        "nonzeros": tp.metrics.count_nonzeros(model), "checkpoint_bytes": size,
        "ratio_to_dense": size / (dense_bytes or size),
        "version_1_bytes": version_1_bytes(model, folder / f"{label}.v1.npz"),
        "safetensors_bytes": interop.export_model(folder / f"{label}.safetensors", model).stat().st_size,
        "keras_h5_bytes": interop.export_model(folder / f"{label}.weights.h5", model).stat().st_size,
        "encoding": encodings(path),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="dense training epochs (default 10)")
    args = parser.parse_args(argv)
    dense = trained_model(args.epochs)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        rows.append(measure("dense", dense, folder, None))
        dense_bytes = rows[0]["checkpoint_bytes"]
        for sparsity in SPARSITIES:
            model = tp.checkpoint.load(checkpoint.save(folder / "copy.npz", dense)).model
            tp.prune.magnitude(model, sparsity, scope="global")
            rows.append(measure(f"magnitude {sparsity:.0%}", model, folder, dense_bytes))
            if sparsity == 0.9:
                rows.append(measure("magnitude 90% compacted", tp.prune.compact(model), folder, dense_bytes))
        model = tp.checkpoint.load(folder / "copy.npz").model
        tp.prune.neurons(model, 0.5, scope="layer")
        rows.append(measure("neurons 50%", model, folder, dense_bytes))
        rows.append(measure("neurons 50% compacted", tp.prune.compact(model), folder, dense_bytes))
    header = ["model", "sizes", "nonzeros", "checkpoint bytes", "x dense", "format-1 bytes",
              "safetensors bytes", "Keras .weights.h5 bytes", "masked W stored as"]
    cells = [[r["model"], r["sizes"], f"{r['nonzeros']:,}", f"{r['checkpoint_bytes']:,}",
              f"{r['ratio_to_dense']:.3f}", f"{r['version_1_bytes']:,}", f"{r['safetensors_bytes']:,}",
              f"{r['keras_h5_bytes']:,}", r["encoding"]] for r in rows]
    print(table(header, cells))
    print(machine_line())
    path = write_json("checkpoint_size", {"epochs": args.epochs, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
