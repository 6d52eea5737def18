"""The differential count panel: counts and % per class, blast %, progress to the target."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from leukview.core.analysis import ModelRun
from leukview.core.calls import (
    NON_LEUKOCYTE,
    Differential,
    differential_count,
    display_name,
    flag_models,
)
from leukview.core.keymap import class_keys

from .cellinfo import class_colour

TARGETS = (100, 200)


class DifferentialPanel(QWidget):
    """Counts per class of the current field, reviewer corrections included."""

    target_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.blast = QLabel("Blasts: —")
        font = QFont()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        self.blast.setFont(font)
        self.blast.setObjectName("blastLabel")
        self.blast_note = QLabel()
        self.blast_note.setWordWrap(True)
        self.blast_note.setStyleSheet("color: palette(mid);")

        self.target = QComboBox()
        for value in TARGETS:
            self.target.addItem(f"{value}-cell differential", value)
        self.target.currentIndexChanged.connect(lambda _: self.target_changed.emit(self.target_value()))
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        target_row = QHBoxLayout()
        target_row.addWidget(self.progress, 1)
        target_row.addWidget(self.target)

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Class", "Key", "Count", "% WBC"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.note = QLabel(
            "Percentages are of classified white cells; erythroblasts, platelets and artefacts are counted "
            "but not part of that total."
        )
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid); font-size: small;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.blast)
        layout.addWidget(self.blast_note)
        layout.addLayout(target_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note)
        self.update_counts(differential_count([], []), [], [])

    def target_value(self) -> int:
        return int(self.target.currentData() or TARGETS[0])

    def set_target(self, value: int) -> None:
        index = self.target.findData(value)
        if index >= 0:
            self.target.setCurrentIndex(index)

    def update_counts(self, diff: Differential, models: Sequence[ModelRun], classes: Sequence[str]) -> None:
        """Show a differential (:func:`leukview.core.calls.differential_count`).

        Parameters
        ----------
        diff : Differential
        models : sequence of ModelRun
            The models that ran (named as the source of the blast calls).
        classes : sequence of str
            The review classes, in key order (for the Key column).
        """
        blast = diff.blast_percent
        flaggers = flag_models(models)
        if blast is None:
            self.blast.setText("Blasts: —")
            self.blast.setStyleSheet("")
            self.blast_note.setText(
                "No blast model ran and no cell is reviewed yet."
                if not flaggers and diff.total
                else "No classified white cell yet."
            )
        else:
            self.blast.setText(f"Blasts: {blast:.1f} %")
            self.blast.setStyleSheet("color: #C62828;" if blast > 0 else "")
            source = ", ".join(f"{m.name} {m.version}" for m in flaggers) or "reviewer labels only"
            self.blast_note.setText(
                f"{diff.blast_count} of {diff.leukocytes} white cells; calls by {source}, corrections included."
            )
        target = self.target_value()
        self.progress.setRange(0, target)
        self.progress.setValue(min(diff.leukocytes, target))
        self.progress.setFormat(f"{diff.leukocytes} of {target} white cells counted · {diff.reviewed} reviewed")

        rows = list(diff.classes)
        keys = {name: key for key, name in class_keys(classes)}
        self.table.setRowCount(len(rows) + 2)
        for row, name in enumerate(rows):
            count = diff.counts.get(name, 0)
            percent = diff.percent(name)
            swatch = QTableWidgetItem(display_name(name))
            swatch.setData(Qt.ItemDataRole.DecorationRole, class_colour(name))
            if name in NON_LEUKOCYTE:
                swatch.setForeground(QColor("gray"))
            key = keys.get(name)
            cells_row = [
                swatch,
                QTableWidgetItem(key or ""),
                QTableWidgetItem(str(count)),
                QTableWidgetItem("" if percent is None else f"{percent:.1f}"),
            ]
            for col, item in enumerate(cells_row):
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if count and col != 1:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, col, item)
        bold = QFont()
        bold.setBold(True)
        for offset, (title, value) in enumerate(
            (("White cells (total)", diff.leukocytes), ("Unclassified", diff.unclassified))
        ):
            row = len(rows) + offset
            items = [QTableWidgetItem(title), QTableWidgetItem(""), QTableWidgetItem(str(value)), QTableWidgetItem("")]
            for col, item in enumerate(items):
                if offset == 0:
                    item.setFont(bold)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        if diff.leukocytes:
            self.table.item(len(rows), 3).setText("100.0")
