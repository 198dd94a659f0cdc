"""The ``group`` neuron criterion: Torch-Pruning's group importance (incoming + outgoing weights)."""

from __future__ import annotations

import numpy as np
import pytest

from tinyprune import prune
from tinyprune.core.nn import MLP
from tinyprune.prune import group
from tinyprune.prune.core import hidden_alive, normalise_neuron_scores


def _model() -> MLP:
    """One hidden layer of 3 units with weights small enough to score by hand."""
    model = MLP([2, 3, 2], seed=0)
    model.layers[0].W.data[...] = [[1.0, 0.0, 2.0], [2.0, -1.0, 0.0]]   # Σ w² into the units: 5, 1, 4
    model.layers[0].b.data[...] = [1.0, -2.0, 0.5]                       # b²: 1, 4, 0.25
    model.layers[1].W.data[...] = [[1.0, 1.0], [3.0, 0.0], [0.0, -2.0]]  # Σ w² out of them: 2, 9, 4
    return model


@pytest.mark.parametrize(("options", "expected"), [
    ({"reduction": "mean"}, [3.5, 5.0, 4.0]),                  # (5 + 2)/2, (1 + 9)/2, (4 + 4)/2
    ({"reduction": "sum"}, [7.0, 10.0, 8.0]),
    ({"reduction": "max"}, [5.0, 9.0, 4.0]),
    ({"reduction": "prod"}, [10.0, 9.0, 16.0]),
    ({"reduction": "first"}, [5.0, 1.0, 4.0]),                 # the incoming weights alone
    ({"reduction": "mean", "bias": True}, [8 / 3, 14 / 3, 8.25 / 3]),   # (in + b² + out) / 3
    ({"reduction": "mean", "p": 1}, [2.5, 2.0, 2.0]),          # Σ|w|: in 3, 1, 2; out 2, 3, 2
    ({"reduction": "sum", "p": 3}, [9 + 2, 1 + 27, 8 + 8]),    # Σ|w|³: in 9, 1, 8; out 2, 27, 8
])
def test_each_reduction_matches_a_hand_computation(options, expected):
    scores = prune.make_criterion("group", "neurons", normalizer=None, **options).score(_model())
    np.testing.assert_allclose(scores["layers.0"], expected, rtol=1e-12)


S = np.array([3.5, 5.0, 4.0])        # the mean reduction above, then each normaliser by hand


@pytest.mark.parametrize(("normalizer", "expected"), [
    ("mean", S / (12.5 / 3)),
    ("max", [0.7, 1.0, 0.8]),
    ("sum", [0.28, 0.4, 0.32]),
    ("standarization", [0.0, 1.5 / (1.5 + 1e-8), 0.5 / (1.5 + 1e-8)]),       # (s - min)/(max - min + ε)
    ("gaussian", (S - 12.5 / 3) / (np.sqrt(1.75 / 3) + 1e-8)),               # std with n - 1: Σd² = 7/6
    ("lamp", [3.5 / 12.5, 5.0 / 5.0, 4.0 / 9.0]),                            # s_u / Σ_{v >= u} s_v
])
def test_each_normaliser_matches_a_hand_computation(normalizer, expected):
    scores = prune.make_criterion("group", "neurons", normalizer=normalizer).score(_model())
    np.testing.assert_allclose(scores["layers.0"], expected, rtol=1e-12, atol=1e-15)


def test_the_defaults_are_torch_prunings():
    part = prune.make_criterion("group", "neurons")
    assert (part.p, part.reduction, part.normalizer, part.bias) == (2, "mean", "mean", False)
    assert "group" in prune.parts.criterion_names("neurons") and part.scales_layers


@pytest.mark.parametrize("normalizer", [None, "mean", "max", "sum", "standarization", "gaussian", "lamp"])
def test_global_selection_takes_the_lowest_normalised_group_scores_as_they_are(normalizer):
    model = MLP([6, 7, 5, 3], seed=4)
    scores = group.group_importance(model, normalizer=normalizer)
    flat = np.concatenate([scores["layers.0"], scores["layers.1"]])
    k = round(0.4 * 12)
    removed = set(np.argsort(flat, kind="stable")[:k].tolist())
    assert len(removed & set(range(7))) < 7 and len(removed - set(range(7))) < 5   # the floor is not hit
    prune.prune(model, 0.4, "group", structure="neurons", normalizer=normalizer)
    alive = hidden_alive(model)
    gone = set(np.flatnonzero(~np.concatenate([alive["layers.0"], alive["layers.1"]])).tolist())
    assert gone == removed


def test_the_layer_mean_would_have_chosen_other_units():
    """The skip of ``normalise_neuron_scores`` matters: after max-normalising, dividing by the layer mean
    again would remove other units (so the test above can tell the two apart)."""
    model = MLP([6, 7, 5, 3], seed=4)
    scores = group.group_importance(model, normalizer="max")
    layers = [scores["layers.0"], scores["layers.1"]]
    again = normalise_neuron_scores(layers, [np.ones(7, bool), np.ones(5, bool)])
    order = [set(np.argsort(np.concatenate(s), kind="stable")[:5].tolist())
             for s in (layers, again)]
    assert order[0] != order[1]


def test_the_first_member_alone_ranks_as_the_incoming_norms():
    for p, name in ((1, "l1"), (2, "l2")):
        a, b = MLP([8, 10, 6, 3], seed=1), MLP([8, 10, 6, 3], seed=1)
        prune.prune(a, 0.5, "group", scope="layer", structure="neurons", p=p, reduction="first")
        prune.prune(b, 0.5, name, scope="layer", structure="neurons")
        assert prune.get_masks(a).keys() == prune.get_masks(b).keys()
        assert all((prune.get_masks(a)[k] == mask).all() for k, mask in prune.get_masks(b).items())


def test_removed_units_take_no_part_in_the_normaliser():
    model = MLP([6, 8, 4], seed=2)
    prune.prune(model, 0.25, "group", scope="layer", structure="neurons")      # 2 of 8 units go
    alive = hidden_alive(model)["layers.0"]
    scores = group.group_importance(model, normalizer="mean")["layers.0"]
    raw = group.group_importance(model, normalizer=None)["layers.0"]
    assert (scores[~alive] == 0).all() and (~alive).sum() == 2
    np.testing.assert_allclose(scores[alive], raw[alive] / raw[alive].mean(), rtol=1e-12)
    prune.prune(model, 0.5, "group", scope="layer", structure="neurons")       # 2 more, among the living
    assert (~hidden_alive(model)["layers.0"]).sum() == 4


@pytest.mark.parametrize(("options", "message"), [
    ({"reduction": "median"}, "unknown reduction 'median'.*expected one of: mean, sum, max, prod, first"),
    ({"normalizer": "minmax"}, "unknown normalizer 'minmax'.*standarization, gaussian, lamp"),
    ({"p": 0}, "p must be"),
    ({"bias": "yes"}, "bias must be True or False"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        prune.prune(MLP([4, 3, 2], seed=0), 0.3, "group", structure="neurons", **options)


# ------------------------------------------------------------------ against the live package (optional)
def _torch_mlp(sizes: list[int], seed: int):
    """A PyTorch ``Linear``/``ReLU`` stack and the same weights as a tinyprune ``MLP`` (``W = weightᵀ``)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    layers = []
    for index, (d_in, d_out) in enumerate(zip(sizes, sizes[1:])):
        layers += [torch.nn.Linear(d_in, d_out)] + ([torch.nn.ReLU()] if index < len(sizes) - 2 else [])
    net = torch.nn.Sequential(*layers)
    model = MLP(sizes, seed=0, dtype=np.float64)
    for layer, linear in zip(model.layers, [m for m in net if isinstance(m, torch.nn.Linear)]):
        layer.W.data[...] = linear.weight.detach().double().numpy().T
        layer.b.data[...] = linear.bias.detach().double().numpy()
    return torch, net, model


def test_scores_equal_torch_prunings_group_magnitude_importance():
    """Every reduction x normaliser x p x bias: Torch-Pruning's own score of each MLP group."""
    torch, net, model = _torch_mlp([6, 7, 5, 3], seed=0)
    torch_pruning = pytest.importorskip("torch_pruning")
    graph = torch_pruning.DependencyGraph().build_dependency(net, example_inputs=torch.randn(1, 6))
    groups = list(graph.get_all_groups(ignored_layers=[net[-1]], root_module_types=[torch.nn.Linear]))
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    compared = 0
    for p in (1, 2):
        for reduction in group.REDUCTIONS:
            for normalizer in (None, *group.NORMALIZERS):
                for bias in (False, True):
                    ours = group.group_importance(model, p, reduction, normalizer, bias)
                    theirs = torch_pruning.importance.GroupMagnitudeImportance(
                        p=p, group_reduction=reduction, normalizer=normalizer, bias=bias)
                    for members in groups:
                        root = linears.index(members[0].dep.target.module)
                        want = theirs(members).double().numpy()
                        np.testing.assert_allclose(ours[f"layers.{root}"], want, rtol=2e-5, atol=1e-6)
                        compared += 1
    assert compared == 2 * 5 * 7 * 2 * 2


def test_the_units_pruned_equal_torch_prunings_metapruner():
    """Torch-Pruning removes units; the same units lose their masks here, globally and per layer."""
    compared = 0
    for seed in range(3):
        for normalizer in (None, *group.NORMALIZERS):
            for ratio, scope in ((0.25, "global"), (0.5, "global"), (0.25, "layer")):
                torch, net, model = _torch_mlp([10, 12, 8, 3], seed)
                torch_pruning = pytest.importorskip("torch_pruning")
                biases = [m.bias.detach().numpy().copy() for m in net if isinstance(m, torch.nn.Linear)]
                importance = torch_pruning.importance.GroupMagnitudeImportance(normalizer=normalizer)
                torch_pruning.pruner.MetaPruner(net, torch.randn(1, 10), importance=importance,
                                                global_pruning=scope == "global", pruning_ratio=ratio,
                                                ignored_layers=[net[-1]]).step()
                left = [m.bias.detach().numpy() for m in net if isinstance(m, torch.nn.Linear)]
                theirs = [np.isin(before, after) for before, after in zip(biases, left)]   # kept: bias left
                prune.prune(model, ratio, "group", scope, structure="neurons", normalizer=normalizer)
                alive = hidden_alive(model)
                assert (alive["layers.0"] == theirs[0]).all() and (alive["layers.1"] == theirs[1]).all()
                compared += 1
    assert compared == 3 * 7 * 3
