"""Model files from strangers: HDF5 pointing outside itself, files that declare or inflate to gigabytes.

``tinyprune import`` reads files that someone else made. An HDF5 dataset may keep its bytes in another
file (external storage, a virtual dataset, an external link): reading it would copy that file (say
``/etc/passwd``) into the weights. A file may also declare arrays far larger than itself, or a ``.keras``
archive member may inflate far beyond the size it declares. Each is refused before any value is read.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from tinyprune import checkpoint, cli
from tinyprune.core.nn import MLP
from tinyprune.errors import CheckpointError
from tinyprune.interop import export_model, import_model

h5py = pytest.importorskip("h5py")
# these files are ReLU models read without activation=: the assumption's warning is expected here
pytestmark = pytest.mark.filterwarnings("ignore:assumed relu:UserWarning")

SECRET = np.arange(12, dtype=np.float32)          # the bytes of "another file" on the reader's disk


def keras_weights(tmp_path, name="ok.weights.h5"):
    return export_model(tmp_path / name, MLP([4, 3, 2], seed=0))


def replace_kernel(path, make):
    """Swap layers/dense/vars/0 for what ``make(vars_group, "0")`` creates."""
    with h5py.File(path, "a") as handle:
        group = handle["layers/dense/vars"]
        del group["0"]
        make(group, "0")
    return path


def secret_file(tmp_path):
    path = tmp_path / "secret.bin"
    path.write_bytes(SECRET.tobytes())
    return path


def external_storage(tmp_path):
    secret = secret_file(tmp_path)
    return lambda group, key: group.create_dataset(key, shape=(4, 3), dtype="f4",
                                                   external=[(str(secret), 0, SECRET.nbytes)])


def virtual_dataset(tmp_path):
    source = tmp_path / "source.h5"
    with h5py.File(source, "w") as handle:
        handle.create_dataset("data", data=SECRET.reshape(4, 3))

    def make(group, key):
        layout = h5py.VirtualLayout(shape=(4, 3), dtype="f4")
        layout[...] = h5py.VirtualSource(str(source), "data", shape=(4, 3))
        group.create_virtual_dataset(key, layout)
    return make


def external_link(tmp_path):
    source = tmp_path / "source.h5"
    with h5py.File(source, "w") as handle:
        handle.create_dataset("data", data=SECRET.reshape(4, 3))
    return lambda group, key: group.__setitem__(key, h5py.ExternalLink(str(source), "data"))


def soft_link(tmp_path):
    return lambda group, key: group.__setitem__(key, h5py.SoftLink("/layers/dense_1/vars/0"))


HOSTILE = {"external storage": external_storage, "virtual dataset": virtual_dataset,
           "external link": external_link, "soft link": soft_link}
SAYS = {"external storage": "stored outside the file", "virtual dataset": "stored outside the file",
        "external link": "is a ExternalLink", "soft link": "is a SoftLink"}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_weights_file_pointing_outside_itself_is_refused_before_the_other_file_is_read(tmp_path, case):
    path = replace_kernel(keras_weights(tmp_path), HOSTILE[case](tmp_path))
    with pytest.raises(CheckpointError, match=f"layers/dense/vars/0 .*{SAYS[case]}"):
        import_model(path)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_the_same_inside_a_keras_archive_is_refused(tmp_path, case):
    archive = export_model(tmp_path / "model.keras", MLP([4, 3, 2], seed=0))
    with zipfile.ZipFile(archive) as source:
        members = {name: source.read(name) for name in source.namelist()}
    weights = tmp_path / "inner.weights.h5"
    weights.write_bytes(members["model.weights.h5"])
    members["model.weights.h5"] = replace_kernel(weights, HOSTILE[case](tmp_path)).read_bytes()
    evil = tmp_path / "evil.keras"
    with zipfile.ZipFile(evil, "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
    with pytest.raises(CheckpointError, match=f"model.weights.h5: layers/dense/vars/0 .*{SAYS[case]}"):
        import_model(evil)


def test_cli_import_of_external_storage_exits_2_and_writes_no_checkpoint(tmp_path, capsys):
    path = replace_kernel(keras_weights(tmp_path), external_storage(tmp_path))
    assert cli.main(["import", str(path), "--out", str(tmp_path / "stolen.npz")]) == 2
    assert "stored outside the file" in capsys.readouterr().err
    assert not (tmp_path / "stolen.npz").exists()


def test_a_declared_kernel_above_the_parameter_bound_is_refused_before_a_value_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "MAX_PARAMETERS", 1000)
    path = replace_kernel(keras_weights(tmp_path), lambda group, key: group.create_dataset(
        key, shape=(200, 200), dtype="f4", chunks=(50, 50), compression="gzip"))   # 40,000 values, tiny file
    reads = []
    original = h5py.Dataset.__getitem__
    monkeypatch.setattr(h5py.Dataset, "__getitem__",
                        lambda self, *key: reads.append(self.name) or original(self, *key))
    with pytest.raises(CheckpointError, match=r"layers/dense/vars/0 declares shape \(200, 200\)"):
        import_model(path)
    assert reads == []


def test_a_non_float_dataset_is_refused_before_it_is_read(tmp_path):
    path = replace_kernel(keras_weights(tmp_path), lambda group, key: group.create_dataset(
        key, data=np.array([b"a", b"b"])))
    with pytest.raises(CheckpointError, match="layers/dense/vars/0 has dtype"):
        import_model(path)


def zip_bomb(path, inflated_bytes, declared_bytes=100):
    """A .keras archive whose model.weights.h5 inflates to ``inflated_bytes`` but declares ``declared_bytes``
    in the central directory (which is what zipfile trusts)."""
    model = export_model(path.with_name("real.keras"), MLP([4, 3, 2], seed=0))
    with zipfile.ZipFile(model) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        target.writestr("config.json", source.read("config.json"))
        with target.open("model.weights.h5", "w") as member:
            for _ in range(inflated_bytes >> 20):
                member.write(bytes(1 << 20))
    raw = bytearray(path.read_bytes())
    entry = raw.rindex(b"PK\x01\x02")                       # the last central entry: model.weights.h5
    raw[entry + 24:entry + 28] = struct.pack("<I", declared_bytes)
    path.write_bytes(bytes(raw))
    return path


def test_a_keras_member_that_inflates_past_its_declared_size_is_cut_at_that_size(tmp_path):
    bomb = zip_bomb(tmp_path / "bomb.keras", 64 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="bomb.keras"):
            import_model(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"reading the 64 MiB bomb held {peak / 2**20:.0f} MiB at once"


# ------------------------------------------------------------------ names and configs that do not add up
@pytest.mark.parametrize("names", [("dense_1", "dense_01"), ("dense", "dense_0")])
def test_keras_layer_names_that_give_one_number_are_refused_not_one_dropped(tmp_path, names):
    kernel, bias = np.ones((4, 4), np.float32), np.zeros(4, np.float32)
    with h5py.File(tmp_path / "twins.weights.h5", "w") as handle:
        handle.create_group("vars")
        for name in ("dense", "dense_1", *names):
            group = handle.require_group(f"layers/{name}/vars")
            if "0" not in group:
                group.create_dataset("0", data=kernel)
                group.create_dataset("1", data=bias)
    with pytest.raises(CheckpointError, match="both name Dense layer") as caught:
        import_model(tmp_path / "twins.weights.h5")
    assert all(f"layers/{name} " in str(caught.value) for name in names)


def keras_archive_with_config(tmp_path, change):
    archive = export_model(tmp_path / "model.keras", MLP([4, 3, 2], seed=0))
    with zipfile.ZipFile(archive) as source:
        members = {name: source.read(name) for name in source.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
    return bad


@pytest.mark.parametrize("change, names", [
    (lambda c: c.__setitem__("config", [1, 2]), "config.json 'config' is a list"),
    (lambda c: c["config"]["layers"][1].__setitem__("config", "dense"),
     "config.json layer 1 'config' is a str"),
    (lambda c: c["config"]["layers"].__setitem__(1, "Dense"), "config.json layer 1 is a str"),
    (lambda c: c["config"]["layers"][1]["config"].__setitem__("activation", "x" * 10_000),
     "more characters"),
])
def test_malformed_keras_configs_are_clean_errors_naming_the_key(tmp_path, change, names):
    with pytest.raises(CheckpointError, match=names) as caught:
        import_model(keras_archive_with_config(tmp_path, change))
    assert len(str(caught.value)) < 1000


def test_a_keras_config_with_a_key_twice_is_refused(tmp_path):
    archive = keras_archive_with_config(tmp_path, lambda config: None)
    with zipfile.ZipFile(archive) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members["config.json"] = b'{"class_name": "Sequential", "class_name": "Functional"}'
    twice = tmp_path / "twice.keras"
    with zipfile.ZipFile(twice, "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
    with pytest.raises(CheckpointError, match="'class_name' appear more than once"):
        import_model(twice)
