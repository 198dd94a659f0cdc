"""Peak resident memory of training on 60,000 samples, against twice the float32 data plus the model.

Each case runs in a fresh Python subprocess, which reports its own peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux) when it ends:

- ``import``: Python with NumPy and tinyprune imported (the interpreter's own share);
- ``data``: the above plus the 60,000 training rows as float32 (fashion-mnist where installed, else the
  embedded mnist-5k repeated);
- ``fit backprop`` / ``fit autograd``: the above plus one epoch of the document's recipe
  (``MLP([784, 64, 64, 10])``, batch 128, Adam) through ``tinyprune.fit``.

Target: the peak stays under ``2 x (bytes of X and y + bytes of the model's parameters)``. Besides the
process's peak, the peak while training alone is read from ``/proc/self/status`` (``VmHWM``, reset by
writing 5 to ``/proc/self/clear_refs`` after loading): loading the data, not training, sets the peak.
Writes ``benchmarks/results/memory.json``.

    python benchmarks/bench_memory.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import machine_line, table, write_json

CHILD = r"""
import json, resource, sys
import numpy as np
sys.path.insert(0, {here!r})
from bench_train import training_data
from tinyprune.core.nn import MLP
case, samples = sys.argv[1], int(sys.argv[2])
report = {{}}
if case != "import":
    data, name = training_data("auto", samples)
    report.update(dataset=name, data_bytes=data.X.nbytes + data.y.nbytes)
    model = MLP([784, 64, 64, 10], seed=0)
    report["model_bytes"] = sum(p.data.nbytes for p in model.parameters())
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    report["after_load_bytes"] = status("VmRSS")
    report["load_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if case.startswith("fit"):
        from tinyprune.training import fit
        try:   # reset the kernel's peak (VmHWM), so that it measures the training alone
            open("/proc/self/clear_refs", "w").write("5")
            report["training_peak_bytes"] = None
        except OSError:
            pass
        fit(model, data, epochs=1, batch_size=128, engine=case.split()[1], progress=False)
        if "training_peak_bytes" in report:
            report["training_peak_bytes"] = status("VmHWM")
# (clearing VmHWM resets ru_maxrss too: the process peak is the larger of the two peaks)
report["peak_bytes"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                           report.get("load_peak_bytes", 0))
print(json.dumps(report))
"""

CASES = ("import", "data", "fit backprop", "fit autograd")


def measure(case: str, samples: int) -> dict:
    """Run one case in a fresh interpreter and return what it reported."""
    code = CHILD.format(here=str(Path(__file__).resolve().parent))
    result = subprocess.run([sys.executable, "-c", code, case, str(samples)], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    results = {case: measure(case, args.samples) for case in CASES}
    budget_base = results["data"]["data_bytes"] + results["data"]["model_bytes"]
    limit = 2 * budget_base
    mib = 1 << 20
    data = results["data"]
    print(f"\n{data['dataset']}, {args.samples:,} samples: data {data['data_bytes'] / mib:.1f} MiB, "
          f"model {data['model_bytes'] / 1024:.0f} KiB; limit 2 x (data + model) = {limit / mib:.1f} MiB\n")

    def cell(value: int | None) -> str:
        return "-" if value is None else f"{value / mib:.1f}"

    print(table(["case", "process peak RSS MiB", "RSS after loading MiB", "peak while training MiB",
                 "process peak / (data + model)", "under the limit"],
                [[case, cell(r["peak_bytes"]), cell(r.get("after_load_bytes")),
                  cell(r.get("training_peak_bytes")), f"{r['peak_bytes'] / budget_base:.2f}",
                  "yes" if r["peak_bytes"] < limit else "NO"]
                 for case, r in results.items()]))
    print(f"\nmachine: {machine_line()}")
    if not args.no_json:
        path = write_json("memory", {"samples": args.samples, "limit_bytes": limit, "cases": results})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
