"""Entry point: ``leukview analyze``, ``report`` and ``atlas`` run headless, anything else opens the viewer."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: leukview [IMAGE] [--screenshot OUT.png] [--models-dir DIR]
       leukview analyze PATH... [--model NAME]... [--out DIR] [--overlay] [--pixel-size UM]
                        [--confidence-threshold T]
       leukview report PATH [--csv OUT] [--pdf OUT] [--models-dir DIR] [--model NAME]...
       leukview atlas add SESSION... [--atlas DIR] [--source NAME] [--licence TEXT]
       leukview atlas info [DIR] [--json]
       leukview --teach [QUIZ] [--trainee NAME] [--cells N] [--timed SECONDS]
       leukview --version

Opens the viewer (on IMAGE when given), analyses images headless with `analyze`,
or writes the viewer's cell CSV and PDF report of an image or a session with `report`;
`atlas` grows and describes a laboratory's reference atlas from reviewed sessions, and
`--teach` opens a quiz for trainees (on the reference atlas, or a trainer's quiz file).
`leukview analyze --help`, `leukview report --help` and `leukview atlas --help` list their options."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "analyze":
        from .cli import run_analyze

        return run_analyze(args[1:])
    if args and args[0] == "report":
        from .cli_report import run_report

        return run_report(args[1:])
    if args and args[0] == "atlas":
        from .cli_atlas import run_atlas

        return run_atlas(args[1:])
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
