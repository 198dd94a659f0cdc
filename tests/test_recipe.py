"""The Recipe: every field checked once with a message naming it, files that round-trip, named recipes that
run, and the command line generated from the fields."""

import copy
import json
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune import cli
from tinyprune.experiment import prune_and_recover
from tinyprune.experiment.recipe import DEFAULT, RECIPES, Recipe, RecipeError, recipe_names, recipe_summary

NAMED = ("default", "document", "han2015", "lottery", "renda2020", "zhu2017")


def test_the_named_recipes_are_shipped_and_each_cites_its_source():
    assert tuple(recipe_names()) == NAMED
    for name in NAMED:
        assert recipe_summary(name), name
        assert isinstance(RECIPES[name], Recipe)
    assert "Han" in recipe_summary("han2015") and "Renda" in recipe_summary("renda2020")
    assert RECIPES["default"] == Recipe() == DEFAULT


@pytest.mark.parametrize("name", NAMED)
def test_every_named_recipe_runs_on_tiny_data(name, dense, clusters):
    recipe = RECIPES[name].replace(calibration=200, batch_size=50)
    model = copy.deepcopy(dense[0])
    report = prune_and_recover(model, clusters, recipe, rewind_to=dense[1])
    assert report.sparsity == pytest.approx(recipe.sparsity, abs=0.01)
    assert report.epochs_used <= recipe.epochs
    assert all(np.all(layer.W.data[~layer.W.mask] == 0) for layer in model.layers)
    assert report.recipe == recipe.to_dict()


@pytest.mark.parametrize("suffix", [".toml", ".json"])
@pytest.mark.parametrize("name", NAMED)
def test_recipes_round_trip_through_files(name, suffix, tmp_path):
    recipe = (
        RECIPES[name].replace(
            sparsity={"layers.0.W": 0.9, "layers.1.W": 0.5}, head_start=0.0, allocation=None
        )
        if name != "default"
        else RECIPES[name]
    )
    path = recipe.to_file(tmp_path / f"r{suffix}")
    assert Recipe.from_file(path) == recipe
    with pytest.raises(ValueError, match="already exists"):
        recipe.to_file(path)
    assert Recipe.from_file(recipe.to_file(path, overwrite=True)) == recipe


@pytest.mark.parametrize(
    "change, field",
    [
        ({"sparsity": 1.0}, "sparsity"),
        ({"sparsity": float("nan")}, "sparsity"),
        ({"sparsity": -0.1}, "sparsity"),
        ({"sparsity": "0.9"}, "sparsity"),
        ({"sparsity": True}, "sparsity"),
        ({"sparsity": {}}, "sparsity"),
        ({"sparsity": {"layers.0.W": 1.0}}, "sparsity"),
        ({"criterion": "vibes"}, "criterion"),
        ({"scope": "galaxy"}, "scope"),
        ({"structure": "atoms"}, "structure"),
        ({"n_m": (2,)}, "n_m"),
        ({"block": (0, 4)}, "block"),
        ({"allocation": "fair"}, "allocation"),
        ({"schedule": "often"}, "schedule"),
        ({"steps": 0}, "steps"),
        ({"power": 0.0}, "power"),
        ({"ramp": 1.5}, "ramp"),
        ({"prune_every": 0}, "prune_every"),
        ({"head_start": 1.0}, "head_start"),
        ({"recovery": "pray"}, "recovery"),
        ({"recovery": "finetune+distill"}, "recovery"),
        ({"distill_output": "vibes"}, "distill_output"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"alpha": 1.5}, "alpha"),
        ({"calibration": 0}, "calibration"),
        ({"damping": -1.0}, "damping"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.0}, "epochs"),
        ({"check_every": 0}, "check_every"),
        ({"tolerance": 1.0}, "tolerance"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr_schedule": "wavy"}, "lr_schedule"),
        ({"batch_size": 0}, "batch_size"),
        ({"original_lr": -1.0}, "original_lr"),
        ({"validation": 0.0}, "validation"),
        ({"validation": 0.9}, "validation"),
        ({"seed": -1}, "seed"),
    ],
)
def test_a_bad_field_is_refused_by_name(change, field):
    with pytest.raises(RecipeError, match=f"^{field}: expected") as caught:
        DEFAULT.replace(**change)
    assert repr(next(iter(change.values())))[:10] in str(caught.value) or field == "recovery"


@pytest.mark.parametrize(
    "change, words",
    [
        ({"recovery": "reconstruct"}, "fixed mask"),
        ({"recovery": "retrain"}, "train from the pruned"),
        ({"schedule": "iterative", "head_start": 0.0, "steps": 5}, "must not exceed"),
        ({"epochs": 3, "check_every": 2}, "multiple"),
        ({"structure": "n:m", "criterion": "magnitude"}, "1 - n/m"),
        (
            {
                "schedule": "one-shot",
                "head_start": 0.0,
                "structure": "neurons",
                "criterion": "l2",
                "sparsity": {"layers.0.W": 0.5},
            },
            "mapping",
        ),
    ],
)
def test_impossible_combinations_are_refused(change, words):
    with pytest.raises(RecipeError, match=words):
        DEFAULT.replace(**change)


def test_parameters_of_another_schedule_are_ignored_not_refused():
    one_shot = DEFAULT.replace(schedule="one-shot", recovery="finetune")
    assert one_shot.head_start == DEFAULT.head_start and one_shot.schedule == "one-shot"


def test_what_a_recipe_would_do_to_a_model_is_checked_before_training():
    neurons = Recipe.from_file("document").replace(
        structure="neurons", criterion="l2", scope="layer", sparsity=0.995
    )
    with pytest.raises(RecipeError, match="every unit"):
        neurons.check_model([784, 64, 64, 10])
    with pytest.raises(RecipeError, match="layers.9.W"):
        Recipe.from_file("document").replace(sparsity={"layers.9.W": 0.5}).check_model([4, 3, 2])
    Recipe.from_file("document").replace(sparsity={"layers.1.W": 0.5}).check_model([4, 3, 2])


def test_unknown_fields_and_bad_files_are_refused(tmp_path):
    with pytest.raises(RecipeError, match="unknown recipe field"):
        DEFAULT.replace(sparsityy=0.5)
    bad = tmp_path / "bad.toml"
    bad.write_text("sparsity = 0.5\nflavour = 'mint'\n")
    with pytest.raises(RecipeError, match="flavour"):
        Recipe.from_file(bad)
    bad.write_text("sparsity = [")
    with pytest.raises(RecipeError, match="not valid TOML"):
        Recipe.from_file(bad)
    (tmp_path / "bad.json").write_text(json.dumps({"epochs": -3}))
    with pytest.raises(RecipeError, match="epochs"):
        Recipe.from_file(tmp_path / "bad.json")
    with pytest.raises(RecipeError, match="no recipe named"):
        Recipe.from_file("no-such-recipe")
    with pytest.raises(RecipeError, match="cannot read"):
        Recipe.from_file(tmp_path / "absent.toml")


@given(sparsity=st.floats(0, 0.999), tolerance=st.floats(0, 0.5), epochs=st.integers(1, 6))
def test_replace_keeps_every_other_field(sparsity, tolerance, epochs):
    recipe = Recipe.from_file("document").replace(sparsity=sparsity, tolerance=tolerance, epochs=epochs)
    assert (recipe.sparsity, recipe.tolerance, recipe.epochs) == (sparsity, tolerance, epochs)
    same = {f.name for f in fields(Recipe)} - {"sparsity", "tolerance", "epochs"}
    assert all(getattr(recipe, name) == getattr(RECIPES["document"], name) for name in same)
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_the_command_line_has_one_flag_per_field_with_its_help(capsys):
    parser = cli.build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]  # noqa: SLF001
    flags = {option for action in run._actions for option in action.option_strings}  # noqa: SLF001
    for f in fields(Recipe):
        assert cli._flag(f.name) in flags, f.name  # noqa: SLF001
    assert cli.main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    assert "recipe: when" in text and "budget-epochs" in text and "--layer-sparsity" in text


def test_flags_override_the_recipe_and_only_those_given():
    args = cli.build_parser().parse_args(
        [
            "run",
            "--recipe",
            "han2015",
            "--sparsity",
            "0.8",
            "--lr",
            "none",
            "--n-m",
            "1,4",
            "--layer-sparsity",
            "layers.0.W=0.5",
        ]
    )
    recipe = cli.recipe_from_args(args)
    assert recipe.sparsity == {"layers.0.W": 0.5} and recipe.n_m == (1, 4) and recipe.lr is None
    assert recipe.replace(sparsity=0.9, n_m=(2, 4)) == RECIPES["han2015"]
