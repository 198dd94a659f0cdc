"""How each step of pruning and recovery grows with the width and with the calibration rows.

On ``MLP([784, w, w, 10])`` and mnist-5k's 3,600 training rows (the default run's split), one BLAS
thread, each step timed once per width (``--repeat`` to take the best of more):

- closed forms: ``obs`` (OBS to 90 %, global scope, damping 1e-4: the default recipe's head start, with
  one factorization per layer) and ``reconstruct`` (``recover.reconstruct`` of that mask);
- criteria: ``magnitude``, ``obd`` and ``taylor`` scores and selection (``prune.prune`` to 90 %, global);
- recovery: one epoch of training (Adam, batch 32, cross-entropy: the default recipe's optimizer and
  batch; its distillation adds one forward pass of the dense teacher);
- the default recipe end to end (``prune_and_recover`` on a dense model trained 10 epochs), at the
  widths in ``--recipe-widths``.

Then the same steps at width ``--rows-width`` on 900, 1,800 and 3,600 rows. Exponents are least-squares
slopes of log(seconds) against log(width) (or log(rows)) over the measured points; a width not measured
is extrapolated from them and marked so. Writes ``benchmarks/results/scaling.json``.

    python benchmarks/bench_scaling.py
    python benchmarks/bench_scaling.py --widths 64 128 256 --recipe-widths 64 --rows-width 128
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from typing import Any

import numpy as np
from bench_prune import timed
from common import blas_threads, machine_line, table, write_json

from tinyprune import recover
from tinyprune.core.nn import MLP
from tinyprune.data import load
from tinyprune.experiment.loop import prune_and_recover
from tinyprune.experiment.run import three_splits
from tinyprune.prune.core import prune
from tinyprune.training import fit

STEPS = ("obs", "reconstruct", "magnitude", "obd", "taylor", "recovery epoch")


def best_seconds(function: Callable[[Any], Any], prepare: Callable[[], Any], repeat: int) -> float:
    """The least wall-clock seconds of ``function(prepare())`` over ``repeat`` runs (``prepare`` untimed)."""
    return min(timed(function, prepare, repeat))


def step_seconds(width: int, train: Any, repeat: int) -> dict[str, float]:
    """Seconds of every step in ``STEPS`` at one width on ``train``'s rows."""
    dense = MLP([784, width, width, 10], seed=0)
    X, y = train.X, train.y
    fresh = lambda: copy.deepcopy(dense)                                    # noqa: E731
    pruned = fresh()
    prune(pruned, 0.9, "obs", scope="global", data=X, damping=1e-4)
    out = {"obs": best_seconds(lambda m: prune(m, 0.9, "obs", scope="global", data=X, damping=1e-4),
                               fresh, repeat),
           "reconstruct": best_seconds(lambda m: recover.reconstruct(m, dense, X, damping=1e-4),
                                       lambda: copy.deepcopy(pruned), repeat)}
    for criterion in ("magnitude", "obd", "taylor"):
        out[criterion] = best_seconds(lambda m, c=criterion: prune(m, 0.9, c, scope="global", data=(X, y)),
                                      fresh, repeat)
    out["recovery epoch"] = best_seconds(lambda m: fit(m, train, epochs=1, batch_size=32, progress=False),
                                         lambda: copy.deepcopy(pruned), repeat)
    return out


def recipe_seconds(width: int, splits: tuple[Any, Any, Any]) -> dict[str, Any]:
    """The default recipe end to end on a dense model trained 10 epochs (training not counted)."""
    model = MLP([784, width, width, 10], seed=0)
    fit(model, splits[0], epochs=10, batch_size=128, progress=False)
    report = prune_and_recover(model, splits)
    return {"width": width, "seconds": report.seconds, "closed_form_seconds": report.closed_form_seconds,
            "epochs_used": report.epochs_used}


def exponent(sizes: list[float], seconds: list[float]) -> float:
    """The slope of log(seconds) against log(size): seconds ∝ size^slope."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def extrapolate(sizes: list[float], seconds: list[float], size: float) -> float:
    """The fitted power law (over the two largest points, the regime the growth is heading to) at ``size``."""
    slope = exponent(sizes[-2:], seconds[-2:])
    return float(seconds[-1] * (size / sizes[-1]) ** slope)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--extrapolate-to", type=int, nargs="*", default=[2048, 4096])
    parser.add_argument("--recipe-widths", type=int, nargs="*", default=[64, 128, 256, 512])
    parser.add_argument("--rows-width", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    train, val, test, _ = three_splits(load("mnist-5k"), 0.1, 0)
    with blas_threads(1):
        by_width = {w: step_seconds(w, train, args.repeat) for w in args.widths}
        rows = [900, 1800, train.X.shape[0]]
        by_rows = {n: step_seconds(args.rows_width, train.subset(np.arange(n)), args.repeat) for n in rows}
        recipes = [recipe_seconds(w, (train, val, test)) for w in args.recipe_widths]
    widths = list(args.widths)
    fits = {step: {"width_exponent": exponent(widths, [by_width[w][step] for w in widths]),
                   "rows_exponent": exponent(rows, [by_rows[n][step] for n in rows]),
                   "extrapolated": {w: extrapolate(widths, [by_width[v][step] for v in widths], w)
                                    for w in args.extrapolate_to}} for step in STEPS}
    print(machine_line(), "\n")
    header = ["step", *[f"w={w} s" for w in widths],
              *[f"w={w} s (extrapolated)" for w in args.extrapolate_to],
              "exponent (width)", f"exponent (rows, w={args.rows_width})"]
    print(table(header, [[step, *[f"{by_width[w][step]:.3f}" for w in widths],
                          *[f"~{fits[step]['extrapolated'][w]:.1f}" for w in args.extrapolate_to],
                          f"{fits[step]['width_exponent']:.2f}", f"{fits[step]['rows_exponent']:.2f}"]
                         for step in STEPS]))
    if recipes:
        print("\n" + table(["width", "default recipe s", "of which closed forms s", "epochs used"],
                           [[r["width"], f"{r['seconds']:.2f}", f"{r['closed_form_seconds']:.2f}",
                             r["epochs_used"]] for r in recipes]))
    write_json("scaling", {"widths": widths, "rows": rows, "rows_width": args.rows_width,
                           "by_width": {str(w): v for w, v in by_width.items()},
                           "by_rows": {str(n): v for n, v in by_rows.items()}, "fits": fits,
                           "recipes": recipes})


if __name__ == "__main__":
    main()
