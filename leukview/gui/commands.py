"""Undoable review actions (QUndoStack commands); every do, undo and redo is audited."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand

from leukview.core.cells import ReviewState
from leukview.core.session import Session

from .cellinfo import pretty


class ReviewCommand(QUndoCommand):
    """Set (or clear) the reviewer's label of one cell.

    The first :meth:`redo` logs ``action`` (reclassify, confirm, clear); later
    redos and undos log ``redo`` and ``undo``, so the audit log keeps every step.
    """

    def __init__(
        self,
        session: Session,
        cell_id: int,
        label: str | None,
        action: str,
        changed: Callable[[int], None],
    ) -> None:
        super().__init__()
        self.session = session
        self.cell_id = cell_id
        self.label = label
        self.action = action
        self.changed = changed
        self.before: ReviewState | None = None
        self.after: ReviewState | None = None
        verb = {"confirm": "Accept", "clear": "Clear review of"}.get(action, "Classify")
        target = "" if label is None or action == "clear" else f" as {pretty(label)}"
        self.setText(f"{verb} cell {cell_id}{target}")

    def redo(self) -> None:
        if self.after is None:
            self.before, _ = self.session.set_review(self.cell_id, self.label, action=self.action)
            cell = self.session.cell(self.cell_id)
            self.after = ReviewState(cell.review.label, cell.review.reviewer, cell.review.time)
        else:
            self.session.restore_review(self.cell_id, self.after, action="redo")
        self.changed(self.cell_id)

    def undo(self) -> None:
        if self.before is not None:
            self.session.restore_review(self.cell_id, self.before, action="undo")
            self.changed(self.cell_id)
