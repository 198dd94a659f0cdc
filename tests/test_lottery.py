"""Lottery-ticket controls and iterative magnitude pruning: exact per-layer counts, determinism by seed,
rewinding as written by hand, and the test split deciding nothing."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.fast.optim import Adam
from tinyprune.prune import core, get_masks
from tinyprune.recover import (
    iterative_magnitude_pruning,
    lottery,
    lottery_table,
    reinitialize_control,
    rewind_weights,
    shuffle_control,
    shuffle_mask,
)
from tinyprune.training import WeightSnapshot, evaluate, fit


def blobs(n=240, d=8, k=3, seed=0):
    generator = np.random.default_rng(seed)
    X = generator.normal(size=(n, d)).astype(np.float32)
    y = (X @ generator.normal(size=(d, k))).argmax(axis=1)
    return Dataset(X, y, num_classes=k)


def splits(seed=0):
    return blobs(seed=seed), blobs(n=90, seed=seed + 100)


# ------------------------------------------------------------ shuffle_mask
@settings(max_examples=25)
@given(sparsity=st.floats(0.0, 0.9), seed=st.integers(0, 2**31 - 1), biases=st.booleans())
def test_shuffled_masks_keep_exactly_the_per_layer_counts(sparsity, seed, biases):
    model = MLP([7, 5, 4, 3], seed=1)
    core.prune(model, sparsity, "magnitude", scope="layer", prune_biases=biases)
    before = get_masks(model)
    after = shuffle_mask(model, seed=seed)
    assert sorted(after) == sorted(before)
    for name, mask in after.items():
        assert mask.dtype == bool and mask.shape == before[name].shape
        assert int(mask.sum()) == int(before[name].sum())
    for p in model.parameters():
        if p.mask is not None:
            assert np.all(p.data[~p.mask] == 0)


def test_shuffle_mask_is_deterministic_by_seed_and_leaves_unmasked_parameters_alone():
    def shuffled(seed):
        model = MLP([20, 10, 3], seed=0)
        core.prune(model, 0.5, "magnitude", scope="layer")
        bias = model.layers[0].b.data.copy()
        masks = shuffle_mask(model, seed=seed)
        assert model.layers[0].b.mask is None and np.array_equal(model.layers[0].b.data, bias)
        return masks

    a, b, c = shuffled(3), shuffled(3), shuffled(4)
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(a["layers.0.W"], c["layers.0.W"])


def test_shuffle_then_rewind_is_the_rewound_weights_under_the_new_mask():
    model = MLP([6, 5, 3], seed=0)
    initial = model.state_dict()
    model.layers[0].W.data += 1.0                      # "trained"
    core.prune(model, 0.6, "magnitude", scope="layer")
    masks = shuffle_mask(model, seed=2)
    rewind_weights(model, initial)
    for name, p in model.named_parameters():
        expected = initial[name] * masks[name] if name in masks else initial[name]
        np.testing.assert_array_equal(p.data, expected)


# ------------------------------------------------------------ the controls
def pruned_model():
    model = MLP([8, 12, 3], seed=0)
    core.prune(model, 0.5, "magnitude", scope="layer")
    return model


def test_controls_are_deterministic_by_seed():
    data = splits()
    initial = MLP([8, 12, 3], seed=0).state_dict()
    rows = [shuffle_control(pruned_model(), data, initial, epochs=2, seed=s, batch_size=32)
            for s in (1, 1, 2)]
    assert rows[0] == rows[1] and rows[0].branch == "shuffle"
    assert rows[0] != rows[2]
    models = [pruned_model() for _ in range(3)]
    rows = [reinitialize_control(m, data, epochs=2, seed=0, init_seed=s, batch_size=32)
            for m, s in zip(models, (5, 5, 6))]
    assert rows[0] == rows[1] and rows[0].branch == "reinit"
    assert all(np.array_equal(a.data, b.data) for a, b in zip(models[0].parameters(), models[1].parameters()))
    assert not np.array_equal(models[0].layers[0].W.data, models[2].layers[0].W.data)


def test_reinitialize_control_keeps_the_mask_and_draws_fresh_weights():
    model, data = pruned_model(), splits()
    masks = get_masks(model)
    row = reinitialize_control(model, data, epochs=1, seed=0, batch_size=32)
    assert all(np.array_equal(masks[n], m) for n, m in get_masks(model).items())
    assert row.remaining == int(sum(m.sum() for n, m in masks.items() if n.endswith(".W")))
    assert 0 <= row.test_accuracy <= 1 and 0 <= row.val_accuracy <= 1


# ------------------------------------------------------------ IMP
def test_imp_level_one_is_train_prune_rewind_train_written_by_hand():
    train, test = splits()
    model = MLP([8, 12, 3], seed=0)
    by_hand = copy.deepcopy(model)
    rows = iterative_magnitude_pruning(model, (train, test), levels=1, rate=0.3, epochs_per_level=3,
                                       rewind_to=0, seed=4, val=0.25, batch_size=32)
    fit_rows, val_rows = train.split(0.75, seed=4)
    initial = by_hand.state_dict()
    fit(by_hand, fit_rows, epochs=3, batch_size=32, seed=4, progress=False,
        optimizer=Adam(by_hand.parameters()))
    dense_test = evaluate(by_hand, test)["accuracy"]
    core.prune(by_hand, 0.3, "magnitude", scope="global")
    rewind_weights(by_hand, initial)
    fit(by_hand, fit_rows, epochs=3, batch_size=32, seed=4, progress=False,
        optimizer=Adam(by_hand.parameters()))
    for a, b in zip(model.parameters(), by_hand.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert [(r.level, r.branch) for r in rows] == [(0, "imp"), (1, "imp")]
    assert rows[0].test_accuracy == dense_test and rows[0].sparsity == 0
    assert rows[1].test_accuracy == evaluate(by_hand, test)["accuracy"]
    assert rows[1].val_accuracy == evaluate(by_hand, val_rows)["accuracy"]


@pytest.mark.parametrize("rewind_to", [0, "1ep", "5it"])
def test_imp_sparsity_per_level_is_exact_and_masks_only_lose_entries(rewind_to):
    model = MLP([8, 12, 3], seed=0)
    total = 8 * 12 + 12 * 3
    rows = iterative_magnitude_pruning(model, splits(), levels=4, rate=0.25, epochs_per_level=2,
                                       rewind_to=rewind_to, batch_size=32, controls=("shuffle", "reinit"))
    imp = [r for r in rows if r.branch == "imp"]
    assert [r.level for r in imp] == [0, 1, 2, 3, 4]
    for row in rows:
        pruned = round((1 - 0.75 ** row.level) * total)
        assert row.remaining == total - pruned and row.sparsity == pytest.approx(pruned / total)
    assert {(r.level, r.branch) for r in rows if r.branch != "imp"} == {
        (level, branch) for level in range(1, 5) for branch in ("shuffle", "reinit")}
    shorter = MLP([8, 12, 3], seed=0)
    iterative_magnitude_pruning(shorter, splits(), levels=3, rate=0.25, epochs_per_level=2,
                                rewind_to=rewind_to, batch_size=32)
    for earlier, later in zip(get_masks(shorter).values(), get_masks(model).values()):
        assert np.all(later <= earlier)


def test_imp_is_deterministic_and_the_test_split_decides_nothing():
    train, test = splits()
    runs = []
    for other_test in (test, blobs(n=90, seed=7)):
        model = MLP([8, 12, 3], seed=0)
        rows = iterative_magnitude_pruning(model, (train, other_test), levels=2, epochs_per_level=2,
                                           batch_size=32, controls=("shuffle", "reinit"), seed=3)
        runs.append((rows, model.state_dict()))
    (rows_a, state_a), (rows_b, state_b) = runs
    assert all(np.array_equal(state_a[n], state_b[n]) for n in state_a)
    assert [r.val_accuracy for r in rows_a] == [r.val_accuracy for r in rows_b]
    again = iterative_magnitude_pruning(MLP([8, 12, 3], seed=0), (train, test), levels=2, epochs_per_level=2,
                                        batch_size=32, controls=("shuffle", "reinit"), seed=3)
    assert again == rows_a
    table = lottery_table(rows_a)
    assert "shuffle test" in table and "reinit val" in table and len(table.splitlines()) == 2 + 3


@pytest.mark.parametrize("kwargs, message", [
    ({"levels": -1}, "levels"),
    ({"rate": 0.0}, "rate"),
    ({"rate": 1.0}, "rate"),
    ({"controls": "shuffle"}, "controls"),
    ({"controls": ("random",)}, "controls"),
    ({"rewind_to": "3 epochs"}, "rewind_to"),
    ({"rewind_to": -1}, "rewind_to"),
    ({"rewind_to": 5}, "beyond"),
    ({"rewind_to": "1000it"}, "beyond"),
    ({"val": 1.5}, "val"),
    ({"epochs_per_level": 0}, "epochs_per_level"),
    ({"seed": -1}, "seed"),
    ({"seed": np.random.default_rng(0)}, "seed"),
])
def test_imp_rejects_bad_arguments_by_name(kwargs, message):
    arguments = {"levels": 1, "epochs_per_level": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        iterative_magnitude_pruning(MLP([8, 4, 3], seed=0), splits(), **arguments)


def test_imp_rejects_data_that_is_not_train_and_test():
    with pytest.raises(ValueError, match="data must be"):
        iterative_magnitude_pruning(MLP([8, 4, 3]), blobs(), levels=1, epochs_per_level=1)


def test_rewind_point_spellings():
    assert lottery.rewind_point(3) == ("epoch", 3)
    assert lottery.rewind_point("0it") == ("step", 0)
    with pytest.raises(ValueError, match="rewind_to"):
        lottery.rewind_point(True)


def test_imp_rewinds_to_a_step_snapshot():
    train, test = splits()
    model = MLP([8, 12, 3], seed=0)
    by_hand = copy.deepcopy(model)
    iterative_magnitude_pruning(model, (train, test), levels=1, epochs_per_level=2, rewind_to="3it",
                                batch_size=32, val=None)
    snapshot = WeightSnapshot(epochs=(), steps=[3])
    fit(by_hand, train, epochs=2, batch_size=32, progress=False, callbacks=[snapshot],
        optimizer=Adam(by_hand.parameters()))
    core.prune(by_hand, 0.2, "magnitude")
    rewind_weights(by_hand, snapshot.at_step(3))
    fit(by_hand, train, epochs=2, batch_size=32, progress=False, optimizer=Adam(by_hand.parameters()))
    for a, b in zip(model.parameters(), by_hand.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
