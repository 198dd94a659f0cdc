"""Keras 3 the rest of the way: Functional models come in, exports have names Keras loads, masks in Keras's
layout. The files are made with h5py alone, as Keras 3.15 writes them (a Functional config's
``inbound_nodes``/``keras_history``, one weights group per layer, numbered per class); the last section
checks the same against real Keras when it is installed (skipped otherwise)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyprune import checkpoint, prune
from tinyprune.cli import main
from tinyprune.core.nn import MLP
from tinyprune.errors import CheckpointError
from tinyprune.interop import (
    check_keras_name,
    export_model,
    import_model,
    keras_masks,
    read_keras_skipped,
    write_keras,
)

h5py = pytest.importorskip("h5py")


def user_model(seed: int = 0) -> MLP:
    """The weights of the user's Keras model below: 3 x 4 inputs flattened to 12, tanh, nonzero biases."""
    model = MLP([12, 7, 5, 3], activation="tanh", seed=seed)
    for layer in model.layers:
        layer.b.data[...] = np.random.default_rng(seed).uniform(-0.5, 0.5, size=layer.b.shape)
    return model


def logits(model: MLP, seed: int = 1) -> np.ndarray:
    return model(np.random.default_rng(seed).normal(size=(16, model.sizes[0])).astype(np.float32))


# ------------------------------------------------------------------ a Functional config as Keras 3 writes it
def tensor(source: str) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"shape": None, "dtype": "float32",
                                                         "keras_history": [source, 0, 0]}}


def layer(kind: str, name: str, source: str | None, **options) -> dict:
    """One entry of ``config.layers``: its class, options, and the layer it is called on."""
    nodes = [] if source is None else [{"args": [tensor(source)], "kwargs": {}}]
    return {"module": "keras.layers", "class_name": kind, "registered_name": None, "name": name,
            "config": {"name": name, "trainable": True, **options}, "inbound_nodes": nodes}


def dense(name: str, source: str, units: int, activation: str = "linear", **options) -> dict:
    return layer("Dense", name, source, units=units, activation=activation, **{"use_bias": True, **options})


def user_layers() -> list[dict]:
    """Input((3, 4)) -> Flatten -> Dense(7) -> Activation(tanh) -> Dropout -> Dense(5, tanh) -> Dense(3)."""
    return [layer("InputLayer", "pixels", None, batch_shape=[None, 3, 4]),
            layer("Flatten", "flatten", "pixels"),
            dense("hidden", "flatten", 7),
            layer("Activation", "squash", "hidden", activation="tanh"),
            layer("Dropout", "dropout", "squash", rate=0.2),
            dense("hidden_2", "dropout", 5, activation="tanh"),
            dense("logits", "hidden_2", 3)]


def functional(layers: list[dict], output: str = "logits") -> dict:
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "registered_name": "Functional",
            "config": {"name": "functional", "trainable": True, "layers": layers,
                       "input_layers": [layers[0]["name"], 0, 0], "output_layers": [output, 0, 0]}}


# The groups Keras 3.15 writes for user_layers(): the snake-case class name, numbered per class in list order
USER_GROUPS = ["input_layer", "flatten", "dense", "activation", "dropout", "dense_1", "dense_2"]


def h5_bytes(model: MLP, groups=USER_GROUPS) -> bytes:
    """A weights file: each group in ``groups`` with an empty ``vars``, the Dense ones filled in order."""
    buffer, weights = io.BytesIO(), iter(model.layers)
    with h5py.File(buffer, "w") as handle:
        handle.create_group("vars")
        for group in groups:
            variables = handle.create_group(f"layers/{group}/vars")
            if group.startswith("dense"):
                linear = next(weights)
                variables.create_dataset("0", data=linear.W.data)
                variables.create_dataset("1", data=linear.b.data)
    return buffer.getvalue()


def keras_file(path, config: dict, weights: bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    return path


# ------------------------------------------------------------------ Functional models come in
def test_a_functional_model_with_flatten_dropout_and_activation_layers_comes_in(tmp_path):
    model = user_model()
    path = keras_file(tmp_path / "user.keras", functional(user_layers()), h5_bytes(model))
    back = import_model(path)
    assert back.sizes == [12, 7, 5, 3] and back.activation == "tanh"      # Activation("tanh") folded
    np.testing.assert_array_equal(logits(back), logits(model))
    assert read_keras_skipped(path) == ["flatten", "dropout"]


def test_a_softmax_activation_layer_after_the_output_comes_in_as_logits(tmp_path):
    layers = [*user_layers(), layer("Activation", "probabilities", "logits", activation="softmax")]
    model = user_model()
    groups = [*USER_GROUPS, "activation_1"]
    back = import_model(keras_file(tmp_path / "m.keras", functional(layers, "probabilities"),
                                   h5_bytes(model, groups)))
    np.testing.assert_array_equal(logits(back), logits(model))


def test_its_weights_only_file_comes_in_with_the_activation_stated(tmp_path):
    model = user_model()
    path = tmp_path / "user.weights.h5"
    path.write_bytes(h5_bytes(model))                 # input_layer, activation, ...: no longer "not a Dense"
    back = import_model(path, activation="tanh")
    np.testing.assert_array_equal(logits(back), logits(model))
    assert read_keras_skipped(path) == ["dropout", "flatten"]


def test_the_cli_prints_and_records_the_layers_it_skipped(tmp_path, capsys):
    path = keras_file(tmp_path / "user.keras", functional(user_layers()), h5_bytes(user_model()))
    assert main(["import", str(path), "--out", str(tmp_path / "m.npz")]) == 0
    printed = capsys.readouterr().out
    assert "skipped Keras layers flatten, dropout: the identity at inference" in printed
    assert "rows of 12 features" in printed
    assert checkpoint.load(tmp_path / "m.npz").meta["keras_skipped"] == ["flatten", "dropout"]


def test_a_layer_list_out_of_order_is_read_along_the_graph(tmp_path):
    """``config.layers`` in another order: the graph decides the order of the Dense layers, and each
    Dense layer's weights group follows its position in the list (Keras numbers them so)."""
    layers = user_layers()
    layers = [layers[0], layers[1], layers[5], layers[2], layers[3], layers[4], layers[6]]   # hidden_2 first
    groups = ["input_layer", "flatten", "dense", "dense_1", "activation", "dropout", "dense_2"]
    model = user_model()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:                       # dense = hidden_2, dense_1 = hidden
        for group in groups:
            handle.create_group(f"layers/{group}/vars")
        for group, linear in zip(("dense_1", "dense", "dense_2"), model.layers):
            handle[f"layers/{group}/vars"].create_dataset("0", data=linear.W.data)
            handle[f"layers/{group}/vars"].create_dataset("1", data=linear.b.data)
    back = import_model(keras_file(tmp_path / "m.keras", functional(layers), buffer.getvalue()))
    np.testing.assert_array_equal(logits(back), logits(model))


def _replace(layers: list[dict], name: str, new: dict) -> list[dict]:
    return [new if entry["name"] == name else entry for entry in layers]


def _two_inputs(layers):
    return [layers[0], layer("InputLayer", "more", None, batch_shape=[None, 12]), *layers[1:]]


def _called_twice(layers):
    twice = dense("hidden", "flatten", 7)
    twice["inbound_nodes"] *= 2
    return _replace(layers, "hidden", twice)


def _two_tensors(layers):
    merged = dense("hidden_2", "dropout", 5, activation="tanh")
    merged["inbound_nodes"][0]["args"] = [[tensor("dropout"), tensor("flatten")]]
    return _replace(layers, "hidden_2", merged)


BAD_GRAPHS = {
    "a branch": (lambda ls: [*ls, dense("side", "hidden", 2)],
                 "layer 'hidden' feeds both 'squash' and 'side': a branch; expected a chain"),
    "a skip connection": (lambda ls: [*ls[:-1], layer("Add", "add", "hidden_2"), dense("logits", "add", 3)],
                          "layer 'add' is a Add; expected Dense layers"),
    "a merge of two tensors": (_two_tensors, "layer 'hidden_2' is not called on one tensor"),
    "a Dense without bias": (lambda ls: _replace(ls, "logits", dense("logits", "hidden_2", 3,
                                                                      use_bias=False)),
                             "layer 'logits' is a Dense without bias"),
    "an unknown layer": (lambda ls: _replace(ls, "dropout", layer("BatchNormalization", "dropout", "squash")),
                         "layer 'dropout' is a BatchNormalization; expected Dense layers"),
    "mixed hidden activations": (lambda ls: _replace(ls, "hidden_2", dense("hidden_2", "dropout", 5, "relu")),
                                 "Dense layer 'hidden_2' has activation 'relu' but 'hidden' has 'tanh'"),
    "two activations in a row": (lambda ls: _replace(ls, "hidden", dense("hidden", "flatten", 7, "relu")),
                                 "layer 'squash' applies 'tanh' after 'hidden' \\(activation 'relu'\\): two "
                                 "activations"),
    "an activation on the input": (lambda ls: _replace(ls, "flatten", layer("Activation", "flatten", "pixels",
                                                                            activation="tanh")),
                                   "layer 'flatten' applies 'tanh' to the input"),
    "a Dense on a 3-D input": (lambda ls: _replace(ls, "flatten", layer("Dropout", "flatten", "pixels")),
                               "layer 'hidden' \\(Dense\\) acts on the last axis of a 3-dimensional input; "
                               "expected a Flatten"),
    "a layer called twice": (_called_twice, "layer 'hidden' is called 2 times"),
    "two inputs": (_two_inputs, "has 2 InputLayers"),
    "an output that is not the end": (None, "is not one chain from 'pixels' to the output"),
    "a layer fed by no layer": (lambda ls: _replace(ls, "dropout", layer("Dropout", "dropout", "nowhere")),
                                "layer 'dropout' is called on 'nowhere', which is not one of its layers"),
}


@pytest.mark.parametrize("case", list(BAD_GRAPHS))
def test_a_model_tinyprune_cannot_represent_is_refused_naming_the_layer(tmp_path, case):
    change, message = BAD_GRAPHS[case]
    layers = user_layers()
    config = functional(layers, output="hidden_2") if change is None else functional(change(layers))
    path = keras_file(tmp_path / "bad.keras", config, h5_bytes(user_model()))
    with pytest.raises(CheckpointError, match=message):
        import_model(path)
    assert main(["import", str(path), "--out", str(tmp_path / "m.npz")]) == 2
    assert not (tmp_path / "m.npz").exists()


def _paths(value, path=()):
    """Every place in a JSON value, as the keys and indices that lead to it."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        yield from _paths(item, (*path, key))


JUNK = [None, 0, -1, 2.5, "", "dense", [], {}, [None], {"class_name": "__keras_tensor__"}, True]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_malformed_config_is_a_clean_error_or_the_same_model(tmp_path, data):
    """One value anywhere in a Functional config replaced by junk: a ``CheckpointError``, or (where the
    value does not matter, like a name nobody refers to) the same model; never another exception."""
    config = functional(user_layers())
    places = [path for path in _paths(config) if path]
    path = data.draw(st.sampled_from(places))
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(st.sampled_from(JUNK))
    model = user_model()
    file = keras_file(tmp_path / "fuzz.keras", config, h5_bytes(model))
    try:
        back = import_model(file)
    except CheckpointError:
        return
    np.testing.assert_array_equal(logits(back), logits(model))


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    config = functional(user_layers())
    extra = keras_file(tmp_path / "a.keras", config, h5_bytes(user_model(), [*USER_GROUPS, "dropout_1"]))
    with pytest.raises(CheckpointError, match="layers/dropout_1 is not a layer config.json describes"):
        import_model(extra)
    config["config"]["layers"][2]["config"]["units"] = 8
    with pytest.raises(CheckpointError, match="gives 'hidden' 8 units but layers/dense/vars/0 has shape"):
        import_model(keras_file(tmp_path / "b.keras", config, h5_bytes(user_model())))


def test_a_weights_only_file_with_a_merge_layer_is_refused_by_name(tmp_path):
    path = tmp_path / "m.weights.h5"
    path.write_bytes(h5_bytes(user_model(), [*USER_GROUPS[:4], "add", *USER_GROUPS[4:]]))
    with pytest.raises(CheckpointError, match="layers/add is not a Dense layer"):
        import_model(path, activation="tanh")


# ------------------------------------------------------------------ names Keras 3 loads
@pytest.mark.parametrize("name, fix", [("p.h5", "p.weights.h5"), ("p.hdf5", "p.weights.h5"),
                                       ("weights.bin", "weights.weights.h5"), ("M.KERAS", "M.keras"),
                                       ("p.WEIGHTS.H5", "p.WEIGHTS.weights.h5")])
def test_a_keras_export_name_keras_does_not_load_is_refused_with_the_fix(tmp_path, capsys, name, fix):
    model = user_model()
    source = checkpoint.save(tmp_path / "m.npz", model)
    out = tmp_path / name
    for write in (lambda: export_model(out, model, "keras"), lambda: write_keras(out, model)):
        with pytest.raises(ValueError, match=f"use {tmp_path / fix}$"):
            write()
    assert main(["export", str(source), "--out", str(out), "--format", "keras"]) == 2
    assert f"use {tmp_path / fix}" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m.npz"]          # nothing written


def test_the_names_keras_loads_are_written():
    for name in ("p.weights.h5", "dir/p.keras", ".weights.h5"):
        assert check_keras_name(name).name == name.rsplit("/", 1)[-1]


# ------------------------------------------------------------------ masks in Keras's layout
def test_keras_masks_are_the_models_masks_in_the_kernels_layout():
    model = user_model()
    prune.neurons(model, 0.3, scope="layer")                  # masked biases too
    prune.magnitude(model, 0.5)
    masks = keras_masks(model)
    assert list(masks) == ["dense", "dense_1", "dense_2"]
    for (kernel_mask, bias_mask), linear in zip(masks.values(), model.layers):
        assert kernel_mask.dtype == bias_mask.dtype == np.float32
        np.testing.assert_array_equal(kernel_mask, linear.W.mask)            # kernel (in, out) = W
        expected_bias = np.ones(linear.b.shape) if linear.b.mask is None else linear.b.mask
        np.testing.assert_array_equal(bias_mask, expected_bias)
    assert any(float(m[1].min()) == 0 for m in masks.values())               # some bias is masked


def test_keras_masks_of_a_dense_model_are_all_ones():
    masks = keras_masks(user_model())
    assert all(np.all(mask == 1) for pair in masks.values() for mask in pair)


# ------------------------------------------------------------------ real Keras (optional: skipped without it)
def random_biases(keras_model, seed=0):
    """Nonzero biases (Keras starts them at 0), so that a lost or misplaced bias shows in the outputs."""
    generator = np.random.default_rng(seed)
    for variable in keras_model.weights:
        if len(variable.shape) == 1:
            variable.assign(generator.uniform(-0.5, 0.5, size=variable.shape).astype(np.float32))
    return keras_model


def keras_user_models(keras):
    """A tanh Sequential, and a Functional with Flatten, Dropout and separate Activation layers."""
    layers = keras.layers
    sequential = keras.Sequential([keras.Input((12,)), layers.Dense(7, activation="tanh"),
                                   layers.Dropout(0.3), layers.Dense(5, activation="tanh"), layers.Dense(3)])
    pixels = keras.Input((3, 4))
    x = layers.Dropout(0.2)(layers.Activation("tanh")(layers.Dense(7)(layers.Flatten()(pixels))))
    x = layers.Activation("tanh")(layers.Dense(5, name="second")(x))
    functional_model = keras.Model(pixels, layers.Dense(3, name="logits")(x))
    return {"sequential": (sequential, (12,)), "functional": (functional_model, (3, 4))}


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_real_keras_models_come_in_with_keras_logits(keras, tmp_path, kind):
    keras.utils.set_random_seed(0)
    model, shape = keras_user_models(keras)[kind]
    random_biases(model)
    x = np.random.default_rng(2).normal(size=(32, *shape)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    for path, activation in ((tmp_path / "m.keras", None), (tmp_path / "m.weights.h5", "tanh")):
        mine = import_model(path, activation=activation)
        assert mine.activation == "tanh"
        difference = float(np.abs(mine(x.reshape(32, -1)) - expected).max())
        print(f"{kind} {path.name}: max |tinyprune - keras| logit {difference:.2e}")
        assert difference < 1e-4


def test_a_tinyprune_export_loads_in_keras_with_tinyprunes_outputs(keras, tmp_path):
    keras.utils.set_random_seed(0)
    model = user_model()
    prune.neurons(model, 0.3, scope="layer")
    prune.magnitude(model, 0.6)
    x = np.random.default_rng(3).normal(size=(32, 3, 4)).astype(np.float32)
    z = model(x.reshape(32, 12))
    source = checkpoint.save(tmp_path / "pruned.npz", model)
    for name in ("p.weights.h5", "p.keras"):
        assert main(["export", str(source), "--out", str(tmp_path / name), "--format", "keras"]) == 0
    functional_model, _ = keras_user_models(keras)["functional"]
    functional_model.load_weights(tmp_path / "p.weights.h5")           # the user's own model takes it
    difference = float(np.abs(functional_model.predict(x, verbose=0) - z).max())
    whole = keras.saving.load_model(tmp_path / "p.keras")              # softmax output: probabilities
    probabilities = np.exp(z - z.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    whole_difference = float(np.abs(whole.predict(x.reshape(32, 12), verbose=0) - probabilities).max())
    print(f"load_weights: max |keras - tinyprune| logit {difference:.2e}; load_model: probability "
          f"{whole_difference:.2e}")
    assert difference < 1e-5 and whole_difference < 1e-5
    assert main(["export", str(source), "--out", str(tmp_path / "p.h5"), "--format", "keras"]) == 2
    (tmp_path / "p.h5").write_bytes((tmp_path / "p.weights.h5").read_bytes())
    with pytest.raises(ValueError, match="found 0 saved layers"):      # why it is refused: Keras 2's reader
        functional_model.load_weights(tmp_path / "p.h5")
