"""Criteria as parts: every built-in is one registered class whose declarations (name, unit, needs,
options) are what ``prune`` does with it, by object or by name alike."""

import copy

import numpy as np
import pytest

from tinyprune import prune as tpp
from tinyprune.core.nn import MLP
from tinyprune.prune import parts


def _model_and_data():
    g = np.random.default_rng(0)
    return MLP([6, 5, 5, 3], seed=0), (g.normal(size=(30, 6)), g.integers(0, 3, 30))


def _built_in(view):
    """The names of ``view`` whose class is tinyprune's own (a test or the README may register others)."""
    return tuple(name for name in view if view[name].__module__ == parts.__name__)


def test_the_registry_lists_the_criteria_in_their_old_order_and_finds_aliases():
    assert _built_in(tpp.CRITERIA) == ("magnitude", "random", "gradient", "taylor", "hybrid", "obd",
                                       "lamp", "obs", "magnitude_activation", "movement")
    assert _built_in(tpp.NEURON_CRITERIA) == ("l1", "l2", "l1_out", "l2_out", "activation",
                                              "taylor_activation", "random", "fpgm", "obd", "group")
    assert tpp.NEURON_CRITERIA["magnitude"] is tpp.NeuronL2                  # an alias is found, not listed
    assert tpp.NEURON_CRITERIA["taylor"] is tpp.NeuronTaylor
    assert "magnitude" in tpp.criterion_names("neurons") and "magnitude" not in list(tpp.NEURON_CRITERIA)
    assert set(_built_in(tpp.NEEDS_DATA)) == {"gradient", "taylor", "hybrid", "obd", "obs", "movement",
                                              "magnitude_activation", "activation", "taylor_activation"}


@pytest.mark.parametrize("structure", ["weights", "neurons"])
def test_every_criterion_needs_data_exactly_when_it_says_so(structure):
    model, (X, y) = _model_and_data()
    for name in tpp.criterion_names(structure, aliases=False):
        part = tpp.make_criterion(name, structure)
        if "inputs" in part.needs:
            with pytest.raises(ValueError, match="needs calibration data"):
                tpp.prune(copy.deepcopy(model), 0.4, name, "layer", structure)
        if "labels" in part.needs:
            with pytest.raises(ValueError, match=r"needs calibration data \(X, y\)"):
                tpp.prune(copy.deepcopy(model), 0.4, name, "layer", structure, data=X)
        given = (X, y) if "labels" in part.needs else X if "inputs" in part.needs else None
        tpp.prune(copy.deepcopy(model), 0.4, name, "layer", structure, data=given)   # enough: it runs


@pytest.mark.parametrize("name, options, part", [
    ("hybrid", {"alpha": 0.3, "batch_size": 7}, tpp.Hybrid(alpha=0.3, batch_size=7)),
    ("lamp", {}, tpp.Magnitude(p=2, normalizer="lamp")),
    ("obd", {"hessian": "fisher"}, tpp.OBD(hessian="fisher")),
    ("obs", {"damping": 0.1}, tpp.OBS(damping=0.1)),
    ("random", {}, tpp.Random()),
])
def test_a_name_with_options_prunes_as_the_object_does(name, options, part):
    model, data = _model_and_data()
    by_name = tpp.prune(copy.deepcopy(model), 0.6, name, data=data, seed=3, **options)
    by_object = tpp.prune(copy.deepcopy(model), 0.6, part, data=data, seed=3)
    assert by_name.keys() == by_object.keys()
    assert all(np.array_equal(by_name[k], by_object[k]) for k in by_name)


def test_lamp_is_magnitude_under_the_lamp_normaliser():
    model, _ = _model_and_data()
    lamp, magnitude = tpp.criteria.lamp(model), tpp.criteria.magnitude(model, 2, "lamp")
    assert all(np.array_equal(lamp[k], magnitude[k]) and lamp[k].dtype == np.float32 for k in lamp)
    assert all(np.isclose(score.max(), 1.0) for score in lamp.values() if score.max() > 0)   # the largest: 1
    squared = tpp.criteria.magnitude(model, 2)
    plain = tpp.criteria.magnitude(model)
    assert all(np.array_equal(np.argsort(squared[k], axis=None, kind="stable"),
                              np.argsort(plain[k], axis=None, kind="stable")) for k in plain)


def test_layerwise_obd_reads_no_labels():
    model, (X, _) = _model_and_data()
    assert "labels" not in tpp.OBD(hessian="layerwise").needs and "labels" in tpp.OBD().needs
    masks = tpp.prune(copy.deepcopy(model), 0.5, "obd", data=X, hessian="layerwise")
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.5 * sum(m.size for m in masks.values()))


def test_movement_with_given_scores_needs_no_data():
    model, _ = _model_and_data()
    scores = {name: np.arange(p.data.size, dtype=float).reshape(p.shape)
              for name, p in model.named_parameters()}
    masks = tpp.prune(copy.deepcopy(model), 0.5, "movement", scope="layer", scores=scores)
    assert masks["layers.0.W"].ravel()[:15].sum() == 0 and masks["layers.0.W"].ravel()[15:].all()


@pytest.mark.parametrize("call, message", [
    (lambda m: tpp.prune(m, 0.5, "magnitud"), "did you mean 'magnitude'"),
    (lambda m: tpp.prune(m, 0.5, "l1"), "scores neurons: pass structure='neurons'"),
    (lambda m: tpp.prune(m, 0.5, "lamp", structure="neurons"), "unknown neuron criterion 'lamp'"),
    (lambda m: tpp.prune(m, 0.5, tpp.NeuronL2()), "scores neurons"),
    (lambda m: tpp.prune(m, 0.5, tpp.Hybrid(), alpha=0.2), r"Hybrid\(alpha=\.\.\.\)"),
    (lambda m: tpp.prune(m, 0.5, exlude="layers.0"), "did you mean 'exclude'"),
    (lambda m: tpp.prune(m, 0.5, "obs", structure="n:m"), "single weights"),
    (lambda m: tpp.Hybrid(alpha=1.5), r"alpha must lie in \[0, 1\]"),
    (lambda m: tpp.Taylor(batch_size=0), "batch_size must be an int >= 1"),
    (lambda m: tpp.Magnitude(normalizer="mean"), "unknown normalizer 'mean'"),
    (lambda m: tpp.OBD(hessian="diagonal"), "unknown hessian"),
    (lambda m: tpp.OBS(block_size=2.5), "block_size must be an int >= 1"),
    (lambda m: tpp.NeuronNorm(p=3), "p must be an int in"),
])
def test_bad_parts_are_refused_by_name_before_anything_changes(call, message):
    model, _ = _model_and_data()
    with pytest.raises(ValueError, match=message):
        call(model)
    assert all(p.mask is None for p in model.parameters())


def test_registration_checks_what_a_class_declares():
    class Nameless(parts.Criterion):
        def score(self, model, X=None, y=None, *, seed=0):
            return {}

    with pytest.raises(ValueError, match="must declare its own name"):
        tpp.register_criterion(Nameless)
    with pytest.raises(ValueError, match="unknown unit"):
        tpp.register_criterion(type("Wide", (Nameless,), {"name": "wide", "unit": "layers"}))
    with pytest.raises(TypeError, match="subclass of Criterion"):
        tpp.register_criterion(dict)
    with pytest.raises(ValueError, match="must declare its own name"):      # a subclass names itself
        tpp.register_criterion(type("Again", (tpp.Taylor,), {}))
    assert tpp.criterion_class("taylor") is tpp.Taylor
