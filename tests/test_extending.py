"""Extending tinyprune from outside the package: a new criterion is one class and one registry line, and
then the verb, the short forms' names, the Recipe and the experiment loop all know it."""

import copy
from dataclasses import dataclass

import numpy as np
import pytest

import tinyprune as tp
from tinyprune.core.nn import MLP
from tinyprune.prune import Criterion, register_criterion, unregister_criterion


@dataclass(frozen=True)
class LargestFirst(Criterion):
    """``s = -|w|^p``: the largest weights go first (a control that should hurt, and is easy to check)."""

    name = "largest-first"
    p: float = 1.0

    def score(self, model, X=None, y=None, *, seed=0):
        return {name: -np.abs(param.data.astype(np.float64)) ** self.p
                for name, param in model.named_parameters()}


@dataclass(frozen=True)
class SignedActivation(Criterion):
    """``s_j = mean_i a_ij``: the mean activation of hidden unit j (ReLU: the same as mean |a_ij|)."""

    name = "signed-activation"
    unit = "neurons"
    needs = ("inputs",)

    def score(self, model, X=None, y=None, *, seed=0):
        A, scores = np.asarray(X, dtype=np.float64), {}
        for index, layer in enumerate(model.layers[:-1]):
            A = np.maximum(A @ layer.W.data + layer.b.data, 0)
            scores[f"layers.{index}"] = A.mean(axis=0)
        return scores


@pytest.fixture
def registered():
    """Both criteria registered for one test, and forgotten after it (other tests list the registry)."""
    for cls in (LargestFirst, SignedActivation):
        register_criterion(cls)
    yield
    for cls in (LargestFirst, SignedActivation):
        unregister_criterion(cls)


def _pruned_are_the_largest(before, after):
    """Every weight ``after`` pruned was at least as large in ``before`` as every weight it kept."""
    masks = [layer.W.mask for layer in after.layers]
    pruned = np.concatenate([np.abs(layer.W.data[~m]) for layer, m in zip(before.layers, masks)])
    kept = np.concatenate([np.abs(layer.W.data[m]) for layer, m in zip(before.layers, masks)])
    return pruned.size > 0 and pruned.min() >= kept.max()


def test_a_criterion_object_from_outside_prunes_without_being_registered():
    model = MLP([6, 5, 3], seed=0)
    masks = tp.prune.prune(model, 0.5, criterion=LargestFirst())
    total = sum(mask.size for mask in masks.values())
    assert sum(int((~mask).sum()) for mask in masks.values()) == round(0.5 * total)
    assert _pruned_are_the_largest(MLP([6, 5, 3], seed=0), model)
    control = MLP([6, 5, 3], seed=0)
    tp.prune.magnitude(control, 0.5)                          # the check can fail: magnitude keeps those
    assert not _pruned_are_the_largest(MLP([6, 5, 3], seed=0), control)


def test_a_registered_criterion_is_found_by_name_with_its_options(registered):
    by_object, by_name, squared = MLP([6, 5, 3], seed=0), MLP([6, 5, 3], seed=0), MLP([6, 5, 3], seed=0)
    first = tp.prune.prune(by_object, 0.5, criterion=LargestFirst())
    second = tp.prune.prune(by_name, 0.5, "largest-first")
    third = tp.prune.prune(squared, 0.5, "largest-first", p=2.0)        # an option, by name
    assert all(np.array_equal(first[k], second[k]) and np.array_equal(first[k], third[k]) for k in first)
    assert "largest-first" in tp.prune.CRITERIA and "largest-first" in tp.prune.criterion_names()
    assert tp.prune.CRITERIA["largest-first"] is LargestFirst
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['q'\].*'p'"):
        tp.prune.prune(MLP([6, 5, 3]), 0.5, "largest-first", q=2)
    with pytest.raises(ValueError, match="did you mean 'largest-first'"):
        tp.prune.prune(MLP([6, 5, 3]), 0.5, "largest-frist")


def test_forgetting_a_criterion_removes_it_from_every_list():
    register_criterion(LargestFirst)
    unregister_criterion(LargestFirst)
    assert "largest-first" not in tp.prune.CRITERIA and "largest-first" not in tp.prune.criterion_names()
    with pytest.raises(ValueError, match="unknown criterion 'largest-first'"):
        tp.prune.prune(MLP([6, 5, 3]), 0.5, "largest-first")
    with pytest.raises(tp.RecipeError, match="criterion"):
        tp.Recipe(criterion="largest-first")


def test_a_neuron_criterion_from_outside_declares_its_data_and_agrees_with_the_built_in(registered):
    g = np.random.default_rng(0)
    X = g.normal(size=(40, 6))
    model = MLP([6, 8, 8, 3], seed=0)
    with pytest.raises(ValueError, match="needs calibration data"):
        tp.prune.neurons(model, 0.5, criterion="signed-activation")
    ours, built_in = copy.deepcopy(model), copy.deepcopy(model)
    by_name = tp.prune.neurons(ours, 0.5, criterion="signed-activation", data=X, scope="layer")
    reference = tp.prune.neurons(built_in, 0.5, criterion="activation", data=X, scope="layer")
    assert all(np.array_equal(by_name[k], reference[k]) for k in reference)     # ReLU: mean a = mean |a|
    by_object = tp.prune.prune(copy.deepcopy(model), 0.5, SignedActivation(), "layer", "neurons", data=X)
    assert all(np.array_equal(by_name[k], by_object[k]) for k in by_name)
    with pytest.raises(ValueError, match="scores neurons"):
        tp.prune.prune(copy.deepcopy(model), 0.5, SignedActivation(), data=X)       # not for single weights
    assert tp.Recipe(criterion="signed-activation", structure="neurons").criterion == "signed-activation"


def test_a_name_taken_by_another_class_is_refused():
    @dataclass(frozen=True)
    class Impostor(Criterion):
        name = "magnitude"

        def score(self, model, X=None, y=None, *, seed=0):
            return {}

    with pytest.raises(ValueError, match="taken by Magnitude"):
        register_criterion(Impostor)
    with pytest.raises(ValueError, match="needs has"):
        register_criterion(type("Odd", (LargestFirst,), {"name": "odd", "needs": ("a GPU",)}))
    assert tp.prune.CRITERIA["magnitude"] is tp.prune.Magnitude


def test_the_recipe_and_the_loop_prune_with_a_registered_criterion(registered, clusters):
    recipe = tp.Recipe(criterion="largest-first", sparsity=0.5, schedule="one-shot", recovery="none",
                       calibration=100)
    model = MLP([20, 16, 4], seed=0)
    tp.fit(model, clusters[0], epochs=2, batch_size=64, progress=False)
    dense = copy.deepcopy(model)
    report = tp.prune_and_recover(model, clusters, recipe)
    assert report.sparsity == pytest.approx(0.5, abs=0.01)
    assert _pruned_are_the_largest(dense, model)


def test_a_criterion_that_scores_the_wrong_thing_is_told_so():
    @dataclass(frozen=True)
    class Forgetful(Criterion):
        name = "forgetful"

        def score(self, model, X=None, y=None, *, seed=0):
            return {"layers.0.W": np.zeros(model.layers[0].W.shape)}           # the other layers forgotten

    @dataclass(frozen=True)
    class Transposed(Criterion):
        name = "transposed"

        def score(self, model, X=None, y=None, *, seed=0):
            return {name: np.abs(p.data).T for name, p in model.named_parameters()}

    model = MLP([6, 5, 3], seed=0)
    with pytest.raises(ValueError, match=r"gave no scores for \['layers.1.W'\]"):
        tp.prune.prune(model, 0.5, Forgetful())
    with pytest.raises(tp.ShapeError, match="scored"):
        tp.prune.prune(model, 0.5, Transposed())
    assert all(p.mask is None for p in model.parameters())


class KeepNorms(tp.experiment.Recovery):
    """A closed form from outside: after pruning, scale each unit's surviving incoming weights so that
    their norm is the dense unit's again (``w_j <- w_j · ||w_j^dense|| / ||w_j||``)."""

    name, closed_form = "keep-norms", True

    def after_pruning(self, run):
        for layer, dense in zip(run.model.layers, run.teacher.layers):
            kept = np.linalg.norm(layer.W.data, axis=0)
            whole = np.linalg.norm(dense.W.data, axis=0)
            ratio = np.where(kept > 0, whole / np.maximum(kept, 1e-12), 1.0)
            layer.W.data *= ratio.astype(layer.W.data.dtype)
        return ["keep the units' weight norms"]


@pytest.fixture
def recovery_registered():
    tp.experiment.register_recovery(KeepNorms)
    yield
    del tp.experiment.RECOVERIES["keep-norms"]


def test_a_recovery_from_outside_is_one_class_and_one_registry_line(recovery_registered, dense, clusters):
    recipe = tp.Recipe.from_file("document").replace(recovery="keep-norms", batch_size=50)
    composed = tp.Recipe.from_file("document").replace(recovery="keep-norms+finetune")
    assert composed.recovery == "keep-norms+finetune"
    with pytest.raises(tp.RecipeError, match="solves for a fixed mask"):     # read from its declaration
        tp.Recipe(recovery="keep-norms")          # the default schedule prunes during training
    model = copy.deepcopy(dense[0])
    report = tp.prune_and_recover(model, clusters, recipe, sparsity=0.9, tolerance=0.0)
    kinds = [step["kind"] for step in report.steps]
    assert kinds[:3] == ["dense", "pruned", "closed form"] and report.epochs_used == 0
    assert report.steps[2]["action"] == "keep the units' weight norms"
    for layer, before in zip(model.layers, dense[0].layers):
        kept = np.linalg.norm(layer.W.data, axis=0)
        assert np.allclose(kept[kept > 0], np.linalg.norm(before.W.data, axis=0)[kept > 0], rtol=1e-5)
        assert np.all(layer.W.data[~layer.W.mask] == 0)


def test_an_unknown_recovery_is_refused_with_a_suggestion():
    with pytest.raises(tp.RecipeError, match="did you mean 'distill'"):
        tp.Recipe(recovery="distil")
