"""Save and load a model (weights, masks), its optimizer's state and free-form metadata, safely and small.

A checkpoint is one zip-compressed ``.npz`` archive (``np.savez_compressed``, read back with
``allow_pickle=False``: plain arrays only, so loading a file can never run code). Format version 2:

======================  ===================================================================================
``format``              the marker ``"tinyprune-checkpoint"`` (a str array)
``version``             the format version (int64), ``FORMAT_VERSION``
``model.json``          the architecture ``model.config()`` plus ``"class": "MLP"``, UTF-8 JSON bytes (uint8)
``meta.json``           the caller's ``meta`` dict, as UTF-8 JSON bytes (uint8)
``param/<name>``        the values of a parameter without a mask, dense, e.g. ``param/layers.0.b``
``values/<name>``       a masked parameter's survivors ``W[M]`` (1-D, row-major), e.g. ``values/layers.0.W``
``bits/<name>``         its mask ``M``, 8 entries to a byte: ``np.packbits(M.ravel())`` (``ceil(n/8)`` bytes)
``index/<name>``        or, where that is smaller, the flat positions of the survivors ``np.flatnonzero(M)``
                        (increasing; uint8/16/32/64, the smallest that holds ``n - 1``)
``optim.json``          ``{"class": "Adam", "options": {...}}`` (only with an optimizer)
``optim/<key>``         the optimizer's ``state_dict()``: ``steps``, ``lr``, ``m.0``, ``v.0``, ...
``sha256``              SHA-256 over every other entry (name, dtype, shape, bytes), as a str array
======================  ===================================================================================

Size of a masked ``(d_in, d_out)`` matrix with ``k`` survivors of ``n = d_in · d_out`` entries and ``s`` bytes
per value: bitmask ``s·k + ceil(n/8)``, indices ``s·k + i·k`` (``i`` bytes per index); ``save`` picks the
smaller per array, then zip compression shrinks what is left (``benchmarks/bench_checkpoint_size.py``:
the document's model pruned to 90 % by global magnitude takes 0.14x the dense checkpoint). Loading
gives the weights and masks back exactly (a pruned entry is an exact +0.0 again, as the convention
says). Version 1 files (dense ``param/<name>`` for every parameter, a bool ``mask/<name>``, no
compression) are still read.

Writing goes through ``files.atomic_write``: temporary sibling, ``fsync``, ``os.replace``, so a crash
leaves the old file or the new one, never half of one; targets that are symlinks, devices or FIFOs are
refused; new files follow the umask; temporaries of writers killed mid-save are removed by the next
save. Reading refuses anything but a regular file (without blocking on a FIFO), checks the marker, the
version and the digest, and checks every size in ``model.json`` against the stored arrays (and
``MAX_PARAMETERS``) before it allocates anything, so a truncated, corrupted, crafted or foreign file
raises ``CheckpointError`` saying what is wrong. (The format is described in ``notebooks/04_training.ipynb``.)

>>> import tempfile, os
>>> from tinyprune.core.nn import MLP
>>> model = MLP([4, 3, 2], seed=0)
>>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
>>> _ = save(path, model, meta={"note": "untrained"})
>>> restored = load(path)
>>> restored.model.sizes, restored.meta
([4, 3, 2], {'note': 'untrained'})
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tinyprune.checks import is_int, is_number
from tinyprune.core.nn import DTYPES, MLP, Parameter
from tinyprune.errors import CheckpointError
from tinyprune.fast import optim
from tinyprune.fast.optim import Optimizer
from tinyprune.files import atomic_write, open_regular

MARKER = "tinyprune-checkpoint"
FORMAT_VERSION = 2
ZIP_MAGIC = b"PK\x03\x04"
MAX_PARAMETERS = 1 << 26          # 67 million values (256 MiB of float32): far above any MLP here
MAX_ARCHIVE_BYTES = 1 << 32       # the uncompressed entries together; a crafted archive may claim more
PathLike = str | os.PathLike

__all__ = ["FORMAT_VERSION", "MARKER", "MAX_PARAMETERS", "Checkpoint", "assemble", "decode_masked",
           "encode_masked",
           "load", "restore_optimizer", "save", "training_meta"]


@dataclass
class Checkpoint:
    """What ``load`` returns.

    ``model``: the rebuilt ``MLP`` with its weights and masks; ``optimizer_state``: the optimizer's
    ``state_dict()`` (or ``None``), ``optimizer_class``: its class name (``"Adam"``),
    ``optimizer_options``: its constructor options (``{"lr": 0.001, ...}``); ``meta``: the dict given
    to ``save``; ``version``: the format version of the file; ``path``: where it was read.
    """

    model: MLP
    optimizer_state: dict[str, np.ndarray] | None
    optimizer_class: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION
    optimizer_options: dict[str, Any] | None = None
    path: Path | None = None


# --------------------------------------------------------------------------- helpers
def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _check_keys(value: Any, where: str) -> None:
    """Refuse dict keys that are not strings: JSON would turn ``{1: x}`` into ``{"1": x}`` silently."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has the key {key!r} ({type(key).__name__}): JSON object keys are "
                                 f"strings, so it would come back as {str(key)!r}; use a string key")
            _check_keys(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_keys(item, f"{where}[{index}]")


def _json_bytes(value: Any, what: str) -> np.ndarray:
    _check_keys(value, what)
    try:
        text = json.dumps(value, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be JSON-able (numbers, strings, lists, dicts): {error}") from error
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over each entry's name, dtype, shape and bytes, in sorted order of names."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.reshape(-1).view(np.uint8))       # the bytes of tobytes(), without a copy
    return digest.hexdigest()


def _optimizer_options(optimizer: Optimizer) -> dict[str, Any]:
    """The constructor's keyword options read back from the optimizer's attributes (not the schedule)."""
    options = {}
    for name in inspect.signature(type(optimizer).__init__).parameters:
        if name in ("self", "params", "schedule"):
            continue
        value = getattr(optimizer, name, None)
        if isinstance(value, (bool, int, float, str, np.generic)):
            options[name] = value.item() if isinstance(value, np.generic) else value
    return options


# --------------------------------------------------------------------------- the sparse encoding
def _index_dtype(size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every flat position ``0 .. size - 1``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def encode_masked(name: str, values: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The entries of one masked array: survivors ``values[mask]`` and the mask as bits or as indices.

    Bits cost ``ceil(n/8)`` bytes, indices ``k · i`` (``k`` survivors, ``i`` bytes each); the smaller wins,
    the bits on a tie. ``decode_masked`` inverts it.

    >>> mask = np.array([[True, False, False], [False, False, True]])
    >>> sorted(encode_masked("W", np.arange(6.0).reshape(2, 3) * mask, mask).items())
    [('bits/W', array([132], dtype=uint8)), ('values/W', array([0., 5.]))]
    """
    survivors = np.ascontiguousarray(values[mask])
    index_dtype = _index_dtype(mask.size)
    if survivors.size * index_dtype.itemsize < math.ceil(mask.size / 8):
        return {f"values/{name}": survivors, f"index/{name}": np.flatnonzero(mask).astype(index_dtype)}
    return {f"values/{name}": survivors, f"bits/{name}": np.packbits(mask.ravel())}


def decode_masked(name: str, shape: tuple[int, ...], dtype: np.dtype, entries: dict[str, np.ndarray],
                  where: str = "checkpoint") -> tuple[np.ndarray, np.ndarray]:
    """``(values, mask)`` of ``shape`` from ``encode_masked``'s entries, or ``CheckpointError`` naming the
    entry that does not fit: survivors of another dtype or count, bits of the wrong length or with set
    padding bits, indices that are not increasing positions inside the array.
    """
    size = math.prod(shape)
    survivors = entries.get(f"values/{name}")
    if survivors is None or survivors.ndim != 1 or survivors.dtype != dtype:
        raise CheckpointError(f"{where}: values/{name} must be a 1-D {dtype} array of the survivors, got "
                              f"{_describe(survivors)}")
    if f"bits/{name}" in entries:
        bits = entries[f"bits/{name}"]
        if bits.dtype != np.uint8 or bits.shape != (math.ceil(size / 8),):
            raise CheckpointError(f"{where}: bits/{name} must be {math.ceil(size / 8)} uint8 bytes (the mask "
                                  f"of {shape} packed to bits), got {_describe(bits)}")
        if size % 8 and np.unpackbits(bits[-1:])[size % 8:].any():
            raise CheckpointError(f"{where}: bits/{name} has padding bits set past entry {size}")
        mask = np.unpackbits(bits, count=size).view(np.bool_)     # 0/1 bytes read as bools: no copy
    elif f"index/{name}" in entries:
        index = entries[f"index/{name}"]
        if index.ndim != 1 or index.dtype.kind != "u":
            raise CheckpointError(f"{where}: index/{name} must be 1-D unsigned integers, "
                                  f"got {_describe(index)}")
        if index.size and (int(index[-1]) >= size or np.any(np.diff(index.astype(np.int64)) <= 0)):
            raise CheckpointError(f"{where}: index/{name} must be increasing positions below {size}")
        mask = np.zeros(size, dtype=bool)
        mask[index] = True
    else:
        raise CheckpointError(f"{where}: values/{name} has neither bits/{name} nor index/{name} (its mask)")
    if survivors.size != int(np.count_nonzero(mask)):
        raise CheckpointError(f"{where}: values/{name} holds {survivors.size} values but its mask keeps "
                              f"{int(np.count_nonzero(mask))}")
    values = np.zeros(size, dtype=dtype)
    values[mask] = survivors
    return values.reshape(shape), mask.reshape(shape)


def _describe(array: np.ndarray | None) -> str:
    return "nothing" if array is None else f"dtype {array.dtype} and shape {array.shape}"


# --------------------------------------------------------------------------- save
def save(path: PathLike, model: MLP, optimizer: Optimizer | None = None,
         meta: dict[str, Any] | None = None, *, overwrite: bool = True) -> Path:
    """Write ``model`` (architecture, weights, masks), ``optimizer``'s state and ``meta`` to ``path``.

    Masked parameters are stored sparse (see the module docstring), the archive zip-compressed, the write
    atomic (``files.atomic_write``; ``overwrite=False`` refuses an existing file). ``meta`` must be
    JSON-able with string keys (NumPy scalars and arrays are converted). Weights must be finite. The path
    is used as given (no ``.npz`` added). Returns the path. Example: see the module docstring.
    """
    if not isinstance(model, MLP):
        raise ValueError(f"save() stores an MLP, got {type(model).__name__}")
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
    arrays: dict[str, np.ndarray] = {
        "format": np.array(MARKER),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "model.json": _json_bytes({"class": "MLP", **model.config()}, "the model config"),
        "meta.json": _json_bytes(meta, "meta"),
    }
    for name, parameter in model.named_parameters():
        if not np.all(np.isfinite(parameter.data)):
            raise ValueError(f"{name} holds inf or NaN values: refusing to save a model that cannot be used")
        if parameter.mask is None:
            arrays[f"param/{name}"] = parameter.data
            continue
        if np.any(parameter.data[~parameter.mask]):
            raise ValueError(f"{name} has nonzero weights where its mask is False; apply the mask first "
                             "(tinyprune.prune.masks.apply_mask)")
        arrays.update(encode_masked(name, parameter.data, parameter.mask))
    if optimizer is not None:
        if not {id(p) for p in optimizer.params} <= {id(p) for p in model.parameters()}:
            raise ValueError("the optimizer holds parameters that are not this model's")
        description = {"class": type(optimizer).__name__, "options": _optimizer_options(optimizer)}
        arrays["optim.json"] = _json_bytes(description, "optimizer options")
        for key, value in optimizer.state_dict().items():
            arrays[f"optim/{key}"] = np.asarray(value)
    arrays["sha256"] = np.array(_digest(arrays))
    return atomic_write(path, lambda file: np.savez_compressed(file, allow_pickle=False, **arrays),
                        overwrite=overwrite)


# --------------------------------------------------------------------------- load
def _open_regular(path: Path, what: str = "checkpoint file") -> BinaryIO:
    """``path`` opened for reading if it is a regular file (``files.open_regular``: a FIFO or a device is
    refused, not waited on)."""
    return open_regular(path, what, CheckpointError)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One ``.npy`` member: its header is read and checked first (no object arrays, no more data than the
    member declares, which ``_read_entries`` has bounded), then its data is streamed straight into the
    array, 1 MiB at a time (no second copy of a big matrix), and read to its end (``zipfile`` checks the
    CRC-32 there, so a damaged byte anywhere in it is noticed)."""
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(member)
        if dtype.hasobject:
            raise CheckpointError(f"{path}: entry {name!r} is a pickled object array; refusing to load it "
                                  "(checkpoints hold plain numeric arrays only, and unpickling can run code)")
        if math.prod(shape) * dtype.itemsize > info.file_size:
            raise CheckpointError(f"{path}: entry {name!r} claims more data than it stores")
        array = np.empty(shape[::-1] if fortran_order else shape, dtype=dtype)
        view = memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")
        for start in range(0, len(view), 1 << 20):
            piece = view[start:start + (1 << 20)]
            if member.readinto(piece) != len(piece):
                raise CheckpointError(f"{path}: entry {name!r} is shorter than its header says")
        if member.read(1):
            raise CheckpointError(f"{path}: entry {name!r} holds more data than its header says")
    return array.T if fortran_order else array


def _read_entries(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive, or ``CheckpointError`` saying why the file is not a readable .npz."""
    with _open_regular(path) as file:
        try:
            head = file.read(4)
        except OSError as error:
            raise CheckpointError(f"{path}: cannot be read ({error})") from error
        if head != ZIP_MAGIC:
            raise CheckpointError(f"{path}: not a tinyprune checkpoint (not an .npz archive: it starts with "
                                  f"{head!r}, expected {ZIP_MAGIC!r})")
        entries: dict[str, np.ndarray] = {}
        try:
            with zipfile.ZipFile(file) as archive:
                members = archive.infolist()
                if sum(info.file_size for info in members) > MAX_ARCHIVE_BYTES:
                    raise CheckpointError(f"{path}: the archive claims more than {MAX_ARCHIVE_BYTES} bytes "
                                          "of arrays")
                for info in members:
                    name = info.filename.removesuffix(".npy")
                    if name in entries or not info.filename.endswith(".npy"):
                        raise CheckpointError(f"{path}: entry {info.filename!r} is repeated or not an .npy "
                                              "array (a foreign archive)")
                    entries[name] = _read_member(archive, info, path)
        except CheckpointError:
            raise
        except Exception as error:  # zipfile, zlib, and NumPy's header parser raise many types
            raise CheckpointError(f"{path}: truncated or corrupted archive ({type(error).__name__}: {error})"
                                  ) from error
    return entries


def _text(entries: dict[str, np.ndarray], name: str, path: Path) -> str:
    array = entries.get(name)
    if array is None or array.shape != () or array.dtype.kind != "U":
        raise CheckpointError(f"{path}: entry {name!r} is missing or is not a string")
    return str(array)


def _json_entry(entries: dict[str, np.ndarray], name: str, path: Path) -> Any:
    array = entries.get(name)
    if array is None or array.dtype != np.uint8 or array.ndim != 1:
        raise CheckpointError(f"{path}: entry {name!r} is missing or is not UTF-8 JSON bytes")
    try:
        return json.loads(array.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: entry {name!r} is not valid JSON ({error})") from error


def _architecture(config: Any, path: Path) -> dict[str, Any]:
    """``model.json`` checked as data, before anything is built from it: sizes, activation, dtype, bound."""
    if not isinstance(config, dict) or config.get("class") != "MLP":
        raise CheckpointError(f"{path}: unknown model description {config!r}; expected an MLP config")
    sizes = config.get("sizes")
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes)):
        raise CheckpointError(f"{path}: model.json sizes must list at least two positive integers, "
                              f"got {sizes!r}")
    count = sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))
    if count > MAX_PARAMETERS:
        raise CheckpointError(f"{path}: model.json claims sizes {sizes} ({count} parameters), more than "
                              f"the {MAX_PARAMETERS} a checkpoint may hold")
    if config.get("dtype") not in DTYPES:
        raise CheckpointError(f"{path}: model.json dtype must be one of {DTYPES}, "
                              f"got {config.get('dtype')!r}")
    return {"activation": "relu", **config}      # a checkpoint without one predates activations: ReLU


def _expected_parameters(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of the MLP that ``config`` describes, without building it."""
    sizes = config["sizes"]
    shapes = {}
    for index, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"layers.{index}.W"] = (d_in, d_out)
        shapes[f"layers.{index}.b"] = (d_out,)
    return shapes


_PARAMETER_PREFIXES = {1: ("param/", "mask/"), 2: ("param/", "values/", "bits/", "index/")}


def _read_parameters(entries: dict[str, np.ndarray], version: int, config: dict[str, Any],
                     path: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """``{name: (values, mask or None)}``, every array checked against the architecture's shapes."""
    shapes = _expected_parameters(config)
    dtype = np.dtype(config["dtype"])
    stored: dict[str, set[str]] = {}
    for entry in entries:
        prefix, _, name = entry.partition("/")
        if prefix + "/" in _PARAMETER_PREFIXES[version]:
            stored.setdefault(name, set()).add(prefix)
    dense = {name for name, kinds in stored.items() if "param" in kinds}
    sparse = {name for name, kinds in stored.items() if "values" in kinds}
    unexpected = sorted(set(stored) - set(shapes))
    missing = sorted(set(shapes) - dense - sparse)
    both = sorted(dense & sparse)
    if missing or unexpected or both:
        raise CheckpointError(f"{path}: parameters do not fit the architecture {config['sizes']}: "
                              f"missing {missing}, unexpected {unexpected}"
                              + (f", stored twice {both}" if both else ""))
    parameters: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name, shape in shapes.items():
        if name in sparse:
            parameters[name] = decode_masked(name, shape, dtype, entries, str(path))
            continue
        values = entries[f"param/{name}"]
        if values.shape != shape or values.dtype != dtype:
            raise CheckpointError(f"{path}: {name} has shape {values.shape} and dtype {values.dtype}, "
                                  f"the architecture needs {shape} {dtype}")
        mask = entries.get(f"mask/{name}") if version == 1 else None
        if mask is not None:
            if mask.dtype != np.bool_ or mask.shape != shape:
                raise CheckpointError(f"{path}: mask of {name} must be bool of shape {shape}, "
                                      f"got {mask.dtype} {mask.shape}")
            if np.any(values[~mask]):
                raise CheckpointError(f"{path}: {name} has nonzero weights where its mask is False")
        elif f"bits/{name}" in entries or f"index/{name}" in entries:
            raise CheckpointError(f"{path}: {name} is stored dense but also has a mask entry")
        parameters[name] = (values, mask)
    for name, (values, _) in parameters.items():
        if not np.all(np.isfinite(values)):
            raise CheckpointError(f"{path}: {name} holds inf or NaN values; the checkpoint cannot be used")
    return parameters


def assemble(config: dict[str, Any], parameters: dict[str, tuple[np.ndarray, np.ndarray | None]],
             path: PathLike = "checkpoint") -> MLP:
    """The MLP of ``config`` (``sizes``, ``activation``, ``dtype``) holding the given arrays themselves as its
    parameters: ``{"layers.0.W": (values, mask or None), ...}``, shapes and dtype already checked.

    ``MLP(sizes)`` would first draw random initial weights for every layer (in float64, then cast), only
    for them to be overwritten: for a big model that is twice its size in memory again. So the MLP is
    built with one tiny layer per layer and each layer is then given the loaded arrays (no copy).
    """
    try:
        model = MLP.from_config({**{k: v for k, v in config.items() if k != "class"},
                                 "sizes": [1] * len(config["sizes"])})
    except ValueError as error:
        raise CheckpointError(f"{path}: the stored architecture is invalid ({error})") from error
    model.sizes = list(config["sizes"])
    for index, layer in enumerate(model.layers):
        for kind in ("W", "b"):
            values, mask = parameters[f"layers.{index}.{kind}"]
            setattr(layer, kind, Parameter(values, mask))
    return model


def load(path: PathLike) -> Checkpoint:
    """Read a checkpoint written by ``save`` (format version 1 or 2): the model (weights, masks),
    optimizer state and meta.

    Raises ``CheckpointError`` if the file is missing or not a regular file, is not an .npz archive, lacks
    the tinyprune marker, is truncated or corrupted (the SHA-256 digest does not match), holds pickled
    objects, was written by a newer format version, or holds arrays that do not fit its ``model.json``
    (checked before the model is built) or values that are not finite. Example: see the module docstring.
    """
    path = Path(path)
    entries = _read_entries(path)
    if "format" not in entries or entries["format"].shape != () or str(entries["format"]) != MARKER:
        raise CheckpointError(f"{path}: an .npz archive but not a tinyprune checkpoint (no {MARKER!r} "
                              f"marker; its entries are {sorted(entries)[:8]})")
    version = entries.get("version")
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: the format version entry is missing or malformed")
    version = int(version)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version} is newer than this tinyprune reads "
                              f"(up to {FORMAT_VERSION}); upgrade tinyprune")
    if version < 1:
        raise CheckpointError(f"{path}: format version {version} does not exist "
                              f"(versions are 1..{FORMAT_VERSION})")
    stored_digest = _text(entries, "sha256", path)
    payload = {name: array for name, array in entries.items() if name != "sha256"}
    if _digest(payload) != stored_digest:
        raise CheckpointError(f"{path}: corrupted (the SHA-256 of its contents does not match the one "
                              "stored when it was written)")

    config = _architecture(_json_entry(entries, "model.json", path), path)
    parameters = _read_parameters(entries, version, config, path)
    model = assemble(config, parameters, path)

    optimizer_state = optimizer_class = optimizer_options = None
    if "optim.json" in entries:
        description = _json_entry(entries, "optim.json", path)
        if not isinstance(description, dict) or not isinstance(description.get("class"), str):
            raise CheckpointError(f"{path}: malformed optimizer description {description!r}")
        optimizer_class = description["class"]
        optimizer_options = dict(description.get("options") or {})
        optimizer_state = {name[len("optim/"):]: array for name, array in entries.items()
                           if name.startswith("optim/")}
    meta = _json_entry(entries, "meta.json", path)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: meta must be a JSON object, got {type(meta).__name__}")
    return Checkpoint(model=model, optimizer_state=optimizer_state, optimizer_class=optimizer_class,
                      meta=meta, version=version, optimizer_options=optimizer_options, path=path)


# --------------------------------------------------------------------------- resuming
def _is_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


_TRAINING_KEYS = {   # key: (test, what is expected)
    "epochs": (lambda v: is_int(v) and v >= 0, "a non-negative integer"),
    "seed": (lambda v: is_int(v) and v >= 0, "a non-negative integer"),
    "batch_size": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "lr": (lambda v: _is_number(v) and v > 0, "a positive finite number"),
    "hidden": (lambda v: isinstance(v, list) and all(is_int(s) and s >= 1 for s in v),
               "a list of positive integers"),
    "dataset": (lambda v: isinstance(v, str) and v != "", "a dataset name"),
    "loss": (lambda v: isinstance(v, str), "a loss name"),
    "engine": (lambda v: isinstance(v, str), "an engine name"),
    "optimizer": (lambda v: isinstance(v, str), "an optimizer name"),
}


def training_meta(checkpoint: Checkpoint, history_keys: Sequence[str] | None = None) -> dict[str, Any]:
    """The checkpoint's ``meta``, checked for what resuming a training needs, else ``CheckpointError``
    naming the key: ``epochs`` and ``seed`` non-negative integers, ``batch_size`` positive, ``lr`` a positive
    finite number, ``hidden`` a list of positive integers, names strings, and ``history`` a dict of
    equal-length lists of numbers (or ``None``), with exactly ``history_keys`` when given (``History.KEYS``).
    Absent keys are fine (the caller's defaults apply), except that ``epochs`` is filled in as 0.

    >>> import tempfile, os
    >>> from tinyprune.core.nn import MLP
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> _ = save(path, MLP([2, 2]), meta={"epochs": [1, 2]})
    >>> training_meta(load(path))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tinyprune.errors.CheckpointError: ...m.npz: meta['epochs'] must be a non-negative integer, got [1, 2]
    """
    where = checkpoint.path or "checkpoint"
    meta = dict(checkpoint.meta)
    for key, (test, expected) in _TRAINING_KEYS.items():
        if key in meta and not test(meta[key]):
            raise CheckpointError(f"{where}: meta[{key!r}] must be {expected}, got {meta[key]!r}")
    meta.setdefault("epochs", 0)
    history = meta.get("history")
    if history is None:
        return meta
    if not isinstance(history, dict):
        raise CheckpointError(f"{where}: meta['history'] must be a dict of lists, "
                              f"got {type(history).__name__}")
    if history_keys is not None and set(history) != set(history_keys):
        raise CheckpointError(f"{where}: meta['history'] must have the keys {sorted(history_keys)}, "
                              f"got {sorted(map(str, history))}")
    lengths = set()
    for key, values in history.items():
        if not isinstance(values, list) or not all(v is None or _is_number(v) for v in values):
            raise CheckpointError(f"{where}: meta['history'][{key!r}] must be a list of numbers, "
                                  f"got {values!r}")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise CheckpointError(f"{where}: the lists of meta['history'] must have one length, got "
                              f"{ {key: len(values) for key, values in history.items()} }")
    return meta


def _check_optimizer_state(state: dict[str, np.ndarray], where: str) -> None:
    """The stored optimizer state as the update rules need it, else ``CheckpointError`` naming the file and
    the entry: ``steps`` a non-negative integer (Adam divides by ``1 - beta^steps``), ``lr`` a positive
    finite number, every buffer finite floats, Adam's second moments ``v`` non-negative (it takes their
    square root)."""
    for name, value in state.items():
        array = np.asarray(value)
        if name == "steps":
            ok = array.shape == () and array.dtype.kind in "iu" and int(array) >= 0
            expected = "a non-negative integer"
        elif name == "lr":
            ok = array.shape == () and array.dtype.kind in "iuf" and bool(np.isfinite(array)) and array > 0
            expected = "a positive finite number"
        else:
            ok = array.dtype.kind == "f" and bool(np.all(np.isfinite(array)))
            ok = ok and not (name.startswith("v.") and bool(np.any(array < 0)))
            expected = "finite floats" + (" >= 0 (second moments)" if name.startswith("v.") else "")
        if not ok:
            raise CheckpointError(f"{where}: the optimizer state optim/{name} must be {expected}, got "
                                  f"{_describe(array) if array.size > 1 else array.tolist()!r}")


def restore_optimizer(checkpoint: Checkpoint, optimizer: Optimizer | None = None) -> Optimizer:
    """Load the checkpoint's optimizer state into ``optimizer`` (built on ``checkpoint.model``'s
    parameters), or, if ``optimizer`` is ``None``, build the stored class with the stored options on
    ``checkpoint.model.parameters()``. Returns the optimizer, ready to continue where it stopped.

    A learning-rate ``schedule`` is a Python callable and is not stored: pass an optimizer that has it.

    >>> import tempfile, os
    >>> from tinyprune.core.nn import MLP
    >>> from tinyprune.fast.optim import Adam
    >>> model = MLP([2, 2], seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> _ = save(path, model, Adam(model.parameters(), lr=0.01))
    >>> restore_optimizer(load(path)).lr
    0.01
    """
    where = str(checkpoint.path or "checkpoint")
    if checkpoint.optimizer_state is None:
        raise CheckpointError(f"{where}: holds no optimizer state (it was saved without an optimizer)")
    _check_optimizer_state(checkpoint.optimizer_state, where)
    if optimizer is None:
        cls = optim.OPTIMIZERS.get((checkpoint.optimizer_class or "").lower())
        if cls is None:
            raise CheckpointError(f"cannot rebuild optimizer class {checkpoint.optimizer_class!r}; "
                                  f"known: {sorted(c.__name__ for c in optim.OPTIMIZERS.values())}")
        try:
            optimizer = cls(checkpoint.model.parameters(), **(checkpoint.optimizer_options or {}))
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{where}: stored options of {checkpoint.optimizer_class} are invalid "
                                  f"({error})") from error
    elif type(optimizer).__name__ != checkpoint.optimizer_class:
        raise CheckpointError(f"the checkpoint holds the state of {checkpoint.optimizer_class}, "
                              f"cannot load it into {type(optimizer).__name__}")
    try:
        optimizer.load_state_dict(checkpoint.optimizer_state)
    except ValueError as error:
        raise CheckpointError(f"{where}: optimizer state does not fit: {error}") from error
    return optimizer
