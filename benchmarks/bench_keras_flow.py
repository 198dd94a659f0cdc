"""A Keras user's round trip: train in Keras, prune with the tinyprune command, back into Keras, train on.

1. A tanh MLP 784-64-64-10 (softmax output, Adam 1e-3, batch 128) is trained ``--epochs`` epochs in Keras
   on the training rows of ``--dataset`` and saved as ``model.keras``.
2. The ``tinyprune`` command, run as a user types it (printed, in a subprocess):
   ``import model.keras`` -> ``run --dense ... --recipe document --sparsity 0.9`` -> ``export --format
   keras`` (``pruned.keras``).
3. Keras loads ``pruned.keras``: its test accuracy against the dense Keras model's and tinyprune's report;
   the largest difference between tinyprune's logits and Keras's (the last ``Dense`` made linear) and
   between the probabilities, on the test rows.
4. ``--steps`` more Keras Adam steps (batch 128) on the pruned model, with the README's ``KeepMask``
   constraint (run from the README's own block) and without: the kernels' zeros before and after.

Needs Keras 3 (not a tinyprune dependency): run it in a side environment with a backend, e.g.

    KERAS_BACKEND=torch OPENBLAS_NUM_THREADS=1 /tmp/keras-fw/bin/python benchmarks/bench_keras_flow.py
    KERAS_BACKEND=torch /tmp/keras-fw/bin/python benchmarks/bench_keras_flow.py --dataset mnist-5k --epochs 1

Writes ``benchmarks/results/keras_flow.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, machine_line, table, write_json

import tinyprune as tp
from tinyprune import checkpoint


def tinyprune_command(words: list[str], folder: Path) -> str:
    """Run ``tinyprune WORDS`` in ``folder`` as a user would, echo it, and return what it printed."""
    print("$ tinyprune " + " ".join(words), flush=True)
    done = subprocess.run([sys.executable, "-m", "tinyprune", *words], cwd=folder, capture_output=True,
                          text=True, check=False)
    print(done.stdout.rstrip())
    if done.returncode != 0:
        raise SystemExit(f"tinyprune {words[0]} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def readme_keep_masks() -> Any:
    """The README's ``keep_masks`` (its ```text block), run as the reader pastes it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```text\n(.*?)```", readme, flags=re.S) if "class KeepMask(" in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, "README", "exec"), namespace)
    return namespace["keep_masks"]


def keras_logits(keras: Any, model: Any, x: np.ndarray) -> np.ndarray:
    """The logits of a Keras model whose last ``Dense`` has a softmax: that layer made linear for a call."""
    last = model.layers[-1]
    softmax, last.activation = last.activation, keras.activations.linear
    try:
        return model.predict(x, batch_size=1000, verbose=0)
    finally:
        last.activation = softmax


def kernel_zeros(keras: Any, model: Any) -> int:
    return sum(int((layer.kernel.numpy() == 0).sum()) for layer in model.layers
               if isinstance(layer, keras.layers.Dense))


def accuracy(probabilities: np.ndarray, y: np.ndarray) -> float:
    return float((probabilities.argmax(1) == y).mean())


def train_in_keras(keras: Any, data: Any, epochs: int, seed: int) -> Any:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, activation="tanh"),
                              keras.layers.Dense(64, activation="tanh"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(data.train.X, data.train.y, batch_size=128, epochs=epochs, verbose=0)
    return model


def further_steps(keras: Any, path: Path, data: Any, steps: int, keep: Any | None, seed: int) -> dict:
    """``steps`` Keras Adam steps on the model in ``path``, with ``keep`` (the README's keep_masks) or not."""
    keras.utils.set_random_seed(seed)
    model = keras.saving.load_model(path)
    before = kernel_zeros(keras, model)
    if keep is not None:
        keep(model, str(path.parent / "run90" / "pruned.npz"))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rows = np.random.default_rng(seed).permutation(len(data.train.y))[:steps * 128]
    model.fit(data.train.X[rows], data.train.y[rows], batch_size=128, epochs=1, verbose=0, shuffle=False)
    test = accuracy(model.predict(data.test.X, batch_size=1000, verbose=0), data.test.y)
    return {"zeros_before": before, "zeros_after": kernel_zeros(keras, model), "test_accuracy": test}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=5, help="Keras training epochs of the dense model")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--steps", type=int, default=50, help="Keras steps after the round trip")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import keras

    data = tp.data.load(args.dataset)
    folder = Path(tempfile.mkdtemp(prefix="keras-flow-"))
    dense = train_in_keras(keras, data, args.epochs, args.seed)
    dense.save(folder / "model.keras")
    dense_accuracy = accuracy(dense.predict(data.test.X, batch_size=1000, verbose=0), data.test.y)
    commands = [["import", "model.keras", "--out", "dense.npz"],
                ["run", "--dense", "dense.npz", "--dataset", args.dataset, "--recipe", "document",
                 "--sparsity", str(args.sparsity), "--no-figures", "--no-progress", "--out", "run90"],
                ["export", "run90/pruned.npz", "--format", "keras", "--out", "pruned.keras"]]
    for words in commands:
        tinyprune_command(words, folder)
    report = json.loads((folder / "run90" / "report.json").read_text())
    mine = checkpoint.load(folder / "run90" / "pruned.npz").model
    pruned, nonzeros = folder / "pruned.keras", tp.metrics.count_nonzeros(mine)
    theirs = keras.saving.load_model(pruned)
    probabilities = theirs.predict(data.test.X, batch_size=1000, verbose=0)
    z = mine(data.test.X)
    mine_probabilities = np.exp(z - z.max(1, keepdims=True))
    mine_probabilities /= mine_probabilities.sum(1, keepdims=True)
    result = {
        "dataset": args.dataset, "keras": keras.__version__, "backend": keras.backend.backend(),
        "epochs": args.epochs, "sparsity": args.sparsity, "steps": args.steps,
        "commands": ["tinyprune " + " ".join(words) for words in commands],
        "keras_dense_test_accuracy": dense_accuracy,
        "keras_pruned_test_accuracy": accuracy(probabilities, data.test.y),
        "tinyprune_report": {key: report.get(key) for key in ("dense_accuracy", "final_accuracy")},
        "tinyprune_pruned_test_accuracy": accuracy(z, data.test.y),
        "zero_fraction_of_weights_and_biases": 1 - nonzeros / tp.metrics.count_parameters(mine),
        "max_logit_difference": float(np.abs(keras_logits(keras, theirs, data.test.X) - z).max()),
        "max_probability_difference": float(np.abs(probabilities - mine_probabilities).max()),
        "with_keep_masks": further_steps(keras, pruned, data, args.steps, readme_keep_masks(), args.seed),
        "without": further_steps(keras, pruned, data, args.steps, None, args.seed),
    }
    pct = "{:.2%}".format
    print(table(["measure", "value"], [
        ["Keras dense test accuracy", pct(result["keras_dense_test_accuracy"])],
        ["tinyprune report: dense / final test accuracy",
         f"{pct(report['dense_accuracy'])} / {pct(report['final_accuracy'])}"],
        ["pruned model, test accuracy in Keras / tinyprune",
         f"{pct(result['keras_pruned_test_accuracy'])} / {pct(result['tinyprune_pruned_test_accuracy'])}"],
        ["max abs logit difference tinyprune vs Keras (test rows)", f"{result['max_logit_difference']:.2e}"],
        ["max abs probability difference", f"{result['max_probability_difference']:.2e}"],
        *[[f"kernel zeros before -> after {args.steps} Keras Adam steps, {label}",
           f"{r['zeros_before']:,} -> {r['zeros_after']:,} (test {pct(r['test_accuracy'])})"]
          for label, r in (("with KeepMask", result["with_keep_masks"]), ("without", result["without"]))],
    ]))
    print(machine_line())
    print(f"wrote {write_json('keras_flow', result)}")


if __name__ == "__main__":
    main()
