"""``python -m tinyprune.exercises list | init FOLDER | check PATH``: the exercises' command line.

``check`` runs the student's code (in a separate process per exercise, stopped after ``--time-limit``
seconds) and exits 0 when every exercise passes, 1 otherwise, 130 when interrupted (Ctrl-C);
``--only NAME`` grades some of them and ``--max-examples N`` sets how many inputs each grader draws
(30 by default). Errors (a bad path, a file that cannot be imported or written) are one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinyprune.exercises import EXERCISES, STUDENT_FILE, check, listing
from tinyprune.files import atomic_write


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tinyprune.exercises", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the exercises, what each covers, the notebook that teaches it")
    init = commands.add_parser("init", help="copy the stubs to FOLDER/student.py (refuses to overwrite)")
    init.add_argument("folder", type=Path)
    grade = commands.add_parser("check", help="grade the exercises in PATH (a .py file or a folder)")
    grade.add_argument("path", type=Path)
    grade.add_argument("--only", action="append", choices=[e.name for e in EXERCISES], metavar="NAME",
                       help="grade only this exercise (repeatable)")
    grade.add_argument("--max-examples", type=int, default=30, help="inputs drawn per grader (default 30)")
    grade.add_argument("--end-to-end", action="store_true",
                       help="then train and prune the document's model on your functions (hooks.use)")
    grade.add_argument("--time-limit", type=float, default=120.0,
                       help="seconds each exercise may run before it fails (default 120)")
    args = parser.parse_args(argv)

    if args.command == "list":
        print(listing())
        return 0
    if args.command == "init":
        return _init(args.folder)
    if args.max_examples < 1 or not args.time_limit > 0:
        parser.error(f"--max-examples must be >= 1 and --time-limit > 0, got {args.max_examples} and "
                     f"{args.time_limit}")
    try:
        results = check(args.path, args.only, args.max_examples, time_limit=args.time_limit,
                        end_to_end=args.end_to_end)
    except ValueError as error:
        print(f"python -m tinyprune.exercises check: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:                       # Ctrl-C: the grading process is killed by check
        print("\ninterrupted: no verdict", file=sys.stderr)
        return 130
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        print(f"{mark}  {result.name:<28} {result.seconds:5.1f} s")
        if not result.passed or result.name == "end_to_end":
            print(f"      {result.message}")
    passed = sum(r.passed for r in results)
    print(f"{passed} of {len(results)} {'stages' if args.end_to_end else 'exercises'} pass")
    return 0 if passed == len(results) else 1


def _init(folder: Path) -> int:
    """Copy the stubs to ``folder/student.py``; never replace a file; one line on stderr if it fails."""
    target = folder / "student.py"
    if target.exists() or target.is_symlink():
        print(f"{target} exists already; not replacing it", file=sys.stderr)
        return 1
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(target, STUDENT_FILE.read_text(encoding="utf-8"), overwrite=False)
    except OSError as error:                        # a file where the folder should be, no permission, ...
        reason = error.strerror or type(error).__name__
        print(f"cannot write {target}: {reason}", file=sys.stderr)
        return 1
    print(f"wrote {target}: fill in the functions, then run\n"
          f"python -m tinyprune.exercises check {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
