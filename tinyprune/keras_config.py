"""What a Keras 3 ``config.json`` says about an MLP: its ``Dense`` layers in order, with their activations.

A ``.keras`` archive's ``config.json`` describes the model (``interop.read_keras`` reads the weights). Two
kinds of model can be an MLP:

- ``"class_name": "Sequential"``: ``config.layers`` is the chain itself, first to last.
- ``"class_name": "Functional"`` (``keras.Model(inputs, outputs)``): ``config.layers`` lists the layers,
  and each one's ``inbound_nodes`` say what it is called on: ``[{"args": [{"class_name":
  "__keras_tensor__", "config": {"keras_history": [source layer, 0, 0], ...}}], "kwargs": {...}}]``. The
  graph is followed from the one ``InputLayer`` (``keras.Input``) to ``config.output_layers``; it must be
  a chain: every layer called once, on one tensor, and feeding one layer.

Along the chain: ``Dense`` layers (with a bias) carry the weights; an ``Activation`` layer right after a
linear ``Dense`` (``Dense(64)`` then ``Activation("tanh")``) is that ``Dense``'s activation; ``Dropout``
and ``Flatten`` are the identity at inference (``Flatten`` on the input: tinyprune takes each row
flattened in C order, as Keras's ``Flatten`` does) and are *skipped*, which the caller reports. Anything
else (another layer class, a branch, a skip connection, a ``Dense`` on a 3-D input without ``Flatten``,
two activations in a row) raises ``CheckpointError`` naming the layer and what is expected.

The weights file names each layer's group by its snake-case class name, numbered per class in the order
of ``config.layers`` (Keras's ``saving_lib``: ``dense``, ``dense_1``, ...; ``input_layer``; whatever the
layers' own names are), so a ``Dense`` layer's group is found from its position in that list.

>>> dense = {"class_name": "Dense", "config": {"name": "hidden", "units": 3, "activation": "linear"}}
>>> act = {"class_name": "Activation", "config": {"name": "act", "activation": "tanh"}}
>>> out = {"class_name": "Dense", "config": {"name": "out", "units": 2, "activation": "softmax"}}
>>> chain = keras_chain({"class_name": "Sequential", "config": {"layers": [dense, act, out]}}, "m.keras")
>>> [(layer.group, layer.name, layer.activation) for layer in chain.dense], chain.skipped
([('dense', 'hidden', 'tanh'), ('dense_1', 'out', 'softmax')], [])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinyprune.errors import CheckpointError
from tinyprune.files import shown

# Keras 3's layer classes an MLP may be made of, and the group each one's variables get in a weights file
KERAS_GROUPS = {"InputLayer": "input_layer", "Dense": "dense", "Activation": "activation",
                "Dropout": "dropout", "Flatten": "flatten"}
EXPECTED = "Dense layers (with a bias), and InputLayer, Activation, Dropout, Flatten between them"


@dataclass
class DenseLayer:
    """One ``Dense`` layer: its group in the weights file, its own name, units and activation string."""

    group: str
    name: str
    units: Any
    activation: Any


@dataclass
class KerasChain:
    """The ``Dense`` layers of a Keras MLP in order, and the names of the layers skipped as the identity."""

    dense: list[DenseLayer] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    groups: set[str] = field(default_factory=set)        # every group the weights file may hold


def config_table(value: Any, key: str, where: str) -> dict[str, Any]:
    """``value`` if it is a JSON object, else ``CheckpointError`` naming ``key`` in ``config.json``."""
    if not isinstance(value, dict):
        raise CheckpointError(f"{where}: config.json {key} is a {type(value).__name__}; expected an object "
                              "(not a Keras 3 model config?)")
    return value


@dataclass
class _Layer:
    """A layer of ``config.layers``: its class, name, options, weights-file group and the raw entry."""

    kind: Any
    name: str
    options: dict[str, Any]
    group: str
    entry: dict[str, Any]


def _listed_layers(config: Any, where: str) -> tuple[str, dict[str, Any], list[_Layer]]:
    """The model's class, its options, and ``config.layers`` in order, each given its weights-file group."""
    kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
    if kind not in ("Sequential", "Functional"):
        raise CheckpointError(f"{where}: config.json describes a {shown(kind).strip(chr(39))}; expected a "
                              "Sequential or Functional model (a subclassed keras.Model has no config to "
                              "read)")
    options = config_table(config.get("config", {}), "'config'", where)
    entries = options.get("layers")
    if not isinstance(entries, list):
        raise CheckpointError(f"{where}: config.json has no list of layers")
    layers, numbers = [], {}
    for position, entry in enumerate(entries):
        entry = config_table(entry, f"layer {position}", where)
        layer_options = config_table(entry.get("config", {}), f"layer {position} 'config'", where)
        name = entry.get("name") or layer_options.get("name") or f"layer {position}"
        kind_of_layer = entry.get("class_name")
        if not isinstance(kind_of_layer, str) or kind_of_layer not in KERAS_GROUPS:
            raise CheckpointError(f"{where}: config.json layer {shown(name)} is a "
                                  f"{shown(kind_of_layer).strip(chr(39))}; expected {EXPECTED}: not an MLP")
        base = KERAS_GROUPS[kind_of_layer]
        number = numbers[base] = numbers.get(base, -1) + 1
        group = base if number == 0 else f"{base}_{number}"
        layers.append(_Layer(kind_of_layer, str(name), layer_options, group, entry))
    return kind, options, layers


def _source(layer: _Layer, where: str) -> str:
    """The name of the one layer whose output ``layer`` is called on (its ``inbound_nodes``)."""
    nodes = layer.entry.get("inbound_nodes")
    if not isinstance(nodes, list):
        raise CheckpointError(f"{where}: config.json layer {layer.name!r} has no list of inbound_nodes (what "
                              "it is called on); expected a Functional model saved by Keras 3")
    if len(nodes) != 1:
        raise CheckpointError(f"{where}: config.json layer {layer.name!r} is called {len(nodes)} times; "
                              "expected once, in a chain of layers (a shared layer is not an MLP)")
    node = config_table(nodes[0], f"layer {layer.name!r} inbound node", where)
    args = node.get("args")
    tensor = args[0] if isinstance(args, list) and len(args) == 1 else None
    tensor_config = tensor.get("config") if isinstance(tensor, dict) else None
    history = tensor_config.get("keras_history") if isinstance(tensor_config, dict) else None
    tensors_in_kwargs = "__keras_tensor__" in repr(node.get("kwargs", {}))
    if (not isinstance(tensor, dict) or tensor.get("class_name") != "__keras_tensor__" or tensors_in_kwargs
            or not isinstance(history, list) or len(history) != 3 or not isinstance(history[0], str)):
        raise CheckpointError(f"{where}: config.json layer {layer.name!r} is not called on one tensor "
                              f"(inbound node {shown(node)}); expected one input (a merge or skip connection "
                              "is not an MLP)")
    return history[0]


def _functional_order(options: dict[str, Any], layers: list[_Layer], where: str) -> list[_Layer]:
    """The layers of a Functional model from its ``InputLayer`` to its output, checked to be a chain."""
    by_name = {}
    for layer in layers:
        if layer.name in by_name:
            raise CheckpointError(f"{where}: config.json names two layers {layer.name!r}")
        by_name[layer.name] = layer
    inputs = [layer.name for layer in layers if layer.kind == "InputLayer"]
    if len(inputs) != 1:
        raise CheckpointError(f"{where}: config.json has {len(inputs)} InputLayers {inputs}; expected one "
                              "input")
    consumer: dict[str, str] = {}
    for layer in layers:
        if layer.kind == "InputLayer":
            continue
        source = _source(layer, where)
        if source not in by_name:
            raise CheckpointError(f"{where}: config.json layer {layer.name!r} is called on {source!r}, which "
                                  "is not one of its layers")
        if source in consumer:
            raise CheckpointError(f"{where}: config.json layer {source!r} feeds both {consumer[source]!r} "
                                  f"and {layer.name!r}: a branch; expected a chain of layers")
        consumer[source] = layer.name
    order = [inputs[0]]
    while order[-1] in consumer and len(order) <= len(layers):
        order.append(consumer[order[-1]])
    outputs = options.get("output_layers")
    output = outputs[0] if isinstance(outputs, list) and outputs and isinstance(outputs[0], list) else outputs
    if len(order) != len(layers) or not isinstance(output, list) or output[:1] != [order[-1]]:
        stray = sorted(set(by_name) - set(order))
        raise CheckpointError(f"{where}: config.json is not one chain from {inputs[0]!r} to the output "
                              f"{shown(outputs)} (off the chain: {stray}); expected a chain of layers")
    return [by_name[name] for name in order]


def _rank(shape: Any) -> int | None:
    """The number of dimensions of a batch shape such as ``[None, 28, 28]``, if it is a list."""
    return len(shape) if isinstance(shape, list) else None


def keras_chain(config: Any, where: str) -> KerasChain:
    """The ``Dense`` layers of the MLP a Keras 3 ``config.json`` describes, with the layers skipped on the
    way (module docstring); ``CheckpointError`` naming the layer for anything else."""
    kind, options, layers = _listed_layers(config, where)
    order = layers if kind == "Sequential" else _functional_order(options, layers, where)
    chain, rank = KerasChain(groups={layer.group for layer in layers}), None
    for layer in order:
        if layer.kind == "InputLayer":
            rank = _rank(layer.options.get("batch_shape", layer.options.get("batch_input_shape")))
        elif layer.kind in ("Dropout", "Flatten"):
            chain.skipped.append(layer.name)
            rank = 2 if layer.kind == "Flatten" else rank
        elif layer.kind == "Activation":
            _fold_activation(chain, layer, where)
        else:
            build = layer.entry.get("build_config")
            rank = _rank(build.get("input_shape")) if rank is None and isinstance(build, dict) else rank
            if rank not in (None, 2):
                raise CheckpointError(f"{where}: config.json layer {layer.name!r} (Dense) acts on the last "
                                      f"axis of a {rank}-dimensional input; expected a Flatten before it "
                                      "(rows of features)")
            if layer.options.get("use_bias", True) is not True:
                raise CheckpointError(f"{where}: config.json layer {layer.name!r} is a Dense without bias "
                                      "(use_bias=False); tinyprune's layers all have one")
            chain.dense.append(DenseLayer(layer.group, layer.name, layer.options.get("units"),
                                          layer.options.get("activation", "linear")))
            rank = 2
    if not chain.dense:
        raise CheckpointError(f"{where}: config.json has no Dense layer")
    return chain


def _fold_activation(chain: KerasChain, layer: _Layer, where: str) -> None:
    """Make an ``Activation`` layer the activation of the ``Dense`` before it (linear until then)."""
    activation = layer.options.get("activation", "linear")
    if activation == "linear":                     # Activation("linear") is the identity
        chain.skipped.append(layer.name)
        return
    if not chain.dense:
        raise CheckpointError(f"{where}: config.json layer {layer.name!r} applies {shown(activation)} to the "
                              "input, before any Dense layer; expected activations after Dense layers")
    before = chain.dense[-1]
    if before.activation not in ("linear", None):
        raise CheckpointError(f"{where}: config.json layer {layer.name!r} applies {shown(activation)} after "
                              f"{before.name!r} (activation {shown(before.activation)}): two activations in "
                              "a row; expected one activation per Dense layer")
    before.activation = activation
