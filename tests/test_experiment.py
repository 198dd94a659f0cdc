"""The document's loop over a Recipe (prune, dropped?, recover, recovered?, repeat within the budget),
the validation split that decides, reports, sweeps and their executors."""

import copy
import json

import numpy as np
import pytest

import tinyprune as tp
from tinyprune import experiment
from tinyprune.data import Dataset
from tinyprune.experiment import RECOVERIES, Report, prune_and_recover, sweep
from tinyprune.experiment.recipe import Recipe
from tinyprune.experiment.run import split_in_place

FAST = Recipe.from_file("document").replace(batch_size=50, lr_schedule="constant", calibration=400)


def _run(dense, clusters, **changes):
    model = copy.deepcopy(dense[0])
    return model, prune_and_recover(model, clusters, FAST, rewind_to=dense[1], **changes)


def _masks_exact(model):
    return all(layer.W.mask is not None and np.all(layer.W.data[~layer.W.mask] == 0)
               for layer in model.layers)


@pytest.mark.parametrize("recovery", [r for r in RECOVERIES if r != "none"])
def test_every_recovery_in_the_loop_raises_accuracy_and_keeps_the_masks(recovery, dense, clusters):
    epochs = 8 if recovery == "retrain" else 3           # from scratch needs longer than the others
    model, report = _run(dense, clusters, sparsity=0.9, recovery=recovery, tolerance=0.0, epochs=epochs,
                         batch_size=20)
    assert report.dropped
    assert report.final_val_accuracy > report.pruned_val_accuracy + 0.02
    assert report.sparsity == pytest.approx(0.9, abs=0.005)
    assert _masks_exact(model)
    assert len(report.rounds) <= epochs and report.epochs_used <= epochs


def test_the_loop_never_exceeds_its_budget(dense, clusters):
    _, report = _run(dense, clusters, sparsity=0.97, recovery="finetune", tolerance=0.0, epochs=6,
                     check_every=2)
    assert [r.number for r in report.rounds] == [1, 2, 3]
    assert report.epochs_used == 6 and len(report.accuracy_per_epoch) == 6


def test_the_loop_stops_once_recovered_on_the_validation_rows(dense, clusters):
    _, pruned = _run(dense, clusters, sparsity=0.9, recovery="none", tolerance=0.0)
    gap = pruned.dense_val_accuracy - pruned.pruned_val_accuracy
    assert gap > 0.05
    _, report = _run(dense, clusters, sparsity=0.9, recovery="lr-rewind", tolerance=gap - 0.02, epochs=5)
    assert report.dropped and report.recovered and report.rounds[-1].recovered
    assert len(report.rounds) == report.epochs_used < 5
    assert report.final_val_accuracy >= report.dense_val_accuracy - (gap - 0.02)


def test_no_drop_means_no_recovery(dense, clusters):
    _, report = _run(dense, clusters, sparsity=0.3, recovery="finetune", tolerance=0.05)
    assert report.verdict == "no drop" and not report.dropped and not report.recovered
    assert report.rounds == [] and report.epochs_used == 0


def test_the_test_split_decides_nothing(dense, clusters):
    """Changing the test rows' labels changes what is reported and nothing that is decided."""
    train, test = clusters
    shuffled = Dataset(test.X, np.random.default_rng(1).permutation(test.y), 4)
    runs = [_run(dense, (train, split), sparsity=0.9, recovery="finetune", epochs=4)
            for split in (test, shuffled)]
    (model_a, a), (model_b, b) = runs
    assert [r.number for r in a.rounds] == [r.number for r in b.rounds] and a.epochs_used == b.epochs_used
    assert a.accuracy_per_epoch == b.accuracy_per_epoch
    assert all(np.array_equal(p.data, q.data) for p, q in zip(model_a.parameters(), model_b.parameters()))
    assert a.final_accuracy != b.final_accuracy


def test_the_validation_split_is_held_out_of_the_training_rows(dense, clusters):
    _, report = _run(dense, clusters, sparsity=0.5, recovery="none", validation=0.25)
    assert report.rows == {"train": 600, "val": 200, "test": 400}
    train, test = clusters
    given = train.split(0.5, seed=3)
    _, report = _run(dense, (given[0], given[1], test), sparsity=0.5, recovery="none")
    assert report.rows == {"train": 400, "val": 400, "test": 400}


def test_a_closed_form_recovery_takes_one_round_and_no_epoch(dense, clusters):
    _, report = _run(dense, clusters, sparsity=0.9, recovery="reconstruct", tolerance=0.0)
    assert report.epochs_used == 0 and len(report.rounds) == 1 and report.closed_form_seconds > 0


def test_gradual_pruning_reaches_the_target_inside_the_budget(dense, clusters):
    model, report = _run(dense, clusters, sparsity=0.9, schedule="gradual", recovery="distill", epochs=3,
                         check_every=3, ramp=0.5)
    assert report.sparsity == pytest.approx(0.9, abs=0.005) and report.epochs_used == 3
    assert _masks_exact(model)


def test_gradual_pruning_with_a_head_start(dense, clusters):
    model, report = _run(dense, clusters, sparsity=0.9, schedule="gradual", recovery="distill", epochs=2,
                         head_start=0.8, head_start_criterion="obs", criterion="obd")
    assert report.sparsity == pytest.approx(0.9, abs=0.005) and report.closed_form_seconds > 0
    assert "obs to 80%" in str(report)


@pytest.mark.parametrize("power", [1.0, 3.0])
def test_iterative_pruning_prunes_once_per_round_along_the_polynomial(power, dense, clusters):
    _, report = _run(dense, clusters, sparsity=0.9, schedule="iterative", steps=3, power=power,
                     recovery="finetune", epochs=3, tolerance=0.0)
    expected = tp.prune.polynomial_steps(0.9, 3, power)
    assert [r.sparsity for r in report.rounds] == pytest.approx(expected, abs=0.005)


def test_obs_and_neuron_pruning_run_through_the_loop(dense, clusters):
    _, report = _run(dense, clusters, sparsity=0.8, criterion="obs", recovery="none", tolerance=0.0)
    assert report.sparsity == pytest.approx(0.8, abs=0.02) and report.epochs_used == 0
    _, report = _run(dense, clusters, sparsity=0.5, criterion="l2", structure="neurons", scope="layer",
                     recovery="finetune", tolerance=0.0, epochs=1)
    assert sum(report.summary["layers"][i]["alive"] for i in range(2)) == 32


def test_the_report_json_has_every_field(dense, clusters, tmp_path):
    _, report = _run(dense, clusters, sparsity=0.9, recovery="finetune", epochs=1)
    path = tmp_path / "report.json"
    values = json.loads(report.to_json(path))
    assert json.loads(path.read_text()) == values
    for key in ("dense_accuracy", "pruned_accuracy", "final_accuracy", "dense_val_accuracy",
                "pruned_val_accuracy", "final_val_accuracy", "sparsity", "layer_sparsity", "dense_sparsity",
                "epochs_used", "seconds", "rounds", "accuracy_per_epoch", "params", "nonzeros", "flops_dense",
                "flops_effective", "recipe", "recovered", "dropped", "summary", "dense_summary", "rows"):
        assert key in values, key
    assert set(values["layer_sparsity"]) == {"layers.0.W", "layers.1.W", "layers.2.W"}
    assert values["recipe"] == FAST.replace(sparsity=0.9, recovery="finetune", epochs=1).to_dict()
    assert Recipe.from_dict(values["recipe"]).sparsity == 0.9
    assert Report.from_dict(values).to_dict() == values
    text = str(report)
    assert "validation accuracy" in text and "test accuracy" in text and "layers.0.W" in text


def test_the_dense_column_is_measured_not_assumed(dense, clusters):
    model = copy.deepcopy(dense[0])
    prune_and_recover(model, clusters, FAST, sparsity=0.5, recovery="none")     # already 50 % pruned
    report = prune_and_recover(model, clusters, FAST, sparsity=0.8, recovery="none")
    assert report.dense_sparsity == pytest.approx(0.5, abs=0.005)
    assert report.dense_summary["total"]["flops_effective"] < report.dense_summary["total"]["flops_dense"]
    assert "50.00 %" in str(report)


def test_the_default_recipe_is_the_benchmarks_winner():
    recipe = Recipe()
    assert recipe == Recipe.from_file("default")
    assert (recipe.head_start_criterion, recipe.criterion, recipe.schedule, recipe.recovery) == (
        "obs", "obd", "gradual", "distill")


@pytest.mark.parametrize("bad", [{"schedule": "sometimes"}, {"recovery": "pray"}, {"criterion": "vibes"},
                                 {"epochs": 0}, {"tolerance": -0.1}, {"sparsity": float("nan")},
                                 {"sparsity": -0.1}, {"sparsity": "0.9"}, {"lr": float("nan")},
                                 {"lr_scaling": "linear"},
                                 {"schedule": "gradual", "recovery": "reconstruct"},
                                 {"schedule": "iterative", "steps": 5, "epochs": 2},
                                 {"structure": "n:m"}, {"sparsity": {"layers.7.W": 0.5}},
                                 {"structure": "neurons", "criterion": "l2", "sparsity": 0.99,
                                  "scope": "layer"}])
def test_bad_recipes_are_refused_before_anything_changes(bad, dense, clusters):
    model = copy.deepcopy(dense[0])
    before = model.state_dict()
    with pytest.raises(ValueError):
        prune_and_recover(model, clusters, FAST, **bad)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_rewind_without_early_weights_is_refused(dense, clusters):
    with pytest.raises(ValueError, match="early weights"):
        prune_and_recover(copy.deepcopy(dense[0]), clusters, FAST, sparsity=0.9, recovery="rewind")


def test_finetune_and_lr_rewind_differ_by_their_own_rates(dense, clusters):
    a, report_a = _run(dense, clusters, sparsity=0.9, recovery="finetune", epochs=1, tolerance=0.0)
    b, report_b = _run(dense, clusters, sparsity=0.9, recovery="lr-rewind", epochs=1, tolerance=0.0)
    assert "lr 0.0001" in report_a.rounds[0].action and "lr 0.001" in report_b.rounds[0].action
    assert not np.array_equal(a.layers[0].W.data, b.layers[0].W.data)


@pytest.mark.parametrize("sparsity, rate", [(0.5, "0.01"), (0.9, "0.01"), (0.98, "0.0223607"),
                                            ({"layers.0.W": 0.98, "layers.1.W": 0.98, "layers.2.W": 0.98},
                                             "0.0223607")])
def test_the_own_rate_grows_as_the_network_thins(sparsity, rate, dense, clusters):
    # distill's own rate is 10 x original_lr = 0.01; sqrt-density multiplies it by sqrt(0.1 / density)
    changes = dict(sparsity=sparsity, recovery="distill", schedule="gradual", head_start=0.0, epochs=1)
    _, report = _run(dense, clusters, lr_scaling="sqrt-density", **changes)
    assert f"lr {rate} " in report.rounds[0].action
    _, unscaled = _run(dense, clusters, lr_scaling="none", **changes)
    assert "lr 0.01 " in unscaled.rounds[0].action
    _, explicit = _run(dense, clusters, lr_scaling="sqrt-density", lr=0.003, **changes)
    assert "lr 0.003 " in explicit.rounds[0].action   # an explicit rate is what was asked for


def test_the_paper_recipes_keep_their_papers_rate():
    assert Recipe().lr_scaling == "sqrt-density"
    for name in ("document", "han2015", "zhu2017", "lottery", "renda2020"):
        assert Recipe.from_file(name).lr_scaling == "none"


def test_sweep_averages_over_seeds_and_workers_give_the_same_numbers(dense, clusters):
    grid = {"criterion": ["magnitude", "random"], "sparsity": [0.8, 0.9], "recovery": ["finetune"]}
    options = dict(grid=grid, seeds=[0, 1], progress=False)
    recipe = FAST.replace(epochs=1, tolerance=0.0)
    inline = sweep(dense[0], clusters, recipe, executor=1, **options)
    parallel = sweep(dense[0], clusters, recipe, executor=2, **options)
    assert len(inline.runs) == 8 and len(inline.cells) == 4
    assert [r["final_accuracy"] for r in inline.runs] == [r["final_accuracy"] for r in parallel.runs]
    cell = inline.cell("random", 0.9, "finetune")
    finals = [r["final_accuracy"] for r in inline.runs if (r["criterion"], r["sparsity"]) == ("random", 0.9)]
    assert cell["n"] == 2 and cell["final_mean"] == pytest.approx(np.mean(finals))
    assert cell["final_std"] == pytest.approx(np.std(finals, ddof=1))
    assert "±" in str(inline) and json.loads(inline.to_json())["cells"]


def test_sweep_runs_on_any_executor(dense, clusters):
    from concurrent.futures import ThreadPoolExecutor

    options = dict(grid={"criterion": ["magnitude"], "sparsity": [0.9], "recovery": ["finetune", "none"]},
                   seeds=[0], progress=False)
    inline = sweep(dense[0], clusters, FAST.replace(epochs=1), **options)
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = sweep(dense[0], clusters, FAST.replace(epochs=1), executor=pool, **options)
    assert [r["final_accuracy"] for r in inline.runs] == [r["final_accuracy"] for r in threaded.runs]


def test_sweep_on_a_dask_cluster(dense, clusters):
    distributed = pytest.importorskip("distributed")
    options = dict(grid={"criterion": ["magnitude"], "sparsity": [0.8, 0.9], "recovery": ["finetune"]},
                   seeds=[0], progress=False)
    inline = sweep(dense[0], clusters, FAST.replace(epochs=1), **options)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        remote = sweep(dense[0], clusters, FAST.replace(epochs=1), executor=client.get_executor(), **options)
    assert [r["final_accuracy"] for r in inline.runs] == [r["final_accuracy"] for r in remote.runs]


def test_failed_runs_are_recorded_and_left_out_of_the_cells(dense, clusters):
    runs = [{"criterion": "gradient", "sparsity": 0.98, "recovery": "finetune", "seed": 0, "error": "cut"},
            {"criterion": "magnitude", "sparsity": 0.98, "recovery": "finetune", "seed": 0,
             "pruned_accuracy": 0.5, "final_accuracy": 0.8, "epochs_used": 3, "seconds": 1.0,
             "recovered": False}]
    assert [(c["criterion"], c["n"]) for c in experiment.aggregate(runs)] == [("magnitude", 1)]
    with pytest.raises(ValueError, match="at least one"):
        sweep(dense[0], clusters, FAST, grid={"sparsity": []}, progress=False)
    with pytest.raises(ValueError, match="grid varies"):
        sweep(dense[0], clusters, FAST, grid={"lr": [1e-3]}, progress=False)


def test_the_loop_is_one_import_away():
    import tinyprune as tp

    assert tp.prune_and_recover is prune_and_recover and tp.sweep is experiment.sweep
    assert tp.Report is Report and tp.DEFAULT_RECIPE == tp.Recipe()
    assert {"prune_and_recover", "sweep", "Report", "Sweep", "Recipe", "RECIPES"} <= set(tp.__all__)


def test_gradual_movement_pruning_uses_the_scores_of_its_own_training(dense, clusters, monkeypatch):
    from tinyprune.prune import movement

    monkeypatch.setattr(movement, "accumulate", lambda *a, **k: pytest.fail("re-accumulated on a copy"))
    model, report = _run(dense, clusters, sparsity=0.8, schedule="gradual", criterion="movement",
                         recovery="finetune", epochs=2, check_every=2)
    assert report.sparsity == pytest.approx(0.8, abs=0.005) and _masks_exact(model)


@pytest.mark.parametrize("changes", [
    {"allocation": "erk"}, {"allocation": "lamp"}, {"allocation": "sensitivity"},
    {"structure": "blocks", "block": (4, 4)}, {"criterion": "magnitude_activation"},
    {"structure": "neurons", "criterion": "fpgm", "sparsity": 0.5},
    {"structure": "neurons", "criterion": "l2", "scope": "global", "sparsity": 0.5},
])
def test_the_structured_and_per_layer_parts_run_from_a_recipe(changes, dense, clusters):
    settings = {"sparsity": 0.8, "recovery": "finetune", "epochs": 1, **changes}
    model, report = _run(dense, clusters, **settings)
    if "allocation" in changes:
        assert report.sparsity == pytest.approx(0.8, abs=0.002)
        assert len(set(round(v, 3) for v in report.layer_sparsity.values())) > 1     # not uniform
    if changes.get("structure") == "neurons":
        alive = [row["alive"] for row in report.summary["layers"][:2]]
        assert sum(alive) == 32 and min(alive) >= 1
    assert report.epochs_used == 1


@pytest.mark.parametrize("structure, changes", [("neurons", {"criterion": "l2", "sparsity": 0.5}),
                                                ("n:m", {"sparsity": 0.5}), ("blocks", {"sparsity": 0.5})])
def test_the_default_recipe_takes_any_structure(structure, changes, dense, clusters):
    """The gradual head start prunes structures by the recipe's own criterion (OBS removes single weights)."""
    model = copy.deepcopy(dense[0])
    report = prune_and_recover(model, clusters, structure=structure, epochs=1, calibration=200, **changes)
    assert report.recipe["head_start_criterion"] == "obs" and report.closed_form_seconds > 0
    assert report.sparsity > 0.3


def test_sparsity_zero_prunes_and_moves_nothing_even_with_the_default_head_start(dense, clusters):
    model = copy.deepcopy(dense[0])
    report = prune_and_recover(model, clusters, tp.Recipe(), sparsity=0.0, batch_size=50, calibration=400)
    assert report.verdict == "no drop" and report.sparsity == 0 and report.epochs_used == 0
    assert all(np.array_equal(p.data, q.data) for p, q in zip(model.parameters(), dense[0].parameters()))
    assert [step["kind"] for step in report.steps] == ["dense", "pruned", "final"]


def test_one_verdict_feeds_dropped_recovered_the_rounds_and_the_printed_table(dense, clusters):
    for sparsity, tolerance in ((0.3, 0.05), (0.97, 0.0), (0.9, 0.2)):
        report = prune_and_recover(copy.deepcopy(dense[0]), clusters, FAST, sparsity=sparsity, epochs=2,
                                   check_every=1, tolerance=tolerance, recovery="finetune")
        assert report.verdict in experiment.report.VERDICTS
        assert report.dropped == (report.verdict != "no drop")
        assert report.recovered == (report.verdict == "recovered")
        assert not (report.recovered and not report.dropped)
        assert [r.recovered for r in report.rounds] == [False] * (len(report.rounds) - 1) + (
            [report.recovered] if report.rounds else [])
        assert f"verdict: {report.verdict} (" in str(report)
        assert json.loads(report.to_json())["verdict"] == report.verdict


def test_a_layer_left_with_a_handful_of_weights_is_one_warning_line(dense, clusters):
    report = prune_and_recover(copy.deepcopy(dense[0]), clusters, FAST, recovery="none",
                               sparsity={"layers.0.W": 0.99, "layers.1.W": 0.5})
    assert any(w.startswith("layers.0.W keeps 6 of 640 weights") for w in report.warnings)
    assert sum(line.startswith("warning: layers.0.W") for line in str(report).splitlines()) == 1


def test_splitting_in_place_holds_the_training_rows_once_and_chooses_the_same_rows():
    g = np.random.default_rng(3)
    X, y = g.normal(size=(1000, 7)).astype(np.float32), g.integers(0, 4, size=1000)
    loaded = Dataset(X.copy(), y)
    copied = experiment.three_splits((Dataset(X.copy(), y), Dataset(X[:9], y[:9])), 0.1, seed=5)
    moved = experiment.three_splits((loaded, Dataset(X[:9], y[:9])), 0.1, seed=5, in_place=True)
    for mine, theirs in zip(moved, copied):
        assert np.array_equal(mine.X, theirs.X) and np.array_equal(mine.y, theirs.y)
        assert mine.num_classes == theirs.num_classes
    assert np.shares_memory(moved[0].X, loaded.X) and np.shares_memory(moved[0].y, loaded.y)
    assert not np.shares_memory(moved[1].X, loaded.X)       # the validation rows: a copy, taken first


def test_splitting_in_place_refuses_what_split_refuses_and_copies_read_only_rows():
    rows = np.ones((10, 2), dtype=np.float32)
    with pytest.raises(tp.errors.DataError, match="strictly between 0 and 1"):
        split_in_place(Dataset(rows, [0, 1] * 5), 1.0)
    rows.flags.writeable = False
    first, _ = split_in_place(Dataset(rows, [0, 1] * 5), 0.6, seed=0)
    assert len(first) == 6 and not np.shares_memory(first.X, rows)


def _gradual_obd_masks(model, data, kind, steps=9):
    pruning = kind(0.9, begin_step=0, end_step=steps - 1, every=1, initial_sparsity=0.5, criterion="obd",
                   data=data)
    for step in range(steps):
        for layer in model.layers:          # as if training moved the weights between pruning steps
            layer.W.data *= np.float32(1.0 + 0.01 * (step % 3))
        pruning.on_step_end(model, None, 0, step)
    return [layer.W.mask.copy() for layer in model.layers]


def test_gradual_obd_reuses_its_hessian_diagonal_between_steps_and_computes_it_at_the_last(
        dense, clusters, monkeypatch):
    from tinyprune.experiment import schedules

    data = (clusters[0].X[:200], clusters[0].y[:200])
    computed = []
    diagonal = tp.prune.criteria.hessian_diagonal
    monkeypatch.setattr(tp.prune.criteria, "hessian_diagonal",
                        lambda model, *a, **k: computed.append(1) or diagonal(model, *a, **k))
    monkeypatch.setattr(schedules, "CURVATURE_EVERY", 4)
    _gradual_obd_masks(copy.deepcopy(dense[0]), data, schedules._GradualOBD, steps=8)
    assert len(computed) == 3                # of 8 pruning steps: the 1st and 5th (every 4th), the 8th (last)
    monkeypatch.setattr(schedules, "CURVATURE_EVERY", 1)    # every step: the plain gradual OBD, exactly
    ours = _gradual_obd_masks(copy.deepcopy(dense[0]), data, schedules._GradualOBD)
    plain = _gradual_obd_masks(copy.deepcopy(dense[0]), data, tp.prune.PolynomialPruning)
    assert all(np.array_equal(a, b) for a, b in zip(ours, plain))



def test_calibration_on_every_training_row_is_the_training_rows_not_a_copy(clusters):
    from tinyprune.experiment.run import calibration_rows

    train = clusters[0]
    X, y = calibration_rows(train, 10_000, seed=0)
    assert X is train.X and y is train.y
    X, y = calibration_rows(train, 50, seed=0)
    rows = np.sort(np.random.default_rng(0).choice(len(train), 50, replace=False))
    assert np.array_equal(X, train.X[rows]) and np.array_equal(y, train.y[rows])
