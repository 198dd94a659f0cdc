"""Reading a student's answers: the exercise functions a ``.py`` file (or a folder of them) defines.

This runs the files' code: ``check`` calls it in a separate process (``_worker``), never in its own.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from tinyprune.exercises.catalogue import EXERCISES


def _names() -> set[str]:
    return {exercise.name for exercise in EXERCISES}


def _files(path: str | Path) -> list[Path]:
    path = Path(path)
    files = sorted(path.glob("*.py")) if path.is_dir() else [path]
    if not files or not all(f.is_file() and f.suffix == ".py" for f in files):
        raise ValueError(f"{path} is neither a .py file nor a folder with .py files in it")
    return files


def load_functions(path: str | Path) -> dict[str, Callable]:
    """The exercise functions defined in a ``.py`` file, or in every ``.py`` file of a folder.

    Later files (in sorted order) win when two define the same name. ``ValueError`` if ``path``
    is neither a ``.py`` file nor a folder holding one, or if importing a file fails. This runs the
    files' code: ``check`` calls it in a separate process (``_worker``), never in its own.
    """
    names = _names()
    found: dict[str, Callable] = {}
    for file in _files(path):
        try:
            module = _import_file(file)
        except Exception as error:                # a syntax error or a crash at import: name the file
            raise ValueError(f"importing {file} raised {type(error).__name__}: {error}") from error
        found.update({name: getattr(module, name) for name in names if callable(getattr(module, name, None))})
    return found


def foreign(functions: dict[str, Callable], path: str | Path) -> dict[str, str]:
    """The functions not written in ``path``'s files (imported, e.g. ``from ...solutions import *``):
    name -> the file that defines them. A grade is for the student's own code."""
    own = {file.resolve() for file in _files(path)}
    where = {name: getattr(getattr(function, "__code__", None), "co_filename", "") for name, function
             in functions.items()}
    return {name: file for name, file in where.items() if not file or Path(file).resolve() not in own}


def yours_or_reference(folder: str | Path, names: list[str]) -> tuple[dict[str, Callable], list[str]]:
    """For each exercise of ``names``: the function written in ``folder``, else the reference solution;
    and the names that are the student's. A stub still raising ``NotImplementedError`` (the same code as
    ``student.py``'s) is not written; no ``folder`` at all (the course's own test runs) means none is.

    >>> functions, written = yours_or_reference("no_such_folder", ["masked_sgd_step"])
    >>> functions["masked_sgd_step"].__module__, written
    ('tinyprune.exercises.solutions', [])
    """
    from tinyprune.exercises import solutions, student

    loaded = load_functions(folder) if Path(folder).exists() else {}
    written = [name for name in names if name in loaded and
               loaded[name].__code__.co_code != getattr(student, name).__code__.co_code]
    return {name: loaded[name] if name in written else getattr(solutions, name) for name in names}, written


def _import_file(file: Path) -> ModuleType:
    name = f"_tinyprune_exercise_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                   # dataclasses and pickling-free imports expect it there
    spec.loader.exec_module(module)
    return module


__all__ = ["foreign", "load_functions"]
