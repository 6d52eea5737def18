"""The one keymap: every command once, every key once, class keys from the class list."""

from __future__ import annotations

import pytest

from leukview.core.calls import review_classes
from leukview.core.keymap import (
    BINDINGS,
    CLASS_KEYS,
    GROUPS,
    Binding,
    KeymapError,
    binding,
    check_keymap,
    class_key,
    class_keys,
    display_key,
    help_sections,
    legend_actions,
)


def test_the_shipped_keymap_binds_no_key_twice():
    check_keymap()
    keys = [key.lower() for item in BINDINGS for key in item.keys] + list(CLASS_KEYS)
    assert len(keys) == len(set(keys))
    assert len({item.id for item in BINDINGS}) == len(BINDINGS)
    assert {item.group for item in BINDINGS} <= set(GROUPS)


def test_a_key_bound_twice_is_refused():
    twice = (*BINDINGS, Binding("zoom_more", "Zoom more", "view", ("F",)))
    with pytest.raises(KeymapError, match="key F is bound to fit and to zoom_more"):
        check_keymap(twice)
    with pytest.raises(KeymapError, match="class keys"):
        check_keymap((Binding("x", "X", "view", ("3",)),))
    with pytest.raises(KeymapError, match="listed twice"):
        check_keymap((Binding("x", "X", "view"), Binding("x", "Y", "view")))
    with pytest.raises(KeymapError, match="unknown group"):
        check_keymap((Binding("x", "X", "nowhere"),))


def test_class_keys_are_one_function_of_the_class_list():
    classes = review_classes([])
    keys = class_keys(classes)
    assert [name for _, name in keys] == classes
    assert keys[-1] == ("0", "artefact") and keys[0] == ("1", "neutrophil")  # the list's own keys
    assert sorted(k for k, _ in keys if k) == sorted(CLASS_KEYS)  # each class key once
    many = [f"c{i}" for i in range(21)]  # classes of no list: the free keys in order, then none
    assert [key for key, _ in class_keys(many)] == [*"1234567890", *(f"Shift+{d}" for d in "1234567890"), None]
    assert [class_key(i) for i in (0, 9, 10, 19, 20)] == ["1", "0", "Shift+1", "Shift+0", None]


def test_the_help_lists_every_key_the_keymap_binds_and_the_class_keys():
    classes = review_classes([])
    sections = dict(help_sections(classes))
    assert [key for key, _ in sections["Classify"]] == [key for key, _ in class_keys(classes) if key]
    listed = {text for title, rows in sections.items() if title != "Mouse and arrows" for text, _ in rows}
    for item in BINDINGS:
        if item.help:
            assert " / ".join(dict.fromkeys(display_key(k) for k in item.keys)) in listed
    assert binding("accept").keys[0] == "Return" and display_key("Return") == "Enter"
    assert ("Enter", "accept") in legend_actions() and ("Ctrl+Z", "undo") in legend_actions()
    with pytest.raises(KeyError):
        binding("fly")
