"""The recovery package reads as a textbook: every function takes at most 10 parameters and runs at most
60 lines (its docstring not counted), and the verbs are calls of ``finetune``, not loops of their own."""

import ast
import inspect
from pathlib import Path

import pytest

from tinyprune import recover

RECOVER = Path(recover.__file__).parent


def _functions():
    for path in sorted(RECOVER.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{path.name}:{node.lineno} {node.name}", node


def _parameters(node: ast.FunctionDef) -> list[str]:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [name for name in names if name not in ("self", "cls")]


def _lines_without_docstring(node: ast.FunctionDef) -> int:
    first = node.body[0]
    has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
        and isinstance(first.value.value, str)
    docstring = first.end_lineno - first.lineno + 1 if has_docstring else 0
    return node.end_lineno - node.lineno + 1 - docstring


FUNCTIONS = dict(_functions())


@pytest.mark.parametrize("where", list(FUNCTIONS))
def test_every_function_of_recover_takes_at_most_ten_parameters_and_sixty_lines(where):
    node = FUNCTIONS[where]
    assert len(_parameters(node)) <= 10, f"{where}: {_parameters(node)}"
    assert _lines_without_docstring(node) <= 60


def test_the_counts_see_a_long_signature_and_a_long_body():
    wide = ast.parse("def f(a, b, c, d, e, f, g, h, i, j, *, k, **rest):\n"
                     "    '''doc'''\n    return 1\n").body[0]
    long = ast.parse("def g(self):\n" + "    x = 1\n" * 61).body[0]
    assert len(_parameters(wide)) == 12 and _lines_without_docstring(wide) == 2
    assert _parameters(long) == [] and _lines_without_docstring(long) == 62


@pytest.mark.parametrize("verb", [recover.lr_rewind, recover.retrain, recover.rewind, recover.distill])
def test_every_training_verb_is_a_call_of_finetune_with_no_loop_of_its_own(verb):
    source = inspect.getsource(verb)
    assert "finetune(" in source and "fit(" not in source.replace("finetune(", "")
    assert not any(isinstance(node, (ast.For, ast.While)) for node in ast.walk(ast.parse(source)))
