"""Models in and out: PyTorch state dicts as safetensors, Keras 3 weights as ``.weights.h5`` or ``.keras``.

Only the weights of an MLP travel (``Linear``/``Dense`` layers, one activation between them, logits out); the
format libraries are optional (``pip install 'tinyprune[interop]'``: ``safetensors``, ``h5py``) and
imported only when a file of theirs is read or written. Pruned weights travel as exact zeros; the masks
stay in tinyprune's own checkpoints (``tinyprune.checkpoint``), except where a format has a place for
them (PyTorch's ``weight_mask``, read below, and written on request).

**PyTorch** (``torch.nn.Sequential(Linear, ReLU, ..., Linear).state_dict()`` saved with
``safetensors.torch.save_file``): keys ``"<i>.weight"`` of shape ``(out, in)`` and ``"<i>.bias"`` of shape
``(out,)``, ``i`` the position of the ``Linear`` in the ``Sequential`` (``0, 2, 4`` with a ``ReLU`` between;
parameter-free modules such as ``Dropout`` only shift the numbers). tinyprune's ``W`` is ``weight.T``.
Read: any one prefix before the index, such as ``"model."``, ``"net."`` or ``"module."`` (from
``DataParallel``); ``Linear`` modules named by attribute (``fc1``, ``fc2``, ``out``; ``encoder.hidden``),
whose order a safetensors file does not keep: the order stated (``layers=``, ``--layers``), else the one
recorded in the file's metadata by tinyprune (``LAYERS_METADATA``), else the one order in which the
weights chain (each ``in`` the previous ``out``), else, when several chain, the names' natural order
(``fc2`` before ``fc10``) if it chains, with a warning that says so; otherwise ``CheckpointError`` naming
the modules and their shapes (``torch_order``). And the layout of ``torch.nn.utils.prune``
(``"<i>.weight_orig"`` and a 0/1 ``"<i>.weight_mask"``, likewise for the bias), whose masks become
tinyprune masks. The names of the ``Linear`` modules in order (``net.1, net.4, net.7`` for ``self.net =
Sequential(Flatten(), Linear, ReLU, Dropout, ...)``; ``fc1, fc2, out``) are the file's *layout*
(``torch_layout``). Written: metadata ``{"format": "pt"}`` (and the order of attribute names under
``LAYERS_METADATA``) and the keys of a layout (``layout=``, or ``like=`` another file's, checked to fit the
model), by default ``nn.Sequential``'s ``i = 0, 2, 4, ...``, so that the user's own module takes it with
``load_state_dict(safetensors.torch.load_file(path), strict=True)``; with ``masks=True`` a pruned parameter
is written in ``torch.nn.utils.prune``'s layout instead, loadable after
``torch.nn.utils.prune.custom_from_mask(submodule, name, mask)`` for each ``<name>_mask`` key (which
creates the ``<name>_orig`` parameter and ``<name>_mask`` buffer the state dict fills; the README's
``load_pruned_state`` does it).

**Keras 3** (``model.save_weights("m.weights.h5")`` of a ``Sequential`` or Functional model of ``Dense``
layers): an HDF5 file where each layer's variables sit in ``/layers/<group>/vars/<k>``, ``<group>`` the
snake-case class name numbered per class in the order of the model's layers (``dense``, ``dense_1``,
``dense_2``, ...; a Functional model adds ``input_layer``; the layers' own names do not appear),
``vars/0`` the kernel ``(in, out)`` (tinyprune's ``W`` as it is) and ``vars/1`` the bias ``(out,)``; the
model's own ``/vars`` group is empty, and a compiled model adds ``/optimizer/vars/...`` (ignored here).
Groups without variables of ``KERAS_SKIPPED_GROUPS`` (``input_layer``, ``activation``, ``dropout``,
``flatten``) are skipped; any other group is refused. A ``.keras`` file is a zip archive of
``config.json`` (the architecture, read by ``keras_config``: a chain of ``Input``, ``Dense``,
``Activation``, ``Dropout`` and ``Flatten`` layers, an ``Activation`` layer folded into the linear
``Dense`` before it, one hidden activation of ``KERAS_ACTIVATIONS``, a linear or softmax output),
``metadata.json`` and ``model.weights.h5`` (the layout above, its groups checked against the config).
``read_keras_skipped`` names the layers read as the identity. A softmax output comes in as logits:
tinyprune keeps the softmax in the loss. Written: ``.weights.h5`` in that layout (a Functional model of
the same ``Dense`` layers takes it with ``load_weights``), and ``.keras`` with a ``Sequential`` config
whose hidden ``Dense`` layers carry the model's activation and whose last has ``activation="softmax"``
(the source document's model); Keras 3 loads no other name (``check_keras_name``). Masks have no place
in Keras files: ``keras_masks`` gives them in Keras's layout, for the README's ``KeepMask`` constraint.

**Activations.** Only a ``.keras`` config (and a tinyprune checkpoint) says which activation sits between
the layers. Safetensors and ``.weights.h5`` hold weights only: ``import_model(path, activation="tanh")``
states it; without ``activation=`` ReLU is assumed and a warning says so (``tinyprune import`` prints
that line and records ``activation_assumed: true`` in the checkpoint's meta). Keras's ``"gelu"`` is the
exact erf GELU, which tinyprune lacks (``gelu_tanh`` is the tanh approximation), so it is refused.

Every bad input (a missing or extra key, a wrong shape, a non-float dtype, NaN or inf, layers that do
not chain, anything that is not an MLP) raises ``CheckpointError`` naming the key; files are written
through ``files.atomic_write`` (whole or absent).

>>> import tempfile, pathlib
>>> from tinyprune.core.nn import MLP, activation_name
>>> model = MLP([4, 3, 2], seed=0)
>>> path = export_model(pathlib.Path(tempfile.mkdtemp()) / "mlp.safetensors", model)
>>> sorted(torch_state_dict(model))
['0.bias', '0.weight', '2.bias', '2.weight']
>>> import_model(path, activation="relu").sizes      # safetensors hold no activation: state it
[4, 3, 2]
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from tinyprune import checkpoint, keras_config
from tinyprune.core.nn import MLP, activation_name
from tinyprune.errors import CheckpointError
from tinyprune.files import MAX_CONFIG_BYTES, atomic_write, parse_config, read_bounded, read_regular, shown

PathLike = str | os.PathLike
FORMATS = ("npz", "safetensors", "keras")
EXTRA = "pip install 'tinyprune[interop]'"
MAX_FILE_BYTES = 8 * checkpoint.MAX_PARAMETERS + (1 << 20)      # float64 values of the largest model, + slack
KERAS_IDENTITY_LAYERS = ("dropout", "flatten")
# groups without variables a weights file may hold between its Dense layers: the identity at inference,
# the input, and Activation layers (whose function only a .keras config says)
KERAS_SKIPPED_GROUPS = ("input_layer", "activation", *KERAS_IDENTITY_LAYERS)
# Keras 3's activation strings and tinyprune's names (keras.activations.leaky_relu's negative_slope is 0.2)
KERAS_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "linear": "identity",
                     "leaky_relu": "leaky_relu:0.2"}
ASSUMED = "relu"
TORCH_PICKLES = (".pt", ".pth")
PICKLE_FIX = ("save the state dict as safetensors instead: from safetensors.torch import save_file; "
              "save_file(model.state_dict(), \"model.safetensors\")")

__all__ = ["FORMATS", "KERAS_ACTIVATIONS", "LayerOrder", "assumption_note", "check_keras_name",
           "check_layout", "check_module_names", "export_model", "format_of", "from_keras_layers",
           "from_torch_state", "import_model", "keras_activation", "keras_layers", "keras_masks",
           "layout_like", "natural_key", "order_like", "read_keras", "read_keras_skipped",
           "read_safetensors", "read_torch_layout", "read_torch_order", "torch_layout", "torch_order",
           "torch_state_dict", "weights_only", "write_keras", "write_safetensors"]


def _library(module: str) -> ModuleType:
    """Import a format library when it is needed, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise ImportError(f"reading or writing this file format needs {package}: {EXTRA}") from None


def format_of(path: PathLike, format: str | None = None) -> str:  # noqa: A002 (the natural name)
    """The format of ``path``: ``format`` if given, else from the extension (``.npz``, ``.safetensors``,
    ``.h5`` or ``.keras``).

    >>> format_of("model.weights.h5"), format_of("m.safetensors"), format_of("x.bin", "npz")
    ('keras', 'safetensors', 'npz')
    """
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}; expected one of {FORMATS}")
        return format
    suffix = Path(path).suffix.lower()
    known = {".npz": "npz", ".safetensors": "safetensors", ".h5": "keras", ".keras": "keras"}
    if suffix in TORCH_PICKLES:
        raise ValueError(f"{str(path)!r} is a torch.save file (a pickle, which can run code when loaded: "
                         f"tinyprune reads none); {PICKLE_FIX}")
    if suffix not in known:
        raise ValueError(f"cannot tell the format of {str(path)!r} from its extension; name one of {FORMATS} "
                         "(extensions .npz, .safetensors, .weights.h5, .keras)")
    return known[suffix]


def _read_bytes(path: Path) -> bytes:
    """The bytes of a regular file (a FIFO or device is refused without blocking), bounded in size."""
    return read_regular(path, MAX_FILE_BYTES, "model file", CheckpointError)


# --------------------------------------------------------------------------- checks shared by both formats
def _float_array(value: Any, key: str, where: str, ndim: int) -> np.ndarray:
    """``value`` as a finite float32/float64 array of ``ndim`` dimensions (float16 widened exactly)."""
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise CheckpointError(f"{where}: {key} has dtype {array.dtype}; expected floating-point weights "
                              "(float16, float32 or float64)")
    if array.ndim != ndim:
        raise CheckpointError(f"{where}: {key} has shape {array.shape}; expected {ndim} dimensions")
    if not np.all(np.isfinite(array)):
        raise CheckpointError(f"{where}: {key} holds NaN or inf values")
    return array.astype(np.float32) if array.dtype.itemsize < 4 else array


def _build(layers: list[tuple[str, np.ndarray, str, np.ndarray]], where: str) -> MLP:
    """An MLP from ``[(W key, W (in, out), b key, b (out,))]`` in order, every shape checked first."""
    if not layers:
        raise CheckpointError(f"{where}: no linear layers found; expected an MLP")
    for (w_key, W, b_key, b) in layers:
        if b.shape != (W.shape[1],):
            raise CheckpointError(f"{where}: {b_key} has shape {b.shape}; {w_key} needs a bias of shape "
                                  f"({W.shape[1]},)")
    for (w_key, W, _, _), (next_key, W_next, _, _) in zip(layers, layers[1:]):
        if W.shape[1] != W_next.shape[0]:
            raise CheckpointError(f"{where}: {w_key} gives {W.shape[1]} outputs but {next_key} takes "
                                  f"{W_next.shape[0]} inputs: the layers do not chain into an MLP")
    sizes = [layers[0][1].shape[0]] + [W.shape[1] for _, W, _, _ in layers]
    if sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:])) > checkpoint.MAX_PARAMETERS:
        raise CheckpointError(f"{where}: sizes {sizes} exceed {checkpoint.MAX_PARAMETERS} parameters")
    dtype = np.float64 if any(a.dtype == np.float64 for _, W, _, b in layers for a in (W, b)) else np.float32
    parameters = {}
    for index, (_, W, _, b) in enumerate(layers):       # the arrays themselves become the parameters
        parameters[f"layers.{index}.W"] = (np.ascontiguousarray(W, dtype=dtype), None)
        parameters[f"layers.{index}.b"] = (np.ascontiguousarray(b, dtype=dtype), None)
    return checkpoint.assemble({"sizes": sizes, "activation": "relu", "dtype": np.dtype(dtype).name},
                               parameters, where)


# --------------------------------------------------------------------------- PyTorch
_TORCH_KEY = re.compile(r"^(?P<module>[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\."
                        r"(?P<name>(?:weight|bias)(?:_orig|_mask)?)$")
_TORCH_MODULE = re.compile(r"^(?P<prefix>(?:[A-Za-z_]\w*\.)*)(?P<index>\d+)$")
_MODULE_NAME = re.compile(r"^[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*$")
#: The safetensors metadata entry in which tinyprune writes the order of attribute-named layers.
LAYERS_METADATA = "tinyprune.layers"
#: What a file with a ``Linear(..., bias=False)`` is told: tinyprune's layers all have a bias.
BIAS_FIX = ("a Linear without bias (bias=False) is not supported: save zero biases with it, "
            "state[f\"{name}.bias\"] = torch.zeros(layer.out_features) for each such layer (README, "
            "\"Models from PyTorch and Keras\")")
MAX_ORDER_LAYERS = 64                            # more Linear layers than an MLP of this library has


class LayerOrder(NamedTuple):
    """The ``Linear`` modules of a state dict in order (``modules``) and how that order was found
    (``how``): ``"index"`` (``nn.Sequential``'s numbers), ``"stated"`` (``layers=`` / ``--layers``),
    ``"file"`` (the order tinyprune wrote into the file's metadata), ``"chain"`` (the one order in which
    the weights chain, which is the names' natural order), ``"shapes"`` (the same, another order than the
    names') or ``"name"`` (several orders chain; the names' natural order is assumed)."""

    modules: list[str]
    how: str

    def note(self) -> str | None:
        """The line that says how the order was chosen when the names alone do not settle it."""
        names = ", ".join(self.modules)
        if self.how == "name":
            return f"layers ordered by name: {names}; pass --layers to state it (API: layers=)"
        if self.how == "shapes":
            return f"layers ordered by their shapes (the one order that chains): {names}"
        return None


def natural_key(name: str) -> list[Any]:
    """Sort ``name`` with its digit runs as numbers: ``fc2`` before ``fc10``, ``net.4`` before ``net.10``.

    >>> sorted(["fc10", "out", "fc2", "fc1"], key=natural_key)
    ['fc1', 'fc2', 'fc10', 'out']
    """
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)
            if part]


def _chains(shapes: Sequence[tuple[int, int]]) -> bool:
    """Whether weights of shapes ``(out, in)`` chain in this order: each ``in`` the previous ``out``."""
    return all(shape[1] == previous[0] for previous, shape in zip(shapes, shapes[1:]))


def _chain_orders(shapes: dict[str, tuple[int, int]], limit: int = 2) -> list[list[str]]:
    """Up to ``limit`` orders of the modules in which their weights (``shapes[module] = (out, in)``) chain.

    A layer is an edge from its ``in`` to its ``out`` size, and an order is a walk over every edge once; the
    search branches on the *shapes* left (layers of one shape are interchangeable), so that ten 64 x 64
    hidden layers cost one branch, not 10! orders.

    >>> _chain_orders({"out": (10, 64), "fc1": (64, 784), "fc2": (64, 64)})
    [['fc1', 'fc2', 'out']]
    >>> _chain_orders({"a": (8, 8), "b": (8, 8)})          # interchangeable: two orders
    [['a', 'b'], ['b', 'a']]
    """
    by_shape: dict[tuple[int, int], list[str]] = {}
    for module in sorted(shapes, key=natural_key):
        by_shape.setdefault(shapes[module], []).append(module)
    found: list[list[tuple[int, int]]] = []

    def walk(left: dict[tuple[int, int], int], size: int | None, path: list[tuple[int, int]]) -> None:
        if len(found) >= limit:
            return
        if not any(left.values()):
            found.append(list(path))
            return
        for shape, count in left.items():
            if count and (size is None or shape[1] == size):
                left[shape] -= 1
                walk(left, shape[0], [*path, shape])
                left[shape] += 1

    walk({shape: len(modules) for shape, modules in by_shape.items()}, None, [])
    orders = []
    for sequence in found:                   # the shapes in order, then each shape's modules by name
        taken = {shape: iter(modules) for shape, modules in by_shape.items()}
        orders.append([next(taken[shape]) for shape in sequence])
    interchangeable = next((m for m in by_shape.values() if len(m) > 1), None)
    if len(orders) == 1 and interchangeable and limit > 1:   # the same shapes, two modules swapped
        swapped = list(orders[0])
        i, j = swapped.index(interchangeable[0]), swapped.index(interchangeable[1])
        swapped[i], swapped[j] = swapped[j], swapped[i]
        orders.append(swapped)
    return orders


def _weight_shape(state: Mapping[str, np.ndarray], module: str, names: dict[str, str], where: str
                  ) -> tuple[int, int]:
    """The ``(out, in)`` shape of ``module``'s weight (or ``weight_orig``), checked to be a matrix."""
    key = names.get("weight", names.get("weight_orig"))
    if key is None:
        raise CheckpointError(f"{where}: {module} has no weight (keys {sorted(names.values())}); expected "
                              f"'{module}.weight' of a Linear layer")
    shape = np.shape(state[key])
    if len(shape) != 2:
        raise CheckpointError(f"{where}: {key} has shape {tuple(shape)}; expected 2 dimensions (out, in)")
    return int(shape[0]), int(shape[1])


def _ordered(state: Mapping[str, np.ndarray], groups: dict[str, dict[str, str]], where: str,
             layers: Sequence[str] | None) -> LayerOrder:
    """The order of the ``Linear`` modules ``groups``: stated (``layers``), by ``nn.Sequential``'s index
    when every module is ``<one prefix><index>``, else by the chain of their weights' shapes (the module
    docstring's rules), refused naming the modules and shapes when none or several orders fit."""
    if layers is not None:
        stated = check_module_names(layers, f"{where}: layers")
        if set(stated) != set(groups):
            raise CheckpointError(f"{where}: layers names {', '.join(stated)}; the file's Linear modules are "
                                  f"{', '.join(sorted(groups, key=natural_key))}")
        return LayerOrder(stated, "stated")
    matches = {module: _TORCH_MODULE.match(module) for module in groups}
    if all(matches.values()) and len({match["prefix"] for match in matches.values()}) == 1:
        by_index: dict[int, str] = {}
        for module, match in matches.items():
            index = int(match["index"])
            if index in by_index:               # "net.1" and "net.01": which one is the Linear at 1?
                raise CheckpointError(f"{where}: modules {by_index[index]!r} and {module!r} both have index "
                                      f"{index}; the order of the layers is ambiguous")
            by_index[index] = module
        return LayerOrder([by_index[index] for index in sorted(by_index)], "index")
    if len(groups) > MAX_ORDER_LAYERS:
        raise CheckpointError(f"{where}: {len(groups)} Linear modules named by attribute; pass their order "
                              "(--layers, API layers=)")
    shapes = {module: _weight_shape(state, module, names, where) for module, names in groups.items()}
    by_name = sorted(groups, key=natural_key)
    orders = _chain_orders(shapes)
    listed = ", ".join(f"{module} (out, in) = {shapes[module]}" for module in by_name)
    if not orders:
        raise CheckpointError(f"{where}: the Linear modules {listed} chain in no order (each layer's input "
                              "size the previous one's output size): not an MLP")
    if len(orders) == 1:
        return LayerOrder(orders[0], "chain" if orders[0] == by_name else "shapes")
    if _chains([shapes[module] for module in by_name]):
        return LayerOrder(by_name, "name")
    raise CheckpointError(f"{where}: the Linear modules {listed} chain in several orders (such as "
                          f"{', '.join(orders[0])} and {', '.join(orders[1])}), and their names' order does "
                          "not; state it with --layers NAME,NAME,... (API layers=)")


def check_module_names(names: Any, where: str) -> list[str]:
    """``names`` as a list of distinct module names (``"fc1"``, ``"net.4"``, ``"encoder.hidden"``), else
    ``CheckpointError`` naming the entry. A comma-separated string is split (``--layers fc1,fc2,out``)."""
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",")]
    if isinstance(names, bytes) or not isinstance(names, Sequence):
        raise CheckpointError(f"{where}: {shown(names)} is not a list of module names; expected one name "
                              f"per Linear layer, such as ['net.1', 'net.4'] or ['fc1', 'fc2', 'out']")
    for name in names:
        if not isinstance(name, str) or not _MODULE_NAME.match(name):
            raise CheckpointError(f"{where}: {shown(name)} is not a module name (such as 'fc1', 'net.4' or "
                                  "'encoder.hidden')")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CheckpointError(f"{where}: {', '.join(repeated)} named twice; one name per Linear layer")
    return list(names)


def _torch_entries(model: MLP, masks: bool, modules: list[str]) -> list[tuple[str, np.ndarray, bool]]:
    """``(key, source, is_mask)`` of each tensor of the state dict, layer ``l`` named ``modules[l]``: the
    tensor is ``source.T`` (``W`` (in, out) gives ``weight`` (out, in); a bias is its own transpose), read
    as 0/1 values of the parameter's dtype when ``is_mask``."""
    entries = []
    for module, layer in zip(modules, model.layers):
        for kind, parameter in (("weight", layer.W), ("bias", layer.b)):
            if masks and parameter.mask is not None:
                entries.append((f"{module}.{kind}_orig", parameter.data, False))
                entries.append((f"{module}.{kind}_mask", parameter.mask, True))
            else:
                entries.append((f"{module}.{kind}", parameter.data, False))
    return entries


def torch_state_dict(model: MLP, *, masks: bool = False, layout: Sequence[str] | None = None
                     ) -> dict[str, np.ndarray]:
    """The state dict of ``nn.Sequential(Linear, ReLU, ..., Linear)`` for ``model``: ``"<2l>.weight"`` =
    ``W_l.T`` (out, in) and ``"<2l>.bias"`` = ``b_l``, as contiguous arrays. With ``masks=True`` a masked
    parameter is written as ``torch.nn.utils.prune`` keeps it: ``"<2l>.weight_orig"`` (the values, pruned
    ones 0) and a 0/1 ``"<2l>.weight_mask"`` of the same dtype (likewise for a masked bias). ``layout``
    names the ``Linear`` modules instead of ``"<2l>"`` (``check_layout``): the user's own module's names.

    >>> {key: value.shape for key, value in torch_state_dict(MLP([4, 3, 2])).items()}
    {'0.weight': (3, 4), '0.bias': (3,), '2.weight': (2, 3), '2.bias': (2,)}
    >>> sorted(torch_state_dict(MLP([4, 3, 2]), layout=["net.1", "net.4"]))
    ['net.1.bias', 'net.1.weight', 'net.4.bias', 'net.4.weight']
    >>> from tinyprune import prune
    >>> pruned = MLP([4, 3, 2], seed=0); _ = prune.magnitude(pruned, 0.5)
    >>> sorted(torch_state_dict(pruned, masks=True))[:3]
    ['0.bias', '0.weight_mask', '0.weight_orig']
    """
    modules = check_layout(model, layout)
    return {key: np.array(source.T, dtype=model.dtype, order="C")        # a copy; (out, in) for a weight
            for key, source, _ in _torch_entries(model, masks, modules)}


def check_layout(model: MLP, layout: Any = None, where: str = "layout") -> list[str]:
    """The names of ``model``'s ``Linear`` modules in a state dict: ``layout`` checked, or the
    ``nn.Sequential`` default ``["0", "2", "4", ...]`` when it is ``None``.

    A layout is what ``torch_layout`` reads from a file: one distinct module name per layer, in the
    model's order. Names ``"<prefix><index>"`` with one prefix must have increasing indices (the order a
    state dict is read back in); attribute names (``fc1``, ``out``) may come in any order, which
    ``write_safetensors`` records in the file. Anything else raises ``CheckpointError`` naming the entry.

    >>> check_layout(MLP([4, 3, 2])), check_layout(MLP([4, 3, 2]), ["net.1", "net.4"])
    (['0', '2'], ['net.1', 'net.4'])
    >>> check_layout(MLP([4, 3, 2]), ["hidden", "out"])
    ['hidden', 'out']
    """
    if layout is None:
        return [str(2 * index) for index in range(len(model.layers))]
    if isinstance(layout, str | bytes) or not isinstance(layout, Sequence):
        raise CheckpointError(f"{where}: {shown(layout)} is not a list of module names; expected one name "
                              f"per Linear layer, such as ['net.1', 'net.4']")
    names = check_module_names(layout, where)
    if len(names) != len(model.layers):
        raise CheckpointError(f"{where}: names {len(names)} Linear layers ({', '.join(names)}); "
                              f"the model {model.sizes} has {len(model.layers)}")
    matches = [_TORCH_MODULE.match(name) for name in names]
    if all(matches) and len({match["prefix"] for match in matches}) == 1:
        for (name, match), (next_name, next_match) in zip(zip(names, matches), zip(names[1:], matches[1:])):
            if int(next_match["index"]) <= int(match["index"]):
                raise CheckpointError(f"{where}: {next_name!r} after {name!r}; expected increasing indices "
                                      "(the order a state dict is read back in)")
    return names


def _by_index(layout: Sequence[str]) -> bool:
    """Whether ``layout``'s names carry its order: ``"<one prefix><index>"`` each (``nn.Sequential``)."""
    matches = [_TORCH_MODULE.match(name) for name in layout]
    return all(matches) and len({match["prefix"] for match in matches}) == 1


def _torch_modules(state: Mapping[str, np.ndarray], where: str) -> dict[str, dict[str, str]]:
    """``{module name: {"weight": key, "bias": key, ...}}`` of a state dict; every key is accounted for,
    or the error names it."""
    groups: dict[str, dict[str, str]] = {}
    for key in state:
        match = _TORCH_KEY.match(key)
        if match is None:
            raise CheckpointError(f"{where}: unexpected key {key!r}; expected '<module>.weight' and "
                                  "'<module>.bias' of Linear layers (not an MLP of linear layers?)")
        groups.setdefault(match["module"], {})[match["name"]] = key
    return groups


def torch_order(state: Mapping[str, np.ndarray], where: str = "state dict", layers: Any = None,
                recorded: str | None = None) -> LayerOrder:
    """The ``Linear`` modules of a state dict in order, and how the order was found (``LayerOrder``):
    ``layers`` if given, else ``recorded`` (the order tinyprune wrote into the file), else by index or by
    the shapes' chain (module docstring).

    >>> weight = np.zeros((64, 64), np.float32)
    >>> state = {"fc1.weight": np.zeros((64, 784), np.float32), "fc2.weight": weight,
    ...          "fc10.weight": weight, "out.weight": np.zeros((10, 64), np.float32)}
    >>> state.update({key.replace("weight", "bias"): np.zeros(len(value), np.float32)
    ...               for key, value in list(state.items())})
    >>> order = torch_order(state)
    >>> order.modules, order.how
    (['fc1', 'fc2', 'fc10', 'out'], 'name')
    >>> order.note()
    'layers ordered by name: fc1, fc2, fc10, out; pass --layers to state it (API: layers=)'
    """
    groups = _torch_modules(state, where)
    if layers is None and recorded is not None:
        return LayerOrder(_ordered(state, groups, f"{where}: metadata {LAYERS_METADATA!r}", recorded).modules,
                          "file")
    return _ordered(state, groups, where, layers)


def torch_layout(state: Mapping[str, np.ndarray], where: str = "state dict", layers: Any = None) -> list[str]:
    """The names of the ``Linear`` modules of a state dict, in order: its layout, which ``torch_state_dict``
    and ``export_model`` write back (``tinyprune import`` records it as ``meta["torch_layout"]``).

    >>> weight, bias = np.zeros((3, 4), np.float32), np.zeros(3, np.float32)
    >>> torch_layout({"net.4.weight": weight[:2, :3], "net.4.bias": bias[:2], "net.1.weight": weight,
    ...               "net.1.bias": bias})
    ['net.1', 'net.4']
    """
    return torch_order(state, where, layers).modules


def from_torch_state(state: Mapping[str, np.ndarray], where: str = "state dict", layers: Any = None,
                     recorded: str | None = None) -> MLP:
    """An MLP from a PyTorch state dict of ``Linear`` layers (the layouts in the module docstring), in the
    order ``torch_order`` finds, masks from ``weight_mask``/``bias_mask`` entries included. Every key is
    accounted for, or the error names it."""
    groups = _torch_modules(state, where)
    built, masks = [], []
    for module in torch_order(state, where, layers, recorded).modules:
        names = groups[module]
        arrays, layer_masks = {}, {}
        for kind in ("weight", "bias"):
            arrays[kind], layer_masks[kind] = _torch_parameter(state, names, kind, module, where)
        weight = arrays["weight"]
        built.append((names.get("weight", names.get("weight_orig")), np.ascontiguousarray(weight.T),
                      names.get("bias", names.get("bias_orig")), arrays["bias"]))
        weight_mask = layer_masks["weight"]
        weight_mask = None if weight_mask is None else np.ascontiguousarray(weight_mask.T)
        masks.append((weight_mask, layer_masks["bias"]))
    model = _build(built, where)
    for layer, (W_mask, b_mask) in zip(model.layers, masks):
        for parameter, mask in ((layer.W, W_mask), (layer.b, b_mask)):
            if mask is not None:
                parameter.mask = mask
                parameter.data[~mask] = 0
    return model


def _torch_parameter(state: Mapping[str, np.ndarray], names: dict[str, str], kind: str, module: str,
                     where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(values, mask or None)`` of module ``module``'s ``kind`` ("weight" or "bias"): plain, or as
    ``torch.nn.utils.prune`` stores it (``<kind>_orig`` times a 0/1 ``<kind>_mask``)."""
    ndim = 2 if kind == "weight" else 1
    if kind in names:
        if f"{kind}_orig" in names or f"{kind}_mask" in names:
            raise CheckpointError(f"{where}: {module} has both {kind} and {kind}_orig/{kind}_mask")
        return _float_array(state[names[kind]], names[kind], where, ndim), None
    if f"{kind}_orig" not in names or f"{kind}_mask" not in names:
        present = sorted(names.values())
        why = (BIAS_FIX if kind == "bias" else "expected the weight of a Linear layer")
        raise CheckpointError(f"{where}: {module} has no {kind} (missing key '{module}.{kind}'; it has "
                              f"{present}); {why}")
    orig = _float_array(state[names[f"{kind}_orig"]], names[f"{kind}_orig"], where, ndim)
    mask_values = _float_array(state[names[f"{kind}_mask"]], names[f"{kind}_mask"], where, ndim)
    if mask_values.shape != orig.shape or not np.all((mask_values == 0) | (mask_values == 1)):
        raise CheckpointError(f"{where}: {names[f'{kind}_mask']} must be 0/1 of shape {orig.shape}")
    mask = mask_values == 1
    return np.where(mask, orig, 0).astype(orig.dtype), mask


def _safetensors_file(path: PathLike) -> tuple[dict[str, np.ndarray], str | None]:
    """The arrays of a safetensors file, by key (read from a regular file of bounded size), and the order
    of its layers that tinyprune recorded in its metadata (``LAYERS_METADATA``), if any."""
    safetensors_numpy = _library("safetensors.numpy")
    data = _read_bytes(Path(path))
    try:
        state = safetensors_numpy.load(data)
        # the header the library has just parsed: 8 bytes of length (little-endian), then JSON
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    except CheckpointError:
        raise
    except Exception as error:                   # the Rust parser's SafetensorError, or a dtype NumPy lacks
        pickled = data.startswith((b"PK\x03\x04", b"\x80"))     # torch.save's zip archive, or a bare pickle
        hint = f"; it looks like a torch.save file: {PICKLE_FIX}" if pickled else ""
        raise CheckpointError(f"{path}: not a readable safetensors file ({error}){hint}") from error
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    recorded = metadata.get(LAYERS_METADATA) if isinstance(metadata, dict) else None
    return state, recorded if isinstance(recorded, str) else None


def read_safetensors(path: PathLike, layers: Any = None) -> MLP:
    """The MLP in a safetensors file of a PyTorch state dict (see the module docstring), its ``Linear``
    layers in the order ``layers`` states (names, or ``"fc1,fc2,out"``) or ``torch_order`` finds; when
    that order is assumed from the names (several orders chain), a ``UserWarning`` says so."""
    state, recorded = _safetensors_file(path)
    order = torch_order(state, str(path), layers, recorded)
    if order.how == "name":
        warnings.warn(order.note(), UserWarning, stacklevel=2)
    return from_torch_state(state, str(path), order.modules)


def read_torch_order(path: PathLike, layers: Any = None) -> LayerOrder:
    """The ``Linear`` modules of the MLP in a safetensors file in order, and how the order was found
    (``torch_order``; ``LayerOrder.note()`` is the line to print when the names alone do not settle it)."""
    state, recorded = _safetensors_file(path)
    from_torch_state(state, str(path), layers, recorded)     # the file must hold an MLP, checked as on import
    return torch_order(state, str(path), layers, recorded)


def read_torch_layout(path: PathLike, layers: Any = None) -> list[str]:
    """The names of the ``Linear`` modules of the MLP in a safetensors file (``torch_layout``), in order."""
    return read_torch_order(path, layers).modules


def layout_like(path: PathLike, model: MLP) -> list[str]:
    """The layout of the safetensors file ``path`` (``read_torch_layout``), checked to fit ``model``: as
    many ``Linear`` layers, each weight of the model's shape (out, in), else ``CheckpointError`` naming the
    key and the shape expected. An order assumed from the names is said by a ``UserWarning``."""
    order = order_like(path, model)
    if order.how == "name":
        warnings.warn(order.note(), UserWarning, stacklevel=2)
    return order.modules


def order_like(path: PathLike, model: MLP) -> LayerOrder:
    """``layout_like``'s layout with how its order was found (``LayerOrder``)."""
    state, recorded = _safetensors_file(path)
    reference = from_torch_state(state, str(path), recorded=recorded)
    order = torch_order(state, str(path), recorded=recorded)
    layout = order.modules
    if len(reference.layers) != len(model.layers):
        raise CheckpointError(f"{path}: has {len(layout)} Linear layers ({', '.join(layout)}); the model "
                              f"{model.sizes} has {len(model.layers)}: its layout does not fit")
    for module, theirs, ours in zip(layout, reference.layers, model.layers):
        if theirs.W.shape != ours.W.shape:
            key = f"{module}.weight" if f"{module}.weight" in state else f"{module}.weight_orig"
            raise CheckpointError(f"{path}: {key} has shape {theirs.W.shape[::-1]}; the model's layer there "
                                  f"needs (out, in) = {ours.W.shape[::-1]}: its layout does not fit")
    return order


def write_safetensors(path: PathLike, model: MLP, *, masks: bool = False, layout: Sequence[str] | None = None,
                      overwrite: bool = True) -> Path:
    """Write ``torch_state_dict(model, masks=masks, layout=layout)`` as safetensors (metadata
    ``{"format": "pt"}``, and the layers' order under ``LAYERS_METADATA`` when their names do not carry
    it, so that tinyprune reads the file back in that order), atomically, by the ``safetensors`` library
    straight into the file (no serialized copy in memory)."""
    safetensors_numpy = _library("safetensors.numpy")
    modules = check_layout(model, layout)
    state = torch_state_dict(model, masks=masks, layout=modules)
    metadata = {"format": "pt"}
    if not _by_index(modules):
        metadata[LAYERS_METADATA] = ",".join(modules)

    def write(name: Path) -> None:
        safetensors_numpy.save_file(state, str(name), metadata=metadata)

    return atomic_write(path, write, overwrite=overwrite, by_name=True)


# --------------------------------------------------------------------------- Keras 3
_KERAS_NAME = re.compile(r"^(?P<kind>[a-z][a-z0-9_]*?)(?:_(?P<number>\d+))?$")


def keras_layers(model: MLP) -> dict[str, list[np.ndarray]]:
    """``{"dense": [W_0, b_0], "dense_1": [W_1, b_1], ...}``: the variables Keras 3 stores per layer.

    >>> {name: [v.shape for v in variables] for name, variables in keras_layers(MLP([4, 3, 2])).items()}
    {'dense': [(4, 3), (3,)], 'dense_1': [(3, 2), (2,)]}
    """
    return {("dense" if index == 0 else f"dense_{index}"): [layer.W.data.copy(), layer.b.data.copy()]
            for index, layer in enumerate(model.layers)}


def keras_masks(model: MLP) -> dict[str, list[np.ndarray]]:
    """``{"dense": [kernel mask, bias mask], "dense_1": [...], ...}``: ``model``'s masks in Keras's layout,
    float32 0/1 arrays shaped like ``keras_layers``'s variables (kernel (in, out), bias (out,)), all ones
    where a parameter has no mask. Keras weight files have no place for them; the README's ``KeepMask``
    constraint multiplies each ``Dense`` layer's variables by them after every Keras update, so pruned
    weights stay exactly 0 during Keras training.

    >>> from tinyprune import prune
    >>> model = MLP([4, 3, 2], seed=0); _ = prune.magnitude(model, 0.5)
    >>> masks = keras_masks(model)
    >>> [m.shape for m in masks["dense"]], int(masks["dense"][0].sum() + masks["dense_1"][0].sum())
    ([(4, 3), (3,)], 9)
    """
    return {name: [np.ones(parameter.data.shape, np.float32) if parameter.mask is None
                   else parameter.mask.astype(np.float32) for parameter in (layer.W, layer.b)]
            for name, layer in zip(keras_layers(model), model.layers)}


def from_keras_layers(layers: Mapping[str, Mapping[str, np.ndarray]], where: str = "weights",
                      order: Sequence[str] | None = None) -> MLP:
    """An MLP from ``{layer name: {"0": kernel, "1": bias}}`` as under ``/layers`` (module docstring), the
    ``Dense`` groups taken in ``order`` (a ``.keras`` config's), else by their number (``dense``,
    ``dense_1``, ...); groups without variables of the layers between them (``KERAS_SKIPPED_GROUPS``) are
    skipped, any other group is refused by name."""
    dense = _keras_dense_groups(layers, where) if order is None else list(order)
    layer_list = []
    for name in dense:
        variables = layers.get(name)
        if variables is None:
            raise CheckpointError(f"{where}: no layers/{name}; config.json names it as a Dense layer")
        if set(variables) != {"0", "1"}:
            raise CheckpointError(f"{where}: layers/{name}/vars holds {sorted(variables)}; expected '0' (the "
                                  "kernel) and '1' (the bias) (a Dense without bias, or quantized, is not "
                                  "supported)")
        kernel_key, bias_key = f"layers/{name}/vars/0", f"layers/{name}/vars/1"
        layer_list.append((kernel_key, _float_array(variables["0"], kernel_key, where, 2),
                           bias_key, _float_array(variables["1"], bias_key, where, 1)))
    return _build(layer_list, where)


def _keras_dense_groups(layers: Mapping[str, Mapping[str, np.ndarray]], where: str) -> list[str]:
    """The ``Dense`` groups of a weights file ordered by their number (Keras numbers them in the model's
    order), after checking that every other group is one of ``KERAS_SKIPPED_GROUPS`` without variables."""
    dense: dict[int, str] = {}
    for name, variables in layers.items():
        match = _KERAS_NAME.match(name)
        kind = match["kind"] if match else name
        if kind in KERAS_SKIPPED_GROUPS and not variables:
            continue
        if kind != "dense":
            raise CheckpointError(f"{where}: layers/{name} is not a Dense layer; expected Dense layers in a "
                                  f"chain, and only {KERAS_SKIPPED_GROUPS} without weights between them: "
                                  "not an MLP")
        number = int(match["number"] or 0)
        if number in dense:                      # "dense_1" and "dense_01": which one is layer 1?
            raise CheckpointError(f"{where}: layers/{dense[number]} and layers/{name} both name Dense "
                                  f"layer {number}; the order of the layers is ambiguous")
        dense[number] = name
    return [dense[number] for number in sorted(dense)]


def _h5_member(h5py: ModuleType, group: Any, name: str, where: str) -> Any:
    """``group[name]`` if it is a hard link inside this file; a soft or external link is refused unopened.

    An external link names another file (any file on the reader's disk): following it would read that
    file into the weights.
    """
    link = group.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise CheckpointError(f"{where}: {group.name.lstrip('/')}/{name} is a {type(link).__name__} (a link "
                              "to another object or file); a weights file holds its arrays itself")
    return group[name]


def _h5_check_dataset(h5py: ModuleType, dataset: Any, key: str, where: str) -> int:
    """The number of values ``dataset`` declares, after checking it is a plain float array in this file.

    Refused without reading a value: external storage (``external=[("/etc/passwd", 0, n)]`` makes HDF5
    read another file), virtual datasets (made of other datasets or files), any layout but contiguous,
    chunked or compact, a non-float dtype, and a declared size above the parameter bound.
    """
    layout = dataset.id.get_create_plist().get_layout()
    if dataset.external or dataset.is_virtual or layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED,
                                                                h5py.h5d.COMPACT):
        raise CheckpointError(f"{where}: {key} is stored outside the file (external storage or a virtual "
                              "dataset); a weights file holds its arrays itself")
    if dataset.dtype.kind != "f" or dataset.dtype.itemsize > 8:
        raise CheckpointError(f"{where}: {key} has dtype {dataset.dtype}; expected floating-point weights "
                              "(float16, float32 or float64)")
    count = int(np.prod(dataset.shape, dtype=np.int64)) if dataset.shape is not None else 0
    if count > checkpoint.MAX_PARAMETERS:
        raise CheckpointError(f"{where}: {key} declares shape {dataset.shape}, more than the "
                              f"{checkpoint.MAX_PARAMETERS} parameters a model may hold")
    return count


def _h5_layers(h5py: ModuleType, handle: Any, where: str) -> dict[str, dict[str, np.ndarray]]:
    """``{layer name: {variable name: array}}`` read from an open Keras 3 weights file.

    Every link and dataset is checked, and the declared sizes summed against the parameter bound, before
    any value is read (a 5 MB file may declare a 20000 x 20000 kernel).
    """
    if "layers" not in handle or not isinstance(_h5_member(h5py, handle, "layers", where), h5py.Group):
        raise CheckpointError(f"{where}: no 'layers' group; expected the weights of a Keras 3 model "
                              "(model.save_weights('model.weights.h5'); Keras 2 files are not supported)")
    datasets, declared = {}, 0
    for name in handle["layers"]:
        group = _h5_member(h5py, handle["layers"], name, where)
        has_vars = isinstance(group, h5py.Group) and "vars" in group
        variables = _h5_member(h5py, group, "vars", where) if has_vars else None
        if not isinstance(variables, h5py.Group):
            raise CheckpointError(f"{where}: layers/{name} has no 'vars' group (not a Keras 3 weights file?)")
        datasets[name] = {}
        for key in variables:
            dataset = _h5_member(h5py, variables, key, where)
            if not isinstance(dataset, h5py.Dataset):
                raise CheckpointError(f"{where}: layers/{name}/vars/{key} is not an array")
            declared += _h5_check_dataset(h5py, dataset, f"layers/{name}/vars/{key}", where)
            datasets[name][key] = dataset
    if declared > checkpoint.MAX_PARAMETERS:
        raise CheckpointError(f"{where}: the arrays declare {declared} values in all, more than a model of "
                              f"{checkpoint.MAX_PARAMETERS} parameters holds")
    return {name: {key: dataset[()] for key, dataset in variables.items()}
            for name, variables in datasets.items()}


def _read_h5(data: bytes, where: str) -> dict[str, dict[str, np.ndarray]]:
    """``{layer group: {variable: array}}`` of a Keras 3 weights file's bytes (``_h5_layers``)."""
    h5py = _library("h5py")
    try:
        with h5py.File(io.BytesIO(data), "r") as handle:
            return _h5_layers(h5py, handle, where)
    except CheckpointError:
        raise
    except Exception as error:                   # h5py raises OSError, KeyError, TypeError on foreign bytes
        raise CheckpointError(f"{where}: not a readable HDF5 weights file ({error})") from error


def _archive_member(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """The bytes of one archive member, refused if it declares more than ``limit``, and streamed so that
    a member that inflates beyond what it declares (a zip bomb) is cut there (its CRC-32 then fails)."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise CheckpointError(f"{path}: {name} claims {info.file_size} bytes, more than {limit}")
    with archive.open(info) as member:
        return read_bounded(member, info.file_size, f"{path}:{name}", CheckpointError)


def _keras_archive(path: Path, data: bytes) -> tuple[Any, bytes]:
    """``(config.json parsed, model.weights.h5 bytes)`` of a ``.keras`` archive's bytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if not {"config.json", "model.weights.h5"} <= names:
                raise CheckpointError(f"{path}: a zip archive without config.json and model.weights.h5; "
                                      "expected a Keras 3 .keras file")
            config = parse_config(_archive_member(archive, "config.json", MAX_CONFIG_BYTES, path), "json",
                                  f"{path}:config.json", CheckpointError)
            return config, _archive_member(archive, "model.weights.h5", MAX_FILE_BYTES, path)
    except CheckpointError:
        raise
    except Exception as error:                   # zipfile, zlib, json
        raise CheckpointError(f"{path}: not a readable .keras archive ({error})") from error


def _read_keras(path: PathLike) -> tuple[MLP, list[str]]:
    """The MLP in a Keras 3 file and the names of the layers skipped as the identity at inference."""
    path = Path(path)
    data = _read_bytes(path)
    if not data.startswith(b"PK\x03\x04"):
        groups = _read_h5(data, str(path))
        model = from_keras_layers(groups, str(path))          # every group checked: the names match
        skipped = [name for name, variables in groups.items()
                   if not variables and _KERAS_NAME.match(name)["kind"] in KERAS_IDENTITY_LAYERS]
        return model, sorted(skipped)
    config, weights = _keras_archive(path, data)
    chain = keras_config.keras_chain(config, f"{path}")
    where = f"{path}:model.weights.h5"
    groups = _read_h5(weights, where)
    dense = [layer.group for layer in chain.dense]
    for name, variables in groups.items():
        if name not in chain.groups or (variables and name not in dense):
            raise CheckpointError(f"{where}: layers/{name} is not a layer config.json describes (it has "
                                  f"{sorted(chain.groups)}); the weights are not this model's")
    model = from_keras_layers(groups, where, order=dense)
    for layer, linear in zip(chain.dense, model.layers):
        if layer.units != linear.W.shape[1]:
            raise CheckpointError(f"{path}: config.json gives {layer.name!r} {shown(layer.units)} units but "
                                  f"layers/{layer.group}/vars/0 has shape {linear.W.shape}")
    last = chain.dense[-1]
    if last.activation not in ("linear", "softmax", None):
        raise CheckpointError(f"{path}: the last Dense layer {last.name!r} has activation "
                              f"{shown(last.activation)}; expected 'linear' or 'softmax' (tinyprune returns "
                              "logits)")
    model.activation = _hidden_activation(chain.dense[:-1], str(path))
    return model, chain.skipped


def read_keras(path: PathLike) -> MLP:
    """The MLP in a Keras 3 ``.weights.h5`` file or ``.keras`` archive (layouts in the module docstring)."""
    return _read_keras(path)[0]


def read_keras_skipped(path: PathLike) -> list[str]:
    """The names of the layers of a Keras 3 file read as the identity at inference (``Dropout``,
    ``Flatten``, ``Activation("linear")``), in order: ``tinyprune import`` prints and records them."""
    return _read_keras(path)[1]


def _hidden_activation(layers: list[keras_config.DenseLayer], where: str) -> str:
    """tinyprune's name for the one activation of the hidden ``Dense`` layers, or ``CheckpointError`` naming
    the layer whose activation differs from the first's or that tinyprune cannot represent."""
    for layer in layers:
        activation = layer.activation
        if not isinstance(activation, str) or activation not in KERAS_ACTIVATIONS:
            why = ("Keras's gelu is the exact erf GELU; tinyprune has only its tanh approximation" if
                   activation == "gelu" else f"tinyprune represents {sorted(KERAS_ACTIVATIONS)}")
            raise CheckpointError(f"{where}: Dense layer {layer.name!r} has activation {shown(activation)}; "
                                  + why)
        if activation != layers[0].activation:
            raise CheckpointError(f"{where}: Dense layer {layer.name!r} has activation {shown(activation)} "
                                  f"but {layers[0].name!r} has {shown(layers[0].activation)}; tinyprune's "
                                  "MLP has one activation between all its layers")
    return KERAS_ACTIVATIONS[layers[0].activation] if layers else ASSUMED


def keras_activation(model: MLP) -> str:
    """The Keras 3 activation string of ``model``'s hidden layers, or ``ValueError`` if Keras has none."""
    for keras_name, name in KERAS_ACTIVATIONS.items():
        if activation_name(name) == activation_name(model.activation):
            return keras_name
    raise ValueError(f"a .keras config cannot hold activation {model.activation!r} (Keras's strings: "
                     f"{sorted(KERAS_ACTIVATIONS)}; its 'gelu' is the erf form, its 'leaky_relu' has slope "
                     "0.2); "
                     "export as .weights.h5 or safetensors and state the activation when loading")


def _h5_bytes(model: MLP) -> bytes:
    """The Keras 3 weights file of ``model`` (``/vars``, ``/layers/dense*/vars/{0,1}``), as bytes."""
    h5py = _library("h5py")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.create_group("vars").attrs["name"] = "sequential"
        layers = handle.create_group("layers")
        for name, variables in keras_layers(model).items():
            group = layers.create_group(name).create_group("vars")
            group.attrs["name"] = name
            for key, value in enumerate(variables):
                group.create_dataset(str(key), data=value)
    return buffer.getvalue()


def _keras_config(model: MLP) -> dict[str, Any]:
    """A Keras 3 ``config.json`` for ``Sequential([InputLayer, Dense(act), ..., Dense(softmax)])``."""
    dtype, hidden = model.dtype.name, keras_activation(model)
    layers: list[dict[str, Any]] = [{
        "module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
        "config": {"batch_shape": [None, model.sizes[0]], "dtype": dtype, "sparse": False,
                   "name": "input_layer"}}]
    fan_in = model.sizes[0]
    for index, units in enumerate(model.sizes[1:]):
        last = index == len(model.layers) - 1
        layers.append({
            "module": "keras.layers", "class_name": "Dense", "registered_name": None,
            "build_config": {"input_shape": [None, fan_in]},
            "config": {"name": "dense" if index == 0 else f"dense_{index}", "trainable": True, "dtype": dtype,
                       "units": units, "activation": "softmax" if last else hidden, "use_bias": True,
                       "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                              "config": {"seed": None}, "registered_name": None},
                       "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                                            "config": {}, "registered_name": None},
                       "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
                       "bias_constraint": None}})
        fan_in = units
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "sequential", "trainable": True, "dtype": dtype, "layers": layers},
            "build_config": {"input_shape": [None, model.sizes[0]]}}


def check_keras_name(path: PathLike) -> Path:
    """``path`` if Keras 3 loads a file of that name as what ``write_keras`` writes: ``<name>.keras`` (a
    whole model, ``keras.saving.load_model``) or ``<name>.weights.h5`` (``model.load_weights``); else a
    ``ValueError`` that names the fix. Keras 3's ``save_weights`` refuses any other name, and its
    ``load_weights`` reads a plain ``.h5`` as a Keras 2 file ("found 0 saved layers").

    >>> check_keras_name("p.weights.h5").name
    'p.weights.h5'
    >>> try:
    ...     check_keras_name("p.h5")
    ... except ValueError as error:
    ...     print(str(error).rsplit(": ", 1)[1])
    use p.weights.h5
    """
    name = Path(path).name                         # Keras compares the ending case-sensitively
    if name.endswith(".keras") or name.endswith(".weights.h5"):
        return Path(path)
    fix = Path(path).with_suffix(".keras" if name.lower().endswith(".keras") else ".weights.h5")
    raise ValueError(f"{path}: Keras 3 loads weights only from a name ending in .weights.h5 (its "
                     "save_weights refuses other names, and load_weights reads a plain .h5 as a Keras 2 "
                     f"file: 'found 0 saved layers'), or a whole model from .keras: use {fix}")


def write_keras(path: PathLike, model: MLP, *, overwrite: bool = True) -> Path:
    """Write ``model`` as Keras 3 weights: ``.keras`` (an archive with the config) if ``path`` ends so,
    else a ``.weights.h5`` file (any other name is refused: ``check_keras_name``); atomically."""
    check_keras_name(path)
    weights = _h5_bytes(model)
    if not Path(path).name.endswith(".keras"):
        return atomic_write(path, weights, overwrite=overwrite)
    config = _keras_config(model)                 # refused before anything is written

    def write_archive(file: Any) -> None:
        with zipfile.ZipFile(file, "w") as archive:
            archive.writestr("metadata.json", json.dumps({"keras_version": "3", "producer": "tinyprune"}))
            archive.writestr("config.json", json.dumps(config))
            archive.writestr("model.weights.h5", weights)
    return atomic_write(path, write_archive, overwrite=overwrite)


# --------------------------------------------------------------------------- one door in, one door out
def import_model(path: PathLike, format: str | None = None,  # noqa: A002 (the natural name)
                 activation: str | None = None, layers: Any = None) -> MLP:
    """The MLP stored in ``path``: a tinyprune checkpoint (``npz``), PyTorch ``safetensors`` or ``keras``
    (``.weights.h5`` or ``.keras``); the format comes from the extension unless named. ``activation``
    states the activation of a weights-only file (``weights_only``); without it ReLU is assumed, with a
    ``UserWarning`` saying so. A file that names its activation must agree with ``activation`` if given.
    ``layers`` states the order of a safetensors file's ``Linear`` modules (``read_safetensors``).
    Example: see the module docstring."""
    kind = format_of(path, format)
    if layers is not None and kind != "safetensors":
        raise ValueError(f"layers orders a safetensors file's Linear modules; a {kind} file has its own")
    if activation is not None:
        activation_name(activation)                # an unknown name is refused before the file is read
    if kind == "npz":
        model = checkpoint.load(path).model
    else:
        model = read_safetensors(path, layers) if kind == "safetensors" else read_keras(path)
    if weights_only(path, kind):
        if activation is None:
            warnings.warn(assumption_note(), UserWarning, stacklevel=2)
        model.activation = ASSUMED if activation is None else activation
    elif activation is not None and activation_name(activation) != activation_name(model.activation):
        raise CheckpointError(f"{path}: the file says activation {model.activation!r}, but "
                              f"activation={activation!r} was given; leave it out to use the file's")
    return model


def weights_only(path: PathLike, format: str | None = None) -> bool:  # noqa: A002
    """Whether ``path`` holds weights without the activation between them (safetensors, ``.weights.h5``)."""
    kind = format_of(path, format)
    return kind == "safetensors" or (kind == "keras" and Path(path).suffix.lower() != ".keras")


def assumption_note() -> str:
    """The one line that says an import assumed its activation."""
    return f"assumed {ASSUMED}: a weights-only file does not say; pass --activation (API: activation=)"


def export_model(path: PathLike, model: MLP, format: str | None = None, *,  # noqa: A002
                 masks: bool = False, layout: Sequence[str] | None = None, like: PathLike | None = None,
                 overwrite: bool = True) -> Path:
    """Write ``model`` to ``path`` as a tinyprune checkpoint, PyTorch safetensors or Keras 3 weights
    (format from the extension unless named); atomically (``overwrite=False`` refuses an existing file).
    ``masks=True`` writes safetensors in ``torch.nn.utils.prune``'s layout (a checkpoint keeps its masks
    anyway; Keras has no place for them, so it is refused there). Safetensors keys name the ``Linear``
    modules ``0, 2, 4, ...`` unless ``layout`` names them (``check_layout``; ``tinyprune import`` records
    the source's as ``meta["torch_layout"]``) or ``like`` is a safetensors file whose layout to copy
    (``layout_like``: it must fit the model). Every refusal comes before anything is written. Returns the
    path."""
    if not isinstance(model, MLP):
        raise ValueError(f"export_model writes an MLP, got {type(model).__name__}")
    kind = format_of(path, format)
    if kind == "keras":
        check_keras_name(path)
    if masks and kind == "keras":
        raise ValueError("masks: Keras weight files have no place for masks (pruned weights travel as "
                         "zeros); to keep them through Keras training, give the Keras model the README's "
                         "KeepMask constraint (masks from keras_masks), or export as safetensors or npz to "
                         "keep them in the file")
    if (layout is not None or like is not None) and kind != "safetensors":
        raise ValueError(f"layout/like name PyTorch's keys: only a safetensors file has them, not {kind}")
    if layout is not None and like is not None:
        raise ValueError("give layout or like, not both")
    for name, parameter in model.named_parameters():
        if not np.all(np.isfinite(parameter.data)):
            raise ValueError(f"{name} holds NaN or inf values: refusing to export it")
    if kind == "npz":
        return checkpoint.save(path, model, overwrite=overwrite)
    if kind == "safetensors":
        layout = layout_like(like, model) if like is not None else check_layout(model, layout)
        return write_safetensors(path, model, masks=masks, layout=layout, overwrite=overwrite)
    return write_keras(path, model, overwrite=overwrite)
