"""``python -m tinyprune``: the same as the ``tinyprune`` command (see ``tinyprune.cli``)."""

from tinyprune.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
