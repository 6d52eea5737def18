"""Start the viewer: ``leukview [IMAGE] [--screenshot OUT.png] [--models-dir DIR]``, or the
teaching mode: ``leukview --teach [QUIZ] [--trainee NAME] [--cells N] [--timed SECONDS] [--screenshot OUT.png]``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

SCREENSHOT_SIZE = (1440, 900)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leukview",
        description="Open the LeukView viewer (on IMAGE when given).",
    )
    parser.add_argument("image", nargs="?", help="image (or <image>.leukview.json session) to open; with --teach, a quiz file")
    parser.add_argument(
        "--screenshot",
        metavar="OUT.png",
        help="open the window, analyse IMAGE (the bundled sample by default), save the window as a PNG and exit",
    )
    parser.add_argument("--models-dir", metavar="DIR", help="folder of installed models (default: the shipped models/)")
    teach = parser.add_argument_group("teaching mode")
    teach.add_argument("--teach", action="store_true",
                       help="open a quiz: on the installed type model's reference atlas (balanced by class), or on "
                            "the quiz file given (a trainer's, made with File > Make quiz from this case)")  # fmt: skip
    teach.add_argument("--trainee", metavar="NAME", help="the trainee's name (answers are saved per trainee)")
    teach.add_argument("--cells", type=int, metavar="N", help="cells per quiz (default 20; all of a quiz file's)")
    teach.add_argument("--timed", type=float, metavar="SECONDS", help="timed mode: seconds per cell")
    teach.add_argument("--atlas", metavar="DIR", help="quiz on this atlas (e.g. the lab's) instead of the shipped one")
    parser.add_argument(
        "--size",
        default=f"{SCREENSHOT_SIZE[0]}x{SCREENSHOT_SIZE[1]}",
        metavar="WxH",
        help="window size for --screenshot (default: %(default)s; at least 1280x800)",
    )
    return parser


def _application():
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "leukview"])
    app.setApplicationName("LeukView")
    app.setOrganizationName("LeukView")
    app.setApplicationDisplayName("LeukView")
    from leukview import __version__

    app.setApplicationVersion(__version__)
    return app


def _has_display() -> bool:
    """Whether Qt can open a window: always on Windows and macOS, with X11/Wayland/a platform set on Linux."""
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is not None or not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def _parse_size(text: str) -> tuple[int, int] | None:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        return None
    return (w, h) if w >= 1280 and h >= 800 else None


def take_screenshot(window, out: Path, image: Path, size: tuple[int, int]) -> int:  # noqa: ANN001
    """Open, analyse, render the window to ``out``; 0 on success."""
    from PySide6.QtWidgets import QApplication

    window.resize(*size)
    window.show()
    QApplication.processEvents()
    if not window.open_image(image, analyse=True):
        return 1
    if not window.wait_for_analysis(300000):
        print("leukview: the analysis did not finish in time", file=sys.stderr)
        return 1
    if window.session is None:
        return 1
    QApplication.processEvents()
    window.view.fit()
    if window.models:
        window.set_heat_mode("selected")  # show what the explanation looks like
    if window.selected is not None:
        window.select_cell(window.selected, centre=False)
    for _ in range(5):
        QApplication.processEvents()
    pixmap = window.grab()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not pixmap.save(str(out), "PNG"):
        print(f"leukview: cannot write {out}", file=sys.stderr)
        return 1
    print(f"leukview: screenshot {out} ({pixmap.width()}x{pixmap.height()})")
    return 0


def _report_unexpected_errors(window) -> None:  # noqa: ANN001
    """A bug in a slot shows a message and leaves the window usable (the review is autosaved)."""
    import traceback

    def hook(kind, value, tb) -> None:  # noqa: ANN001
        traceback.print_exception(kind, value, tb)
        if issubclass(kind, KeyboardInterrupt):
            return
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(
            window,
            "Unexpected error",
            f"{kind.__name__}: {value}\n\nLeukView keeps running; save your review (Ctrl+S) and "
            "please report this error with the text printed on the console.",
        )

    sys.excepthook = hook


def main(argv: Sequence[str]) -> int:
    """Run the viewer; returns the process exit code.

    Parameters
    ----------
    argv : sequence of str
        Arguments after the program name: ``[IMAGE] [--screenshot OUT.png]
        [--models-dir DIR] [--size WxH]``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return 2 if exc.code else 0
    if args.models_dir and not Path(args.models_dir).is_dir():
        print(f"leukview: error: models folder not found: {args.models_dir}", file=sys.stderr)
        return 2
    size = _parse_size(args.size)
    if size is None:
        print("leukview: error: --size must be WxH, at least 1280x800", file=sys.stderr)
        return 2

    if args.teach:
        return run_teach(args, size)
    if args.screenshot:
        # a screenshot needs no screen; a window flashing on one would only distract
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif not _has_display():
        print(
            "leukview: error: no display to open the viewer on (DISPLAY is not set); "
            "use `leukview analyze`, or --screenshot with QT_QPA_PLATFORM=offscreen",
            file=sys.stderr,
        )
        return 1

    app = _application()
    from .mainwindow import MainWindow, default_sample
    from .settings import AppSettings

    if args.screenshot:
        from .settings import throwaway_store

        # a screenshot must not depend on, nor change, the user's settings and sessions
        window = MainWindow(AppSettings(throwaway_store()), args.models_dir, read_only=True, interactive=False)
        try:
            image = Path(args.image) if args.image else default_sample()
            return take_screenshot(window, Path(args.screenshot), image, size)
        finally:
            window.close()
            window.deleteLater()
            app.processEvents()

    window = MainWindow(AppSettings(), args.models_dir)
    _report_unexpected_errors(window)
    window.restore_layout()
    window.show()
    if args.image and Path(args.image).is_dir():
        window.open_case([args.image])  # a folder of fields is a case
    elif args.image:
        window.open_image(args.image)
    return app.exec()


def run_teach(args: argparse.Namespace, size: tuple[int, int]) -> int:
    """``leukview --teach [QUIZ]``: the quiz window (or, with --screenshot, its question page as a PNG)."""
    if args.timed is not None and not (0 < args.timed <= 600):
        print("leukview: error: --timed must be between 0 and 600 seconds per cell", file=sys.stderr)
        return 2
    if args.cells is not None and args.cells < 1:
        print("leukview: error: --cells must be at least 1", file=sys.stderr)
        return 2
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif not _has_display():
        print("leukview: error: no display to open the quiz on (DISPLAY is not set); "
              "use --screenshot with QT_QPA_PLATFORM=offscreen", file=sys.stderr)  # fmt: skip
        return 1
    app = _application()
    from leukview.core.quiz import QuizError

    from .teach import QuizWindow, atlas_source, file_source, model_loader

    try:
        if args.image:
            source, loader = file_source(args.image, args.models_dir)
        else:
            choice = atlas_source(args.models_dir, args.atlas)
            source, loader = choice.source, model_loader(choice.entry, choice.atlas.model_sha256)
    except QuizError as exc:
        print(f"leukview: error: {exc}", file=sys.stderr)
        return 1
    count = args.cells if args.cells is not None else (0 if args.image else 20)
    if args.screenshot:
        # the user's results are neither read nor written: a fixed trainee, nothing saved
        window = QuizWindow(source, trainee=args.trainee or "Trainee", count=count, time_limit=args.timed,
                            classifier=loader, save=False, seed=0, interactive=False)  # fmt: skip
        try:
            window.resize(*size)
            window.show()
            app.processEvents()
            if not window.start():
                return 1
            for _ in range(5):
                app.processEvents()
            pixmap = window.grab()
            out = Path(args.screenshot)
            out.parent.mkdir(parents=True, exist_ok=True)
            if not pixmap.save(str(out), "PNG"):
                print(f"leukview: cannot write {out}", file=sys.stderr)
                return 1
            print(f"leukview: screenshot {out} ({pixmap.width()}x{pixmap.height()})")
            return 0
        finally:
            window.save_results = False
            window.close()
            window.deleteLater()
            app.processEvents()
    window = QuizWindow(source, trainee=args.trainee or "", count=count, time_limit=args.timed, classifier=loader)
    window.show()
    window.trainee_edit.setFocus()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
