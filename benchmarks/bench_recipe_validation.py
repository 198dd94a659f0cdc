"""Benchmark: is the recipe's lead real, or was it tuned to the test split? A check on rows nothing saw.

The recipe (``tp.Recipe()``) was chosen by comparing candidates on the Fashion-MNIST *test*
split, before the benchmark moved to the validation protocol. To see whether its lead over the first
recipe survives on data that no choice ever looked at, this benchmark never touches the test split: for
each seed it holds out a stratified sixth of the training set (10,000 rows, ``Dataset.split`` with seed
``100 + seed``) as the *scoring* rows; of the other 50,000 it holds out the recipe's ``validation``
fraction (10 %, seed ``seed``) for the loop's decisions and trains the dense model with the document's
recipe on the rest; then it runs both recipes at 90 / 95 / 98 % sparsity with the same 3-epoch budget
(one round, tolerance 0) through ``prune_and_recover(model, (train, val, scoring), recipe)``, scoring them
on the held-out rows (the report's "test" accuracy).

- ``first``: OBS + reconstruction to min(s, 94 %), gradual *magnitude* pruning, distillation at T 4,
  α 0.5, Adam 3e-3 (``bench_recovery.PREVIOUS``).
- ``recipe``: the same head start, gradual *OBD* pruning, distillation at T 2, α 0.8, Adam 1e-2.

Prints a table of Δ (scoring accuracy minus the dense model's, points) and writes
``benchmarks/results/recipe_validation.json``.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_recipe_validation.py     # a few minutes on one core
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # before NumPy loads: one thread is faster here

from bench_recovery import PREVIOUS, one_round  # noqa: E402
from common import table, write_json  # noqa: E402

SPARSITIES = (0.9, 0.95, 0.98)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="a dataset of tinyprune.data.load")
    parser.add_argument("--seeds", type=int, default=3, help="dense models (seeds 0..N-1)")
    parser.add_argument("--budget", type=int, default=3, help="recovery epochs after the dense model")
    parser.add_argument("--holdout", type=int, default=10000, help="training rows held out for validation")
    return parser.parse_args(argv)


def recipes(budget: int) -> dict[str, Any]:
    """The two recipes compared, each running the whole ``budget`` as one round with no tolerance."""
    from tinyprune.experiment.recipe import Recipe

    recipe = Recipe(**one_round(budget))
    # the first recipe: gradual magnitude, its hyperparameters (with a cosine rate, as the recipe)
    return {"first": recipe.replace(criterion="magnitude", **PREVIOUS), "recipe": recipe}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tinyprune import data
    from tinyprune.core.nn import MLP
    from tinyprune.experiment import prune_and_recover
    from tinyprune.training import evaluate, fit

    splits = data.load(args.dataset, download=False)
    candidates = recipes(args.budget)
    runs = []
    for seed in range(args.seeds):
        rest, scoring = splits.train.split(1 - args.holdout / len(splits.train), seed=100 + seed)
        train, val = rest.split(1 - candidates["recipe"].validation, seed=seed)
        dense = MLP([train.X.shape[1], 64, 64, splits.num_classes], seed=seed)
        fit(dense, train, epochs=10, batch_size=128, seed=seed, progress=False)
        dense_accuracy = evaluate(dense, scoring)["accuracy"]
        for sparsity in SPARSITIES:
            for name, recipe in candidates.items():
                report = prune_and_recover(copy.deepcopy(dense), (train, val, scoring), recipe,
                                           sparsity=sparsity, seed=seed)
                runs.append({"seed": seed, "sparsity": sparsity, "recipe": name, "dense": dense_accuracy,
                             "final": report.final_accuracy, "delta": report.final_accuracy - dense_accuracy,
                             "dense_val": report.dense_val_accuracy, "final_val": report.final_val_accuracy,
                             "epochs_used": report.epochs_used})
                print(f"seed {seed} {sparsity:.0%} {name:6s}: {100 * runs[-1]['delta']:+.2f} points",
                      flush=True)
    rows = {"train": len(train), "val": len(val), "scoring": len(scoring)}
    return {"dataset": args.dataset, "holdout": args.holdout, "budget": args.budget, "rows": rows,
            "recipes": {name: recipe.to_dict() for name, recipe in candidates.items()}, "runs": runs}


def summary(result: dict[str, Any]) -> str:
    header = ["recipe", *[f"{s:.0%}: Δ vs dense (points, mean ± std)" for s in SPARSITIES]]
    rows = []
    for name in result["recipes"]:
        row = [name]
        for sparsity in SPARSITIES:
            deltas = [100 * r["delta"] for r in result["runs"]
                      if r["recipe"] == name and r["sparsity"] == sparsity]
            spread = statistics.stdev(deltas) if len(deltas) > 1 else 0.0
            row.append(f"{statistics.fmean(deltas):+.2f} ± {spread:.2f}")
        rows.append(row)
    return table(header, rows)


def main(argv: list[str] | None = None) -> int:
    result = run(parse_args(argv))
    print(summary(result))
    print(f"wrote {write_json('recipe_validation', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
