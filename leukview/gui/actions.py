"""The window's commands as QActions, its menus and its toolbar, built from the one keymap.

Every key and menu text comes from :data:`leukview.core.keymap.BINDINGS`;
this module only turns them into Qt objects and connects them to the
window's slots (one per command id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QStyle, QToolBar

from leukview.core.calls import display_name
from leukview.core.keymap import BINDINGS, CLASS_KEYS, GROUPS, Binding, bindings_in, class_keys

__all__ = ["EDIT_TOOLBAR", "TOOLBAR", "Actions", "qt_keys"]

#: The toolbar: command ids (None: a separator), with their short texts and icons.
TOOLBAR: tuple[tuple[str, str, QStyle.StandardPixmap | None] | None, ...] = (
    ("open", "Open", QStyle.StandardPixmap.SP_DialogOpenButton),
    ("analyse", "Analyse", QStyle.StandardPixmap.SP_MediaPlay),
    None,
    ("fit", "Fit", QStyle.StandardPixmap.SP_TitleBarMaxButton),
    ("actual_size", "1:1", None),
    None,
    ("heatmap", "Heatmap (H)", None),
    None,
    ("save", "Save", QStyle.StandardPixmap.SP_DialogSaveButton),
    ("export_pdf", "PDF report", QStyle.StandardPixmap.SP_FileDialogDetailedView),
)

#: The Segmentation toolbar: the correction tools (checked while drawing) and delete.
EDIT_TOOLBAR: tuple[tuple[str, str] | None, ...] = (
    ("add_cell_click", "Add (A)"),
    ("add_cell_outline", "Draw (⇧A)"),
    None,
    ("split_cell", "Split (S)"),
    ("split_cell_seeds", "Seeds (⇧S)"),
    None,
    ("redraw_cell", "Redraw (R)"),
    ("delete_cell", "Delete (Del)"),
)


def qt_keys(item: Binding) -> list[QKeySequence]:
    """A binding's keys, then its standard key's platform keys, without repeats."""
    keys = [QKeySequence(text) for text in item.keys]
    if item.standard:
        for extra in QKeySequence.keyBindings(getattr(QKeySequence.StandardKey, item.standard)):
            if extra not in keys:
                keys.append(extra)
    return keys


class Actions:
    """One QAction per binding, plus one per class key, on a window.

    Parameters
    ----------
    window : QMainWindow
        Owns the actions (window-wide shortcuts).
    slots : mapping of command id to callable
        What each command does; ``classify_key`` is called with the key pressed.
    """

    def __init__(self, window: QMainWindow, slots: Mapping[str, Callable[..., object]]) -> None:
        self.window = window
        self.by_id: dict[str, QAction] = {}
        for item in BINDINGS:
            action = QAction(item.text, window)
            action.setShortcuts(qt_keys(item))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if item.tip:
                action.setStatusTip(item.tip)
                action.setToolTip(item.tip)
            slot = slots[item.id]
            action.triggered.connect(lambda _=False, s=slot: s())
            window.addAction(action)
            self.by_id[item.id] = action
        self.class_actions: list[QAction] = []
        classify_key = slots["classify_key"]
        for key in CLASS_KEYS:
            action = QAction(f"Class {key}", window)
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _=False, k=key: classify_key(k))
            window.addAction(action)
            self.class_actions.append(action)

    def __getitem__(self, command: str) -> QAction:
        return self.by_id[command]

    def all(self) -> list[QAction]:
        return [*self.by_id.values(), *self.class_actions]

    # -- menus --------------------------------------------------------------

    def build_menus(self, docks: Sequence[QDockWidget], recent: Callable[[QMenu], None]) -> dict[str, QMenu]:
        """One menu per keymap group, separators between sections.

        ``File`` gains an *Open recent* submenu after *Open* (filled by
        ``recent`` each time it opens), ``View`` the docks' toggles.
        """
        bar = self.window.menuBar()
        menus: dict[str, QMenu] = {}
        for group, title in GROUPS.items():
            menu = bar.addMenu(title)
            menus[group] = menu
            section = None
            for item in bindings_in(group):
                if section is not None and item.section != section:
                    menu.addSeparator()
                section = item.section
                menu.addAction(self.by_id[item.id])
                if item.id == "open":
                    submenu = menu.addMenu("Open &recent")
                    submenu.aboutToShow.connect(lambda m=submenu: recent(m))
                    menus["recent"] = submenu
        menus["view"].addSeparator()
        for dock in docks:
            menus["view"].addAction(dock.toggleViewAction())
        return menus

    def fill_review_menu(self, menu: QMenu, classes: Sequence[str], classify: Callable[[str], object]) -> None:
        """The Review menu: navigation and decisions, then one item per class with its key."""
        menu.clear()
        for item in bindings_in("review"):
            menu.addAction(self.by_id[item.id])
        menu.addSeparator()
        for key, name in class_keys(classes):
            action = menu.addAction(f"Classify as {display_name(name)}" + (f"\t{key}" if key else ""))
            action.triggered.connect(lambda _=False, n=name: classify(n))

    def build_toolbar(self) -> QToolBar:
        window = self.window
        bar = QToolBar("Main", window)
        bar.setObjectName("main_toolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        style = window.style()
        for entry in TOOLBAR:
            if entry is None:
                bar.addSeparator()
                continue
            command, text, pixmap = entry
            action = self.by_id[command]
            if pixmap is not None:
                action.setIcon(style.standardIcon(pixmap))
            action.setIconText(text)
            bar.addAction(action)
        window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        return bar

    def build_edit_toolbar(self, checkable: Sequence[str] = ()) -> QToolBar:
        """The Segmentation toolbar (:data:`EDIT_TOOLBAR`); ``checkable`` commands show whether their tool is on."""
        window = self.window
        bar = QToolBar("Segmentation", window)
        bar.setObjectName("segmentation_toolbar")
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for entry in EDIT_TOOLBAR:
            if entry is None:
                bar.addSeparator()
                continue
            command, text = entry
            action = self.by_id[command]
            action.setCheckable(command in checkable)
            action.setIconText(text)
            bar.addAction(action)
        window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        return bar

    def update_undo(self, undo_text: str, redo_text: str) -> None:
        """Name what Ctrl+Z and Ctrl+Shift+Z would do, and enable them only then."""
        for command, text in (("undo", undo_text), ("redo", redo_text)):
            action = self.by_id[command]
            base = next(b.text for b in BINDINGS if b.id == command)
            action.setText(f"{base} {text}" if text else base)
            action.setEnabled(bool(text))
