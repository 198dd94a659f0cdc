"""``python -m tinyprune.exercises list | init FOLDER | check PATH``: the exercises' command line.

``check`` exits 0 when every exercise passes, 1 otherwise; ``--only NAME`` grades some of them and
``--max-examples N`` sets how many inputs each grader draws (30 by default).
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
    args = parser.parse_args(argv)

    if args.command == "list":
        print(listing())
        return 0
    if args.command == "init":
        target = args.folder / "student.py"
        if target.exists():
            print(f"{target} exists already; not replacing it", file=sys.stderr)
            return 1
        args.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(target, STUDENT_FILE.read_text(encoding="utf-8"))
        print(f"wrote {target}: fill in the functions, then run\n"
              f"python -m tinyprune.exercises check {args.folder}")
        return 0
    if args.max_examples < 1:
        parser.error(f"--max-examples must be >= 1, got {args.max_examples}")
    try:
        results = check(args.path, args.only, args.max_examples)
    except ValueError as error:
        parser.error(str(error))
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        print(f"{mark}  {result.name:<28} {result.seconds:5.1f} s")
        if not result.passed:
            print(f"      {result.message}")
    passed = sum(r.passed for r in results)
    print(f"{passed} of {len(results)} exercises pass")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
