"""The course's static site builds (``docs/build.py``): notebooks executed with their figures, the
notation, the glossary and the exercises as pages, every link of the top bar resolving.

Executing every notebook takes minutes, so the test builds the site with notebooks 01 and 02 (really
executed) and, once more, from executed copies it makes of nothing: an unexecuted folder is refused.
The build needs no network (formulas become MathML at build time) and no page shows raw TeX.
"""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("nbconvert")
pytest.importorskip("latex2mathml")

from tinyprune.errors import OutputError  # noqa: E402
from tinyprune.exercises import EXERCISES  # noqa: E402

BUILD = Path(__file__).resolve().parent.parent / "docs" / "build.py"


def _builder():
    spec = importlib.util.spec_from_file_location("course_site_build", BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    out = tmp_path_factory.mktemp("site") / "course"
    seconds = _builder().build(out, only=["01", "02"], log=lambda message: None)
    return out, seconds


def test_pages_exist_and_the_notebook_was_executed(site) -> None:
    out, seconds = site
    assert sorted(p.name for p in out.iterdir()) == [
        "01_mlp_and_losses.html", "02_backprop_by_hand.html", "exercises.html", "glossary.html", "index.html",
        "notation.html"]
    assert seconds["01_mlp_and_losses"] > 0
    page = (out / "01_mlp_and_losses.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64") >= 3            # the figures are embedded
    assert "Traceback" not in page and "all checks passed" in page   # it ran to its last cell
    assert ".ipynb\"" not in re.sub(r'href="https?://[^"]*"', "", page)


def test_nav_links_resolve(site) -> None:
    out, _ = site
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        nav = re.search(r'<nav class="site">(.*?)</nav>', text).group(1)
        for href in re.findall(r'href="([^"]+)"', nav):
            assert (out / href).is_file(), f"{page.name}: the bar links to missing {href}"


def test_notation_glossary_and_exercises_pages(site) -> None:
    out, _ = site
    notation = (out / "notation.html").read_text(encoding="utf-8")
    assert re.search(r"no letter stands for two\s+things", notation) and "<table>" in notation
    glossary = (out / "glossary.html").read_text(encoding="utf-8")
    assert "剪枝率" in glossary and "梯度的绝对值" in glossary
    exercises = (out / "exercises.html").read_text(encoding="utf-8")
    assert all(exercise.name in exercises for exercise in EXERCISES)
    assert 'href="01_mlp_and_losses.html"' in exercises


def test_existing_site_is_not_replaced_without_overwrite(site) -> None:
    out, _ = site
    before = (out / "index.html").read_text(encoding="utf-8")
    with pytest.raises(OutputError, match="overwrite"):
        _builder().build(out, only=["01"], log=lambda message: None)
    assert (out / "index.html").read_text(encoding="utf-8") == before


def test_unexecuted_notebooks_and_unknown_numbers_are_refused(tmp_path: Path) -> None:
    builder = _builder()
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "01_mlp_and_losses.ipynb").write_bytes((BUILD.parent.parent / "notebooks" /
                                                   "01_mlp_and_losses.ipynb").read_bytes())
    with pytest.raises(ValueError, match="not executed"):
        builder.build(tmp_path / "out", only=["01"], executed=raw, log=lambda message: None)
    assert not (tmp_path / "out").exists()                    # a failed build leaves nothing behind
    with pytest.raises(ValueError, match="no notebook numbered"):
        builder.build(tmp_path / "out2", only=["42"], log=lambda message: None)


def visible_text(page: str) -> str:
    """What a reader sees: the page without scripts, styles, code, MathML and tags."""
    page = re.sub(r"<(script|style|pre|code|math)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


RAW_TEX = re.compile(r"\$[^$\n]{1,80}\$|\w_\{|\^\{|\\(?:frac|sum|partial|alpha|delta|operatorname|lVert|top|"
                     r"hat|odot|le|ge|text|mathbf|left|right)\b")


def test_raw_tex_is_found_where_there_is_some() -> None:
    assert RAW_TEX.search(visible_text("<p>so $\\frac12$ and A_{l-1}</p>"))
    assert not RAW_TEX.search(visible_text("<p>a <math><mi>x</mi></math> and <code>$HOME</code></p>"))


def test_formulas_are_mathml_and_no_page_shows_raw_tex_or_needs_the_network(site) -> None:
    out, _ = site
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        hits = RAW_TEX.findall(visible_text(text))
        assert not hits, f"{page.name} shows raw TeX: {hits[:5]}"
        assert "mathjax" not in text.lower(), f"{page.name} still loads MathJax"
        assert not re.search(r"<script[^>]+src=\"https?:", text), f"{page.name} loads a script from the web"
    for name in ("01_mlp_and_losses.html", "notation.html", "index.html"):
        assert (out / name).read_text(encoding="utf-8").count("<math") >= 5, name


def test_pages_fit_a_phone_and_name_a_cjk_font(site) -> None:
    out, _ = site
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert 'name="viewport" content="width=device-width' in text, page.name
        assert "flex-wrap: wrap" in text and "Noto Sans CJK SC" in text and "@media (max-width" in text


def test_notebook_pages_link_to_the_previous_and_the_next(site) -> None:
    out, _ = site
    first = (out / "01_mlp_and_losses.html").read_text(encoding="utf-8")
    second = (out / "02_backprop_by_hand.html").read_text(encoding="utf-8")
    assert re.search(r'<nav class="pager"><span></span><a href="02_backprop_by_hand.html">', first)
    assert re.search(r'<nav class="pager"><a href="01_mlp_and_losses.html">.*?</a><span></span></nav>',
                     second)


def test_the_exercises_page_shows_what_check_prints(site) -> None:
    out, _ = site
    page = html.unescape((out / "exercises.html").read_text(encoding="utf-8"))
    assert "FAIL  squared_error_softmax_grad" in page and "known slip gives" in page
    assert f"{len(EXERCISES)} functions" in page
