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
from leukview.gui.overlays import CellOverlay, LabelItem, heat_rgba

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


@pytest.fixture(scope="module")
def dense_field(mosaic):  # noqa: ANN001
    """The 3x3 mosaic of the bundled samples, segmented, every object labelled (as crowded as it gets)."""
    from leukview.core.analysis import analyze_image

    _, image = mosaic
    analysis = analyze_image(image, [])
    for cell in analysis.cells:  # red cells and platelets too: hundreds of touching labels
        cell.kind = "wbc"
        cell.predictions = make_cell(cell.id, wbc_type=("neutrophil", 0.9)).predictions
    analysis.models = [TYPE]
    return image, analysis


def slide(qtbot, analysis):  # noqa: ANN001, ANN201
    from PySide6.QtCore import QRectF

    from leukview.gui.viewer import SlideView

    document = ReviewDocument(read_only=True)
    document.set_analysis(analysis)
    scene = QGraphicsScene()
    view = SlideView(scene)
    qtbot.addWidget(view)
    view.resize(520, 400)  # small enough that 15 % is within the view's zoom range for 1920 x 1440
    view.show()
    view.set_image_rect(QRectF(0, 0, analysis.width, analysis.height))
    overlay = CellOverlay(scene, document)  # after the view: it follows the view's moves
    overlay.set_cells(document.cells)
    return view, overlay


def check_no_overlap(view, rects) -> None:  # noqa: ANN001
    inside = view.viewport().rect()
    boxes = list(rects.items())
    for i, (cell_a, a) in enumerate(boxes):
        assert a.left() >= 0 and a.top() >= 0 and a.right() <= inside.width() and a.bottom() <= inside.height()
        for cell_b, b in boxes[i + 1 :]:
            assert not a.intersects(b), (cell_a, cell_b, a, b)


def test_labels_never_overlap_at_low_zoom_and_give_way_to_markers(qtbot, dense_field):  # noqa: ANN001
    _, analysis = dense_field
    assert len(analysis.cells) > 150
    view, overlay = slide(qtbot, analysis)
    view.set_scale(0.15)
    view.centerOn(analysis.width / 2, analysis.height / 2)
    assert view.scale_factor == pytest.approx(0.15)
    rects = overlay.label_rects()
    assert 20 <= len(rects) < len(analysis.cells)  # labels gave way instead of piling up
    check_no_overlap(view, rects)
    from leukview.gui.overlays import TEXT_MIN_PX

    markers = [c for c in rects if overlay.item(c).label_item.form == LabelItem.MARKER]
    assert len(markers) > 0.8 * len(rects)  # at 15 % cells are small: markers, not text
    for cell_id in set(rects) - set(markers):  # text only on what is large on screen even now
        assert overlay.cells[cell_id].diameter * view.scale_factor >= TEXT_MIN_PX
    assert {overlay.item(c).label_item.marker_text() for c in markers} == {"Neut"}  # the class, not colour alone
    # closer: full labels where they fit, still none over another and none cut at the edge
    view.set_scale(1.0)
    view.centerOn(300, 240)
    rects = overlay.label_rects()
    check_no_overlap(view, rects)
    assert LabelItem.FULL in {overlay.item(c).label_item.form for c in rects}
    # the selected cell's label is always placed
    some = next(iter(rects))
    overlay.select(some)
    view.set_scale(0.15)
    assert some in overlay.label_rects() or not view.mapToScene(view.viewport().rect()).boundingRect().contains(
        QPointF(*overlay.cells[some].centroid)
    )


def test_a_cell_flagged_by_another_model_says_so_with_the_calls_own_confidence(qapp):  # noqa: ANN001
    cell = make_cell(1, x=50, y=50, wbc_type=("neutrophil", 0.99), all_blast=("normal", 0.6))
    document = document_with([cell])
    scene = QGraphicsScene()
    overlay = CellOverlay(scene, document)
    overlay.set_cells(document.cells)
    label = overlay.item(1).label_item
    assert label._text == "? 1 neutrophil 99%"  # the call's own confidence
    assert label._marker == "⚑ all-blast 60%"  # and why it is flagged, on screen
    assert "flagged for the low confidence of another model: all-blast 60%" in overlay.item(1).toolTip()
    assert label.marker_text() == "? Neut"


def test_heatmaps_are_smooth_and_fade_away_from_the_cell(qapp):  # noqa: ANN001
    cell = make_cell(1, x=50, y=50, half=10, wbc_type=("neutrophil", 0.95))
    pred = cell.predictions["wbc-type"]
    pred.cam = np.zeros((4, 4), np.float32)
    pred.cam[0, 0] = 1.0  # the hot spot in a corner of the crop, outside the cell
    pred.cam[1:3, 1:3] = 0.8  # and some heat on the cell
    pred.cam_box = (20.0, 20.0, 80.0, 80.0)
    from leukview.core.explain import cell_heat

    heat = cell_heat(cell, "wbc-type", (96, 96))
    assert heat is not None and heat.shape == (96, 96)
    assert heat[:8, :8].max() < 0.35 and heat[40:56, 40:56].max() > 0.6  # the corner fades, the cell stays
    steps = np.abs(np.diff(heat, axis=1))
    assert steps.max() < 0.1  # no hard square edges: no jump between neighbouring pixels
    rgba = heat_rgba(heat)
    assert rgba[4, 4, 3] < rgba[48, 48, 3]
