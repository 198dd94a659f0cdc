"""Build the course as a static site: the notebooks executed (figures included), the notation page, the
glossary and the exercises, as plain HTML files that open in any browser.

    python docs/build.py                          # executes every notebook, writes docs/_site/
    python docs/build.py --out /tmp/site --overwrite
    python docs/build.py --only 01,02             # a subset (the pages link only to what was built)
    python docs/build.py --executed DIR           # take already-executed notebooks from DIR (no kernel)

The title and the pages count the notebooks and the exercises they find (nothing typed).

The notebooks are executed by nbconvert (a fresh kernel each, in the ``notebooks/`` folder, one BLAS
thread) and rendered with its ``lab`` template; a notebook that raises fails the build and names the
cell. The other pages come from ``notebooks/README.md`` (reading order, notation, glossary) and from
``tinyprune.exercises`` (the list, and each stub's docstring). The site is written into a temporary
folder and renamed into place when complete (``tinyprune.files.staged_folder``), so ``--out`` is a
whole site or absent; an existing folder is replaced only with ``--overwrite``.

Formulas are converted to MathML when the site is built (``latex2mathml``), so every page reads offline
with no script and no network: a browser draws MathML itself. A formula the converter cannot take
fails the build, naming it; the pages never show raw TeX. The layout fits a phone (the bar wraps, wide
tables, formulas and outputs scroll inside themselves), Chinese terms fall back to an installed CJK
font (Noto Sans CJK: ``apt-get install fonts-noto-cjk``), and every notebook page links to the previous
and the next. Needs the ``docs`` extra: ``pip install -e '.[docs]'`` (nbconvert, latex2mathml).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "docs" / "_site"
TITLE = "tinyprune: the course"
VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC",
       "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif;
       margin: 0; color: #1d1d1f; }
nav.site { background: #24364b; padding: 0.5em 1em; position: sticky; top: 0; z-index: 10;
           display: flex; flex-wrap: wrap; gap: 0.2em 1em; }
nav.site a { color: #fff; text-decoration: none; font-size: 0.95em; }
nav.pager { display: flex; justify-content: space-between; gap: 1em; max-width: 70em; margin: 1.5em auto;
            padding: 0 1.5em; }
math[display="block"] { display: block; overflow-x: auto; overflow-y: hidden; max-width: 100%;
                        padding: 0.3em 0; }
table, .jp-RenderedHTMLCommon table { display: block; overflow-x: auto; max-width: 100%; }
pre, .jp-OutputArea-output pre { overflow-x: auto; max-width: 100%; }
img { max-width: 100%; height: auto; }
.jp-Cell, .jp-InputArea, .jp-OutputArea, .jp-RenderedHTMLCommon { max-width: 100%; min-width: 0; }
.jp-InputArea-editor, .jp-OutputArea-output { overflow-x: auto; }
@media (max-width: 640px) {
  main.page, nav.pager { padding: 0 0.7em; }
  .jp-Cell { padding: 0.2em 0.4em !important; }
  .jp-InputPrompt, .jp-OutputPrompt { display: none !important; }
  body { font-size: 15px; }
}
nav.site a:hover { text-decoration: underline; }
main.page { max-width: 70em; margin: 1.5em auto; padding: 0 1.5em; line-height: 1.5; }
main.page table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
main.page th, main.page td { border: 1px solid #ccd; padding: 0.3em 0.6em; vertical-align: top; }
main.page th { background: #eef1f6; }
main.page code { background: #f3f3f6; padding: 0 0.2em; border-radius: 3px; }
main.page pre { background: #f6f7f9; padding: 0.8em; overflow-x: auto; border: 1px solid #e3e5ea; }
p.built { color: #666; font-size: 0.85em; }
a.anchor-link { font-size: 0.55em; opacity: 0.35; text-decoration: none; margin-left: 0.3em; }
"""

_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$])\$([^$]+?)\$")


def _mathml(tex: str, display: str) -> str:
    from latex2mathml.converter import convert

    tex = tex.strip().replace("\\arg", "\\operatorname{arg}")     # a command latex2mathml leaves as text
    tex = re.sub(r"\n\s*>\s?", " ", tex)                  # a formula broken across the lines of a quote
    try:
        return convert(tex, display=display)
    except Exception as error:                              # name the formula: the page must not show TeX
        raise ValueError(f"cannot convert the formula {tex[:80]!r} to MathML: {error}") from error


def math_to_mathml(markdown: str) -> str:
    """``$...$`` and ``$$...$$`` of Markdown as MathML (inline and block), code spans left alone.

    >>> math_to_mathml("a $x^2$ and `$HOME`")[:29]
    'a <math xmlns="http://www.w3.'
    >>> "&#x0003E;" in math_to_mathml("> quoted $a -\\n> b$")      # the quote's > is not part of the formula
    False
    """
    parts = _CODE.split(markdown)
    for index in range(0, len(parts), 2):               # the even parts are prose, the odd ones code
        prose = _DISPLAY.sub(lambda m: "\n\n" + _mathml(m.group(1), "block") + "\n\n", parts[index])
        parts[index] = _INLINE.sub(lambda m: _mathml(m.group(1), "inline"), prose)
    return "".join(parts)


def notebook_paths(only: Sequence[str] | None = None) -> list[Path]:
    """The course notebooks (``NN_name.ipynb``), in reading order; ``only`` keeps those numbered so."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = set(only) - {p.name[:2] for p in paths}
        if unknown:
            raise ValueError(f"no notebook numbered {sorted(unknown)}; expected some of "
                             f"{[p.name[:2] for p in paths]}")
        paths = [p for p in paths if p.name[:2] in only]
    return paths


def execute(path: Path, timeout: int = 900) -> tuple[object, float]:
    """Run ``path`` top to bottom in a fresh kernel in ``notebooks/``; the executed notebook and seconds."""
    import nbformat
    from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")        # the notebooks' first cell does it too
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
            notebook, {"metadata": {"path": str(NOTEBOOKS)}})
    except CellExecutionError as error:
        raise RuntimeError(f"{path.name} failed while building the site:\n{error}") from None
    return notebook, time.perf_counter() - start


def read_executed(folder: Path, path: Path) -> object:
    """The executed copy of ``path`` found in ``folder`` (same file name); ``ValueError`` if missing."""
    import nbformat

    executed = folder / path.name
    if not executed.is_file():
        raise ValueError(f"--executed {folder}: no {path.name} there")
    notebook = nbformat.read(executed, as_version=4)
    if not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"):
        raise ValueError(f"{executed} has no outputs: it was not executed")
    return notebook


def nav(pages: Sequence[tuple[str, str]]) -> str:
    """The bar on top of every page: home, the notation, the glossary, the exercises, each notebook."""
    links = "".join(f'<a href="{href}">{html.escape(label)}</a>' for href, label in pages)
    return f'<nav class="site">{links}</nav>'


def pager(pages: Sequence[tuple[str, str]], index: int) -> str:
    """Links to the previous and the next notebook (by reading order) under a notebook page."""
    previous = (f'<a href="{pages[index - 1][0]}">&larr; {html.escape(pages[index - 1][1])}</a>'
                if index > 0 else "<span></span>")
    following = (f'<a href="{pages[index + 1][0]}">{html.escape(pages[index + 1][1])} &rarr;</a>'
                 if index + 1 < len(pages) else "<span></span>")
    return f'<nav class="pager">{previous}{following}</nav>'


def render_notebook(notebook: object, bar: str, below: str = "") -> str:
    """One notebook as a complete HTML page (nbconvert's lab template): formulas as MathML, no script
    for them, the site's bar on top and ``below`` (the previous/next links) at the end."""
    import copy

    from nbconvert import HTMLExporter

    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = math_to_mathml(cell.source)
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(notebook)
    # no MathJax: the formulas are MathML already, and the page must read without the network (nor
    # require.js, which the template fetches for widgets the notebooks do not use)
    mathjax = (r"<script[^>]*>[^<]*MathJax[^<]*</script>|<script[^>]*mathjax[^>]*>\s*</script>"
               r"|<!--[^>]*mathjax[^>]*-->|<script src=\"https?://[^\"]*require[^\"]*\">\s*</script>")
    body = re.sub(mathjax, "", body, flags=re.I)
    body = body.replace("<head>", f"<head>{VIEWPORT}", 1)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + f"<style>{STYLE}</style>" + bar, body, count=1)
    body = body.replace("</body>", f"{below}</body>", 1)
    return _local_links(body)


def _local_links(text: str) -> str:
    """Links between notebooks point at their HTML pages in the site."""
    return re.sub(r'href="(\d\d_[A-Za-z0-9_]+)\.ipynb"', r'href="\1.html"', text)


def markdown_page(title: str, markdown: str, bar: str, note: str = "") -> str:
    """A page of the site from Markdown (tables kept, formulas as MathML)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    body = _local_links(markdown2html_mistune(math_to_mathml(markdown)))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{VIEWPORT}"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body>{bar}<main class=\"page\">{body}{note}</main></body></html>\n")


def readme_sections() -> dict[str, str]:
    """``notebooks/README.md`` cut at its ``## `` headings: {"intro": ..., "Reading order": ..., ...}."""
    text = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    sections = {"intro": parts[0]}
    for part in parts[1:]:
        heading, _, rest = part.partition("\n")
        sections[heading.strip()] = f"## {heading}\n{rest}"
    return sections


def exercises_markdown() -> str:
    """The exercises page: the list (what each covers, which notebook), then every stub's docstring."""
    import inspect

    from tinyprune.exercises import EXERCISES, STUDENT_FILE, student

    lines = ["# Exercises", "",
             f"{len(EXERCISES)} functions a student of the document should be able to write, graded by "
             "property-based tests (hypothesis) that compare them with tinyprune's own functions and with "
             "finite differences. Copy the stubs, fill them in, grade them (`check` runs your code, each "
             "exercise in its own process with a time limit):", "",
             "```bash",
             "python -m tinyprune.exercises init my_answers",
             "python -m tinyprune.exercises check my_answers",
             "```", "",
             "What `check` prints for a wrong answer (the squared error's gradient without the ½, graded "
             "when this page was built):", "", "```text", sample_check_output(), "```", "",
             "| # | exercise | covers | taught in |", "|---|---|---|---|"]
    for number, exercise in enumerate(EXERCISES, 1):
        notebook = next(NOTEBOOKS.glob(f"{exercise.notebook}_*.ipynb")).stem
        lines.append(f"| {number} | [`{exercise.name}`](#{exercise.name}) | {exercise.covers} | "
                     f"[notebook {exercise.notebook}]({notebook}.ipynb) |")
    lines += ["", f"## The stubs (`{STUDENT_FILE.relative_to(ROOT)}`)", ""]
    for exercise in EXERCISES:
        source = inspect.getsource(getattr(student, exercise.name))       # the stub as the student sees it
        stub = source[:source.rindex("raise NotImplementedError")].rstrip()
        lines += [f'<h3 id="{exercise.name}">{exercise.name}</h3>', "", "```python", stub, "```", ""]
    return "\n".join(lines)


def sample_check_output() -> str:
    """``check``'s lines for one known slip, graded now (so the page shows what the grader says today)."""
    from tinyprune.exercises import grade
    from tinyprune.exercises.slips import SLIPS

    name = "squared_error_softmax_grad"
    result = grade(name, SLIPS[name][0][1], max_examples=10)
    message = "\n".join(f"      {line.strip()}" for line in result.message.splitlines())
    return f"FAIL  {name:<28} {result.seconds:5.1f} s\n{message}\n0 of 1 exercises pass"


def index_markdown(sections: dict[str, str], built: Sequence[Path], seconds: dict[str, float]) -> str:
    """The home page: the README's introduction and reading order, with each notebook's build time."""
    from tinyprune.exercises import EXERCISES

    lines = [sections["intro"], f"This site: {len(built)} notebooks and {len(EXERCISES)} exercises.", "",
             sections.get("Reading order", "")]
    if seconds:
        lines += ["", "## This build", "", "| notebook | executed in |", "|---|---|"]
        lines += [f"| [{p.stem}]({p.stem}.ipynb) | {seconds[p.stem]:.1f} s |"
                  for p in built if p.stem in seconds]
    lines += ["", "Also: [the notation](notation.html), [the glossary](glossary.html), "
                  "[the exercises](exercises.html)."]
    return "\n".join(lines)


def build(out: Path = DEFAULT_OUT, *, only: Sequence[str] | None = None, executed: Path | None = None,
          overwrite: bool = False, log=print) -> dict[str, float]:
    """Build the site into ``out``; return each notebook's execution seconds (none with ``executed``)."""
    from tinyprune.files import atomic_write, staged_folder

    paths = notebook_paths(only)
    pages = [("index.html", "Course"), ("notation.html", "Notation"), ("glossary.html", "Glossary"),
             ("exercises.html", "Exercises")] + [(f"{p.stem}.html", p.name[:2]) for p in paths]
    bar = nav(pages)
    seconds: dict[str, float] = {}
    with staged_folder(out, overwrite=overwrite) as stage:
        notebooks = [(f"{p.stem}.html", p.stem.replace("_", " ")) for p in paths]
        for number, path in enumerate(paths):
            if executed is None:
                notebook, seconds[path.stem] = execute(path)
                log(f"executed {path.name} in {seconds[path.stem]:.1f} s")
            else:
                notebook = read_executed(executed, path)
            page = render_notebook(notebook, bar, pager(notebooks, number))
            atomic_write(stage / f"{path.stem}.html", page)
        sections = readme_sections()
        built = f'<p class="built">Built {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.</p>'
        atomic_write(stage / "index.html",
                     markdown_page(TITLE, index_markdown(sections, paths, seconds), bar, built))
        atomic_write(stage / "notation.html",
                     markdown_page("Notation", sections["Notation"], bar))
        atomic_write(stage / "glossary.html",
                     markdown_page("Glossary", sections["Glossary of the document's terms"], bar))
        atomic_write(stage / "exercises.html", markdown_page("Exercises", exercises_markdown(), bar))
    log(f"wrote {out}/index.html ({len(paths)} notebooks)")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"the site's folder (default {DEFAULT_OUT})")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--only", help="comma-separated notebook numbers, e.g. 01,08")
    parser.add_argument("--executed", type=Path, help="a folder of executed notebooks to render instead")
    args = parser.parse_args(argv)
    from tinyprune.errors import TinypruneError

    only = [part.strip() for part in args.only.split(",")] if args.only else None
    try:
        build(args.out, only=only, executed=args.executed, overwrite=args.overwrite)
    except (ValueError, RuntimeError, TinypruneError) as error:
        print(f"docs/build.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))           # the package, when run from a checkout without installing
    sys.exit(main())
