"""Undo and redo of review decisions, without Qt (the GUI's Ctrl+Z calls :meth:`UndoStack.undo`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..calls import display_name
from ..cells import ReviewState
from ..events import Event
from ..session import AuditAction, Session

__all__ = ["Command", "ReviewCommand", "UndoStack"]


class Command(Protocol):
    """An undoable change: :meth:`redo` does it (the first time too), :meth:`undo` takes it back."""

    @property
    def text(self) -> str: ...

    def redo(self) -> None: ...

    def undo(self) -> None: ...


class UndoStack:
    """Commands done, in order, and where the reviewer stands among them (as QUndoStack).

    Pushing a command does it and drops the commands that had been undone.
    :attr:`changed` is emitted after every push, undo, redo and clear.
    """

    def __init__(self) -> None:
        self._commands: list[Command] = []
        self._index = 0
        self.changed = Event("undo_changed")

    def push(self, command: Command) -> None:
        command.redo()
        del self._commands[self._index :]
        self._commands.append(command)
        self._index = len(self._commands)
        self.changed.emit()

    def undo(self) -> bool:
        """Take back the last command done; False when there is none."""
        if not self.can_undo:
            return False
        self._index -= 1
        self._commands[self._index].undo()
        self.changed.emit()
        return True

    def redo(self) -> bool:
        """Do again the last command undone; False when there is none."""
        if not self.can_redo:
            return False
        self._commands[self._index].redo()
        self._index += 1
        self.changed.emit()
        return True

    def clear(self) -> None:
        if not self._commands:
            return
        self._commands.clear()
        self._index = 0
        self.changed.emit()

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands)

    @property
    def undo_text(self) -> str:
        return self._commands[self._index - 1].text if self.can_undo else ""

    @property
    def redo_text(self) -> str:
        return self._commands[self._index].text if self.can_redo else ""

    @property
    def index(self) -> int:
        """How many commands are done (the rest are undone)."""
        return self._index

    def __len__(self) -> int:
        return len(self._commands)


class ReviewCommand:
    """Set (or clear) the reviewer's label of one cell.

    The first :meth:`redo` logs ``action`` (reclassify, confirm, clear); later
    redos and undos log ``redo`` and ``undo``, so the audit log keeps every step.

    Parameters
    ----------
    session : Session
    cell_id : int
    label : str or None
        None clears the review.
    action : AuditAction
    changed : callable(cell_id)
        Told after every do and undo (the document emits ``cell_changed``).
    who : str, optional
        The reviewer the audit log names (the system user when None).
    """

    def __init__(
        self,
        session: Session,
        cell_id: int,
        label: str | None,
        action: AuditAction,
        changed: Callable[[int], None],
        who: str | None = None,
    ) -> None:
        self.session = session
        self.who = who
        self.cell_id = cell_id
        self.label = label
        self.action = AuditAction(action)
        self.changed = changed
        self.before: ReviewState | None = None
        self.after: ReviewState | None = None
        verb = {AuditAction.CONFIRM: "Accept", AuditAction.CLEAR: "Clear review of"}.get(self.action, "Classify")
        target = "" if label is None or self.action is AuditAction.CLEAR else f" as {display_name(label)}"
        self.text = f"{verb} cell {cell_id}{target}"

    def redo(self) -> None:
        if self.after is None:
            self.before, _ = self.session.set_review(self.cell_id, self.label, action=self.action, who=self.who)
            review = self.session.cell(self.cell_id).review
            self.after = ReviewState(review.label, review.reviewer, review.time)
        else:
            self.session.restore_review(self.cell_id, self.after, action=AuditAction.REDO, who=self.who)
        self.changed(self.cell_id)

    def undo(self) -> None:
        if self.before is not None:
            self.session.restore_review(self.cell_id, self.before, action=AuditAction.UNDO, who=self.who)
            self.changed(self.cell_id)
