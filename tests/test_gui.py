"""The viewer end to end, offscreen, on real BCCD fields.

Open, analyse (in the worker thread), reclassify by key, undo and redo, save
and reopen the session, export CSV, PNG and PDF, survive a corrupt file,
review with the keyboard only, and the ``--screenshot`` mode.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from leukview.core.session import current_user, load_session, session_path  # noqa: E402
from leukview.gui.mainwindow import MainWindow  # noqa: E402
from leukview.gui.settings import AppSettings  # noqa: E402

pytestmark = pytest.mark.gui

WBC_CLASSES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
ANALYSIS_TIMEOUT_MS = 60000


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny working models shaped like the shipped ones (type, and blast with a positive class)."""
    onnx_factory = pytest.importorskip("onnx_factory")
    root = tmp_path_factory.mktemp("models")
    onnx_factory.make_tiny_classifier(root / "wbc-type", WBC_CLASSES, input_size=32, seed=3)
    onnx_factory.make_tiny_classifier(root / "all-blast", ["blast", "normal"], input_size=32, seed=5, positive_class="blast")
    return root


@pytest.fixture()
def field(data_dir: Path, tmp_path: Path) -> Path:
    """A real BCCD field with two white cells, copied: sessions are written beside it."""
    path = tmp_path / "BloodImage_00010.jpg"
    shutil.copy(data_dir / "bccd" / "JPEGImages" / "BloodImage_00010.jpg", path)
    return path


@pytest.fixture()
def dialogs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Message boxes are recorded instead of blocking the test."""
    seen: list[tuple[str, str, str]] = []

    def recorder(kind: str, answer: QMessageBox.StandardButton):
        def show(parent, title, text, *args, **kwargs):  # noqa: ANN001
            seen.append((kind, title, text))
            return answer

        return show

    monkeypatch.setattr(QMessageBox, "critical", recorder("critical", QMessageBox.StandardButton.Ok))
    monkeypatch.setattr(QMessageBox, "warning", recorder("warning", QMessageBox.StandardButton.Ok))
    monkeypatch.setattr(QMessageBox, "question", recorder("question", QMessageBox.StandardButton.Yes))
    return seen


def make_window(qtbot, tmp_path: Path, models_dir: Path | None) -> MainWindow:  # noqa: ANN001
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(AppSettings(store), models_dir)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    window.activateWindow()
    qtbot.waitExposed(window)
    return window


def open_and_analyse(qtbot, window: MainWindow, path: Path) -> None:  # noqa: ANN001
    assert window.open_image(path)
    qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=ANALYSIS_TIMEOUT_MS)


def key(qtbot, window: MainWindow, k: Qt.Key, modifier=Qt.KeyboardModifier.NoModifier) -> None:  # noqa: ANN001
    qtbot.keyClick(window.view, k, modifier)


def test_open_analyse_reclassify_undo_save_reopen(qtbot, tmp_path: Path, models_dir: Path, field: Path, dialogs):
    window = make_window(qtbot, tmp_path, models_dir)
    open_and_analyse(qtbot, window, field)
    analysis = window.analysis
    assert analysis is not None and (analysis.width, analysis.height) == (640, 480)
    wbcs = [c for c in analysis.cells if c.kind == "wbc"]
    assert wbcs and sum(c.kind == "rbc" for c in analysis.cells) >= 5
    assert {m.name for m in analysis.models} == {"wbc-type", "all-blast"}
    assert all(set(c.predictions) == {"wbc-type", "all-blast"} for c in wbcs)
    # the status bar names the models, their versions and the execution provider
    assert "wbc-type 0.0.1" in window.models_label.text() and "CPU" in window.models_label.text()
    # one review row per white cell; an overlay item per cell; a cell is selected, low confidence first
    assert window.review.model.rowCount() == len(wbcs)
    assert all(window.overlay.item(c.id) is not None for c in analysis.cells if len(c.contour) >= 3)
    assert window.selected == window.review.visible_order()[0]
    assert window.review.progress.text().startswith("0 of")

    view = window.view
    view.setFocus()
    first = window.selected
    lymph_key = str(window.classes().index("lymphocyte") + 1)
    key(qtbot, window, getattr(Qt.Key, f"Key_{lymph_key}"))
    cell = window.session.cell(first)
    assert cell.review.label == "lymphocyte" and cell.review.reviewer == current_user()
    entry = window.session.audit[-1]
    assert (entry.action, entry.cell, entry.after) == ("reclassify", first, "lymphocyte")
    assert entry.model in ("wbc-type", "all-blast") and entry.model_version == "0.0.1"
    assert window.differential.table.item(window.classes().index("lymphocyte"), 2).text() == "1"
    assert window.review.progress.text().startswith("1 of")
    if len(wbcs) > 1:
        assert window.selected != first  # went on to the next cell

    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.session.cell(first).review.label is None
    assert window.session.audit[-1].action == "undo"
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.session.cell(first).review.label == "lymphocyte"
    assert window.session.audit[-1].action == "redo"

    saved = window.save_session_file()
    assert saved == session_path(field) and saved.is_file()
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert document["schema_version"] == 1
    assert [e["action"] for e in document["audit"]][-3:] == ["reclassify", "undo", "redo"]

    # reopening restores the review without analysing again
    window.close_image()
    assert window.session is None
    assert window.open_image(field)
    assert not window.runner.busy and window.session is not None
    restored = window.session.cell(first)
    assert restored.review.label == "lymphocyte"
    assert [e.action for e in window.session.audit][-3:] == ["reclassify", "undo", "redo"]
    assert len(window.session.analysis.cells) == len(analysis.cells)
    # class-activation maps come back with the session
    assert any(p.cam is not None for p in restored.predictions.values())
    assert not [d for d in dialogs if d[0] == "critical"]


def test_exports_csv_png_pdf(qtbot, tmp_path: Path, models_dir: Path, field: Path, dialogs):
    window = make_window(qtbot, tmp_path, models_dir)
    open_and_analyse(qtbot, window, field)
    cells = window.analysis.cells
    csv_path = window.export_csv(tmp_path / "out" / "cells.csv")
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert len(rows) == len(cells)
    assert [int(r["id"]) for r in rows] == [c.id for c in cells]
    assert {r["kind"] for r in rows} >= {"wbc", "rbc"}

    png = window.export_png(tmp_path / "out" / "snapshot.png")
    image = QImage(str(png))
    assert (image.width(), image.height()) == (640, 480)

    window.classify("neutrophil", cell_id=cells[0].id)
    pdf = window.export_pdf(tmp_path / "out" / "report.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000  # the snapshot is embedded
    assert [e.action for e in window.session.audit][-1] == "export PDF report"
    assert not dialogs


def test_corrupt_file_shows_error_and_app_stays_usable(qtbot, tmp_path: Path, models_dir: Path, field: Path, dialogs):
    window = make_window(qtbot, tmp_path, models_dir)
    open_and_analyse(qtbot, window, field)
    truncated = tmp_path / "truncated.jpg"
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
    key(qtbot, window, Qt.Key.Key_Return)
    assert any(c.review.reviewed for c in window.analysis.cells)
    # a damaged session is reported, kept aside, and the image analysed afresh
    window.close_image()
    session_path(field).write_text('{"format": "leukview-session", "schema_version": 1, "analysis": {')
    dialogs.clear()
    open_and_analyse(qtbot, window, field)
    assert dialogs and dialogs[0][0] == "warning" and "not valid JSON" in dialogs[0][2]
    assert session_path(field).with_name(session_path(field).name + ".damaged").is_file()


def test_keyboard_only_review_without_models(qtbot, tmp_path: Path, field: Path, dialogs):
    empty = tmp_path / "no-models"
    empty.mkdir()
    window = make_window(qtbot, tmp_path, empty)
    open_and_analyse(qtbot, window, field)
    assert window.analysis.models == []
    assert window.banner.isVisible() and "No classification model" in window.banner.text()
    assert "No model" in window.models_label.text()
    total = window.review.model.rowCount()
    assert total >= 1
    # Tab-free, mouse-free: the table has focus, N walks, digits classify, Enter accepts
    window.review.tabs.setCurrentWidget(window.review.table)
    window.review.table.setFocus()
    neutrophil = str(window.classes().index("neutrophil") + 1)
    for _ in range(total):
        qtbot.keyClick(window.review.table, getattr(Qt.Key, f"Key_{neutrophil}"))
    assert window.review.progress.text() == f"{total} of {total} reviewed"
    counts = window.differential.table
    assert counts.item(window.classes().index("neutrophil"), 2).text() == str(total)
    # Backspace clears the selected cell's review; Enter then accepts nothing (no model call)
    qtbot.keyClick(window.review.table, Qt.Key.Key_Backspace)
    assert window.review.progress.text() == f"{total - 1} of {total} reviewed"
    # the filter line edit keeps its digits: typing there must not classify
    window.review.text_filter.setFocus()
    qtbot.keyClicks(window.review.text_filter, "area>1")
    assert window.review.text_filter.text() == "area>1"
    assert window.review.progress.text() == f"{total - 1} of {total} reviewed"


def test_screenshot_mode_writes_a_large_png(qtbot, tmp_path: Path, models_dir: Path, field: Path):
    from leukview.gui.app import main

    out = tmp_path / "shot.png"
    assert main(["--screenshot", str(out), str(field), "--models-dir", str(models_dir)]) == 0
    image = QImage(str(out))
    assert image.width() >= 1280 and image.height() >= 800
    assert not session_path(field).exists()  # screenshot mode writes no session
    # its throwaway settings must not be saved over os.devnull (as root that replaced the device)
    if os.name == "posix":
        import stat

        assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert main(["--screenshot", str(tmp_path / "x.png"), "--size", "640x480"]) == 2


def test_settings_persist_per_user(qtbot, tmp_path: Path, models_dir: Path):
    from leukview.gui.settings import SettingsDialog
    from leukview.gui.worker import installed_models

    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings = AppSettings(store)
    dialog = SettingsDialog(settings, installed_models(models_dir))
    qtbot.addWidget(dialog)
    # every installed model is ticked until the user chooses
    items = [dialog.model_list.item(i) for i in range(dialog.model_list.count())]
    assert [i.checkState() for i in items] == [Qt.CheckState.Checked] * 2
    dialog.threshold.setValue(0.85)
    items[0].setCheckState(Qt.CheckState.Unchecked)
    editor, _ = dialog.form.editors["nucleus_threshold_scale"]
    editor.setValue(1.2)
    changed = dialog.apply()
    assert changed == {"models": True, "threshold": True, "segmentation": True}
    again = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert again.confidence_threshold == pytest.approx(0.85)
    assert again.use_models and again.model_names == [items[1].data(Qt.ItemDataRole.UserRole)]
    assert again.segmentation["nucleus_threshold_scale"] == pytest.approx(1.2)
    # no model ticked: segmentation and manual review only
    items[1].setCheckState(Qt.CheckState.Unchecked)
    assert dialog.apply()["models"]
    again = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert not again.use_models and again.model_names == []


def test_cancel_leaves_the_window_as_it_was_and_autosave_writes_the_session(
    qtbot, tmp_path: Path, models_dir: Path, field: Path, dialogs
):
    window = make_window(qtbot, tmp_path, models_dir)
    assert window.open_image(field, analyse=False)
    assert window.session is None
    window.analyse()
    assert window.runner.busy and window.cancel_button.isVisible()
    window.cancel_analysis()
    qtbot.waitUntil(lambda: not window.runner.busy and not window.progress.isVisible(), timeout=ANALYSIS_TIMEOUT_MS)
    assert window.session is None and window.act_analyse.isEnabled()
    assert "cancelled" in window.statusBar().currentMessage()

    window._autosave_timer.setInterval(10)
    window.analyse()
    qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=ANALYSIS_TIMEOUT_MS)
    target = session_path(field)
    qtbot.waitUntil(target.is_file, timeout=5000)  # saved without asking, after the analysis
    cell_id = window.review.visible_order()[0]
    window.classify("monocyte", cell_id=cell_id)
    qtbot.waitUntil(lambda: load_session(target).cell(cell_id).review.label == "monocyte", timeout=5000)
    assert not window.dirty and not dialogs


def test_opening_another_image_during_analysis_drops_the_old_result(
    qtbot, tmp_path: Path, models_dir: Path, field: Path, data_dir: Path, dialogs
):
    other = tmp_path / "BloodImage_00214.jpg"
    shutil.copy(data_dir / "bccd" / "JPEGImages" / other.name, other)
    window = make_window(qtbot, tmp_path, models_dir)
    assert window.open_image(field)
    assert window.runner.busy
    assert window.open_image(other)  # does not wait for the first analysis
    qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=ANALYSIS_TIMEOUT_MS)
    qtbot.wait(200)  # time for a stale result to arrive, if it could
    assert window.path == other and window.analysis.image == str(other)
    assert not session_path(field).exists() or load_session(session_path(field)).analysis.image == str(field)


def test_context_menu_reclassifies_and_shows_the_keys(qtbot, tmp_path: Path, models_dir: Path, field: Path, monkeypatch):
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QMenu

    window = make_window(qtbot, tmp_path, models_dir)
    open_and_analyse(qtbot, window, field)
    cell_id = window.review.visible_order()[-1]
    shown: list[list[str]] = []

    def choose(menu: QMenu, pos: QPoint) -> None:  # stands in for the user's click
        texts = [a.text() for a in menu.actions()]
        shown.append(texts)
        next(a for a in menu.actions() if a.text().startswith("eosinophil")).trigger()

    monkeypatch.setattr(window, "exec_menu", choose)
    window.view.cell_menu.emit(cell_id, QPoint(10, 10))  # a right click on the cell
    assert window.session.cell(cell_id).review.label == "eosinophil"
    key = str(window.classes().index("eosinophil") + 1)
    assert f"eosinophil\t{key}" in shown[0]  # the menu names each class's key


def test_drop_recent_and_session_file_open_the_image(qtbot, tmp_path: Path, field: Path, data_dir: Path, dialogs):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    empty = tmp_path / "no-models"
    empty.mkdir()
    window = make_window(qtbot, tmp_path, empty)
    window.settings.analyse_on_open = False
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(field))])
    drop = QDropEvent(
        QPointF(20, 20), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.view.dropEvent(drop)
    assert window.path == field and window.session is None  # opened, not analysed (setting off)
    other = tmp_path / "BloodImage_00214.jpg"
    shutil.copy(data_dir / "bccd" / "JPEGImages" / other.name, other)
    assert window.open_image(other)
    assert window.settings.recent[:2] == [str(other.resolve()), str(field.resolve())]
    # a session file names its image
    window.analyse()
    qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=ANALYSIS_TIMEOUT_MS)
    saved = window.save_session_file()
    assert window.open_image(field)
    assert window.open_image(saved)
    assert window.path == other and window.session is not None and not window.runner.busy
