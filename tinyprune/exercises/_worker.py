"""The process that runs a student's code for ``check``: ``python -m tinyprune.exercises._worker``.

``check`` never runs the student's code in its own process. It starts this one per exercise (and once
to import the files), with a time limit, and reads the verdict from a JSON file this process writes;
its exit status is not a verdict. So ``sys.exit`` at import or inside a function, an endless loop, a
crash of the interpreter or a thread left running cannot make ``check`` pass, hang or disappear:

    python -m tinyprune.exercises._worker names PATH RESULT.json        the exercise functions found
    python -m tinyprune.exercises._worker grade PATH NAME N SHRINK RESULT.json
    python -m tinyprune.exercises._worker end_to_end PATH RESULT.json   the document's model on PATH's code
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tinyprune.files import atomic_write


def _verdict(command: str, arguments: list[str]) -> dict:
    from tinyprune import exercises

    try:
        functions = exercises.load_functions(arguments[0])
    except SystemExit as stop:
        return {"error": f"importing {arguments[0]} called sys.exit({stop.code!r}); remove it: check imports "
                         f"your files to grade them"}
    except ValueError as error:
        return {"error": str(error)}
    if command == "end_to_end":
        from tinyprune.exercises.hooks import end_to_end_verdict

        start = time.perf_counter()
        passed, message = end_to_end_verdict(arguments[0])
        return {"passed": passed, "message": message, "seconds": time.perf_counter() - start}
    if command == "names":
        return {"names": sorted(functions), "foreign": exercises.foreign(functions, arguments[0])}
    name, examples, shrink = arguments[1], int(arguments[2]), arguments[3] == "1"
    start = time.perf_counter()
    try:
        result = exercises.grade(name, functions[name], examples, shrink)
    except SystemExit as stop:                      # the student's function called sys.exit
        return {"passed": False, "seconds": time.perf_counter() - start,
                "message": f"your function called sys.exit({stop.code!r}) while being graded; return a value"}
    return {"passed": result.passed, "message": result.message, "seconds": result.seconds}


def main(argv: list[str]) -> None:
    """Run ``argv``'s command and write its JSON verdict; end the process at once (no thread waits)."""
    command, arguments, output = argv[0], argv[1:-1], Path(argv[-1])
    try:
        verdict = _verdict(command, arguments)
    except BaseException as error:                  # noqa: BLE001 - anything the student's code raised
        verdict = {"error": f"the grader stopped: {type(error).__name__}: {error}"}
    atomic_write(output, json.dumps(verdict))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)                                     # a stray non-daemon thread must not keep us alive


if __name__ == "__main__":
    main(sys.argv[1:])
