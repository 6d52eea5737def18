"""Entry point: ``leukview analyze ...`` runs headless, anything else opens the viewer."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: leukview [IMAGE] [--screenshot OUT.png] [--models-dir DIR]
       leukview analyze PATH... [--model NAME]... [--out DIR] [--overlay]
       leukview --version

Opens the viewer (on IMAGE when given), or analyses images headless with `analyze`.
`leukview analyze --help` lists the analysis options."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "analyze":
        from .cli import run_analyze

        return run_analyze(args[1:])
    if args and args[0] in ("-V", "--version"):
        from . import __version__

        print(f"leukview {__version__}")
        return 0
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    from .gui.app import main as gui_main

    return gui_main(args)


if __name__ == "__main__":
    sys.exit(main())
