"""The README's screenshots of the segmentation edits: split a merged cell by a line, draw a missed cell.

``.venv/bin/python docs/screenshots/edit_shot.py docs/screenshots`` (from the repository root)
analyses the bundled sample ``BloodImage_00056.jpg`` offscreen with the shipped models, redraws its
white cell's outline around the white cell and its most touching red cell (a drawn merge: the
samples have no real one), then drives the tools through their keys and clicks and writes
``9-edit-split-line`` (Split, S: a line across the merge at the white cell's edge),
``9-edit-split-done`` (Enter: the two parts re-measured and re-classified),
``9-edit-draw-outline`` (the white part deleted, Shift+A: its outline drawn point by point) and
``9-edit-added`` (the outline closed with Enter: the added cell). The status bar's messages after
the split and the add are printed. The image is copied into a temporary folder, with the sessions
and settings; the user's settings are neither read nor changed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
WORK = Path(tempfile.mkdtemp(prefix="leukview-edit-"))
os.environ["LEUKVIEW_SESSIONS_DIR"] = str(WORK / "sessions")
os.environ["LEUKVIEW_CONFIG_DIR"] = str(WORK / "config")
SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "samples" / "BloodImage_00056.jpg"


def main(out: Path) -> int:
    import cv2
    import numpy as np
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtTest import QTest

    from leukview.core.edit import cell_mask
    from leukview.gui.app import _application
    from leukview.gui.mainwindow import MainWindow
    from leukview.gui.screenshots import _save
    from leukview.gui.settings import AppSettings, throwaway_store

    out.mkdir(parents=True, exist_ok=True)
    path = WORK / SAMPLE.name
    shutil.copy(SAMPLE, path)
    app = _application()
    window = MainWindow(AppSettings(throwaway_store()), None, read_only=True, interactive=False)
    window.resize(1440, 1101)
    window.show()

    def settle() -> None:
        for _ in range(15):
            app.processEvents()

    settle()
    if not window.open_image(path, analyse=False):
        return 1
    window.analyse()
    if not window.wait_for_analysis(600000):
        return 1
    doc = window.document
    shape = (480, 640)  # the sample's size
    white = next(c for c in doc.cells if c.kind == "wbc")
    wm = cell_mask(white, (0, 0), shape)
    grown = cv2.dilate(wm.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    red = max((c for c in doc.cells if c.kind == "rbc"),
              key=lambda r: int((grown & cell_mask(r, (0, 0), shape)).sum()))
    # the merge: one outline around both, closed so that the gap between them is filled
    union = cv2.morphologyEx((wm | cell_mask(red, (0, 0), shape)).astype(np.uint8), cv2.MORPH_CLOSE,
                             np.ones((7, 7), np.uint8))
    found, _ = cv2.findContours(union, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    merged = doc.redraw_cell(window.edit_tools.context(), white.id,
                             max(found, key=cv2.contourArea).reshape(-1, 2))
    settle()
    window.select_cell(merged.id, centre=False)
    centre = QPointF(*merged.centroid)
    window.view.set_scale(2.6, centre)
    window.view.centerOn(centre)
    window.view.setFocus()
    settle()
    viewport = window.view.viewport()

    def click(x: float, y: float) -> None:
        at: QPoint = window.view.mapFromScene(QPointF(x + 0.5, y + 0.5))
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at)
        settle()

    # the split line: across the centre line between the two cells, where the white cell's mask ends
    ca, cb = np.array(white.centroid), np.array(red.centroid)
    along = (cb - ca) / np.linalg.norm(cb - ca)
    t = 0.0
    while wm[int(ca[1] + along[1] * t), int(ca[0] + along[0] * t)]:
        t += 1
    mid = ca + along * t
    across = np.array([-along[1], along[0]]) * 0.8 * merged.diameter
    QTest.keyClick(window.view, Qt.Key.Key_S)
    settle()
    click(*(mid - across))
    click(*(mid + across))
    _save(window, out / "9-edit-split-line.png")
    QTest.keyClick(window.view, Qt.Key.Key_Return)
    settle()
    print(window.statusBar().currentMessage())
    _save(window, out / "9-edit-split-done.png")

    # a missed cell: the white part deleted, then its outline drawn point by point (16 points)
    part = window.selected
    if part is None:
        return 1
    cell = doc.cell(part)
    window.select_cell(part, centre=False)
    QTest.keyClick(window.view, Qt.Key.Key_Delete)
    settle()
    ctr, r = np.array(cell.centroid), 0.5 * cell.diameter

    def rim(k: int) -> np.ndarray:
        a = 2 * np.pi * k / 16
        return ctr + r * np.array([np.cos(a), np.sin(a)])

    QTest.keyClick(window.view, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    settle()
    for k in range(14):
        click(*rim(k))
    _save(window, out / "9-edit-draw-outline.png")
    for k in (14, 15):
        click(*rim(k))
    QTest.keyClick(window.view, Qt.Key.Key_Return)
    settle()
    print(window.statusBar().currentMessage())
    _save(window, out / "9-edit-added.png")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
