"""What the window says about session files: damaged, unreadable, read-only folders, unsaved changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from leukview.core.document import RestoreOutcome, RestoreStatus
from leukview.core.session import session_path
from leukview.gui.session_ui import restore_message

pytestmark = pytest.mark.gui


def test_corrupt_file_shows_error_and_app_stays_usable(qtbot, make_window, analysed, models_dir: Path, field: Path, tmp_path: Path, dialogs):
    window = make_window(models_dir)
    analysed(window, field)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(field.read_bytes()[:5000])
    text = tmp_path / "notes.tif"
    text.write_text("this is not an image")
    for bad in (truncated, text, tmp_path / "missing.png"):
        dialogs.clear()
        assert not window.open_image(bad)
        assert len(dialogs) == 1 and dialogs[0][0] == "critical"
        assert bad.name in dialogs[0][2]
        # the field shown before is still open and reviewable
        assert window.path == field and window.session is not None
    window.select_cell(window.review.visible_order()[0])
    window.review.text_filter.setFocus()  # Enter in a text field does not accept a cell
    qtbot.keyClick(window.review.text_filter, Qt.Key.Key_Return)
    assert not any(c.review.reviewed for c in window.analysis.cells)
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_Return)
    assert any(c.review.reviewed for c in window.analysis.cells)


def test_a_damaged_session_is_reported_kept_aside_and_the_image_analysed_afresh(make_window, analysed, no_models: Path, field: Path, dialogs):
    window = make_window(no_models)
    session_path(field).write_text('{"format": "leukview-session", "schema_version": 2, "analysis": {')
    analysed(window, field)
    assert dialogs and dialogs[0][0] == "warning" and "not valid JSON" in dialogs[0][2]
    assert "damaged file is kept as two-fields.png.leukview.json.damaged" in dialogs[0][2]
    assert session_path(field).with_name(session_path(field).name + ".damaged").is_file()


def test_an_unreadable_session_is_said_so_and_left_untouched(make_window, analysed, no_models: Path, field: Path, dialogs, monkeypatch):
    window = make_window(no_models)
    analysed(window, field)
    saved = window.save_session_file()
    window.close_image()
    before = saved.read_bytes()
    real = Path.read_bytes

    def denied(self: Path) -> bytes:  # permissions cannot stop root: the read fails instead
        if self == saved:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    dialogs.clear()
    analysed(window, field)
    assert dialogs[0][0] == "warning" and "cannot be opened" in dialogs[0][2] and "untouched" in dialogs[0][2]
    assert window.save_session_file() != saved
    monkeypatch.undo()
    assert saved.read_bytes() == before and not saved.with_name(saved.name + ".damaged").exists()


@pytest.mark.skipif(os.name != "posix", reason="folder permissions")
def test_a_read_only_image_folder_saves_to_the_fallback_folder(make_window, analysed, no_models: Path, field: Path, tmp_path: Path, dialogs):
    folder = field.parent
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user writes into read-only folders (root)")
        window = make_window(no_models)
        analysed(window, field)
        saved = window.save_session_file()
        assert saved is not None and saved.parent == tmp_path / "fallback-sessions"
        assert "read-only" in window.statusBar().currentMessage()
    finally:
        folder.chmod(0o755)


def test_unsaved_changes_are_asked_about_when_autosave_is_off(make_window, analysed, no_models: Path, field: Path, sample: Path, monkeypatch, dialogs):
    window = make_window(no_models)
    window.settings.autosave = False
    window.document.autosave_enabled = False
    analysed(window, field)
    window.classify("neutrophil", cell_id=window.review.visible_order()[0])
    assert window.dirty
    answers = iter([QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Discard])
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: next(answers))
    assert not window.open_image(sample)  # cancelled: the review stays open, unsaved
    assert window.path == field and window.dirty
    assert window.open_image(sample)  # discarded on purpose
    assert not session_path(field).exists()


def test_every_outcome_that_needs_saying_has_a_message():
    path = Path("/data/x.jpg.leukview.json")
    for status in RestoreStatus:
        message = restore_message(RestoreOutcome(status, path, "because"))
        if status in (RestoreStatus.NO_SESSION, RestoreStatus.RESTORED):
            assert message is None
        else:
            kind, text = message
            assert kind == ("note" if status is RestoreStatus.RESTORED_WITH_NOTE else "warning")
            assert "because" in text
