"""Argument checks shared by the package: "a number in [0, 1)", "an int >= 1", "one of these names".

Each check returns the value in its plain form (``float``, ``int``, the chosen name) or raises a
``ValueError`` that names the argument, says what is expected and shows what came. ``bool`` is refused
where a number is expected: Python counts ``True`` as the int 1, but ``sparsity=True`` is a mistake,
never a sparsity. NumPy scalars (``np.float32(0.5)``, ``np.int64(3)``) are numbers like the others.
NaN and infinities are refused: no argument of tinyprune means "infinitely much".

>>> check_number("lr", 0.01, 0, None, low_open=True)
0.01
>>> check_int("steps", 3, 1)
3
>>> check_choice("scope", "layer", ("layer", "global"))
'layer'
>>> check_choice("scope", "globl", ("layer", "global"))
Traceback (most recent call last):
...
ValueError: unknown scope 'globl' (did you mean 'global'?); expected one of: layer, global
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def is_number(value: Any) -> bool:
    """True for an int or float (NumPy's too), False for ``bool`` and everything else.

    >>> [is_number(v) for v in (1, 2.5, np.float32(1), True, "1", None)]
    [True, True, True, False, False, False]
    """
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    """True for an int (NumPy's too), False for ``bool``, floats and everything else.

    >>> [is_int(v) for v in (3, np.int64(3), 3.0, True)]
    [True, True, False, False]
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The allowed range as a reader writes it: ``[0, 1)``, ``> 0``, ``>= 1``, ``<= 5``."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "finite"


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False, meaning: str = "") -> float:
    """``value`` as a float, if it is a finite number within the bounds (``None``: unbounded there).

    ``low_open``/``high_open`` leave that end out: ``low=0, low_open=True`` is "> 0". ``meaning``
    (e.g. ``"the fraction pruned"``) is added to the message in parentheses.

    >>> check_number("alpha", 0.5, 0, 1)
    0.5
    >>> check_number("alpha", 2, 0, 1, meaning="1 = magnitude only")
    Traceback (most recent call last):
    ...
    ValueError: alpha must lie in [0, 1] (1 = magnitude only), got 2
    """
    allowed = _bounds(low, high, low_open, high_open)
    note = f" ({meaning})" if meaning else ""
    if not is_number(value) or not math.isfinite(float(value)):
        kind = "a finite number" if allowed == "finite" else f"a number {allowed}"
        raise ValueError(f"{name} must be {kind}{note}, got {value!r}")
    number = float(value)
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        verb = "lie" if allowed.startswith("in ") else "be"
        raise ValueError(f"{name} must {verb} {allowed}{note}, got {value!r}")
    return number


def check_fraction(name: str, value: Any, *, include_one: bool = False, meaning: str = "") -> float:
    """``value`` as a float in ``[0, 1)`` (``[0, 1]`` with ``include_one``): a share of something.

    >>> check_fraction("sparsity", 0.9)
    0.9
    """
    return check_number(name, value, 0.0, 1.0, high_open=not include_one, meaning=meaning)


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within ``[minimum, maximum]`` (``None``: unbounded there); floats refused.

    >>> check_int("batch_size", 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an int >= 1, got 0
    """
    allowed = _bounds(minimum, maximum, False, False)
    wanted = "an int" if allowed == "finite" else f"an int {allowed}"
    fits = is_int(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not fits:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def did_you_mean(value: Any, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a mistyped ``value``, else ``""``.

    >>> did_you_mean("magnitud", ["magnitude", "random"])
    " (did you mean 'magnitude'?)"
    """
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else ``ValueError`` listing them, with the closest one."""
    allowed = tuple(choices)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}{did_you_mean(value, allowed)}; "
                         f"expected one of: {', '.join(allowed)}")
    return value


__all__ = ["check_choice", "check_fraction", "check_int", "check_number", "did_you_mean", "is_int",
           "is_number"]
