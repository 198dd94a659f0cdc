"""Benchmark: which recovery wins after pruning, with a budget of 3 epochs, and the Fashion-MNIST target.

Three parts, each from dense models trained with the document's recipe (784-64-64-10, Adam lr 1e-3, batch
128, 10 epochs, cross-entropy), every run through ``tinyprune.experiment.prune_and_recover``:

1. **grid** -- one dense model (seed 0) per dataset; every criterion x sparsity {0.5, 0.8, 0.9, 0.95,
   0.98} x recovery, 3 seeds (the seed of the pruning and recovery). One-shot pruning, then one round of
   ``--budget`` epochs (batch 32, Adam, cosine decay to 0; learning rate: the original 1e-3, a tenth of it
   for fine-tuning) or the closed-form solve (reconstruction on 4,096 training rows: about a second, far
   less than one epoch), plus the tuned recipe (OBS + reconstruction to min(s, 94 %) at once, then gradual
   pruning to s during distillation, Adam 3e-3, all within the budget). Large datasets
   (Fashion-MNIST, MNIST) get the magnitude criterion only (``--large-criteria``): the full grid would take
   hours on two cores.
2. **closed form** -- what the recoveries reach with no training at all: one-shot magnitude pruning alone,
   with closed-form reconstruction, and OBS pruning (``recover.obs_prune``) with reconstruction.
3. **target** (Fashion-MNIST) -- three dense models (seeds 0, 1, 2); at 90 / 95 / 98 % global sparsity,
   candidate recipes with at most 3 epochs of training after the dense model (every step of gradual
   pruning counts), and the control: each dense model trained 3 more epochs with the winner's optimizer
   and schedule. Target: 90 % >= dense, 95 % within 0.75 points, 98 % within 2 points (mean of 3 seeds).

    python benchmarks/bench_recovery.py                              # everything (about an hour, 2 cores)
    python benchmarks/bench_recovery.py --parts target --workers 2   # only the Fashion-MNIST target
    python benchmarks/bench_recovery.py --datasets mnist-5k --criteria magnitude --seeds 1 --parts grid

Writes ``benchmarks/results/bench_recovery.json`` and the accuracy-against-sparsity figures
``benchmarks/results/bench_recovery_<dataset>.png``, and prints Markdown tables (for benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
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
    return args


# ----------------------------------------------------------------------------- dense models
def dense_model(splits: Any, seed: int, cache: dict[tuple[str, int], Any]) -> tuple[Any, Any]:
    """The document's dense recipe (10 epochs, Adam 1e-3, batch 128) with snapshots for rewinding."""
    from tinyprune.nn import MLP
    from tinyprune.train import WeightSnapshot, fit

    key = (splits.name, seed)
    if key not in cache:
        model = MLP([splits.train.X.shape[1], 64, 64, splits.num_classes], seed=seed)
        snapshot = WeightSnapshot(epochs=[0, 1])
        started = time.perf_counter()
        fit(model, splits.train, epochs=10, batch_size=128, seed=seed, progress=False, callbacks=[snapshot])
        print(f"  dense {splits.name} seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
        cache[key] = (model, snapshot)
    return cache[key]


def load(name: str) -> Any:
    from tinyprune import data

    try:
        return data.load(name, download=False)
    except Exception as error:  # noqa: BLE001 (a missing dataset is skipped, whatever the reason)
        print(f"  {name}: not found locally ({str(error).splitlines()[0][:90]}...): skipped", flush=True)
        return None


# ----------------------------------------------------------------------------- parts
GRID_OPTIONS = {"schedule": "one-shot", "max_rounds": 1, "tolerance": 0.0, "lr": None,
                "lr_schedule": "cosine", "batch_size": 32}


def recipe_options(budget: int) -> dict[str, Any]:
    """The tuned recipe, as ``prune_and_recover`` options: one round of ``budget`` epochs.

    One round, so the loop never stops early on a look at the test accuracy: every recipe gets exactly
    the budget (``tinyprune run`` checks after every epoch instead, as the document's flowchart does).
    """
    from tinyprune.experiment import RECIPE

    return {"schedule": "gradual", "max_rounds": 1, "epochs_per_round": budget, "tolerance": 0.0,
            **{k: RECIPE[k] for k in ("lr", "lr_schedule", "batch_size", "ramp", "distill_output",
                                      "temperature", "alpha", "start_sparsity", "start_criterion")}}


def grid(splits: Any, criteria: list[str], args: argparse.Namespace, cache: dict) -> list[dict[str, Any]]:
    from tinyprune import experiment

    seeds = list(range(args.seeds))
    model, snapshot = dense_model(splits, 0, cache)
    runs: list[dict[str, Any]] = []
    plain = [r for r in args.recoveries if r != "recipe"]
    if plain:
        result = experiment.sweep(model, splits, criteria=criteria, sparsities=args.sparsities,
                                  recoveries=plain, seeds=seeds, workers=args.workers,
                                  snapshots={seed: snapshot for seed in seeds}, epochs_per_round=args.budget,
                                  progress=False, **GRID_OPTIONS)
        runs += result.runs
    if "recipe" in args.recoveries:
        result = experiment.sweep(model, splits, criteria=criteria, sparsities=args.sparsities,
                                  recoveries=[experiment.RECIPE["recovery"]], seeds=seeds,
                                  workers=args.workers, progress=False, **recipe_options(args.budget))
        for run in result.runs:
            run["recovery"] = RECIPE_LABEL
        runs += result.runs
    for run in runs:
        run["dataset"] = splits.name
    return runs


def closed_form(splits: Any, args: argparse.Namespace, cache: dict) -> list[dict[str, Any]]:
    from tinyprune import experiment

    model, _ = dense_model(splits, 0, cache)
    runs = []
    for criterion, recoveries in (("magnitude", ["none", "reconstruct"]), ("obs", ["none", "reconstruct"])):
        result = experiment.sweep(model, splits, criteria=[criterion], sparsities=args.sparsities,
                                  recoveries=recoveries, seeds=[0], workers=args.workers, progress=False,
                                  **{**GRID_OPTIONS, "epochs_per_round": 1})
        runs += [{**run, "dataset": splits.name} for run in result.runs]
    return runs


def target_recipes(budget: int) -> dict[str, dict[str, Any]]:
    """The candidates for the Fashion-MNIST target (each within ``budget`` epochs after the dense model).

    In order, each row adds or changes one lever: the one-shot baselines, gradual pruning, distillation,
    LAMP allocation, the closed-form head start (the first recipe, ``PREVIOUS`` hyperparameters), the
    retuned distillation and optimizer (T 2, α 0.8, Adam 1e-2), and OBD's saliency for the gradual pruning
    (the recipe); then the recipe without its head start, and the closed-form methods alone.
    """
    from tinyprune.experiment import RECIPE

    one_shot = {"schedule": "one-shot", "max_rounds": 1, "epochs_per_round": budget, "tolerance": 0.0}
    tuned = {"lr": PREVIOUS["lr"], "lr_schedule": "cosine", "batch_size": 32}
    previous = {**recipe_options(budget), **PREVIOUS, "criterion": "magnitude"}
    return {
        "one-shot + finetune (Adam 1e-4, constant, batch 128)":
            {**one_shot, "recovery": "finetune", "lr": None, "lr_schedule": "constant", "batch_size": 128},
        "one-shot + lr-rewind (Adam 3e-3 cosine, batch 32)": {**one_shot, **tuned, "recovery": "lr-rewind"},
        "one-shot + distill (3e-3 cosine, b32, T 4, α 0.5)":
            {**one_shot, **PREVIOUS, **tuned, "recovery": "distill"},
        "one-shot OBS + reconstruct + distill (3e-3 cosine, b32, T 4, α 0.5)":
            {**one_shot, **PREVIOUS, **tuned, "recovery": "reconstruct+distill", "criterion": "obs"},
        "gradual magnitude + lr-rewind (3e-3 cosine, b32)":
            {**previous, "recovery": "lr-rewind", "start_sparsity": 0.0},
        "gradual magnitude + distill (3e-3, T 4, α 0.5)":
            {**previous, "recovery": "distill", "start_sparsity": 0.0},
        "gradual (LAMP allocation) + distill (3e-3, T 4, α 0.5)":
            {**previous, "recovery": "distill", "criterion": "lamp", "start_sparsity": 0.0},
        "first recipe: OBS + reconstruct to min(s, 94 %), gradual magnitude, distill (3e-3, T 4, α 0.5)":
            {**previous, "recovery": "distill"},
        "… with distillation at T 2, α 0.8, Adam 1e-2":
            {**recipe_options(budget), "recovery": "distill", "criterion": "magnitude"},
        RECIPE_TARGET_LABEL:
            {**recipe_options(budget), "recovery": "distill", "criterion": RECIPE["criterion"]},
        "the recipe without the head start (gradual OBD from the dense model)":
            {**recipe_options(budget), "recovery": "distill", "criterion": RECIPE["criterion"],
             "start_sparsity": 0.0},
        "closed form only: one-shot magnitude + reconstruct (0 epochs)":
            {**one_shot, "epochs_per_round": 1, "recovery": "reconstruct", "criterion": "magnitude"},
        "closed form only: OBS + reconstruct (0 epochs)":
            {**one_shot, "epochs_per_round": 1, "recovery": "reconstruct", "criterion": "obs"},
    }


def _control(task: dict[str, Any]) -> dict[str, Any]:
    """The control: the dense model trained ``budget`` more epochs with the recipe's optimizer and schedule
    (Adam, cosine, the recipe's batch size) at the learning rate ``task["lr"]``."""
    import copy

    from tinyprune.experiment import _WORKER, RECIPE
    from tinyprune.optim import Adam, cosine
    from tinyprune.train import evaluate, fit

    model = copy.deepcopy(_WORKER["models"][task["seed"]])
    splits = _WORKER["data"]
    steps = task["budget"] * -(-len(splits.train) // RECIPE["batch_size"])
    optimizer = Adam(model.parameters(), lr=task["lr"], schedule=cosine(task["lr"], steps))
    fit(model, splits.train, epochs=task["budget"], batch_size=RECIPE["batch_size"], optimizer=optimizer,
        seed=task["seed"], progress=False)
    return {"seed": task["seed"], "lr": task["lr"], "batch_size": RECIPE["batch_size"],
            "accuracy": evaluate(model, splits.test)["accuracy"]}


def target(args: argparse.Namespace, cache: dict) -> dict[str, Any] | None:
    from concurrent.futures import ProcessPoolExecutor

    from tinyprune import experiment
    from tinyprune.train import evaluate

    splits = load("fashion-mnist")
    if splits is None:
        return None
    seeds = list(range(args.seeds))
    models = {seed: dense_model(splits, seed, cache)[0] for seed in seeds}
    dense = {seed: evaluate(model, splits.test)["accuracy"] for seed, model in models.items()}
    runs = []
    for label, options in target_recipes(args.budget).items():
        options = dict(options)
        recovery = options.pop("recovery")
        criterion = options.pop("criterion", "magnitude")
        started = time.perf_counter()
        result = experiment.sweep(models, splits, criteria=[criterion], sparsities=sorted(TARGETS),
                                  recoveries=[recovery], seeds=seeds, workers=args.workers, progress=False,
                                  **options)
        print(f"  {label}: {time.perf_counter() - started:.0f} s", flush=True)
        runs += [{**run, "recipe": label} for run in result.runs]
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context,
                             initializer=experiment._init_worker,
                             initargs=(models, splits, {}, True)) as pool:
        # The recipe's learning rate, and the first recipe's: a high rate that suits pruning hurts the
        # dense model, so the fair control is the better of the two.
        tasks = [{"seed": s, "budget": args.budget, "lr": lr}
                 for lr in dict.fromkeys([experiment.RECIPE["lr"], PREVIOUS["lr"]]) for s in seeds]
        controls = list(pool.map(_control, tasks))
    return {"dense": dense, "runs": runs, "controls": controls, "targets": TARGETS, "budget": args.budget}


def control_lines(result: dict[str, Any], dense_mean: float) -> list[str]:
    """One line per control learning rate: mean accuracy and its difference to the dense models."""
    import statistics

    by_setting: dict[tuple[float, int], list[float]] = {}
    for control in result["controls"]:          # results written before these were recorded: 3e-3, 32
        setting = (control.get("lr", PREVIOUS["lr"]), control.get("batch_size", 32))
        by_setting.setdefault(setting, []).append(control["accuracy"])
    lines = []
    for (lr, batch_size), values in by_setting.items():
        mean = statistics.fmean(values)
        lines.append(f"- control: the dense models + {result['budget']} more epochs of Adam lr {lr:g}, "
                     f"cosine, batch {batch_size}: {pct(mean)} % ({100 * (mean - dense_mean):+.2f} points)")
    return lines


# ----------------------------------------------------------------------------- tables
def pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def grid_tables(runs: list[dict[str, Any]], dense: float, dataset: str) -> str:
    from tinyprune.experiment import aggregate

    cells = aggregate([r for r in runs if r["dataset"] == dataset])
    sparsities = sorted({c["sparsity"] for c in cells})
    recoveries = list(dict.fromkeys(r["recovery"] for r in runs if r["dataset"] == dataset))
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
    import statistics

    dense = result["dense"]
    dense_mean = statistics.fmean(dense.values())
    lines = [f"Fashion-MNIST, dense models (seeds {', '.join(map(str, dense))}): "
             f"{pct(dense_mean, statistics.stdev(dense.values()) if len(dense) > 1 else 0.0)} %.",
             *control_lines(result, dense_mean), ""]
    header = ["recipe", *[f"{s:.0%}: acc. % (Δ vs dense; target)" for s in sorted(TARGETS)]]
    rows = []
    for label in dict.fromkeys(r["recipe"] for r in result["runs"]):
        row = [label]
        for s in sorted(TARGETS):
            members = [r for r in result["runs"] if r["recipe"] == label and r["sparsity"] == s]
            accuracy = statistics.fmean(r["final_accuracy"] for r in members)
            difference = statistics.fmean(r["final_accuracy"] - dense[r["seed"]] for r in members)
            margin = difference - TARGETS[s]
            verdict = "met" if margin >= 0 else "missed"
            row.append(f"{pct(accuracy)} ({100 * difference:+.2f}; {verdict} by {100 * abs(margin):.2f})")
        rows.append(row)
    lines.append(_markdown(header, rows))
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
                          "recovery": "the recipe (gradual OBD; target runs, 3 seeds)",
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
        target_result["dense"] = {int(k): v for k, v in target_result["dense"].items()}
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
    from tinyprune.train import evaluate

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
        splits = load(name)
        if splits is None:
            continue
        model, _ = dense_model(splits, 0, cache)
        payload["dense"][name] = evaluate(model, splits.test)["accuracy"]
        criteria = ([c for c in args.criteria.split(",") if c] if args.criteria else list(prune.CRITERIA)) \
            if len(splits.train) <= 10_000 else args.large_criteria
        if "grid" in args.parts:
            began = time.perf_counter()
            payload["grid"] += grid(splits, criteria, args, cache)
            print(f"  grid {name} ({len(criteria)} criteria): {time.perf_counter() - began:.0f} s",
                  flush=True)
        if "closed-form" in args.parts:
            began = time.perf_counter()
            payload["closed_form"] += closed_form(splits, args, cache)
            print(f"  closed form {name}: {time.perf_counter() - began:.0f} s", flush=True)
        if out.parent == common.RESULTS:
            common.write_json(out.stem, payload)          # keep what is done so far
    if "target" in args.parts:
        payload["target"] = target(args, cache)
    payload["seconds"] = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.parent == common.RESULTS:
        common.write_json(out.stem, payload)
    else:
        import json

        out.write_text(json.dumps({"command": common.command(), "machine": common.machine(), **payload},
                                  indent=2, default=float) + "\n")
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
