"""tinyprune: prune a neural network and recover its accuracy, from scratch in NumPy.

>>> import tinyprune as tp
>>> model = tp.MLP([784, 64, 64, 10], seed=0)
>>> sum(p.data.size for p in model.parameters())
55050
"""

from tinyprune import autograd, backprop, data, errors, gradcheck, losses, nn, optim
from tinyprune.autograd import Tensor, no_grad
from tinyprune.errors import CheckpointError, DataError, ShapeError, TinypruneError
from tinyprune.gradcheck import gradcheck as check_gradient
from tinyprune.nn import MLP, Linear, Module, Parameter, ReLU, Sequential
from tinyprune.optim import SGD, Adam

__version__ = "0.1.0"

__all__ = [
    "MLP", "SGD", "Adam", "CheckpointError", "DataError", "Linear", "Module", "Parameter", "ReLU",
    "Sequential", "ShapeError", "Tensor", "TinypruneError", "__version__", "autograd", "backprop",
    "check_gradient", "data", "errors", "gradcheck", "losses", "nn", "no_grad", "optim",
]
