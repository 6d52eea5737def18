"""Correcting the segmentation in the window, by keys and simulated clicks, offscreen."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from leukview.core.edit import cell_mask
from leukview.core.session import AuditAction, load_session

pytestmark = pytest.mark.gui

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
CROWDED = "BloodImage_00056.jpg"  # a white cell among touching red cells
NONE = Qt.KeyboardModifier.NoModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture()
def crowded(tmp_path: Path) -> Path:
    path = tmp_path / "images" / CROWDED
    path.parent.mkdir(exist_ok=True)
    shutil.copy(SAMPLES / CROWDED, path)
    return path


@pytest.fixture()
def window(make_window, analysed, models_dir: Path, crowded: Path, dialogs):  # noqa: ANN001
    window = make_window(models_dir)
    analysed(window, crowded)
    window.view.fit()
    window.view.setFocus()
    return window


def key(qtbot, window, k: Qt.Key, modifier=NONE) -> None:  # noqa: ANN001
    qtbot.keyClick(window.view, k, modifier)


def screen(window, x: float, y: float) -> QPoint:  # noqa: ANN001
    """The viewport point of an image point (pixel-centre coordinates, as cells are)."""
    return window.view.mapFromScene(QPointF(x + 0.5, y + 0.5))


def click(qtbot, window, x: float, y: float) -> None:  # noqa: ANN001
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, NONE, screen(window, x, y))


def double_click(qtbot, window, x: float, y: float) -> None:  # noqa: ANN001
    qtbot.mouseDClick(window.view.viewport(), Qt.MouseButton.LeftButton, NONE, screen(window, x, y))


def drag(window, points) -> None:  # noqa: ANN001
    """Press at the first point, move through the others with the button held, release at the last."""
    viewport = window.view.viewport()
    left = Qt.MouseButton.LeftButton
    for i, (x, y) in enumerate(points):
        pos = QPointF(screen(window, x, y))
        if i == 0:
            kind, button, buttons = QMouseEvent.Type.MouseButtonPress, left, left
        else:
            kind, button, buttons = QMouseEvent.Type.MouseMove, Qt.MouseButton.NoButton, left
        QApplication.sendEvent(viewport, QMouseEvent(kind, pos, viewport.mapToGlobal(pos), button, buttons, NONE))
    pos = QPointF(screen(window, *points[-1]))
    release = QMouseEvent(QMouseEvent.Type.MouseButtonRelease, pos, viewport.mapToGlobal(pos), left, Qt.MouseButton.NoButton, NONE)
    QApplication.sendEvent(viewport, release)


def disc(cx: float, cy: float, r: float, n: int = 16) -> list[tuple[float, float]]:
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angle]


def white_cells(window) -> list:  # noqa: ANN001
    return [c for c in window.document.cells if c.kind == "wbc"]


def counted(window) -> int:  # noqa: ANN001
    """White cells the differential table counts (its rows' counts)."""
    return sum(window.document.differential().counts.values())


def test_the_tools_are_in_the_menu_the_toolbar_and_the_help(window):  # noqa: ANN001
    texts = [a.text() for a in window.menus["segment"].actions() if a.text()]
    assert texts[0].startswith("&Add a missed cell") and any("Split" in t for t in texts)
    assert [a.text() for a in window.edit_toolbar.actions() if a.text()][0].startswith("&Add")
    assert window.actions["add_cell_click"].shortcut().toString() == "A"
    assert window.actions["add_cell_outline"].shortcut().toString() == "Shift+A"
    assert window.actions["delete_cell"].shortcut().toString() == "Del"
    assert window.actions["add_cell_click"].isEnabled() and not window.actions["cancel"].isEnabled()
    from leukview.gui.dialogs import shortcuts_html

    help_text = shortcuts_html(window.classes())
    assert "split a merged cell: draw a line across it" in help_text and "while drawing: cancel" in help_text


def test_delete_then_add_back_by_a_click_undo_and_redo(qtbot, window):  # noqa: ANN001
    white = white_cells(window)[0]
    total = counted(window)
    window.select_cell(white.id, centre=False)
    key(qtbot, window, Qt.Key.Key_Delete)
    assert white.id not in {c.id for c in window.document.cells}
    assert window.overlay.item(white.id) is None and window.review.model.row_of(white.id) is None
    assert counted(window) == total - 1
    assert window.session.audit[-1].action is AuditAction.DELETE_CELL
    assert "Deleted cell" in window.statusBar().currentMessage()

    key(qtbot, window, Qt.Key.Key_A)
    assert window.edit_tools.drawing and window.actions["add_cell_click"].isChecked()
    assert window.statusBar().currentMessage().startswith("Add a cell: click inside")
    assert window.actions["cancel"].isEnabled()
    click(qtbot, window, *white.centroid)
    assert not window.edit_tools.drawing and not window.actions["add_cell_click"].isChecked()
    added = window.session.audit[-1]
    assert added.action is AuditAction.ADD_CELL and added.detail["method"] == "click"
    new = window.document.cell(added.detail["cells_after"][0])
    assert new.kind == "wbc" and new.id > white.id
    overlap = cell_mask(new, (0, 0), (480, 640)) & cell_mask(white, (0, 0), (480, 640))
    assert overlap.sum() > 0.8 * cell_mask(white, (0, 0), (480, 640)).sum()
    assert window.overlay.item(new.id) is not None and window.review.model.row_of(new.id) is not None
    assert window.selected == new.id and counted(window) == total
    assert set(new.predictions) == {"wbc-type", "all-blast"}  # classified again by the models that ran
    assert window.statusBar().currentMessage().startswith(f"Added cell {new.id} (")
    assert window.actions["undo"].text().endswith(f"Add cell {new.id}")

    key(qtbot, window, Qt.Key.Key_Z, CTRL)
    assert window.overlay.item(new.id) is None and counted(window) == total - 1
    key(qtbot, window, Qt.Key.Key_Z, CTRL | SHIFT)
    assert window.overlay.item(new.id) is not None and counted(window) == total


def test_draw_an_outline_by_clicks_and_enter_and_cancel_with_esc(qtbot, window):  # noqa: ANN001
    white = white_cells(window)[0]
    window.document.delete_cells([white.id])
    before = len(window.document.cells)
    audit = len(window.session.audit)

    key(qtbot, window, Qt.Key.Key_A, SHIFT)
    for x, y in disc(*white.centroid, 20)[:2]:
        click(qtbot, window, x, y)
    assert window.edit_tools.sketch.isVisible() and "2 points" in window.statusBar().currentMessage()
    key(qtbot, window, Qt.Key.Key_Escape)
    assert not window.edit_tools.drawing and not window.edit_tools.sketch.isVisible()
    assert len(window.document.cells) == before and len(window.session.audit) == audit
    assert "cancelled" in window.statusBar().currentMessage()

    key(qtbot, window, Qt.Key.Key_A, SHIFT)
    key(qtbot, window, Qt.Key.Key_Return)  # too few points: the tool waits
    assert window.edit_tools.drawing and "3 points are needed" in window.statusBar().currentMessage()
    radius = 0.5 * white.diameter
    for x, y in disc(*white.centroid, radius):
        click(qtbot, window, x, y)
    assert "Enter or double-click finishes" in window.statusBar().currentMessage()
    key(qtbot, window, Qt.Key.Key_Return)
    entry = window.session.audit[-1]
    assert entry.action is AuditAction.ADD_CELL and entry.detail["method"] == "outline"
    assert len(entry.detail["geometry"]) == 16
    new = window.document.cell(entry.detail["cells_after"][0])
    assert new.kind == "wbc" and new.measurements["area"] == pytest.approx(np.pi * radius**2, rel=0.1)
    assert window.overlay.item(new.id) is not None


def test_a_freehand_outline_is_traced_by_dragging(qtbot, window):  # noqa: ANN001
    white = white_cells(window)[0]
    window.document.delete_cells([white.id])
    key(qtbot, window, Qt.Key.Key_A, SHIFT)
    drag(window, disc(*white.centroid, 0.45 * white.diameter, n=40))
    assert len(window.edit_tools.points) >= 10  # the drag laid points along the way
    key(qtbot, window, Qt.Key.Key_Enter)
    assert window.session.audit[-1].action is AuditAction.ADD_CELL


def merge_two_red_cells(window):  # noqa: ANN001
    """Outline two touching red cells as one, as the segmentation sometimes does."""
    document = window.document
    shape = (480, 640)
    reds = [c for c in document.cells if c.kind == "rbc" and c.bbox[0] > 5 and c.bbox[1] > 5 and c.bbox[2] < 635 and c.bbox[3] < 475]
    for a in reds:
        grown = cv2.dilate(cell_mask(a, (0, 0), shape).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        for b in reds:
            if b.id != a.id and (grown & cell_mask(b, (0, 0), shape)).sum() > 20:
                union = cv2.morphologyEx((cell_mask(a, (0, 0), shape) | cell_mask(b, (0, 0), shape)).astype(np.uint8),
                                         cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))  # fmt: skip
                found, _ = cv2.findContours(union, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                outline = max(found, key=cv2.contourArea).reshape(-1, 2)
                merged = document.redraw_cell(window.edit_tools.context(), a.id, outline)
                return a, b, merged
    raise AssertionError("no touching red cells in the sample")


@pytest.mark.parametrize("how", ["line", "seeds"])
def test_split_a_merged_cell_by_a_line_or_by_seeds(qtbot, window, how):  # noqa: ANN001
    a, b, merged = merge_two_red_cells(window)
    window.select_cell(merged.id, centre=False)
    ca, cb = np.array(a.centroid), np.array(b.centroid)
    if how == "line":
        mid, along = (ca + cb) / 2, (cb - ca) / np.linalg.norm(cb - ca)
        across = np.array([-along[1], along[0]]) * merged.diameter
        key(qtbot, window, Qt.Key.Key_S)
        assert window.statusBar().currentMessage().startswith("Split: draw a line across")
        click(qtbot, window, *(mid - across))
        double_click(qtbot, window, *(mid + across))  # the double-click's point ends the line and finishes
    else:
        key(qtbot, window, Qt.Key.Key_S, SHIFT)
        click(qtbot, window, *ca)
        click(qtbot, window, *cb)
        assert "2 seeds" in window.statusBar().currentMessage()
        key(qtbot, window, Qt.Key.Key_Return)
    entry = window.session.audit[-1]
    assert entry.action is AuditAction.SPLIT_CELL and entry.detail["method"] == how
    assert entry.detail["cells_before"] == [merged.id] and len(entry.detail["cells_after"]) == 2
    assert window.overlay.item(merged.id) is None
    assert all(window.overlay.item(i) is not None for i in entry.detail["cells_after"])
    assert window.selected == entry.detail["cells_after"][0]
    assert window.statusBar().currentMessage().startswith(f"Split cell {merged.id} into")


def test_redraw_the_selected_cell_and_the_review_follows(qtbot, window, tmp_path: Path):  # noqa: ANN001
    white = white_cells(window)[0]
    window.select_cell(None)
    key(qtbot, window, Qt.Key.Key_R)  # nothing selected: the tool says what it needs
    assert not window.edit_tools.drawing and "Select the cell first" in window.statusBar().currentMessage()
    window.select_cell(white.id, centre=False)
    key(qtbot, window, Qt.Key.Key_R)
    assert window.statusBar().currentMessage().startswith(f"Redraw cell {white.id}:")
    points = disc(*white.centroid, 0.4 * white.diameter, n=12)
    for x, y in points[:-1]:
        click(qtbot, window, x, y)
    double_click(qtbot, window, *points[-1])
    entry = window.session.audit[-1]
    assert entry.action is AuditAction.REDRAW_CELL and entry.detail["cells_before"][0] == white.id
    new = window.document.cell(entry.detail["cells_after"][0])
    assert new.kind == "wbc" and new.measurements["area"] < white.measurements["area"]
    assert window.review.model.row_of(new.id) is not None and window.review.model.row_of(white.id) is None
    # the edit is saved with the review and comes back on reopening
    saved = window.save_session_file()
    assert [e.action for e in load_session(saved).audit][-1] is AuditAction.REDRAW_CELL
    path = window.path
    window.close_image()
    assert window.open_image(path)
    assert window.overlay.item(new.id) is not None and window.overlay.item(white.id) is None
