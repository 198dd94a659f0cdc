"""The layout keeps its promises (ARCHITECTURE.md): no import cycle, the core imports only NumPy, the
standard library and itself, functions stay short, and one version is said everywhere."""

import ast
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

import tinyprune

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tinyprune"
MAX_LINES, MAX_PARAMETERS = 60, 10


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Nodes inside ``if TYPE_CHECKING:`` blocks: imported for annotations only, never run."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return skipped


def imports_of(path: Path) -> set[str]:
    """Every module name imported by ``path``, at the top or inside functions (TYPE_CHECKING excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped, found = _type_checking_nodes(tree), set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports; importing ``a.b.c`` also runs the package ``a.b``
    (the root package ``tinyprune``, which imports everything for the user, is left out)."""
    graph = {}
    for name, path in MODULES.items():
        targets = set()
        for imported in imports_of(path):
            parts = imported.split(".")
            targets |= {".".join(parts[:k]) for k in range(2, len(parts) + 1)}
        graph[name] = {t for t in targets if t in MODULES and t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_imports_only_numpy_the_standard_library_and_itself():
    core = {name: path for name, path in MODULES.items() if name.startswith("tinyprune.core")}
    assert core, "tinyprune/core/ holds the textbook"
    allowed = set(sys.stdlib_module_names) | {"numpy", "__future__"}
    for name, path in core.items():
        for imported in imports_of(path):
            top = imported.split(".")[0]
            assert imported.startswith("tinyprune.core") or (top in allowed and top != "tinyprune"), \
                f"{name} imports {imported}"


def test_the_core_fits_in_an_afternoon():
    lines = sum(len(path.read_text(encoding="utf-8").splitlines())
                for name, path in MODULES.items() if name.startswith("tinyprune.core"))
    assert lines <= 1600, f"tinyprune/core/ is {lines} lines"


def _functions():
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(ROOT), node


def _body_lines(node: ast.FunctionDef) -> int:
    body = node.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return 0 if not body else body[-1].end_lineno - body[0].lineno + 1


def _parameters(node: ast.FunctionDef) -> int:
    arguments = node.args
    names = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    count = len(names) + bool(arguments.vararg) + bool(arguments.kwarg)
    return count - (1 if arguments.args and arguments.args[0].arg in ("self", "cls") else 0)


def test_no_function_is_over_60_lines_or_10_parameters():
    long = [f"{path}:{node.lineno} {node.name} ({_body_lines(node)} lines)" for path, node in _functions()
            if _body_lines(node) > MAX_LINES]
    wide = [f"{path}:{node.lineno} {node.name} ({_parameters(node)} parameters)"
            for path, node in _functions() if _parameters(node) > MAX_PARAMETERS]
    assert long == [] and wide == []


def test_one_version_everywhere():
    version = tinyprune.__version__
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["metadata"]["version"] == "attr: tinyprune.__version__"
    said = subprocess.run([sys.executable, "-m", "tinyprune", "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert said == f"tinyprune {version}"
    major_minor = ".".join(version.split(".")[:2])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    newer = [line for line in readme.splitlines() if line.startswith("### What changed in ")]
    assert newer and newer[0].startswith(f"### What changed in {major_minor}"), "the newest changes first"


@pytest.mark.parametrize("module", ["tinyprune.experiment.recipe", "tinyprune.experiment.loop",
                                    "tinyprune.prune", "tinyprune.core.train"])
def test_each_module_imports_alone_in_a_fresh_interpreter(module):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
