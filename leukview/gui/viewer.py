"""The slide view (zoom to cursor, pan, fit, 1:1, scale bar) and its overview."""

from __future__ import annotations

import math
from typing import Protocol

from PySide6.QtCore import QPoint, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QFrame, QGraphicsScene, QGraphicsView, QSizePolicy, QWidget

from leukview.core.calibration import Calibration


class ViewTool(Protocol):
    """A drawing tool that takes the view's mouse while it is on (:class:`leukview.gui.edit_tools.EditTools`)."""

    @property
    def drawing(self) -> bool: ...

    def mouse(self, kind: str, point: QPointF, event: QMouseEvent) -> bool: ...

MAX_SCALE = 32.0
CLICK_SLOP = 4  # pixels a press may move and still be a click, not a pan


def nice_length(value: float) -> float:
    """The largest 1, 2 or 5 × 10^n not above ``value`` (value > 0)."""
    exponent = math.floor(math.log10(value))
    base = 10.0**exponent
    for step in (5.0, 2.0, 1.0):
        if step * base <= value:
            return step * base
    return base


class SlideView(QGraphicsView):
    """A QGraphicsView for one image in level-0 pixel coordinates.

    Drag pans, the wheel zooms about the cursor, arrow keys pan (Shift: a
    whole screen). A click on a cell emits :attr:`cell_clicked`; a right
    click emits :attr:`cell_menu` with the cell under the cursor.
    """

    view_changed = Signal(QRectF)
    zoom_changed = Signal(float)
    cursor_moved = Signal(QPointF)
    cell_clicked = Signal(int)  # -1 for a click on no cell
    cell_menu = Signal(int, QPoint)
    files_dropped = Signal(list)

    def __init__(self, scene: QGraphicsScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)  # set_scale anchors itself
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setBackgroundBrush(QBrush(QColor(48, 48, 52)))
        self.setFrameShape(QFrame.Shape.NoFrame)
        # panning is by drag, arrow keys and the overview, as in slide viewers
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.image_rect = QRectF()
        self.calibration = Calibration.unknown()  # the document's, set by the window
        self.cell_at = lambda point: None  # set by the window: scene point -> cell id or None
        self.tool: ViewTool | None = None  # set by the window: a drawing tool gets the mouse first
        self._press: QPoint | None = None
        self.horizontalScrollBar().valueChanged.connect(self._emit_view)
        self.verticalScrollBar().valueChanged.connect(self._emit_view)

    # -- zoom ---------------------------------------------------------------

    @property
    def scale_factor(self) -> float:
        """Screen pixels per image pixel."""
        return self.transform().m11()

    def fit_scale(self) -> float:
        if self.image_rect.isEmpty():
            return 1.0
        view = self.viewport().rect()
        return min(view.width() / self.image_rect.width(), view.height() / self.image_rect.height())

    def set_image_rect(self, rect: QRectF) -> None:
        self.image_rect = QRectF(rect)
        margin = max(rect.width(), rect.height()) * 0.25
        self.setSceneRect(rect.adjusted(-margin, -margin, margin, margin))

    def set_scale(self, scale: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``scale`` screen px per image px, keeping ``anchor`` (scene) still."""
        low = min(self.fit_scale() * 0.5, 1.0)
        scale = max(low, min(MAX_SCALE, scale))
        if anchor is None:
            anchor = self.mapToScene(self.viewport().rect().center())
        before = self.mapFromScene(anchor)
        self.setTransform(self.transform().fromScale(scale, scale))
        after = self.mapFromScene(anchor)
        delta = after - before
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + delta.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + delta.y())
        self.zoom_changed.emit(self.scale_factor)
        self._emit_view()

    def zoom_by(self, factor: float) -> None:
        self.set_scale(self.scale_factor * factor)

    def fit(self) -> None:
        """The whole image in the window."""
        if self.image_rect.isEmpty():
            return
        self.set_scale(self.fit_scale() * 0.98)
        self.centerOn(self.image_rect.center())
        self._emit_view()

    def actual_size(self) -> None:
        """One image pixel per screen pixel, about the centre."""
        self.set_scale(1.0)

    def centre_on(self, point: QPointF, min_size: float = 0.0) -> None:
        """Centre on a scene point, zooming in when an object of ``min_size`` px would look tiny."""
        if min_size > 0 and min_size * self.scale_factor < 48:
            self.set_scale(min(MAX_SCALE, 160.0 / min_size), point)
        self.centerOn(point)
        self._emit_view()

    def visible_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def _emit_view(self, *_: object) -> None:
        self.view_changed.emit(self.visible_rect())
        self.viewport().update()  # the scale bar is drawn in viewport coordinates

    # -- events -------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if delta == 0:
            return
        self.set_scale(self.scale_factor * 1.0015**delta, self.mapToScene(event.position().toPoint()))
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        step = self.viewport().width() * (0.9 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 0.15)
        moves = {
            Qt.Key.Key_Left: (-step, 0),
            Qt.Key.Key_Right: (step, 0),
            Qt.Key.Key_Up: (0, -step),
            Qt.Key.Key_Down: (0, step),
        }
        if event.key() in moves:
            dx, dy = moves[event.key()]
            self.horizontalScrollBar().setValue(int(self.horizontalScrollBar().value() + dx))
            self.verticalScrollBar().setValue(int(self.verticalScrollBar().value() + dy))
            event.accept()
            return
        super().keyPressEvent(event)

    def _to_tool(self, kind: str, event: QMouseEvent) -> bool:
        """Hand a mouse event to the active drawing tool; True when it took it."""
        if self.tool is None or not self.tool.drawing:
            return False
        taken = self.tool.mouse(kind, self.mapToScene(event.position().toPoint()), event)
        if taken:
            event.accept()
        return taken

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if not self._to_tool("double", event):
            super().mouseDoubleClickEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._to_tool("press", event):
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._to_tool("release", event):
            self._press = None
            return
        super().mouseReleaseEvent(event)
        if event.button() == Qt.MouseButton.LeftButton and self._press is not None:
            moved = (event.position().toPoint() - self._press).manhattanLength()
            self._press = None
            if moved <= CLICK_SLOP:
                cell = self.cell_at(self.mapToScene(event.position().toPoint()))
                self.cell_clicked.emit(-1 if cell is None else int(cell))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if not self._to_tool("move", event):
            super().mouseMoveEvent(event)
        self.cursor_moved.emit(self.mapToScene(event.position().toPoint()))

    def contextMenuEvent(self, event) -> None:  # noqa: ANN001 - QContextMenuEvent
        cell = self.cell_at(self.mapToScene(event.pos()))
        if cell is not None:
            self.cell_menu.emit(int(cell), event.globalPos())
            event.accept()

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        super().resizeEvent(event)
        self._emit_view()

    def dragEnterEvent(self, event) -> None:  # noqa: ANN001
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: ANN001
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: ANN001
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)

    # -- scale bar ----------------------------------------------------------

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        super().drawForeground(painter, rect)
        um_per_image_px = self.calibration.length_um(1.0)
        if not um_per_image_px or self.image_rect.isEmpty():
            return
        um_per_screen_px = um_per_image_px / max(self.scale_factor, 1e-9)
        length_um = nice_length(140 * um_per_screen_px)
        bar = length_um / um_per_screen_px
        text = f"{'≈ ' if self.calibration.estimated else ''}{length_um:g} µm"
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        font = QFont(painter.font())
        font.setPointSizeF(10)
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        margin = 14
        box_w = max(bar, metrics.horizontalAdvance(text)) + 16
        box_h = metrics.height() + 20
        x = margin
        y = self.viewport().height() - margin - box_h
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 215))
        painter.drawRoundedRect(QRectF(x, y, box_w, box_h), 4, 4)
        painter.setBrush(QColor(20, 20, 20))
        painter.drawRect(QRectF(x + 8, y + box_h - 12, bar, 5))
        painter.setPen(QColor(20, 20, 20))
        painter.drawText(QRectF(x + 8, y + 3, box_w - 16, metrics.height()), Qt.AlignmentFlag.AlignLeft, text)
        painter.restore()


class Overview(QWidget):
    """The whole image small, with the visible part outlined; click or drag to go there."""

    navigate = Signal(QPointF)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image = QImage()
        self._image_size = QSize()
        self._visible = QRectF()
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")

    def sizeHint(self) -> QSize:
        return QSize(240, 180)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        if self._image_size.isEmpty():
            return int(width * 0.75)
        return int(width * self._image_size.height() / self._image_size.width())

    def set_image(self, thumbnail: QImage, width: int, height: int) -> None:
        self._image = thumbnail
        self._image_size = QSize(width, height)
        self.updateGeometry()
        self.update()

    def clear(self) -> None:
        self._image = QImage()
        self._image_size = QSize()
        self.update()

    def set_visible_rect(self, rect: QRectF) -> None:
        self._visible = QRectF(rect)
        self.update()

    def _target(self) -> QRectF:
        if self._image_size.isEmpty():
            return QRectF()
        w, h = self.width(), self.height()
        scale = min(w / self._image_size.width(), h / self._image_size.height())
        tw, th = self._image_size.width() * scale, self._image_size.height() * scale
        return QRectF((w - tw) / 2, (h - th) / 2, tw, th)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(48, 48, 52))
        target = self._target()
        if target.isEmpty():
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(target, self._image)
        scale = target.width() / self._image_size.width()
        visible = QRectF(
            target.left() + self._visible.left() * scale,
            target.top() + self._visible.top() * scale,
            self._visible.width() * scale,
            self._visible.height() * scale,
        ).intersected(target)
        painter.setPen(QPen(QColor(255, 220, 0), 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(visible)

    def _go(self, point: QPointF) -> None:
        target = self._target()
        if target.isEmpty():
            return
        scale = target.width() / self._image_size.width()
        self.navigate.emit(QPointF((point.x() - target.left()) / scale, (point.y() - target.top()) / scale))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._go(event.position())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._go(event.position())
