"""PyTorch (safetensors) and Keras 3 (.weights.h5, .keras) files, made with the format libraries alone."""

from __future__ import annotations

import json
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune import prune
from tinyprune.core.nn import MLP
from tinyprune.errors import CheckpointError
from tinyprune.interop import export_model, format_of, import_model
from tinyprune.testing import mlp_sizes, seeds

h5py = pytest.importorskip("h5py")
# these files are ReLU models read without activation=: the assumption's warning is expected here
pytestmark = pytest.mark.filterwarnings("ignore:assumed relu:UserWarning")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

DOCUMENT_SIZES = [784, 64, 64, 10]
# What Keras 3.15 writes for Sequential([Input((784,)), Dense(64, relu), Dropout, Dense(64, relu),
# Dense(10, softmax)]) after compile(optimizer="adam"): model.save_weights("m.weights.h5"), h5py's visit().
KERAS_DOCUMENT_LAYOUT = [
    "layers", "layers/dense", "layers/dense/vars", "layers/dense/vars/0", "layers/dense/vars/1",
    "layers/dense_1", "layers/dense_1/vars", "layers/dense_1/vars/0", "layers/dense_1/vars/1",
    "layers/dense_2", "layers/dense_2/vars", "layers/dense_2/vars/0", "layers/dense_2/vars/1",
    "layers/dropout", "layers/dropout/vars", "optimizer", "optimizer/vars", "optimizer/vars/0",
    "optimizer/vars/1", "vars"]


def inputs(model, n=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, model.sizes[0])).astype(model.dtype)


def with_biases(model, seed=0):
    """Nonzero biases, so that a bias lost or misplaced shows in the logits."""
    generator = np.random.default_rng(seed)
    for layer in model.layers:
        layer.b.data[...] = generator.normal(0, 0.1, size=layer.b.shape)
    return model


def write_safetensors(path, tensors, metadata=None):
    path.write_bytes(safetensors_numpy.save(tensors, metadata=metadata))
    return path


def write_h5(path, layers, extra_groups=("vars",)):
    """A Keras 3 style weights file: ``{layer name: [variables]}`` under /layers/<name>/vars/<k>."""
    with h5py.File(path, "w") as handle:
        for group in extra_groups:
            handle.create_group(group)
        for name, variables in layers.items():
            group = handle.create_group(f"layers/{name}/vars")
            for key, value in enumerate(variables):
                group.create_dataset(str(key), data=value)
    return path


def torch_like(model, prefix="", step=2):
    return {f"{prefix}{step * i}.{kind}": (layer.W.data.T if kind == "weight" else layer.b.data).copy()
            for i, layer in enumerate(model.layers) for kind in ("weight", "bias")}


def keras_like(model):
    return {("dense" if i == 0 else f"dense_{i}"): [layer.W.data, layer.b.data]
            for i, layer in enumerate(model.layers)}


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("suffix", [".safetensors", ".weights.h5", ".keras", ".npz"])
@given(sizes=mlp_sizes(), seed=seeds, dtype=st.sampled_from([np.float32, np.float64]))
def test_tinyprune_to_file_to_tinyprune_gives_identical_logits(tmp_path_factory, suffix, sizes, seed, dtype):
    model = with_biases(MLP(sizes, seed=seed, dtype=dtype), seed)
    path = export_model(tmp_path_factory.mktemp("x") / f"model{suffix}", model)
    back = import_model(path)
    assert back.sizes == model.sizes and back.dtype == model.dtype
    for p, q in zip(model.parameters(), back.parameters()):
        assert np.array_equal(p.data, q.data)
    X = inputs(model)
    assert np.array_equal(back(X), model(X))


@pytest.mark.parametrize("suffix", [".safetensors", ".weights.h5", ".keras"])
def test_a_pruned_model_goes_out_and_comes_back_with_its_zeros(tmp_path, suffix):
    model = with_biases(MLP(DOCUMENT_SIZES, seed=0))
    prune.magnitude(model, 0.9)
    back = import_model(export_model(tmp_path / f"m{suffix}", model))
    assert np.array_equal(back(inputs(model)), model(inputs(model)))
    for p, q in zip(model.parameters(), back.parameters()):
        assert np.array_equal(p.data == 0, q.data == 0)
    assert not prune.is_pruned(back)        # zeros, not masks: the plain formats have no place for them


# ------------------------------------------------------------------ the layouts written
def test_safetensors_file_has_the_pytorch_sequential_layout(tmp_path):
    model = with_biases(MLP(DOCUMENT_SIZES, seed=0))
    path = export_model(tmp_path / "m.safetensors", model)
    tensors = safetensors_numpy.load_file(path)
    assert {key: value.shape for key, value in tensors.items()} == {
        "0.weight": (64, 784), "0.bias": (64,), "2.weight": (64, 64), "2.bias": (64,),
        "4.weight": (10, 64), "4.bias": (10,)}
    np.testing.assert_array_equal(tensors["2.weight"], model.layers[1].W.data.T)   # weight = W.T (out, in)
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + header_length])
    assert header["__metadata__"] == {"format": "pt"} and header["0.weight"]["dtype"] == "F32"


def test_keras_weights_file_has_the_keras_3_layout(tmp_path):
    model = with_biases(MLP(DOCUMENT_SIZES, seed=0))
    path = export_model(tmp_path / "m.weights.h5", model)
    names = []
    with h5py.File(path, "r") as handle:
        handle.visit(names.append)
        kernel = handle["layers/dense_1/vars/0"][()]
    expected = [name for name in KERAS_DOCUMENT_LAYOUT if "dropout" not in name and "optimizer" not in name]
    assert sorted(names) == expected
    np.testing.assert_array_equal(kernel, model.layers[1].W.data)                  # kernel = W (in, out)


def test_keras_archive_holds_config_metadata_and_weights(tmp_path):
    path = export_model(tmp_path / "m.keras", MLP(DOCUMENT_SIZES, seed=0))
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
    layers = config["config"]["layers"]
    assert config["class_name"] == "Sequential"
    assert [layer["class_name"] for layer in layers] == ["InputLayer", "Dense", "Dense", "Dense"]
    assert layers[0]["config"]["batch_shape"] == [None, 784]
    assert [(layer["config"]["units"], layer["config"]["activation"]) for layer in layers[1:]] == [
        (64, "relu"), (64, "relu"), (10, "softmax")]


# ------------------------------------------------------------------ files as the frameworks write them
@pytest.mark.parametrize("prefix, step", [("", 2), ("model.", 2), ("net.", 3), ("module.layers.", 2)])
def test_pytorch_state_dicts_with_a_prefix_or_a_dropout_between_are_read(tmp_path, prefix, step):
    model = with_biases(MLP([5, 4, 3, 2], seed=1))
    path = write_safetensors(tmp_path / "m.safetensors", torch_like(model, prefix, step), {"format": "pt"})
    assert np.array_equal(import_model(path)(inputs(model)), model(inputs(model)))


def test_torch_prune_layout_brings_its_masks(tmp_path):
    model = with_biases(MLP([5, 4, 3], seed=1))
    tensors = torch_like(model)
    weight_mask = (np.random.default_rng(0).random((4, 5)) < 0.5).astype(np.float32)
    tensors["0.weight_orig"] = tensors.pop("0.weight")
    tensors["0.weight_mask"] = weight_mask
    back = import_model(write_safetensors(tmp_path / "pruned.safetensors", tensors))
    np.testing.assert_array_equal(back.layers[0].W.mask, weight_mask.T == 1)
    np.testing.assert_array_equal(back.layers[0].W.data, model.layers[0].W.data * (weight_mask.T == 1))
    assert back.layers[0].b.mask is None and prune.is_pruned(back)


def test_keras_files_with_dropout_flatten_optimizer_and_float16_are_read(tmp_path):
    model = with_biases(MLP([6, 5, 3], seed=2))
    layers = {**keras_like(model), "dropout": [], "flatten": []}
    path = write_h5(tmp_path / "m.weights.h5", layers, extra_groups=("vars", "optimizer/vars"))
    assert np.array_equal(import_model(path)(inputs(model)), model(inputs(model)))
    half = {name: [v.astype(np.float16) for v in variables] for name, variables in keras_like(model).items()}
    back = import_model(write_h5(tmp_path / "half.weights.h5", half))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.layers[0].W.data, model.layers[0].W.data.astype(np.float16))


def test_keras_layers_are_ordered_by_their_number_not_alphabetically(tmp_path):
    sizes = [3] + [4] * 11 + [2]            # dense, dense_1, ..., dense_11, and "dense_10" < "dense_2"
    model = with_biases(MLP(sizes, seed=0))
    back = import_model(write_h5(tmp_path / "deep.weights.h5", keras_like(model)))
    assert back.sizes == sizes and np.array_equal(back(inputs(model)), model(inputs(model)))


# ------------------------------------------------------------------ bad input
def bad_torch(model):
    cases = {}
    t = torch_like(model)
    del t["2.bias"]
    cases["missing bias"] = (t, r"missing key '2.bias'")
    t = torch_like(model)
    t["2.weight"] = np.zeros((3, 5), np.float32)
    cases["wrong shape"] = (t, r"0.weight gives 4 outputs but 2.weight takes 5 inputs")
    t = torch_like(model)
    t["0.bias"] = np.zeros(7, np.float32)
    cases["bias shape"] = (t, r"0.bias has shape \(7,\); 0.weight needs a bias of shape \(4,\)")
    t = torch_like(model)
    t["2.weight"] = t["2.weight"].astype(np.int32)
    cases["integer dtype"] = (t, r"2.weight has dtype int32; expected floating-point")
    t = torch_like(model)
    t["0.weight"][1, 1] = np.nan
    cases["nan"] = (t, r"0.weight holds NaN or inf")
    t = torch_like(model)
    t["4.weight"] = np.zeros((2, 3, 3, 3), np.float32)
    t["4.bias"] = np.zeros(2, np.float32)
    cases["a convolution as an extra layer"] = (t, r"4.weight has shape \(2, 3, 3, 3\); expected 2 dim")
    t = torch_like(model)
    t["4.weight"] = np.zeros((2, 7), np.float32)
    t["4.bias"] = np.zeros(2, np.float32)
    cases["an extra layer that does not chain"] = (t, r"2.weight gives 3 outputs but 4.weight takes 7 inputs")
    t = torch_like(model)
    t["1.running_mean"] = np.zeros(4, np.float32)
    cases["batch norm"] = (t, r"unexpected key '1.running_mean'.*not an MLP")
    t = torch_like(model)
    t["model.4.weight"] = np.zeros((2, 3), np.float32)
    cases["a Linear without bias"] = (t, r"missing key 'model.4.bias'.*bias=False.*torch.zeros\(layer.out_")
    cases["no layers"] = ({}, "no linear layers found")
    t = torch_like(model)
    t["0.weight_mask"] = np.ones((4, 5), np.float32)
    cases["both plain and pruned"] = (t, r"both weight and weight_orig/weight_mask")
    return cases


@pytest.mark.parametrize("case", list(bad_torch(MLP([5, 4, 3], seed=0))))
def test_bad_safetensors_files_name_the_key(tmp_path, case):
    tensors, message = bad_torch(MLP([5, 4, 3], seed=0))[case]
    path = write_safetensors(tmp_path / "bad.safetensors", tensors)
    with pytest.raises(CheckpointError, match=message):
        import_model(path)


def bad_keras(model):
    cases = {}
    layers = keras_like(model)
    layers["dense_1"] = layers["dense_1"][:1]
    cases["missing bias"] = (layers, r"layers/dense_1/vars holds \['0'\]; expected '0'")
    layers = keras_like(model)
    layers["dense_1"] = [np.zeros((5, 3), np.float32), np.zeros(3, np.float32)]
    cases["wrong shape"] = (layers, r"layers/dense/vars/0 gives 4 outputs but layers/dense_1/vars/0 takes 5")
    layers = keras_like(model)
    layers["dense"] = [layers["dense"][0].astype(np.int8), layers["dense"][1]]
    cases["quantized"] = (layers, r"layers/dense/vars/0 has dtype int8; expected floating-point")
    layers = keras_like(model)
    layers["dense_1"][1] = np.full(3, np.inf, np.float32)
    cases["inf"] = (layers, r"layers/dense_1/vars/1 holds NaN or inf")
    layers = keras_like(model)
    layers["conv2d"] = [np.zeros((3, 3, 1, 2), np.float32), np.zeros(2, np.float32)]
    cases["not an MLP"] = (layers, r"layers/conv2d is not a Dense layer.*not an MLP")
    layers = keras_like(model)
    layers["dropout"] = [np.zeros(2, np.float32)]
    cases["dropout with weights"] = (layers, r"layers/dropout is not a Dense layer")
    layers = keras_like(model)
    layers["dense_2"] = [np.zeros((3, 2), np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32)]
    cases["an extra variable"] = (layers, r"layers/dense_2/vars holds \['0', '1', '2'\]")
    cases["no layers"] = ({}, "no 'layers' group")
    return cases


@pytest.mark.parametrize("case", list(bad_keras(MLP([5, 4, 3], seed=0))))
def test_bad_keras_weight_files_name_the_key(tmp_path, case):
    layers, message = bad_keras(MLP([5, 4, 3], seed=0))[case]
    path = write_h5(tmp_path / "bad.weights.h5", layers)
    with pytest.raises(CheckpointError, match=message):
        import_model(path)


def keras_archive(path, config, weights):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(class_name="Functional"), "layer 'dense' has no list of inbound_nodes"),
    (lambda c: c["config"]["layers"][2]["config"].update(activation="tanh"),
     "Dense layer 'dense_1' has activation 'tanh'"),
    (lambda c: c["config"]["layers"][3]["config"].update(activation="sigmoid"),
     "last Dense layer.*'sigmoid'"),
    (lambda c: c["config"]["layers"].insert(2, {"class_name": "BatchNormalization", "config": {}}),
     "layer 'layer 2' is a BatchNormalization"),
    (lambda c: c["config"]["layers"].pop(2), "layers/dense_2 is not a layer config.json describes"),
    (lambda c: c["config"]["layers"][1]["config"].update(use_bias=False), "Dense without bias"),
])
def test_bad_keras_archives_are_refused(tmp_path, change, message):
    model = MLP([5, 4, 3, 2], seed=0)
    good = export_model(tmp_path / "good.keras", model)
    with zipfile.ZipFile(good) as archive:
        config, weights = json.loads(archive.read("config.json")), archive.read("model.weights.h5")
    change(config)
    with pytest.raises(CheckpointError, match=message):
        import_model(keras_archive(tmp_path / "bad.keras", config, weights))


def test_foreign_bytes_are_refused_clearly(tmp_path):
    for name, content, message in [("x.safetensors", b"not a safetensors file", "not a readable safetensors"),
                                   ("x.weights.h5", b"\x89HDF but not really", "not a readable HDF5"),
                                   ("x.keras", b"PK\x03\x04 broken zip", "not a readable .keras"),
                                   ("y.keras", None, "without config.json and model.weights.h5")]:
        path = tmp_path / name
        if content is None:
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("other.txt", "hello")
        else:
            path.write_bytes(content)
        with pytest.raises(CheckpointError, match=message):
            import_model(path)
    with h5py.File(tmp_path / "keras2.h5", "w") as handle:
        handle.create_group("model_weights/dense/dense")         # Keras 2's layout
    with pytest.raises(CheckpointError, match="no 'layers' group.*Keras 2 files are not supported"):
        import_model(tmp_path / "keras2.h5")


def test_formats_and_missing_files(tmp_path):
    assert format_of("a.weights.h5") == format_of("b.KERAS") == "keras"
    with pytest.raises(ValueError, match="cannot tell the format of 'model.bin'"):
        format_of("model.bin")
    with pytest.raises(ValueError, match="unknown format 'onnx'"):
        export_model(tmp_path / "m.onnx", MLP([2, 2]), format="onnx")
    with pytest.raises(CheckpointError, match="no such model file"):
        import_model(tmp_path / "absent.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    model = MLP([3, 2], seed=0)
    model.layers[0].W.data[0, 0] = np.nan
    for suffix in (".safetensors", ".weights.h5", ".keras", ".npz"):
        with pytest.raises(ValueError, match="layers.0.W holds NaN or inf"):
            export_model(tmp_path / f"m{suffix}", model)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module, suffix", [("safetensors.numpy", ".safetensors"), ("h5py", ".weights.h5")])
def test_a_missing_format_library_gives_one_line_naming_the_extra(tmp_path, monkeypatch, module, suffix):
    written = export_model(tmp_path / f"m{suffix}", MLP([2, 2]))
    monkeypatch.setitem(sys.modules, module, None)                  # as if it were not installed
    with pytest.raises(ImportError, match=r"needs (safetensors|h5py): pip install 'tinyprune\[interop\]'"):
        import_model(written)
    if module == "h5py":
        with pytest.raises(ImportError, match=r"needs h5py: pip install 'tinyprune\[interop\]'"):
            export_model(tmp_path / f"other{suffix}", MLP([2, 2]))
        assert sorted(p.name for p in tmp_path.iterdir()) == [written.name]


def test_safetensors_are_written_by_the_library_and_read_back_whole(tmp_path):
    model = with_biases(MLP([5, 300, 3], seed=0))
    prune.magnitude(model, 0.5)
    plain = export_model(tmp_path / "plain.safetensors", model)
    masked = export_model(tmp_path / "masked.safetensors", model, masks=True)
    from tinyprune.interop import torch_state_dict

    for path, masks in ((plain, False), (masked, True)):
        tensors = safetensors_numpy.load_file(path)
        expected = torch_state_dict(model, masks=masks)
        assert sorted(tensors) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(tensors[key], value)
            assert tensors[key].dtype == value.dtype
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masked.safetensors", "plain.safetensors"]


def test_the_format_libraries_are_imported_lazily():
    import subprocess

    code = ("import sys, tinyprune; tinyprune.MLP([2, 2]);"
            "print(any(m.split('.')[0] in ('h5py', 'safetensors') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_fifo_is_refused_without_blocking(tmp_path):
    import os
    import threading

    os.mkfifo(tmp_path / "pipe.safetensors")
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(
        pytest.raises(CheckpointError, import_model, tmp_path / "pipe.safetensors")), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive() and "is a FIFO" in str(outcome[0].value)


# ------------------------------------------------------------------ masks in torch.nn.utils.prune's layout
def test_masks_travel_in_torch_prune_layout_and_come_back_exactly(tmp_path):
    model = with_biases(MLP(DOCUMENT_SIZES, seed=0))
    prune.magnitude(model, 0.9)
    model.layers[1].b.mask = np.arange(64) % 3 != 0              # a masked bias travels the same way
    model.layers[1].b.data[~model.layers[1].b.mask] = 0
    path = export_model(tmp_path / "m.safetensors", model, masks=True)
    tensors = safetensors_numpy.load_file(path)
    assert sorted(tensors) == ["0.bias", "0.weight_mask", "0.weight_orig", "2.bias_mask", "2.bias_orig",
                               "2.weight_mask", "2.weight_orig", "4.bias", "4.weight_mask", "4.weight_orig"]
    np.testing.assert_array_equal(tensors["2.weight_mask"], model.layers[1].W.mask.T.astype(np.float32))
    assert tensors["0.weight_mask"].dtype == tensors["0.weight_orig"].dtype == np.float32
    back = import_model(path)
    for p, q in zip(model.parameters(), back.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        assert (p.mask is None and q.mask is None) or np.array_equal(p.mask, q.mask)
    # without masks=True the plain layout, as before: zeros, no masks
    assert not prune.is_pruned(import_model(export_model(tmp_path / "plain.safetensors", model)))


def test_masks_of_a_dense_model_write_the_plain_layout(tmp_path):
    model = with_biases(MLP([5, 4, 3], seed=1))
    tensors = safetensors_numpy.load_file(export_model(tmp_path / "m.safetensors", model, masks=True))
    assert sorted(tensors) == ["0.bias", "0.weight", "2.bias", "2.weight"]


def test_masks_are_refused_for_keras_and_nothing_is_written(tmp_path):
    model = MLP([5, 4, 3], seed=1)
    prune.magnitude(model, 0.5)
    for name in ("m.weights.h5", "m.keras"):
        with pytest.raises(ValueError, match="masks: Keras"):
            export_model(tmp_path / name, model, masks=True)
    assert list(tmp_path.iterdir()) == []
