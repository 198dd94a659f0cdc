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
from tinyprune.train import ENGINES, evaluate, fit

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
        meta = restored.meta
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


# --------------------------------------------------------------------------- main
COMMANDS: list[Callable[[Any], None]] = [add_train_parser, add_evaluate_parser]


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
