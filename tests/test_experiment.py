"""The document's loop (prune, dropped?, recover, recovered?, repeat within max_rounds), reports, sweeps."""

import copy
import json

import numpy as np
import pytest

from tinyprune import experiment
from tinyprune.experiment import RECOVERIES, Report, prune_and_recover, sweep

FAST = {"batch_size": 50, "lr_schedule": "constant", "calibration": 400}


def _run(dense, clusters, **options):
    model = copy.deepcopy(dense[0])
    settings = {**FAST, **options}
    return model, prune_and_recover(model, clusters, **settings)


def _masks_exact(model):
    return all(layer.W.mask is not None and np.all(layer.W.data[~layer.W.mask] == 0)
               for layer in model.layers)


@pytest.mark.parametrize("recovery", [r for r in RECOVERIES if r != "none"])
def test_every_recovery_in_the_loop_raises_accuracy_and_keeps_the_masks(recovery, dense, clusters):
    rounds = 8 if recovery == "retrain" else 3           # from scratch needs longer than the others
    model, report = _run(dense, clusters, sparsity=0.9, schedule="one-shot", recovery=recovery, tolerance=0.0,
                         max_rounds=rounds, lr=None, rewind_to=dense[1], batch_size=20)
    assert report.dropped
    assert report.final_accuracy > report.pruned_accuracy + 0.02
    assert report.sparsity == pytest.approx(0.9, abs=0.005)
    assert _masks_exact(model)
    assert len(report.rounds) <= rounds and report.epochs_used <= rounds


def test_the_loop_never_exceeds_max_rounds(dense, clusters):
    _, report = _run(dense, clusters, sparsity=0.95, schedule="one-shot", recovery="finetune", tolerance=0.0,
                     max_rounds=3, epochs_per_round=2, dense_accuracy=1.0)      # unreachable target
    assert [r.round for r in report.rounds] == [1, 2, 3]
    assert report.epochs_used == 6 and len(report.accuracy_per_epoch) == 6
    assert not report.recovered


def test_the_loop_stops_once_recovered(dense, clusters):
    _, pruned = _run(dense, clusters, sparsity=0.9, schedule="one-shot", recovery="none", tolerance=0.0)
    target = pruned.pruned_accuracy + 0.05                 # one round of lr-rewind gets there
    _, report = _run(dense, clusters, sparsity=0.9, schedule="one-shot", recovery="lr-rewind", tolerance=0.0,
                     max_rounds=5, lr=None, dense_accuracy=target)
    assert report.dropped and report.recovered
    assert len(report.rounds) == 1 and report.epochs_used == 1
    assert report.rounds[-1].recovered


def test_no_drop_means_no_recovery(dense, clusters):
    model, report = _run(dense, clusters, sparsity=0.3, schedule="one-shot", recovery="finetune",
                         tolerance=0.05)
    assert not report.dropped and report.recovered
    assert report.rounds == [] and report.epochs_used == 0
    assert report.final_accuracy == report.pruned_accuracy


def test_a_closed_form_recovery_takes_one_round_and_no_epoch(dense, clusters):
    _, report = _run(dense, clusters, sparsity=0.9, schedule="one-shot", recovery="reconstruct",
                     tolerance=0.0, max_rounds=3, dense_accuracy=1.0)
    assert len(report.rounds) == 1 and report.epochs_used == 0 and report.closed_form_seconds > 0


def test_gradual_pruning_reaches_the_target_inside_the_budget(dense, clusters):
    model, report = _run(dense, clusters, sparsity=0.9, schedule="gradual", recovery="lr-rewind",
                         tolerance=0.0, max_rounds=3, lr=3e-3, lr_schedule="cosine", dense_accuracy=1.0,
                         start_sparsity=0.0, ramp=2 / 3)
    assert report.sparsity == pytest.approx(0.9, abs=0.005)
    assert report.epochs_used == 3 and len(report.rounds) == 3
    assert report.rounds[0].sparsity < 0.9                         # still pruning during round 1
    assert 0 < report.pruned_accuracy <= 1 and _masks_exact(model)
    assert report.closed_form_seconds == 0                          # no head start


def test_gradual_pruning_with_a_head_start(dense, clusters):
    model, report = _run(dense, clusters, sparsity=0.95, schedule="gradual", recovery="distill",
                         tolerance=0.0, max_rounds=2, dense_accuracy=1.0, start_sparsity=0.8,
                         start_criterion="obs")
    assert report.closed_form_seconds > 0                           # OBS and reconstruction ran
    assert 0.8 <= report.rounds[0].sparsity <= 0.95 and report.sparsity == pytest.approx(0.95, abs=0.005)
    model, report = _run(dense, clusters, sparsity=0.5, schedule="gradual", recovery="distill",
                         tolerance=0.0, max_rounds=2, start_sparsity=0.9)   # the head start is the target
    assert report.sparsity == pytest.approx(0.5, abs=0.005) and report.rounds == [] and not report.dropped


def test_iterative_pruning_prunes_once_per_round(dense, clusters):
    _, report = _run(dense, clusters, sparsity=0.9, schedule="iterative", prune_steps=3, recovery="finetune",
                     tolerance=0.0, max_rounds=4, dense_accuracy=1.0, lr=1e-3)
    targets = experiment.iterative_steps(0.9, 3)
    assert [round(r.sparsity, 2) for r in report.rounds[:3]] == [round(s, 2) for s in targets]
    assert len(report.rounds) == 4 and "prune" not in report.rounds[3].action


def test_obs_and_neuron_pruning_run_through_the_loop(dense, clusters):
    model, report = _run(dense, clusters, sparsity=0.8, criterion="obs", schedule="one-shot",
                         recovery="none", tolerance=0.0)
    assert report.sparsity == pytest.approx(0.8, abs=0.02) and report.epochs_used == 0
    model, report = _run(dense, clusters, sparsity=0.5, criterion="l2", structure="neurons",
                         schedule="one-shot", recovery="finetune", tolerance=0.0, max_rounds=1)
    assert sum(report.summary["layers"][i]["alive"] for i in range(2)) == 32


def test_the_report_json_has_every_field(dense, clusters, tmp_path):
    _, report = _run(dense, clusters, sparsity=0.9, schedule="one-shot", recovery="finetune", max_rounds=1)
    path = tmp_path / "report.json"
    values = json.loads(report.to_json(path))
    assert json.loads(path.read_text()) == values
    for key in ("dense_accuracy", "pruned_accuracy", "final_accuracy", "sparsity", "layer_sparsity",
                "epochs_used", "seconds", "rounds", "accuracy_per_epoch", "params", "nonzeros", "flops_dense",
                "flops_effective", "config", "recovered", "dropped", "summary", "dense_summary"):
        assert key in values, key
    assert set(values["layer_sparsity"]) == {"layers.0.W", "layers.1.W", "layers.2.W"}
    assert values["config"]["recovery"] == "finetune"
    assert Report.from_dict(values).to_dict() == values
    text = str(report)
    assert "dense" in text and "recovered" in text and "layers.0.W" in text


def test_defaults_are_the_recipe():
    import inspect

    signature = inspect.signature(prune_and_recover)
    for key, value in experiment.RECIPE.items():
        if key == "criterion":      # None: the recipe's for weights, a neuron criterion for neurons
            assert signature.parameters[key].default is None
            continue
        assert signature.parameters[key].default == value, key


@pytest.mark.parametrize("structure, expected", [("weights", experiment.RECIPE["criterion"]),
                                                 ("neurons", "magnitude")])
def test_default_criterion_fits_the_structure(structure, expected, dense, clusters):
    report = prune_and_recover(copy.deepcopy(dense[0]), clusters, sparsity=0.5, structure=structure,
                               schedule="one-shot", recovery="none", max_rounds=1, dense_accuracy=1.0)
    assert report.config["criterion"] == expected
    assert report.sparsity > 0


@pytest.mark.parametrize("bad", [{"schedule": "sometimes"}, {"recovery": "pray"}, {"criterion": "vibes"},
                                 {"max_rounds": 0}, {"tolerance": -0.1},
                                 {"schedule": "gradual", "recovery": "reconstruct"},
                                 {"schedule": "one-shot", "recovery": "rewind"},
                                 {"schedule": "iterative", "prune_steps": 5, "max_rounds": 2}])
def test_bad_arguments_are_refused_before_anything_changes(bad, dense, clusters):
    model = copy.deepcopy(dense[0])
    before = model.state_dict()
    with pytest.raises(ValueError):
        prune_and_recover(model, clusters, **bad)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_sweep_averages_over_seeds_and_workers_give_the_same_numbers(dense, clusters):
    options = dict(criteria=["magnitude", "random"], sparsities=[0.8, 0.9], recoveries=["finetune"],
                   seeds=[0, 1], schedule="one-shot", max_rounds=1, tolerance=0.0, progress=False, **FAST)
    inline = sweep(dense[0], clusters, workers=1, **options)
    parallel = sweep(dense[0], clusters, workers=2, **options)
    assert len(inline.runs) == 8 and len(inline.cells) == 4
    assert [r["final_accuracy"] for r in inline.runs] == [r["final_accuracy"] for r in parallel.runs]
    cell = inline.cell("random", 0.9, "finetune")
    finals = [r["final_accuracy"] for r in inline.runs if (r["criterion"], r["sparsity"]) == ("random", 0.9)]
    assert cell["n"] == 2 and cell["final_mean"] == pytest.approx(np.mean(finals))
    assert cell["final_std"] == pytest.approx(np.std(finals, ddof=1))
    assert "±" in str(inline) and json.loads(inline.to_json())["cells"]


def test_failed_runs_are_recorded_and_left_out_of_the_cells(dense, clusters):
    runs = [{"criterion": "gradient", "sparsity": 0.98, "recovery": "finetune", "seed": 0, "error": "cut"},
            {"criterion": "magnitude", "sparsity": 0.98, "recovery": "finetune", "seed": 0,
             "pruned_accuracy": 0.5, "final_accuracy": 0.8, "epochs_used": 3, "seconds": 1.0,
             "recovered": False}]
    assert [(c["criterion"], c["n"]) for c in experiment.aggregate(runs)] == [("magnitude", 1)]
    with pytest.raises(ValueError, match="every run of the sweep failed"):
        sweep(dense[0], clusters, sparsities=[0.9], schedule="iterative", prune_steps=5, max_rounds=1,
              progress=False)


def test_the_loop_is_one_import_away():
    import tinyprune as tp

    assert tp.prune_and_recover is prune_and_recover and tp.sweep is experiment.sweep
    assert tp.Report is Report and tp.RECIPE is experiment.RECIPE
    assert {"prune_and_recover", "sweep", "Report", "Sweep", "RECIPE"} <= set(tp.__all__)
