"""tinyprune: prune a neural network and recover its accuracy, from scratch in NumPy.

The public face, one import away::

    tp.MLP, tp.Tensor, tp.SGD, tp.Adam          the textbook core (tinyprune.core) and its fast twin
    tp.data.load("mnist-5k")                    embedded digits; "mnist", "fashion-mnist" from disk or https
    tp.fit, tp.evaluate, tp.predict             training (tinyprune.training over tinyprune.core.train)
    tp.prune.prune(model, 0.9, ...)             pruning: criteria, selection, masks, compaction, schedules
    tp.Pruner(model, 0.9, end_step=1000)        the same schedules in your own loop: pruner.step() each step
    tp.recover.finetune(model, data.train, ...) recovery: fine-tune, rewind, retrain, distill, reconstruct
    tp.metrics.summary(model)                   parameters, nonzeros, FLOPs, compression
    tp.checkpoint.save / load                   npz checkpoints: sparse, atomic, no pickle
    tp.interop.import_model / export_model      PyTorch safetensors and Keras 3 weights in and out
    tp.Recipe.from_file("default")              what to prune, when, how to recover (experiment.recipe)
    tp.prune_and_recover(model, data, recipe)   the document's loop: prune, recover, repeat; a Report
    tp.sweep(model, data, criteria=..., ...)    the loop over a grid, mean ± std over seeds; a Sweep
    tp.exercises                                the course's exercises and their property-based graders
    tp.sparse.SparseMLP.from_model(model)       fixed-mask inference with compressed rows (where it pays)

>>> import tinyprune as tp
>>> model = tp.MLP([784, 64, 64, 10], seed=0)
>>> sum(p.data.size for p in model.parameters())
55050
"""

from tinyprune import (
    checkpoint,
    core,
    data,
    errors,
    exercises,
    experiment,
    fast,
    files,
    gradcheck,
    interop,
    metrics,
    prune,
    recover,
    sparse,
    training,
)
from tinyprune import training as train
from tinyprune.core import autograd, backprop, losses, nn
from tinyprune.core.autograd import Tensor, no_grad
from tinyprune.core.nn import MLP, Linear, Module, Parameter, ReLU, Sequential
from tinyprune.errors import CheckpointError, DataError, ShapeError, TinypruneError
from tinyprune.experiment import DEFAULT as DEFAULT_RECIPE
from tinyprune.experiment import RECIPES, Recipe, RecipeError, Report, Sweep, prune_and_recover, sweep
from tinyprune.fast import optim
from tinyprune.fast.optim import SGD, Adam
from tinyprune.fast.switch import plain
from tinyprune.gradcheck import gradcheck as check_gradient
from tinyprune.prune.pruner import Pruner
from tinyprune.training import Callback, History, WeightSnapshot, evaluate, fit, predict

__version__ = "0.3.0"

__all__ = [
    "Adam", "Callback", "CheckpointError", "DataError", "History", "Linear", "MLP", "Module",
    "Parameter", "Pruner", "DEFAULT_RECIPE", "RECIPES", "ReLU", "Recipe", "RecipeError", "Report", "SGD",
    "Sequential", "ShapeError", "Sweep", "Tensor",
    "TinypruneError",
    "WeightSnapshot", "__version__", "autograd", "backprop", "check_gradient", "checkpoint", "data",
    "errors", "evaluate", "exercises", "experiment", "files", "fit", "gradcheck", "interop", "losses",
    "metrics", "nn", "no_grad", "optim", "predict", "prune", "prune_and_recover", "recover", "sweep", "train",
    "core", "fast", "plain", "sparse", "training",   # the textbook, its fast twin, the switch, fit
]
