"""Reviewing from the window: keyboard only, without models, and by context menu."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMenu

pytestmark = pytest.mark.gui


def test_keyboard_only_review_without_models(qtbot, make_window, analysed, no_models: Path, field: Path, dialogs):
    window = make_window(no_models)
    analysed(window, field)
    assert window.analysis.models == []
    assert window.banner.isVisible() and "No classification model" in window.banner.text()
    assert "No model" in window.models_label.text()
    total = window.review.model.rowCount()
    assert total >= 2
    # mouse-free: the table has focus, digits classify and move on, Backspace clears
    window.review.tabs.setCurrentWidget(window.review.table)
    window.review.table.setFocus()
    neutrophil = str(window.classes().index("neutrophil") + 1)
    for _ in range(total):
        qtbot.keyClick(window.review.table, getattr(Qt.Key, f"Key_{neutrophil}"))
    assert window.review.progress.text() == f"{total} of {total} reviewed"
    counts = window.differential.table
    assert counts.item(window.classes().index("neutrophil"), 2).text() == str(total)
    qtbot.keyClick(window.review.table, Qt.Key.Key_Backspace)
    assert window.review.progress.text() == f"{total - 1} of {total} reviewed"
    # Enter on a cell without a model call accepts nothing
    cleared = window.selected
    qtbot.keyClick(window.review.table, Qt.Key.Key_Return)
    assert not window.session.cell(cleared).review.reviewed
    assert "no call to accept" in window.statusBar().currentMessage()
    # the filter line edit keeps its digits: typing there must not classify
    window.review.text_filter.setFocus()
    qtbot.keyClicks(window.review.text_filter, "area>1")
    assert window.review.text_filter.text() == "area>1"
    assert window.review.progress.text() == f"{total - 1} of {total} reviewed"


def test_next_and_previous_walk_the_review_order(make_window, analysed, no_models: Path, field: Path, dialogs):
    window = make_window(no_models)
    analysed(window, field)
    order = window.review.visible_order()
    assert window.selected == order[0]
    window.actions["next"].trigger()
    assert window.selected == order[1]
    window.actions["previous"].trigger()
    assert window.selected == order[0]
    for cell_id in order:
        window.classify("monocyte", cell_id=cell_id)
    window.go_next()
    assert "Every cell in the list is reviewed" in window.statusBar().currentMessage()


def test_context_menu_reclassifies_and_shows_the_keys(make_window, analysed, models_dir: Path, field: Path, monkeypatch, dialogs):
    window = make_window(models_dir)
    analysed(window, field)
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
    assert not any(text.startswith("Clear review") for text in shown[0])  # nothing to clear yet
    monkeypatch.setattr(window, "exec_menu", lambda menu, pos: shown.append([a.text() for a in menu.actions()]))
    window.view.cell_menu.emit(cell_id, QPoint(10, 10))
    assert "Clear review\tBackspace" in shown[1]  # now reviewed: it can be cleared
    # the Review menu lists the same keys
    window._fill_review_menu()
    texts = [a.text() for a in window.menus["review"].actions()]
    assert f"Classify as eosinophil\t{key}" in texts and "Classify as artefact\t0" in texts
