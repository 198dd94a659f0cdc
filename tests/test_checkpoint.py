"""Checkpoints: round trip, exact resume, every way a file can be broken, atomic writes."""

import io
import os
import struct
import zipfile

import numpy as np
import pytest

from tinyprune import checkpoint
from tinyprune.checkpoint import Checkpoint, load, restore_optimizer, save
from tinyprune.core.nn import MLP
from tinyprune.data import Dataset
from tinyprune.data import load as load_data
from tinyprune.errors import CheckpointError
from tinyprune.fast.optim import SGD, Adam
from tinyprune.training import fit


def small_data(n=80, seed=0):
    generator = np.random.default_rng(seed)
    X = generator.normal(size=(n, 6)).astype(np.float32)
    return Dataset(X, (X[:, 0] + X[:, 1] > 0).astype(np.int64), num_classes=3)


def pruned_trained_model():
    model = MLP([6, 5, 3], seed=0)
    mask = np.ones((6, 5), dtype=bool)
    mask[::2, 1] = False
    model.layers[0].W.mask = mask
    model.layers[0].W.data *= mask
    model.layers[1].b.mask = np.array([True, False, True])
    model.layers[1].b.data *= model.layers[1].b.mask
    optimizer = Adam(model.parameters(), lr=0.005, beta2=0.99)
    fit(model, small_data(), epochs=2, batch_size=16, optimizer=optimizer, progress=False)
    return model, optimizer


@pytest.fixture
def saved(tmp_path):
    model, optimizer = pruned_trained_model()
    path = save(tmp_path / "model.npz", model, optimizer, meta={"dataset": "toy", "accuracy": 0.5})
    return path, model, optimizer


# ------------------------------------------------------------------ round trip
def test_round_trip_keeps_weights_masks_optimizer_state_and_meta(saved):
    path, model, optimizer = saved
    restored = load(path)
    assert isinstance(restored, Checkpoint) and restored.version == checkpoint.FORMAT_VERSION
    assert restored.model.sizes == model.sizes and restored.model.dtype == model.dtype
    for (name, a), (_, b) in zip(model.named_parameters(), restored.model.named_parameters()):
        assert np.array_equal(a.data, b.data) and a.data.dtype == b.data.dtype, name
        assert (a.mask is None and b.mask is None) or np.array_equal(a.mask, b.mask), name
    assert restored.meta == {"dataset": "toy", "accuracy": 0.5}
    assert restored.optimizer_class == "Adam"
    assert restored.optimizer_options["beta2"] == 0.99 and restored.optimizer_options["lr"] == 0.005
    expected = optimizer.state_dict()
    assert set(restored.optimizer_state) == set(expected)
    for key, value in expected.items():
        assert np.array_equal(restored.optimizer_state[key], value), key


def test_restore_optimizer_into_a_new_or_a_given_optimizer(saved):
    path, _, optimizer = saved
    restored = load(path)
    rebuilt = restore_optimizer(restored)
    assert isinstance(rebuilt, Adam) and rebuilt.steps == optimizer.steps and rebuilt.beta2 == 0.99
    assert rebuilt.params[0] is restored.model.parameters()[0]
    given = Adam(restored.model.parameters(), lr=0.005, beta2=0.99)
    assert restore_optimizer(restored, given) is given
    for a, b in zip(given.state["m"], optimizer.state["m"]):
        assert np.array_equal(a, b)
    with pytest.raises(CheckpointError, match="state of Adam, cannot load it into SGD"):
        restore_optimizer(restored, SGD(restored.model.parameters()))


def test_model_only_checkpoint(tmp_path):
    model = MLP([3, 2], seed=1, dtype=np.float64)
    path = save(tmp_path / "m.npz", model)
    restored = load(path)
    assert restored.optimizer_state is None and restored.optimizer_class is None and restored.meta == {}
    assert restored.model.dtype == np.float64
    with pytest.raises(CheckpointError, match="no optimizer state"):
        restore_optimizer(restored)


def test_meta_with_numpy_values_and_unjsonable_meta(tmp_path):
    model = MLP([3, 2], seed=0)
    path = save(tmp_path / "m.npz", model, meta={"acc": np.float32(0.5), "sizes": np.arange(3), "n": 1})
    assert load(path).meta == {"acc": 0.5, "sizes": [0, 1, 2], "n": 1}
    with pytest.raises(ValueError, match="meta must be JSON-able"):
        save(tmp_path / "bad.npz", model, meta={"model": model})
    assert not (tmp_path / "bad.npz").exists()


# ------------------------------------------------------------------ resume
def test_two_plus_two_epochs_equal_four_bit_for_bit(tmp_path):
    data = load_data("mnist-5k").train.subset(np.arange(1000))
    one_go = MLP([784, 32, 10], seed=0)
    fit(one_go, data, epochs=4, batch_size=128, seed=3, progress=False)

    first = MLP([784, 32, 10], seed=0)
    optimizer = Adam(first.parameters())
    fit(first, data, epochs=2, batch_size=128, seed=3, optimizer=optimizer, progress=False)
    path = save(tmp_path / "half.npz", first, optimizer, meta={"epochs": 2})
    del first, optimizer

    restored = load(path)
    resumed = restored.model
    fit(resumed, data, epochs=2, batch_size=128, seed=3, optimizer=restore_optimizer(restored),
        initial_epoch=restored.meta["epochs"], progress=False)
    for (name, a), (_, b) in zip(one_go.named_parameters(), resumed.named_parameters()):
        assert np.array_equal(a.data, b.data), name


# ------------------------------------------------------------------ broken files
def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load(tmp_path / "nothing.npz")


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, -1])
def test_truncated_files_are_refused(saved, keep):
    path = saved[0]
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match=str(path.name)):
        load(path)


def payload_regions(path):
    """``(start, end)`` byte ranges of each archive member's stored data (the .npy files themselves)."""
    raw = path.read_bytes()
    regions = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            lengths = raw[info.header_offset + 26:info.header_offset + 30]   # of the name and the extra field
            name_length, extra_length = struct.unpack("<HH", lengths)
            start = info.header_offset + 30 + name_length + extra_length
            regions.append((start, start + info.compress_size))
    return regions


def test_flipped_bytes_are_detected_or_harmless(saved):
    path, model, optimizer = saved
    original = path.read_bytes()
    regions = payload_regions(path)
    in_payload = np.zeros(len(original), dtype=bool)
    for start, end in regions:
        in_payload[start:end] = True
    sample = np.random.default_rng(0)
    positions = np.concatenate([sample.choice(np.flatnonzero(in_payload), 400, replace=False),
                                sample.choice(np.flatnonzero(~in_payload), 150, replace=False)])
    unnoticed_in_payload = 0
    for position in positions:
        corrupted = bytearray(original)
        corrupted[position] ^= 0xFF
        path.write_bytes(bytes(corrupted))
        try:
            restored = load(path)
        except CheckpointError:
            continue
        # Bytes that carry no content (zip timestamps, version fields, the slack bits at the end of a
        # compressed stream) may go unnoticed, and then the content must be intact.
        unnoticed_in_payload += int(in_payload[position])
        for a, b in zip(model.parameters(), restored.model.parameters()):
            assert np.array_equal(a.data, b.data) and np.array_equal(a.mask, b.mask), position
        for key, value in optimizer.state_dict().items():
            assert np.array_equal(restored.optimizer_state[key], value), position
        assert restored.meta == {"dataset": "toy", "accuracy": 0.5}
    assert unnoticed_in_payload <= 8       # of 400 flips in the compressed payload: only stream-end slack


def test_flipped_payload_byte_is_reported_as_corrupted(tmp_path, saved):
    path = saved[0]
    # Rebuild the archive with one weight changed but the old digest kept: the zip itself is valid.
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["values/layers.0.W"] = arrays["values/layers.0.W"].copy()
    arrays["values/layers.0.W"][0] += 1.0
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="corrupted .*SHA-256"):
        load(path)


def test_foreign_npz_random_bytes_text_and_empty_files(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(CheckpointError, match="not a tinyprune checkpoint"):
        load(foreign)
    random_file = tmp_path / "random.npz"
    random_file.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(CheckpointError, match="not an .npz archive"):
        load(random_file)
    text = tmp_path / "notes.npz"
    text.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="not an .npz archive"):
        load(text)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not an .npz archive"):
        load(empty)
    zip_of_text = tmp_path / "zip.npz"
    with zipfile.ZipFile(zip_of_text, "w") as archive:
        archive.writestr("format.npy", "hello")
    with pytest.raises(CheckpointError):
        load(zip_of_text)


def test_pickle_bearing_files_are_refused(tmp_path, saved):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array(checkpoint.MARKER), payload=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="pickled object array"):
        load(pickled)
    # A real checkpoint with an object array slipped in.
    path = saved[0]
    buffer = io.BytesIO()
    np.save(buffer, np.array([None, "x"], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("sneaky.npy", buffer.getvalue())
    with pytest.raises(CheckpointError, match="'sneaky' is a pickled object array"):
        load(path)


def _rewrite(path, change):
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    arrays["sha256"] = np.array(checkpoint._digest({k: v for k, v in arrays.items() if k != "sha256"}))
    np.savez(path, **arrays)


def test_newer_version_and_inconsistent_contents_are_refused(saved):
    path = saved[0]
    _rewrite(path, lambda a: a.update(version=np.array(99, dtype=np.int64)))
    with pytest.raises(CheckpointError, match="format version 99 is newer"):
        load(path)
    _rewrite(path, lambda a: a.update(version=np.array(checkpoint.FORMAT_VERSION, dtype=np.int64)))
    load(path)   # back to valid
    good = path.read_bytes()

    def too_many_survivors(arrays):
        arrays["values/layers.0.W"] = np.ones(30, dtype=np.float32)

    _rewrite(path, too_many_survivors)
    with pytest.raises(CheckpointError, match="values/layers.0.W holds 30 values but its mask keeps 27"):
        load(path)
    path.write_bytes(good)

    def wrong_shape(arrays):
        arrays["param/layers.0.b"] = np.zeros((2, 2), dtype=np.float32)

    _rewrite(path, wrong_shape)
    with pytest.raises(CheckpointError, match="layers.0.b has shape"):
        load(path)

    def missing_parameter(arrays):
        del arrays["values/layers.1.b"], arrays["bits/layers.1.b"]

    _rewrite(path, missing_parameter)
    with pytest.raises(CheckpointError, match="missing \\['layers.1.b'\\]"):
        load(path)


# ------------------------------------------------------------------ atomic write
def test_a_failed_write_leaves_the_previous_file_intact_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    good = MLP([4, 3], seed=0)
    save(path, good, meta={"version": "good"})
    before = path.read_bytes()

    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 half of an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save(path, MLP([4, 3], seed=1), meta={"version": "new"})
    assert path.read_bytes() == before
    assert load(path).meta == {"version": "good"}
    assert os.listdir(tmp_path) == ["model.npz"]


def test_save_writes_into_the_current_folder_and_replaces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save("plain.npz", MLP([2, 2], seed=0), meta={"n": 1})
    save("plain.npz", MLP([2, 2], seed=0), meta={"n": 2})
    assert load("plain.npz").meta == {"n": 2}
    assert sorted(os.listdir(tmp_path)) == ["plain.npz"]
