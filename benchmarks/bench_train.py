"""Seconds per epoch of the document's recipe against the matrix-multiply floor.

The recipe: ``MLP([784, 64, 64, 10])``, batch 128, Adam(lr=1e-3), cross-entropy, one epoch of 60,000
samples (fashion-mnist where it is installed, else the embedded mnist-5k repeated to 60,000 rows).
Three contestants run interleaved, one epoch each per round, in a rotating order:

- ``floor``: the eight matrix products of a step (3 forward, 5 backward: ``dW_3, δ_2, dW_2, δ_1,
  dW_1``) on the same shapes and the same batches, into preallocated outputs, and nothing else;
- ``backprop``: ``tinyprune.fit(engine="backprop")`` (the hand-derived chain rule);
- ``autograd``: ``tinyprune.fit(engine="autograd")`` (the graph of Tensors).

Prints the median of ``--runs`` rounds and the ratios ``backprop / floor`` and ``autograd / backprop``;
writes ``benchmarks/results/train.json``. ``--profile ENGINE`` instead prints cProfile's top entries
of one epoch.

``--compare PYTHON`` instead times ``tinyprune.fit`` (both engines, the document's recipe, public names
only) in this checkout against another one, in rounds that alternate between the two: each epoch runs in
a fresh process of this Python or of ``PYTHON`` (with ``--compare-path DIR`` put first on its
``PYTHONPATH``, e.g. an unpacked older commit), after one warm-up epoch in that process. Prints the medians
and the ratio this / other; writes ``benchmarks/results/train_compare.json``.

    python benchmarks/bench_train.py                     # 5 rounds, 60,000 samples
    python benchmarks/bench_train.py --runs 3 --samples 10000
    python benchmarks/bench_train.py --profile backprop
    python benchmarks/bench_train.py --compare /tmp/base/.venv/bin/python
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
from common import blas_threads, machine_line, median, table, write_json

from tinyprune.core.nn import MLP
from tinyprune.data import Dataset, load
from tinyprune.fast.optim import Adam

SIZES = [784, 64, 64, 10]
BATCH = 128


def training_data(dataset: str, samples: int) -> tuple[Dataset, str]:
    """``samples`` rows of fashion-mnist (if installed) or of mnist-5k repeated, float32."""
    name = dataset
    if dataset == "auto":
        try:
            splits, name = load("fashion-mnist", download=False), "fashion-mnist"
        except Exception:  # noqa: BLE001 (not installed: fall back to the embedded digits)
            splits, name = load("mnist-5k"), "mnist-5k"
    else:
        splits = load(dataset, download=False)
    X, y = splits.train.X, splits.train.y
    if samples > len(y):
        repeats = -(-samples // len(y))
        X, y, name = np.tile(X, (repeats, 1))[:samples], np.tile(y, repeats)[:samples], f"{name} repeated"
    return Dataset(np.ascontiguousarray(X[:samples], dtype=np.float32), y[:samples]), name


# ------------------------------------------------------------------ contestants
def floor_epoch(data: Dataset, batch_size: int) -> Callable[[], None]:
    """One epoch of the eight matrix products per step and nothing else (the cost no engine avoids)."""
    model = MLP(SIZES, seed=0)
    W1, W2, W3 = (layer.W.data for layer in model.layers)
    b = batch_size
    Z1, Z2, Z3 = (np.empty((b, h), np.float32) for h in SIZES[1:])
    D2, D1 = np.empty((b, SIZES[2]), np.float32), np.empty((b, SIZES[1]), np.float32)
    dW1, dW2, dW3 = (np.empty_like(W) for W in (W1, W2, W3))
    X = data.X

    def epoch() -> None:
        for start in range(0, X.shape[0], b):
            Xb = X[start:start + b]
            n = Xb.shape[0]
            z1, z2, z3, d2, d1 = Z1[:n], Z2[:n], Z3[:n], D2[:n], D1[:n]
            np.matmul(Xb, W1, out=z1)
            np.matmul(z1, W2, out=z2)
            np.matmul(z2, W3, out=z3)
            np.matmul(z2.T, z3, out=dW3)
            np.matmul(z3, W3.T, out=d2)
            np.matmul(z1.T, d2, out=dW2)
            np.matmul(d2, W2.T, out=d1)
            np.matmul(Xb.T, d1, out=dW1)

    return epoch


def fit_epoch(data: Dataset, batch_size: int, engine: str, loop: str) -> Callable[[], None]:
    """One epoch of the recipe with ``engine``: through ``tinyprune.fit`` or a plain loop."""
    model = MLP(SIZES, seed=0)
    optimizer = Adam(model.parameters(), lr=1e-3)
    epochs_done = [0]
    if loop == "fit":
        from tinyprune.training import fit

        def epoch() -> None:
            fit(model, data, epochs=1, batch_size=batch_size, optimizer=optimizer, engine=engine,
                progress=False, initial_epoch=epochs_done[0])
            epochs_done[0] += 1

        return epoch

    from tinyprune.core import backprop, losses
    from tinyprune.core.autograd import Tensor

    def plain_epoch() -> None:
        for Xb, yb in data.minibatches(batch_size, shuffle=True, rng=epochs_done[0]):
            if engine == "backprop":
                backprop.set_gradients(model, Xb, yb)
            else:
                model.zero_grad()
                losses.loss_tensor("cross_entropy", model(Tensor(Xb)), yb).backward()
            optimizer.step()
        epochs_done[0] += 1

    return plain_epoch


def profile(epoch: Callable[[], None], top: int) -> str:
    """cProfile's ``top`` entries by own time (tottime) over one epoch."""
    profiler = cProfile.Profile()
    profiler.enable()
    epoch()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds (one epoch per contestant each)")
    parser.add_argument("--samples", type=int, default=60_000, help="training rows per epoch")
    parser.add_argument("--dataset", default="auto", help="auto, fashion-mnist, mnist or mnist-5k")
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--loop", choices=("fit", "plain"), default="fit",
                        help="train through tinyprune.fit (default) or a plain loop")
    parser.add_argument("--profile", choices=("floor", "backprop", "autograd"),
                        help="print the cProfile top entries of one epoch instead")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (threadpoolctl); 0 leaves the library's default")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--no-json", action="store_true", help="do not write results/train.json")
    parser.add_argument("--name", default="train", help="write results/<name>.json (default: train)")
    parser.add_argument("--compare", metavar="PYTHON", help="time fit here against this Python's tinyprune")
    parser.add_argument("--compare-path", metavar="DIR", help="put DIR first on the other side's PYTHONPATH")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(args)
    with blas_threads(args.threads):
        return run(args)


# One epoch of tp.fit in a fresh process after a warm-up epoch; public names only, so any version runs it.
CHILD = """
import json, sys, time
import numpy as np
import tinyprune as tp
samples, batch, engine = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
train = tp.data.load("mnist-5k").train
X = np.tile(train.X, (-(-samples // len(train.y)), 1))[:samples]
y = np.tile(train.y, -(-samples // len(train.y)))[:samples]
data = tp.data.Dataset(np.ascontiguousarray(X, dtype=np.float32), y)
model = tp.MLP([784, 64, 64, 10], seed=0)
optimizer = tp.Adam(model.parameters(), lr=1e-3)
tp.fit(model, data, epochs=1, batch_size=batch, optimizer=optimizer, engine=engine, progress=False)
started, started_cpu = time.perf_counter(), time.process_time()
tp.fit(model, data, epochs=1, batch_size=batch, optimizer=optimizer, engine=engine, progress=False,
       initial_epoch=1)
print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - started_cpu,
                  "tinyprune": tp.__file__}))
"""


def child_epoch(python: str, path: str | None, args: argparse.Namespace, engine: str) -> dict:
    """Seconds of one ``tp.fit`` epoch in a fresh process of ``python`` (``path`` first on its PYTHONPATH)."""
    threads = str(args.threads or "")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
    env = {key: value for key, value in env.items() if value}
    env.pop("PYTHONPATH", None)
    if path:
        env["PYTHONPATH"] = path
    out = subprocess.run([python, "-c", CHILD, str(args.samples), str(args.batch_size), engine], env=env,
                         cwd=os.path.expanduser("~"), check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(args: argparse.Namespace) -> int:
    """``tp.fit`` here against ``args.compare``'s, rounds alternating which side goes first."""
    sides = {"this": (sys.executable, None), "other": (args.compare, args.compare_path)}
    engines = ("backprop", "autograd")
    seconds: dict[str, list[float]] = {f"{engine} {side}": [] for engine in engines for side in sides}
    cpu: dict[str, list[float]] = {key: [] for key in seconds}
    where = {}
    for run in range(args.runs):
        for engine in engines:
            for side in (("this", "other") if run % 2 == 0 else ("other", "this")):
                result = child_epoch(*sides[side], args, engine)
                seconds[f"{engine} {side}"].append(result["seconds"])
                cpu[f"{engine} {side}"].append(result["cpu"])
                where[side] = result["tinyprune"]
        print(f"round {run + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in seconds.items()),
              file=sys.stderr)
    medians = {key: median(values) for key, values in seconds.items()}
    cpu_medians = {key: median(values) for key, values in cpu.items()}
    ratios = {engine: medians[f"{engine} this"] / medians[f"{engine} other"] for engine in engines}
    cpu_ratios = {engine: cpu_medians[f"{engine} this"] / cpu_medians[f"{engine} other"]
                  for engine in engines}
    print(f"mnist-5k repeated: {args.samples} samples, batch {args.batch_size}, {SIZES}, Adam, tp.fit, "
          f"BLAS threads {args.threads or 'default'}, median of {args.runs} alternating rounds")
    print(f"this:  {where['this']}\nother: {where['other']}\n")
    print(table(["engine", "this s/epoch (wall)", "other s/epoch (wall)", "this / other (wall)",
                 "this / other (CPU)"],
                [[engine, f"{medians[f'{engine} this']:.3f}", f"{medians[f'{engine} other']:.3f}",
                  f"{ratios[engine]:.3f}", f"{cpu_ratios[engine]:.3f}"] for engine in engines]))
    print(f"\nmachine: {machine_line()}")
    if not args.no_json:
        path = write_json(f"{args.name}_compare", {
            "samples": args.samples, "batch_size": args.batch_size, "runs": args.runs, "this": where["this"],
            "other": where["other"], "seconds": seconds, "cpu_seconds": cpu, "median": medians,
            "cpu_median": cpu_medians, "ratios": ratios, "cpu_ratios": cpu_ratios})
        print(f"wrote {path}")
    return 0


def run(args: argparse.Namespace) -> int:

    data, name = training_data(args.dataset, args.samples)
    contestants = {
        "floor": floor_epoch(data, args.batch_size),
        "backprop": fit_epoch(data, args.batch_size, "backprop", args.loop),
        "autograd": fit_epoch(data, args.batch_size, "autograd", args.loop),
    }
    if args.profile:
        contestants[args.profile]()  # warm-up
        print(profile(contestants[args.profile], args.top))
        return 0

    for epoch in contestants.values():  # warm-up: first-touch of buffers, BLAS threads
        epoch()
    wall: dict[str, list[float]] = {key: [] for key in contestants}
    cpu: dict[str, list[float]] = {key: [] for key in contestants}
    order = list(contestants)
    for run in range(args.runs):
        for key in order[run % 3:] + order[:run % 3]:   # rotate who goes first
            started, started_cpu = time.perf_counter(), time.process_time()
            contestants[key]()
            wall[key].append(time.perf_counter() - started)
            cpu[key].append(time.process_time() - started_cpu)
        print(f"round {run + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in wall.items()),
              file=sys.stderr)
    medians = {key: median(values) for key, values in wall.items()}
    cpu_medians = {key: median(values) for key, values in cpu.items()}
    ratios = {"backprop/floor": medians["backprop"] / medians["floor"],
              "autograd/backprop": medians["autograd"] / medians["backprop"],
              "cpu backprop/floor": cpu_medians["backprop"] / cpu_medians["floor"],
              "cpu autograd/backprop": cpu_medians["autograd"] / cpu_medians["backprop"]}
    print(f"{name}: {len(data)} samples, batch {args.batch_size}, {SIZES}, Adam, loop={args.loop}, "
          f"BLAS threads {args.threads or 'default'}, median of {args.runs} rounds\n")
    rows = [[key, f"{medians[key]:.3f}", f"{min(wall[key]):.3f} – {max(wall[key]):.3f}",
             f"{cpu_medians[key]:.3f}"] for key in wall]
    print(table(["contestant", "median s/epoch (wall)", "min – max (wall)", "median CPU s/epoch"], rows))
    print()
    print(table(["ratio", "wall", "CPU", "target"],
                [["backprop / floor", f"{ratios['backprop/floor']:.2f}",
                  f"{ratios['cpu backprop/floor']:.2f}", "<= 1.5"],
                 ["autograd / backprop", f"{ratios['autograd/backprop']:.2f}",
                  f"{ratios['cpu autograd/backprop']:.2f}", "<= 1.3"]]))
    print(f"\nmachine: {machine_line()}")
    if not args.no_json:
        path = write_json(args.name, {"dataset": name, "samples": len(data), "batch_size": args.batch_size,
                                    "sizes": SIZES, "loop": args.loop, "runs": args.runs,
                                    "blas_threads": args.threads or "default",
                                    "seconds": wall, "cpu_seconds": cpu, "median": medians,
                                    "cpu_median": cpu_medians, "ratios": ratios})
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
