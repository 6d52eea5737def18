"""The review panel: cell table (sort, filter), gallery by class, keys, progress.

Length (~610 lines): the table model, its filter and the panel that holds them
are one widget; the gallery is apart (gallery.py).
"""

from __future__ import annotations

import html
import operator
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QTableView,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from leukview.core.calls import display_name, review_cells, review_classes, review_order
from leukview.core.cells import Cell
from leukview.core.classes import abbreviation
from leukview.core.keymap import class_keys, legend_actions

from .cellinfo import (
    MEASURES,
    class_colour,
    detail_html,
    measure_text,
    measure_unit,
    measure_value,
    tooltip_html,
)
from .gallery import CELL_ID_ROLE, MAX_THUMB, MIN_THUMB, Gallery

if TYPE_CHECKING:
    from leukview.core.document import ReviewDocument

    from .settings import AppSettings

SORT_ROLE = Qt.ItemDataRole.UserRole

FIXED_COLUMNS = ("Review", "ID", "Class", "Model call", "Kind")
FILTER_KEYS = {
    "id": "id",
    "conf": "confidence",
    "confidence": "confidence",
    "area": "area",
    "diameter": "equivalent_diameter",
    "diam": "equivalent_diameter",
    "circ": "circularity",
    "circularity": "circularity",
    "nc": "nc_ratio",
    "n:c": "nc_ratio",
    "lobes": "lobe_count",
}
OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "=": operator.eq}
TERM = re.compile(r"^([a-z:]+)\s*(<=|>=|<|>|=)\s*([-+0-9.eE]+)$")


class CellTableModel(QAbstractTableModel):
    """Review cells as rows; sort keys in SORT_ROLE, the cell id in CELL_ID_ROLE.

    Calls, flags and µm figures are read from the document when shown, so a
    new threshold or pixel size changes every row.
    """

    def __init__(self, document: ReviewDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.cells: list[Cell] = []
        self._rank: dict[int, int] = {}
        self._row: dict[int, int] = {}

    def set_cells(self, cells: Sequence[Cell]) -> None:
        """Show the review cells of ``cells``, ranked in review order (flagged first)."""
        self.beginResetModel()
        self.cells = review_cells(cells)
        document = self.document
        self._rank = {c.id: i for i, c in enumerate(review_order(self.cells, document.models, document.threshold))}
        self._row = {c.id: i for i, c in enumerate(self.cells)}
        self.endResetModel()

    def rank(self, cell_id: int) -> int:
        """Place of a cell in the review order (flagged and least confident first)."""
        return self._rank.get(cell_id, len(self._rank))

    def row_of(self, cell_id: int) -> int | None:
        return self._row.get(cell_id)

    def refresh_cell(self, cell_id: int) -> None:
        row = self._row.get(cell_id)
        if row is not None:
            self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))

    def refresh_all(self) -> None:
        if self.cells:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.cells) - 1, self.columnCount() - 1))
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, self.columnCount() - 1)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.cells)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(FIXED_COLUMNS) + len(MEASURES)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or role != Qt.ItemDataRole.DisplayRole:
            return None
        if section < len(FIXED_COLUMNS):
            return FIXED_COLUMNS[section]
        key, title = MEASURES[section - len(FIXED_COLUMNS)]
        unit = measure_unit(key, self.document.calibration)
        return f"{title} ({unit})" if unit else title

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        cell = self.cells[index.row()]
        col = index.column()
        if role == CELL_ID_ROLE:
            return cell.id
        call = self.document.call(cell)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip_html(cell, call, self.document.models, self.document.calibration, self.document.threshold)
        flagged = call.needs_review
        if role == Qt.ItemDataRole.BackgroundRole and flagged:
            return QBrush(QColor(255, 179, 0, 45))
        if col == 0:
            if role == Qt.ItemDataRole.DisplayRole:
                return "✓ reviewed" if call.reviewed else ("⚑ check" if flagged else "")
            if role == SORT_ROLE:
                return self.rank(cell.id)
            if role == Qt.ItemDataRole.ForegroundRole and flagged:
                return QBrush(QColor("#B26A00"))
        elif col == 1:
            if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
                return cell.id
        elif col == 2:
            if role == Qt.ItemDataRole.DisplayRole:
                return display_name(call.label)
            if role == SORT_ROLE:
                return call.label or "~"
            if role == Qt.ItemDataRole.DecorationRole:
                return class_colour(call.label)
            if role == Qt.ItemDataRole.FontRole and call.reviewed:
                font = QFont()
                font.setBold(True)
                return font
        elif col == 3:
            # what the models said, kept visible after a review so corrections can be checked
            model = self.document.model_call(cell)
            if role == Qt.ItemDataRole.DisplayRole:
                if model.label is None:
                    return ""
                return f"{display_name(model.label)} {model.confidence:.0%}" if model.confidence is not None else ""
            if role == SORT_ROLE:
                return -1.0 if model.confidence is None else model.confidence
            if role == Qt.ItemDataRole.ForegroundRole and call.reviewed and model.label != call.label:
                return QBrush(QColor("#C62828"))  # the reviewer disagreed
        elif col == 4:
            if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
                return cell.kind
        else:
            key = MEASURES[col - len(FIXED_COLUMNS)][0]
            if role == Qt.ItemDataRole.DisplayRole:
                return measure_text(cell, key, self.document.calibration)
            if role == SORT_ROLE:
                value = measure_value(cell, key, self.document.calibration)
                return -1.0 if value is None else value
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def parse_filter(text: str) -> tuple[list[tuple[str, Callable[[float, float], bool], float]], list[str]]:
    """Split a filter into numeric terms (``area>300``, ``conf<0.8``) and plain words.

    Returns
    -------
    terms : list of (measure key, comparison, value)
    words : list of str
        Lower-case words matched against the class name and the id.
    """
    terms, words = [], []
    for token in re.findall(r"[a-z:]+\s*(?:<=|>=|<|>|=)\s*[-+0-9.eE]+|\S+", text.lower()):
        match = TERM.match(token)
        if match and match.group(1) in FILTER_KEYS:
            try:
                terms.append((FILTER_KEYS[match.group(1)], OPS[match.group(2)], float(match.group(3))))
                continue
            except ValueError:
                pass
        words.append(token)
    return terms, words


class CellFilterProxy(QSortFilterProxyModel):
    """Filters by class, flagged, unreviewed and a text of terms (see :func:`parse_filter`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(False)  # rows must not jump while the reviewer works
        self.class_name: str | None = None  # None: all; "" : unclassified
        self.flagged_only = False
        self.unreviewed_only = False
        self.terms: list[tuple[str, Callable[[float, float], bool], float]] = []
        self.words: list[str] = []

    def set_text(self, text: str) -> None:
        self.terms, self.words = parse_filter(text)
        self.refilter()

    def refilter(self) -> None:
        """Re-run the filter (Qt >= 6.9 names it begin/endFilterChange)."""
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            self.endFilterChange()
        else:
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:
        model: CellTableModel = self.sourceModel()  # type: ignore[assignment]
        document = model.document
        cell = model.cells[row]
        call = document.call(cell)
        if self.class_name is not None and (call.label or "") != self.class_name:
            return False
        if self.unreviewed_only and cell.review.reviewed:
            return False
        if self.flagged_only and not call.needs_review:
            return False
        for key, compare, value in self.terms:
            if key == "id":
                actual: float | None = float(cell.id)
            elif key == "confidence":
                actual = document.model_call(cell).confidence
                value = value / 100.0 if value > 1.0 else value  # "conf<80" means 80 %
            else:
                actual = measure_value(cell, key, document.calibration)
            if actual is None or not compare(actual, value):
                return False
        label = display_name(call.label).lower()
        return all(word in label or word == str(cell.id) for word in self.words)


class ReviewPanel(QWidget):
    """Keys legend, progress, filters, and the table and gallery of review cells."""

    cell_selected = Signal(int)
    next_requested = Signal()

    def __init__(self, document: ReviewDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.model = CellTableModel(document, self)
        self.proxy = CellFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.crop: Callable[[Cell], np.ndarray | None] = lambda cell: None
        self.classes: list[str] = []
        self._all_cells: list[Cell] = []
        self._selected: int | None = None

        self.keys = QLabel()
        self.keys.setWordWrap(True)
        self.keys.setTextFormat(Qt.TextFormat.RichText)
        self.keys.setObjectName("keysLegend")

        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m reviewed")
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.next_button = QPushButton("Next cell (N)")
        self.next_button.setToolTip("Go to the next unreviewed cell in review order (N or Space)")
        self.next_button.clicked.connect(self.next_requested)
        self.next_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.next_button)

        self.class_filter = QComboBox()
        self.class_filter.setToolTip("Show one class only")
        self.class_filter.currentIndexChanged.connect(self._class_filter_changed)
        self.flagged_box = QCheckBox("Flagged")
        self.flagged_box.setToolTip(
            "Only cells flagged for review and not yet reviewed: low confidence (of any model), a blast "
            "call, or atypical (the cell's detail below says why)"
        )
        self.flagged_box.toggled.connect(self._flags_changed)
        self.unreviewed_box = QCheckBox("Unreviewed")
        self.unreviewed_box.toggled.connect(self._flags_changed)
        self.text_filter = QLineEdit()
        self.text_filter.setPlaceholderText("Filter: class name, or e.g. area>300 conf<0.8 lobes>=3")
        self.text_filter.setClearButtonEnabled(True)
        self.text_filter.textChanged.connect(self._text_changed)
        filter_row = QHBoxLayout()
        filter_row.addWidget(self.class_filter)
        filter_row.addWidget(self.flagged_box)
        filter_row.addWidget(self.unreviewed_box)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        # sized once per analysis: ResizeToContents would re-read every row at each keypress
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.selectionModel().currentRowChanged.connect(self._table_current)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)

        self.gallery = Gallery(document)
        self.gallery.cell_activated.connect(self._gallery_current)
        self.gallery.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.thumb_size = QSlider(Qt.Orientation.Horizontal)
        self.thumb_size.setRange(MIN_THUMB, MAX_THUMB)
        self.thumb_size.setSingleStep(8)
        self.thumb_size.setPageStep(32)
        self.thumb_size.setValue(self.gallery.thumb)
        self.thumb_size.setToolTip("Thumbnail size (also Ctrl+wheel on the gallery)")
        self.thumb_size.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the number keys classify, they do not slide
        self.thumb_size.valueChanged.connect(self.gallery.set_thumb)
        self.gallery.thumb_changed.connect(self._thumb_changed)
        self.settings: AppSettings | None = None
        filter_row.addStretch(1)
        filter_row.addWidget(QLabel("Size"))
        filter_row.addWidget(self.thumb_size)
        self.thumb_size.setMaximumWidth(110)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.gallery, "Gallery")
        self.tabs.addTab(self.table, "Table")
        self.tabs.currentChanged.connect(lambda _: self._rebuild_gallery_if_visible())
        self._gallery_stale = True

        # the selected cell in words: its call, why it is flagged, what every model said
        self.detail = QTextBrowser()
        self.detail.setObjectName("cellDetail")
        self.detail.setOpenLinks(False)
        self.detail.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.detail.setMinimumHeight(70)
        self.detail.setPlaceholderText("The selected cell: its call, why it is flagged, each model's output.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tabs)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        split.setSizes([400, 110])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.keys)
        layout.addLayout(progress_row)
        layout.addLayout(filter_row)
        layout.addWidget(self.text_filter)
        layout.addWidget(split, 1)
        self.set_classes(review_classes([]))
        self.update_progress()

    def use_settings(self, settings: AppSettings) -> None:
        """Remember the thumbnail size in the user's settings (and start from the one remembered)."""
        self.settings = settings
        self.thumb_size.setValue(settings.thumb_size)

    def _thumb_changed(self, size: int) -> None:
        self.thumb_size.blockSignals(True)
        self.thumb_size.setValue(size)
        self.thumb_size.blockSignals(False)
        if self.settings is not None:
            self.settings.thumb_size = size

    # -- content ------------------------------------------------------------

    def set_classes(self, classes: Sequence[str]) -> None:
        """Classes and their number keys (1-9 the first nine, 0 the last: artefact)."""
        self.classes = list(classes)
        self.class_filter.blockSignals(True)
        current = self.class_filter.currentData()
        self.class_filter.clear()
        self.class_filter.addItem("All classes", None)
        for name in self.classes:
            self.class_filter.addItem(display_name(name), name)
        self.class_filter.addItem("Unclassified", "")
        index = self.class_filter.findData(current)
        self.class_filter.setCurrentIndex(max(0, index))
        self.class_filter.blockSignals(False)
        self.keys.setText(legend_html(self.classes))
        self.keys.setToolTip(legend_tooltip(self.classes))
        self._size_class_column()

    def set_cells(self, cells: Sequence[Cell]) -> None:
        self._all_cells = list(cells)
        self.model.set_cells(cells)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.resizeColumnsToContents()
        wide = self.table.fontMetrics().horizontalAdvance("✓ reviewed") + 18  # before any review
        self.table.setColumnWidth(0, max(self.table.columnWidth(0), wide))
        self._size_class_column()
        self.gallery.clear_cells()
        self._gallery_stale = True
        self._rebuild_gallery_if_visible()
        self.update_progress()

    def _size_class_column(self) -> None:
        """The Class column fits the longest class name (bold: a reviewed cell's), never cut to "bl..."."""
        font = QFont(self.table.font())
        font.setBold(True)
        metrics = QFontMetrics(font)
        names = [display_name(n) for n in self.classes] + ["unclassified"]
        names += [display_name(self.document.call(c).label) for c in self.model.cells]
        wide = max(metrics.horizontalAdvance(n) for n in names) + self.table.iconSize().width() + 28
        self.table.setColumnWidth(2, max(wide, self.table.columnWidth(2) if self.model.cells else 0))

    def show_detail(self, cell_id: int | None) -> None:
        """The detail of a cell (or none) below the gallery and table."""
        document = self.document
        if cell_id is None:
            self.detail.clear()
            return
        try:
            cell = document.cell(cell_id)
        except KeyError:
            self.detail.clear()
            return
        self.detail.setHtml(
            detail_html(
                cell, document.call(cell), document.model_call(cell), document.models, document.calibration,
                document.threshold,
            )
        )  # fmt: skip

    def calibration_changed(self) -> None:
        """Every µm figure and unit is shown again (they are derived when shown)."""
        self.model.refresh_all()
        self._gallery_stale = True
        self._rebuild_gallery_if_visible()

    def refresh_cell(self, cell_id: int) -> None:
        self.model.refresh_cell(cell_id)
        if cell_id == self._selected:
            self.show_detail(cell_id)
        self._gallery_stale = True
        self._rebuild_gallery_if_visible()
        self.update_progress()

    def refresh_all(self) -> None:
        self.model.refresh_all()
        self.show_detail(self._selected)
        self._gallery_stale = True
        self._rebuild_gallery_if_visible()
        self.update_progress()

    def resort(self) -> None:
        """Recompute the review order (after the threshold changed) and sort by it."""
        self.model.set_cells(self._all_cells)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.proxy.sort(0, Qt.SortOrder.AscendingOrder)
        self.select_cell(self._selected)
        self._gallery_stale = True
        self._rebuild_gallery_if_visible()

    def _rebuild_gallery_if_visible(self) -> None:
        if not self._gallery_stale or self.tabs.currentWidget() is not self.gallery:
            return
        self._gallery_stale = False
        visible = [self.model.cells[self.proxy.mapToSource(self.proxy.index(r, 0)).row()] for r in range(self.proxy.rowCount())]
        self.gallery.rebuild(
            visible,
            self.classes,
            self.crop,
            self.model.rank,
            self._selected,
        )

    def update_progress(self) -> None:
        total = len(self.model.cells)
        done = sum(1 for c in self.model.cells if c.review.reviewed)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done} of {total} reviewed" if total else "no white cell to review")

    # -- selection ----------------------------------------------------------

    def visible_order(self) -> list[int]:
        """Cell ids in the table's current order and filter."""
        ids = []
        for row in range(self.proxy.rowCount()):
            ids.append(int(self.proxy.index(row, 0).data(CELL_ID_ROLE)))
        return ids

    def select_cell(self, cell_id: int | None) -> None:
        """Show a cell as selected without emitting :attr:`cell_selected`."""
        self._selected = cell_id
        self.table.selectionModel().blockSignals(True)
        row = self.model.row_of(cell_id) if cell_id is not None else None
        if row is None:
            self.table.clearSelection()
        else:
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            if index.isValid():
                self.table.selectionModel().setCurrentIndex(
                    index,
                    QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
                )
                self.table.scrollTo(index)
            else:
                self.table.clearSelection()
        self.table.selectionModel().blockSignals(False)
        self.table.viewport().update()
        self.gallery.select_cell(cell_id)
        self.show_detail(cell_id)

    def _table_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            cell_id = int(current.data(CELL_ID_ROLE))
            self._selected = cell_id
            self.gallery.select_cell(cell_id)
            self.show_detail(cell_id)
            self.cell_selected.emit(cell_id)

    def _gallery_current(self, cell_id: int) -> None:
        self._selected = cell_id
        self.select_cell(cell_id)
        self.cell_selected.emit(cell_id)

    # -- filters ------------------------------------------------------------

    def _class_filter_changed(self, _index: int) -> None:
        self.proxy.class_name = self.class_filter.currentData()
        self._refilter()

    def _flags_changed(self) -> None:
        self.proxy.flagged_only = self.flagged_box.isChecked()
        self.proxy.unreviewed_only = self.unreviewed_box.isChecked()
        self._refilter()

    def _text_changed(self, text: str) -> None:
        self.proxy.set_text(text)
        self._refilter()

    def _refilter(self) -> None:
        self.proxy.refilter()
        self.proxy.sort(self.proxy.sortColumn(), self.proxy.sortOrder())
        self._gallery_stale = True
        self._rebuild_gallery_if_visible()
        self.select_cell(self._selected)


def legend_html(classes: Sequence[str]) -> str:
    """The on-screen list of review keys, from the keymap (:mod:`leukview.core.keymap`).

    Each class is its key, its colour and its abbreviation (the one on the
    labels, markers and gallery headers: never colour alone); the full names
    are in :func:`legend_tooltip` and the shortcuts help.
    """
    cap = (
        "<span style='background:#e8e8e8;color:#111;border:1px solid #999;"
        "font-family:monospace;font-weight:bold'>&nbsp;{}&nbsp;</span>"
    )
    parts = []
    for key, name in class_keys(classes):
        colour = class_colour(name).name()
        label = f"<span style='color:{colour}'>■</span>&nbsp;{html.escape(abbreviation(name))}"
        parts.append((cap.format(key) + "&nbsp;" if key else "") + label)
    parts_actions = [cap.format(key) + "&nbsp;" + word for key, word in legend_actions()]
    return (
        "<div style='font-size:8pt'><b>Classify the selected cell:</b><br>"
        + " &nbsp; ".join(parts)
        + "<br>"
        + " &nbsp; ".join(parts_actions)
        + "</div>"
    )


def legend_tooltip(classes: Sequence[str]) -> str:
    """Key, abbreviation and full name of every class (the legend's tooltip)."""
    rows = "".join(
        f"<tr><td><b>{html.escape(key or '')}</b></td><td>{html.escape(abbreviation(name))}</td>"
        f"<td>{html.escape(display_name(name))}</td></tr>"
        for key, name in class_keys(classes)
    )
    return f"<table cellspacing='0' cellpadding='1'>{rows}</table>"
