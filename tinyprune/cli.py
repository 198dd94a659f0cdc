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
import copy
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from tinyprune import __version__, checkpoint, data, metrics
from tinyprune.core.nn import MLP
from tinyprune.errors import TinypruneError
from tinyprune.fast.optim import OPTIMIZERS, make_optimizer
from tinyprune.training import ENGINES, History, evaluate, fit

LOSS_NAMES = ("cross_entropy", "squared_error")
DEFAULTS = {"dataset": "mnist-5k", "epochs": 10, "batch_size": 128, "lr": 1e-3, "seed": 0,
            "engine": "backprop", "loss": "cross_entropy", "optimizer": "adam", "hidden": [64, 64]}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit code 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}{self._suggestion(message)} (see {self.prog} --help)\n")

    def _suggestion(self, message: str) -> str:
        """A "did you mean" for an unknown flag or an invalid choice (argparse of Python < 3.14 has none)."""
        import re

        from tinyprune.experiment.parts import did_you_mean

        unknown = re.search(r"unrecognized arguments: (\S+)", message)
        if unknown:
            flags = [flag for action in self._actions for flag in action.option_strings]
            return did_you_mean(unknown.group(1).split("=")[0], flags)
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            return did_you_mean(choice.group(1), re.findall(r"'?([\w.:-]+)'?", choice.group(2)))
        return ""


class _Examples(argparse.HelpFormatter):
    """Wraps the description as usual but keeps the epilog's example commands one per line."""

    def add_text(self, text: str | None) -> None:
        if text and text.startswith("examples:"):
            self._add_item(lambda t: t + "\n", [text])
        else:
            super().add_text(text)


def _one_line(error: BaseException) -> str:
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


# --------------------------------------------------------------------------- shared options
def add_data_arguments(parser: argparse.ArgumentParser, dataset_default: str | None = DEFAULTS["dataset"],
                       dataset_help: str | None = None) -> None:
    """``--dataset``, ``--data-root``, ``--no-download``, ``--trust-data``."""
    parser.add_argument("--dataset", default=dataset_default, choices=sorted(data.DATASETS),
                        help=f"dataset name (default: {dataset_help or dataset_default})")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="folder holding the dataset's files (default: the cache, then system folders)")
    parser.add_argument("--no-download", action="store_true",
                        help="never download; fail if the dataset is not found locally")
    parser.add_argument("--trust-data", action="store_true",
                        help="use dataset files that match no known checksum (files you made or checked "
                             "yourself); the report and checkpoints record the data as unverified")


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
    return data.load(name or args.dataset, root=args.data_root, download=not args.no_download,
                     trust=args.trust_data)


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
    parser.add_argument("--validation", type=float, default=None, metavar="FRACTION",
                        help="hold out this fraction of the training rows, as `tinyprune run` does "
                             "(stratified, by --seed), so that `run --dense` decides on rows the model never "
                             "saw; 0 trains "
                             "on all of them (default: 0.1, or the checkpoint's with --resume)")
    parser.add_argument("--resume", default=None, metavar="PATH",
                        help="continue training this checkpoint for --epochs more epochs (same data order "
                             "and optimizer state as if it had never stopped)")
    parser.set_defaults(handler=run_train)


def _check_resume(args: argparse.Namespace, restored: checkpoint.Checkpoint) -> None:
    """Refuse a flag that contradicts what the resumed checkpoint fixes (its sizes and optimizer)."""
    fixed = {"--hidden": (args.hidden, restored.model.sizes[1:-1]),
             "--optimizer": (args.optimizer, (restored.optimizer_class or "").lower()),
             "--momentum": (args.momentum or None, (restored.optimizer_options or {}).get("momentum", 0.0))}
    for flag, (given, stored) in fixed.items():
        if given is not None and given != stored:
            raise TinypruneError(f"{flag} {given}: the checkpoint {args.resume} fixes it at {stored} when "
                                 f"resuming; leave out {flag} (or train a new model without --resume)")


def run_train(args: argparse.Namespace) -> int:
    from tinyprune.files import check_writable

    meta: dict[str, Any] = {}
    initial_epoch = 0
    if args.out is not None:
        check_writable(args.out)                        # before the first epoch, not after the last
    if args.resume:
        restored = checkpoint.load(args.resume)
        _check_resume(args, restored)
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
    held_out = _held_out(args, meta, dataset, settings["seed"])
    train_rows = _training_rows(splits, held_out)
    print(f"training {model} on {dataset} ({len(train_rows)} train rows, {_held_out_text(held_out)}; "
          f"{len(splits.test)} test rows), "
          f"{type(optimizer).__name__} lr={optimizer.lr:g}, batch {settings['batch_size']}, "
          f"epochs {initial_epoch + 1}..{initial_epoch + args.epochs}, engine {settings['engine']}",
          flush=True)
    with np.errstate(over="ignore", invalid="ignore"):  # a divergence is the one clean error fit raises
        history = fit(model, train_rows, epochs=args.epochs, optimizer=optimizer,
                      progress=progress_mode(args), initial_epoch=initial_epoch, **settings)
    scores = evaluate(model, splits.test, loss=settings["loss"])
    seconds = sum(history.seconds) / len(history)
    print(f"test accuracy {scores['accuracy']:.4f}  test loss {scores['loss']:.4f}  "
          f"({seconds:.2f} s per epoch)")
    if args.out is not None:
        previous = meta.get("history")
        full_history = {key: previous[key] + values for key, values in history.to_dict().items()} \
            if previous else history.to_dict()
        meta = {**meta, "dataset": dataset, "epochs": initial_epoch + args.epochs, "hidden": list(hidden),
                "optimizer": type(optimizer).__name__.lower(), "lr": optimizer.lr,
                "test_accuracy": scores["accuracy"], "test_loss": scores["loss"], "history": full_history,
                "held_out": held_out,
                "tinyprune_version": __version__, **_provenance(splits), **settings}
        path = checkpoint.save(args.out, model, optimizer, meta=meta)
        print(f"saved {path}")
    return 0


def _held_out(args: argparse.Namespace, meta: dict[str, Any], dataset: str, seed: int) -> dict[str, Any]:
    """Which training rows ``train`` holds out: ``{"dataset", "validation", "seed"}`` (a resumed checkpoint
    keeps its own, and a contradicting ``--validation`` is refused)."""
    if "held_out" in meta:
        kept = meta["held_out"]
        if args.validation is not None and args.validation != kept["validation"]:
            raise TinypruneError(f"--validation {args.validation}: the checkpoint held out "
                                 f"{kept['validation']} of the training rows; resuming keeps it")
        return kept
    fraction = 0.1 if args.validation is None else args.validation
    if not 0 <= fraction < 0.5:
        raise TinypruneError(f"--validation must be a fraction in [0, 0.5), got {fraction}")
    return {"dataset": dataset, "validation": fraction, "seed": seed}


def _training_rows(splits: data.Splits, held_out: dict[str, Any]) -> data.Dataset:
    """The training rows less the held-out validation rows (split as ``experiment.three_splits`` does)."""
    if held_out["validation"] == 0:
        return splits.train
    return splits.train.split(1 - held_out["validation"], seed=held_out["seed"])[0]


def _held_out_text(held_out: dict[str, Any]) -> str:
    if held_out["validation"] == 0:
        return "none held out for validation"
    return f"{held_out['validation']:.0%} held out for validation by seed {held_out['seed']}"


def check_dense_rows(meta: dict[str, Any], dataset: str, recipe: Any) -> str:
    """What ``run --dense`` can say of the rows the dense model trained on: refuse a checkpoint of
    ``tinyprune train`` that saw the validation rows this run holds out; for a model from elsewhere,
    return a warning line (it is also recorded in report.json)."""
    held_out = meta.get("held_out")
    if held_out is None:
        source = meta.get("imported_from")
        origin = f"imported from {source}" if source else "with no record of its training rows"
        return (f"the dense model is {origin}: the {recipe.validation:.0%} of the training rows held out "
                "for validation may have been seen in its training, so the decisions may be optimistic")
    same = (held_out["dataset"], held_out["validation"], held_out["seed"]) == \
        (dataset, recipe.validation, recipe.seed)
    if held_out["validation"] == 0:
        raise TinypruneError(
            f"the dense checkpoint trained on every training row of {held_out['dataset']}, the "
            f"{recipe.validation:.0%} this run holds out for validation included: it would decide on rows "
            f"the model trained on. Train it holding them out (tinyprune train --validation "
            f"{recipe.validation}), or train the dense model here (leave out --dense)")
    if not same:
        raise TinypruneError(
            f"the dense checkpoint trained on {held_out['dataset']} holding out {held_out['validation']} of "
            "the "
            f"training rows by seed {held_out['seed']}, but this run holds out {recipe.validation} by seed "
            f"{recipe.seed} of {dataset}: it would decide on rows the model trained on. Run with --dataset "
            f"{held_out['dataset']} --validation {held_out['validation']} --seed {held_out['seed']}, or "
            "train the dense model here (leave out --dense)")
    return ""


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


# --------------------------------------------------------------------------- the recipe's flags
#: Recipe fields whose flag is spelled differently on the command line (the budget is in epochs of
#: recovery, not of the dense training, which ``--dense-epochs`` sets).
FLAG_NAMES = {"epochs": "budget-epochs"}
FLAG_ALIASES = {"sparsity": ("--layer-sparsity",)}


def _flag(name: str) -> str:
    return "--" + FLAG_NAMES.get(name, name.replace("_", "-"))


def _sparsity(text: str) -> float | dict[str, float]:
    """``"0.9"`` -> 0.9; ``"layers.0.W=0.95,layers.1.W=0.8"`` -> a per-layer mapping."""
    try:
        if "=" not in text:
            return float(text)
        pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
        return {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.9 or layer=fraction pairs such as "
                                         f"layers.0.W=0.95,layers.1.W=0.8, got {text!r}") from None


def _field_parser(recipe_field: Any) -> Callable[[str], Any]:
    """How one recipe field is read from its flag's text: by the type of its default value."""
    name, default = recipe_field.name, recipe_field.default
    if name == "sparsity":
        return _sparsity

    def parse(text: str) -> Any:
        if text.strip().lower() in ("none", "") and recipe_field.type.endswith("None"):
            return None
        try:
            if isinstance(default, tuple):
                return tuple(int(part) for part in text.split(","))
            if isinstance(default, bool):
                return text.lower() in ("1", "true", "yes")
            if isinstance(default, int) or "int" in recipe_field.type:
                return int(text)
            if isinstance(default, float) or "float" in recipe_field.type:
                return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{_flag(name)}: cannot read {text!r} as the expected value "
                                             f"(default {default!r})") from None
        return text

    return parse


def add_recipe_arguments(parser: argparse.ArgumentParser, default: str, skip: Sequence[str] = ()) -> None:
    """``--recipe NAME|FILE`` and one flag per ``Recipe`` field (help from the field's metadata).

    A flag that is not given keeps the recipe's value; the recipe checks every value (``RecipeError``).
    """
    from dataclasses import fields

    from tinyprune.experiment.recipe import GROUPS, Recipe, field_choices, recipe_names

    parser.add_argument("--recipe", default=default, metavar="NAME|FILE",
                        help=f"start from a named recipe ({', '.join(recipe_names())}) or a .toml/.json "
                             f"file; the flags below override its fields (default: {default})")
    shown_values = {f.name: f.default for f in fields(Recipe)} | Recipe.read_values(default)   # help only
    groups = {group: parser.add_argument_group(f"recipe: {group}") for group in GROUPS}
    for recipe_field in fields(Recipe):
        if recipe_field.name in skip:
            continue
        meta = recipe_field.metadata
        shown = shown_values[recipe_field.name]
        choices = field_choices(recipe_field.name)
        named = f"; one of {', '.join(choices)}" if choices else ""
        if recipe_field.name == "criterion":
            named += f"; for neurons {', '.join(field_choices('criterion', 'neurons') or ())}"
        groups[meta["group"]].add_argument(
            _flag(recipe_field.name), *FLAG_ALIASES.get(recipe_field.name, ()),
            dest=f"recipe_{recipe_field.name}",
            type=_field_parser(recipe_field), default=argparse.SUPPRESS,
            metavar=meta.get("metavar", recipe_field.name.upper()),
            help=f"{meta['help']}{named} (in recipe {default}: {shown if shown is not None else 'unset'})")


def recipe_from_args(args: argparse.Namespace) -> Any:
    """The ``Recipe`` of ``--recipe`` with every given flag applied (checked by ``Recipe``)."""
    from tinyprune.experiment.recipe import Recipe

    changes = {key[len("recipe_"):]: value for key, value in vars(args).items() if key.startswith("recipe_")}
    values = {**Recipe.read_values(args.recipe), **changes}
    if values.get("structure") == "n:m" and "sparsity" not in changes:   # n:m sets the sparsity: 1 - n/m
        n, m = values.get("n_m", Recipe.__dataclass_fields__["n_m"].default)
        values["sparsity"] = 1 - n / m
    return Recipe.from_dict(values, source=str(args.recipe))              # checked once, here


def _output_folder(args: argparse.Namespace, stem: str) -> Any:
    """The staged run folder: ``--out`` (checked now, before any work) or a unique ``runs/<stem>``."""
    from tinyprune import files

    if args.out is not None:
        files.check_publishable(args.out, overwrite=args.overwrite)  # a mount point is refused now, not after
        return files.staged_folder(args.out, overwrite=args.overwrite)
    return files.staged_unique_folder("runs", time.strftime(stem))


def _stage_path(stage: Any) -> Path:
    return Path(stage.folder if hasattr(stage, "folder") else stage)


def _dense_model(args: argparse.Namespace, train: data.Dataset, seed: int, rewind_epochs: Sequence[int]
                 ) -> tuple[MLP, Any]:
    """The dense model: loaded from ``--dense``, or trained here on ``train`` (the training rows less the
    validation rows, which it must never see) with a snapshot of its early weights."""
    from tinyprune.training import WeightSnapshot

    if args.dense:
        model = checkpoint.load(args.dense).model
        print(f"dense model {model} from {args.dense}")
        return model, None
    if args.dense_epochs < 1:
        raise TinypruneError(f"--dense-epochs must be an integer >= 1, got {args.dense_epochs}")
    model = MLP([train.X.shape[1], *DEFAULTS["hidden"], train.num_classes], seed=seed)
    snapshot = WeightSnapshot(epochs=sorted({0, *rewind_epochs}))
    print(f"training the dense {model} on {args.dataset} ({len(train)} rows): Adam lr 1e-3, "
          f"batch 128, {args.dense_epochs} epochs", flush=True)
    fit(model, train, epochs=args.dense_epochs, batch_size=DEFAULTS["batch_size"], seed=seed,
        progress=progress_mode(args), callbacks=[snapshot])
    return model, snapshot


def _provenance(splits: data.Splits) -> dict[str, Any]:
    """Where the data came from and whether every file matched a known checksum (``--trust-data``)."""
    return {"data_source": getattr(splits, "source", None),
            "data_verified": getattr(splits, "verified", None)}


def _check_dense_epochs(args: argparse.Namespace) -> None:
    if not args.dense and args.dense_epochs < 1:
        raise TinypruneError(f"--dense-epochs must be an integer >= 1, got {args.dense_epochs}")


def _draw_figures(folder: Path, report: Any, dense: MLP, model: MLP, test: data.Dataset) -> list[str]:
    """The run's figures; a figure that cannot be drawn is reported on one line and skipped."""
    from tinyprune import prune

    try:
        from tinyprune import plot

        table = prune.sensitivity(dense, test, sparsities=(0.5, 0.8, 0.9, 0.95, 0.98))
        loop = plot.loop_steps(report, folder / "loop.png")
        if loop is None:
            print(f"no loop.png: nothing was recovered (verdict: {report.verdict}), so there is no curve")
        drawn = [*([loop] if loop else []),
                 plot.weight_histograms(dense, model, folder / "weight_histograms.png"),
                 plot.layer_sparsity_bars(model, folder / "layer_sparsity.png"),
                 plot.layer_sensitivity(table, folder / "layer_sensitivity.png")]
        if int(np.sqrt(model.sizes[0])) ** 2 == model.sizes[0]:         # inputs that are a square image
            drawn.append(plot.first_layer_connections(model, folder / "first_layer_connections.png"))
    except Exception as error:            # a figure that fails never loses the run: say so and go on
        print(f"no figures: {type(error).__name__}: {_one_line(error)}")
        return []
    return [path.name for path in drawn]


# --------------------------------------------------------------------------- run
def add_run_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="the document's whole experiment: train, prune, recover, report (the main job)",
        description="Train the dense 784-64-64-10 model (or load --dense), prune it and recover it by a "
                    "recipe (--recipe, default: the benchmark's winner; every recipe field is a flag below), "
                    "deciding 'dropped?' and 'recovered?' on validation rows held out of the training set, "
                    "print the before/after table and write report.json, the checkpoints and the figures "
                    "into --out, which holds a complete run or nothing.",
        epilog="examples:\n  tinyprune run\n  tinyprune run --recipe document --sparsity 0.8\n"
               "  tinyprune run --recipe han2015 --budget-epochs 2 --check-every 2 --steps 1\n"
               "  tinyprune recipes",
        formatter_class=_Examples)
    add_data_arguments(parser)
    parser.add_argument("--dense", default=None, metavar="CHECKPOINT",
                        help="start from this trained dense checkpoint instead of training one")
    parser.add_argument("--dense-epochs", type=int, default=DEFAULTS["epochs"],
                        help="epochs of dense training, Adam lr 1e-3, batch 128 "
                             f"(default: {DEFAULTS['epochs']})")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="a new (or empty) folder for report.json, checkpoints and figures "
                             "(default: a new runs/<timestamp>/)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    parser.add_argument("--no-figures", action="store_true", help="do not draw the figures")
    parser.add_argument("--no-progress", action="store_true", help="print nothing per epoch")
    add_recipe_arguments(parser, "default")
    parser.set_defaults(handler=run_experiment)


def run_experiment(args: argparse.Namespace) -> int:
    from tinyprune import experiment

    started = time.perf_counter()
    recipe = recipe_from_args(args)                     # every refusal before any training
    _check_dense_epochs(args)
    stage_context = _output_folder(args, "%Y%m%d-%H%M%S")
    held_out, provenance = _held_out_splits(args, recipe)          # (train, val, test): one copy of the rows
    given = checkpoint.load(args.dense) if args.dense else None
    dense_sizes = given.model.sizes if given else [held_out[0].X.shape[1], *DEFAULTS["hidden"],
                                                   held_out[0].num_classes]
    recipe.check_model(dense_sizes, snapshot=not args.dense)
    leak_warning = check_dense_rows(given.meta, args.dataset, recipe) if given else ""
    if leak_warning:
        print(f"warning: {leak_warning}")
    with stage_context as stage:
        folder = _stage_path(stage)
        model, snapshot = _dense_model(args, held_out[0], recipe.seed, [recipe.rewind_epoch])
        files = [] if args.dense else [_save_dense(folder, model, provenance, recipe, args.dense_epochs)]
        dense = copy.deepcopy(model)
        report = experiment.prune_and_recover(model, held_out, recipe, rewind_to=snapshot,
                                              progress=progress_mode(args),
                                              log=lambda text: print(text, flush=True))
        report.warnings[:0] = [leak_warning] if leak_warning else []
        print()
        print(report)
        layout = {"torch_layout": given.meta["torch_layout"]} if given and "torch_layout" in given.meta \
            else {}
        checkpoint.save(folder / "pruned.npz", model, meta={**provenance, **layout, "report": "report.json",
                                                           "final_accuracy": report.final_accuracy,
                                                           "sparsity": report.sparsity})
        files += ["pruned.npz", "report.json"]
        values = {**report.to_dict(), **provenance, "dense_checkpoint": args.dense or "dense.npz",
                  "files": files, "total_seconds": time.perf_counter() - started}
        _write_report(folder, values)                          # written before the figures: never lost
        if not args.no_figures:
            drawn = _draw_figures(folder, report, dense, model, held_out[2])
            if drawn:
                values["files"] = files = files + drawn
                _write_report(folder, values)
    out = args.out if args.out is not None else stage.path
    print(f"wrote {', '.join(files)} to {out}/ ({time.perf_counter() - started:.1f} s in all)")
    return 0


def _held_out_splits(args: argparse.Namespace, recipe: Any
                     ) -> tuple[tuple[data.Dataset, ...], dict[str, Any]]:
    """The loaded dataset as ``(train, val, test)`` with the recipe's validation rows held out, and where
    it came from. The validation rows are split off in place (``experiment.three_splits(in_place=True)``)
    and the loaded splits are dropped here, so the training rows are held once, not twice."""
    from tinyprune import experiment

    splits = load_dataset(args)
    provenance = {"dataset": args.dataset, **_provenance(splits)}
    return experiment.three_splits(splits, recipe.validation, recipe.seed, in_place=True), provenance


def _save_dense(folder: Path, model: MLP, provenance: dict[str, Any], recipe: Any, epochs: int) -> str:
    """Save the dense model trained by ``run``, with the validation rows it was kept from."""
    held_out = {"dataset": provenance["dataset"], "validation": recipe.validation, "seed": recipe.seed}
    checkpoint.save(folder / "dense.npz", model, meta={**provenance, "seed": recipe.seed, "epochs": epochs,
                                                       "held_out": held_out})
    return "dense.npz"


def _write_report(folder: Path, values: dict[str, Any]) -> None:
    from tinyprune.files import atomic_write

    atomic_write(folder / "report.json", json.dumps(values, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- sweep
def _floats(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return values


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds or any(seed < 0 for seed in seeds):
        raise argparse.ArgumentTypeError(f"expected seeds >= 0, got {text!r}")
    return seeds


def add_sweep_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep", help="accuracy against sparsity for several criteria and recoveries (table and figure)",
        description="Run the prune/recover loop for every criterion x sparsity x recovery x seed from one "
                    "trained dense model (trained here, or --dense), each a variant of --recipe (default: "
                    "the document's loop, one-shot, which every recovery accepts), print mean ± std over the "
                    "seeds, and write sweep.json and accuracy_vs_sparsity.png into --out.",
        epilog="examples:\n  tinyprune sweep --criteria magnitude,lamp --sparsities 0.5,0.9 "
               "--recoveries finetune,distill --budget-epochs 2",
        formatter_class=_Examples)
    add_data_arguments(parser)
    parser.add_argument("--dense", default=None, metavar="CHECKPOINT", help="the trained dense checkpoint")
    parser.add_argument("--dense-epochs", type=int, default=DEFAULTS["epochs"],
                        help=f"epochs of dense training when no --dense (default: {DEFAULTS['epochs']})")
    parser.add_argument("--criteria", type=_names, default=["magnitude", "random"],
                        help="comma-separated criteria (default: magnitude,random)")
    parser.add_argument("--sparsities", type=_floats, default=[0.5, 0.8, 0.9, 0.95, 0.98],
                        help="comma-separated (default: 0.5,0.8,0.9,0.95,0.98)")
    parser.add_argument("--recoveries", type=_names,
                        default=["finetune", "lr-rewind", "distill", "reconstruct"],
                        help="comma-separated recoveries (default: finetune,lr-rewind,distill,reconstruct)")
    parser.add_argument("--seeds", type=_seeds, default=[0], metavar="SEEDS",
                        help="comma-separated seeds of the split, pruning and recovery (default: 0)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1, inline)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="a new (or empty) folder for sweep.json and the figure "
                             "(default: runs/sweep-<time>/)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier sweep in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_recipe_arguments(parser, "document", skip=("criterion", "sparsity", "recovery"))
    parser.set_defaults(handler=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    from tinyprune import experiment
    from tinyprune.files import atomic_write

    recipe = recipe_from_args(args)
    for criterion in args.criteria:                   # every cell checked before any training
        for sparsity in args.sparsities:
            for recovery in args.recoveries:
                recipe.replace(criterion=criterion, sparsity=sparsity, recovery=recovery)
    if any(r.split("+")[-1] == "rewind" for r in args.recoveries):
        raise TinypruneError("the sweep keeps no early weights to rewind to; leave out 'rewind' (use "
                             "benchmarks/bench_recovery.py, which keeps them)")
    if isinstance(args.workers, bool) or args.workers < 1:
        raise TinypruneError(f"--workers must be an integer >= 1, got {args.workers}")
    _check_dense_epochs(args)
    stem = time.strftime("sweep-%Y%m%d-%H%M%S")
    stage_context = _output_folder(args, stem)
    target = Path(args.out if args.out is not None else f"runs/{stem}")
    journal = target.with_name(target.name + ".partial")
    held_out, _ = _held_out_splits(args, recipe)          # (train, val, test): one copy of the rows
    print(f"each finished run is saved in {journal}/ as it completes; if the sweep stops, the same command "
          f"with --out {target} resumes it", flush=True)
    with stage_context as stage:
        folder = _stage_path(stage)
        model = _sweep_dense_model(args, held_out[0], recipe.seed, journal)
        grid = {"criterion": args.criteria, "sparsity": args.sparsities, "recovery": args.recoveries}
        result = experiment.sweep(model, held_out, recipe, grid=grid, seeds=args.seeds, executor=args.workers,
                                  progress=not args.no_progress, journal=journal)
        if result.lost:
            raise TinypruneError(f"{len(result.lost)} of {len(result.runs)} runs were lost (the process "
                                 f"running each died on every attempt); the finished ones are saved in "
                                 f"{journal}: run the same command with --out {target} to do the rest")
        print(result)
        atomic_write(folder / "sweep.json", result.to_json() + "\n")
        files = ["sweep.json"]
        try:
            from tinyprune import plot

            plot.accuracy_vs_sparsity(result, folder / "accuracy_vs_sparsity.png",
                                      title=f"{args.dataset}: test accuracy after pruning and at most "
                                            f"{recipe.epochs} recovery epoch(s), mean over seeds")
            files.append("accuracy_vs_sparsity.png")
        except Exception as error:        # a figure that fails never loses the sweep: say so and go on
            print(f"no figure: {type(error).__name__}: {_one_line(error)}")
    shutil.rmtree(journal, ignore_errors=True)          # published: the saved runs are in sweep.json
    out = args.out if args.out is not None else stage.path
    print(f"wrote {', '.join(files)} to {out}/")
    return 0


def _sweep_dense_model(args: argparse.Namespace, train: data.Dataset, seed: int, journal: Path) -> MLP:
    """The sweep's dense model: ``--dense``, or the one a stopped sweep saved in its journal, or trained
    here (and saved there, so that resuming does not train it again)."""
    saved = journal / "dense.npz"
    if args.dense is None and saved.is_file():
        stored = checkpoint.load(saved)
        made = tuple(stored.meta.get(key) for key in ("dataset", "epochs", "seed"))
        if made != (args.dataset, args.dense_epochs, seed):
            raise TinypruneError(f"{saved}: the stopped sweep trained its dense model on {made[0]} for "
                                 f"{made[1]} epochs with seed {made[2]}, not {args.dataset} for "
                                 f"{args.dense_epochs} with seed {seed}: use the same options to resume, "
                                 f"or remove {journal}")
        print(f"dense model from {saved} (the sweep being resumed)")
        return stored.model
    model, _ = _dense_model(args, train, seed, [])
    if args.dense is None:
        journal.mkdir(parents=True, exist_ok=True)
        checkpoint.save(saved, model, meta={"dataset": args.dataset, "seed": seed,
                                            "epochs": args.dense_epochs})
    return model


# --------------------------------------------------------------------------- recipes
def add_recipes_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "recipes", help="list the named recipes, or show one field by field",
        description="List the recipes shipped with tinyprune (one line each: where it comes from), or show "
                    "every field of one with its help. Use one with `tinyprune run --recipe NAME`.")
    parser.add_argument("name", nargs="?", default=None, metavar="NAME|FILE",
                        help="show what this recipe changes from the default recipe")
    parser.add_argument("--all", action="store_true",
                        help="with NAME: show every field, not only the changes")
    parser.set_defaults(handler=run_recipes)


def run_recipes(args: argparse.Namespace) -> int:
    from tinyprune.experiment.recipe import Recipe, recipe_names, recipe_summary

    if args.name:
        print(Recipe.from_file(args.name).describe(changes_only=not args.all))
        return 0
    width = max(len(name) for name in recipe_names())
    for name in recipe_names():
        print(f"{name.ljust(width)}  {recipe_summary(name)}")
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
    parser.add_argument("--masks", action="store_true",
                        help="safetensors: write pruned layers as torch.nn.utils.prune does (<i>.weight_orig "
                             "and a 0/1 <i>.weight_mask), so the masks travel (a .npz keeps them anyway)")
    parser.add_argument("--like", default=None, metavar="FILE",
                        help="safetensors: name the Linear layers as in this safetensors file (the user's "
                             "own module's state dict; it must fit the model) (default: the names recorded "
                             "by tinyprune import, else 0, 2, 4, ...)")
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
    if kind == "keras":
        interop.check_keras_name(args.out)                      # a name Keras 3 loads, or the fix
    if args.masks and kind == "keras":
        raise TinypruneError("--masks: Keras weight files have no place for masks (pruned weights travel as "
                             "zeros); to keep them through Keras training, give the Keras model the README's "
                             "KeepMask constraint (masks from tinyprune.interop.keras_masks), or export as "
                             ".safetensors or .npz to keep them in the file")
    if args.like is not None and kind != "safetensors":
        raise TinypruneError(f"--like names PyTorch's keys: it applies to a .safetensors --out, not {kind}")
    check_target(args.out, overwrite=args.overwrite)           # refuse before any work
    restored = checkpoint.load(args.checkpoint)
    model = prune.compact(restored.model) if args.compact else restored.model
    try:
        if kind == "npz":
            meta = {**restored.meta, "exported_from": str(args.checkpoint), "compacted": bool(args.compact)}
            path = checkpoint.save(args.out, model, meta=meta, overwrite=args.overwrite)
        else:
            layout = _export_layout(args, restored.meta, model) if kind == "safetensors" else None
            path = interop.export_model(args.out, model, kind, masks=args.masks, layout=layout,
                                        overwrite=args.overwrite)
    except ImportError as error:
        raise TinypruneError(str(error)) from None
    print(f"{'':<8} {'sizes':<22} {'parameters':>11} {'nonzeros':>10} {'FLOPs':>11} "
          f"{'FLOPs (nonzero)':>15} {'file bytes':>11}")
    print(_size_row("before", restored.model, Path(args.checkpoint).stat().st_size))
    print(_size_row("after", model, path.stat().st_size))
    print(f"wrote {path} ({kind})")
    return 0


def _export_layout(args: argparse.Namespace, meta: dict[str, Any], model: MLP) -> list[str]:
    """The names of the ``Linear`` modules to write: ``--like``'s, else those ``import`` recorded, else
    ``nn.Sequential``'s ``0, 2, 4, ...``; checked to fit ``model``, and said in one line."""
    from tinyprune import interop

    if args.like is not None:
        order = interop.order_like(args.like, model)
        layout, source = order.modules, f"as in {args.like}" + (f"; {order.note()}" if order.note() else "")
    elif "torch_layout" in meta:
        where = f"{args.checkpoint}: meta['torch_layout']"
        layout = interop.check_layout(model, meta["torch_layout"], where)
        source = f"as recorded from {meta.get('imported_from', 'the imported file')}"
    else:
        layout, source = interop.check_layout(model), "nn.Sequential's numbering"
    print(f"Linear layers named {', '.join(layout)} ({source})")
    return layout


# --------------------------------------------------------------------------- import
def add_import_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import", help="read a PyTorch safetensors or Keras 3 MLP into a tinyprune checkpoint",
        description="Read the weights of an MLP (a PyTorch nn.Sequential of Linear layers and one "
                    "activation saved as safetensors, or a Keras 3 Sequential or Functional chain of "
                    "Dense layers as .weights.h5 or .keras) and save them as a tinyprune checkpoint, "
                    "ready for evaluate, run --dense, or export.")
    parser.add_argument("file", metavar="FILE", help="a .safetensors, .weights.h5, .keras or .npz file")
    parser.add_argument("--out", required=True, metavar="CHECKPOINT", help="the checkpoint to write (.npz)")
    parser.add_argument("--format", choices=("npz", "safetensors", "keras"), default=None,
                        help="the input format (default: from the extension of FILE)")
    parser.add_argument("--activation", metavar="NAME", default=None,
                        help="the activation between the layers of a weights-only file (safetensors, "
                             ".weights.h5): relu, tanh, sigmoid, gelu_tanh, leaky_relu[:SLOPE], identity "
                             "(default: relu, assumed and said; a .keras or .npz file names its own)")
    parser.add_argument("--layers", metavar="NAME,NAME,...", default=None,
                        help="safetensors: the order of the Linear modules, such as fc1,fc2,out (default: "
                             "nn.Sequential's index, else the one order in which the shapes chain, else "
                             "the names' order, said)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    from tinyprune import interop
    from tinyprune.files import check_target

    kind = interop.format_of(args.file, args.format)
    check_target(args.out, overwrite=args.overwrite)           # refuse before any work
    assumed = args.activation is None and interop.weights_only(args.file, kind)
    if args.layers is not None and kind != "safetensors":
        raise TinypruneError(f"--layers orders a safetensors file's Linear modules; a {kind} file has "
                             "its own")
    try:
        activation = interop.ASSUMED if assumed else args.activation
        order = interop.read_torch_order(args.file, args.layers) if kind == "safetensors" else None
        model = interop.import_model(args.file, kind, activation=activation,
                                     layers=order.modules if order else None)
    except ImportError as error:
        raise TinypruneError(str(error)) from None
    if assumed:
        print(interop.assumption_note())
    meta = {"imported_from": str(args.file), "format": kind, "activation_assumed": assumed}
    if order is not None:                      # the source's key names, written back by export
        meta["torch_layout"], meta["layer_order"] = order.modules, order.how
        if order.note():
            print(order.note())
    if kind == "keras" and (skipped := interop.read_keras_skipped(args.file)):
        meta["keras_skipped"] = skipped
        print(f"skipped Keras layers {', '.join(skipped)}: the identity at inference (Dropout, Flatten, a "
              f"linear Activation); the model takes rows of {model.sizes[0]} features")
    path = checkpoint.save(args.out, model, meta=meta, overwrite=args.overwrite)
    print(f"read {args.file} ({kind}): {model}, {metrics.count_parameters(model):,} parameters, "
          f"{metrics.count_nonzeros(model):,} nonzero")
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


# --------------------------------------------------------------------------- main
COMMANDS: list[Callable[[Any], None]] = [add_train_parser, add_evaluate_parser, add_run_parser,
                                          add_sweep_parser, add_recipes_parser, add_export_parser,
                                          add_import_parser]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per entry of ``COMMANDS``."""
    parser = _Parser(prog="tinyprune", description="Prune a neural network and recover its accuracy, "
                                                    "from scratch in NumPy.")
    parser.add_argument("--version", action="version", version=f"tinyprune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(subparsers)
    for name, subparser in subparsers.choices.items():
        subparser.set_defaults(command=name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:                      # said by the subcommand's parser, with its flags to suggest from
            commands = parser._subparsers._group_actions[0].choices if parser._subparsers else {}
            (commands.get(getattr(args, "command", None)) or parser).error(
                f"unrecognized arguments: {' '.join(unknown)}")
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
        print(f"tinyprune {args.command}: error: {_one_line(error)} (see tinyprune {args.command} --help)",
              file=sys.stderr)
        return 2
