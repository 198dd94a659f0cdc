"""The ``tinyprune`` command (also ``python -m tinyprune``): train and evaluate from the shell.

Each subcommand is two functions: ``add_<name>_parser(subparsers)`` registers its arguments and sets
``handler=run_<name>``; ``run_<name>(args) -> int`` does the work and returns the exit code. To add a
subcommand, write the pair and append the ``add_`` function to ``COMMANDS``. Shared options
(``add_data_arguments``, ``add_training_arguments``) and helpers (``load_dataset``, ``progress_mode``)
are there to be reused.

Exit codes: 0 success, 2 bad input (a one-line message on stderr, no traceback; ``--debug`` shows it),
130 interrupted.

>>> main(["--version"])  # doctest: +ELLIPSIS
tinyprune ...
0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from tinyprune import __version__, checkpoint, data, metrics
from tinyprune.errors import TinypruneError
from tinyprune.nn import MLP
from tinyprune.optim import OPTIMIZERS, make_optimizer
from tinyprune.train import ENGINES, History, evaluate, fit

LOSS_NAMES = ("cross_entropy", "squared_error")
DEFAULTS = {"dataset": "mnist-5k", "epochs": 10, "batch_size": 128, "lr": 1e-3, "seed": 0,
            "engine": "backprop", "loss": "cross_entropy", "optimizer": "adam", "hidden": [64, 64]}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit code 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _one_line(error: BaseException) -> str:
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


# --------------------------------------------------------------------------- shared options
def add_data_arguments(parser: argparse.ArgumentParser, dataset_default: str | None = DEFAULTS["dataset"],
                       dataset_help: str | None = None) -> None:
    """``--dataset``, ``--data-root``, ``--no-download``."""
    parser.add_argument("--dataset", default=dataset_default, choices=sorted(data.DATASETS),
                        help=f"dataset name (default: {dataset_help or dataset_default})")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="folder holding the dataset's files (default: the cache, then system folders)")
    parser.add_argument("--no-download", action="store_true",
                        help="never download; fail if the dataset is not found locally")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """``--epochs``, ``--batch-size``, ``--lr``, ``--optimizer``, ``--loss``, ``--seed``, ``--engine``,
    ``--no-progress``. Defaults are ``None`` where a resumed checkpoint supplies the value."""
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"],
                        help=f"epochs to train (default: {DEFAULTS['epochs']})")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"minibatch size (default: {DEFAULTS['batch_size']})")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"learning rate (default: {DEFAULTS['lr']})")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=None,
                        help=f"optimizer (default: {DEFAULTS['optimizer']})")
    parser.add_argument("--momentum", type=float, default=0.0, help="momentum of sgd (default: 0)")
    parser.add_argument("--loss", choices=LOSS_NAMES, default=None,
                        help=f"training loss (default: {DEFAULTS['loss']})")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"seed of the initial weights and the shuffling (default: {DEFAULTS['seed']})")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="gradients by the hand-derived backward pass or by autograd "
                             f"(default: {DEFAULTS['engine']})")
    parser.add_argument("--no-progress", action="store_true", help="print nothing per epoch")


def load_dataset(args: argparse.Namespace, name: str | None = None) -> data.Splits:
    """``tinyprune.data.load`` with the options of ``add_data_arguments``."""
    return data.load(name or args.dataset, root=args.data_root, download=not args.no_download)


def progress_mode(args: argparse.Namespace) -> bool | str:
    """A bar in a terminal, one line per epoch when piped (logs, CI), nothing with ``--no-progress``."""
    if getattr(args, "no_progress", False):
        return False
    return True if sys.stdout.isatty() else "lines"


def _hidden_sizes(text: str) -> list[int]:
    """``"64,64"`` -> ``[64, 64]``; ``""`` -> ``[]`` (no hidden layer)."""
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}"
                                         ) from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive, got {text!r}")
    return sizes


def _resolved(args: argparse.Namespace, meta: dict[str, Any], key: str) -> Any:
    """The command-line value if given, else the checkpoint's (when resuming), else the default."""
    value = getattr(args, key)
    return value if value is not None else meta.get(key, DEFAULTS[key])


# --------------------------------------------------------------------------- train
def add_train_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train", help="train an MLP (the document's 784-64-64-10 by default) and save a checkpoint",
        description="Train an MLP with minibatch gradient descent, print per-epoch progress and the test "
                    "accuracy, and save a checkpoint (weights, optimizer state, metadata).")
    add_data_arguments(parser, dataset_default=None,
                       dataset_help=f"{DEFAULTS['dataset']}, or the checkpoint's with --resume")
    parser.add_argument("--hidden", type=_hidden_sizes, default=None, metavar="SIZES",
                        help="hidden layer sizes, comma-separated (default: 64,64)")
    add_training_arguments(parser)
    parser.add_argument("--out", default=None, metavar="PATH", help="where to save the checkpoint (.npz)")
    parser.add_argument("--resume", default=None, metavar="PATH",
                        help="continue training this checkpoint for --epochs more epochs (same data order "
                             "and optimizer state as if it had never stopped)")
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    meta: dict[str, Any] = {}
    initial_epoch = 0
    if args.resume:
        restored = checkpoint.load(args.resume)
        meta = checkpoint.training_meta(restored, history_keys=History.KEYS)
        model = restored.model
        initial_epoch = int(meta.get("epochs", 0))
    dataset = args.dataset or meta.get("dataset", DEFAULTS["dataset"])
    splits = load_dataset(args, dataset)
    if args.resume:
        if restored.optimizer_state is None:
            raise TinypruneError(f"{args.resume} holds no optimizer state; cannot resume exactly")
        optimizer = checkpoint.restore_optimizer(restored)
        if args.lr is not None:
            optimizer.lr = args.lr
        hidden = model.sizes[1:-1]
    else:
        hidden = args.hidden if args.hidden is not None else DEFAULTS["hidden"]
        sizes = [splits.train.X.shape[1], *hidden, splits.num_classes]
        model = MLP(sizes, seed=_resolved(args, meta, "seed"))
        name = _resolved(args, meta, "optimizer")
        options: dict[str, Any] = {"lr": _resolved(args, meta, "lr")}
        if name == "sgd":
            options["momentum"] = args.momentum
        optimizer = make_optimizer(name, model.parameters(), **options)
    settings = {key: _resolved(args, meta, key) for key in ("batch_size", "loss", "seed", "engine")}
    print(f"training {model} on {dataset} ({len(splits.train)} train / {len(splits.test)} test rows), "
          f"{type(optimizer).__name__} lr={optimizer.lr:g}, batch {settings['batch_size']}, "
          f"epochs {initial_epoch + 1}..{initial_epoch + args.epochs}, engine {settings['engine']}",
          flush=True)
    history = fit(model, splits.train, epochs=args.epochs, optimizer=optimizer, progress=progress_mode(args),
                  initial_epoch=initial_epoch, **settings)
    scores = evaluate(model, splits.test, loss=settings["loss"])
    seconds = sum(history.seconds) / len(history)
    print(f"test accuracy {scores['accuracy']:.4f}  test loss {scores['loss']:.4f}  "
          f"({seconds:.2f} s per epoch)")
    if args.out:
        previous = meta.get("history")
        full_history = {key: previous[key] + values for key, values in history.to_dict().items()} \
            if previous else history.to_dict()
        meta = {**meta, "dataset": dataset, "epochs": initial_epoch + args.epochs, "hidden": list(hidden),
                "optimizer": type(optimizer).__name__.lower(), "lr": optimizer.lr,
                "test_accuracy": scores["accuracy"], "test_loss": scores["loss"], "history": full_history,
                "tinyprune_version": __version__, **settings}
        path = checkpoint.save(args.out, model, optimizer, meta=meta)
        print(f"saved {path}")
    return 0


# --------------------------------------------------------------------------- evaluate
def add_evaluate_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a checkpoint: loss, accuracy and the per-layer summary",
        description="Load a checkpoint, print its loss and accuracy on a dataset's test (or train) split, "
                    "and the metrics summary (parameters, nonzeros, FLOPs per layer).")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a .npz file written by tinyprune")
    add_data_arguments(parser, dataset_default=None,
                       dataset_help=f"the checkpoint's, else {DEFAULTS['dataset']}")
    parser.add_argument("--split", choices=("test", "train"), default="test",
                        help="which split to evaluate (default: test)")
    parser.add_argument("--loss", choices=LOSS_NAMES, default="cross_entropy",
                        help="loss to report (default: cross_entropy)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    restored = checkpoint.load(args.checkpoint)
    dataset = args.dataset or restored.meta.get("dataset", DEFAULTS["dataset"])
    split = getattr(load_dataset(args, dataset), args.split)
    scores = evaluate(restored.model, split, loss=args.loss)
    table = metrics.summary(restored.model)
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "dataset": dataset, "split": args.split,
                          **scores, "summary": table.to_dict()}))
        return 0
    epochs = restored.meta.get("epochs")
    print(f"{args.checkpoint}: {restored.model}" + (f", trained {epochs} epochs" if epochs else ""))
    print(f"{dataset} {args.split} ({len(split)} rows): loss {scores['loss']:.4f}  "
          f"accuracy {scores['accuracy']:.4f}")
    print(table)
    return 0


# --------------------------------------------------------------------------- run
def add_run_parser(subparsers: Any) -> None:
    from tinyprune import experiment, prune

    recipe = experiment.RECIPE
    parser = subparsers.add_parser(
        "run", help="the document's whole experiment: train, prune, recover, report (the main job)",
        description="Train the dense 784-64-64-10 model (or load --dense), prune it, recover until within "
                    "--tolerance of the dense accuracy or out of budget, print the before/after table and "
                    "write report.json, the checkpoints and the figures into --out. The defaults are the "
                    "recipe that won benchmarks/bench_recovery.py.")
    add_data_arguments(parser)
    parser.add_argument("--dense", default=None, metavar="CHECKPOINT",
                        help="start from this trained dense checkpoint instead of training one")
    parser.add_argument("--dense-epochs", type=int, default=DEFAULTS["epochs"],
                        help="epochs of dense training, Adam lr 1e-3, batch 128 "
                             f"(default: {DEFAULTS['epochs']})")
    parser.add_argument("--sparsity", type=float, default=recipe["sparsity"],
                        help=f"fraction of weights to prune (default: {recipe['sparsity']})")
    parser.add_argument("--criterion", default=None,
                        choices=sorted({*experiment.CRITERIA, *prune.NEURON_CRITERIA}),
                        help=f"pruning criterion (default: {recipe['criterion']}; with --structure neurons: "
                             "magnitude, a neuron's L2 norm)")
    parser.add_argument("--scope", default=recipe["scope"], choices=prune.SCOPES,
                        help=f"one global threshold or per layer (default: {recipe['scope']})")
    parser.add_argument("--structure", default=recipe["structure"], choices=prune.STRUCTURES,
                        help=f"single weights, whole neurons or n:m (default: {recipe['structure']})")
    parser.add_argument("--schedule", default=recipe["schedule"], choices=experiment.SCHEDULES,
                        help=f"when to prune (default: {recipe['schedule']})")
    parser.add_argument("--recovery", default=recipe["recovery"], choices=experiment.RECOVERIES,
                        help=f"how to recover (default: {recipe['recovery']})")
    parser.add_argument("--start-sparsity", type=float, default=recipe["start_sparsity"],
                        help="gradual schedule: prune this much at once first (by "
                             f"{recipe['start_criterion']}, then reconstruct); 0 for none "
                             f"(default: {recipe['start_sparsity']})")
    budget = recipe["max_rounds"] * recipe["epochs_per_round"]
    parser.add_argument("--budget-epochs", type=int, default=budget,
                        help="recovery budget in epochs of the training set; the loop checks after each "
                             f"(default: {budget})")
    parser.add_argument("--tolerance", type=float, default=recipe["tolerance"],
                        help=f"recovered = within this fraction of the dense accuracy "
                             f"(default: {recipe['tolerance']}, half a point)")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"recovery learning rate (default: {recipe['lr']})")
    parser.add_argument("--batch-size", type=int, default=recipe["batch_size"],
                        help=f"recovery minibatch size (default: {recipe['batch_size']})")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                        help="seed of the dense model, the pruning and the recovery "
                             f"(default: {DEFAULTS['seed']})")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for report.json, checkpoints and figures (default: runs/<timestamp>/)")
    parser.add_argument("--no-figures", action="store_true", help="do not draw the figures")
    parser.add_argument("--no-progress", action="store_true", help="print nothing per epoch")
    parser.set_defaults(handler=run_run)


def run_run(args: argparse.Namespace) -> int:
    import copy
    import time
    from pathlib import Path

    from tinyprune import experiment, prune
    from tinyprune.train import WeightSnapshot

    started = time.perf_counter()
    if args.budget_epochs < 1:
        raise TinypruneError(f"--budget-epochs must be >= 1, got {args.budget_epochs}")
    out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    splits = load_dataset(args)
    snapshot = None
    if args.dense:
        model = checkpoint.load(args.dense).model
        print(f"dense model {model} from {args.dense}")
    else:
        model = MLP([splits.train.X.shape[1], *DEFAULTS["hidden"], splits.num_classes], seed=args.seed)
        snapshot = WeightSnapshot(epochs=[0, 1])
        print(f"training the dense {model} on {args.dataset} ({len(splits.train)} rows): Adam lr 1e-3, "
              f"batch 128, {args.dense_epochs} epochs", flush=True)
        fit(model, splits.train, epochs=args.dense_epochs, batch_size=DEFAULTS["batch_size"],
            seed=args.seed, progress=progress_mode(args), callbacks=[snapshot])
        checkpoint.save(out / "dense.npz", model, meta={"dataset": args.dataset, "epochs": args.dense_epochs,
                                                       "seed": args.seed})
    dense = copy.deepcopy(model)
    options = dict(sparsity=args.sparsity, criterion=args.criterion, scope=args.scope,
                   structure=args.structure, schedule=args.schedule, recovery=args.recovery,
                   tolerance=args.tolerance,
                   max_rounds=args.budget_epochs, epochs_per_round=1, seed=args.seed,
                   batch_size=args.batch_size, rewind_to=snapshot, start_sparsity=args.start_sparsity)
    if args.lr is not None:
        options["lr"] = args.lr
    report = experiment.prune_and_recover(model, splits, progress=progress_mode(args),
                                          log=lambda text: print(text, flush=True), **options)
    print()
    print(report)
    checkpoint.save(out / "pruned.npz", model, meta={"dataset": args.dataset, "report": "report.json",
                                                    "final_accuracy": report.final_accuracy,
                                                    "sparsity": report.sparsity})
    files = ["dense.npz"] * (not args.dense) + ["pruned.npz", "report.json"]
    if not args.no_figures:
        try:
            from tinyprune import plot
        except ImportError:
            plot = None
        if plot is None:
            print("matplotlib is not installed: no figures (pip install 'tinyprune[plot]')")
        else:
            table = prune.sensitivity(dense, splits.test, sparsities=(0.5, 0.8, 0.9, 0.95, 0.98))
            drawn = [plot.accuracy_per_epoch(report, out / "accuracy_per_epoch.png"),
                     plot.weight_histograms(dense, model, out / "weight_histograms.png"),
                     plot.layer_sparsity_bars(model, out / "layer_sparsity.png"),
                     plot.layer_sensitivity(table, out / "layer_sensitivity.png")]
            try:
                drawn.append(plot.first_layer_connections(model, out / "first_layer_connections.png"))
            except ValueError:
                pass                                   # inputs that are not a square image
            files += [path.name for path in drawn]
    values = {**report.to_dict(), "dataset": args.dataset, "dense_checkpoint": args.dense or "dense.npz",
              "out": str(out), "files": files, "total_seconds": time.perf_counter() - started}
    (out / "report.json").write_text(json.dumps(values, indent=2) + "\n")
    print(f"wrote {', '.join(files)} to {out}/ ({values['total_seconds']:.1f} s in all)")
    return 0


# --------------------------------------------------------------------------- sweep
def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds or any(seed < 0 for seed in seeds):
        raise argparse.ArgumentTypeError(f"expected seeds >= 0, got {text!r}")
    return seeds


def add_sweep_parser(subparsers: Any) -> None:
    from tinyprune import experiment

    parser = subparsers.add_parser(
        "sweep", help="accuracy against sparsity for several criteria and recoveries (table and figure)",
        description="Run the prune/recover loop for every criterion x sparsity x recovery x seed from one "
                    "trained dense model (trained here, or --dense), print mean ± std over the seeds, and "
                    "write sweep.json and accuracy_vs_sparsity.png into --out.")
    add_data_arguments(parser)
    parser.add_argument("--dense", default=None, metavar="CHECKPOINT", help="the trained dense checkpoint")
    parser.add_argument("--dense-epochs", type=int, default=DEFAULTS["epochs"],
                        help=f"epochs of dense training when no --dense (default: {DEFAULTS['epochs']})")
    parser.add_argument("--criteria", default="magnitude,random",
                        help=f"comma-separated, from {', '.join(experiment.CRITERIA)} "
                             "(default: magnitude,random)")
    parser.add_argument("--sparsities", type=_floats, default=[0.5, 0.8, 0.9, 0.95, 0.98],
                        help="comma-separated (default: 0.5,0.8,0.9,0.95,0.98)")
    parser.add_argument("--recoveries", default="finetune,lr-rewind,distill,reconstruct",
                        help=f"comma-separated, from {', '.join(experiment.RECOVERIES)} "
                             "(default: finetune,lr-rewind,distill,reconstruct)")
    parser.add_argument("--seeds", type=_seeds, default=[0], metavar="SEEDS",
                        help="comma-separated seeds of the pruning and recovery (default: 0)")
    parser.add_argument("--schedule", default="one-shot", choices=experiment.SCHEDULES,
                        help="when to prune (default: one-shot, which every recovery accepts)")
    parser.add_argument("--budget-epochs", type=int, default=3, help="recovery epochs per run (default: 3)")
    parser.add_argument("--batch-size", type=int, default=experiment.RECIPE["batch_size"],
                        help=f"recovery minibatch size (default: {experiment.RECIPE['batch_size']})")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1, inline)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of the dense model")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for sweep.json and the figure (default: runs/sweep-<timestamp>/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from tinyprune import experiment

    criteria = [c for c in args.criteria.split(",") if c]
    recoveries = [r for r in args.recoveries.split(",") if r]
    for label, values, allowed in (("criterion", criteria, experiment.CRITERIA),
                                   ("recovery", recoveries, experiment.RECOVERIES)):
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            raise TinypruneError(f"unknown {label} {unknown or values}; "
                                 f"expected some of {', '.join(allowed)}")
    if "rewind" in recoveries:
        raise TinypruneError("the sweep has no early weights to rewind to; leave out 'rewind' (use "
                             "benchmarks/bench_recovery.py, which keeps them)")
    out = Path(args.out) if args.out else Path("runs") / time.strftime("sweep-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    splits = load_dataset(args)
    if args.dense:
        model = checkpoint.load(args.dense).model
    else:
        model = MLP([splits.train.X.shape[1], *DEFAULTS["hidden"], splits.num_classes], seed=args.seed)
        print(f"training the dense {model} on {args.dataset}, {args.dense_epochs} epochs", flush=True)
        fit(model, splits.train, epochs=args.dense_epochs, seed=args.seed, progress=progress_mode(args))
    result = experiment.sweep(model, splits, criteria=criteria, sparsities=args.sparsities,
                              recoveries=recoveries, seeds=args.seeds, workers=args.workers,
                              progress=not args.no_progress, schedule=args.schedule, max_rounds=1,
                              epochs_per_round=args.budget_epochs, tolerance=0.0,
                              batch_size=args.batch_size)
    print(result)
    result.to_json(out / "sweep.json")
    files = ["sweep.json"]
    try:
        from tinyprune import plot
    except ImportError:
        print("matplotlib is not installed: no figure (pip install 'tinyprune[plot]')")
    else:
        plot.accuracy_vs_sparsity(result, out / "accuracy_vs_sparsity.png",
                                  title=f"{args.dataset}: accuracy after {args.budget_epochs} "
                                        "recovery epochs")
        files.append("accuracy_vs_sparsity.png")
    print(f"wrote {', '.join(files)} to {out}/")
    return 0


# --------------------------------------------------------------------------- export
def add_export_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export", help="write a checkpoint's model as .npz, PyTorch safetensors or Keras 3 weights",
        description="Load a checkpoint and write its model (optionally compacted: dead and pruned neurons "
                    "physically removed) as a tinyprune .npz (sparse), a PyTorch nn.Sequential state dict "
                    "in safetensors, or Keras 3 weights (.weights.h5, or a .keras archive); print the "
                    "parameters, FLOPs and file size before and after.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a .npz file written by tinyprune")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="where to write (.npz, .safetensors, .weights.h5 or .keras)")
    parser.add_argument("--format", choices=("npz", "safetensors", "keras"), default=None,
                        help="the output format (default: from the extension of --out)")
    parser.add_argument("--compact", action="store_true",
                        help="remove dead neurons first (tinyprune.prune.compact): a smaller dense model")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(handler=run_export)


def _size_row(label: str, model: MLP, size: int) -> str:
    return (f"{label:<8} {str(model.sizes):<22} {metrics.count_parameters(model):>11,} "
            f"{metrics.count_nonzeros(model):>10,} {metrics.flops(model):>11,} "
            f"{metrics.flops(model, effective=True):>15,} {size:>11,}")


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tinyprune import interop, prune
    from tinyprune.files import check_target

    kind = interop.format_of(args.out, args.format)
    check_target(args.out, overwrite=args.overwrite)           # refuse before any work
    restored = checkpoint.load(args.checkpoint)
    model = prune.compact(restored.model) if args.compact else restored.model
    try:
        if kind == "npz":
            meta = {**restored.meta, "exported_from": str(args.checkpoint), "compacted": bool(args.compact)}
            path = checkpoint.save(args.out, model, meta=meta, overwrite=args.overwrite)
        else:
            path = interop.export_model(args.out, model, kind, overwrite=args.overwrite)
    except ImportError as error:
        raise TinypruneError(str(error)) from None
    print(f"{'':<8} {'sizes':<22} {'parameters':>11} {'nonzeros':>10} {'FLOPs':>11} "
          f"{'FLOPs (nonzero)':>15} {'file bytes':>11}")
    print(_size_row("before", restored.model, Path(args.checkpoint).stat().st_size))
    print(_size_row("after", model, path.stat().st_size))
    print(f"wrote {path} ({kind})")
    return 0


# --------------------------------------------------------------------------- import
def add_import_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import", help="read a PyTorch safetensors or Keras 3 MLP into a tinyprune checkpoint",
        description="Read the weights of an MLP (a PyTorch nn.Sequential of Linear and ReLU saved as "
                    "safetensors, or a Keras 3 Sequential of Dense layers as .weights.h5 or .keras) and "
                    "save them as a tinyprune checkpoint, ready for evaluate, run --dense, or export.")
    parser.add_argument("file", metavar="FILE", help="a .safetensors, .weights.h5, .keras or .npz file")
    parser.add_argument("--out", required=True, metavar="CHECKPOINT", help="the checkpoint to write (.npz)")
    parser.add_argument("--format", choices=("npz", "safetensors", "keras"), default=None,
                        help="the input format (default: from the extension of FILE)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    from tinyprune import interop
    from tinyprune.files import check_target

    kind = interop.format_of(args.file, args.format)
    check_target(args.out, overwrite=args.overwrite)           # refuse before any work
    try:
        model = interop.import_model(args.file, kind)
    except ImportError as error:
        raise TinypruneError(str(error)) from None
    path = checkpoint.save(args.out, model, meta={"imported_from": str(args.file), "format": kind},
                           overwrite=args.overwrite)
    print(f"read {args.file} ({kind}): {model}, {metrics.count_parameters(model):,} parameters, "
          f"{metrics.count_nonzeros(model):,} nonzero")
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


# --------------------------------------------------------------------------- main
COMMANDS: list[Callable[[Any], None]] = [add_train_parser, add_evaluate_parser, add_run_parser,
                                          add_sweep_parser, add_export_parser, add_import_parser]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per entry of ``COMMANDS``."""
    parser = _Parser(prog="tinyprune", description="Prune a neural network and recover its accuracy, "
                                                    "from scratch in NumPy.")
    parser.add_argument("--version", action="version", version=f"tinyprune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:          # --help, --version, or a usage error (already printed)
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print("tinyprune: error: choose a command (see tinyprune --help)", file=sys.stderr)
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("tinyprune: interrupted", file=sys.stderr)
        return 130
    except (TinypruneError, ValueError, OSError) as error:
        if args.debug:
            raise
        print(f"tinyprune: error: {_one_line(error)}", file=sys.stderr)
        return 2
