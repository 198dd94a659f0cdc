"""Activations across imports and exports: a weights-only file (safetensors, ``.weights.h5``) takes the
activation from ``--activation`` / ``activation=``, or assumes ReLU and says so in one line recorded in the
checkpoint's meta; a ``.keras`` config names its own (one per model, one tinyprune can represent); exports
write it where the format has a place for it; old checkpoints without one load as ReLU."""

from __future__ import annotations

import io
import json
import warnings
import zipfile

import numpy as np
import pytest

from tinyprune import checkpoint, interop
from tinyprune.cli import main
from tinyprune.core.nn import MLP
from tinyprune.errors import CheckpointError

pytest.importorskip("h5py")
pytest.importorskip("safetensors")


def trained_like(spec: str, seed: int = 0) -> MLP:
    """An MLP whose biases are nonzero, so that every activation changes the logits."""
    model = MLP([12, 9, 7, 4], activation=spec, seed=seed)
    for layer in model.layers:
        layer.b.data[...] = np.random.default_rng(seed).uniform(-0.5, 0.5, size=layer.b.shape)
    return model


def logits(model: MLP) -> np.ndarray:
    return model(np.random.default_rng(1).normal(size=(16, model.sizes[0])).astype(np.float32))


def keras_config_with(path, activations):
    """Rewrite the hidden Dense layers' activations of the ``.keras`` archive at ``path`` (by hand, as Keras
    would have written them)."""
    with zipfile.ZipFile(path) as archive:
        config, weights = json.loads(archive.read("config.json")), archive.read("model.weights.h5")
    dense = [layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense"]
    for layer, activation in zip(dense, activations):
        layer["config"]["activation"] = activation
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    return path


@pytest.mark.parametrize("name", ["m.safetensors", "m.weights.h5"])
def test_a_tanh_model_round_trips_a_weights_only_file_with_activation_tanh(tmp_path, capsys, name):
    model = trained_like("tanh")
    source, out = tmp_path / name, tmp_path / "back.npz"
    interop.export_model(source, model)
    assert main(["import", str(source), "--activation", "tanh", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "assumed" not in text
    restored = checkpoint.load(out)
    assert restored.model.activation == "tanh" and restored.meta["activation_assumed"] is False
    np.testing.assert_array_equal(logits(restored.model), logits(model))          # identical: 0.0


@pytest.mark.parametrize("name", ["m.safetensors", "m.weights.h5"])
def test_without_activation_one_line_names_the_assumption_and_the_meta_records_it(tmp_path, capsys, name):
    model = trained_like("tanh")
    source, out = tmp_path / name, tmp_path / "back.npz"
    interop.export_model(source, model)
    assert main(["import", str(source), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assumed = [line for line in lines if "assumed" in line]
    assert assumed == ["assumed relu: a weights-only file does not say; pass --activation (API: activation=)"]
    restored = checkpoint.load(out)
    assert restored.model.activation == "relu" and restored.meta["activation_assumed"] is True
    assert not np.allclose(logits(restored.model), logits(model))      # the user's choice, but never silent


def test_the_api_warns_once_when_it_assumes(tmp_path):
    source = interop.export_model(tmp_path / "m.safetensors", trained_like("sigmoid"))
    with pytest.warns(UserWarning, match="assumed relu") as caught:
        assert interop.import_model(source).activation == "relu"
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = interop.import_model(source, activation="sigmoid")
    np.testing.assert_array_equal(logits(back), logits(trained_like("sigmoid")))


@pytest.mark.parametrize("spec", ["relu", "tanh", "sigmoid", "identity", "leaky_relu:0.2"])
def test_a_keras_file_says_its_activation_and_exports_write_it(tmp_path, capsys, spec):
    model = trained_like(spec)
    source = interop.export_model(tmp_path / "m.keras", model)
    with zipfile.ZipFile(source) as archive:
        config = json.loads(archive.read("config.json"))
    dense = [layer["config"]["activation"] for layer in config["config"]["layers"]
             if layer["class_name"] == "Dense"]
    keras_name = {"identity": "linear", "leaky_relu:0.2": "leaky_relu"}.get(spec, spec)
    assert dense == [keras_name, keras_name, "softmax"]
    out = tmp_path / "back.npz"
    assert main(["import", str(source), "--out", str(out)]) == 0
    assert "assumed" not in capsys.readouterr().out
    restored = checkpoint.load(out)
    assert restored.model.activation == spec and restored.meta["activation_assumed"] is False
    np.testing.assert_array_equal(logits(restored.model), logits(model))


def test_a_hand_built_keras_tanh_model_imports_as_tanh(tmp_path):
    model = trained_like("tanh")
    relu_file = interop.export_model(tmp_path / "m.keras", MLP.from_config({**model.config(),
                                                                              "activation": "relu"}))
    with zipfile.ZipFile(relu_file) as archive:
        config = json.loads(archive.read("config.json"))
    for layer in config["config"]["layers"][1:-1]:
        layer["config"]["activation"] = "tanh"
    weights = io.BytesIO()
    interop.export_model(tmp_path / "w.weights.h5", model)
    weights.write((tmp_path / "w.weights.h5").read_bytes())
    path = tmp_path / "hand.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights.getvalue())
    back = interop.import_model(path)
    assert back.activation == "tanh"
    np.testing.assert_array_equal(logits(back), logits(model))


@pytest.mark.parametrize(("activations", "message"), [
    (["tanh", "relu"], "Dense layer 'dense_1' has activation 'relu' but 'dense' has 'tanh'"),
    (["gelu", "gelu"], "Dense layer 'dense' has activation 'gelu'; Keras's gelu is the exact erf GELU"),
    (["swish", "swish"], "Dense layer 'dense' has activation 'swish'; tinyprune represents"),
    ([{"class_name": "ReLU"}, "relu"], "Dense layer 'dense' has activation {'class_name': 'ReLU'}"),
])
def test_a_keras_file_tinyprune_cannot_represent_is_refused_naming_it(tmp_path, capsys, activations, message):
    path = keras_config_with(interop.export_model(tmp_path / "m.keras", trained_like("relu")), activations)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace("{", r"\{")):
        interop.import_model(path)
    out = tmp_path / "out.npz"
    assert main(["import", str(path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_a_stated_activation_that_contradicts_the_file_is_refused(tmp_path, capsys):
    path = interop.export_model(tmp_path / "m.keras", trained_like("tanh"))
    out = tmp_path / "out.npz"
    assert main(["import", str(path), "--activation", "relu", "--out", str(out)]) == 2
    assert "the file says activation 'tanh'" in capsys.readouterr().err and not out.exists()
    assert interop.import_model(path, activation="tanh").activation == "tanh"     # agreeing is fine


@pytest.mark.parametrize(("bad", "hint"), [("tanhh", "did you mean tanh?"), ("gelu", "gelu_tanh"),
                                           ("leaky_relu:x", "leaky_relu:SLOPE")])
def test_bad_activation_names_are_refused_with_did_you_mean_and_nothing_written(tmp_path, capsys, bad, hint):
    source = interop.export_model(tmp_path / "m.safetensors", trained_like("tanh"))
    out = tmp_path / "out.npz"
    assert main(["import", str(source), "--activation", bad, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"unknown activation '{bad}'" in err and hint in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("spec", ["gelu_tanh", "leaky_relu", "leaky_relu:0.3"])
def test_a_keras_config_refuses_what_keras_strings_cannot_say_and_writes_nothing(tmp_path, spec):
    with pytest.raises(ValueError, match=f"a .keras config cannot hold activation '{spec}'"):
        interop.export_model(tmp_path / "m.keras", trained_like(spec))
    assert not (tmp_path / "m.keras").exists()
    back = interop.import_model(interop.export_model(tmp_path / "m.weights.h5", trained_like(spec)),
                                activation=spec)
    np.testing.assert_array_equal(logits(back), logits(trained_like(spec)))


def test_an_old_checkpoint_without_an_activation_loads_as_relu(tmp_path):
    path = checkpoint.save(tmp_path / "new.npz", trained_like("relu"))
    with np.load(path) as archive:
        entries = dict(archive)
    config = json.loads(entries["model.json"].tobytes())
    del config["activation"]
    entries["model.json"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    del entries["sha256"]
    entries["sha256"] = np.array(checkpoint._digest(entries))     # as a 0.2 checkpoint was sealed
    old = tmp_path / "old.npz"
    np.savez(old, **entries)
    model = checkpoint.load(old).model
    assert model.activation == "relu"
    np.testing.assert_array_equal(logits(model), logits(trained_like("relu")))


def test_a_checkpoint_keeps_its_activation(tmp_path):
    model = trained_like("leaky_relu:0.3")
    back = checkpoint.load(checkpoint.save(tmp_path / "m.npz", model)).model
    assert back.activation == "leaky_relu:0.3"
    np.testing.assert_array_equal(logits(back), logits(model))
