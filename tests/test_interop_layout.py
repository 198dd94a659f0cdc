"""Back into the user's own module: safetensors key names recorded on import, written back on export.

A user's ``nn.Sequential(Flatten(), Linear, ReLU, Dropout, Linear, ...)`` under an attribute ``net`` has its
``Linear`` layers at ``net.1``, ``net.4``, ``net.7``; ``load_state_dict(strict=True)`` takes only those names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from tinyprune import checkpoint, prune
from tinyprune.cli import main
from tinyprune.core.nn import MLP
from tinyprune.errors import CheckpointError
from tinyprune.interop import (
    check_layout,
    export_model,
    import_model,
    read_torch_layout,
    torch_layout,
    torch_order,
)

safetensors_numpy = pytest.importorskip("safetensors.numpy")
pytestmark = pytest.mark.filterwarnings("ignore:assumed relu:UserWarning")

USER_LAYOUT = ["net.1", "net.4", "net.7"]       # Flatten at net.0, ReLU + Dropout between the Linears


def user_state(sizes=(12, 7, 5, 3), layout=USER_LAYOUT, seed=0):
    """The state dict the user's own module saves: ``(out, in)`` weights, nonzero biases, their names."""
    generator = np.random.default_rng(seed)
    state = {}
    for module, (fan_in, fan_out) in zip(layout, zip(sizes[:-1], sizes[1:])):
        state[f"{module}.weight"] = generator.normal(size=(fan_out, fan_in)).astype(np.float32)
        state[f"{module}.bias"] = generator.normal(0, 0.1, size=fan_out).astype(np.float32)
    return state


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user.safetensors"
    safetensors_numpy.save_file(user_state(), str(path), metadata={"format": "pt"})
    return path


def keys_and_values(path):
    return {key: value for key, value in safetensors_numpy.load_file(str(path)).items()}


def assert_same_state(left, right):
    assert sorted(left) == sorted(right)
    for key in left:
        np.testing.assert_array_equal(left[key], right[key], err_msg=key)


# ------------------------------------------------------------------ the API
def test_the_layout_of_a_flatten_first_dropout_prefixed_module_is_read_in_order(user_file):
    assert read_torch_layout(user_file) == USER_LAYOUT
    model = import_model(user_file, activation="relu")
    assert model.sizes == [12, 7, 5, 3]
    state = user_state()
    x = np.random.default_rng(1).normal(size=(4, 12)).astype(np.float32)
    expected = x
    for index, module in enumerate(USER_LAYOUT):
        expected = expected @ state[f"{module}.weight"].T + state[f"{module}.bias"]
        expected = np.maximum(expected, 0) if index < 2 else expected
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)


def test_export_with_the_layout_gives_back_the_users_keys_and_values(user_file, tmp_path):
    model = import_model(user_file, activation="relu")
    out = export_model(tmp_path / "back.safetensors", model, layout=read_torch_layout(user_file))
    assert_same_state(keys_and_values(out), keys_and_values(user_file))
    like = export_model(tmp_path / "like.safetensors", model, like=user_file)
    assert_same_state(keys_and_values(like), keys_and_values(user_file))


def test_masks_use_the_users_names_for_weights_and_pruned_biases(user_file, tmp_path):
    model = import_model(user_file, activation="relu")
    prune.neurons(model, 0.5, scope="layer")                 # whole units: their biases are masked too
    out = export_model(tmp_path / "masked.safetensors", model, masks=True, like=user_file)
    keys = set(keys_and_values(out))
    assert {"net.1.weight_orig", "net.1.weight_mask", "net.1.bias_orig", "net.1.bias_mask"} <= keys
    assert not any(key.startswith(("0.", "2.", "4.")) for key in keys)
    back = import_model(out, activation="relu")
    for ours, theirs in zip(model.parameters(), back.parameters()):
        np.testing.assert_array_equal(ours.data, theirs.data)
        assert (ours.mask is None) == (theirs.mask is None)
        assert ours.mask is None or np.array_equal(ours.mask, theirs.mask)


@pytest.mark.parametrize("sizes, layout, message", [
    ((12, 7, 3), ["net.1", "net.4"], "has 2 Linear layers (net.1, net.4); the model [12, 7, 5, 3] has 3"),
    ((12, 8, 5, 3), USER_LAYOUT, "net.1.weight has shape (8, 12); the model's layer there needs (out, in) = "
                                 "(7, 12)"),
])
def test_a_like_file_that_does_not_fit_is_refused_and_nothing_is_written(tmp_path, user_file, sizes, layout,
                                                                        message):
    other = tmp_path / "other.safetensors"
    safetensors_numpy.save_file(user_state(sizes, layout), str(other))
    model = import_model(user_file, activation="relu")
    with pytest.raises(CheckpointError, match="does not fit") as refusal:
        export_model(tmp_path / "out.safetensors", model, like=other)
    assert message in str(refusal.value)
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("layout, message", [
    (["net.1", "net.4"], "names 2 Linear layers (net.1, net.4); the model [4, 3, 2, 2] has 3"),
    (["net.4", "net.1", "net.7"], "'net.1' after 'net.4'; expected increasing indices"),
    (["net.1", "net..4", "net.7"], "'net..4' is not a module name"),
    (["fc1", "fc1", "out"], "fc1 named twice"),
    ("net.1", "is not a list of module names"),
])
def test_a_layout_that_would_not_read_back_in_order_is_refused(tmp_path, layout, message):
    with pytest.raises(CheckpointError) as refusal:
        export_model(tmp_path / "m.safetensors", MLP([4, 3, 2, 2]), layout=layout)
    assert message in str(refusal.value)
    assert not (tmp_path / "m.safetensors").exists()
    assert check_layout(MLP([4, 3, 2, 2])) == ["0", "2", "4"]


def test_two_modules_with_one_index_are_refused():
    state = user_state((4, 3, 2), ["net.1", "net.01"])
    with pytest.raises(CheckpointError, match="'net.1' and 'net.01' both have index 1"):
        torch_layout(state)


def test_layout_and_like_are_for_safetensors_only(tmp_path, user_file):
    with pytest.raises(ValueError, match="only a safetensors file has them, not keras"):
        export_model(tmp_path / "m.weights.h5", MLP([12, 7, 5, 3]), like=user_file)
    with pytest.raises(ValueError, match="not both"):
        export_model(tmp_path / "m.safetensors", MLP([12, 7, 5, 3]), like=user_file, layout=USER_LAYOUT)


# ------------------------------------------------------------------ the commands
def test_import_records_the_layout_and_export_writes_it_back(tmp_path, capsys, user_file):
    imported, out = tmp_path / "imported.npz", tmp_path / "back.safetensors"
    assert main(["import", str(user_file), "--out", str(imported), "--activation", "relu"]) == 0
    assert checkpoint.load(imported).meta["torch_layout"] == USER_LAYOUT
    assert main(["export", str(imported), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"Linear layers named net.1, net.4, net.7 (as recorded from {user_file})" in said
    assert_same_state(keys_and_values(out), keys_and_values(user_file))


def test_export_like_names_a_checkpoint_without_a_record(tmp_path, capsys, user_file):
    model = import_model(user_file, activation="relu")
    prune.magnitude(model, 0.5)
    pruned = checkpoint.save(tmp_path / "pruned.npz", model, meta={"report": "report.json"})  # as run writes
    out = tmp_path / "pruned.safetensors"
    assert main(["export", str(pruned), "--out", str(out), "--masks", "--like", str(user_file)]) == 0
    assert f"(as in {user_file})" in capsys.readouterr().out
    assert {key.rsplit(".", 1)[0] for key in keys_and_values(out)} == set(USER_LAYOUT)
    assert "net.4.weight_mask" in keys_and_values(out)


@pytest.mark.parametrize("argv, message", [
    (["--like", "{other}"], "{other}: net.1.weight has shape (8, 12); the model's layer there needs"),
    (["--like", "{user}", "--format", "npz"], "--like names PyTorch's keys: it applies to a .safetensors"),
    (["--like", "{tmp}/absent.safetensors"], "absent.safetensors"),
])
def test_export_refuses_a_layout_that_does_not_fit_and_writes_nothing(tmp_path, capsys, user_file, argv,
                                                                      message):
    other = tmp_path / "other.safetensors"
    safetensors_numpy.save_file(user_state((12, 8, 5, 3)), str(other))
    source = checkpoint.save(tmp_path / "m.npz", import_model(user_file, activation="relu"))
    argv = [a.format(other=other, user=user_file, tmp=tmp_path) for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["export", str(source), "--out", str(tmp_path / "out.safetensors"), *argv]) == 2
    err = capsys.readouterr().err
    assert message.format(other=other) in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_hand_edited_layout_record_is_refused_naming_it(tmp_path, capsys, user_file):
    source = checkpoint.save(tmp_path / "m.npz", import_model(user_file, activation="relu"),
                             meta={"torch_layout": ["net.1", "net.4"]})
    assert main(["export", str(source), "--out", str(tmp_path / "out.safetensors")]) == 2
    assert "meta['torch_layout']: names 2 Linear layers" in capsys.readouterr().err
    assert not (tmp_path / "out.safetensors").exists()


# ------------------------------------------------------------------ real torch (optional: skipped without it)
def readme_recipe() -> str:
    """The README's ``load_pruned_state`` (a ```text block: the README's python blocks run without torch)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [block for block in re.findall(r"```text\n(.*?)```", readme, flags=re.S)
              if "def load_pruned_state(module, path):" in block]
    assert len(blocks) == 1, "the README shows load_pruned_state once"
    return blocks[0]


def test_the_readme_recipe_is_python_that_loads_masks_before_the_strict_load():
    tree = ast.parse(readme_recipe())
    calls = {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute)}
    assert {"custom_from_mask", "get_submodule", "load_state_dict"} <= calls


def test_the_users_own_torch_module_takes_both_exports_strictly(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    class UserModel(torch.nn.Module):                # Flatten first, Dropout between, under an attribute
        def __init__(self):
            super().__init__()
            layers = [torch.nn.Flatten()]
            for fan_in, fan_out in ((12, 7), (7, 5)):
                layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU(), torch.nn.Dropout(0.2)]
            self.net = torch.nn.Sequential(*layers, torch.nn.Linear(5, 3))

        def forward(self, x):
            return self.net(x)

    namespace: dict = {}
    exec(readme_recipe(), namespace)                    # the README's own code, run as the reader runs it
    load_pruned_state = namespace["load_pruned_state"]
    torch.manual_seed(0)
    user, imported = tmp_path / "user.safetensors", tmp_path / "imported.npz"
    save_file(UserModel().state_dict(), str(user))
    assert main(["import", str(user), "--out", str(imported), "--activation", "relu"]) == 0
    restored = checkpoint.load(imported)
    model = restored.model
    prune.neurons(model, 0.4, scope="layer")            # masked biases, the case identity() alone misses
    prune.magnitude(model, 0.5)
    pruned = checkpoint.save(tmp_path / "pruned.npz", model, meta=restored.meta)
    x = np.random.default_rng(0).normal(size=(16, 3, 4)).astype(np.float32)
    expected = model(x.reshape(16, 12))
    for flags in ([], ["--masks"]):
        out = tmp_path / f"out{len(flags)}.safetensors"
        assert main(["export", str(pruned), "--out", str(out), *flags]) == 0
        mine = UserModel().eval()
        load_pruned_state(mine, str(out))              # no mask keys: a plain strict load_state_dict
        with torch.no_grad():
            logits = mine(torch.from_numpy(x)).numpy()
        difference = float(np.abs(logits - expected).max())
        print(f"export {' '.join(flags) or '(plain)'}: max |torch - tinyprune| logit {difference:.2e}")
        assert difference < 1e-5
    assert torch.equal(mine.net[1].bias == 0, torch.from_numpy(~model.layers[0].b.mask))   # biases pruned
    optimizer = torch.optim.SGD(mine.parameters(), lr=0.1)
    mine.train()
    mine(torch.from_numpy(x)).square().mean().backward()
    optimizer.step()
    assert torch.equal(mine.net[4].weight == 0, torch.from_numpy(~model.layers[1].W.mask.T))  # masks hold


def test_run_dense_carries_the_layout_into_the_pruned_checkpoint(tmp_path, capsys):
    source = tmp_path / "user784.safetensors"
    safetensors_numpy.save_file(user_state(sizes=(784, 16, 10), layout=["net.1", "net.4"]), str(source),
                                metadata={"format": "pt"})
    imported, run, out = tmp_path / "imported.npz", tmp_path / "run", tmp_path / "pruned.safetensors"
    assert main(["import", str(source), "--out", str(imported), "--activation", "relu"]) == 0
    assert main(["run", "--dense", str(imported), "--recipe", "document", "--budget-epochs", "1",
                 "--no-progress", "--no-figures", "--out", str(run)]) == 0
    assert checkpoint.load(run / "pruned.npz").meta["torch_layout"] == ["net.1", "net.4"]
    assert main(["export", str(run / "pruned.npz"), "--out", str(out), "--masks"]) == 0
    assert {key.rsplit(".", 1)[0] for key in keys_and_values(out)} == {"net.1", "net.4"}


# ------------------------------------------------------------------ attribute names (Net: fc1, fc2, out)
def attribute_state(shapes: dict, seed=0):
    """A state dict of ``Linear`` modules named by attribute, ``shapes[name] = (out, in)``."""
    generator = np.random.default_rng(seed)
    state = {}
    for module, (fan_out, fan_in) in shapes.items():
        state[f"{module}.weight"] = generator.normal(size=(fan_out, fan_in)).astype(np.float32)
        state[f"{module}.bias"] = generator.normal(0, 0.1, size=fan_out).astype(np.float32)
    return state


def save_state(path, state):
    safetensors_numpy.save_file(state, str(path), metadata={"format": "pt"})
    return path


def relu_logits(state, order, x):
    for index, module in enumerate(order):
        x = x @ state[f"{module}.weight"].T + state[f"{module}.bias"]
        x = np.maximum(x, 0) if index < len(order) - 1 else x
    return x


X12 = np.random.default_rng(5).normal(size=(6, 12)).astype(np.float32)
SQUARE = {"out": (3, 16), "fc10": (16, 16), "fc2": (16, 16), "fc1": (16, 12)}    # written out of order


@pytest.mark.parametrize("shapes, order, how, said", [
    ({"out": (3, 8), "fc2": (8, 9), "fc1": (9, 12)}, ["fc1", "fc2", "out"], "chain", None),
    ({"a_out": (3, 9), "b_in": (9, 12)}, ["b_in", "a_out"], "shapes",
     "layers ordered by their shapes (the one order that chains): b_in, a_out"),
    (SQUARE, ["fc1", "fc2", "fc10", "out"], "name",
     "layers ordered by name: fc1, fc2, fc10, out; pass --layers to state it (API: layers=)"),
    ({"encoder.hidden": (8, 8), "encoder.input": (8, 12), "head": (3, 8)},
     ["encoder.input", "encoder.hidden", "head"], "shapes",
     "layers ordered by their shapes (the one order that chains): encoder.input, encoder.hidden, head"),
])
def test_attribute_named_layers_are_ordered_by_the_one_chain_or_by_name(tmp_path, capsys, shapes, order, how,
                                                                      said):
    state = attribute_state(shapes)
    source, imported, out = save_state(tmp_path / "net.safetensors", state), tmp_path / "m.npz", \
        tmp_path / "back.safetensors"
    assert main(["import", str(source), "--out", str(imported), "--activation", "relu"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("layers ordered")]
    assert printed == ([said] if said else [])
    restored = checkpoint.load(imported)
    assert restored.meta["torch_layout"] == order and restored.meta["layer_order"] == how
    np.testing.assert_allclose(restored.model(X12), relu_logits(state, order, X12), rtol=1e-5, atol=1e-5)
    assert main(["export", str(imported), "--out", str(out)]) == 0
    assert_same_state(keys_and_values(out), state)         # the user's own keys: load_state_dict(strict=True)
    back = import_model(out, activation="relu")             # the order travels in the file's metadata
    np.testing.assert_array_equal(back(X12), restored.model(X12))


def test_the_api_warns_when_it_orders_by_name_and_layers_states_the_order(tmp_path):
    source = save_state(tmp_path / "net.safetensors", attribute_state(SQUARE))
    with pytest.warns(UserWarning, match="layers ordered by name: fc1, fc2, fc10, out"):
        by_name = import_model(source, activation="relu")
    stated = ["fc1", "fc10", "fc2", "out"]                   # the other order that chains
    model = import_model(source, activation="relu", layers=stated)
    np.testing.assert_allclose(model(X12), relu_logits(attribute_state(SQUARE), stated, X12), rtol=1e-5,
                               atol=1e-5)
    assert not np.allclose(model(X12), by_name(X12))
    assert import_model(source, activation="relu", layers="fc1,fc10,fc2,out").sizes == model.sizes


def test_a_stated_order_is_recorded_and_written_back_for_the_next_import(tmp_path, capsys):
    source = save_state(tmp_path / "net.safetensors", attribute_state(SQUARE))
    imported, out = tmp_path / "m.npz", tmp_path / "back.safetensors"
    assert main(["import", str(source), "--out", str(imported), "--activation", "relu",
                 "--layers", "fc1,fc10,fc2,out"]) == 0
    assert "layers ordered" not in capsys.readouterr().out
    restored = checkpoint.load(imported)
    assert restored.meta["torch_layout"] == ["fc1", "fc10", "fc2", "out"]
    assert restored.meta["layer_order"] == "stated"
    assert main(["export", str(imported), "--out", str(out)]) == 0
    assert read_torch_layout(out) == ["fc1", "fc10", "fc2", "out"]           # from the file's metadata
    np.testing.assert_array_equal(import_model(out, activation="relu")(X12), restored.model(X12))


@pytest.mark.parametrize("shapes, argv, message", [
    ({"first": (16, 12), "second": (16, 16), "third": (16, 16), "last": (3, 16)}, [],
     "chain in several orders (such as first, second, third, last and first, third, second, last), and "
     "their names' order does not; state it with --layers"),
    ({"fc1": (9, 12), "fc2": (7, 8), "out": (3, 7)}, [],
     "the Linear modules fc1 (out, in) = (9, 12), fc2 (out, in) = (7, 8), out (out, in) = (3, 7) chain in "
     "no order"),
    ({"fc1": (9, 12), "out": (3, 9)}, ["--layers", "fc1,head"],
     "layers names fc1, head; the file's Linear modules are fc1, out"),
    ({"fc1": (9, 12), "out": (3, 9)}, ["--layers", "out,fc1"],
     "out.weight gives 3 outputs but fc1.weight takes 12"),
    ({"fc1": (9, 12), "out": (3, 9)}, ["--layers", "fc1,fc1"], "fc1 named twice"),
])
def test_an_order_that_cannot_be_told_is_refused_naming_the_modules(tmp_path, capsys, shapes, argv, message):
    source = save_state(tmp_path / "net.safetensors", attribute_state(shapes))
    out = tmp_path / "m.npz"
    assert main(["import", str(source), "--out", str(out), "--activation", "relu", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_ten_square_layers_are_ordered_without_trying_every_order(tmp_path):
    shapes = {"layer1": (8, 12), **{f"layer{i}": (8, 8) for i in range(2, 12)}, "layer12": (3, 8)}
    order = torch_order(attribute_state(dict(reversed(shapes.items()))))
    assert order.how == "name" and order.modules == list(shapes)        # layer2 ... layer12 numerically
    del shapes["layer1"]                                                 # ten square layers lead: no chain
    with pytest.raises(CheckpointError, match="chain in several orders .* and their names' order does not"):
        torch_order(attribute_state({"start": (8, 12), **shapes}))


def test_layers_is_refused_for_a_file_that_has_its_own_order(tmp_path, capsys):
    path = export_model(tmp_path / "source.npz", MLP([4, 3, 2]))
    assert main(["import", str(path), "--out", str(tmp_path / "m.npz"), "--layers", "a,b"]) == 2
    assert "--layers orders a safetensors file's Linear modules" in capsys.readouterr().err


def test_export_like_a_file_whose_order_is_assumed_by_name_says_so(tmp_path, capsys):
    source = save_state(tmp_path / "net.safetensors", attribute_state(SQUARE))
    model = import_model(source, activation="relu", layers="fc1,fc2,fc10,out")
    bare = checkpoint.save(tmp_path / "bare.npz", model)                 # no torch_layout record
    assert main(["export", str(bare), "--out", str(tmp_path / "out.safetensors"), "--like", str(source)]) == 0
    assert (f"Linear layers named fc1, fc2, fc10, out (as in {source}; layers ordered by name: fc1, fc2, "
            "fc10, out; pass --layers") in capsys.readouterr().out
    with pytest.warns(UserWarning, match="layers ordered by name"):
        export_model(tmp_path / "api.safetensors", model, like=source)
