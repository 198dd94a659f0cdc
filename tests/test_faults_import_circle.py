"""No import circle between the dataset registry and the downloader (issue #20): ``download`` uses
``sources``; ``sources`` never imports ``download`` (not even inside a function); ``loading.load`` joins them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "tinyprune" / "data"


def imported_modules(path):
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_sources_never_imports_download_and_download_imports_sources():
    assert "tinyprune.data.download" not in imported_modules(DATA / "sources.py")
    assert "tinyprune.data.sources" in imported_modules(DATA / "download.py")
    assert "tinyprune.data.loading" not in imported_modules(DATA / "sources.py") | imported_modules(
        DATA / "download.py")


def test_the_download_command_runs_without_a_double_import_warning():
    result = subprocess.run([sys.executable, "-W", "error", "-m", "tinyprune.data.download", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "RuntimeWarning" not in result.stderr, result.stderr
