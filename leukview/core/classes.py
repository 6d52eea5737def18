"""The laboratory's class list: the classes a reviewer assigns, how they look, and what counts.

A :class:`ClassList` is the vocabulary of a review: each :class:`CellClass`
has the name written in sessions and CSVs, the name shown on screen, a short
abbreviation (drawn beside the colour, so that a class is never told by
colour alone), a key, a colour, whether it counts in the white-cell total,
its group (lineage) and its place in the clinical reading order.

Where the list comes from, first found wins:

1. ``$LEUKVIEW_CLASSES``: a TOML or JSON file;
2. ``classes.toml`` or ``classes.json`` in the user's configuration folder
   (:func:`user_config_folder`; the settings dialog installs a lab's file there,
   so the viewer and ``leukview report`` read the same list);
3. the built-in :func:`default_class_list`.

A file that cannot be used is never half-used: :func:`active_classes` falls
back to the built-in list and :func:`class_list_problem` says why, so that the
viewer can show it.

The file format (TOML; JSON has the same keys)::

    name = "Haematology, St Elsewhere"
    [[classes]]
    name = "neutrophil"            # as written in sessions and CSVs
    display = "neutrophil"         # as shown (default: the name)
    abbreviation = "Neut"          # beside the colour (default: from the name)
    key = "1"                      # 1-9, 0, Shift+1 ... Shift+0 (default: the next free one)
    colour = "#56B4E9"
    counts_in_total = true         # false: counted apart (smudge cells, NRBC, platelets)
    per_100_wbc = false            # reported per 100 white cells (NRBC)
    group = "granulocyte"
    lineage = ""                   # blasts: "myeloid", "lymphoid", "unspecified"
    aliases = ["seg"]              # model labels that mean this class

Classes are in clinical order as listed (an ``order`` number overrides it).
A model's label that is neither a class nor an alias is still shown, under its
own name, in a stable colour of its own.

Length (~700 lines): the default list of 22 classes with their colours, keys and
aliases is data, and its parser and validator must stay beside it so that every
message names the field it checks.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from .errors import LeukViewError

__all__ = [
    "CLASSES_ENV",
    "CLASS_KEY_SCHEME",
    "CONFIG_DIR_ENV",
    "CellClass",
    "ClassList",
    "ClassListError",
    "LiveMapping",
    "LiveSequence",
    "LiveSet",
    "abbreviation",
    "active_classes",
    "class_list_problem",
    "class_list_source",
    "colour_distance",
    "default_class_list",
    "install_class_list",
    "load_class_list",
    "parse_class_list",
    "remove_installed_class_list",
    "set_active_classes",
    "simulate_colour_vision",
    "user_class_file",
    "user_config_folder",
    "with_keys",
]

CLASSES_ENV = "LEUKVIEW_CLASSES"
CONFIG_DIR_ENV = "LEUKVIEW_CONFIG_DIR"
#: The keys classes take, in the order free ones are handed out: the number row, then Shift and the number row.
CLASS_KEY_SCHEME = (
    *"1234567890",
    *(f"Shift+{d}" for d in "1234567890"),
)
GROUPS = (
    "granulocyte",
    "immature granulocyte",
    "blast",
    "lymphoid",
    "monocytic",
    "erythroid",
    "platelet",
    "other",
)
_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9 _\-]*$")


class ClassListError(LeukViewError):
    """A class list file that cannot be used: unreadable, or an entry that is not valid."""


@dataclass(frozen=True)
class CellClass:
    """One class of the laboratory's list.

    Attributes
    ----------
    name : str
        Written in sessions, CSVs and the audit log (lower case: ``"band"``).
    display : str
        Shown on screen and in reports (``"band neutrophil"``).
    abbreviation : str
        At most 5 characters, drawn beside the colour (``"Band"``).
    colour : str
        ``#RRGGBB``.
    key : str or None
        One of :data:`CLASS_KEY_SCHEME`; None: the next free one is used.
    counts_in_total : bool
        Part of the white-cell total that percentages use.
    per_100_wbc : bool
        Reported per 100 white cells (NRBC), apart from the total.
    group : str
        Lineage group (one of :data:`GROUPS`).
    lineage : str
        For blasts: ``myeloid``, ``lymphoid`` or ``unspecified``.
    order : int
        Place in the clinical reading order (lower first).
    aliases : tuple of str
        Model labels that mean this class.
    """

    name: str
    display: str
    abbreviation: str
    colour: str
    key: str | None = None
    counts_in_total: bool = True
    per_100_wbc: bool = False
    group: str = "other"
    lineage: str = ""
    order: int = 0
    aliases: tuple[str, ...] = ()

    @property
    def rgb(self) -> tuple[int, int, int]:
        return int(self.colour[1:3], 16), int(self.colour[3:5], 16), int(self.colour[5:7], 16)


def _c(
    name: str, display: str, abbr: str, colour: str, key: str | None, group: str, *,
    total: bool = True, per_100: bool = False, lineage: str = "",
) -> CellClass:  # fmt: skip
    return CellClass(name, display, abbr, colour, key, total, per_100, group, lineage)


# The built-in list. Colours: Okabe & Ito's colour-blind-safe set for the seven classes of a
# normal differential (checked under simulated deuteranopia, protanopia and tritanopia in the
# tests), related shades of Paul Tol's "light" and "muted" sets for their relatives; the
# abbreviation tells apart what the colour cannot. Keys: the ten classes a reviewer assigns
# most on a peripheral smear on the number row, the next ten on Shift and the number row.
_DEFAULT = (
    _c("neutrophil", "neutrophil", "Neut", "#56B4E9", "1", "granulocyte"),
    _c("band", "band neutrophil", "Band", "#0072B2", "2", "granulocyte"),
    _c("lymphocyte", "lymphocyte", "Lym", "#009E73", "3", "lymphoid"),
    _c("monocyte", "monocyte", "Mono", "#E69F00", "4", "monocytic"),
    _c("eosinophil", "eosinophil", "Eos", "#D55E00", "5", "granulocyte"),
    _c("basophil", "basophil", "Baso", "#CC79A7", "6", "granulocyte"),
    _c("metamyelocyte", "metamyelocyte", "Meta", "#77AADD", "Shift+1", "immature granulocyte"),
    _c("myelocyte", "myelocyte", "Myel", "#99DDFF", "Shift+2", "immature granulocyte"),
    _c("promyelocyte", "promyelocyte", "Pro", "#88CCEE", "Shift+3", "immature granulocyte"),
    _c("ig", "IG", "IG", "#6699CC", None, "immature granulocyte"),
    _c("blast", "blast", "Blast", "#F0E442", "7", "blast", lineage="unspecified"),
    _c("myeloblast", "myeloblast", "MBl", "#EEDD88", "Shift+4", "blast", lineage="myeloid"),
    _c("lymphoblast", "lymphoblast", "LBl", "#EECC66", "Shift+5", "blast", lineage="lymphoid"),
    _c("variant lymphocyte", "variant lymphocyte", "VLym", "#BBCC33", "8", "lymphoid"),
    _c("large granular lymphocyte", "large granular lymphocyte", "LGL", "#44BB99", "Shift+6", "lymphoid"),
    _c("plasma cell", "plasma cell", "Plas", "#999933", "Shift+7", "lymphoid"),
    _c("erythroblast", "erythroblast (NRBC)", "NRBC", "#FFAABB", "9", "erythroid", total=False, per_100=True),
    _c("smudge cell", "smudge cell", "Smdg", "#BBBBBB", "Shift+8", "other", total=False),
    _c("giant platelet", "giant platelet", "GPlt", "#AA4499", "Shift+9", "platelet", total=False),
    _c("platelet clump", "platelet clump", "PClp", "#CC6677", "Shift+0", "platelet", total=False),
    _c("platelet", "platelet", "Plt", "#DDAACC", None, "platelet", total=False),
    _c("artefact", "artefact", "Art", "#999999", "0", "other", total=False),
)


class ClassList:
    """An ordered, validated list of :class:`CellClass` (clinical order).

    Parameters
    ----------
    classes : iterable of CellClass
        Sorted by ``order`` (stable: equal orders keep the given order).
    name : str
        What the list is called (printed on reports).
    source : str
        Where it came from: a file's path, or ``"built in"``.

    Raises
    ------
    ClassListError
        Duplicate names, aliases or keys, a bad colour, key or group (the
        message names the class).
    """

    def __init__(self, classes: Iterable[CellClass], name: str = "LeukView default", source: str = "built in"):
        items = list(classes)
        self.classes: tuple[CellClass, ...] = tuple(
            c for _, c in sorted(enumerate(items), key=lambda pair: (pair[1].order, pair[0]))
        )
        self.name = name
        self.source = source
        _validate(self.classes, source)
        self._by_name: dict[str, CellClass] = {c.name: c for c in self.classes}
        for cls in self.classes:
            for alias in cls.aliases:
                self._by_name.setdefault(alias, cls)
        self._not_counted = frozenset(n for n, c in self._by_name.items() if not c.counts_in_total)
        self._colours = {c.name: c.colour for c in self.classes}
        self._displays = {c.name: c.display for c in self.classes}

    def __iter__(self) -> Iterator[CellClass]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._by_name

    def __repr__(self) -> str:
        return f"ClassList({self.name!r}, {len(self.classes)} classes, from {self.source})"

    @property
    def names(self) -> list[str]:
        """Class names in clinical order."""
        return [c.name for c in self.classes]

    def get(self, name: str | None) -> CellClass | None:
        """The class a name (or a model label that is an alias) means; None when unknown."""
        return None if name is None else self._by_name.get(name)

    def canonical(self, name: str) -> str:
        """The class name a label means (an alias becomes its class; an unknown label stays)."""
        cls = self._by_name.get(name)
        return cls.name if cls is not None else name

    def rank(self, name: str) -> int | None:
        """Position in the clinical order (aliases resolved); None when unknown."""
        cls = self.get(name)
        return None if cls is None else self.classes.index(cls)

    def counted(self, name: str) -> bool:
        """Whether a label counts in the white-cell total (unknown labels do)."""
        cls = self.get(name)
        return True if cls is None else cls.counts_in_total

    def not_counted(self) -> frozenset[str]:
        """Names and aliases of the classes counted apart from the white-cell total."""
        return self._not_counted

    def colours(self) -> dict[str, str]:
        """``#RRGGBB`` by class name."""
        return self._colours

    def displays(self) -> dict[str, str]:
        """Display name by class name."""
        return self._displays

    def in_group(self, group: str) -> list[str]:
        """Names (aliases included) of the classes of a group, e.g. every blast."""
        return [n for n, c in self._by_name.items() if c.group == group]

    def assign_keys(self, names: Sequence[str] | None = None) -> list[tuple[str | None, str]]:
        """(key, name) for ``names`` (the list's own by default), in their order.

        A class's own key first; the others take the free keys of
        :data:`CLASS_KEY_SCHEME` in order (1-9, 0, then Shift+1 ... Shift+0);
        None once they are used up.
        """
        names = self.names if names is None else list(names)
        own: dict[str, str] = {}
        for name in names:
            cls = self.get(name)
            if cls is not None and cls.key and cls.key not in own.values():
                own[name] = cls.key
        free = [k for k in CLASS_KEY_SCHEME if k not in own.values()]
        result: list[tuple[str | None, str]] = []
        for name in names:
            if name in own:
                result.append((own[name], name))
            else:
                result.append((free.pop(0) if free else None, name))
        return result

    def to_dict(self) -> dict[str, Any]:
        """The file form (:func:`parse_class_list` reads it back)."""
        return {
            "name": self.name,
            "classes": [
                {
                    "name": c.name, "display": c.display, "abbreviation": c.abbreviation, "colour": c.colour,
                    **({"key": c.key} if c.key else {}), "counts_in_total": c.counts_in_total,
                    "per_100_wbc": c.per_100_wbc, "group": c.group, "lineage": c.lineage,
                    "aliases": list(c.aliases),
                }  # fmt: skip
                for c in self.classes
            ],
        }


def default_class_list() -> ClassList:
    """The built-in list: what a reviewer of a peripheral smear needs (22 classes)."""
    return ClassList(_DEFAULT)


def _validate(classes: Sequence[CellClass], source: str) -> None:
    where = "" if source == "built in" else f"{source}: "
    if not classes:
        raise ClassListError(f"{where}the class list is empty")
    seen: dict[str, str] = {}
    keys: dict[str, str] = {}
    abbreviations: dict[str, str] = {}
    for index, cls in enumerate(classes, 1):
        label = f"{where}class {index} ({cls.name or '?'})"
        if not isinstance(cls.name, str) or not _NAME.match(cls.name):
            raise ClassListError(
                f"{label}: name {cls.name!r} must be lower-case letters, digits, spaces, '-' or '_'"
            )
        if not cls.display.strip():
            raise ClassListError(f"{label}: the display name is empty")
        if not 1 <= len(cls.abbreviation) <= 5 or not cls.abbreviation.strip():
            raise ClassListError(f"{label}: abbreviation {cls.abbreviation!r} must be 1 to 5 characters")
        if not isinstance(cls.colour, str) or not _COLOUR.match(cls.colour):
            raise ClassListError(f"{label}: colour {cls.colour!r} is not #RRGGBB (e.g. #56B4E9)")
        if cls.key is not None and cls.key not in CLASS_KEY_SCHEME:
            raise ClassListError(
                f"{label}: key {cls.key!r} is not a class key (1-9, 0, Shift+1 ... Shift+0; "
                "the other keys are the viewer's commands)"
            )
        if cls.group not in GROUPS:
            raise ClassListError(f"{label}: group {cls.group!r} is not one of {', '.join(GROUPS)}")
        if cls.lineage and cls.lineage not in ("myeloid", "lymphoid", "unspecified"):
            raise ClassListError(f"{label}: lineage {cls.lineage!r} is not myeloid, lymphoid or unspecified")
        if cls.per_100_wbc and cls.counts_in_total:
            raise ClassListError(f"{label}: a class reported per 100 white cells cannot count in their total")
        for text in (cls.name, *cls.aliases):
            if text in seen:
                raise ClassListError(f"{label}: {text!r} is already used by {seen[text]}")
            seen[text] = cls.name
        if cls.key is not None:
            if cls.key in keys:
                raise ClassListError(f"{label}: key {cls.key} is also the key of {keys[cls.key]}")
            keys[cls.key] = cls.name
        folded = cls.abbreviation.lower()
        if folded in abbreviations:
            raise ClassListError(f"{label}: abbreviation {cls.abbreviation} is also that of {abbreviations[folded]}")
        abbreviations[folded] = cls.name
    if all(not c.counts_in_total for c in classes):
        raise ClassListError(f"{where}no class counts in the white-cell total")


def _abbreviate(name: str) -> str:
    words = name.split()
    return (words[0][:4] if len(words) == 1 else "".join(w[0] for w in words)[:5]).capitalize()


_FIELDS = {
    "name", "display", "abbreviation", "colour", "color", "key", "counts_in_total", "per_100_wbc",
    "group", "lineage", "order", "aliases",
}  # fmt: skip


def parse_class_list(data: Mapping[str, Any], source: str = "class list") -> ClassList:
    """A :class:`ClassList` from the file form (a TOML or JSON document already read).

    Raises
    ------
    ClassListError
        Naming the entry and the field that is wrong.
    """
    if not isinstance(data, Mapping):
        raise ClassListError(f"{source}: expected a table with a 'classes' list")
    entries = data.get("classes")
    if not isinstance(entries, list) or not entries:
        raise ClassListError(f"{source}: expected a non-empty 'classes' list ([[classes]] tables in TOML)")
    classes = []
    for index, entry in enumerate(entries, 1):
        if not isinstance(entry, Mapping):
            raise ClassListError(f"{source}: class {index} is not a table")
        label = f"{source}: class {index} ({entry.get('name', '?')})"
        unknown = sorted(set(entry) - _FIELDS)
        if unknown:
            raise ClassListError(f"{label}: unknown field(s) {', '.join(unknown)}")
        name = entry.get("name")
        if not isinstance(name, str):
            raise ClassListError(f"{label}: 'name' must be text")
        text = {k: entry.get(k) for k in ("display", "abbreviation", "key", "group", "lineage")}
        for key, value in text.items():
            if value is not None and not isinstance(value, str):
                raise ClassListError(f"{label}: {key!r} must be text, got {value!r}")
        colour = entry.get("colour", entry.get("color"))
        if not isinstance(colour, str):
            raise ClassListError(f"{label}: 'colour' (#RRGGBB) is missing")
        flags = {}
        for key, default in (("counts_in_total", True), ("per_100_wbc", False)):
            value = entry.get(key, default)
            if not isinstance(value, bool):
                raise ClassListError(f"{label}: {key!r} must be true or false, got {value!r}")
            flags[key] = value
        order = entry.get("order", index)
        if isinstance(order, bool) or not isinstance(order, int):
            raise ClassListError(f"{label}: 'order' must be a whole number, got {order!r}")
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ClassListError(f"{label}: 'aliases' must be a list of model labels")
        classes.append(
            CellClass(
                name=name.strip(),
                display=(text["display"] or name).strip(),
                abbreviation=(text["abbreviation"] or _abbreviate(name)).strip(),
                colour=colour.upper() if _COLOUR.match(colour) else colour,
                key=text["key"] or None,
                counts_in_total=flags["counts_in_total"],
                per_100_wbc=flags["per_100_wbc"],
                group=text["group"] or "other",
                lineage=text["lineage"] or "",
                order=order,
                aliases=tuple(a.strip() for a in aliases),
            )
        )
    title = data.get("name", Path(source).stem)
    if not isinstance(title, str):
        raise ClassListError(f"{source}: 'name' must be text")
    return ClassList(classes, title, source)


def load_class_list(path: str | os.PathLike[str]) -> ClassList:
    """Read a class list from a ``.toml`` or ``.json`` file (ClassListError when it cannot be used)."""
    path = Path(path)
    try:
        if path.stat().st_size > 1 << 20:
            raise ClassListError("the class list is larger than 1 MiB", path)
        raw = path.read_bytes()
    except OSError as exc:
        raise ClassListError(f"cannot read the class list ({exc.strerror or exc})", path) from exc
    try:
        text = raw.decode("utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ClassListError("the class list is not UTF-8 text", path) from exc
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ClassListError(f"not valid {kind} ({exc})", path) from exc
    return parse_class_list(data, str(path))


# ---------------------------------------------------------------- the differential, by the list


# ---------------------------------------------------------------- live views


class LiveSequence(Sequence[str]):
    """A read-only sequence that is whatever ``read()`` returns now (the active list's names)."""

    def __init__(self, read: Callable[[], Sequence[str]]) -> None:
        self._read = read

    def __getitem__(self, index: Any) -> Any:  # int or slice, as Sequence's
        return self._read()[index]

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return f"LiveSequence({list(self._read())!r})"


class LiveSet(AbstractSet[str]):
    """A read-only set that is whatever ``read()`` returns now."""

    def __init__(self, read: Callable[[], AbstractSet[str]]) -> None:
        self._read = read

    def __contains__(self, item: object) -> bool:
        return item in self._read()

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return f"LiveSet({set(self._read())!r})"


class LiveMapping(Mapping[str, str]):
    """A read-only mapping that is whatever ``read()`` returns now."""

    def __init__(self, read: Callable[[], Mapping[str, str]]) -> None:
        self._read = read

    def __getitem__(self, key: str) -> str:
        return self._read()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return f"LiveMapping({dict(self._read())!r})"


# ---------------------------------------------------------------- where the list comes from


def user_config_folder() -> Path:
    """The user's LeukView configuration folder (``$LEUKVIEW_CONFIG_DIR`` overrides it).

    ``~/.config/LeukView`` on Linux (``$XDG_CONFIG_HOME``), ``%APPDATA%\\LeukView``
    on Windows, ``~/Library/Preferences/LeukView`` on macOS: where Qt keeps the
    viewer's own settings, so a lab's IT finds both in one place.
    """
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "LeukView"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Preferences" / "LeukView"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "LeukView"


def user_class_file() -> Path | None:
    """The lab's list in the configuration folder (``classes.toml``, else ``classes.json``), if there."""
    folder = user_config_folder()
    for name in ("classes.toml", "classes.json"):
        if (folder / name).is_file():
            return folder / name
    return None


def class_list_source() -> tuple[Path | None, str]:
    """(file, why) of the list that applies now; (None, "built in") without one."""
    env = os.environ.get(CLASSES_ENV)
    if env:
        return Path(env), f"${CLASSES_ENV}"
    found = user_class_file()
    if found is not None:
        return found, "the configuration folder"
    return None, "built in"


_active: ClassList | None = None
_problem: str | None = None


def active_classes() -> ClassList:
    """The class list in use (read once from :func:`class_list_source`; the built-in one when that fails)."""
    global _active, _problem
    if _active is None:
        path, _why = class_list_source()
        if path is None:
            _active, _problem = default_class_list(), None
        else:
            try:
                _active, _problem = load_class_list(path), None
            except ClassListError as exc:
                _active, _problem = default_class_list(), f"{exc} (the built-in class list is used instead)"
    return _active


def class_list_problem() -> str | None:
    """Why the lab's file is not used (None when it is, or when there is none)."""
    active_classes()
    return _problem


def set_active_classes(classes: ClassList | None) -> ClassList:
    """Use ``classes`` from now on; None reads :func:`class_list_source` again. Returns the list in use."""
    global _active, _problem
    _active, _problem = classes, None
    return active_classes()


def install_class_list(path: str | os.PathLike[str]) -> Path:
    """Validate a lab's file and copy it into the configuration folder, where every LeukView reads it.

    Returns the installed copy; ClassListError when the file is not valid (nothing is changed then).
    """
    from .atomic import atomic_write_bytes

    path = Path(path)
    load_class_list(path)  # refused before anything is written
    suffix = ".json" if path.suffix.lower() == ".json" else ".toml"
    folder = user_config_folder()
    target = folder / f"classes{suffix}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, path.read_bytes())
        other = folder / ("classes.toml" if suffix == ".json" else "classes.json")
        other.unlink(missing_ok=True)  # one list, not two
    except OSError as exc:
        raise ClassListError(f"cannot install the class list ({exc.strerror or exc})", target) from exc
    set_active_classes(None)
    return target


def remove_installed_class_list() -> None:
    """Go back to the built-in list (the configuration folder's file is removed)."""
    folder = user_config_folder()
    try:
        for name in ("classes.toml", "classes.json"):
            (folder / name).unlink(missing_ok=True)
    except OSError as exc:
        raise ClassListError(f"cannot remove the class list ({exc.strerror or exc})", folder) from exc
    set_active_classes(None)


def abbreviation(name: str | None) -> str:
    """The short code drawn beside a class's colour (``"Eos"``); unknown labels get one from their name."""
    if name is None:
        return "?"
    cls = active_classes().get(name)
    return cls.abbreviation if cls is not None else _abbreviate(name)


def with_keys(classes: ClassList, keys: Mapping[str, str | None]) -> ClassList:
    """A copy with some classes' keys changed (validated)."""
    return ClassList(
        [replace(c, key=keys.get(c.name, c.key)) for c in classes], classes.name, classes.source
    )


# ---------------------------------------------------------------- colour vision


# Machado, Oliveira & Fernandes (2009), severity 1, applied to linear RGB.
_CVD = {
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881)),
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
    "tritanopia": ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602), (0.004733, 0.691367, 0.303900)),
}  # fmt: skip


def _linear(rgb: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb, np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb(linear: np.ndarray) -> np.ndarray:
    c = np.clip(linear, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055) * 255.0


def _hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], np.float64)


def simulate_colour_vision(colour: str, kind: str) -> tuple[int, int, int]:
    """How ``#RRGGBB`` looks to a dichromat (``deuteranopia``, ``protanopia``, ``tritanopia``) or ``normal``."""
    rgb = _hex_rgb(colour)
    if kind != "normal":
        rgb = _srgb(np.asarray(_CVD[kind]) @ _linear(rgb))
    r, g, b = (int(round(float(v))) for v in rgb)
    return r, g, b


def _lab(rgb: Sequence[float]) -> np.ndarray:
    linear = _linear(np.asarray(rgb, np.float64))
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16.0 / 116.0)
    return np.array([116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])])


def colour_distance(first: str, second: str, kind: str = "normal") -> float:
    """CIE76 ΔE between two ``#RRGGBB`` colours as seen with ``kind`` colour vision (>= 10: easily told apart)."""
    a = _lab(simulate_colour_vision(first, kind))
    b = _lab(simulate_colour_vision(second, kind))
    return float(np.linalg.norm(a - b))

