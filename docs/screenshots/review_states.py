"""Screenshots of the review states a laboratory checks: low zoom, the review panel, the class list, the report.

``python docs/screenshots/review_states.py docs/screenshots`` builds a 5 x 5 mosaic of the bundled
samples (3200 x 2400 px, 25 white cells), analyses it offscreen with the shipped models and writes
``10-low-zoom``, ``11-review-panel``, ``12-class-list`` and ``13-report-page-N`` (the PDF report with
every flagged cell accepted and the case signed, rendered page by page with ``pdftoppm``). Sessions
and the class list stay in a temporary folder; the user's settings are neither read nor changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
WORK = Path(tempfile.mkdtemp(prefix="leukview-shots-"))
os.environ["LEUKVIEW_SESSIONS_DIR"] = str(WORK / "sessions")
os.environ["LEUKVIEW_CONFIG_DIR"] = str(WORK / "config")
SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def mosaic(side: int = 5) -> np.ndarray:
    """``side`` x ``side`` fields of the bundled samples, every other one mirrored."""
    from leukview.core.io import read_image

    fields = [read_image(p)[:480, :640] for p in sorted(SAMPLES.glob("*.jpg"))]
    rows = [
        np.hstack([fields[(r * 3 + c) % len(fields)][:, :: (1 if (r + c) % 2 else -1)] for c in range(side)])
        for r in range(side)
    ]
    return np.ascontiguousarray(np.vstack(rows))


def main(out: Path) -> int:
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QImage

    from leukview.core.session import ReportFields
    from leukview.gui.app import _application
    from leukview.gui.cellinfo import doubting_models
    from leukview.gui.mainwindow import MainWindow
    from leukview.gui.screenshots import _save
    from leukview.gui.settings import AppSettings, SettingsDialog, throwaway_store
    from leukview.gui.worker import installed_models

    out.mkdir(parents=True, exist_ok=True)
    image = mosaic()
    path = WORK / "large-field.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    app = _application()
    window = MainWindow(AppSettings(throwaway_store()), None, read_only=True, interactive=False)
    window.resize(1440, 900)
    window.show()

    def settle() -> None:
        for _ in range(12):
            app.processEvents()

    settle()
    if not window.open_image(path, analyse=False):
        return 1
    window.analyse()
    if not window.wait_for_analysis(600000) or window.session is None:
        return 1
    window.view.set_scale(0.15)
    window.view.centerOn(image.shape[1] / 2, image.shape[0] / 2)
    settle()
    window.overlay.layout_labels()
    settle()
    _save(window, out / "10-low-zoom.png")

    # the review panel: a cell flagged because another model is unsure, its detail below the gallery
    document = window.document
    order = document.review_order()
    pick = next(
        (c for c in order if document.call(c).needs_review and doubting_models(
            c, document.call(c), document.models, document.threshold)),
        order[0],
    )  # fmt: skip
    window.select_cell(pick.id)
    window.view.set_scale(1.6, QPointF(*pick.centroid))
    window.view.centerOn(QPointF(*pick.centroid))
    settle()
    window.overlay.layout_labels()
    settle()
    _save(window, out / "11-review-panel.png")

    dialog = SettingsDialog(window.settings, installed_models(None), window)
    dialog.show()
    settle()
    _save(dialog, out / "12-class-list.png")
    dialog.reject()

    # the report: the case fields, every flagged cell reviewed (the models' calls accepted), signed
    document.set_report_fields(ReportFields("P-0012345", "S-24-0815", "Dr A. Example", "J. Doe"))
    for cell in order:
        if document.call(cell).needs_review:
            document.confirm(cell.id)
    document.sign("J. Doe")
    pdf = window.export_pdf(WORK / "report.pdf")
    if pdf is None:
        return 1
    for old in out.glob("13-report-page-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", "80", "-png", str(pdf), str(WORK / "page")], check=True)
    for page in sorted(WORK.glob("page-*.png")):
        _save(QImage(str(page)), out / f"13-report-page-{int(page.stem.split('-')[-1])}.png", 700)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
