"""The gallery: crops by class with the class's abbreviation, thumbnails 64-192 px, remembered, more than one row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cell_factory import BLAST, TYPE, make_cell
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QWheelEvent

from leukview.core.analysis import Analysis
from leukview.core.document import ReviewDocument
from leukview.gui.gallery import CELL_ID_ROLE, MAX_THUMB, MIN_THUMB
from leukview.gui.review import ReviewPanel
from leukview.gui.settings import AppSettings

pytestmark = pytest.mark.gui


def panel(qtbot, tmp_path: Path) -> tuple[ReviewPanel, AppSettings]:  # noqa: ANN001
    cells = [
        make_cell(i, x=20 + 30 * i, y=50, wbc_type=("neutrophil" if i % 3 else "lymphocyte", 0.9),
                  all_blast=("normal", 0.9))
        for i in range(1, 7)
    ]  # fmt: skip
    document = ReviewDocument(read_only=True)
    document.set_analysis(Analysis(240, 100, cells, [TYPE, BLAST]))
    settings = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    review = ReviewPanel(document)
    qtbot.addWidget(review)
    review.use_settings(settings)
    review.crop = lambda cell: np.full((40, 40, 3), 30 * cell.id, np.uint8)
    review.set_classes(document.classes())
    review.set_cells(document.cells)
    review.resize(480, 700)
    review.show()
    return review, settings


def wheel(widget, delta: int, modifiers=Qt.KeyboardModifier.ControlModifier) -> None:  # noqa: ANN001
    event = QWheelEvent(
        QPointF(10, 10), QPointF(10, 10), QPoint(0, 0), QPoint(0, delta), Qt.MouseButton.NoButton, modifiers,
        Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    widget.wheelEvent(event)


def test_headers_name_the_class_with_its_abbreviation(qtbot, tmp_path: Path):  # noqa: ANN001
    review, _ = panel(qtbot, tmp_path)
    gallery = review.gallery
    headers = [gallery.item(i).text() for i in range(gallery.count()) if gallery.item(i).data(CELL_ID_ROLE) is None]
    assert headers == ["Neut · neutrophil  (4)", "Lym · lymphocyte  (2)"]  # clinical order, never colour alone


def test_thumbnails_are_resized_by_the_slider_or_ctrl_wheel_and_remembered(qtbot, tmp_path: Path):  # noqa: ANN001
    review, settings = panel(qtbot, tmp_path)
    gallery = review.gallery
    first = next(gallery.item(i) for i in range(gallery.count()) if gallery.item(i).data(CELL_ID_ROLE) is not None)
    first_id = first.data(CELL_ID_ROLE)
    assert gallery.iconSize().width() == settings.thumb_size == 96
    review.thumb_size.setValue(160)
    assert gallery.thumb == 160 and gallery.iconSize().width() == 160
    item = next(gallery.item(i) for i in range(gallery.count()) if gallery.item(i).data(CELL_ID_ROLE) is not None)
    assert item.sizeHint().width() == 170 and item.data(CELL_ID_ROLE) == first_id
    wheel(gallery, 120)
    assert gallery.thumb == 176 and review.thumb_size.value() == 176
    for _ in range(5):
        wheel(gallery, 120)
    assert gallery.thumb == MAX_THUMB
    for _ in range(20):
        wheel(gallery, -120)
    assert gallery.thumb == MIN_THUMB
    wheel(gallery, 120, Qt.KeyboardModifier.NoModifier)  # a plain wheel scrolls
    assert gallery.thumb == MIN_THUMB
    assert AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)).thumb_size == MIN_THUMB


def test_more_than_one_row_of_cells_stays_visible(qtbot, tmp_path: Path):  # noqa: ANN001
    review, _ = panel(qtbot, tmp_path)
    for size in (MIN_THUMB, 96, MAX_THUMB):
        review.gallery.set_thumb(size)
        row = size + 24 + 2 * review.gallery.spacing()
        assert review.gallery.minimumHeight() >= min(26 + 1.5 * row, 340)
