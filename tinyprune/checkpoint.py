"""Save and load a model (weights, masks), its optimizer's state and free-form metadata, safely.

A checkpoint is one ``.npz`` archive (``np.savez``, read back with ``allow_pickle=False``: plain
arrays only, so loading a file can never run code). Entries:

====================  =====================================================================
``format``            the marker ``"tinyprune-checkpoint"`` (a str array)
``version``           the format version (int64), ``FORMAT_VERSION``
``model.json``        the architecture ``model.config()`` plus ``"class": "MLP"``, as UTF-8 JSON bytes (uint8)
``meta.json``         the caller's ``meta`` dict, as UTF-8 JSON bytes (uint8)
``param/<name>``      every parameter's values, e.g. ``param/layers.0.W``
``mask/<name>``       the boolean mask of every pruned parameter
``optim.json``        ``{"class": "Adam", "options": {...}}`` (only with an optimizer)
``optim/<key>``       the optimizer's ``state_dict()``: ``steps``, ``lr``, ``m.0``, ``v.0``, ...
``sha256``            SHA-256 over every other entry (name, dtype, shape, bytes), as a str array
====================  =====================================================================

Writing is atomic: the archive goes to a temporary file in the same folder, is flushed to disk
(``fsync``) and only then renamed over the real name (``os.replace``), so a crash leaves either the
old file or the new one, never half of one. Reading checks the marker, the version and the digest,
so a truncated, corrupted or foreign file raises ``CheckpointError`` saying what is wrong.
(The checkpoint format is described in ``notebooks/04_training.ipynb``.)

>>> import tempfile, os
>>> from tinyprune.nn import MLP
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
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyprune import optim
from tinyprune.errors import CheckpointError
from tinyprune.files import fsync_folder
from tinyprune.nn import MLP
from tinyprune.optim import Optimizer

MARKER = "tinyprune-checkpoint"
FORMAT_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"
PathLike = str | os.PathLike

__all__ = ["FORMAT_VERSION", "MARKER", "Checkpoint", "load", "restore_optimizer", "save"]


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


def _json_bytes(value: Any, what: str) -> np.ndarray:
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
        digest.update(array.tobytes())
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


# --------------------------------------------------------------------------- save
def save(path: PathLike, model: MLP, optimizer: Optimizer | None = None,
         meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (architecture, weights, masks), ``optimizer``'s state and ``meta`` to ``path``.

    The write is atomic (temporary file in the same folder, ``fsync``, ``os.replace``). ``meta`` must be
    JSON-able (NumPy scalars and arrays are converted). The path is used as given (no ``.npz`` added).
    Returns the path. Example: see the module docstring.
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
        arrays[f"param/{name}"] = parameter.data
        if parameter.mask is not None:
            arrays[f"mask/{name}"] = parameter.mask
    if optimizer is not None:
        if not {id(p) for p in optimizer.params} <= {id(p) for p in model.parameters()}:
            raise ValueError("the optimizer holds parameters that are not this model's")
        description = {"class": type(optimizer).__name__, "options": _optimizer_options(optimizer)}
        arrays["optim.json"] = _json_bytes(description, "optimizer options")
        for key, value in optimizer.state_dict().items():
            arrays[f"optim/{key}"] = np.asarray(value)
    arrays["sha256"] = np.array(_digest(arrays))

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    fsync_folder(folder)
    return path


def _read_entries(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive, or ``CheckpointError`` saying why the file is not a readable .npz."""
    try:
        with open(path, "rb") as file:
            head = file.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error})") from error
    if head != ZIP_MAGIC:
        raise CheckpointError(f"{path}: not a tinyprune checkpoint (not an .npz archive: it starts with "
                              f"{head!r}, expected {ZIP_MAGIC!r})")
    entries: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for name in archive.files:
                try:
                    entries[name] = archive[name]
                except ValueError as error:
                    if "allow_pickle" in str(error) or "pickled" in str(error):
                        raise CheckpointError(
                            f"{path}: entry {name!r} is a pickled object array; refusing to load it "
                            "(checkpoints hold plain numeric arrays only, and unpickling can run code)"
                        ) from None
                    raise
                if not isinstance(entries[name], np.ndarray):
                    raise CheckpointError(f"{path}: entry {name!r} is not a NumPy array (a foreign archive)")
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


def load(path: PathLike) -> Checkpoint:
    """Read a checkpoint written by ``save``: the model (weights, masks), optimizer state and meta.

    Raises ``CheckpointError`` if the file is missing, is not an .npz archive, lacks the tinyprune
    marker, is truncated or corrupted (the SHA-256 digest does not match), holds pickled objects, or
    was written by a newer format version. Example: see the module docstring.
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
    stored_digest = _text(entries, "sha256", path)
    payload = {name: array for name, array in entries.items() if name != "sha256"}
    if _digest(payload) != stored_digest:
        raise CheckpointError(f"{path}: corrupted (the SHA-256 of its contents does not match the one "
                              "stored when it was written)")

    config = _json_entry(entries, "model.json", path)
    if not isinstance(config, dict) or config.get("class") != "MLP":
        raise CheckpointError(f"{path}: unknown model description {config!r}; expected an MLP config")
    try:
        model = MLP.from_config({k: v for k, v in config.items() if k != "class"})
    except ValueError as error:
        raise CheckpointError(f"{path}: the stored architecture is invalid ({error})") from error
    names = {name for name, _ in model.named_parameters()}
    stored = {name[len("param/"):] for name in entries if name.startswith("param/")}
    masked = {name[len("mask/"):] for name in entries if name.startswith("mask/")}
    if stored != names or not masked <= names:
        unexpected = sorted((stored | masked) - names)
        raise CheckpointError(f"{path}: parameters do not fit the architecture {config['sizes']}: "
                              f"missing {sorted(names - stored)}, unexpected {unexpected}")
    for name, parameter in model.named_parameters():
        values = entries[f"param/{name}"]
        if values.shape != parameter.shape or values.dtype != parameter.dtype:
            raise CheckpointError(f"{path}: {name} has shape {values.shape} and dtype {values.dtype}, "
                                  f"the architecture needs {parameter.shape} {parameter.dtype}")
        parameter.data[...] = values
        if name in masked:
            mask = entries[f"mask/{name}"]
            if mask.dtype != np.bool_ or mask.shape != parameter.shape:
                raise CheckpointError(f"{path}: mask of {name} must be bool of shape {parameter.shape}, "
                                      f"got {mask.dtype} {mask.shape}")
            if np.any(parameter.data[~mask]):
                raise CheckpointError(f"{path}: {name} has nonzero weights where its mask is False")
            parameter.mask = mask.copy()

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


def restore_optimizer(checkpoint: Checkpoint, optimizer: Optimizer | None = None) -> Optimizer:
    """Load the checkpoint's optimizer state into ``optimizer`` (built on ``checkpoint.model``'s
    parameters), or, if ``optimizer`` is ``None``, build the stored class with the stored options on
    ``checkpoint.model.parameters()``. Returns the optimizer, ready to continue where it stopped.

    A learning-rate ``schedule`` is a Python callable and is not stored: pass an optimizer that has it.

    >>> import tempfile, os
    >>> from tinyprune.nn import MLP
    >>> from tinyprune.optim import Adam
    >>> model = MLP([2, 2], seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> _ = save(path, model, Adam(model.parameters(), lr=0.01))
    >>> restore_optimizer(load(path)).lr
    0.01
    """
    if checkpoint.optimizer_state is None:
        raise CheckpointError(f"{checkpoint.path or 'checkpoint'}: holds no optimizer state "
                              "(it was saved without an optimizer)")
    if optimizer is None:
        cls = optim.OPTIMIZERS.get((checkpoint.optimizer_class or "").lower())
        if cls is None:
            raise CheckpointError(f"cannot rebuild optimizer class {checkpoint.optimizer_class!r}; "
                                  f"known: {sorted(c.__name__ for c in optim.OPTIMIZERS.values())}")
        try:
            optimizer = cls(checkpoint.model.parameters(), **(checkpoint.optimizer_options or {}))
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"stored options of {checkpoint.optimizer_class} are invalid ({error})"
                                  ) from error
    elif type(optimizer).__name__ != checkpoint.optimizer_class:
        raise CheckpointError(f"the checkpoint holds the state of {checkpoint.optimizer_class}, "
                              f"cannot load it into {type(optimizer).__name__}")
    try:
        optimizer.load_state_dict(checkpoint.optimizer_state)
    except ValueError as error:
        raise CheckpointError(f"optimizer state does not fit: {error}") from error
    return optimizer
