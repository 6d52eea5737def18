"""Screenshots of the second opinions and the teaching mode, for the documentation.

``python -m leukview.gui.teach.screenshots OUT_DIR [IMAGE] [--models-dir DIR]``
writes, offscreen, with the installed models and their default atlases:

``14-similar-cells`` (the Similar cells panel on the first white cell in
review order), ``15-occlusion`` (its occlusion map as the heatmap),
``16-quiz-question`` (a timed quiz on the reference atlas),
``17-quiz-feedback`` (a wrong answer's feedback: reference label, map,
similar cells) and ``18-quiz-results`` (score by class, confusion table).

Nothing is written beside the image, the user's settings are not read, and
the quiz's trainee file goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SIZE = (1440, 900)


def main_window_states(out_dir: Path, image: Path | None, models_dir: str | None) -> int:
    from PySide6.QtCore import QPointF

    from ..app import _application
    from ..mainwindow import MainWindow, default_sample
    from ..screenshots import _save
    from ..settings import AppSettings, throwaway_store

    app = _application()
    window = MainWindow(AppSettings(throwaway_store()), models_dir, read_only=True, interactive=False)
    window.resize(*SIZE)
    window.show()

    def settle() -> None:
        for _ in range(10):
            app.processEvents()

    if not window.open_image(image or default_sample(), analyse=True) or not window.wait_for_analysis(300000):
        print("analysis failed", file=sys.stderr)
        return 1
    order = window.review.visible_order()
    white = [c for c in order if window.document.cell(c).kind == "wbc"]
    if not white:
        print("no white cell to show", file=sys.stderr)
        return 1
    cell = window.document.cell(white[0])
    window.similar_dock.raise_()
    window.select_cell(cell.id)
    window.explain_models.wait(120000)
    window.similar.refresh()
    window.view.set_scale(min(3.0, 300.0 / max(cell.diameter, 1.0)), QPointF(*cell.centroid))
    window.view.centerOn(QPointF(*cell.centroid))
    settle()
    print(f"similar cells: {window.similar.last_seconds}")
    _save(window, out_dir / "14-similar-cells.png")

    window.set_heat_mode("selected")
    window.layers.set_map_kind("occlusion")
    window.occlusion.update()
    window.occlusion.wait(120000)
    settle()
    if window.occlusion.shown is None:
        print("no occlusion map", file=sys.stderr)
        return 1
    print(f"occlusion map: {window.occlusion.seconds:.2f} s")
    _save(window, out_dir / "15-occlusion.png")
    window.close()
    app.processEvents()
    return 0


def quiz_states(out_dir: Path, models_dir: str | None) -> int:
    from ..app import _application
    from ..screenshots import _save
    from . import QuizWindow, atlas_source, model_loader

    app = _application()
    choice = atlas_source(models_dir)
    now = [1000.0]  # a clock of our own: the answers take a plausible time, one runs out
    with tempfile.TemporaryDirectory() as trainees:
        window = QuizWindow(choice.source, trainee="A. Trainee", count=10, time_limit=20,
                            classifier=model_loader(choice.entry, choice.atlas.model_sha256),
                            folder=trainees, seed=3, interactive=False, clock=lambda: now[0])  # fmt: skip
        window.resize(*SIZE)
        window.show()
        app.processEvents()
        window.start()
        for _ in range(5):
            app.processEvents()
        _save(window, out_dir / "16-quiz-question.png")
        assert window.quiz is not None and window.run is not None
        classes = window.quiz.classes
        # a plausible trainee: right on most cells, a lymphocyte/monocyte mix-up, one timed out
        for n, item in enumerate(window.quiz.items):
            wrong = {"lymphocyte": "monocyte", "monocyte": "lymphocyte", "ig": "neutrophil"}.get(item.label)
            if n == 0:
                given = wrong or next(c for c in classes if c != item.label)
            elif wrong and n % 2:
                given = wrong
            else:
                given = item.label
            if n == 5:
                now[0] += 21.0
                window._tick()  # the time is up on this one
            else:
                now[0] += 3.0 + (n * 7) % 9
                window.answer(given)
            if n == 0:
                for _ in range(5):
                    app.processEvents()
                _save(window, out_dir / "17-quiz-feedback.png")
            window.next()
        for _ in range(5):
            app.processEvents()
        _save(window, out_dir / "18-quiz-results.png")
        window.close()
        app.processEvents()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leukview.gui.teach.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("image", nargs="?", type=Path)
    parser.add_argument("--models-dir")
    parser.add_argument("--only", choices=("viewer", "quiz"), help="one set of screenshots")
    args = parser.parse_args(argv)
    code = 0
    if args.only in (None, "viewer"):
        code = main_window_states(args.out_dir, args.image, args.models_dir)
    if code == 0 and args.only in (None, "quiz"):
        code = quiz_states(args.out_dir, args.models_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
