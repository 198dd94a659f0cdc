"""The course's four rules, checked on the notebooks (rule (a) on their executed outputs):

(a) every number in a notebook's prose was printed by the notebook before it is stated: each number of a
    markdown cell (references, years, shapes and formulas aside) matches a number in the outputs of the
    code cells ABOVE it (stdout, and the text of results and displays), rounded to the prose's digits
    (``97.6`` or ``97.6 %`` matches a printed ``0.97612`` or ``97.61``; ``4,000`` matches ``4000``;
    ``0.8 points`` matches ``0.008``), or a setting the code writes (a literal outside ``assert``
    statements and comments, anywhere in the notebook: a sentence may introduce the run below it), or a
    definitional number: a fact of the embedded data and the document's network computed here
    (``DEFINITIONAL``), or a short per-notebook list with a reason each (``ALLOWED``). A measured value
    asserted at the end of a notebook is not printed before the sentence that states it;
(b) every letter of every formula is in the notation table of ``notebooks/README.md``, in a notebook its
    row names when it names some, or among the indices, and no symbol has two rows;
(c) counts of notebooks and exercises are generated: wherever a count is typed, it is the true count;
(d) a split that decides is made before the model it judges trains: nothing is split off rows that a
    model was already fitted on, and ``prune_and_recover`` is given its validation rows explicitly.

The notebooks run once per session (``executed_notebook`` in ``conftest.py``, shared with nbmake).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from tinyprune.exercises import EXERCISES

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
README = (ROOT / "notebooks" / "README.md").read_text(encoding="utf-8")


def _cells(path: Path, kind: str) -> list[str]:
    return ["".join(cell["source"]) for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
            if cell["cell_type"] == kind]


# ------------------------------------------------------------------ (a) numbers in the prose
_NUMBER = re.compile(r"(?<![\w.^_{\\])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(\s?%|\s+points?\b)?(?![\w.]?\d)")
_NOT_QUANTITIES = [
    r"```.*?```", r"`[^`]*`", r"\$\$.+?\$\$", r"\$[^$]+?\$", r"\]\([^)]*\)",    # code, formulas, links
    r"^#+ *\d+\s*[.·]", r"^\s*\d+\. ",                                          # headings, list items
    r"(?:sections?|notebooks?|parts?|steps?|rounds?|cells?)[\s>-]+\d+(?:\.\d+)*(?:\s*(?:[–,-]|and)\s*\d+"
    r"(?:\.\d+)*)*",                                                             # references, not numbers
    r"\b(?:19[5-9]\d|20[0-4]\d)[a-z]?\b",                                        # the years of citations
    r"\b\d+\s*[:x×]\s*\d+\b", r"\b\d+(?:-\d+){2,}\b", r"\((?:\d+,\s*)+\d+\)",  # 2:4, 28×28, 784-64-10, shapes
    r"\b[A-Z]+-\d+",                                                            # SHA-256
]


def prose_numbers(markdown: str) -> list[str]:
    """The numbers a markdown cell states as quantities (not references, years, shapes or formulas)."""
    for pattern in _NOT_QUANTITIES:
        markdown = re.sub(pattern, " ", markdown, flags=re.S | re.M | re.I)
    return [m.group(0).strip() for m in _NUMBER.finditer(markdown)]


def code_values(code: str) -> set[float]:
    """Every number written in the code (in expressions and in the text it prints)."""
    found = re.findall(r"(?<![\w.])(\d[\d_]*(?:\.\d+)?(?:e-?\d+)?)", code)
    return {float(token.replace("_", "")) for token in found}


def settings_of(code: str) -> set[float]:
    """The numbers the code sets: its literals outside ``assert`` statements and comments.

    An assert states a claim about a measurement; it does not print it, so it cannot back a sentence.
    """
    kept, in_assert = [], False
    for line in code.splitlines():
        stripped = line.strip()
        if stripped.startswith("assert"):
            in_assert = stripped.endswith(("(", ",", "\\")) or stripped.count("(") > stripped.count(")")
            continue
        if in_assert:                                    # the continuation lines of a long assert
            in_assert = not stripped.startswith((")", "]")) and bool(stripped)
            continue
        kept.append(re.sub(r"(^|\s)#.*$", " ", line))
    return code_values("\n".join(kept))


_PRINTED = re.compile(r"(?<![\w.])-?(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?(?:e[-+]?\d+)?)(%)?")


def outputs_text(cell: dict) -> str:
    """What a code cell showed: stdout, and the text of its results and displays (not figures' text)."""
    shown = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream" and output.get("name") == "stdout":
            shown.append("".join(output["text"]))
        elif "data" in output and not any(kind.startswith("image/") for kind in output["data"]):
            shown.append("".join(output["data"].get("text/plain", "")))
    return "\n".join(shown)


def printed_values(text: str) -> list[tuple[float, bool]]:
    """``(|value|, printed with %)`` for every number in ``text`` (``12,345``, ``0.97612``, ``1.2e-05``)."""
    return [(abs(float(m.group(1).replace(",", ""))), bool(m.group(2))) for m in _PRINTED.finditer(text)]


def _value_and_digits(number: str) -> tuple[float, int]:
    text = re.sub(r"[,%]|points?", "", number).strip()
    return float(text), len(text.split(".")[1]) if "." in text else 0


def rounds_to(number: str, printed: list[tuple[float, bool]]) -> bool:
    """``number`` (prose) is a printed value rounded to the prose's digits, as a fraction or a percent.

    A printed fraction (at most 1) may be stated in percent or points (x 100), a printed percent as a
    fraction (/ 100); "rounded" means within half a unit of the prose's last digit.
    """
    value, digits = _value_and_digits(number)
    half = 0.5 * 10.0 ** -digits * (1 + 1e-9)
    for shown, percent in printed:
        candidates = [shown] + ([100 * shown] if shown <= 1 else []) + ([shown / 100] if percent else [])
        if any(abs(value - candidate) <= half for candidate in candidates):
            return True
    return False


def _matches(number: str, values: set[float]) -> bool:
    value = float(re.sub(r"[,%]|points?", "", number).strip())
    candidates = {value, value / 100} if "%" in number or "point" in number else {value}
    return any(abs(c - v) <= 1e-9 * max(1.0, abs(v)) for c in candidates for v in values)


def _definitional() -> dict[float, str]:
    """Facts of the embedded data and of the document's 784-64-64-10 network, computed (not typed)."""
    from tinyprune import data, metrics
    from tinyprune.core.nn import MLP

    splits, network = data.load("mnist-5k"), MLP([784, 64, 64, 10], seed=0)
    weights = [layer.W.data.size for layer in network.layers]
    biases = sum(layer.b.data.size for layer in network.layers)
    facts = {len(splits.train): "the embedded training rows", len(splits.test): "the embedded test rows",
             len(splits.train) + len(splits.test): "the embedded images", 60000: "MNIST's training images, "
             "which the document trains on", sum(weights): "the weights of the document's network",
             biases: "its biases", sum(weights) + biases: "its parameters", metrics.flops(network): "its "
             "FLOPs per image"}
    facts.update({size: f"the weights of its layer {index}" for index, size in enumerate(weights, 1)})
    return {float(value): reason for value, reason in facts.items()}


DEFINITIONAL = _definitional()
# Per notebook: numbers the prose may state unprinted, each with the reason it needs no measurement.
ALLOWED: dict[str, dict[str, str]] = {
    "02": {"100,352": "two forward passes (central differences) per entry of W_1: 2 x 50,176"},
    "04": {"31": "4,000 rows / 128 per batch = 31.25: the arithmetic of the batch size"},
    "05": {"3.2": "section 3.2 of the document, named in the criteria table's first column"},
    "10": {"0.39 points": "the document's own gain, 97.62 % -> 98.01 % (its section 5.5)",
           "0.125 points": "one row of the 800 validation rows, 1/800",
           "20 %": "the share held out, split(0.8) and Keras' validation_split=0.2"},
}


def unprinted_numbers(notebook: dict, name: str) -> list[tuple[int, str]]:
    """``(markdown cell index, number)`` for every prose number rule (a) cannot match (see the module)."""
    cells = notebook["cells"]
    settings = settings_of("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
    allowed = ALLOWED.get(name[:2], {})
    printed: list[tuple[float, bool]] = []
    missing = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            printed += printed_values(outputs_text(cell))
            continue
        if cell["cell_type"] != "markdown":
            continue
        for number in prose_numbers("".join(cell["source"])):
            if not (number in allowed or _matches(number, set(DEFINITIONAL)) or _matches(number, settings)
                    or rounds_to(number, printed)):
                missing.append((index, number))
    return missing


def test_prose_numbers_find_quantities_and_skip_references() -> None:
    text = ("Section 4.3 and notebook 05 (Han et al. 2015): 4,000 images, 90 % pruned, a 2:4 mask of the "
            "784-64-64-10 net, $10^{-3}$, `lr=0.5`, 0.125 points, shape (60000, 28, 28).")
    assert prose_numbers(text) == ["4,000", "90 %", "0.125 points"]
    assert _matches("4,000", {4000.0}) and _matches("90 %", {0.9}) and not _matches("0.125 points", {0.12})


def test_a_prose_number_matches_a_printed_one_rounded_to_its_digits() -> None:
    assert rounds_to("97.6", [(0.97612, False)]) and rounds_to("97.6 %", [(97.61, False)])
    assert rounds_to("0.8 points", [(0.0079, False)]) and rounds_to("4,000", [(4000.0, False)])
    assert rounds_to("0.976", [(97.6, True)]) and not rounds_to("0.976", [(97.6, False)])
    assert not rounds_to("97.7", [(0.97612, False)]) and not rounds_to("97.61", [(0.9760, False)])
    assert printed_values("dense 0.9290, FLOPs 109,962 (-3.2e-05), 97.6%") == [
        (0.929, False), (109962.0, False), (3.2e-05, False), (97.6, True)]
    assert settings_of("fit(m, epochs=5)  # 7 epochs\nassert acc > 0.91\nassert (\n    x < 0.3\n)\ny = 2") \
        == {5.0, 2.0}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_number_in_the_prose_was_printed_above_it(path: Path, executed_notebook) -> None:
    missing = unprinted_numbers(executed_notebook(path), path.name)
    assert not missing, (f"{path.name}: numbers in the prose that no cell above printed (rounded), that "
                         f"are no setting of the code and no definition (markdown cell, number): "
                         f"{missing}; print them from a variable in a cell above the sentence")


def test_a_wrong_number_planted_in_a_copy_of_a_notebook_fails_the_rule(executed_notebook) -> None:
    path = ROOT / "notebooks" / "09_structured_pruning_and_speed.ipynb"
    notebook = executed_notebook(path)
    assert not unprinted_numbers(notebook, path.name)
    printed = next(m.group(1) for cell in notebook["cells"] if cell["cell_type"] == "code"
                   for m in [re.search(r"dense accuracy (0\.\d+)", outputs_text(cell))] if m)
    markdown = [index for index, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "markdown"]
    # a wrong number anywhere, and the true one stated above the cell that prints it, fail; the true
    # one below it passes
    for number, index, fails in (("93.17 %", markdown[-1], True), (printed, markdown[0], True),
                                 (printed, markdown[-1], False)):
        planted = copy.deepcopy(notebook)
        cell = planted["cells"][index]
        cell["source"] = "".join(cell["source"]) + f"\n\nThe network reaches {number} here."
        assert ((index, number) in unprinted_numbers(planted, path.name)) == fails, (number, index)


# ------------------------------------------------------------------ (b) the notation
GREEK = set("alpha beta gamma delta epsilon varepsilon zeta eta theta kappa lambda mu nu xi pi rho sigma tau "
            "phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Phi Psi Omega".split())
_ARGUMENT_IS_A_WORD = (r"\\(?:text|operatorname|mathrm|mathbb|mathbf|textbf|texttt|begin|end)"
                       r"\s*(?:\{[^{}]*\}|\w)")


def formulas(markdown: str) -> list[str]:
    markdown = re.sub(r"```.*?```|`[^`]*`", " ", markdown, flags=re.S)
    display = re.findall(r"\$\$(.+?)\$\$", markdown, flags=re.S)
    return display + re.findall(r"\$([^$]+?)\$", re.sub(r"\$\$(.+?)\$\$", " ", markdown, flags=re.S))


def letters(formula: str) -> set[str]:
    """The symbols of a formula: single Latin letters and Greek letters (words and commands dropped)."""
    formula = re.sub(_ARGUMENT_IS_A_WORD, " ", formula)
    found = set()
    for command, letter in re.findall(r"\\([A-Za-z]+)|([A-Za-z])", formula):
        if command in GREEK or letter:
            found.add(command or letter)
    return found


def notation() -> dict[str, set[str] | None]:
    """Each symbol of the README's table -> the notebooks its row names (None: any notebook).

    A row naming notebooks ("(notebook 08)") restricts its symbols to them, unless another row or the
    indices allow the letter everywhere. ``AssertionError`` if two rows define the same symbol.
    """
    table = README.split("## Notation", 1)[1].split("## Glossary", 1)[0]
    allowed: dict[str, set[str] | None] = {"d": None, "h": None}      # the shape strings' widths
    defined: dict[str, str] = {}
    for row in (line for line in table.splitlines() if line.startswith("| $")):
        symbol_cell, _, meaning = row.split("|")[1:4]
        named = set(re.findall(r"notebooks? (\d\d)", meaning)) or None
        for formula in formulas(symbol_cell):
            name = formula.split("=")[0].strip()
            assert name not in defined, f"the notation table defines {name} twice: {defined[name]!r}, {row!r}"
            defined[name] = row[:50]
            for symbol in letters(name):
                before = allowed.get(symbol, set())
                allowed[symbol] = None if named is None or before is None else before | named
    for part in table.split("\n\n"):
        if part.startswith(("Indices:", "General mathematics")):
            allowed.update({symbol: None for formula in formulas(part) for symbol in letters(formula)})
    return allowed


def test_letters_of_a_formula() -> None:
    assert letters(r"\frac{\partial L}{\partial Z_{3,ij}} = \operatorname{relu}(x)\,\alpha") == {
        "L", "Z", "i", "j", "x", "alpha"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_symbol_is_in_the_notation_table(path: Path) -> None:
    allowed, number = notation(), path.name[:2]
    strangers = sorted({(symbol, formula.strip()[:50]) for markdown in _cells(path, "markdown")
                        for formula in formulas(markdown) for symbol in letters(formula)
                        if symbol not in allowed or (allowed[symbol] is not None and
                                                     number not in allowed[symbol])})
    assert not strangers, (f"{path.name}: symbols not in the notation table of notebooks/README.md (or "
                           f"its row names other notebooks): {strangers}")


# ------------------------------------------------------------------ (c) counts
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
         "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15}
TRUE_COUNTS = {"notebooks": len(NOTEBOOKS), "exercises": len(EXERCISES)}


def typed_counts(text: str) -> list[tuple[int, str]]:
    """``(count, noun)`` for every "ten notebooks", "12 exercises", "twelve functions ... write"."""
    pattern = rf"\b({'|'.join(WORDS)}|\d+)\s+(notebooks|exercises|graded exercises|functions|stubs)\b"
    found = []
    for count, noun in re.findall(pattern, text, flags=re.I):
        value = WORDS.get(count.lower()) or int(count)
        found.append((value, "notebooks" if noun.lower() == "notebooks" else "exercises"))
    return found


COUNTED = [ROOT / "README.md", ROOT / "notebooks" / "README.md", ROOT / "docs" / "build.py",
           *sorted((ROOT / "tinyprune" / "exercises").glob("*.py")), *NOTEBOOKS]


def test_typed_counts_are_found() -> None:
    assert typed_counts("The course: ten notebooks and 12 exercises; Twelve functions") == [
        (10, "notebooks"), (12, "exercises"), (12, "exercises")]


@pytest.mark.parametrize("path", COUNTED, ids=[str(p.relative_to(ROOT)) for p in COUNTED])
def test_counts_of_notebooks_and_exercises_are_true(path: Path) -> None:
    is_notebook = path.suffix == ".ipynb"
    text = "\n".join(_cells(path, "markdown")) if is_notebook else path.read_text(encoding="utf-8")
    wrong = [(count, noun) for count, noun in typed_counts(text) if count != TRUE_COUNTS[noun]
             and count > 2]                                   # "two notebooks" names a pair, not the course
    assert not wrong, (f"{path.relative_to(ROOT)} types {wrong}; there are {TRUE_COUNTS}: generate the "
                       f"count (len(...)) or leave it out")


def test_every_notebook_ends_with_its_exercises() -> None:
    for path in NOTEBOOKS:
        assert _cells(path, "markdown")[-1].startswith("## Exercises"), f"{path.name} has no exercises cell"


# ------------------------------------------------------------------ (d) splits before training
_TRAINS = re.compile(r"\b(?:fit|finetune|distill|sparsify)\(\s*\w+,\s*([\w.]+)")


def split_after_training(code: str) -> list[str]:
    """Datasets split after a model trained on them (``fit(m, data.train)`` ... ``data.train.split``)."""
    trained_on, late = set(), []
    for line in code.splitlines():
        for source in re.findall(r"([\w.]+)\.split\(\s*0?\.\d", line):
            if source in trained_on:
                late.append(f"{source}.split after a model trained on {source}: {line.strip()}")
        trained_on.update(_TRAINS.findall(line))
    return late


def test_split_after_training_is_found() -> None:
    code = "fit(dense, data.train, epochs=1)\ntrain, val = data.train.split(0.8, seed=0)\n"
    assert split_after_training(code) and not split_after_training("\n".join(reversed(code.splitlines())))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_decisions_read_rows_held_out_before_training(path: Path) -> None:
    code = "\n".join(_cells(path, "code"))
    assert not split_after_training(code), f"{path.name}: {split_after_training(code)}"
    for call in re.findall(r"prune_and_recover\((.*?)\n\)|prune_and_recover\(([^\n]*)", code, flags=re.S):
        arguments = "".join(call)
        assert re.search(r"\(\s*\w+,\s*\w+,\s*[\w.]+\s*\)", arguments), (
            f"{path.name}: prune_and_recover({arguments.strip()[:60]}...) must be given (train, val, test) "
            f"held out before the model trained; a Splits without val is split after training")


def test_the_readme_lists_every_exercise_in_order() -> None:
    listed = re.findall(r"^\| (\d+) \| `(\w+)` \| .*? \| (\d\d) \|$", README, flags=re.M)
    assert [(int(number), name, notebook) for number, name, notebook in listed] == [
        (number, exercise.name, exercise.notebook) for number, exercise in enumerate(EXERCISES, 1)]
