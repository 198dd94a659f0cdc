"""What every benchmark shares: the machine it ran on, a timer, medians, and writing results as JSON.

Run the benchmarks from the repository root, e.g. ``python benchmarks/bench_train.py``; each prints a
Markdown table and writes ``benchmarks/results/<name>.json`` with the same numbers, the command and
the machine (``machine()``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The processor's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas() -> list[dict[str, Any]]:
    """The BLAS libraries NumPy loaded and the kernel each runs (threadpoolctl), if installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl not installed; see numpy.show_config()"}]
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{key: info.get(key) for key in keys} for info in threadpool_info()]


def git_revision() -> str:
    """The commit the benchmark ran at, with ``+dirty`` if the tree had uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """nproc, CPU model, Python, NumPy, BLAS (kernel and threads) and the OpenBLAS variables in force."""
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "git": git_revision(),
        "tinyprune": _package_path(),
    }


def _package_path() -> str:
    """Where the tinyprune that ran was imported from (``PYTHONPATH`` may point at another tree)."""
    import tinyprune

    return str(Path(tinyprune.__file__).resolve().parent)


def machine_line(info: dict[str, Any] | None = None) -> str:
    """One Markdown line describing the machine, for the README's tables."""
    info = info or machine()
    libs = "; ".join(f"{b.get('internal_api')} {b.get('version')} kernel {b.get('architecture')}, "
                     f"{b.get('num_threads')} threads" for b in info["blas"] if "internal_api" in b)
    core = info["OPENBLAS_CORETYPE"]
    return (f"{info['nproc']} cores, {info['cpu']}; Python {info['python']}, NumPy {info['numpy']}; "
            f"BLAS: {libs or 'unknown'}; OPENBLAS_CORETYPE={core or 'unset'}; git {info['git']}")


def blas_threads(threads: int) -> contextlib.AbstractContextManager[Any]:
    """Limit the BLAS to ``threads`` threads for a block (threadpoolctl); 0 leaves it as it is.

    On a busy two-core machine OpenBLAS's second thread waits for a core that another process holds,
    and the small products of this recipe get many times slower; one thread measures steadily.
    """
    if threads <= 0:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl is not installed: set OPENBLAS_NUM_THREADS before starting instead",
              file=sys.stderr)
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def seconds(function: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call of ``function``."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def best_of(function: Callable[[], Any], repeat: int = 5, number: int = 1) -> float:
    """The median over ``repeat`` measurements of the mean time of ``number`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            function()
        times.append((time.perf_counter() - started) / number)
    return statistics.median(times)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def command() -> str:
    """The command line that ran this benchmark, as one would type it from the repository root."""
    return "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the command and the machine) to ``benchmarks/results/<name>.json``."""
    return write_json_at(RESULTS / f"{name}.json", payload)


def write_json_at(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the command and the machine) to ``path``, atomically: a benchmark that is
    stopped half-way leaves the previous results whole (``tinyprune.files.atomic_write``)."""
    from tinyprune.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": command(), "machine": machine(), **payload}
    return atomic_write(path, json.dumps(record, indent=2, default=float) + "\n")


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
