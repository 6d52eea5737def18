"""What the window says about session files: restore outcomes, saves, unsaved changes.

The decisions are the document's (:meth:`ReviewDocument.restore`,
:meth:`~ReviewDocument.save`); this mixin only turns their typed outcomes
into messages and asks the user where a person must choose.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMessageBox

from leukview.core.document import (
    RestoreOutcome,
    RestoreStatus,
    SaveOutcome,
    default_sessions_folder,
)

if TYPE_CHECKING:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QStatusBar

    from leukview.core.document import ReviewDocument

    from .settings import AppSettings

__all__ = ["SessionUi", "restore_message", "sessions_folder"]


def sessions_folder() -> Path:
    """Where sessions go when an image's folder is read-only (one rule, shared with the CLI)."""
    return default_sessions_folder()


def restore_message(outcome: RestoreOutcome) -> tuple[str, str] | None:
    """(kind, text) telling the user about one restore outcome; None when there is nothing to say.

    ``kind`` is ``"note"`` (shown in the banner: the review is there) or
    ``"warning"`` (a dialog: the saved review is not).
    """
    name = outcome.path.name if outcome.path is not None else "the session"
    status = outcome.status
    if status is RestoreStatus.RESTORED_WITH_NOTE:
        return "note", f"Note: {outcome.reason}; the saved review was restored anyway."
    if status is RestoreStatus.NOT_THIS_IMAGE:
        return "warning", (
            f"{name} does not belong to this image: {outcome.reason}. It is kept as it is; "
            "this image's review is saved elsewhere."
        )
    if status is RestoreStatus.DAMAGED:
        kept = (
            f"the damaged file is kept as {outcome.kept_as.name}"
            if outcome.kept_as is not None
            else "the damaged file is left where it is and not overwritten"
        )
        return "warning", (
            f"The saved session {name} could not be read: {outcome.reason}\n\n"
            f"The image is analysed afresh; {kept}."
        )
    if status is RestoreStatus.UNREADABLE:
        return "warning", (
            f"The saved session {name} cannot be opened: {outcome.reason}\n\n"
            "It is left untouched (check its permissions) and not overwritten; this review is saved elsewhere."
        )
    if status is RestoreStatus.NEWER_VERSION:
        return "warning", (
            f"{name} was saved by a newer LeukView: {outcome.reason}\n\n"
            "It is left untouched for that version; this review is saved elsewhere."
        )
    return None


class SessionUi:
    """Session messages and prompts of the main window (a mixin of :class:`MainWindow`)."""

    document: ReviewDocument
    settings: AppSettings
    interactive: bool
    read_only: bool
    notices: list[str]
    _autosave_timer: QTimer

    if TYPE_CHECKING:  # provided by MainWindow (stubs here would hide QMainWindow's)

        def statusBar(self) -> QStatusBar: ...  # noqa: N802 - Qt's name

        def warn(self, title: str, text: str) -> None: ...

        def error(self, title: str, text: str) -> None: ...

    def present_restore(self, outcome: RestoreOutcome) -> None:
        """Tell the user what became of the saved review of the image just opened."""
        for item in outcome.all():
            message = restore_message(item)
            if message is None:
                continue
            kind, text = message
            if kind == "note":
                self.notices.append(text)
            else:
                self.warn("Session not restored" if not outcome.restored else "Another session file", text)
        if outcome.restored and outcome.path is not None:
            session = self.document.session
            assert session is not None
            reviewed = sum(1 for c in session.analysis.cells if c.review.reviewed)
            self.statusBar().showMessage(
                f"Session restored from {outcome.path.name}: {reviewed} reviewed cell(s), "
                f"{len(session.audit)} audit entries",
                8000,
            )

    def present_save(self, outcome: SaveOutcome) -> None:
        if outcome.path is None:
            self.error("Session not saved", "\n".join(outcome.errors) or "nothing to save")
        elif outcome.fell_back:
            self.statusBar().showMessage(f"Image folder is read-only: session saved to {outcome.path}", 8000)
        else:
            self.statusBar().showMessage(f"Session saved: {outcome.path.name}", 3000)

    def _schedule_autosave(self) -> None:
        if self.document.autosave_enabled and not self.read_only:
            self._autosave_timer.start()  # restarted at every change: saved once the reviewer pauses

    def autosave(self, force: bool = False) -> None:
        self._autosave_timer.stop()
        outcome = self.document.autosave(force)
        if outcome is not None:
            self.present_save(outcome)

    def save_now(self) -> None:
        if self.read_only:
            self.statusBar().showMessage("Read-only mode: the session is not saved.", 4000)
            return
        self.save_session_file()

    def save_session_file(self) -> Path | None:
        """Save the session (beside the image, or in the user's folder when that is read-only)."""
        if self.document.session is None and not getattr(self.document, "is_case", False):
            return None  # a case is saved whole, whether or not the field shown is analysed
        self._autosave_timer.stop()
        outcome = self.document.save()
        self.present_save(outcome)
        return outcome.path

    def maybe_save(self) -> bool:
        """Before the review is left: save it (autosave) or ask. False when the user cancels."""
        if not self.document.dirty or self.read_only:
            return True
        if self.document.autosave_enabled or not self.interactive:
            if self.save_session_file() is not None or not self.interactive:
                return True
            return (
                QMessageBox.question(
                    self,  # type: ignore[arg-type]
                    "Review not saved",
                    "The review could not be saved. Leave it anyway?",
                )
                == QMessageBox.StandardButton.Yes
            )
        answer = QMessageBox.question(
            self,  # type: ignore[arg-type]
            "Save the review?",
            "The review has unsaved changes. Save them beside the image?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Cancel:
            return False
        if answer == QMessageBox.StandardButton.Save:
            return self.save_session_file() is not None
        self.document.discard_changes()
        return True
