"""Peak memory of reading and exporting a big checkpoint, against the bytes of its parameters.

A 784-4096-4096-10 MLP (20.0 million float32 parameters, 80 MB) is saved dense and pruned to 90 % (global
magnitude) by one process; each case then runs in a fresh interpreter that measures, with ``tracemalloc``
(NumPy reports its array buffers to it), the peak of what was allocated during the call alone:

- ``load dense`` / ``load pruned``: ``tinyprune.checkpoint.load(path)``;
- ``import safetensors``: ``tinyprune.interop.import_model`` of the pruned model written as safetensors;
- ``export --masks``: ``tinyprune export pruned.npz --out m.safetensors --masks`` (load, then write).

Target: a peak of at most 2 x the parameter bytes. Writes ``benchmarks/results/load_memory.json``.

    python benchmarks/bench_load_memory.py            # --sizes 784,1024,1024,10 for a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from common import machine_line, table, write_json

MAKE = r"""
import sys
from tinyprune import checkpoint, interop, prune
from tinyprune.core.nn import MLP
sizes, folder = [int(s) for s in sys.argv[1].split(",")], sys.argv[2]
model = MLP(sizes, seed=0)
checkpoint.save(f"{folder}/dense.npz", model)
prune.magnitude(model, 0.9, scope="global")
checkpoint.save(f"{folder}/pruned.npz", model)
interop.export_model(f"{folder}/pruned.safetensors", model)
"""

MEASURE = r"""
import json, sys, tracemalloc
from tinyprune import checkpoint, cli, interop
case, folder = sys.argv[1], sys.argv[2]
calls = {
    "load dense": lambda: checkpoint.load(f"{folder}/dense.npz"),
    "load pruned": lambda: checkpoint.load(f"{folder}/pruned.npz"),
    "import safetensors": lambda: interop.import_model(f"{folder}/pruned.safetensors"),
    "export --masks": lambda: cli.main(["export", f"{folder}/pruned.npz", "--masks", "--overwrite",
                                        "--out", f"{folder}/out.safetensors"]),
}
tracemalloc.start()
result = calls[case]()
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"peak_bytes": peak}))
"""

CASES = ("load dense", "load pruned", "import safetensors", "export --masks")


def run(code: str, *argv: str) -> str:
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          check=True).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="784,4096,4096,10")
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    parameters = sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))
    parameter_bytes = 4 * parameters
    with tempfile.TemporaryDirectory() as folder:
        run(MAKE, args.sizes, folder)
        results = {case: json.loads(run(MEASURE, case, folder).strip().splitlines()[-1]) for case in CASES}
    mib = 1 << 20
    print(f"\nMLP({sizes}): {parameters:,} float32 parameters = {parameter_bytes / mib:.1f} MiB; "
          f"target: peak <= 2 x that\n")
    print(table(["case", "peak MiB (tracemalloc)", "peak / parameter bytes", "<= 2x"],
                [[case, f"{r['peak_bytes'] / mib:.1f}", f"{r['peak_bytes'] / parameter_bytes:.2f}",
                  "yes" if r["peak_bytes"] <= 2 * parameter_bytes else "NO"] for case, r in results.items()]))
    print(f"\nmachine: {machine_line()}")
    if not args.no_json:
        path = write_json("load_memory", {"sizes": sizes, "parameter_bytes": parameter_bytes,
                                          "cases": results})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
