"""Fine-tuning, LR rewinding, retraining, weight rewinding and distillation: each recovers, masks kept."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyprune import recover
from tinyprune.core.nn import MLP
from tinyprune.experiment import prune_and_recover
from tinyprune.experiment.recipe import Recipe
from tinyprune.fast.optim import SGD, Adam, cosine
from tinyprune.recover import density_scaled_lr
from tinyprune.training import evaluate


def _pruned(model: MLP, sparsity: float = 0.9) -> MLP:
    model = copy.deepcopy(model)
    scores = np.concatenate([np.abs(layer.W.data).ravel() for layer in model.layers])
    threshold = np.sort(scores)[int(sparsity * scores.size) - 1]
    for layer in model.layers:
        layer.W.mask = np.abs(layer.W.data) > threshold
        layer.W.data *= layer.W.mask
    return model


def _masks_kept(model: MLP, reference: MLP) -> bool:
    return all(np.array_equal(a.W.mask, b.W.mask) and np.all(a.W.data[~a.W.mask] == 0)
               for a, b in zip(model.layers, reference.layers))


RECOVERIES = {
    "finetune": lambda m, train, dense, snap: recover.finetune(m, train, epochs=5, batch_size=32),
    "finetune-sgd": lambda m, train, dense, snap: recover.finetune(m, train, epochs=5, batch_size=32,
                                                                   optimizer="sgd", lr=0.01),
    "lr-rewind": lambda m, train, dense, snap: recover.lr_rewind(m, train, epochs=3, batch_size=32),
    "retrain": lambda m, train, dense, snap: recover.retrain(m, train, epochs=10, batch_size=32),
    "rewind-init": lambda m, train, dense, snap: recover.rewind(m, train, snap, epochs=10, batch_size=32),
    "rewind-epoch-1": lambda m, train, dense, snap: recover.rewind(m, train, snap.at_epoch(1), epochs=10,
                                                                   batch_size=32),
    "distill-no-labels": lambda m, train, dense, snap: recover.distill(m, dense, train.X, epochs=5,
                                                                       batch_size=32),
    "distill-kl-mixed": lambda m, train, dense, snap: recover.distill(
        m, dense, train, epochs=5, batch_size=32, output="kl", temperature=4.0, alpha=0.5),
    "distill-probabilities": lambda m, train, dense, snap: recover.distill(
        m, dense, train, epochs=5, batch_size=32, output="probabilities", temperature=2.0, lr=3e-3),
    "reconstruct": lambda m, train, dense, snap: recover.reconstruct(m, dense, train.X),
}


@pytest.mark.parametrize("name", list(RECOVERIES))
def test_each_recovery_raises_accuracy_and_keeps_every_mask(name, clusters, dense):
    train, test = clusters
    model, snapshot = dense
    pruned = _pruned(model)
    before = evaluate(pruned, test)["accuracy"]
    assert before < evaluate(model, test)["accuracy"] - 0.1          # pruning did hurt
    recovering = copy.deepcopy(pruned)
    RECOVERIES[name](recovering, train, model, snapshot)
    assert evaluate(recovering, test)["accuracy"] > before + 0.02
    assert _masks_kept(recovering, pruned)


class _Rates:
    """A ``fit`` callback: the optimizer and its rate at every step."""

    def __init__(self):
        self.optimizers, self.rates = [], []

    def on_step_end(self, model, optimizer, epoch, step):
        self.optimizers.append(optimizer)
        self.rates.append(optimizer.lr)


def test_finetune_trains_at_a_tenth_of_the_original_rate_and_lr_rewind_at_the_original(clusters, dense):
    train, _ = clusters
    rates = _Rates()
    recover.finetune(_pruned(dense[0]), train, epochs=1, batch_size=32, callbacks=[rates])
    assert isinstance(rates.optimizers[0], Adam) and set(rates.rates) == {1e-4}
    assert len(set(map(id, rates.optimizers))) == 1                  # one optimizer, new for the call
    model = _pruned(dense[0])
    optimizer = Adam(model.parameters(), lr=1e-3)
    recover.lr_rewind(model, train, epochs=1, batch_size=32, optimizer=optimizer)
    assert optimizer.steps == len(range(0, len(train), 32)) and optimizer.lr == 1e-3   # an instance goes on


def test_fine_tuning_stops_early_once_recovered_in_the_loop(clusters, dense):
    """"Recovered?" is the loop's question (``prune_and_recover``, after every epoch here), not the verb's."""
    recipe = Recipe.from_file("document").replace(sparsity=0.9, epochs=10, check_every=1, batch_size=32,
                                                  lr=1e-2, tolerance=0.1)
    report = prune_and_recover(copy.deepcopy(dense[0]), clusters, recipe)
    assert (report.verdict, report.epochs_used) == ("recovered", 1)     # within 10 points after one epoch
    report = prune_and_recover(copy.deepcopy(dense[0]), clusters, recipe.replace(tolerance=0.0, epochs=2))
    assert (report.verdict, report.epochs_used) == ("not recovered", 2)  # never within: the whole budget


def test_lr_rewind_replays_the_end_of_the_original_schedule(clusters):
    train, _ = clusters
    model = MLP([20, 8, 4], seed=0)
    original = cosine(1e-2, total_steps=10 * 25)                 # 10 epochs of 25 batches
    rates = _Rates()
    replay = Adam(model.parameters(), lr=1e-2, schedule=lambda t: original(8 * 25 + t))   # its last 2 epochs
    recover.finetune(model, train, epochs=2, batch_size=32, optimizer=replay, callbacks=[rates])
    assert rates.rates[0] == pytest.approx(original(8 * 25))
    assert rates.rates[-1] == pytest.approx(original(10 * 25 - 1))
    recover.lr_rewind(model, train, epochs=1, batch_size=32, optimizer=replay)
    assert replay.steps == 3 * 25                                # lr_rewind went on with the same schedule


def test_retrain_and_rewind_reset_the_surviving_weights(dense):
    model, snapshot = dense
    pruned = _pruned(model)
    fresh = copy.deepcopy(pruned)
    recover.reinitialize(fresh, seed=5)
    expected = MLP(model.sizes, seed=5).layers[0].W.data * pruned.layers[0].W.mask
    np.testing.assert_array_equal(fresh.layers[0].W.data, expected)
    assert np.all(fresh.layers[0].b.data == 0)
    rewound = copy.deepcopy(pruned)
    recover.rewind_weights(rewound, snapshot, epoch=0)
    np.testing.assert_array_equal(rewound.layers[1].W.data,
                                  snapshot.at_epoch(0)["layers.1.W"] * pruned.layers[1].W.mask)
    recover.rewind_weights(rewound, snapshot.at_epoch(1))         # a plain state dict works too
    assert _masks_kept(rewound, pruned)


def test_optimizers_and_schedules_are_built_by_name():
    model = MLP([3, 2], seed=0)
    sgd = recover.build_optimizer(model, "sgd", lr=0.1, momentum=0.9, schedule="cosine", total_steps=10)
    assert isinstance(sgd, SGD) and sgd.momentum == 0.9 and sgd.schedule(5) == pytest.approx(0.05)
    assert recover.build_optimizer(model, sgd) is sgd
    with pytest.raises(ValueError, match="optimizer"):
        recover.build_optimizer(model, "rmsprop")
    with pytest.raises(ValueError, match="schedule"):
        recover.resolve_schedule("linear", 0.1, 10)


def test_distill_passes_gradual_pruning_callbacks_global_steps_through_finetune(clusters, dense):
    train, _ = clusters
    seen = []

    class Spy:
        def on_step_end(self, model, optimizer, epoch, step):
            seen.append((epoch, step))

    recover.distill(_pruned(dense[0]), dense[0], train.X, epochs=2, batch_size=400, callbacks=[Spy()],
                    initial_epoch=3)
    assert seen == [(4, 7), (4, 8), (5, 9), (5, 10)]


def test_rewinding_and_resetting_keep_todays_masks_not_the_snapshots():
    import numpy as np

    from tinyprune import prune, recover
    from tinyprune.core.nn import MLP

    model = MLP([6, 5, 3], seed=0)
    prune.magnitude(model, 0.3)
    early = {k: v.copy() for k, v in model.state_dict().items()}       # carries the 30 % masks
    prune.magnitude(model, 0.7)
    today = prune.get_masks(model)
    recover.rewind_weights(model, early)
    assert all(np.array_equal(model.state_dict()[name + ".mask"], mask) for name, mask in today.items())
    prune.reset(model, early)
    assert not prune.is_pruned(model)


@settings(max_examples=50, deadline=None)
@given(lr=st.floats(1e-6, 1.0), sparsity=st.floats(0.0, 0.999))
def test_the_density_scaled_rate_never_shrinks_and_follows_the_square_root(lr, sparsity):
    scaled = density_scaled_lr(lr, sparsity)
    assert scaled >= lr and density_scaled_lr(lr, sparsity, scaling="none") == lr
    if sparsity > 0.9:   # above the reference: lr sqrt(0.1 / density), so scaled^2 (1 - s) is constant
        assert scaled**2 * (1 - sparsity) == pytest.approx(lr**2 * 0.1, rel=1e-9)
    else:
        assert scaled == lr


@pytest.mark.parametrize("bad", [{"scaling": "linear"}, {"sparsity": 1.0}, {"sparsity": float("nan")},
                                 {"reference": 1.0}, {"reference": -0.1}])
def test_the_density_scaled_rate_refuses_bad_input(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        density_scaled_lr(1e-2, **{"sparsity": 0.95, **bad})
