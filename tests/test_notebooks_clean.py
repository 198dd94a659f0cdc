"""The course notebooks are committed clean: valid nbformat 4 JSON, no outputs, no execution counts.

Outputs in git make diffs unreadable and can hide a notebook that no longer runs; the notebooks are
executed by the test suite instead (``pytest --nbmake``, see ``setup.cfg``).
"""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_clean(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook.get("nbformat") == 4, f"{path.name}: expected nbformat 4"
    assert notebook["metadata"].get("kernelspec", {}).get("name") == "python3", \
        f"{path.name}: kernelspec must be python3"
    cells = enumerate(notebook["cells"])
    code_cells = [(index, cell) for index, cell in cells if cell["cell_type"] == "code"]
    dirty = [index for index, cell in code_cells
             if cell.get("outputs") or cell.get("execution_count") is not None]
    assert not dirty, (f"{path.name}: code cells {dirty} carry outputs or execution counts; clear them "
                       f"(jupyter nbconvert --clear-output --inplace {path.name}) before committing")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_valid_nbformat(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
