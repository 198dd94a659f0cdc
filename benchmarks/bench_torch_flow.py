"""A PyTorch user's flow, measured end to end: a tanh MLP trained in torch comes in, is pruned to 90 % by
``tinyprune run --dense``, and goes back into the user's own module.

Needs torch 2.13 and safetensors (not dependencies of tinyprune: a side venv, e.g.
``python3 -m venv /tmp/torch-fw && /tmp/torch-fw/bin/pip install torch==2.13.0 safetensors numpy &&
/tmp/torch-fw/bin/pip install -e .``), then ``/tmp/torch-fw/bin/python benchmarks/bench_torch_flow.py``
(``--dataset mnist-5k`` on a machine without Fashion-MNIST). The module has attribute names (``fc1``,
``fc2``, ``out``), tanh, ``Dropout`` and a flatten in ``forward``; it trains on the training rows less the
10 % that ``run`` holds out for validation (seed 0), so that ``run``'s decisions read rows it never saw.
Every ``tinyprune`` command runs as a user types it (a subprocess); the table gives the test accuracy in
torch and in tinyprune, and the largest logit difference between them, on the whole test split.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import table, write_json
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import prune as torch_prune

import tinyprune as tp
from tinyprune import checkpoint


class Net(nn.Module):
    """The user's own module: attribute names, tanh, dropout, a flatten in ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(784, 64), nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x):
        x = nn.functional.dropout(torch.tanh(self.fc1(x.flatten(1))), 0.2, self.training)
        return self.out(torch.tanh(self.fc2(x)))


def train_in_torch(X: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> Net:
    """Adam (lr 1e-3), batches of 128, cross-entropy: a user's ordinary torch loop."""
    torch.manual_seed(seed)
    net, X_t, y_t = Net(), torch.from_numpy(X), torch.from_numpy(y)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        net.train()
        for rows in torch.randperm(len(X_t)).split(128):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(X_t[rows]), y_t[rows]).backward()
            optimizer.step()
    return net.eval()


def torch_logits(net: Net, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net.eval()(torch.from_numpy(X)).numpy()


def load_pruned_state(module: nn.Module, path: Path) -> None:
    """The README's loader: prune each ``<name>_mask``'s parameter with its mask, then a strict load."""
    state = load_file(str(path))
    for key, mask in state.items():
        if key.endswith("_mask"):
            owner, _, name = key[: -len("_mask")].rpartition(".")
            torch_prune.custom_from_mask(module.get_submodule(owner), name, mask)
    module.load_state_dict(state, strict=True)


def tinyprune_command(words: list[str], folder: Path) -> str:
    """Run ``tinyprune <words>`` in ``folder`` as a user would; return what it printed (and echo it)."""
    print(f"$ tinyprune {' '.join(words)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "tinyprune", *words], cwd=folder, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"tinyprune {' '.join(words)} failed: {done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "mnist-5k"))
    parser.add_argument("--epochs", type=int, default=5, help="torch training epochs")
    args = parser.parse_args()
    splits = tp.data.load(args.dataset, download=False)
    train = splits.train.split(0.9, seed=0)[0]          # the rows run --dense trains on (seed 0, 10 % out)
    X_test, y_test = splits.test.X, splits.test.y
    net = train_in_torch(train.X, train.y, args.epochs)
    dense_logits = torch_logits(net, X_test)
    rows: dict[str, dict[str, float | str]] = {"torch, dense": {
        "torch test accuracy": float((dense_logits.argmax(1) == y_test).mean())}}
    folder = Path(tempfile.mkdtemp(prefix="torch-flow-"))
    save_file(net.state_dict(), str(folder / "net.safetensors"))
    printed = tinyprune_command(["import", "net.safetensors", "--out", "assumed.npz"], folder)
    assumption = next(line for line in printed.splitlines() if line.startswith("assumed"))
    assumed = checkpoint.load(folder / "assumed.npz").model
    rows["import without --activation"] = {
        "tinyprune test accuracy": float((assumed(X_test).argmax(1) == y_test).mean()),
        "max |logit difference|": float(np.abs(assumed(X_test) - dense_logits).max()), "printed": assumption}
    tinyprune_command(["import", "net.safetensors", "--activation", "tanh", "--out", "net.npz"], folder)
    imported = checkpoint.load(folder / "net.npz").model
    rows["import --activation tanh"] = {
        "tinyprune test accuracy": float((imported(X_test).argmax(1) == y_test).mean()),
        "max |logit difference|": float(np.abs(imported(X_test) - dense_logits).max())}
    tinyprune_command(["run", "--dense", "net.npz", "--dataset", args.dataset, "--recipe", "document",
                       "--no-progress", "--no-figures", "--out", "run-net"], folder)
    report = json.loads((folder / "run-net" / "report.json").read_text())
    pruned = checkpoint.load(folder / "run-net" / "pruned.npz").model
    for flags, name in (([], "net-pruned.safetensors"), (["--masks"], "net-masks.safetensors")):
        tinyprune_command(["export", "run-net/pruned.npz", *flags, "--out", name], folder)
        mine = Net()
        load_pruned_state(mine, folder / name)
        logits = torch_logits(mine, X_test)
        zeros = sum(int((layer.weight == 0).sum()) for layer in (mine.fc1, mine.fc2, mine.out))
        rows[f"run --dense (90 %), export {' '.join(flags) or '(plain)'}"] = {
            "torch test accuracy": float((logits.argmax(1) == y_test).mean()),
            "tinyprune test accuracy": float(report["final_accuracy"]),
            "max |logit difference|": float(np.abs(logits - pruned(X_test)).max()),
            "weight sparsity in torch": zeros / (784 * 64 + 64 * 64 + 64 * 10)}
    print(f"\n{args.dataset}, test split ({len(y_test):,} rows); torch {torch.__version__}\n")
    lines = []
    for step, row in rows.items():
        cells = [f"{row[key]:.2%}" if key in row else "" for key in ("torch test accuracy",
                                                                      "tinyprune test accuracy")]
        diff = f"{row['max |logit difference|']:.1e}" if "max |logit difference|" in row else ""
        note = row.get("printed", "") or (f"{row['weight sparsity in torch']:.2%} of the weights 0 in torch"
                                          if "weight sparsity in torch" in row else "")
        lines.append([step, *cells, diff, note])
    print(table(["step", "torch test acc.", "tinyprune test acc.", "max abs logit diff", "note"], lines))
    kept = ("dense_accuracy", "pruned_accuracy", "final_accuracy", "sparsity", "epochs_used", "verdict",
            "warnings")
    write_json("torch_flow", {"dataset": args.dataset, "torch": torch.__version__,
                              "torch_epochs": args.epochs, "rows": rows,
                              "report": {key: report[key] for key in kept}})

if __name__ == "__main__":
    main()
