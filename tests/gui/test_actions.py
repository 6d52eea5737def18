"""The window's commands are the keymap's: menus, shortcuts, the legend and the help agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtGui import QKeySequence

from leukview.core.keymap import (
    BINDINGS,
    CLASS_KEYS,
    GESTURES,
    class_keys,
    display_key,
    help_sections,
    legend_actions,
)
from leukview.gui.dialogs import shortcuts_html
from leukview.gui.review import legend_html

pytestmark = pytest.mark.gui


def bound_keys(window) -> dict[str, list[str]]:  # noqa: ANN001
    """Every shortcut of the window's actions, as portable text, with the actions that own it."""
    owners: dict[str, list[str]] = {}
    for action in window.actions.all():
        for sequence in action.shortcuts():
            owners.setdefault(sequence.toString(QKeySequence.SequenceFormat.PortableText), []).append(action.text())
    return owners


def test_no_key_is_bound_twice_and_every_key_in_the_help_is_bound(make_window, no_models: Path):
    window = make_window(no_models)
    owners = bound_keys(window)
    assert not {key: names for key, names in owners.items() if len(names) > 1}
    shown = {display_key(k): k for item in BINDINGS for k in item.keys}
    gestures = {text for text, _ in GESTURES}
    for _, rows in help_sections(window.classes()):
        for keys, _ in rows:
            if keys in gestures:
                continue  # the wheel and the arrows act on the view itself
            for key in keys.split(" / "):
                portable = QKeySequence(shown.get(key, key)).toString(QKeySequence.SequenceFormat.PortableText)
                assert portable in owners, f"{key} is in the help but bound to nothing"


def test_the_legend_and_the_help_list_the_same_keys(make_window, no_models: Path):
    window = make_window(no_models)
    classes = window.classes()
    legend = window.review.keys.text()
    assert legend == legend_html(classes)
    legend_keys = re.findall(r"&nbsp;([^&<]+)&nbsp;</span>", legend)
    expected = [key for key, _ in class_keys(classes) if key] + [key for key, _ in legend_actions()]
    assert legend_keys == expected
    help_text = shortcuts_html(classes)
    for key in expected:
        assert f"<b>{key}" in help_text or f" / {key}" in help_text or f"{key} / " in help_text


def test_menus_are_built_from_the_keymap(make_window, no_models: Path):
    window = make_window(no_models)
    texts = {menu: [a.text() for a in window.menus[menu].actions()] for menu in ("file", "edit", "view", "image", "help")}
    for item in BINDINGS:
        if item.group in texts:
            assert item.text in texts[item.group] or (item.id in ("undo", "redo"))
    assert window.actions["open"].shortcut().toString() == "Ctrl+O"
    assert [s.toString() for s in window.actions["next"].shortcuts()][:2] == ["N", "Space"]
    # class keys act on the classes of the analysis in their key order
    assert [a.shortcut().toString() for a in window.actions.class_actions] == list(CLASS_KEYS)
    assert CLASS_KEYS[:11] == (*"1234567890", "Shift+1")  # more than ten classes: Shift and the number row


def test_the_shortcuts_dialog_shows_the_generated_help(make_window, no_models: Path, dialogs):
    window = make_window(no_models)
    window.actions["shortcuts"].trigger()
    kind, title, text = dialogs[-1]
    assert (kind, title) == ("information", "Keyboard shortcuts") and text == shortcuts_html(window.classes())
    assert "classify as neutrophil" in text and "Ctrl+Z" in text and "Wheel" in text
