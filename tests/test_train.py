"""fit / evaluate / predict: determinism, both engines on one trajectory, callbacks, masks, bad input."""

import json
import sys

import numpy as np
import pytest

from tinyprune.core import losses
from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.fast.optim import SGD, Adam
from tinyprune.training import Callback, History, WeightSnapshot, epoch_rng, evaluate, fit, predict


def make_data(n=100, d=12, k=3, seed=0, dtype=np.float32):
    """A small learnable problem: the label is the argmax of three fixed projections of X."""
    generator = np.random.default_rng(seed)
    X = generator.normal(size=(n, d)).astype(dtype)
    y = (X @ generator.normal(size=(d, k))).argmax(axis=1).astype(np.int64)
    return Dataset(X, y, num_classes=k)


def weights(model):
    return [p.data.copy() for p in model.parameters()]


# ------------------------------------------------------------------ determinism and engines
def test_same_seed_gives_bit_identical_weights():
    data = make_data()
    runs = []
    for _ in range(2):
        model = MLP([12, 16, 3], seed=1)
        history = fit(model, data, epochs=3, batch_size=16, seed=7, progress=False)
        runs.append((weights(model), history))
    for a, b in zip(runs[0][0], runs[1][0]):
        assert np.array_equal(a, b)
    assert runs[0][1].loss == runs[1][1].loss
    other = MLP([12, 16, 3], seed=1)
    fit(other, data, epochs=3, batch_size=16, seed=8, progress=False)
    assert not np.array_equal(weights(other)[0], runs[0][0][0])   # another seed, another order


@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_engines_follow_the_same_trajectory_in_float64(loss):
    data = make_data(dtype=np.float64)
    results = {}
    for engine in ("backprop", "autograd"):
        model = MLP([12, 16, 8, 3], seed=0, dtype=np.float64)
        model.layers[1].W.mask = np.random.default_rng(3).random((16, 8)) > 0.3
        model.layers[1].W.data *= model.layers[1].W.mask
        history = fit(model, data, epochs=2, batch_size=16, loss=loss, engine=engine, val=data,
                      progress=False)
        results[engine] = (weights(model), history)
    for a, b in zip(results["backprop"][0], results["autograd"][0]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    h_bp, h_ag = results["backprop"][1].to_dict(), results["autograd"][1].to_dict()
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(h_bp[key], h_ag[key], rtol=1e-9)
    assert h_bp["epoch"] == h_ag["epoch"] == [1, 2]


def test_training_learns_and_history_is_complete():
    data = make_data(n=200)
    model = MLP([12, 32, 3], seed=0)
    history = fit(model, data, epochs=15, batch_size=32, val=data, progress=False,
                  optimizer=Adam(model.parameters(), lr=0.01))
    assert history.loss[-1] < history.loss[0]
    assert history.last["val_accuracy"] > 0.85
    assert history.epochs == list(range(1, 16)) and len(history) == 15
    assert all(s >= 0 for s in history.seconds)
    json.dumps(history.to_dict())   # JSON-able
    assert history[-1] == history.last and set(history.last) == set(History.KEYS)


def test_history_without_val_and_joined():
    data = make_data()
    model = MLP([12, 4, 3], seed=0)
    first = fit(model, data, epochs=1, progress=False)
    second = fit(model, data, epochs=2, progress=False, initial_epoch=1)
    assert first.val_loss == [None] and first.val_accuracy == [None]
    assert second.epochs == [2, 3]
    assert (first + second).epochs == [1, 2, 3]
    assert History().last == {}


def test_accepts_an_x_y_pair_and_other_optimizers():
    data = make_data()
    model = MLP([12, 4, 3], seed=0)
    history = fit(model, (data.X, data.y), epochs=1, optimizer=SGD(model.parameters(), lr=0.1),
                  progress=False)
    assert len(history) == 1


def test_epoch_order_depends_only_on_seed_and_epoch():
    assert np.array_equal(epoch_rng(3, 5).permutation(10), epoch_rng(3, 5).permutation(10))
    assert not np.array_equal(epoch_rng(3, 5).permutation(50), epoch_rng(3, 6).permutation(50))


def test_generator_seed_is_accepted():
    data = make_data()
    a, b = MLP([12, 4, 3], seed=0), MLP([12, 4, 3], seed=0)
    fit(a, data, epochs=1, seed=np.random.default_rng(5), progress=False)
    fit(b, data, epochs=1, seed=np.random.default_rng(5), progress=False)
    assert np.array_equal(a.layers[0].W.data, b.layers[0].W.data)


# ------------------------------------------------------------------ callbacks
class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, model, optimizer):
        self.calls.append(("begin", optimizer.steps))

    def on_step_end(self, model, optimizer, epoch, step):
        self.calls.append(("step", epoch, step, optimizer.steps))

    def on_epoch_end(self, model, optimizer, epoch, logs):
        self.calls.append(("epoch", epoch, logs["epoch"]))

    def on_train_end(self, model, optimizer):
        self.calls.append(("end",))


def test_callbacks_get_the_right_epoch_and_step_counts():
    data = make_data(n=100)                # batch 32 -> 4 steps per epoch (the last has 4 rows)
    recorder = Recorder()
    fit(MLP([12, 4, 3], seed=0), data, epochs=3, batch_size=32, progress=False, callbacks=[recorder])
    steps = [c for c in recorder.calls if c[0] == "step"]
    assert [(e, s) for _, e, s, _ in steps] == [(e, s) for s in range(1, 13) for e in [(s - 1) // 4 + 1]]
    assert all(s == optimizer_steps for _, _, s, optimizer_steps in steps)   # 1-based, after the update
    assert [c for c in recorder.calls if c[0] == "epoch"] == [("epoch", e, e) for e in (1, 2, 3)]
    assert recorder.calls[0] == ("begin", 0) and recorder.calls[-1] == ("end",)
    assert recorder.calls[5] == ("epoch", 1, 1)   # after the 4 steps of epoch 1


def test_step_count_continues_with_initial_epoch():
    recorder = Recorder()
    fit(MLP([12, 4, 3], seed=0), make_data(n=100), epochs=1, batch_size=32, initial_epoch=2,
        progress=False, callbacks=[recorder])
    assert [(c[1], c[2]) for c in recorder.calls if c[0] == "step"] == [(3, 9), (3, 10), (3, 11), (3, 12)]


def test_the_core_fit_resumes_with_a_range_of_epochs_as_fit_does_with_initial_epoch():
    """``core.train.fit(epochs=range(3, 5))`` runs epochs 3 and 4 as ``tp.fit(initial_epoch=2, epochs=2)``."""
    from tinyprune.core import optim, train
    data, models = make_data(n=100), [MLP([12, 4, 3], seed=0) for _ in range(2)]
    history = fit(models[0], data, epochs=2, initial_epoch=2, batch_size=32, seed=5, progress=False,
                  optimizer=SGD(models[0].parameters(), lr=0.1))
    records = train.fit(models[1], data, epochs=range(3, 5), batch_size=32, seed=5,
                        optimizer=optim.SGD(models[1].parameters(), lr=0.1))
    assert history.epochs == [record["epoch"] for record in records] == [3, 4]
    assert history.loss == [record["loss"] for record in records]
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert np.array_equal(a.data, b.data)
    for bad in (range(0, 2), range(3, 3), range(2, 8, 2)):
        with pytest.raises(ValueError, match="epochs as a range"):
            train.fit(MLP([12, 4, 3], seed=0), data, epochs=bad)


def test_tp_train_and_tp_fit_are_the_fit_users_call():
    import tinyprune as tp
    assert tp.train.fit is tp.fit is fit and tp.train.History is History


def test_callbacks_may_have_only_some_methods():
    class OnlyEpochs:
        def __init__(self):
            self.epochs = []

        def on_epoch_end(self, model, optimizer, epoch, logs):
            self.epochs.append(epoch)

    partial = OnlyEpochs()
    fit(MLP([12, 4, 3], seed=0), make_data(), epochs=2, progress=False, callbacks=[partial])
    assert partial.epochs == [1, 2]


class PruneAt(Callback):
    """Prune the smallest half of the first layer's weights after a given step (gradual pruning)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, model, optimizer, epoch, step):
        if step == self.step:
            W = model.layers[0].W
            mask = np.abs(W.data) >= np.median(np.abs(W.data))
            W.mask = mask
            W.data *= mask


@pytest.mark.parametrize("engine", ["backprop", "autograd"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_callback_pruning_mid_training_keeps_pruned_weights_zero(engine, optimizer):
    data = make_data(n=200)
    model = MLP([12, 16, 3], seed=0)
    opt = (Adam(model.parameters(), lr=0.01) if optimizer == "adam"
           else SGD(model.parameters(), lr=0.1, momentum=0.9))
    history = fit(model, data, epochs=3, batch_size=32, engine=engine, optimizer=opt, progress=False,
                  callbacks=[PruneAt(step=5)])
    W = model.layers[0].W
    assert W.mask is not None and np.count_nonzero(~W.mask) == W.data.size // 2
    assert np.all(W.data[~W.mask] == 0)
    assert np.all(np.isfinite(history.loss))
    assert np.count_nonzero(W.data[W.mask]) == np.count_nonzero(W.mask)   # survivors still train


def test_weight_snapshot_stores_epoch_zero_and_later_epochs_and_steps():
    data = make_data()
    model = MLP([12, 4, 3], seed=0)
    initial = model.state_dict()
    snapshot = WeightSnapshot(epochs=[0, 2], steps=[0, 3])
    fit(model, data, epochs=3, batch_size=32, progress=False, callbacks=[snapshot])
    for name, values in initial.items():
        assert np.array_equal(snapshot.at_epoch(0)[name], values)
        assert np.array_equal(snapshot.at_step(0)[name], values)
    reference = MLP([12, 4, 3], seed=0)
    fit(reference, data, epochs=2, batch_size=32, progress=False)
    for name, values in reference.state_dict().items():
        assert np.array_equal(snapshot.at_epoch(2)[name], values)
    assert sorted(snapshot.steps) == [0, 3] and sorted(snapshot.epochs) == [0, 2]
    with pytest.raises(KeyError, match="stored: \\[0, 2\\]"):
        snapshot.at_epoch(1)
    # snapshots are copies: training on does not change them
    assert not np.array_equal(snapshot.at_epoch(2)["layers.0.W"], model.layers[0].W.data)


# ------------------------------------------------------------------ evaluate / predict
def test_evaluate_matches_a_direct_computation_for_any_batch_size():
    data = make_data(n=53)
    model = MLP([12, 8, 3], seed=2, dtype=np.float64)
    logits = model(data.X.astype(np.float64))
    expected_loss = losses.cross_entropy(logits, data.y)
    expected_accuracy = float(np.mean(logits.argmax(1) == data.y))
    for batch_size in (1, 7, 1000):
        scores = evaluate(model, data, batch_size=batch_size)
        assert scores["accuracy"] == pytest.approx(expected_accuracy)
        assert scores["loss"] == pytest.approx(expected_loss, rel=1e-12)
    se = evaluate(model, data, loss="squared_error")["loss"]
    assert se == pytest.approx(losses.loss_and_grad("squared_error", logits, data.y)[0], rel=1e-12)


def test_predict_returns_int64_argmax():
    data = make_data(n=30)
    model = MLP([12, 8, 3], seed=0)
    labels = predict(model, data.X, batch_size=7)
    assert labels.dtype == np.int64 and labels.shape == (30,)
    assert np.array_equal(labels, model(data.X).argmax(axis=1))


def test_evaluate_by_hand_on_a_two_row_example():
    model = MLP([2, 2], seed=0, dtype=np.float64)
    model.layers[0].W.data[...] = np.eye(2)
    X = np.array([[2.0, 0.0], [0.0, 1.0]])
    scores = evaluate(model, (X, np.array([0, 0])))
    assert scores["accuracy"] == 0.5
    expected = (np.log(1 + np.exp(-2.0)) + np.log(1 + np.exp(1.0))) / 2
    assert scores["loss"] == pytest.approx(expected)


# ------------------------------------------------------------------ progress
def test_progress_lines_print_one_line_per_epoch(capsys):
    fit(MLP([12, 4, 3], seed=0), make_data(), epochs=2, val=make_data(seed=1), progress="lines")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "val_acc" in lines[1]


def test_progress_true_is_silent_when_stdout_is_not_a_terminal(capsys):
    fit(MLP([12, 4, 3], seed=0), make_data(), epochs=1, progress=True)
    fit(MLP([12, 4, 3], seed=0), make_data(), epochs=1, progress=False)
    assert capsys.readouterr().out == ""


def test_progress_bar_uses_tqdm_and_falls_back_to_lines(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    fit(MLP([12, 4, 3], seed=0), make_data(), epochs=1, progress="bar")
    assert "epoch 1/1" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "tqdm", None)          # tqdm not installed
    fit(MLP([12, 4, 3], seed=0), make_data(), epochs=1, progress="bar")
    assert capsys.readouterr().out.startswith("epoch 1/1  loss")


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 1.5}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"engine": "magic"}, "engine"),
    ({"loss": "hinge"}, "loss"),
    ({"progress": "loud"}, "progress"),
    ({"seed": -1}, "seed"),
    ({"initial_epoch": -1}, "initial_epoch"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, message):
    options = {"epochs": 1, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        fit(MLP([12, 4, 3], seed=0), make_data(), **options)


def test_dataset_that_does_not_fit_the_model_is_refused():
    with pytest.raises(ValueError, match="features per row but the model expects 10"):
        fit(MLP([10, 4, 3], seed=0), make_data(d=12), epochs=1, progress=False)
    with pytest.raises(ValueError, match="labels up to 2 but the model has only 2 outputs"):
        fit(MLP([12, 4, 2], seed=0), make_data(k=3), epochs=1, progress=False)
    with pytest.raises(ValueError, match="val has"):
        fit(MLP([12, 4, 3], seed=0), make_data(), val=make_data(d=5), epochs=1, progress=False)
    with pytest.raises(ValueError, match="features per row"):
        evaluate(MLP([10, 3], seed=0), make_data(d=12))
    with pytest.raises(ValueError, match="expects 10"):
        predict(MLP([10, 3], seed=0), np.zeros((2, 12)))
    with pytest.raises(ValueError, match="Dataset or an"):
        fit(MLP([12, 3], seed=0), "mnist", epochs=1)


def test_optimizer_of_another_model_is_refused():
    model, other = MLP([12, 4, 3], seed=0), MLP([12, 4, 3], seed=0)
    with pytest.raises(ValueError, match="not this model's"):
        fit(model, make_data(), epochs=1, optimizer=Adam(other.parameters()), progress=False)
