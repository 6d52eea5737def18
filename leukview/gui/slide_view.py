"""The Slide dock's widgets: the overview with the tile grid and counting area, the live cell layer.

:class:`SlideOverview` is the viewer's :class:`~leukview.gui.viewer.Overview`
(thumbnail, visible part, click to go there) with the run's tiles drawn over
it, done, failed and pending each their own way, and the counting area;
:class:`LiveCells` draws the white cells of the tiles finished so far on the
main view, before the slide is assembled; :class:`SlidePanel` holds the
overview, the run's state, *Analyse slide*, a progress bar and *Cancel*.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import (
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStyleOptionGraphicsItem,
    QVBoxLayout,
    QWidget,
)

from .cellinfo import class_colour
from .viewer import Overview

if TYPE_CHECKING:
    from leukview.core.tiling import SlidePlan

__all__ = ["LiveCells", "SlideOverview", "SlidePanel", "run_controls"]


def run_controls(label: str, tooltip: str) -> tuple[QPushButton, QPushButton, QProgressBar, QHBoxLayout]:
    """A background run's controls in a row: the start button, its progress and Cancel (both hidden).

    Returns
    -------
    start, cancel, progress, row
        The buttons and the bar, and the row that holds them (the bar stretches).
    """
    start = QPushButton(label)
    start.setToolTip(tooltip)
    cancel = QPushButton("Cancel")
    cancel.setVisible(False)
    progress = QProgressBar()
    progress.setVisible(False)
    row = QHBoxLayout()
    row.addWidget(start)
    row.addWidget(progress, 1)
    row.addWidget(cancel)
    return start, cancel, progress, row

DONE, FAILED = QColor(0, 170, 0), QColor(210, 30, 30)
PENDING = QColor(200, 200, 200)
AREA = QColor(0, 110, 255)


class SlideOverview(Overview):
    """The overview with the tile grid (done green, failed red, pending grey) and the counting area."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tiles: dict[int, tuple[int, int, int, int]] = {}
        self.states: dict[int, str] = {}
        self.area: list[list[np.ndarray]] = []
        self.setToolTip("The slide: tiles analysed (green), failed (red), to do (grey), the counting area "
                        "(blue); click or drag to move the view")

    def set_plan(self, plan: SlidePlan | None) -> None:
        self.tiles = {} if plan is None else {
            i: (t.x0, t.y0, t.x1, t.y1) for i in plan.tiles for t in (plan.grid.tile(i),)
        }
        self.states = {}
        self.update()

    def set_state(self, index: int, state: str) -> None:
        self.states[index] = state
        self.update()

    def set_area(self, polygons: list[list[np.ndarray]]) -> None:
        self.area = list(polygons)
        self.update()

    def clear(self) -> None:
        self.tiles, self.states, self.area = {}, {}, []
        super().clear()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        target = self._target()
        if target.isEmpty():
            return
        scale = target.width() / self._image_size.width()
        painter = QPainter(self)
        for index, (x0, y0, x1, y1) in self.tiles.items():
            state = self.states.get(index, "pending")
            colour = DONE if state == "done" else FAILED if state == "failed" else PENDING
            rect = QRectF(target.left() + x0 * scale, target.top() + y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale)
            if state != "pending":
                fill = QColor(colour)
                fill.setAlpha(70)
                painter.fillRect(rect, fill)
            painter.setPen(QPen(colour, 1))
            painter.drawRect(rect.adjusted(0.5, 0.5, -0.5, -0.5))
        painter.setPen(QPen(AREA, 2))
        for polygon in self.area:
            for ring in polygon:
                points = [QPointF(target.left() + x * scale, target.top() + y * scale) for x, y in ring]
                painter.drawPolygon(QPolygonF(points))
        painter.end()


class LiveCells(QGraphicsItem):
    """The white cells of the tiles finished so far, outlined in their call's colour (before assembly)."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self._rect = QRectF(0, 0, width, height)
        self.cells: list[tuple[QRectF, QPolygonF, QColor]] = []
        self.setZValue(5)

    def add(self, cells: list[dict[str, Any]]) -> None:
        for cell in cells:
            outline = cell.get("contour") or []
            x0, y0, x1, y1 = cell["bbox"]
            polygon = QPolygonF([QPointF(float(x), float(y)) for x, y in outline])
            label = (cell.get("call") or {}).get("label")
            self.cells.append((QRectF(x0, y0, x1 - x0, y1 - y0), polygon, class_colour(label)))
        self.update()

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        exposed = option.exposedRect
        scale = abs(painter.worldTransform().m11()) or 1.0
        for box, polygon, colour in self.cells:
            if not box.intersects(exposed):
                continue
            pen = QPen(colour, 2)
            pen.setCosmetic(True)
            painter.setPen(pen)
            if scale * box.width() < 6 or polygon.isEmpty():  # too small to outline: a dot
                painter.setBrush(colour)
                r = 3 / scale
                painter.drawEllipse(box.center(), r, r)
                painter.setBrush(Qt.BrushStyle.NoBrush)
            else:
                painter.drawPolygon(polygon)


class SlidePanel(QWidget):
    """The Slide dock: the overview with its tile grid, what the run did, Analyse slide, progress, Cancel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overview = SlideOverview()
        self.status = QLabel("No slide open")
        self.status.setWordWrap(True)
        self.analyse_button, self.cancel_button, self.progress, row = run_controls(
            "Analyse slide",
            "Analyse the whole slide tile by tile in the background; starting again resumes where it stopped",
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.overview, 1)
        layout.addWidget(self.status)
        layout.addLayout(row)

    def set_busy(self, busy: bool, total: int = 0) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.analyse_button.setEnabled(not busy)
        if busy:
            self.progress.setRange(0, max(total, 0))  # 0..0: busy without a count (planning)
            self.progress.setValue(0)
            self.progress.setFormat("planning…")
