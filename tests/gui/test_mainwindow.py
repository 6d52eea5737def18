"""The main window end to end, offscreen: open, analyse, reclassify by key, undo, redo, save, reopen."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from leukview.core.session import AuditAction, current_user, session_path

pytestmark = pytest.mark.gui


def key(qtbot, window, k: Qt.Key, modifier=Qt.KeyboardModifier.NoModifier) -> None:  # noqa: ANN001
    qtbot.keyClick(window.view, k, modifier)


def test_open_analyse_reclassify_undo_save_reopen(qtbot, make_window, analysed, models_dir: Path, field: Path, dialogs):
    window = make_window(models_dir)
    analysed(window, field)
    analysis = window.analysis
    assert analysis is not None and (analysis.width, analysis.height) == (1280, 480)
    wbcs = [c for c in analysis.cells if c.kind == "wbc"]
    assert len(wbcs) >= 2 and sum(c.kind == "rbc" for c in analysis.cells) >= 5
    assert {m.name for m in analysis.models} == {"wbc-type", "all-blast"}
    assert all(set(c.predictions) == {"wbc-type", "all-blast"} for c in wbcs)
    # the status bar names the models, their versions and the execution provider
    assert "wbc-type 0.0.1" in window.models_label.text() and "CPU" in window.models_label.text()
    # one review row per white cell; an overlay item per cell; a cell is selected, flagged first
    assert window.review.model.rowCount() == len(wbcs)
    assert all(window.overlay.item(c.id) is not None for c in analysis.cells if len(c.contour) >= 3)
    assert window.selected == window.review.visible_order()[0]
    assert window.review.progress.text().startswith("0 of")

    window.view.setFocus()
    first = window.selected
    lymph_key = str(window.classes().index("lymphocyte") + 1)
    key(qtbot, window, getattr(Qt.Key, f"Key_{lymph_key}"))
    cell = window.session.cell(first)
    assert cell.review.label == "lymphocyte" and cell.review.reviewer == current_user()
    entry = window.session.audit[-1]
    assert (entry.action, entry.cell, entry.after) == (AuditAction.RECLASSIFY, first, "lymphocyte")
    assert entry.model in ("wbc-type", "all-blast") and entry.model_version == "0.0.1"
    assert entry.models == {"wbc-type": "0.0.1", "all-blast": "0.0.1"}
    assert window.differential.table.item(window.differential.row_of("lymphocyte"), 2).text() == "1"
    assert window.review.progress.text().startswith("1 of")
    assert window.selected != first  # went on to the next cell
    assert window.audit_list.item(window.audit_list.count() - 1).text().endswith(entry.describe())
    assert window.actions["undo"].isEnabled() and "lymphocyte" in window.actions["undo"].text()

    # Ctrl+Z and Ctrl+Shift+Z are the document's undo and redo
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.session.cell(first).review.label is None
    assert window.session.audit[-1].action is AuditAction.UNDO
    row = window.differential.row_of("lymphocyte")  # none left: listed only with "All classes"
    assert row is None or window.differential.table.item(row, 2).text() == "0"
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.session.cell(first).review.label == "lymphocyte"
    assert window.session.audit[-1].action is AuditAction.REDO
    assert not window.actions["redo"].isEnabled()

    saved = window.save_session_file()
    assert saved == session_path(field) and saved.is_file() and not window.dirty
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert document["schema_version"] == 2
    assert [e["action"] for e in document["audit"]][-3:] == ["reclassify", "undo", "redo"]

    # reopening restores the review without analysing again
    window.close_image()
    assert window.session is None and window.review.model.rowCount() == 0
    assert window.open_image(field)
    assert not window.runner.busy and window.session is not None
    restored = window.session.cell(first)
    assert restored.review.label == "lymphocyte"
    assert [e.action for e in window.session.audit][-3:] == ["reclassify", "undo", "redo"]
    assert len(window.session.analysis.cells) == len(analysis.cells)
    assert any(p.cam is not None for p in restored.predictions.values())  # the maps come back too
    assert "Session restored" in window.statusBar().currentMessage()
    assert not [d for d in dialogs if d[0] == "critical"]


def test_drop_recent_and_session_file_open_the_image(qtbot, make_window, no_models: Path, field: Path, sample: Path, dialogs):
    window = make_window(no_models)
    window.settings.analyse_on_open = False
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(field))])
    drop = QDropEvent(
        QPointF(20, 20), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.view.dropEvent(drop)
    assert window.path == field and window.session is None  # opened, not analysed (setting off)
    assert window.open_image(sample)
    assert window.settings.recent[:2] == [str(sample.resolve()), str(field.resolve())]
    # a session file names its image
    window.analyse()
    qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=60000)
    saved = window.save_session_file()
    assert window.open_image(field)
    assert window.open_image(saved)
    assert window.path == sample and window.session is not None and not window.runner.busy


def test_the_window_holds_no_review_state_of_its_own(make_window, analysed, models_dir: Path, field: Path, dialogs):
    """What the window shows is the document's: replacing the document's threshold re-flags every view."""
    window = make_window(models_dir)
    analysed(window, field)
    document = window.document
    assert window.session is document.session and window.analysis is document.analysis
    cell = window.review.model.cells[0]
    lowest = min(p.confidence for p in cell.predictions.values())
    document.set_threshold(min(1.0, lowest + 0.01))
    row = window.review.model.row_of(cell.id)
    assert window.review.model.index(row, 0).data() == "⚑ check"
    assert "low confidence" in window.overlay.item(cell.id).toolTip()
    assert document.session.audit[-1].action is AuditAction.SET_THRESHOLD
    document.set_threshold(max(0.0, lowest - 0.01))
    if not document.call(cell).needs_review:  # a blast call stays flagged whatever the threshold
        assert window.review.model.index(row, 0).data() == ""
        assert "low confidence" not in window.overlay.item(cell.id).toolTip()
    assert window.dirty and window.windowTitle().startswith("two-fields.png[*]")


def test_a_session_beside_the_image_of_another_size_is_kept_and_the_review_goes_elsewhere(
    make_window, analysed, no_models: Path, sample: Path, field: Path, tmp_path: Path, dialogs
):
    window = make_window(no_models)
    analysed(window, field)
    saved = window.save_session_file()
    window.close_image()
    # the same name now holds a 640x480 image: the 1280x480 review does not fit it
    shutil.copy(sample, field)
    before = saved.read_bytes()
    analysed(window, field)
    assert dialogs and dialogs[-1][0] == "warning" and "does not belong to this image" in dialogs[-1][2]
    kept = window.save_session_file()
    assert kept is not None and kept.parent == tmp_path / "fallback-sessions"
    assert saved.read_bytes() == before
