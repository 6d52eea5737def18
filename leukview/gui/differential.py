"""The differential count panel: counts and % per class in clinical order, blast %, progress to the target.

Above them, a banner when the image's (or the case's) white cells are unlike the
training data (:meth:`DifferentialPanel.set_domain`, from the recorded
:class:`~leukview.core.domain.DomainCheck`: :func:`document_domain`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from leukview.core.analysis import ModelRun
from leukview.core.calls import (
    Differential,
    DifferentialRow,
    blast_callers,
    differential_count,
    differential_rows,
)
from leukview.core.domain import DomainCheck
from leukview.core.keymap import class_keys

from .cellinfo import class_colour

if TYPE_CHECKING:
    from leukview.core.document import ReviewDocument

TARGETS = (100, 200)
CLASS_ROLE = Qt.ItemDataRole.UserRole + 3


class DifferentialPanel(QWidget):
    """Counts per class of the current field, reviewer corrections included."""

    target_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.domain_warning = QLabel()
        self.domain_warning.setObjectName("domainWarning")
        self.domain_warning.setWordWrap(True)
        self.domain_warning.setTextFormat(Qt.TextFormat.RichText)
        self.domain_warning.setStyleSheet(
            "QLabel#domainWarning { background: #FFF3E0; color: #BF360C; border: 2px solid #E65100;"
            " border-radius: 3px; padding: 4px; }"
        )
        # its whole text, always: the table below gives way when the dock is short
        self.domain_warning.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.domain_warning.setVisible(False)
        self.domain: DomainCheck | None = None
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
        self.table.setMinimumHeight(90)  # it scrolls: the review panel above keeps its rows of cells
        self.show_all = QCheckBox("All classes")
        self.show_all.setToolTip("List every class of the class list, also those without a cell")
        self.show_all.toggled.connect(self._show_all_toggled)
        self._last: tuple[Differential, list[ModelRun], list[str]] | None = None
        self.note = QLabel("% of classified white cells; the classes counted apart are not in that total.")
        self.note.setToolTip(
            "The class list (Settings) says which classes count in the white-cell total; NRBC, smudge cells, "
            "platelets and artefacts are counted apart by default, NRBC also per 100 white cells."
        )
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid); font-size: small;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.domain_warning)
        layout.addWidget(self.blast)
        layout.addWidget(self.blast_note)
        layout.addLayout(target_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.show_all)
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

        Rows come in the class list's clinical order (:func:`leukview.core.calls.differential_rows`):
        the classes in the white-cell total with count and percent, the total, then
        the classes counted apart (NRBC also per 100 white cells), the unclassified.
        Classes without a cell are listed only when :attr:`show_all` is ticked.

        Parameters
        ----------
        diff : Differential
        models : sequence of ModelRun
            The models that ran (named as the source of the blast calls).
        classes : sequence of str
            The review classes, in key order (for the Key column).
        """
        self._last = (diff, list(models), list(classes))
        blast = diff.blast_percent
        flaggers = blast_callers(models)
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
            source = ", ".join(f"{m.name} {m.version}" for m in flaggers) or "the class calls"
            self.blast_note.setText(
                f"{diff.blast_count} of {diff.leukocytes} white cells; blast calls by {source}, corrections included."
            )
        target = self.target_value()
        self.progress.setRange(0, target)
        self.progress.setValue(min(diff.leukocytes, target))
        self.progress.setFormat(f"{progress_text(diff.leukocytes, target)} · {diff.reviewed} reviewed")

        counted, apart = differential_rows(diff)
        everything = self.show_all.isChecked()
        counted = [r for r in counted if everything or r.count]
        apart = [r for r in apart if everything or r.count]
        keys = {name: key for key, name in class_keys(classes)}
        bold = QFont()
        bold.setBold(True)
        italic = QFont()
        italic.setItalic(True)
        rows: list[tuple[list[str], DifferentialRow | None, QFont | None]] = []
        for row in counted:
            percent = "" if row.percent is None else f"{row.percent:.1f}"
            rows.append(([row.display, keys.get(row.name) or "", str(row.count), percent], row, None))
        rows.append((["White cells (total)", "", str(diff.leukocytes), "100.0" if diff.leukocytes else ""], None, bold))
        if apart:
            rows.append((["Counted apart", "", "", ""], None, italic))
        for row in apart:
            extra = "" if row.per_100_wbc is None else f"{row.per_100_wbc:.1f}/100"
            rows.append(([row.display, keys.get(row.name) or "", str(row.count), extra], row, None))
        if diff.atypical:
            rows.append((["Unclassified (review)", "", str(diff.atypical), ""], None, None))
        rows.append((["Unclassified", "", str(diff.unclassified), ""], None, None))
        self.table.setRowCount(len(rows))
        for index, (texts, shown, font) in enumerate(rows):
            for col, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if font is not None:
                    item.setFont(font)
                if shown is not None:
                    if col == 0:
                        item.setData(Qt.ItemDataRole.DecorationRole, class_colour(shown.name))
                        item.setToolTip(f"{shown.display} ({shown.abbreviation})")
                        item.setData(CLASS_ROLE, shown.name)
                    if not shown.counted:
                        item.setForeground(QColor("gray"))
                    if shown.count and col != 1:
                        strong = item.font()
                        strong.setBold(True)
                        item.setFont(strong)
                self.table.setItem(index, col, item)

    def set_domain(self, check: DomainCheck | None, scope: str = "image") -> None:
        """Show the banner when ``check`` warns (hide it otherwise).

        Parameters
        ----------
        check : DomainCheck or None
            The recorded check of what the counts are of (None: no open-set model ran).
        scope : str
            What it is of, for the text: ``'image'`` or ``'case'``.
        """
        self.domain = check
        if check is None or check.warning is None:
            self.domain_warning.clear()
            self.domain_warning.setToolTip("")
            self.domain_warning.setVisible(False)
            return
        self.domain_warning.setText(
            f"<b>⚠ {html.escape(check.warning)}</b><br>This {html.escape(scope)}: "
            f"{html.escape(check.details())}. Review every cell."
        )
        self.domain_warning.setToolTip(
            "The models' open-set score flags cells unlike those they were trained on; "
            "many more are flagged here than on the images they were validated on."
        )
        self.domain_warning.setVisible(True)

    def row_of(self, name: str) -> int | None:
        """The table row of a class (None when it is not listed)."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(CLASS_ROLE) == name:
                return row
        return None

    def _show_all_toggled(self, _on: bool) -> None:
        if self._last is not None:
            self.update_counts(*self._last)


def progress_text(counted: int, target: int) -> str:
    """``42 of 100 white cells counted``, or ``106 white cells counted (target 100 reached)``."""
    if counted >= target:
        return f"{counted} white cells counted (target {target} reached)"
    return f"{counted} of {target} white cells counted"


def document_domain(document: ReviewDocument) -> tuple[DomainCheck | None, str]:
    """The check of what the document's differential counts, and ``'case'`` or ``'image'``.

    A case's pooled check (:meth:`leukview.core.case.Case.domain`) while a case
    is open, else the open image's ``Analysis.domain`` (None when nothing is
    analysed or no open-set model ran).
    """
    case = getattr(document, "case", None)
    if case is not None:
        return case.domain(), "case"
    analysis = document.analysis
    return (None if analysis is None else analysis.domain), "image"
