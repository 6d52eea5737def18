"""The gallery: cell crops grouped by class, framed in the class's colour, in review order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QWidget

from leukview.core.calls import display_name
from leukview.core.cells import Cell

from .cellinfo import FLAG_COLOUR, class_colour, tooltip_html
from .tiles import to_qimage

if TYPE_CHECKING:
    from leukview.core.document import ReviewDocument

__all__ = ["CELL_ID_ROLE", "THUMB", "Gallery", "thumbnail_pixmap"]

CELL_ID_ROLE = Qt.ItemDataRole.UserRole + 1
THUMB = 84


def thumbnail_pixmap(crop: np.ndarray, colour: QColor, flagged: bool, reviewed: bool) -> QPixmap:
    """A cell crop framed in its class colour; an amber corner when flagged, a tick when reviewed."""
    pixmap = QPixmap.fromImage(to_qimage(crop)).scaled(
        THUMB, THUMB, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(QPen(colour, 5))
    painter.drawRect(2, 2, THUMB - 5, THUMB - 5)
    if flagged:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(FLAG_COLOUR))
        painter.drawEllipse(THUMB - 20, 4, 15, 15)
        painter.setPen(QColor("black"))
        painter.drawText(THUMB - 20, 4, 15, 15, Qt.AlignmentFlag.AlignCenter, "?")
    if reviewed:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 230))
        painter.drawEllipse(THUMB - 20, 4, 15, 15)
        painter.setPen(QPen(QColor(0, 130, 60), 2))
        painter.drawText(THUMB - 20, 4, 15, 15, Qt.AlignmentFlag.AlignCenter, "✓")
    painter.end()
    return pixmap


class Gallery(QListWidget):
    """Cell crops grouped by class, in review order within each group."""

    cell_activated = Signal(int)

    def __init__(self, document: ReviewDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setSpacing(4)
        self.setUniformItemSizes(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setWordWrap(False)
        self._items: dict[int, QListWidgetItem] = {}
        self._headers: list[QListWidgetItem] = []
        self._crops: dict[int, np.ndarray] = {}
        self.currentItemChanged.connect(self._current_changed)

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
            header = QListWidgetItem(f"{display_name(name).capitalize()}  ({len(members)})")
            header.setFlags(Qt.ItemFlag.NoItemFlags)
            header.setFont(header_font)
            header.setForeground(QBrush(class_colour(name).darker(130) if name else QColor("gray")))
            header.setSizeHint(QSize(max(200, self.viewport().width() - 12), 26))
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
                    thumbnail_pixmap(self._crops[cell.id], class_colour(call.label), call.needs_review, call.reviewed)
                )
                text = f"{cell.id}" + (" ✓" if call.reviewed else f" {call.confidence:.0%}" if call.confidence else "")
                item = QListWidgetItem(icon, text)
                item.setData(CELL_ID_ROLE, cell.id)
                item.setToolTip(tooltip_html(cell, call, document.models, document.calibration))
                item.setSizeHint(QSize(THUMB + 10, THUMB + 24))
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
            header.setSizeHint(QSize(width, 26))
