"""Exercises for the course, graded by property-based tests (the way MiniTorch's modules are graded).

``student.py`` holds one function stub per exercise (``len(EXERCISES)`` of them), each a step of the
source document with its equation and shapes in the docstring; ``solutions.py`` holds reference
solutions; ``graders.py`` holds one hypothesis grader per exercise, comparing the student's function
with tinyprune's own and with finite differences.

    python -m tinyprune.exercises list                 what each exercise covers, which notebook teaches it
    python -m tinyprune.exercises init my_answers      copy the stubs to my_answers/student.py (no overwrite)
    python -m tinyprune.exercises check my_answers     grade every exercise found in the folder's .py files

>>> [exercise.name for exercise in EXERCISES][:3]
['linear_forward', 'layer_backward', 'softmax_cross_entropy_grad']
>>> sorted({exercise.notebook for exercise in EXERCISES})
['01', '02', '03', '04', '05', '06', '08', '09']
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

STUDENT_FILE = Path(__file__).with_name("student.py")
SOLUTIONS_FILE = Path(__file__).with_name("solutions.py")


from tinyprune.exercises.catalogue import EXERCISES, Exercise  # noqa: E402


@dataclass
class Result:
    """The grade of one exercise: ``passed``, or why not (``message``), and the seconds it took."""

    name: str
    passed: bool
    message: str
    seconds: float


def find(name: str) -> Exercise:
    """The exercise called ``name``; ``ValueError`` listing the names otherwise."""
    for exercise in EXERCISES:
        if exercise.name == name:
            return exercise
    raise ValueError(f"unknown exercise {name!r}; expected one of {[e.name for e in EXERCISES]}")


from tinyprune.exercises.loading import _files, foreign, load_functions, yours_or_reference  # noqa: E402


def grade(name: str, function: Callable, max_examples: int = 30, shrink: bool = True) -> Result:
    """Run exercise ``name``'s grader on ``function``: a ``Result`` with the first failure's message.

    ``max_examples`` inputs are drawn (derandomized: the same ones every run); with ``shrink`` a failing
    input is first made as small as hypothesis can make it, so the message shows the simplest case.
    """
    from tinyprune.exercises import graders  # needs hypothesis (the dev extra)
    find(name)
    start = time.perf_counter()
    try:
        getattr(graders, f"grade_{name}")(function, graders.grading_settings(max_examples, shrink))
    except NotImplementedError:
        return Result(name, False, "not written yet (the stub raises NotImplementedError)",
                      time.perf_counter() - start)
    except graders.WrongAnswerError as failure:
        slip = graders.name_the_slip(name)
        message = str(failure).split("\nFalsifying")[0]
        if slip:
            message += f"\n      this is exactly what a known slip gives: {slip}"
        return Result(name, False, message, time.perf_counter() - start)
    except Exception as error:                    # the student's code crashed: say where, not a traceback
        return Result(name, False, f"raised {type(error).__name__}: {error}", time.perf_counter() - start)
    return Result(name, True, "passed", time.perf_counter() - start)


def _run_worker(arguments: list[str], time_limit: float) -> dict:
    """Run ``_worker`` on ``arguments`` in its own process (and session) for at most ``time_limit`` s.

    Returns its JSON verdict, or ``{"error": ...}`` when it timed out or ended without one. The whole
    process group is killed at the end (a child the student's code started dies with it).
    """
    with tempfile.TemporaryDirectory(prefix="tinyprune-check-") as folder:
        output = Path(folder) / "verdict.json"
        process = subprocess.Popen([sys.executable, "-m", "tinyprune.exercises._worker", *arguments,
                                    str(output)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        try:
            _, stderr = process.communicate(timeout=time_limit)
        except subprocess.TimeoutExpired:
            return {"error": f"no answer within the time limit of {time_limit:g} s (an endless loop? a very "
                             f"slow loop over samples?)"}
        finally:
            _kill_group(process)
        if output.is_file():
            return json.loads(output.read_text(encoding="utf-8"))
        last = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(nothing on stderr)"]
        return {"error": f"the grading process ended with exit status {process.returncode} before giving a "
                         f"verdict (os._exit, a crash, or sys.exit in a thread?); its last line: {last[0]}"}


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def check(path: str | Path, names: Iterable[str] | None = None, max_examples: int = 30,
          shrink: bool = True, time_limit: float = 120.0, end_to_end: bool = False) -> list[Result]:
    """Grade the exercises found at ``path`` (all of them, or ``names``); a missing function fails.

    The student's code runs in a separate process per exercise (``_worker``), each stopped after
    ``time_limit`` seconds; ``sys.exit``, an endless loop or a crash is a failed exercise with a
    message, never a pass, a hang or a traceback. ``ValueError`` (one line) if ``path`` cannot be
    imported at all. With ``end_to_end``, a last stage trains and prunes the document's model on the
    student's code (``hooks.use``) and compares its accuracies with tinyprune's.
    """
    _files(path)                                  # a bad path: ValueError before any process starts
    chosen = [find(name) for name in names] if names else list(EXERCISES)
    found = _run_worker(["names", str(path)], time_limit)
    if "error" in found:
        raise ValueError(found["error"])
    results = []
    for exercise in chosen:
        if exercise.name not in found["names"]:
            results.append(Result(exercise.name, False, f"no function {exercise.name} found in {path}", 0.0))
        elif exercise.name in found["foreign"]:
            results.append(Result(exercise.name, False, f"{exercise.name} is imported from "
                                  f"{found['foreign'][exercise.name]}, not written in {path}: write your own",
                                  0.0))
        else:
            start = time.perf_counter()
            verdict = _run_worker(["grade", str(path), exercise.name, str(max_examples), str(int(shrink))],
                                  time_limit)
            if "error" in verdict:
                verdict = {"passed": False, "message": verdict["error"],
                           "seconds": time.perf_counter() - start}
            results.append(Result(exercise.name, verdict["passed"], verdict["message"], verdict["seconds"]))
    if end_to_end:
        verdict = _run_worker(["end_to_end", str(path)], time_limit)
        if "error" in verdict:
            verdict = {"passed": False, "message": verdict["error"], "seconds": 0.0}
        results.append(Result("end_to_end", verdict["passed"], verdict["message"], verdict["seconds"]))
    return results


def compare(yours: dict[str, object], reference: dict[str, object]) -> str:
    """Line by line, your numbers against tinyprune's: exact, close, the largest difference.

    Karpathy's ``cmp`` of the backprop exercise: one line per quantity, so a single wrong term shows.
    "close" is ``allclose`` with ``rtol = 1e-5`` and an absolute slack of ``1e-5`` times tinyprune's
    largest magnitude: float32 sums taken in another order (``einsum``, a loop) differ from tinyprune's in
    the last digits of the largest entries and stay close; a wrong term does not.

    >>> import numpy as np
    >>> print(compare({"dW": np.ones(2), "db": np.zeros(2)}, {"dW": np.ones(2), "db": np.full(2, 1e-3)}))
    quantity               exact  close  max |difference|
    dW                     yes    yes    0
    db                     no     no     0.001
    """
    import numpy as np

    rows = [f"{'quantity':<22} {'exact':<6} {'close':<6} max |difference|"]
    for name, theirs in reference.items():
        if name not in yours:
            rows.append(f"{name:<22} (missing from yours)")
            continue
        a, b = np.asarray(yours[name], dtype=np.float64), np.asarray(theirs, dtype=np.float64)
        if a.shape != b.shape:
            rows.append(f"{name:<22} shape {a.shape}, expected {b.shape}")
            continue
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        exact, near = np.array_equal(a, b), np.allclose(a, b, rtol=1e-5, atol=1e-5 * scale)
        difference = float(np.max(np.abs(a - b))) if a.size else 0.0
        rows.append(f"{name:<22} {'yes' if exact else 'no':<6} {'yes' if near else 'no':<6} {difference:.3g}")
    return "\n".join(rows)


def listing() -> str:
    """The exercises as a table: number, name, notebook, what it covers."""
    rows = [f"{'#':>2}  {'exercise':<28} {'notebook':<9} covers"]
    rows += [f"{i:>2}  {e.name:<28} {e.notebook:<9} {e.covers}" for i, e in enumerate(EXERCISES, 1)]
    return "\n".join(rows)


__all__ = ["EXERCISES", "Exercise", "Result", "check", "compare", "find", "foreign", "grade", "listing",
           "load_functions", "use", "yours_or_reference"]


def __getattr__(name: str) -> object:
    """``tinyprune.exercises.use``: loaded on first use (``hooks`` imports the library it swaps into)."""
    if name == "use":
        from tinyprune.exercises.hooks import use
        return use
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
