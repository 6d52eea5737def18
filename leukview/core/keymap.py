"""The viewer's one table of commands and keys, without Qt.

The menus and their QActions, the Review panel's key legend and the
keyboard-shortcuts help are all generated from :data:`BINDINGS` and
:func:`class_keys`, so a key is written once. Keys are portable key-sequence
text (``"Ctrl+Shift+Z"``, ``"Space"``), as Qt's ``QKeySequence`` reads it;
``standard`` names a ``QKeySequence.StandardKey`` whose platform keys the GUI
adds (``Undo`` is also Cmd+Z on macOS).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .calls import display_name
from .classes import CLASS_KEY_SCHEME, active_classes

__all__ = [
    "BINDINGS",
    "CLASS_KEYS",
    "GESTURES",
    "GROUPS",
    "QUIZ_BINDINGS",
    "QUIZ_GROUPS",
    "Binding",
    "KeymapError",
    "binding",
    "bindings_in",
    "check_keymap",
    "class_key",
    "class_keys",
    "display_key",
    "help_sections",
    "key_text",
    "legend_actions",
]


class KeymapError(ValueError):
    """A key bound twice, an unknown group, or a repeated command id."""


@dataclass(frozen=True)
class Binding:
    """One command of the viewer.

    Attributes
    ----------
    id : str
        The command's name (``"undo"``); the GUI maps it to a slot.
    text : str
        Menu text, ``&`` before the mnemonic.
    group : str
        The menu it belongs to (a key of :data:`GROUPS`).
    keys : tuple of str
        Key sequences, the first the one shown.
    standard : str or None
        A ``QKeySequence.StandardKey`` name whose platform keys are added.
    help : str
        What the shortcuts help says it does; empty: not listed there.
    legend : str
        One word for the Review panel's key legend; empty: not listed there.
    tip : str
        Status-bar and tooltip text.
    section : str
        Menus put a separator between consecutive bindings of different sections.
    """

    id: str
    text: str
    group: str
    keys: tuple[str, ...] = ()
    standard: str | None = None
    help: str = ""
    legend: str = ""
    tip: str = ""
    section: str = ""

    @property
    def label(self) -> str:
        """The menu text without its mnemonic and ellipsis."""
        return self.text.replace("&", "").rstrip("…")


GROUPS: dict[str, str] = {
    "file": "&File",
    "edit": "&Edit",
    "view": "&View",
    "image": "&Image",
    "segment": "&Segmentation",
    "review": "&Review",
    "help": "&Help",
}

BINDINGS: tuple[Binding, ...] = (
    Binding("open", "&Open image…", "file", ("Ctrl+O",), "Open", "open an image or a session", section="open"),
    Binding("open_sample", "Open &sample", "file", section="open"),
    Binding("open_case", "Open &case (several fields, a folder)…", "file", ("Ctrl+Shift+O",),
            help="open a case: several fields or a case file", section="open"),
    Binding("save", "&Save session", "file", ("Ctrl+S",), "Save", "save the review now", section="save"),
    Binding("export_csv", "Export cells as &CSV…", "file", section="export"),
    Binding("export_png", "Export &PNG snapshot…", "file", section="export"),
    Binding("export_pdf", "PDF &report and sign-off…", "file", ("Ctrl+P",),
            help="the PDF report: case details, sign-off, then the file",
            section="export"),
    Binding("make_quiz", "Make &quiz from this case…", "file",
            tip="A quiz of the reviewed cells with the reviewer's labels, in one file another LeukView opens offline",
            section="teach"),
    Binding("teach", "&Teaching mode (quiz on the reference atlas)", "file", ("Ctrl+T",),
            help="teaching mode: a quiz on the reference atlas", section="teach"),
    Binding("open_quiz", "Open a quiz &file…", "file", tip="Take a trainer's quiz (*.leukquiz)", section="teach"),
    Binding("quit", "&Quit", "file", ("Ctrl+Q",), "Quit", section="quit"),
    Binding("undo", "&Undo", "edit", ("Ctrl+Z",), "Undo", "undo the last review decision", "undo",
            section="undo"),
    Binding("redo", "&Redo", "edit", ("Ctrl+Shift+Z", "Ctrl+Y"), "Redo", "redo it", section="undo"),
    Binding("settings", "&Settings…", "edit", (), "Preferences", section="settings"),
    Binding("zoom_in", "Zoom &in", "view", ("+", "=", "Ctrl++"), help="zoom in", section="zoom"),
    Binding("zoom_out", "Zoom &out", "view", ("-", "Ctrl+-"), help="zoom out", section="zoom"),
    Binding("fit", "&Fit to window", "view", ("F", "Ctrl+0"), help="fit the image", section="zoom"),
    Binding("actual_size", "&Actual size (1:1)", "view", ("Ctrl+1",), help="actual size (1:1)", section="zoom"),
    Binding("heatmap", "Cycle &heatmap (off / cell / field)", "view", ("H",),
            help="heatmap off / selected cell / all cells", section="layers"),
    Binding("heat_kind", "Heatmap: class activation / &occlusion map", "view", ("Shift+H",),
            help="heatmap: class activation / occlusion map (selected cell)", section="layers"),
    Binding("labels", "Toggle &labels", "view", ("L",), help="labels on / off", section="layers"),
    Binding("similar", "Similar &cells of the selected cell", "view", ("Ctrl+Shift+C",),
            help="the reference cells most like the selected one (Enter enlarges)", section="explain"),
    Binding("analyse", "&Analyse", "image", ("Ctrl+R",), help="analyse (a large image: the field in view)",
            tip="Segment and classify the image"),
    Binding("cancel", "&Cancel analysis", "image", ("Esc",), help="cancel the analysis (or the drawing)"),
    Binding("pixel_size", "Set &pixel size…", "image"),
    Binding("analyse_slide", "Analyse the whole s&lide (tile by tile)", "image", ("Ctrl+Alt+R",),
            help="analyse the whole slide tile by tile in the background (starting again resumes)",
            tip="Analyse every tile of the slide in the background; cells appear as tiles finish"),
    Binding("analyse_case", "Analyse the &case (every field)", "image", ("Ctrl+Shift+R",),
            help="analyse the case's fields not analysed yet, in the background"),
    Binding("next_field", "Next &field of the case", "image", ("PgDown", "]"), help="next field of the case"),
    Binding("previous_field", "Previous fi&eld of the case", "image", ("PgUp", "["),
            help="previous field of the case"),
    Binding("add_cell_click", "&Add a missed cell (click inside it)", "segment", ("A",),
            help="add a missed cell: click inside it", tip="Add a cell the segmentation missed: click inside it",
            section="add"),
    Binding("add_cell_outline", "Add a missed cell by &drawing its outline", "segment", ("Shift+A",),
            help="add a missed cell: draw its outline", tip="Add a cell by drawing its outline", section="add"),
    Binding("split_cell", "&Split a merged cell (draw a line across it)", "segment", ("S",),
            help="split a merged cell: draw a line across it", tip="Split a merged cell: draw a line across it",
            section="split"),
    Binding("split_cell_seeds", "Split a merged cell by s&eeds (click each part)", "segment", ("Shift+S",),
            help="split a merged cell: click once in each part", tip="Split a merged cell: click once in each part",
            section="split"),
    Binding("redraw_cell", "&Redraw the cell's outline", "segment", ("R",),
            help="redraw the selected cell's outline", tip="Redraw the selected cell's outline", section="redraw"),
    Binding("delete_cell", "De&lete the cell", "segment", ("Delete",), help="delete the selected cell (a false one)",
            tip="Delete the selected cell: it is not a cell", section="redraw"),
    Binding("next", "&Next cell", "review", ("N", "Space"), help="next unreviewed cell (flagged first)",
            legend="next", tip="Next unreviewed cell in review order"),
    Binding("previous", "&Previous cell", "review", ("P", "Shift+Space"), help="previous cell", legend="previous"),
    Binding("accept", "&Accept the call", "review", ("Return", "Enter"), help="accept the call on the cell",
            legend="accept"),
    Binding("clear", "C&lear review", "review", ("Backspace",), help="clear the review of the cell",
            legend="clear"),
    Binding("shortcuts", "&Keyboard shortcuts", "help", ("F1",), help="this list"),
    Binding("about", "&About LeukView", "help"),
)  # fmt: skip

#: The keys reserved for classes, in the order free ones are handed out: 1-9, 0, then Shift+1 ... Shift+0
#: (a class list gives its classes their own keys among these: leukview.core.classes).
CLASS_KEYS: tuple[str, ...] = CLASS_KEY_SCHEME

#: What the mouse and the arrow keys do in the slide view (not commands: listed in the help only).
GESTURES: tuple[tuple[str, str], ...] = (
    ("Wheel", "zoom about the cursor"),
    ("Arrows", "pan (Shift: a screen); dragging also pans"),
    ("Right click", "classify the cell under the cursor"),
    ("Click, drag", "while drawing (Segmentation): place points, trace"),
    ("Enter / double-click", "while drawing: finish"),
    ("Esc", "while drawing: cancel"),
)


def binding(command: str) -> Binding:
    """The binding of a command id; KeyError when there is none."""
    for item in BINDINGS:
        if item.id == command:
            return item
    raise KeyError(command)


def bindings_in(group: str, bindings: Sequence[Binding] = BINDINGS) -> list[Binding]:
    """The bindings of one menu, in table order."""
    return [b for b in bindings if b.group == group]


def class_key(index: int, count: int | None = None) -> str | None:
    """The key the ``index``-th class takes when no class has a key of its own: 1-9, 0, Shift+1 ... Shift+0.

    ``count`` is accepted for older callers and ignored.
    """
    return CLASS_KEYS[index] if 0 <= index < len(CLASS_KEYS) else None


def class_keys(classes: Sequence[str]) -> list[tuple[str | None, str]]:
    """(key, class) for every class a reviewer assigns, in order.

    A class of the laboratory's list keeps its own key; the others take the free
    keys in :data:`CLASS_KEYS` order; None once all twenty are used.
    """
    return active_classes().assign_keys(classes)


# Keys as people name them on screen (Qt's "Enter" is the keypad's, "Return" the main one).
_SHOWN = {"Return": "Enter", "Esc": "Esc"}


def display_key(key: str) -> str:
    """A key as the legend and the help write it (``Return`` -> ``Enter``)."""
    return _SHOWN.get(key, key)


def key_text(item: Binding) -> str:
    """How the help writes a binding's keys: ``N / Space`` (keys shown alike once)."""
    return " / ".join(dict.fromkeys(display_key(k) for k in item.keys))


def help_sections(
    classes: Sequence[str], bindings: Sequence[Binding] = BINDINGS, groups: dict[str, str] | None = None,
    *, classify: str = "Classify", verb: str = "classify as", gestures: Sequence[tuple[str, str]] = GESTURES,
) -> list[tuple[str, list[tuple[str, str]]]]:  # fmt: skip
    """The shortcuts help: (section title, [(keys, what they do)]).

    The first section is the class keys (from :func:`class_keys`), then one
    section per menu of the bindings with a ``help`` text, then
    :data:`GESTURES`. The quiz window passes its own bindings and groups
    (:data:`QUIZ_BINDINGS`), ``classify="Answer"``, ``verb="answer"`` and no gestures.
    """
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        (classify, [(key, f"{verb} {display_name(name)}") for key, name in class_keys(classes) if key])
    ]
    for group, title in (GROUPS if groups is None else groups).items():
        rows = [(key_text(b), b.help) for b in bindings_in(group, bindings) if b.help and b.keys]
        if rows:
            sections.append((title.replace("&", ""), rows))
    if gestures:
        sections.append(("Mouse and arrows", list(gestures)))
    return sections


#: The order of the Review panel's legend: the decision first, then moving on, then taking back.
LEGEND_ORDER = ("accept", "next", "previous", "clear", "undo")


def legend_actions(bindings: Sequence[Binding] = BINDINGS) -> list[tuple[str, str]]:
    """(key, word) of the commands the Review panel's legend lists, e.g. ``("Enter", "accept")``."""
    listed = [b for b in bindings if b.legend and b.keys]
    rank = {command: i for i, command in enumerate(LEGEND_ORDER)}
    listed.sort(key=lambda b: rank.get(b.id, len(rank)))
    return [(display_key(b.keys[0]), b.legend) for b in listed]


def check_keymap(bindings: Iterable[Binding] = BINDINGS, groups: dict[str, str] | None = None) -> None:
    """Raise :class:`KeymapError` when a key is bound twice (class keys included) or a binding is malformed.

    ``groups`` are the menus the bindings may name (:data:`GROUPS` by default).
    """
    groups = GROUPS if groups is None else groups
    owner: dict[str, str] = {key.lower(): "class keys" for key in CLASS_KEYS}
    ids: set[str] = set()
    for item in bindings:
        if item.id in ids:
            raise KeymapError(f"command {item.id!r} is listed twice")
        ids.add(item.id)
        if item.group not in groups:
            raise KeymapError(f"command {item.id!r} is in an unknown group {item.group!r}")
        for key in item.keys:
            folded = key.lower()
            if folded in owner:
                raise KeymapError(f"key {key} is bound to {owner[folded]} and to {item.id}")
            owner[folded] = item.id


#: The quiz window's menus (``leukview --teach``): a window of its own, so its keys are checked apart.
QUIZ_GROUPS: dict[str, str] = {"quiz": "&Quiz", "help": "&Help"}

#: The quiz window's commands. Answers are the class keys, the same keys as review
#: (:func:`class_keys` of the quiz's classes).
QUIZ_BINDINGS: tuple[Binding, ...] = (
    Binding("quiz_next", "&Next", "quiz", ("Return", "Enter", "Space", "N"),
            help="start / next cell after the feedback / a new quiz from the results", legend="next"),
    Binding("quiz_heatmap", "Show the &heatmap", "quiz", ("H",), help="the model's map on the cell (feedback)"),
    Binding("quiz_again", "&Repeat, favouring my errors", "quiz", ("R",),
            help="a new quiz weighted to the classes you confused (results)", legend="repeat"),
    Binding("quiz_finish", "&End the quiz now", "quiz", ("Esc",), help="end now: the results of the cells answered",
            legend="end"),
    Binding("quiz_close", "&Close", "quiz", ("Ctrl+W", "Ctrl+Q"), help="close the quiz window"),
    Binding("quiz_shortcuts", "&Keyboard shortcuts", "help", ("F1",), help="this list"),
)  # fmt: skip

check_keymap()  # a table that binds a key twice must not ship
check_keymap(QUIZ_BINDINGS, QUIZ_GROUPS)
