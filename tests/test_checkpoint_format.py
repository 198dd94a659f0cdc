"""Checkpoint format v2: the sparse encoding, its size, version 1 files, crafted files, targets, metadata."""

from __future__ import annotations

import json
import os
import stat
import threading
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyprune import checkpoint, prune
from tinyprune.checkpoint import decode_masked, encode_masked, load, save, training_meta
from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.errors import CheckpointError, OutputError
from tinyprune.fast.optim import Adam
from tinyprune.testing import mlp_sizes, seeds
from tinyprune.training import History, fit

DOCUMENT_SIZES = [784, 64, 64, 10]


def randomly_pruned(sizes, seed, keep, dtype=np.float32):
    """An MLP whose every W and b has a mask keeping a fraction ``keep`` of entries (pruned ones +0.0)."""
    model = MLP(sizes, seed=seed, dtype=dtype)
    generator = np.random.default_rng(seed)
    for parameter in model.parameters():
        parameter.mask = generator.random(parameter.shape) < keep
        parameter.data[...] = np.where(parameter.mask, parameter.data, 0)
    return model


def assert_same_model(a, b):
    """Same architecture, masks, and weights bit for bit; a pruned entry may be -0.0 in ``a`` (pruning
    multiplies by the mask) and is +0.0 in ``b``: the same exact zero, so the logits are equal too."""
    assert a.sizes == b.sizes and a.dtype == b.dtype
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert p.data.dtype == q.data.dtype and np.array_equal(p.data, q.data), name
        assert (p.mask is None and q.mask is None) or np.array_equal(p.mask, q.mask), name
        kept = np.ones(p.shape, dtype=bool) if p.mask is None else p.mask
        assert p.data[kept].tobytes() == q.data[kept].tobytes(), name
        assert not np.any(np.signbit(q.data[~kept])), name
    X = np.random.default_rng(0).normal(size=(5, a.sizes[0])).astype(a.dtype)
    assert np.array_equal(a(X), b(X))


def rewrite(path, change):
    """Change the arrays of a checkpoint with ``change(arrays)`` and store a valid digest again."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    arrays["sha256"] = np.array(checkpoint._digest({k: v for k, v in arrays.items() if k != "sha256"}))
    np.savez_compressed(path, **arrays)


# ------------------------------------------------------------------ the sparse encoding
@given(mlp_sizes(max_width=40), seeds, st.sampled_from([0.0, 0.01, 0.1, 0.5, 0.9, 1.0]),
       st.sampled_from([np.float32, np.float64]))
def test_round_trip_is_bit_identical_for_any_mask(tmp_path_factory, sizes, seed, keep, dtype):
    model = randomly_pruned(sizes, seed, keep, dtype)
    path = save(tmp_path_factory.mktemp("ckpt") / "m.npz", model)
    restored = load(path)
    assert restored.version == checkpoint.FORMAT_VERSION == 2
    assert_same_model(model, restored.model)


@given(st.integers(1, 300), seeds, st.floats(0, 1))
def test_encode_picks_the_smaller_mask_encoding_and_decode_inverts_it(size, seed, keep):
    generator = np.random.default_rng(seed)
    mask = generator.random(size) < keep
    values = np.where(mask, generator.normal(size=size), 0.0)
    entries = encode_masked("w", values, mask)
    survivors = int(mask.sum())
    index_bytes = survivors * (1 if size <= 256 else 2)
    expected = "index/w" if index_bytes < -(-size // 8) else "bits/w"
    assert set(entries) == {"values/w", expected}
    decoded, decoded_mask = decode_masked("w", (size,), np.dtype(np.float64), entries)
    assert np.array_equal(decoded_mask, mask) and decoded.tobytes() == values.tobytes()


def test_a_survivor_that_is_zero_stays_unpruned():
    model = MLP([3, 2], seed=0)
    model.layers[0].W.mask = np.array([[True, False], [True, True], [False, True]])
    model.layers[0].W.data[...] = np.where(model.layers[0].W.mask, 1.0, 0.0)
    model.layers[0].W.data[0, 0] = 0.0                  # kept by the mask, but zero: still not pruned
    entries = encode_masked("W", model.layers[0].W.data, model.layers[0].W.mask)
    _, mask = decode_masked("W", (3, 2), np.dtype(np.float32), entries)
    assert mask[0, 0] and mask.sum() == 4


@pytest.mark.parametrize("sparsity, bound", [(0.9, 0.20), (0.98, 0.08)])
def test_pruned_document_model_file_is_a_fraction_of_the_dense_one(tmp_path, sparsity, bound):
    """A property of the format (not a timing): survivors + bits/indices, compressed, against dense.

    Every weight is drawn from one normal distribution, so that global magnitude pruning spreads over the
    layers as it does on a trained model (Glorot's per-layer scales would empty the first layer at 98 %).
    """
    model = MLP(DOCUMENT_SIZES, seed=0)
    generator = np.random.default_rng(0)
    for parameter in model.parameters():
        parameter.data[...] = generator.normal(0, 0.1, size=parameter.shape)
    dense = save(tmp_path / "dense.npz", model).stat().st_size
    prune.magnitude(model, sparsity, scope="global")
    pruned = save(tmp_path / "pruned.npz", model).stat().st_size
    assert pruned <= bound * dense, (pruned, dense, pruned / dense)
    assert_same_model(model, load(tmp_path / "pruned.npz").model)


# ------------------------------------------------------------------ version 1 files
def write_version_1(path, model, meta=None):
    """A checkpoint as the version 1 code wrote it: dense values, a bool mask, np.savez (no compression)."""
    arrays = {"format": np.array(checkpoint.MARKER), "version": np.array(1, dtype=np.int64),
              "model.json": np.frombuffer(json.dumps({"class": "MLP", **model.config()}).encode(), np.uint8),
              "meta.json": np.frombuffer(json.dumps(meta or {}).encode(), np.uint8)}
    for name, parameter in model.named_parameters():
        arrays[f"param/{name}"] = parameter.data
        if parameter.mask is not None:
            arrays[f"mask/{name}"] = parameter.mask
    arrays["sha256"] = np.array(checkpoint._digest(arrays))
    np.savez(path, **arrays)
    return path


def test_version_1_files_stay_readable(tmp_path):
    model = randomly_pruned([6, 5, 3], seed=1, keep=0.5)
    restored = load(write_version_1(tmp_path / "old.npz", model, {"epochs": 3}))
    assert restored.version == 1 and restored.meta == {"epochs": 3}
    assert_same_model(model, restored.model)
    # ... and saved again they become version 2, the same model
    again = load(save(tmp_path / "new.npz", restored.model))
    assert again.version == 2
    assert_same_model(model, again.model)


def test_version_1_with_version_2_entries_is_refused(tmp_path):
    path = write_version_1(tmp_path / "old.npz", MLP([3, 2], seed=0))
    rewrite(path, lambda a: a.update({"bits/layers.0.W": np.zeros(1, np.uint8)}))
    with pytest.raises(CheckpointError, match="(unexpected|mask entry)"):
        load(path)


# ------------------------------------------------------------------ crafted files
def crafted_sizes(path, sizes):
    def change(arrays):
        config = json.loads(arrays["model.json"].tobytes())
        config["sizes"] = sizes
        arrays["model.json"] = np.frombuffer(json.dumps(config).encode(), np.uint8)
    rewrite(path, change)


@pytest.mark.parametrize("pruned", [False, True])
@pytest.mark.parametrize("sizes", [[10**7, 10**7, 10], [4, 10**7, 2], [4, 5, 2], [4, 3, 2, 2], [9, 3, 2]])
def test_sizes_in_model_json_are_checked_against_the_arrays_before_anything_is_built(tmp_path, sizes,
                                                                                      pruned):
    model = randomly_pruned([4, 3, 2], seed=0, keep=0.3) if pruned else MLP([4, 3, 2], seed=0)
    path = save(tmp_path / "m.npz", model)
    crafted_sizes(path, sizes)
    with pytest.raises(CheckpointError, match="(do not fit|more than the|has shape|must be)"):
        load(path)


def test_index_encoding_cannot_claim_a_huge_matrix(tmp_path):
    model = randomly_pruned([200, 3], seed=0, keep=0.01)
    path = save(tmp_path / "m.npz", model)
    with np.load(path) as archive:
        assert "index/layers.0.W" in archive.files        # few survivors: indices, not bits
    crafted_sizes(path, [10**7, 10**7])
    with pytest.raises(CheckpointError, match="more than the 67108864 a checkpoint may hold"):
        load(path)


@pytest.mark.parametrize("sizes", [[True, 2], [3, 0], [3, 2.0], "34", [3]])
def test_malformed_sizes_are_refused(tmp_path, sizes):
    path = save(tmp_path / "m.npz", MLP([3, 2], seed=0))
    crafted_sizes(path, sizes)
    with pytest.raises(CheckpointError, match="sizes must list at least two positive integers"):
        load(path)


def test_an_npy_header_claiming_more_than_its_member_holds_is_refused_before_reading(tmp_path):
    path = tmp_path / "bomb.npz"
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = (10**9,)                                 # 4 GB claimed, 8 bytes stored
    with zipfile.ZipFile(path, "w") as archive, archive.open("format.npy", "w") as member:
        np.lib.format.write_array_header_1_0(member, header)
        member.write(b"\0" * 8)
    with pytest.raises(CheckpointError, match="'format' claims more data than it stores"):
        load(path)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update({"bits/layers.0.W": a["bits/layers.0.W"] | np.uint8(1)}), "padding bits set"),
    (lambda a: a.update({"bits/layers.0.W": a["bits/layers.0.W"][:-1]}), "must be 2 uint8 bytes"),
    (lambda a: a.update({"values/layers.0.W": a["values/layers.0.W"].astype(np.float64)}), "1-D float32"),
    (lambda a: a.update({"param/layers.0.W": np.zeros((3, 4), np.float32)}), "stored twice"),
    (lambda a: a.pop("bits/layers.0.W"), "neither bits/layers.0.W nor index/layers.0.W"),
])
def test_broken_sparse_entries_are_refused(tmp_path, change, message):
    model = MLP([3, 4], seed=0)
    prune.magnitude(model, 0.5)                     # 12 weights: a mask of 2 bytes of bits
    path = save(tmp_path / "m.npz", model)
    with np.load(path) as archive:
        assert {"values/layers.0.W", "bits/layers.0.W"} <= set(archive.files)
    rewrite(path, change)
    with pytest.raises(CheckpointError, match=message):
        load(path)


@pytest.mark.parametrize("index, message", [([5, 3], "increasing"), ([1, 1], "increasing"),
                                            ([2, 600], "below 600")])
def test_broken_indices_are_refused(tmp_path, index, message):
    model = randomly_pruned([200, 3], seed=0, keep=0.01)
    path = save(tmp_path / "m.npz", model)

    def change(arrays):
        arrays["index/layers.0.W"] = np.array(index, dtype=np.uint16)
        arrays["values/layers.0.W"] = np.ones(len(index), np.float32)
    rewrite(path, change)
    with pytest.raises(CheckpointError, match=message):
        load(path)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_a_non_finite_weight_gives_a_clean_error_and_no_warning(tmp_path, capfd, bad):
    path = save(tmp_path / "m.npz", MLP([3, 2], seed=0))

    def change(arrays):
        arrays["param/layers.0.W"] = arrays["param/layers.0.W"].copy()
        arrays["param/layers.0.W"][1, 1] = bad
    rewrite(path, change)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match="layers.0.W holds inf or NaN values"):
            load(path)
    assert capfd.readouterr().err == ""
    model = MLP([3, 2], seed=0)
    model.layers[0].b.data[0] = bad
    with pytest.raises(ValueError, match="layers.0.b holds inf or NaN"):
        save(tmp_path / "bad.npz", model)
    assert not (tmp_path / "bad.npz").exists()


def test_nonzero_weights_under_a_false_mask_are_refused_at_save(tmp_path):
    model = MLP([3, 2], seed=0)
    model.layers[0].W.mask = np.zeros((3, 2), dtype=bool)          # set without zeroing the weights
    with pytest.raises(ValueError, match="layers.0.W has nonzero weights where its mask is False"):
        save(tmp_path / "m.npz", model)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ what is read and written
def test_a_fifo_or_a_folder_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(pytest.raises(CheckpointError, load, fifo)),
                              daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "load() blocked on a FIFO"
    assert "is a FIFO, not a regular file" in str(outcome[0].value)
    with pytest.raises(CheckpointError, match="is a folder, not a regular file"):
        load(tmp_path)


def test_a_symlink_to_a_checkpoint_is_read(tmp_path):
    path = save(tmp_path / "m.npz", MLP([3, 2], seed=0))
    (tmp_path / "link.npz").symlink_to(path)
    assert load(tmp_path / "link.npz").model.sizes == [3, 2]


def test_save_refuses_targets_that_are_not_regular_files(tmp_path):
    model = MLP([3, 2], seed=0)
    os.mkfifo(tmp_path / "pipe.npz")
    other = save(tmp_path / "other.npz", model, meta={"n": 1})
    (tmp_path / "link.npz").symlink_to(other)
    for target, kind in [(tmp_path / "pipe.npz", "FIFO"), (tmp_path / "link.npz", "symbolic link"),
                         ("/dev/null", "device"), (tmp_path, "folder")]:
        with pytest.raises(OutputError, match=f"is a {kind}, not a regular file"):
            save(target, model)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe.npz").st_mode)
    assert (tmp_path / "link.npz").is_symlink() and load(other).meta == {"n": 1}
    with pytest.raises(OutputError, match="already exists"):
        save(other, model, overwrite=False)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_save_follows_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        path = save(tmp_path / "m.npz", MLP([3, 2], seed=0))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("meta, where", [({1: "a"}, "meta has the key 1"),
                                         ({"a": {2.5: 3}}, "meta\\['a'\\] has the key 2.5"),
                                         ({"runs": [{"x": 1}, {None: 2}]},
                                          "meta\\['runs'\\]\\[1\\] has the key None"),
                                         ({(1, 2): 0}, "has the key \\(1, 2\\)")])
def test_non_string_meta_keys_are_refused_at_save(tmp_path, meta, where):
    with pytest.raises(ValueError, match=where + ".*JSON object keys are strings"):
        save(tmp_path / "m.npz", MLP([3, 2], seed=0), meta=meta)
    assert list(tmp_path.iterdir()) == []


def test_save_load_fine_tune_keeps_pruned_weights_at_exactly_zero(tmp_path):
    generator = np.random.default_rng(0)
    X = generator.normal(size=(96, 8)).astype(np.float32)
    data = Dataset(X, (X[:, 0] + X[:, 1] > 0).astype(np.int64), num_classes=2)
    model = MLP([8, 6, 2], seed=0)
    fit(model, data, epochs=2, batch_size=16, progress=False)
    prune.magnitude(model, 0.7)
    pruned = {name: ~p.mask for name, p in model.named_parameters() if p.mask is not None}
    restored = load(save(tmp_path / "m.npz", model)).model
    fit(restored, data, epochs=3, batch_size=16, optimizer=Adam(restored.parameters(), lr=1e-2),
        progress=False)
    parameters = dict(restored.named_parameters())
    for name, where in pruned.items():
        assert np.all(parameters[name].data[where] == 0), name
        assert np.array_equal(parameters[name].mask, ~where), name
    assert not np.array_equal(restored.layers[0].W.data, model.layers[0].W.data)   # it did train


# ------------------------------------------------------------------ resuming
def with_meta(tmp_path, meta):
    return load(save(tmp_path / "m.npz", MLP([3, 2], seed=0), meta=meta))


GOOD_HISTORY = {key: [0.5, 0.25] for key in History.KEYS}


def test_training_meta_accepts_what_train_writes(tmp_path):
    meta = {"epochs": 2, "seed": 0, "batch_size": 128, "lr": 0.001, "hidden": [64, 64], "dataset": "mnist-5k",
            "loss": "cross_entropy", "engine": "backprop", "optimizer": "adam",
            "history": {**GOOD_HISTORY, "val_loss": [None, None]}, "other": "kept"}
    assert training_meta(with_meta(tmp_path, meta), History.KEYS) == meta
    assert training_meta(with_meta(tmp_path, {}))["epochs"] == 0


@pytest.mark.parametrize("meta, key", [
    ({"epochs": [1, 2]}, "epochs"), ({"epochs": -1}, "epochs"), ({"epochs": True}, "epochs"),
    ({"epochs": 1.5}, "epochs"), ({"seed": "0"}, "seed"), ({"batch_size": 0}, "batch_size"),
    ({"lr": -1}, "lr"), ({"lr": float("nan")}, "lr"), ({"hidden": [64, 0]}, "hidden"),
    ({"dataset": 5}, "dataset"), ({"history": [1, 2]}, "history"),
    ({"history": {**GOOD_HISTORY, "loss": "low"}}, "history"),
    ({"history": {**GOOD_HISTORY, "loss": [0.5, "x"]}}, "history"),
    ({"history": {**GOOD_HISTORY, "loss": [0.5]}}, "history"),
    ({"history": {"loss": [0.5, 0.25]}}, "history"),
])
def test_training_meta_names_the_bad_key(tmp_path, meta, key):
    with pytest.raises(CheckpointError, match=f"meta\\['{key}'\\]"):
        training_meta(with_meta(tmp_path, meta), History.KEYS)
