"""Recipe files from strangers: FIFOs, devices, endless or deeply nested files, huge values, paths as names.

A recipe is read with the checkpoint's rules (``files.read_config``): a regular file only (a FIFO is
refused at once, not waited on; a symlink to a device is refused), at most ``MAX_CONFIG_BYTES``, nested
at most ``MAX_CONFIG_DEPTH`` deep, no key twice in one JSON object; a named recipe is a name, never a path.
"""

from __future__ import annotations

import os
import threading

import pytest

from tinyprune import cli
from tinyprune.experiment.recipe import RECIPE_FOLDER, Recipe, RecipeError
from tinyprune.files import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH


def refusal(target, *args):
    """What ``target(*args)`` returns or raises, from a thread given 10 s (a hang fails the test)."""
    outcome = []

    def call():
        try:
            outcome.append(target(*args))
        except BaseException as error:            # noqa: BLE001 (the test inspects whatever it was)
            outcome.append(error)
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(10)
    assert outcome, "still reading after 10 s: it waits on the file instead of refusing it"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_recipe_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "r.toml"
    os.mkfifo(fifo)
    error = refusal(Recipe.from_file, fifo)
    assert isinstance(error, RecipeError) and "is a FIFO, not a regular file" in str(error)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_symlink_to_dev_zero_is_refused_without_reading_it(tmp_path):
    link = tmp_path / "r.toml"
    link.symlink_to("/dev/zero")
    error = refusal(Recipe.from_file, link)
    assert isinstance(error, RecipeError) and "not a regular file" in str(error)


def test_the_cli_refuses_a_fifo_recipe_with_one_line_and_exit_2(tmp_path, capsys):
    fifo = tmp_path / "r.toml"
    os.mkfifo(fifo)
    assert refusal(cli.main, ["run", "--recipe", str(fifo), "--out", str(tmp_path / "o")]) == 2
    assert "is a FIFO" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_recipe_file_above_the_size_bound_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.toml"
    with open(big, "wb") as file:
        file.truncate(100 * MAX_CONFIG_BYTES)          # sparse: 100 MiB of zeros that take no disk
    with pytest.raises(RecipeError, match=f"more than a recipe file may hold \\({MAX_CONFIG_BYTES}\\)"):
        Recipe.from_file(big)


@pytest.mark.parametrize("suffix, text", [
    (".json", "[" * 100_000 + "]" * 100_000),
    (".toml", "sparsity = " + "[" * 100_000 + "]" * 100_000),
    (".toml", "a = " + "{b = " * 100_000 + "1" + "}" * 100_000),
])
def test_a_recipe_nested_100000_deep_is_a_clean_error_not_a_recursion_error(tmp_path, suffix, text):
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(RecipeError, match=f"nested 100000 deep; .* at most {MAX_CONFIG_DEPTH} deep"):
        Recipe.from_file(path)


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path):
    path = tmp_path / "strings.json"
    path.write_text('{"criterion": "' + "[" * 100 + '"}')
    with pytest.raises(RecipeError, match="criterion: expected one of"):
        Recipe.from_file(path)


def test_a_huge_bad_value_is_echoed_cut_short(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text('{"criterion": "' + "x" * 500_000 + '"}')
    with pytest.raises(RecipeError) as caught:
        Recipe.from_file(path)
    message = str(caught.value)
    assert len(message) < 2000 and "more characters" in message


def test_a_named_recipe_is_a_name_never_a_path(tmp_path):
    (tmp_path / "evil.toml").write_text("sparsity = 0.5\n")
    outside = os.path.relpath(tmp_path / "evil", RECIPE_FOLDER)       # ../../../tmp/.../evil, no suffix
    assert (RECIPE_FOLDER / f"{outside}.toml").is_file()
    with pytest.raises(RecipeError, match="no recipe named"):
        Recipe.from_file(outside)
    assert Recipe.from_file("han2015").schedule == "iterative"          # names still work


def test_non_string_keys_are_a_recipe_error_not_a_type_error():
    with pytest.raises(RecipeError, match="unknown recipe field"):
        Recipe.from_dict({1: 2, "x": 3})


def test_a_key_written_twice_in_a_json_recipe_is_refused_not_last_one_wins(tmp_path):
    path = tmp_path / "twice.json"
    path.write_text('{"sparsity": 0.5, "sparsity": 0.9}')
    with pytest.raises(RecipeError, match="'sparsity' appear more than once"):
        Recipe.from_file(path)


def test_a_recipe_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes(b'criterion = "\xe9"\n')
    with pytest.raises(RecipeError, match="not UTF-8"):
        Recipe.from_file(path)
