"""Every command and code block the README shows, and every example in a `--help`, runs and exits 0.

The README's fenced blocks are read from the file itself (nothing is copied here). `tinyprune` lines run
through ``cli.main`` in a fresh folder: the main job (`tinyprune run`) exactly as written, the others on
tiny settings (one dense epoch) so that the suite stays fast. The two set-up commands (a fresh venv, the
test suite) are what `.ci/run` does on a clean clone; `.ci/run` also runs the first one as written.
Python blocks run in order in one namespace; the Dask block runs against a local cluster's address.
"""

import re
import shlex
from pathlib import Path

import pytest

from tinyprune import cli

README = Path(__file__).resolve().parent.parent / "README.md"
TINY = {"run": ["--dense-epochs", "1", "--no-progress", "--no-figures"], "sweep": ["--dense-epochs", "1",
                                                                                   "--no-progress"]}


def fenced_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def tinyprune_commands(text: str) -> list[list[list[str]]]:
    """The lines of `tinyprune ...` commands of a shell block, each a chain of commands joined by `&&`."""
    lines = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        chain = [shlex.split(part) for part in line.split("&&")] if not line.startswith("#") else []
        if chain and all(words and words[0] == "tinyprune" for words in chain):
            lines.append([words[1:] for words in chain])
    return lines


def _run(argv: list[str], tiny: bool) -> int:
    if tiny and argv and argv[0] in TINY:
        argv = [*argv, *TINY[argv[0]]]
    return cli.main(argv)


README_COMMANDS = [c for block in fenced_blocks("bash") for c in tinyprune_commands(block)]


def test_the_readme_shows_the_set_up_commands_and_the_test_command():
    setup = fenced_blocks("bash")[:2]
    assert "pip install -e ." in setup[0] and "tinyprune run" in setup[0]
    assert "python -m pytest" in setup[1]
    assert len(README_COMMANDS) >= 6


@pytest.mark.parametrize("chain", README_COMMANDS, ids=[" ".join(c[0])[:60] for c in README_COMMANDS])
def test_every_tinyprune_command_of_the_readme_exits_0(chain, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main_job = chain == [["run"]]
    for argv in chain:
        assert _run(argv, tiny=not main_job) == 0, capsys.readouterr().err
    if main_job:
        report = next((tmp_path / "runs").iterdir()) / "report.json"
        assert report.is_file()
        _the_readme_shows_what_the_first_run_prints(capsys.readouterr().out)


def _without_seconds(line: str) -> str:
    return re.sub(r"\d+\.\d s\b", "_ s", line)


def _the_readme_shows_what_the_first_run_prints(printed: str) -> None:
    """The README's copy of the first run's table, steps and verdict is what it prints (timings aside)."""
    shown = fenced_blocks("text")[0].splitlines()
    lines = [_without_seconds(line) for line in printed.splitlines()]
    assert [_without_seconds(line) for line in shown if line.strip()] == \
        [line for line in lines[lines.index(_without_seconds(shown[0])):] if line.strip()][:len(
            [line for line in shown if line.strip()])]


def test_the_python_blocks_of_the_readme_run(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=50) as cluster:
        for block in fenced_blocks("python"):
            grid = '"sparsity": [0.8, 0.9, 0.95]}, seeds=[0, 1, 2]'
            block = block.replace(grid, '"sparsity": [0.9]}, seeds=[0]')    # keep the cluster's work small
            block = block.replace("tcp://scheduler-host:8786", cluster.scheduler_address)
            exec(compile(block, "README", "exec"), namespace)
    assert namespace["report"].sparsity == pytest.approx(0.8, abs=0.005)
    assert len(namespace["result"].runs) == 2


def test_the_exercise_commands_of_the_readme_run(tmp_path):
    """list and init exit 0; check exits 1 on the blank stubs and 0 once they are filled in (here: with the
    reference solutions)."""
    import shutil
    import subprocess
    import sys

    shown = [line for block in fenced_blocks("bash") for line in block.splitlines()]
    lines = [shlex.split(line.split(" #", 1)[0]) for line in shown
             if line.startswith("python -m tinyprune.exercises")]
    assert [words[3] for words in lines] == ["list", "init", "check"]

    def run(words: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *words[1:]], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)

    assert run(lines[0]).returncode == 0 and run(lines[1]).returncode == 0
    blank = run(lines[2])
    from tinyprune.exercises import EXERCISES, solutions

    assert blank.returncode == 1 and f"0 of {len(EXERCISES)} exercises pass" in blank.stdout

    target = next((tmp_path / lines[2][4]).glob("*.py"))
    shutil.copy(solutions.__file__, target)
    assert run(lines[2]).returncode == 0


def help_examples() -> list[list[str]]:
    """The example lines (`  tinyprune ...`) of every subcommand's --help."""
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices                    # noqa: SLF001
    examples = []
    for sub in commands.values():
        for line in (sub.epilog or "").splitlines():
            if line.strip().startswith("tinyprune "):
                examples.append(shlex.split(line.strip())[1:])
    return examples


HELP_EXAMPLES = help_examples()


@pytest.mark.parametrize("argv", HELP_EXAMPLES, ids=[" ".join(c)[:60] for c in HELP_EXAMPLES])
def test_every_example_in_a_help_exits_0(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _run(argv, tiny=True) == 0, capsys.readouterr().err


def test_help_examples_exist_for_run_and_sweep():
    assert {argv[0] for argv in HELP_EXAMPLES} >= {"run", "sweep"}


def torch_blocks() -> list[tuple[str, str]]:
    """The README's PyTorch blocks in order, as ``("python", code)`` or ``("shell", lines)``: ```text blocks,
    since its ```python blocks run without torch."""
    blocks = []
    for block in fenced_blocks("text"):
        lines = [line for line in block.splitlines() if line.strip()]
        if lines and all(line.startswith("tinyprune ") for line in lines):
            blocks.append(("shell", block))
        elif "torch" in block and "def load_pruned_state" not in block:  # that one: tests/test_interop_layout
            blocks.append(("python", block))
    return blocks


def test_the_readme_shows_pytorch_blocks():
    kinds = [kind for kind, _ in torch_blocks()]
    assert kinds.count("python") >= 3 and kinds.count("shell") >= 1


def test_the_pytorch_blocks_of_the_readme_run(tmp_path, monkeypatch, capsys):
    """Run in order, as a reader with torch runs them: the Python in one namespace, the commands through
    ``cli.main`` (``run`` on one recovery epoch)."""
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for kind, block in torch_blocks():
        if kind == "python":
            exec(compile(block, "README", "exec"), namespace)
            continue
        for argv in (words for chain in tinyprune_commands(block) for words in chain):
            extra = ["--budget-epochs", "1", "--no-progress", "--no-figures"] if argv[0] == "run" else []
            assert cli.main([*argv, *extra]) == 0, capsys.readouterr().err
    from tinyprune.interop import import_model

    assert sum(int((p == 0).sum()) for p in namespace["net"].parameters()) >= 0.9 * (784 * 64 + 64 * 64 + 640)
    assert import_model("with-biases.safetensors", activation="relu").sizes == [784, 32, 10]


def readme_keras_recipe() -> str:
    """The README's ``KeepMask`` (a ```text block: the README's python blocks run without Keras)."""
    blocks = [block for block in fenced_blocks("text") if "class KeepMask(" in block]
    assert len(blocks) == 1, "the README shows KeepMask once"
    return blocks[0]


def test_the_readme_keras_recipe_is_python_that_sets_each_dense_layers_constraints():
    import ast

    tree = ast.parse(readme_keras_recipe())
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert {"keras_masks", "constraint", "Constraint", "convert_to_tensor"} <= names


def _dense_zeros(keras, model) -> list[tuple[int, int]]:
    return [(int((layer.kernel.numpy() == 0).sum()), int((layer.bias.numpy() == 0).sum()))
            for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def test_the_readme_keras_recipe_keeps_pruned_weights_at_zero_through_keras_training(keras, tmp_path):
    """Pruned in tinyprune, exported as .keras, loaded and trained 50 Adam steps in Keras: with the
    README's ``keep_masks`` every pruned weight and bias is still exactly 0 (and only those); without it,
    Keras's updates move them (the control: the check can fail)."""
    import numpy as np

    from tinyprune import checkpoint, prune
    from tinyprune.core.nn import MLP

    namespace: dict = {}
    exec(compile(readme_keras_recipe(), "README", "exec"), namespace)     # the README's code, as written
    model = MLP([20, 16, 12, 4], activation="tanh", seed=0)
    for layer in model.layers:                     # nonzero biases: a zero bias is then a pruned one
        layer.b.data[...] = np.random.default_rng(1).uniform(-0.5, 0.5, size=layer.b.shape)
    prune.neurons(model, 0.25, scope="layer")                              # pruned biases too
    prune.magnitude(model, 0.8)
    source = checkpoint.save(tmp_path / "pruned.npz", model)
    assert cli.main(["export", str(source), "--out", str(tmp_path / "pruned.keras")]) == 0
    generator = np.random.default_rng(0)
    x, y = generator.normal(size=(800, 20)).astype(np.float32), generator.integers(0, 4, 800)
    kept = {}
    for keep in (True, False):
        keras.utils.set_random_seed(0)
        mine = keras.saving.load_model(tmp_path / "pruned.keras")
        before = _dense_zeros(keras, mine)
        if keep:
            namespace["keep_masks"](mine, str(source))
        mine.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        mine.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)          # 800 / 16 = 50 steps
        kept[keep] = _dense_zeros(keras, mine)
        if keep:
            dense = [layer for layer in mine.layers if isinstance(layer, keras.layers.Dense)]
            for layer, linear in zip(dense, model.layers):
                np.testing.assert_array_equal(layer.kernel.numpy() == 0, ~linear.W.mask)
                bias_mask = np.ones(linear.b.shape, bool) if linear.b.mask is None else linear.b.mask
                np.testing.assert_array_equal(layer.bias.numpy() == 0, ~bias_mask)
    assert kept[True] == before
    assert sum(k for k, _ in kept[False]) < sum(k for k, _ in before) / 2          # 448 zeros -> 176
