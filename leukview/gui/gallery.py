"""The gallery: cell crops grouped by class, framed in the class's colour, in review order.

Thumbnails are 64 to 192 pixels (:attr:`Gallery.thumb`; the Review panel's
slider or Ctrl+wheel), headers name the class with its abbreviation, so that a
group is never told by colour alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPainter, QPen, QPixmap, QWheelEvent
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QWidget

from leukview.core.calls import display_name
from leukview.core.cells import Cell
from leukview.core.classes import abbreviation

from .cellinfo import FLAG_COLOUR, class_colour, tooltip_html
from .tiles import to_qimage

if TYPE_CHECKING:
    from leukview.core.document import ReviewDocument

__all__ = ["CELL_ID_ROLE", "MAX_THUMB", "MIN_THUMB", "THUMB", "Gallery", "thumbnail_pixmap"]

CELL_ID_ROLE = Qt.ItemDataRole.UserRole + 1
THUMB = 96  # the default side
MIN_THUMB, MAX_THUMB = 64, 192
HEADER_HEIGHT = 26


def thumbnail_pixmap(crop: np.ndarray, colour: QColor, flagged: bool, reviewed: bool, size: int = THUMB) -> QPixmap:
    """A cell crop framed in its class colour; an amber ``?`` when flagged, a tick when reviewed."""
    pixmap = QPixmap.fromImage(to_qimage(crop)).scaled(
        size, size, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    frame = max(3, size // 18)
    painter.setPen(QPen(colour, frame))
    painter.drawRect(frame // 2, frame // 2, size - frame, size - frame)
    badge = max(15, size // 6)
    spot = (size - badge - frame - 1, frame + 1, badge, badge)
    if flagged:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(FLAG_COLOUR))
        painter.drawEllipse(*spot)
        painter.setPen(QColor("black"))
        painter.drawText(*spot, Qt.AlignmentFlag.AlignCenter, "?")
    if reviewed:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 230))
        painter.drawEllipse(*spot)
        painter.setPen(QPen(QColor(0, 130, 60), 2))
        painter.drawText(*spot, Qt.AlignmentFlag.AlignCenter, "✓")
    painter.end()
    return pixmap


class Gallery(QListWidget):
    """Cell crops grouped by class, in review order within each group."""

    cell_activated = Signal(int)
    thumb_changed = Signal(int)  # the thumbnails' new side (to remember it)

    def __init__(self, document: ReviewDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.thumb = THUMB
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(self.thumb, self.thumb))
        self.setSpacing(4)
        self.setUniformItemSizes(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setWordWrap(False)
        self._items: dict[int, QListWidgetItem] = {}
        self._headers: list[QListWidgetItem] = []
        self._crops: dict[int, np.ndarray] = {}
        # the arguments of the last rebuild, to lay out again at another size
        self._last: tuple[list[Cell], list[str], Callable[[Cell], np.ndarray | None], Callable[[int], int]] | None = None
        self.currentItemChanged.connect(self._current_changed)
        self._fit_rows()

    def _current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if current is not None and current.data(CELL_ID_ROLE) is not None:
            self.cell_activated.emit(int(current.data(CELL_ID_ROLE)))

    def clear_cells(self) -> None:
        self._crops.clear()
        self._items.clear()
        self._headers.clear()
        self.clear()

    def rebuild(
        self,
        cells: Sequence[Cell],
        classes: Sequence[str],
        crop: Callable[[Cell], np.ndarray | None],
        order: Callable[[int], int],
        selected: int | None,
    ) -> None:
        """Lay the crops out again (after an analysis or a reclassification)."""
        self._last = (list(cells), list(classes), crop, order)
        self.blockSignals(True)
        self.clear()
        self._items.clear()
        self._headers.clear()
        document = self.document
        calls = {cell.id: document.call(cell) for cell in cells}
        groups: dict[str | None, list[Cell]] = {}
        for cell in cells:
            groups.setdefault(calls[cell.id].label, []).append(cell)
        names = [c for c in classes if c in groups] + [c for c in groups if c not in classes and c is not None]
        if None in groups:
            names.append(None)  # type: ignore[arg-type]
        header_font = QFont()
        header_font.setBold(True)
        for name in names:
            members = sorted(groups[name], key=lambda c: order(c.id))
            code = abbreviation(name) if name else "—"
            header = QListWidgetItem(f"{code} · {display_name(name)}  ({len(members)})")
            header.setFlags(Qt.ItemFlag.NoItemFlags)
            header.setFont(header_font)
            header.setForeground(QBrush(class_colour(name).darker(130) if name else QColor("gray")))
            header.setSizeHint(QSize(max(200, self.viewport().width() - 12), HEADER_HEIGHT))
            self.addItem(header)
            self._headers.append(header)
            for cell in members:
                if cell.id not in self._crops:
                    array = crop(cell)
                    if array is None:
                        continue
                    self._crops[cell.id] = array
                call = calls[cell.id]
                icon = QIcon(
                    thumbnail_pixmap(
                        self._crops[cell.id], class_colour(call.label), call.needs_review, call.reviewed, self.thumb
                    )
                )
                text = f"{cell.id}" + (" ✓" if call.reviewed else f" {call.confidence:.0%}" if call.confidence else "")
                item = QListWidgetItem(icon, text)
                item.setData(CELL_ID_ROLE, cell.id)
                item.setToolTip(
                    tooltip_html(cell, call, document.models, document.calibration, document.threshold)
                )
                item.setSizeHint(QSize(self.thumb + 10, self.thumb + 24))
                item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
                self.addItem(item)
                self._items[cell.id] = item
        self.blockSignals(False)
        self.select_cell(selected)

    def select_cell(self, cell_id: int | None) -> None:
        item = self._items.get(cell_id) if cell_id is not None else None
        self.blockSignals(True)
        if item is None:
            self.clearSelection()
        else:
            self.setCurrentItem(item, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.scrollToItem(item)
        self.blockSignals(False)

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        super().resizeEvent(event)
        width = max(200, self.viewport().width() - 12)
        for header in self._headers:
            header.setSizeHint(QSize(width, HEADER_HEIGHT))

    # -- thumbnail size

    def set_thumb(self, size: int) -> int:
        """Thumbnails of ``size`` pixels (kept within 64-192); the gallery is laid out again. Returns the size."""
        size = max(MIN_THUMB, min(MAX_THUMB, int(size)))
        if size == self.thumb:
            return size
        self.thumb = size
        self.setIconSize(QSize(size, size))
        self._fit_rows()
        if self._last is not None:
            selected = self.currentItem().data(CELL_ID_ROLE) if self.currentItem() is not None else None
            self.rebuild(*self._last, selected)
        self.thumb_changed.emit(size)
        return size

    def _fit_rows(self) -> None:
        # more than one row of cells stays visible, whatever the docks around do
        row = self.thumb + 24 + 2 * self.spacing()
        self.setMinimumHeight(min(HEADER_HEIGHT + int(1.6 * row), 340))

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:  # Ctrl+wheel: thumbnail size
            steps = event.angleDelta().y() / 120.0
            if steps:
                self.set_thumb(self.thumb + int(round(steps * 16)) or (16 if steps > 0 else -16))
            event.accept()
            return
        super().wheelEvent(event)
