"""``tinyprune export`` and ``tinyprune import``: formats, compaction, the printed table, bad input."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from tinyprune import checkpoint, interop, metrics, prune
from tinyprune.cli import main
from tinyprune.core.nn import MLP

pytest.importorskip("h5py")
# these files are ReLU models read without activation=: the assumption's warning is expected here
pytestmark = pytest.mark.filterwarnings("ignore:assumed relu:UserWarning")
pytest.importorskip("safetensors")


@pytest.fixture
def pruned_checkpoint(tmp_path):
    model = MLP([20, 8, 6, 3], seed=0)
    prune.neurons(model, 0.5, scope="layer")                  # whole neurons: compaction removes them
    return checkpoint.save(tmp_path / "pruned.npz", model, meta={"dataset": "toy"}), model


def logits(model):
    return model(np.random.default_rng(0).normal(size=(5, model.sizes[0])).astype(np.float32))


def table(text):
    """``{"before": [...], "after": [...]}``: the numbers of the printed rows."""
    rows = {}
    for line in text.splitlines():
        if line.startswith(("before", "after")):
            label, rest = line.split(maxsplit=1)
            numbers = rest.split("]")[1].split()
            rows[label] = [int(n.replace(",", "")) for n in numbers]
    return rows


@pytest.mark.parametrize("name, kind", [("m.safetensors", "safetensors"), ("m.weights.h5", "keras"),
                                        ("m.keras", "keras"), ("m.npz", "npz")])
def test_export_then_import_gives_back_the_same_function(tmp_path, capsys, pruned_checkpoint, name, kind):
    source, model = pruned_checkpoint
    out = tmp_path / name
    assert main(["export", str(source), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out} ({kind})" in text
    rows = table(text)
    expected = [metrics.count_parameters(model), metrics.count_nonzeros(model), metrics.flops(model),
                metrics.flops(model, effective=True), source.stat().st_size]
    assert rows["before"] == expected
    assert rows["after"][:4] == rows["before"][:4] and rows["after"][4] == out.stat().st_size

    back = tmp_path / "back.npz"
    assert main(["import", str(out), "--out", str(back)]) == 0
    text = capsys.readouterr().out
    assert f"read {out} ({kind})" in text and f"wrote {back}" in text
    restored = checkpoint.load(back)
    layout = {"torch_layout": ["0", "2", "4"], "layer_order": "index"} if kind == "safetensors" else {}
    assert restored.meta == {"imported_from": str(out), "format": kind,
                             "activation_assumed": name.endswith((".safetensors", ".weights.h5")), **layout}
    np.testing.assert_array_equal(logits(restored.model), logits(model))


def test_export_compact_removes_the_pruned_neurons_and_keeps_the_outputs(tmp_path, capsys, pruned_checkpoint):
    source, model = pruned_checkpoint
    out = tmp_path / "small.safetensors"
    assert main(["export", str(source), "--out", str(out), "--compact"]) == 0
    rows = table(capsys.readouterr().out)
    small = prune.compact(model)
    assert small.sizes == [20, 4, 3, 3]
    assert rows["after"][:3] == [metrics.count_parameters(small), metrics.count_nonzeros(small),
                                 metrics.flops(small)]
    assert rows["after"][2] < rows["before"][2] and rows["after"][0] < rows["before"][0]
    back = interop.import_model(out)
    assert back.sizes == [20, 4, 3, 3]
    np.testing.assert_allclose(logits(back), logits(model), rtol=1e-5, atol=1e-6)


def test_export_npz_keeps_masks_and_meta(tmp_path, capsys, pruned_checkpoint):
    source, model = pruned_checkpoint
    assert main(["export", str(source), "--out", str(tmp_path / "copy.bin"), "--format", "npz"]) == 0
    restored = checkpoint.load(tmp_path / "copy.bin")
    assert restored.meta == {"dataset": "toy", "exported_from": str(source), "compacted": False}
    assert prune.is_pruned(restored.model)
    for p, q in zip(model.parameters(), restored.model.parameters()):
        assert np.array_equal(p.mask, q.mask)


def test_format_flag_overrides_the_extension(tmp_path, pruned_checkpoint):
    source, model = pruned_checkpoint
    out = tmp_path / "weights.bin"                   # Keras 3 loads no such name: written as .weights.h5
    assert main(["export", str(source), "--out", str(tmp_path / "w.weights.h5"), "--format", "keras"]) == 0
    out.write_bytes((tmp_path / "w.weights.h5").read_bytes())
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"                # an HDF5 file
    assert main(["import", str(out), "--format", "keras", "--out", str(tmp_path / "b.npz")]) == 0
    np.testing.assert_array_equal(logits(checkpoint.load(tmp_path / "b.npz").model), logits(model))


def test_existing_outputs_are_not_replaced_unless_asked(tmp_path, capsys, pruned_checkpoint):
    source, _ = pruned_checkpoint
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"precious")
    assert main(["export", str(source), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert main(["export", str(source), "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != b"precious"
    target = tmp_path / "t.npz"
    target.write_bytes(b"precious")
    assert main(["import", str(out), "--out", str(target)]) == 2
    assert target.read_bytes() == b"precious"
    assert main(["import", str(out), "--out", str(target), "--overwrite"]) == 0


def bad_keras_file(path):
    model = MLP([4, 3, 2], seed=0)
    interop.export_model(path, model)
    with zipfile.ZipFile(path) as archive:
        config, weights = json.loads(archive.read("config.json")), archive.read("model.weights.h5")
    config["config"]["layers"][1]["config"]["activation"] = "gelu"      # the erf GELU: not representable
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    return path


def garbage(path):
    path.write_bytes(b"garbage")


@pytest.mark.parametrize("name, make, message", [
    ("in.safetensors", garbage, "not a readable safetensors file"),
    ("in.keras", bad_keras_file, "activation 'gelu'"),
    ("in.weights.h5", lambda path: None, "no such model file"),
])
def test_bad_import_files_fail_with_one_line_and_write_nothing(tmp_path, capsys, name, make, message):
    source = tmp_path / name
    make(source)
    out = tmp_path / "out.npz"
    assert main(["import", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temporary either


@pytest.mark.parametrize("argv, message", [
    (["export", "{ckpt}", "--out", "{tmp}/m.onnx"], "cannot tell the format"),
    (["export", "{tmp}/absent.npz", "--out", "{tmp}/m.npz"], "no such checkpoint file"),
    (["export", "{ckpt}", "--out", "{tmp}/no/such/folder/m.npz"], "does not exist"),
    (["export", "{ckpt}", "--out", "/dev/null", "--format", "npz", "--overwrite"], "is a device"),
    (["import", "{tmp}/x.bin", "--out", "{tmp}/m.npz"], "cannot tell the format"),
    (["export", "{ckpt}", "--out", "{tmp}/m.npz", "--format", "onnx"], "invalid choice: 'onnx'"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, pruned_checkpoint, argv, message):
    argv = [a.format(ckpt=pruned_checkpoint[0], tmp=tmp_path) for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_missing_format_library_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch,
                                                             pruned_checkpoint):
    import sys

    assert main(["export", str(pruned_checkpoint[0]), "--out", str(tmp_path / "m.safetensors")]) == 0
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    assert main(["import", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'tinyprune[interop]'" in err and err.count("\n") == 1
    assert not (tmp_path / "m.npz").exists()


def test_export_masks_to_safetensors_and_import_them_back(pruned_checkpoint, tmp_path, capsys):
    path, model = pruned_checkpoint
    out, back = tmp_path / "pruned.safetensors", tmp_path / "back.npz"
    assert main(["export", str(path), "--masks", "--out", str(out)]) == 0
    from safetensors.numpy import load_file

    assert {"0.weight_orig", "0.weight_mask"} <= set(load_file(out))
    assert main(["import", str(out), "--out", str(back)]) == 0
    restored = checkpoint.load(back).model
    for p, q in zip(model.parameters(), restored.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        assert (p.mask is None) == (q.mask is None) and (p.mask is None or np.array_equal(p.mask, q.mask))


@pytest.mark.parametrize("name", ["m.keras", "m.weights.h5"])
def test_export_masks_to_keras_is_refused_before_any_work(pruned_checkpoint, tmp_path, capsys, name):
    path, _ = pruned_checkpoint
    assert main(["export", str(path), "--masks", "--out", str(tmp_path / name)]) == 2
    assert "--masks: Keras weight files have no place for masks" in capsys.readouterr().err
    assert not (tmp_path / name).exists()
