"""Benchmark: which recovery wins after pruning, with a budget of 3 epochs, and the Fashion-MNIST target.

**The validation protocol.** Every dataset is split once: a stratified 10 % of the training rows (seed 0,
``Dataset.split``) is held out as the *validation* split; the dense models (784-64-64-10, the document's
recipe: Adam lr 1e-3, batch 128, 10 epochs, cross-entropy) train on the other 90 %, and every run gets the
``(train, val, test)`` triple. The loop's "dropped?" and "recovered?" and every choice (the better
control) read the validation rows; the test split is measured and only reported. Every run goes through
``tinyprune.experiment.prune_and_recover`` with a ``tinyprune.experiment.recipe.Recipe``.

1. **grid** -- one dense model (seed 0) per dataset; every criterion x sparsity {0.5, 0.8, 0.9, 0.95,
   0.98} x recovery, 3 seeds (the seed of the pruning and recovery). One-shot pruning, then one round of
   ``--budget`` epochs (batch 32, Adam, cosine decay to 0; learning rate: the original 1e-3, a tenth of it
   for fine-tuning) or the closed-form solve (reconstruction on 4,096 training rows: about a second, far
   less than one epoch), plus the recipe (``Recipe()``: OBS + reconstruction to min(s, 94 %) at once,
   then gradual OBD pruning to s during distillation, Adam 1e-2, all within the budget). Large datasets
   (Fashion-MNIST, MNIST) get the magnitude criterion only (``--large-criteria``): the full grid would take
   hours on two cores.
2. **closed form** -- what the recoveries reach with no training at all: one-shot magnitude pruning alone,
   with closed-form reconstruction, and OBS pruning with reconstruction.
3. **target** (Fashion-MNIST) -- three dense models (seeds 0, 1, 2); at 90 / 95 / 98 % global sparsity,
   candidate recipes with at most 3 epochs of training after the dense model (every step of gradual
   pruning counts), and the control: each dense model trained 3 more epochs with the recipe's optimizer
   and schedule at two learning rates (the better one chosen on validation). Target: 90 % >= dense,
   95 % within 0.75 points, 98 % within 2 points (test accuracy, mean of 3 seeds).

Each candidate runs its budget as one round (``check_every = epochs``, tolerance 0), so every candidate
trains for exactly the budget; the row "as ``tinyprune run`` runs it" keeps the recipe's own
``check_every = 1`` and tolerance 0.5 points, i.e. it stops early once the *validation* accuracy is back.

    python benchmarks/bench_recovery.py                              # everything (about an hour, 2 cores)
    python benchmarks/bench_recovery.py --parts target --out benchmarks/results/bench_recovery_target.json
    python benchmarks/bench_recovery.py --datasets mnist-5k --criteria magnitude --seeds 1 --parts grid

Writes ``benchmarks/results/bench_recovery.json`` and the accuracy-against-sparsity figures
``benchmarks/results/bench_recovery_<dataset>.png``, and prints Markdown tables (for benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DATASETS = ("mnist-5k", "fashion-mnist", "mnist")
SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)
GRID_RECOVERIES = ("none", "finetune", "lr-rewind", "retrain", "rewind", "distill", "reconstruct",
                   "reconstruct+finetune", "reconstruct+distill")
RECIPE_LABEL = "recipe: OBS head start + gradual + distill"
RECIPE_TARGET_LABEL = ("the recipe: OBS + reconstruct to min(s, 94 %) at once, gradual OBD to s, distill "
                       "(T 2, α 0.8, Adam 1e-2)")
#: The hyperparameters of the first recipe (before the OBD criterion and the retuned distillation).
PREVIOUS = {"lr": 3e-3, "temperature": 4.0, "alpha": 0.5}
RECIPE_RUN_LABEL = ("the recipe as `tinyprune run` runs it: recovered? on validation after every epoch "
                    "(tolerance 0.5 points)")
VALIDATION = 0.1       # the fraction of the training rows held out (the Recipe's default)
SPLIT_SEED = 0         # one split for every dense model, so the validation rows are never trained on
TARGETS = {0.9: 0.0, 0.95: -0.0075, 0.98: -0.02}      # allowed difference to the dense accuracy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="grid,closed-form,target",
                        help="comma-separated: grid, closed-form, target (default: all)")
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help="datasets of the grid and closed-form parts (missing ones are skipped)")
    parser.add_argument("--criteria", default=None,
                        help="criteria of the grid on mnist-5k (default: every one of tinyprune.prune)")
    parser.add_argument("--large-criteria", default="magnitude",
                        help="criteria of the grid on the 60,000-row datasets (default: magnitude)")
    parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)))
    parser.add_argument("--recoveries", default=",".join(GRID_RECOVERIES) + ",recipe",
                        help="grid recoveries; 'recipe' = gradual pruning + distillation (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default: 3)")
    parser.add_argument("--budget", type=int, default=3, help="recovery epochs (default: 3)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads per process (default: 1)")
    parser.add_argument("--target-only", default="",
                        help="comma-separated words: run only the target candidates whose label has one "
                             "(default: every candidate)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: print the tables and redraw the figures from the JSON results")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default: results/bench_recovery.json)")
    args = parser.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.sparsities = [float(s) for s in args.sparsities.split(",") if s]
    args.recoveries = [r for r in args.recoveries.split(",") if r]
    args.large_criteria = [c for c in args.large_criteria.split(",") if c]
    args.target_only = [w for w in args.target_only.split(",") if w]
    return args


# ----------------------------------------------------------------------------- the protocol's data
@dataclass
class Held:
    """A dataset under the validation protocol: ``val`` held out of the training rows, ``test`` untouched."""

    name: str
    train: Any
    val: Any
    test: Any
    num_classes: int

    @property
    def triple(self) -> tuple[Any, Any, Any]:
        """``(train, val, test)``, the form ``prune_and_recover`` takes a given validation split in."""
        return self.train, self.val, self.test


def hold_out(splits: Any, validation: float = VALIDATION) -> Held:
    """Split ``validation`` of the training rows off once (stratified, seed ``SPLIT_SEED``)."""
    train, val = splits.train.split(1 - validation, seed=SPLIT_SEED)
    return Held(splits.name, train, val, splits.test, splits.num_classes)


def load(name: str) -> Held | None:
    from tinyprune import data

    try:
        return hold_out(data.load(name, download=False))
    except Exception as error:  # noqa: BLE001 (a missing dataset is skipped, whatever the reason)
        print(f"  {name}: not found locally ({str(error).splitlines()[0][:90]}...): skipped", flush=True)
        return None


def dense_model(held: Held, seed: int, cache: dict[tuple[str, int], Any]) -> tuple[Any, Any]:
    """The document's dense recipe (10 epochs, Adam 1e-3, batch 128) on the training rows only, with
    snapshots of epochs 0 and 1 for rewinding."""
    from tinyprune.core.nn import MLP
    from tinyprune.training import WeightSnapshot, fit

    key = (held.name, seed)
    if key not in cache:
        model = MLP([held.train.X.shape[1], 64, 64, held.num_classes], seed=seed)
        snapshot = WeightSnapshot(epochs=[0, 1])
        started = time.perf_counter()
        fit(model, held.train, epochs=10, batch_size=128, seed=seed, progress=False, callbacks=[snapshot])
        print(f"  dense {held.name} seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
        cache[key] = (model, snapshot)
    return cache[key]


# ----------------------------------------------------------------------------- recipes
def one_round(budget: int) -> dict[str, Any]:
    """The whole budget as one round, with no tolerance: every candidate trains exactly ``budget`` epochs."""
    return {"epochs": budget, "check_every": budget, "tolerance": 0.0}


def grid_recipe(budget: int) -> Any:
    """The grid's base: one-shot pruning (no head start), one round of ``budget`` epochs, Adam, cosine,
    batch 32 (the learning rate is set per recovery by ``grid_lr``)."""
    from tinyprune.experiment.recipe import Recipe

    return Recipe(schedule="one-shot", head_start=0.0, lr_schedule="cosine", batch_size=32,
                  **one_round(budget))


def grid_lr(recovery: str, original_lr: float) -> float:
    """The grid's learning rate: the original one, a tenth of it for fine-tuning (as before the Recipe)."""
    return original_lr / 10 if recovery.split("+")[-1] == "finetune" else original_lr


def grid(held: Held, criteria: list[str], args: argparse.Namespace, cache: dict) -> list[dict[str, Any]]:
    from tinyprune import experiment
    from tinyprune.experiment.recipe import Recipe

    seeds = list(range(args.seeds))
    model, snapshot = dense_model(held, 0, cache)
    base = grid_recipe(args.budget)
    runs: list[dict[str, Any]] = []
    by_lr: dict[float, list[str]] = {}
    for recovery in (r for r in args.recoveries if r != "recipe"):
        by_lr.setdefault(grid_lr(recovery, base.original_lr), []).append(recovery)
    for lr, recoveries in by_lr.items():
        result = experiment.sweep(model, held.triple, base.replace(lr=lr),
                                  grid={"criterion": criteria, "sparsity": args.sparsities,
                                        "recovery": recoveries}, seeds=seeds, executor=args.workers,
                                  snapshots={seed: snapshot for seed in seeds}, progress=False)
        runs += result.runs
    if "recipe" in args.recoveries:
        gradual = [c for c in criteria if c != "obs"]      # OBS is the head start's, not a gradual criterion
        result = experiment.sweep(model, held.triple, Recipe(**one_round(args.budget)),
                                  grid={"criterion": gradual, "sparsity": args.sparsities}, seeds=seeds,
                                  executor=args.workers, progress=False)
        for run in result.runs:
            run["recovery"] = RECIPE_LABEL
        runs += result.runs
    for run in runs:
        run["dataset"] = held.name
    return runs


def closed_form(held: Held, args: argparse.Namespace, cache: dict) -> list[dict[str, Any]]:
    from tinyprune import experiment

    model, _ = dense_model(held, 0, cache)
    runs = []
    for criterion in ("magnitude", "obs"):
        result = experiment.sweep(model, held.triple, grid_recipe(1),
                                  grid={"criterion": [criterion], "sparsity": args.sparsities,
                                        "recovery": ["none", "reconstruct"]}, seeds=[0],
                                  executor=args.workers, progress=False)
        runs += [{**run, "dataset": held.name} for run in result.runs]
    return runs


def target_recipes(budget: int) -> dict[str, Any]:
    """The candidates for the Fashion-MNIST target (each within ``budget`` epochs after the dense model).

    In order, each row adds or changes one lever: the one-shot baselines, gradual pruning, distillation,
    LAMP allocation, the closed-form head start (the first recipe, ``PREVIOUS`` hyperparameters), the
    retuned distillation and optimizer (T 2, α 0.8, Adam 1e-2), and OBD's saliency for the gradual pruning
    (the recipe, ``Recipe()``); then the recipe without its head start, the recipe as ``tinyprune run`` runs
    it (asking "recovered?" on the validation rows after every epoch), and the closed-form methods alone.
    """
    from tinyprune.experiment.recipe import Recipe

    recipe = Recipe(**one_round(budget))                       # the default recipe, the budget in one round
    one_shot = recipe.replace(schedule="one-shot", head_start=0.0, criterion="magnitude")
    tuned = {**PREVIOUS, "lr_schedule": "cosine", "batch_size": 32}         # lr 3e-3 (T, α for distill)
    gradual = recipe.replace(criterion="magnitude", head_start=0.0, lr_schedule="cosine", **PREVIOUS)
    return {
        "one-shot + finetune (Adam 1e-4, constant, batch 128)":
            one_shot.replace(recovery="finetune", lr=None, lr_schedule=None, batch_size=128),
        "one-shot + lr-rewind (Adam 3e-3 cosine, batch 32)": one_shot.replace(recovery="lr-rewind", **tuned),
        "one-shot + distill (3e-3 cosine, b32, T 4, α 0.5)": one_shot.replace(**tuned),
        "one-shot OBS + reconstruct + distill (3e-3 cosine, b32, T 4, α 0.5)":
            one_shot.replace(**tuned, recovery="reconstruct+distill", criterion="obs"),
        "gradual magnitude + lr-rewind (3e-3 cosine, b32)": gradual.replace(recovery="lr-rewind"),
        "gradual magnitude + distill (3e-3, T 4, α 0.5)": gradual,
        "gradual (LAMP allocation) + distill (3e-3, T 4, α 0.5)": gradual.replace(criterion="lamp"),
        "first recipe: OBS + reconstruct to min(s, 94 %), gradual magnitude, distill (3e-3, T 4, α 0.5)":
            gradual.replace(head_start=recipe.head_start),
        "… with distillation at T 2, α 0.8, Adam 1e-2": recipe.replace(criterion="magnitude"),
        RECIPE_TARGET_LABEL: recipe,
        "the recipe without the head start (gradual OBD from the dense model)":
            recipe.replace(head_start=0.0),
        RECIPE_RUN_LABEL: Recipe(epochs=budget),
        "closed form only: one-shot magnitude + reconstruct (0 epochs)":
            one_shot.replace(recovery="reconstruct", **one_round(1)),
        "closed form only: OBS + reconstruct (0 epochs)":
            one_shot.replace(recovery="reconstruct", criterion="obs", **one_round(1)),
    }


def _control(task: dict[str, Any]) -> dict[str, Any]:
    """The control: the dense model trained ``budget`` more epochs with the recipe's optimizer and schedule
    (Adam, cosine, the recipe's batch size) at the learning rate ``task["lr"]``, on the training rows."""
    import copy

    from tinyprune import recover
    from tinyprune.experiment.recipe import DEFAULT
    from tinyprune.experiment.sweep import _WORKER
    from tinyprune.training import evaluate

    model = copy.deepcopy(_WORKER["models"][task["seed"]])
    train, val, test = _WORKER["data"]
    steps = task["budget"] * -(-len(train) // DEFAULT.batch_size)
    optimizer = recover.build_optimizer(model, DEFAULT.optimizer, lr=task["lr"], schedule="cosine",
                                        total_steps=steps)
    recover.finetune(model, train, epochs=task["budget"], optimizer=optimizer, batch_size=DEFAULT.batch_size,
                     seed=task["seed"])
    return {"seed": task["seed"], "lr": task["lr"], "batch_size": DEFAULT.batch_size,
            "val_accuracy": evaluate(model, val)["accuracy"], "accuracy": evaluate(model, test)["accuracy"]}


def target(args: argparse.Namespace, cache: dict,
           save: Any = lambda partial: None) -> dict[str, Any] | None:
    """The target part; ``save`` receives the result so far after each candidate (controls last)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tinyprune import experiment
    from tinyprune.experiment.recipe import DEFAULT
    from tinyprune.experiment.sweep import _init_worker
    from tinyprune.training import evaluate

    held = load("fashion-mnist")
    if held is None:
        return None
    seeds = list(range(args.seeds))
    models = {seed: dense_model(held, seed, cache)[0] for seed in seeds}
    dense = {seed: evaluate(model, held.test)["accuracy"] for seed, model in models.items()}
    dense_val = {seed: evaluate(model, held.val)["accuracy"] for seed, model in models.items()}
    runs = []
    candidates = target_recipes(args.budget)
    chosen = [label for label in candidates if not args.target_only or
              any(word in label for word in args.target_only)]
    for label in chosen:
        started = time.perf_counter()
        recipe = candidates[label]
        result = experiment.sweep(models, held.triple, recipe, grid={"sparsity": sorted(TARGETS)},
                                  seeds=seeds, executor=args.workers, progress=False)
        print(f"  {label}: {time.perf_counter() - started:.0f} s", flush=True)
        runs += [{**run, "recipe": label, "settings": recipe.to_dict()} for run in result.runs]
        save({"dense": dense, "dense_val": dense_val, "runs": runs, "controls": [], "targets": TARGETS,
              "budget": args.budget})
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context, initializer=_init_worker,
                             initargs=(models, held.triple, {}, True)) as pool:
        # The recipe's learning rate, and the first recipe's: a high rate that suits pruning hurts the
        # dense model, so the fair control is the better of the two -- on the validation rows.
        rates = dict.fromkeys([DEFAULT.original_lr * 10, PREVIOUS["lr"]])
        tasks = [{"seed": s, "budget": args.budget, "lr": lr} for lr in rates for s in seeds]
        controls = list(pool.map(_control, tasks))
    rows = {"train": len(held.train), "val": len(held.val), "test": len(held.test)}
    return {"dense": dense, "dense_val": dense_val, "runs": runs, "controls": controls, "targets": TARGETS,
            "budget": args.budget, "rows": rows, "split_seed": SPLIT_SEED}


def control_lines(result: dict[str, Any], dense_mean: float) -> list[str]:
    """One line per control learning rate: mean accuracy and its difference to the dense models; the
    better one on validation is marked (results written before the validation protocol have no val)."""
    import statistics

    by_setting: dict[tuple[float, int], list[dict[str, Any]]] = {}
    for control in result["controls"]:          # results written before these were recorded: 3e-3, 32
        setting = (control.get("lr", PREVIOUS["lr"]), control.get("batch_size", 32))
        by_setting.setdefault(setting, []).append(control)
    val_means = {setting: statistics.fmean(c["val_accuracy"] for c in members)
                 for setting, members in by_setting.items() if all("val_accuracy" in c for c in members)}
    best = max(val_means, key=val_means.get) if val_means else None
    lines = []
    for (lr, batch_size), members in by_setting.items():
        mean = statistics.fmean(c["accuracy"] for c in members)
        chosen = (f"; validation {pct(val_means[(lr, batch_size)])} %"
                  + (", the better on validation" if (lr, batch_size) == best else "")) \
            if (lr, batch_size) in val_means else ""
        lines.append(f"- control: the dense models + {result['budget']} more epochs of Adam lr {lr:g}, "
                     f"cosine, batch {batch_size}: test {pct(mean)} % ({100 * (mean - dense_mean):+.2f} "
                     f"points{chosen})")
    return lines


# ----------------------------------------------------------------------------- tables
def pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def grid_tables(runs: list[dict[str, Any]], dense: float, dataset: str) -> str:
    from tinyprune.experiment import aggregate

    cells = aggregate([r for r in runs if r["dataset"] == dataset])
    sparsities = sorted({c["sparsity"] for c in cells})
    order = {name: i for i, name in enumerate(GRID_RECOVERIES)}      # the recipe's row last
    recoveries = sorted(dict.fromkeys(r["recovery"] for r in runs if r["dataset"] == dataset),
                        key=lambda r: order.get(r, len(order)))
    lines = [f"**{dataset}** (dense {pct(dense)} %), magnitude pruning, test accuracy % after recovery, "
             f"mean ± std over seeds:", ""]
    header = ["recovery", *[f"{s:.0%}" for s in sparsities]]
    rows = []
    for recovery in recoveries:
        row = [recovery]
        for s in sparsities:
            match = [c for c in cells if (c["criterion"], c["sparsity"], c["recovery"]) ==
                     ("magnitude", s, recovery)]
            row.append(pct(match[0]["final_mean"], match[0]["final_std"]) if match else "")
        rows.append(row)
    best = ["**wins**"]
    for s in sparsities:
        candidates = [c for c in cells if c["criterion"] == "magnitude" and c["sparsity"] == s]
        top = max((c["final_mean"] for c in candidates), default=None)
        winners = [c["recovery"] for c in candidates if c["final_mean"] == top]
        best.append(winners[0] if len(winners) == 1 else
                    f"tie of {len(winners)}" + (" (no drop: nothing to recover)" if len(winners) > 2 else
                                                f": {' = '.join(winners)}"))
    rows.append(best)
    lines.append(_markdown(header, rows))
    criteria = sorted({c["criterion"] for c in cells})
    if len(criteria) > 1:
        lines += ["", f"**{dataset}**, best criterion + recovery per sparsity (of {len(criteria)} criteria "
                      f"x {len(recoveries)} recoveries):", ""]
        rows = []
        for s in sparsities:
            ranked = sorted((c for c in cells if c["sparsity"] == s), key=lambda c: -c["final_mean"])
            top = ranked[0]
            by_criterion = {}
            for c in ranked:
                by_criterion.setdefault(c["criterion"], c)
            rows.append([f"{s:.0%}", f"{top['criterion']} + {top['recovery']}",
                         pct(top["final_mean"], top["final_std"]),
                         ", ".join(f"{k} {100 * v['final_mean']:.1f}"
                                   for k, v in sorted(by_criterion.items()))])
        lines.append(_markdown(["sparsity", "winner", "accuracy %", "best per criterion"], rows))
    failed = sorted({(r["criterion"], r["sparsity"]) for r in runs
                     if r["dataset"] == dataset and r.get("error")})
    if failed:
        example = next(r["error"] for r in runs if r["dataset"] == dataset and r.get("error"))
        lines += ["", "Not run (the criterion would remove a whole layer at that sparsity, e.g. "
                      f"\"{example[:90]}...\"): " + ", ".join(f"{c} at {s:.0%}" for c, s in failed)]
    return "\n".join(lines)


def closed_form_table(runs: list[dict[str, Any]], dense: dict[str, float]) -> str:
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        for s in sorted({r["sparsity"] for r in runs if r["dataset"] == dataset}):
            row = [dataset, f"{s:.0%}"]
            for criterion, recovery in (("magnitude", "none"), ("magnitude", "reconstruct"), ("obs", "none"),
                                        ("obs", "reconstruct")):
                match = [r for r in runs if (r["dataset"], r["sparsity"], r["criterion"], r["recovery"]) ==
                         (dataset, s, criterion, recovery) and not r.get("error")]
                row.append(f"{pct(match[0]['final_accuracy'])} ({match[0]['seconds']:.1f} s)"
                           if match else "")
            rows.append(row)
    return _markdown(["dataset", "sparsity", "magnitude, nothing", "magnitude + reconstruct", "OBS, nothing",
                      "OBS + reconstruct"], rows)


def target_table(result: dict[str, Any]) -> str:
    """Test accuracy per candidate and sparsity: mean over the dense models, its difference to the same
    models' dense test accuracy, and the target met or missed by how much; then the recipe per seed."""
    import statistics

    dense = result["dense"]
    dense_mean = statistics.fmean(dense.values())
    spread = statistics.stdev(dense.values()) if len(dense) > 1 else 0.0
    seeds = ", ".join(map(str, dense))
    first = f"Fashion-MNIST, dense models (seeds {seeds}): test {pct(dense_mean, spread)} %"
    if "dense_val" in result:
        first += f", validation {pct(statistics.fmean(result['dense_val'].values()))} %"
    if "rows" in result:
        first += f" (rows: {result['rows']})"
    lines = [first + ".", *control_lines(result, dense_mean), ""]
    header = ["recipe", *[f"{s:.0%}: test acc. % (Δ vs dense; target)" for s in sorted(TARGETS)],
              "epochs used (mean)"]
    rows = []
    for label in dict.fromkeys(r["recipe"] for r in result["runs"]):
        row = [label]
        epochs = []
        for s in sorted(TARGETS):
            members = [r for r in result["runs"] if r["recipe"] == label and r["sparsity"] == s]
            accuracy = statistics.fmean(r["final_accuracy"] for r in members)
            difference = statistics.fmean(r["final_accuracy"] - dense[r["seed"]] for r in members)
            margin = difference - TARGETS[s]
            verdict = "met" if margin >= 0 else "missed"
            row.append(f"{pct(accuracy)} ({100 * difference:+.2f}; {verdict} by {100 * abs(margin):.2f})")
            epochs.append(f"{statistics.fmean(r['epochs_used'] for r in members):.1f}")
        rows.append([*row, " / ".join(epochs)])
    lines.append(_markdown(header, rows))
    per_seed = []
    for s in sorted(TARGETS):
        members = sorted((r for r in result["runs"] if r["recipe"] == RECIPE_TARGET_LABEL
                          and r["sparsity"] == s), key=lambda r: r["seed"])
        if members:
            per_seed.append(f"{s:.0%}: " + ", ".join(
                f"seed {r['seed']} {100 * (r['final_accuracy'] - dense[r['seed']]):+.2f}"
                + (f" (val {100 * (r['final_val_accuracy'] - r['dense_val_accuracy']):+.2f})"
                   if "final_val_accuracy" in r else "") for r in members))
    if per_seed:
        lines += ["", "The recipe, Δ test (Δ validation) vs dense per seed, points: " + "; ".join(per_seed)]
    return "\n".join(lines)


def _markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


# ----------------------------------------------------------------------------- figures
def figures(runs: list[dict[str, Any]], dense: dict[str, float], target_result: dict[str, Any] | None,
            folder: Path) -> list[Path]:
    try:
        from tinyprune import plot
    except ImportError:
        return []
    from tinyprune.experiment import aggregate

    paths = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        cells = [c for c in aggregate([r for r in runs if r["dataset"] == dataset])
                 if c["criterion"] == "magnitude"]
        targets = None
        if dataset == "fashion-mnist":
            reference = dense[dataset]
            if target_result is not None:        # the target is set by the mean of the 3 dense models
                reference = sum(target_result["dense"].values()) / len(target_result["dense"])
            targets = {s: reference + allowed for s, allowed in TARGETS.items()}
            if target_result is not None:        # the recipe itself, from the target's 3 dense models
                cells += target_cells(target_result)
        paths.append(plot.accuracy_vs_sparsity(
            None, folder / f"bench_recovery_{dataset}.png", cells=cells, dense_accuracy=dense[dataset],
            targets=targets, title=f"{dataset}: accuracy after pruning and 3 epochs of recovery"))
    return paths


def target_cells(target_result: dict[str, Any]) -> list[dict[str, Any]]:
    """The recipe's rows of the target part as plot cells (mean ± std over the dense models' seeds)."""
    import statistics

    cells = []
    for sparsity in sorted(TARGETS):
        finals = [r["final_accuracy"] for r in target_result["runs"]
                  if r["recipe"] == RECIPE_TARGET_LABEL and r["sparsity"] == sparsity]
        if finals:
            cells.append({"criterion": "magnitude",
                          "recovery": "the recipe (gradual OBD; target runs)", "n": len(finals),
                          "sparsity": sparsity, "final_mean": statistics.fmean(finals),
                          "final_std": statistics.stdev(finals) if len(finals) > 1 else 0.0})
    return cells


def report_only(out: Path) -> int:
    """Print the tables and redraw the figures from ``out`` and ``<out>_target.json`` (earlier runs)."""
    import json

    payload = json.loads(out.read_text()) if out.exists() else {"grid": [], "closed_form": [], "dense": {}}
    target_path = out.with_name(out.stem + "_target.json")
    target_result = payload.get("target") or (
        json.loads(target_path.read_text())["target"] if target_path.exists() else None)
    if target_result is not None:
        for key in ("dense", "dense_val"):
            if key in target_result:
                target_result[key] = {int(k): v for k, v in target_result[key].items()}
        target_result["targets"] = {float(k): v for k, v in target_result["targets"].items()}
    tables = [grid_tables(payload["grid"], payload["dense"][d], d)
              for d in payload["dense"] if payload["grid"]]
    if payload["closed_form"]:
        tables.append(closed_form_table(payload["closed_form"], payload["dense"]))
    if target_result is not None:
        tables.append(target_table(target_result))
    drawn = figures(payload["grid"], payload["dense"], target_result, out.parent)
    print("\n\n".join(tables))
    print("\ndrew " + ", ".join(map(str, drawn)))
    return 0


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        if "numpy" in sys.modules:
            print("warning: NumPy was already imported; --threads may have no effect", file=sys.stderr)
        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common

    from tinyprune import prune
    from tinyprune.training import evaluate

    started = time.perf_counter()
    out = args.out or common.RESULTS / "bench_recovery.json"
    if args.report_only:
        return report_only(out)
    cache: dict[tuple[str, int], Any] = {}
    payload: dict[str, Any] = {"options": {k: v for k, v in vars(args).items() if k != "out"}, "grid": [],
                               "closed_form": [], "target": None, "dense": {}}
    print(f"bench_recovery: parts {args.parts}, datasets {args.datasets}, {args.seeds} seeds, budget "
          f"{args.budget} epochs, {args.workers} workers", flush=True)
    for name in args.datasets:
        if not {"grid", "closed-form"} & set(args.parts):
            break
        held = load(name)
        if held is None:
            continue
        model, _ = dense_model(held, 0, cache)
        payload["dense"][name] = evaluate(model, held.test)["accuracy"]
        criteria = ([c for c in args.criteria.split(",") if c] if args.criteria else list(prune.CRITERIA)) \
            if len(held.train) <= 10_000 else args.large_criteria
        if "grid" in args.parts:
            began = time.perf_counter()
            payload["grid"] += grid(held, criteria, args, cache)
            print(f"  grid {name} ({len(criteria)} criteria): {time.perf_counter() - began:.0f} s",
                  flush=True)
        if "closed-form" in args.parts:
            began = time.perf_counter()
            payload["closed_form"] += closed_form(held, args, cache)
            print(f"  closed form {name}: {time.perf_counter() - began:.0f} s", flush=True)
        common.write_json_at(out, payload)                # keep what is done so far
    if "target" in args.parts:
        def save(partial: dict[str, Any]) -> None:        # keep every finished candidate
            common.write_json_at(out, {**payload, "target": partial, "partial": True})

        payload["target"] = target(args, cache, save)
    payload["seconds"] = time.perf_counter() - started
    common.write_json_at(out, payload)
    tables = []
    for dataset in payload["dense"]:
        if payload["grid"]:
            tables.append(grid_tables(payload["grid"], payload["dense"][dataset], dataset))
    if payload["closed_form"]:
        tables.append("What each dataset reaches with no training at all (seed 0; seconds of the whole "
                      "run):\n\n" + closed_form_table(payload["closed_form"], payload["dense"]))
    if payload["target"]:
        tables.append(target_table(payload["target"]))
    drawn = figures(payload["grid"], payload["dense"], payload["target"], out.parent)
    print("\n\n".join(tables))
    print(f"\nwrote {out}" + "".join(f", {path}" for path in drawn) + f" ({payload['seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
