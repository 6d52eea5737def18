"""Reviewing from the window: selection, navigation, decisions by key and by context menu.

Decisions go to the document (:meth:`ReviewDocument.review`, ``confirm``,
``clear_review``: undoable and audited); its ``cell_changed`` event updates
the views.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit, QMenu, QTextEdit

from leukview.core.calls import display_name
from leukview.core.cells import Cell
from leukview.core.errors import LeukViewError
from leukview.core.keymap import class_keys
from leukview.core.preprocess import CropRule, crop_box

from .review import CELL_ID_ROLE

if TYPE_CHECKING:
    from PySide6.QtWidgets import QStatusBar

    from leukview.core.document import ReviewDocument
    from leukview.core.session import Session

    from .overlays import CellOverlay
    from .review import ReviewPanel
    from .settings import AppSettings
    from .tiles import TileSource
    from .viewer import SlideView

__all__ = ["GALLERY_RULE", "ReviewUi"]

GALLERY_RULE = CropRule(scale=1.4, min_side=24, background="keep")


def _typing() -> bool:
    """True while the keyboard focus is in a text field (Enter there must not accept a cell)."""
    return isinstance(QApplication.focusWidget(), (QLineEdit, QAbstractSpinBox, QTextEdit))


class ReviewUi:
    """Selection and review of the main window (a mixin of :class:`MainWindow`)."""

    document: ReviewDocument
    settings: AppSettings
    selected: int | None
    source: TileSource | None
    overlay: CellOverlay
    review: ReviewPanel
    view: SlideView

    if TYPE_CHECKING:  # provided by MainWindow (stubs here would hide QMainWindow's)

        def statusBar(self) -> QStatusBar: ...  # noqa: N802 - Qt's name

        @property
        def session(self) -> Session | None: ...

        def classes(self) -> list[str]: ...

    def select_cell(self, cell_id: int | None, centre: bool = True) -> None:
        """Select a cell everywhere (overlay, table, gallery) and centre the view on it."""
        self.selected = cell_id
        self.overlay.select(cell_id)
        self.review.select_cell(cell_id)
        if cell_id is None:
            return
        try:
            cell = self.document.cell(cell_id)
        except KeyError:
            return
        if centre:
            self.view.centre_on(QPointF(*cell.centroid), min_size=cell.diameter)
        call = self.document.call(cell)
        text = f"Cell {cell.id}: {display_name(call.label)}"
        if call.reviewed:
            text += f" (reviewed by {cell.review.reviewer})"
        elif call.confidence is not None:
            text += f" ({call.confidence:.0%}, {call.model})"
        if call.reasons:
            text += " · " + "; ".join(call.reasons)
        self.statusBar().showMessage(text, 6000)

    def _review_selected(self, cell_id: int) -> None:
        self.selected = cell_id
        self.overlay.select(cell_id)
        try:
            cell = self.document.cell(cell_id)
        except KeyError:
            return
        self.view.centre_on(QPointF(*cell.centroid), min_size=cell.diameter)

    def go_next(self) -> None:
        """Next unreviewed cell in the table's order (wrapping); the next cell when all are reviewed."""
        order = self.review.visible_order()
        if not order or self.session is None:
            return
        start = order.index(self.selected) + 1 if self.selected in order else 0
        for cell_id in order[start:] + order[:start]:
            if not self.document.cell(cell_id).review.reviewed:
                self.select_cell(cell_id)
                return
        self.statusBar().showMessage("Every cell in the list is reviewed.", 5000)
        if self.selected not in order:
            self.select_cell(order[0])

    def go_previous(self) -> None:
        order = self.review.visible_order()
        if order:
            index = order.index(self.selected) if self.selected in order else 0
            self.select_cell(order[index - 1])

    def classify_key(self, key: str) -> None:
        for class_key, name in class_keys(self.classes()):
            if class_key == key:
                self.classify(name)
                return

    def classify(self, label: str, cell_id: int | None = None) -> None:
        """Give the selected (or given) cell the reviewer's label, undoably; then go on."""
        target = self.selected if cell_id is None else cell_id
        if self.session is None or target is None:
            self.statusBar().showMessage("Select a cell first (N goes to the next one).", 4000)
            return
        self.document.review(target, label)
        if self.settings.advance and cell_id is None:
            self.go_next()

    def accept_call(self) -> None:
        if self.session is None or self.selected is None or _typing():
            return
        if not self.document.confirm(self.selected):
            self.statusBar().showMessage("This cell has no call to accept: classify it with a number key.", 4000)
        elif self.settings.advance:
            self.go_next()

    def clear_review(self) -> None:
        if self.session is not None and self.selected is not None:
            self.document.clear_review(self.selected)

    def _show_cell_menu(self, cell_id: int, global_pos) -> None:  # noqa: ANN001 - QPoint
        if self.session is None:
            return
        self.select_cell(cell_id, centre=False)
        menu = QMenu(self)  # type: ignore[call-overload]
        cell = self.document.cell(cell_id)
        call = self.document.call(cell)
        menu.addAction(f"Cell {cell_id}: {display_name(call.label)}").setEnabled(False)
        menu.addSeparator()
        if call.label is not None:
            menu.addAction(f"Accept {display_name(call.label)}\tEnter").triggered.connect(self.accept_call)
        for key, name in class_keys(self.classes()):
            action = menu.addAction(display_name(name) + (f"\t{key}" if key else ""))
            action.triggered.connect(lambda _=False, n=name: self.classify(n))
        if cell.review.reviewed:
            menu.addSeparator()
            menu.addAction("Clear review\tBackspace").triggered.connect(self.clear_review)
        self.exec_menu(menu, global_pos)

    def exec_menu(self, menu: QMenu, global_pos) -> None:  # noqa: ANN001 - QPoint
        """Show a context menu and wait for the choice (a seam for tests: menus are modal)."""
        menu.exec(global_pos)

    def _table_menu(self, pos) -> None:  # noqa: ANN001
        index = self.review.table.indexAt(pos)
        if index.isValid():
            self._show_cell_menu(int(index.data(CELL_ID_ROLE)), self.review.table.viewport().mapToGlobal(pos))

    def _gallery_menu(self, pos) -> None:  # noqa: ANN001
        item = self.review.gallery.itemAt(pos)
        if item is not None and item.data(CELL_ID_ROLE) is not None:
            self._show_cell_menu(int(item.data(CELL_ID_ROLE)), self.review.gallery.viewport().mapToGlobal(pos))

    def crop_for(self, cell: Cell) -> np.ndarray | None:
        """The gallery's crop of a cell, read from the image (any size)."""
        if self.source is None:
            return None
        x0, y0, x1, y1 = crop_box(cell, GALLERY_RULE)
        cx0, cy0 = max(0, x0), max(0, y0)
        cx1, cy1 = min(self.source.width, x1), min(self.source.height, y1)
        if cx1 <= cx0 or cy1 <= cy0:
            return None
        try:
            region = self.source.read_level(0, cx0, cy0, cx1 - cx0, cy1 - cy0)
        except LeukViewError:
            return None
        canvas = np.full((y1 - y0, x1 - x0, 3), 255, np.uint8)  # white where the box leaves the image
        canvas[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = region
        return canvas
