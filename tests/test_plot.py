"""Every figure renders with the Agg canvas into a non-empty PNG; nothing imports matplotlib up front."""

import copy
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

from tinyprune import plot  # noqa: E402
from tinyprune.core.nn import MLP  # noqa: E402
from tinyprune.experiment import aggregate  # noqa: E402
from tinyprune.prune import SensitivityTable, magnitude  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG) and len(data) > 1000


@pytest.fixture
def models():
    dense = MLP([784, 16, 12, 10], seed=0)
    pruned = copy.deepcopy(dense)
    magnitude(pruned, 0.9)
    return dense, pruned


def test_accuracy_vs_sparsity(tmp_path):
    runs = [{"criterion": c, "recovery": r, "sparsity": s, "seed": seed, "pruned_accuracy": 0.5,
             "final_accuracy": 0.9 - s / 10 + seed / 100, "epochs_used": 3, "seconds": 1.0,
             "recovered": False}
            for c in ("magnitude", "random") for r in ("finetune", "distill") for s in (0.5, 0.9)
            for seed in (0, 1)]
    path = plot.accuracy_vs_sparsity(None, tmp_path / "a.png", cells=aggregate(runs), dense_accuracy=0.92)
    assert _is_png(path)


def test_accuracy_vs_sparsity_with_more_lines_than_the_default_colours(tmp_path):
    cells = [{"criterion": "magnitude", "recovery": f"recovery {i}", "sparsity": s,
              "final_mean": 0.9 - i / 100, "final_std": 0.01} for i in range(12) for s in (0.5, 0.9, 0.98)]
    path = plot.accuracy_vs_sparsity(None, tmp_path / "many.png", cells=cells, dense_accuracy=0.92,
                                     targets={0.9: 0.92, 0.98: 0.9})
    assert _is_png(path)


def test_the_loop_figure_draws_a_recovered_run_and_nothing_for_a_run_with_nothing_recovered(
        tmp_path, dense, clusters):
    from tinyprune.experiment import Recipe, prune_and_recover

    recipe = Recipe.from_file("document").replace(batch_size=50, epochs=2, check_every=1, tolerance=0.0)
    dropped = prune_and_recover(copy.deepcopy(dense[0]), clusters, recipe, sparsity=0.97)
    assert dropped.verdict != "no drop"
    assert _is_png(plot.loop_steps(dropped, tmp_path / "loop.png"))
    kept = prune_and_recover(copy.deepcopy(dense[0]), clusters, recipe, sparsity=0.0)
    assert kept.verdict == "no drop"
    assert plot.loop_steps(kept, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()

def test_weight_histograms_connections_and_sparsity_bars(models, tmp_path):
    dense, pruned = models
    assert _is_png(plot.weight_histograms(dense, pruned, tmp_path / "h.png"))
    assert _is_png(plot.first_layer_connections(pruned, tmp_path / "sub" / "c.png"))   # makes the folder
    assert _is_png(plot.layer_sparsity_bars(pruned, tmp_path / "b.png"))
    assert _is_png(plot.layer_sparsity_bars({"layers.0.W": 0.5}, tmp_path / "b2.png"))
    with pytest.raises(ValueError, match="square"):
        plot.first_layer_connections(MLP([10, 3], seed=0), tmp_path / "x.png")


def test_layer_sensitivity(tmp_path):
    table = SensitivityTable("magnitude", [0.0, 0.5, 0.9], ["layers.0.W", "layers.1.W"],
                             {"layers.0.W": [0.9, 0.88, 0.5], "layers.1.W": [0.9, 0.9, 0.8]}, 0.9)
    assert _is_png(plot.layer_sensitivity(table, tmp_path / "s.png"))


def test_the_package_never_imports_matplotlib_or_plot():
    code = ("import sys, tinyprune, tinyprune.experiment, tinyprune.recover, tinyprune.training; "
            "print(any(m == 'matplotlib' or m.startswith('matplotlib.') for m in sys.modules), "
            "'tinyprune.plot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
