"""Real PyTorch models in and out (optional: skipped without torch and safetensors).

A user's own torch MLP, with any activation tinyprune has, saved with
``safetensors.torch.save_file(module.state_dict(), path)``: imported with ``--activation`` its logits are
torch's own (``module.eval()(x)``); without it the import says what it assumed (and the logits differ);
pruned to 90 % in tinyprune and exported, the user's module takes the file with ``strict=True`` and
gives tinyprune's logits. Both an ``nn.Sequential`` (Flatten first, Dropout between) and a module whose
``Linear`` layers are attributes (``encoder.input``, ``encoder.hidden``, ``head``).
"""

from __future__ import annotations

import numpy as np
import pytest

from tinyprune import checkpoint, prune
from tinyprune.cli import main

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
torch_prune = pytest.importorskip("torch.nn.utils.prune")
nn = torch.nn

#: tinyprune's activation name -> the torch module that computes it
ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
               "leaky_relu": nn.LeakyReLU}
SIZES = (12, 16, 16, 5)


def sequential(activation: str) -> nn.Module:
    """``Sequential(Flatten, Linear, act, Dropout, Linear, act, Linear)``: Linears at 1, 4, 6."""
    act = ACTIVATIONS[activation]
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), act(), nn.Dropout(0.3), nn.Linear(16, 16), act(),
                         nn.Linear(16, 5))


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(16, 16)          # defined first: the file's names do not say the order
        self.input = nn.Linear(12, 16)


class Attributes(nn.Module):
    """``encoder.input -> encoder.hidden -> head``, Dropout between: named by attribute, not by index."""

    def __init__(self, activation: str) -> None:
        super().__init__()
        self.encoder, self.head = Encoder(), nn.Linear(16, 5)
        self.act, self.drop = ACTIVATIONS[activation](), nn.Dropout(0.3)

    def forward(self, x):
        x = self.drop(self.act(self.encoder.input(x.flatten(1))))
        return self.head(self.act(self.encoder.hidden(x)))


BUILDERS = {"sequential": sequential, "attributes": Attributes}
X = torch.from_numpy(np.random.default_rng(0).normal(size=(64, 3, 4)).astype(np.float32))


def trained(builder: str, activation: str, seed: int = 0) -> nn.Module:
    """The module after 30 Adam steps on a random task (so that biases and weights are not torch's init)."""
    torch.manual_seed(seed)
    module = BUILDERS[builder](activation)
    y = torch.randint(0, 5, (64,), generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        nn.functional.cross_entropy(module(X), y).backward()
        optimizer.step()
    return module.eval()


def torch_logits(module: nn.Module) -> np.ndarray:
    with torch.no_grad():
        return module.eval()(X).numpy()


@pytest.mark.parametrize("builder", sorted(BUILDERS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_a_torch_model_comes_in_with_torchs_logits_and_goes_back_pruned(tmp_path, capsys, builder,
                                                                        activation):
    module = trained(builder, activation)
    source, imported = tmp_path / "user.safetensors", tmp_path / "imported.npz"
    safetensors_torch.save_file(module.state_dict(), str(source))
    assert main(["import", str(source), "--out", str(imported), "--activation", activation]) == 0
    assert "assumed" not in capsys.readouterr().out
    restored = checkpoint.load(imported)
    x = X.numpy().reshape(len(X), -1)
    difference = float(np.abs(restored.model(x) - torch_logits(module)).max())
    print(f"{builder} {activation}: import, max |tinyprune - torch| logit {difference:.1e}")
    assert difference <= 1e-4
    model = restored.model
    prune.magnitude(model, 0.9)
    pruned = checkpoint.save(tmp_path / "pruned.npz", model, meta=restored.meta)
    out = tmp_path / "back.safetensors"
    assert main(["export", str(pruned), "--out", str(out)]) == 0
    mine = BUILDERS[builder](activation)
    mine.load_state_dict(safetensors_torch.load_file(str(out)), strict=True)
    difference = float(np.abs(torch_logits(mine) - model(x)).max())
    print(f"{builder} {activation}: pruned 90 %, max |torch - tinyprune| logit {difference:.1e}")
    assert difference <= 1e-5
    zeros = sum(int((p == 0).sum()) for name, p in mine.named_parameters() if name.endswith("weight"))
    assert zeros == round(0.9 * sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:])))


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_without_activation_the_assumption_is_printed_and_the_logits_differ(tmp_path, capsys, builder):
    module = trained(builder, "tanh")
    source, imported = tmp_path / "user.safetensors", tmp_path / "imported.npz"
    safetensors_torch.save_file(module.state_dict(), str(source))
    assert main(["import", str(source), "--out", str(imported)]) == 0
    said = capsys.readouterr().out
    assert "assumed relu: a weights-only file does not say; pass --activation" in said
    restored = checkpoint.load(imported)
    assert restored.meta["activation_assumed"] is True
    x = X.numpy().reshape(len(X), -1)
    assert float(np.abs(restored.model(x) - torch_logits(module)).max()) > 0.1
    if builder == "attributes":          # hidden is defined before input: the shapes settle the order
        assert "layers ordered by their shapes (the one order that chains): encoder.input, encoder.hidden, " \
               "head" in said


def test_run_dense_prunes_a_torch_tanh_model_and_the_module_takes_it_back(tmp_path, capsys):
    torch.manual_seed(0)

    class Net(nn.Module):                    # attribute names, Flatten and Dropout in forward
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.out = nn.Linear(784, 32), nn.Linear(32, 32), nn.Linear(32, 10)

        def forward(self, x):
            x = nn.functional.dropout(torch.tanh(self.fc1(x.flatten(1))), 0.2, self.training)
            return self.out(torch.tanh(self.fc2(x)))

    source, imported, run = tmp_path / "net.safetensors", tmp_path / "imported.npz", tmp_path / "run"
    safetensors_torch.save_file(Net().state_dict(), str(source))
    assert main(["import", str(source), "--out", str(imported), "--activation", "tanh"]) == 0
    assert main(["run", "--dense", str(imported), "--recipe", "document", "--budget-epochs", "1",
                 "--no-progress", "--no-figures", "--out", str(run)]) == 0
    model = checkpoint.load(run / "pruned.npz").model
    assert model.activation == "tanh"
    x = np.random.default_rng(1).normal(size=(32, 784)).astype(np.float32)
    for flags in ([], ["--masks"]):
        out = tmp_path / f"pruned{len(flags)}.safetensors"
        assert main(["export", str(run / "pruned.npz"), "--out", str(out), *flags]) == 0
        state = safetensors_torch.load_file(str(out))
        mine = Net().eval()
        for key, mask in state.items():                       # the README's load_pruned_state
            if key.endswith("_mask"):
                owner, _, name = key[: -len("_mask")].rpartition(".")
                torch_prune.custom_from_mask(mine.get_submodule(owner), name, mask)
        mine.load_state_dict(state, strict=True)
        with torch.no_grad():
            difference = float(np.abs(mine(torch.from_numpy(x)).numpy() - model(x)).max())
        assert difference <= 1e-5
    assert sorted(state) == sorted(f"{m}.{k}" for m in ("fc1", "fc2", "out")
                                   for k in ("weight_orig", "weight_mask", "bias"))


def test_a_bias_free_layer_and_a_torch_save_file_are_refused_with_the_fix(tmp_path, capsys):
    model = nn.Sequential(nn.Linear(12, 8, bias=False), nn.ReLU(), nn.Linear(8, 3))
    safetensors_torch.save_file(model.state_dict(), str(tmp_path / "nobias.safetensors"))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    (tmp_path / "renamed.safetensors").write_bytes((tmp_path / "model.pt").read_bytes())
    fixes = {"nobias.safetensors": "0 has no bias (missing key '0.bias'; it has ['0.weight']); a Linear "
                                   "without bias (bias=False) is not supported: save zero biases with it",
             "model.pt": "is a torch.save file (a pickle, which can run code when loaded: tinyprune reads "
                         "none); save the state dict as safetensors instead: from safetensors.torch import "
                         "save_file; save_file(model.state_dict(), \"model.safetensors\")",
             "renamed.safetensors": "it looks like a torch.save file: save the state dict as safetensors"}
    for name, fix in fixes.items():
        assert main(["import", str(tmp_path / name), "--out", str(tmp_path / "m.npz")]) == 2
        err = capsys.readouterr().err
        assert fix in err and err.count("\n") == 1, err
        assert not (tmp_path / "m.npz").exists()
