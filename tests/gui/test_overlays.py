"""Overlays: contours in the class's colour, dashed when flagged, labels and tooltips from the call."""

from __future__ import annotations

import numpy as np
import pytest
from cell_factory import BLAST, TYPE, make_cell
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QGraphicsScene

from leukview.core import calls
from leukview.core.analysis import Analysis
from leukview.core.document import ReviewDocument
from leukview.gui.overlays import CellOverlay, heat_rgba

pytestmark = pytest.mark.gui


def document_with(cells) -> ReviewDocument:  # noqa: ANN001
    document = ReviewDocument(read_only=True)
    document.set_analysis(Analysis(200, 200, list(cells), [TYPE, BLAST]))
    return document


def test_contours_labels_and_tooltips_come_from_the_call(qapp):  # noqa: ANN001
    sure = make_cell(1, x=50, y=50, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.97))
    unsure = make_cell(2, x=150, y=50, wbc_type=("lymphocyte", 0.5), all_blast=("normal", 0.9))
    red = make_cell(3, "rbc", x=100, y=150)
    document = document_with([sure, unsure, red])
    scene = QGraphicsScene()
    overlay = CellOverlay(scene, document)
    overlay.set_cells(document.cells)
    item = overlay.item(1)
    assert item.pen().color().name().upper() == calls.class_colour("neutrophil")
    assert item.pen().style() == Qt.PenStyle.SolidLine
    flagged = overlay.item(2)
    assert flagged.pen().style() == Qt.PenStyle.DashLine  # unsure: offered for review
    assert "low confidence" in flagged.toolTip() and flagged.label_item._text.startswith("? 2 lymphocyte")
    assert overlay.item(3).label_item is None  # red cells carry no label
    # a review changes the contour at once (the document emits, the window refreshes)
    document.review(2, "monocyte")
    overlay.refresh_cell(2)
    assert flagged.pen().color().name().upper() == calls.class_colour("monocyte")
    assert flagged.pen().style() == Qt.PenStyle.SolidLine and flagged.label_item._text.endswith("✓")
    # hidden classes and layers
    overlay.options.hidden_classes.add("neutrophil")
    overlay.apply_options()
    assert not item.isVisible() and overlay.item(2).isVisible()
    assert overlay.cell_at(QPointF(150, 50)) == 2 and overlay.cell_at(QPointF(50, 50)) is None


def test_heatmaps_are_see_through_where_cold():
    cam = np.zeros((4, 4), np.float32)
    cam[1:3, 1:3] = 1.0
    rgba = heat_rgba(cam, size=32)
    assert rgba.shape == (32, 32, 4) and rgba.dtype == np.uint8
    assert rgba[0, 0, 3] < 20 and rgba[16, 16, 3] > 200  # cubic resizing rings a little
