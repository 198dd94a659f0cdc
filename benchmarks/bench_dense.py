"""Benchmark: the document's dense baseline, 784-64-64-10, Adam (lr 1e-3), 10 epochs, batch 128.

Trains it with both gradient engines over several seeds on ``mnist-5k`` (embedded, always) and on
``fashion-mnist`` and ``mnist`` when their files are present locally (never downloads), then prints a
table (test accuracy mean ± std over the seeds, seconds per training epoch for each engine) and writes
every run to ``benchmarks/results/bench_dense.json``. The document reports 97.62 % on MNIST.

    python benchmarks/bench_dense.py                            # 3 seeds, 10 epochs, every dataset found
    python benchmarks/bench_dense.py --seeds 1 --epochs 2 --datasets mnist-5k      # a quick look
    python benchmarks/bench_dense.py --threads 1                # pin BLAS to one thread (see README)

``--threads`` sets ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` before NumPy is
imported, which is why NumPy and tinyprune are imported inside ``run``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

DATASETS = ("mnist-5k", "fashion-mnist", "mnist")
ENGINES = ("backprop", "autograd")
DOCUMENT_ACCURACY = 0.9762          # the document's MNIST test accuracy for this recipe
RESULTS = Path(__file__).resolve().parent / "results" / "bench_dense.json"
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated, from {DATASETS} (default: all; missing ones are skipped)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds 0..N-1 (default: 3)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (default: 10)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated (default: both)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (default: the library's own choice)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default: {RESULTS})")
    args = parser.parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.engines = [e for e in args.engines.split(",") if e]
    unknown = [d for d in args.datasets if d not in DATASETS] + [e for e in args.engines if e not in ENGINES]
    if unknown or args.seeds < 1 or args.epochs < 1:
        parser.error(f"bad --datasets/--engines {unknown} or --seeds/--epochs < 1")
    return args


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import numpy as np

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 (only informative)
        blas = "unknown"
    return {"nproc": os.cpu_count(), "cpu": cpu, "numpy": np.__version__, "blas": blas,
            "python": platform.python_version(), "platform": platform.platform(),
            "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES}}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    import tinyprune as tp
    from tinyprune.data import load
    from tinyprune.errors import DataError
    from tinyprune.fast.optim import Adam
    from tinyprune.training import evaluate, fit

    report: dict[str, Any] = {
        "recipe": {"sizes": [784, 64, 64, 10], "optimizer": "adam", "lr": args.lr, "epochs": args.epochs,
                   "batch_size": args.batch_size, "seeds": list(range(args.seeds)), "engines": args.engines},
        "document_accuracy": DOCUMENT_ACCURACY, "machine": machine(), "tinyprune": tp.__version__,
        "datasets": {}, "runs": []}
    for name in args.datasets:
        try:
            splits = load(name, download=False)
        except DataError as error:
            print(f"{name}: skipped ({str(error).splitlines()[0]})", flush=True)
            report["datasets"][name] = {"skipped": str(error).splitlines()[0]}
            continue
        summary: dict[str, Any] = {"train": len(splits.train), "test": len(splits.test)}
        for engine in args.engines:
            accuracies, seconds = [], []
            for seed in range(args.seeds):
                model = tp.MLP([splits.train.X.shape[1], 64, 64, splits.num_classes], seed=seed)
                started = time.perf_counter()
                history = fit(model, splits.train, epochs=args.epochs, batch_size=args.batch_size,
                              optimizer=Adam(model.parameters(), lr=args.lr), engine=engine, seed=seed,
                              progress=False)
                scores = evaluate(model, splits.test)
                accuracies.append(scores["accuracy"])
                seconds.extend(history.seconds)
                report["runs"].append({"dataset": name, "engine": engine, "seed": seed, **scores,
                                       "train_loss": history.loss[-1], "train_accuracy": history.accuracy[-1],
                                       "seconds_per_epoch": history.seconds,
                                       "wall_seconds": time.perf_counter() - started})
                print(f"{name:14s} {engine:9s} seed {seed}: test accuracy {scores['accuracy']:.4f}  "
                      f"{np.mean(history.seconds):.3f} s/epoch", flush=True)
            summary[engine] = {
                "accuracy_mean": statistics.fmean(accuracies),
                "accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                "seconds_per_epoch": statistics.fmean(seconds)}
        report["datasets"][name] = summary
    return report


def table(report: dict[str, Any]) -> str:
    engines = report["recipe"]["engines"]
    header = ["dataset", "train/test"] + [f"test acc % ({e})" for e in engines] + [f"s/epoch ({e})"
                                                                                  for e in engines]
    rows = [header]
    for name, result in report["datasets"].items():
        if "skipped" in result:
            rows.append([name, "not found: skipped"] + [""] * (len(header) - 2))
            continue
        rows.append([name, f"{result['train']}/{result['test']}"]
                    + [f"{100 * result[e]['accuracy_mean']:.2f} ± {100 * result[e]['accuracy_std']:.2f}"
                       for e in engines]
                    + [f"{result[e]['seconds_per_epoch']:.3f}" for e in engines])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    seeds = len(report["recipe"]["seeds"])
    lines.append(f"(mean ± sample std over {seeds} seed(s), {report['recipe']['epochs']} epochs; "
                 f"the document: {100 * report['document_accuracy']:.2f} % on MNIST)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(args.threads)
        if "numpy" in sys.modules:
            print("warning: NumPy was already imported; --threads may have no effect", file=sys.stderr)
    started = time.perf_counter()
    report = run(args)
    report["total_seconds"] = time.perf_counter() - started
    report["command"] = " ".join(["python", "benchmarks/bench_dense.py", *(argv or sys.argv[1:])])
    print()
    print(table(report))
    machine_info = report["machine"]
    threads = machine_info["threads"]["OPENBLAS_NUM_THREADS"] or "default"
    print(f"\nmachine: {machine_info['nproc']} CPUs, {machine_info['cpu']}, numpy {machine_info['numpy']} "
          f"({machine_info['blas']}), BLAS threads {threads}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
