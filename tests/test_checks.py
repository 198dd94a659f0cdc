"""The shared argument checks: what each accepts, what it refuses, and that the message names both."""

import math

import numpy as np
import pytest

from tinyprune.checks import check_choice, check_fraction, check_int, check_number, did_you_mean


@pytest.mark.parametrize("value", [0, 0.5, np.float32(0.25), np.int64(0), 0.999])
def test_a_fraction_in_range_comes_back_as_a_float(value):
    result = check_fraction("sparsity", value)
    assert type(result) is float and result == float(value)


@pytest.mark.parametrize("value, message", [
    (True, "must be a number in"), ("0.5", "must be a number in"), (None, "must be a number in"),
    (math.nan, "must be a number in"), (1.0, r"must lie in \[0, 1\)"), (-0.1, r"must lie in \[0, 1\)"),
])
def test_a_fraction_refuses_bools_strings_nan_and_the_ends_it_leaves_out(value, message):
    with pytest.raises(ValueError, match=f"sparsity {message}"):
        check_fraction("sparsity", value)


def test_the_bounds_read_as_a_person_writes_them():
    assert check_fraction("share", 1, include_one=True) == 1.0
    with pytest.raises(ValueError, match=r"lr must be > 0 \(a step size\), got 0"):
        check_number("lr", 0, 0, None, low_open=True, meaning="a step size")
    with pytest.raises(ValueError, match=r"rate must lie in \(0, 1\), got 1"):
        check_number("rate", 1, 0, 1, low_open=True, high_open=True)
    with pytest.raises(ValueError, match="tau must be a finite number, got inf"):
        check_number("tau", math.inf)
    assert check_number("tau", -3) == -3.0


def test_an_int_is_an_int_not_a_bool_or_a_float():
    assert check_int("steps", np.int64(3), 1) == 3 and type(check_int("steps", np.int64(3), 1)) is int
    for bad in (True, 2.0, "2", 0):
        with pytest.raises(ValueError, match=f"steps must be an int >= 1, got {bad!r}"):
            check_int("steps", bad, 1)
    with pytest.raises(ValueError, match=r"p must be an int in \[1, 2\], got 3"):
        check_int("p", 3, 1, 2)


def test_a_choice_suggests_the_closest_name_only_when_one_is_close():
    assert check_choice("scope", "layer", ("layer", "global")) == "layer"
    with pytest.raises(ValueError, match=r"unknown scope 'glob' \(did you mean 'global'\?\); expected"):
        check_choice("scope", "glob", ("layer", "global"))
    with pytest.raises(ValueError, match="unknown scope 'xyz'; expected one of: layer, global"):
        check_choice("scope", "xyz", ("layer", "global"))
    assert did_you_mean(3, ["a"]) == "" and did_you_mean("lamb", ["lamp", "obs"]) == " (did you mean 'lamp'?)"
