"""A case: one specimen's images (a slide, or many fields) analysed and reviewed as one.

A pathologist counts a slide, not a field: a case pools the white cells of
all its images into one differential with one 100- or 200-cell target, one
review order and one gallery, keeps one audit log and is saved as one file.

Model
-----
* :class:`Case` holds :class:`CaseImage` s in order (next/previous field).
  Each image keeps its own :class:`~leukview.core.session.Session` (its
  analysis, path, fingerprint and the audit entries about its cells), all
  sharing the case's one :class:`~leukview.core.session.SessionSettings`
  (threshold, target, report fields). Case-level events (an image added or
  removed, a counting area set) are :class:`CaseEvent` s.
* A cell is addressed as :class:`CellRef` ``(image id, cell id)``; image ids
  are unique in the case (the file's stem, ``-2``, ``-3``... when stems collide).
* An image may have a **counting area** (:class:`~leukview.core.tiling.CountingArea`:
  a slide's automatic monolayer, a polygon drawn by a person or imported from
  QuPath GeoJSON); the differential counts the white cells whose centroid
  lies inside it, and all cells of images without one.
* **One audit log** (:meth:`Case.audit_log`): the images' entries, each with
  its image id, and the case's events, in time order.

File (``<name>.case.leukview.json``, :func:`save_case`, atomic)::

    {"format": "leukview-case", "schema_version": 1, "name": "patient-17",
     "app_version": "0.1.0", "created": "...", "modified": "...",
     "settings": {<SessionSettings>},
     "images": [{"id": "field-01", "kind": "field", "name": "field-01.jpg", "path": "/data/field-01.jpg",
                 "size_bytes": 30245, "fingerprint": "<sha256>",
                 "analysis": {<cells.json, schema 2>}, "counting_area": null,
                 "side_table": null, "estimated_counts": null}],
     "audit": [{"image": "field-01", "time": "...", "action": "analyse", ...},
               {"image": null, "time": "...", "action": "add image", "reviewer": "...", "note": "..."}]}

How :class:`~leukview.core.document.ReviewDocument` can hold a case: the
document's one session becomes ``case.image_session(current)`` (the same
object, so every existing per-image path, review, undo, calibration, works
unchanged and lands in the case), its differential, review order and gallery
come from :meth:`Case.differential`, :meth:`Case.review_order` and
:meth:`Case.gallery`, next/previous field is :meth:`Case.step`, a gallery cell
jumps to ``ref.image`` and that cell's centroid, and saving writes
:func:`save_case` instead of the image's session file.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

from .analysis import Analysis
from .atomic import atomic_write_text
from .calls import (
    Differential,
    call_cell,
    differential_count,
    lowest_confidence,
    review_cells,
)
from .cells import CELL_KINDS, Cell, ReviewState
from .domain import DomainCheck, case_check
from .errors import LeukViewError, SessionError
from .session import (
    AuditAction,
    AuditEntry,
    ImageMatch,
    Session,
    SessionDamaged,
    SessionNewerVersion,
    SessionSettings,
    current_user,
    image_fingerprint,
    now_iso,
)
from .tiling import CountingArea, merge_differentials

__all__ = [
    "CASE_FORMAT",
    "CASE_SCHEMA_VERSION",
    "CASE_SUFFIX",
    "IMAGE_KINDS",
    "Case",
    "CaseAction",
    "CaseEvent",
    "CaseImage",
    "CellRef",
    "LogLine",
    "case_path",
    "case_summary",
    "load_case",
    "save_case",
]

CASE_FORMAT = "leukview-case"
CASE_SCHEMA_VERSION = 1
CASE_SUFFIX = ".case.leukview.json"
IMAGE_KINDS = ("field", "slide")


class CellRef(NamedTuple):
    """A cell of a case: the image it is in and its id there."""

    image: str
    cell: int

    def __str__(self) -> str:
        return f"{self.image}#{self.cell}"


class CaseAction(str, Enum):
    """What a case-level event records (a closed set)."""

    ADD_IMAGE = "add image"
    REMOVE_IMAGE = "remove image"
    SET_COUNTING_AREA = "set counting area"
    CLEAR_COUNTING_AREA = "clear counting area"

    def __str__(self) -> str:
        return self.value


@dataclass
class CaseEvent:
    """A case-level line of the audit log: an image added or removed, a counting area set."""

    time: str
    reviewer: str
    action: CaseAction
    image: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        try:
            self.action = CaseAction(self.action)
        except ValueError as exc:
            raise SessionError(f"unknown case action {self.action!r}") from exc

    @property
    def when(self) -> str:
        return self.time

    @property
    def who(self) -> str:
        return self.reviewer

    def describe(self) -> str:
        text = f"{self.action.value} {self.image}" if self.image else self.action.value
        return f"{text}; {self.note}" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "time": self.time, "reviewer": self.reviewer,
                "action": self.action.value, "note": self.note}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseEvent:
        image = data.get("image")
        return cls(
            time=str(data.get("time", "")),
            reviewer=str(data.get("reviewer", "")),
            action=data.get("action"),  # type: ignore[arg-type]  # checked in __post_init__
            image=None if image is None else str(image),
            note=str(data.get("note") or ""),
        )


class LogLine(NamedTuple):
    """One line of a case's audit log: the image it concerns (None: the case) and the entry."""

    image: str | None
    entry: AuditEntry | CaseEvent

    @property
    def when(self) -> str:
        return self.entry.when

    @property
    def who(self) -> str:
        return self.entry.who

    @property
    def action(self) -> AuditAction | CaseAction:
        return self.entry.action

    @property
    def cell(self) -> int | None:
        return getattr(self.entry, "cell", None)

    @property
    def before(self) -> str | None:
        return getattr(self.entry, "before", None)

    @property
    def after(self) -> str | None:
        return getattr(self.entry, "after", None)

    def describe(self) -> str:
        text = self.entry.describe()
        if self.image is not None and isinstance(self.entry, AuditEntry):
            return f"{self.image}: {text}"
        return text


@dataclass
class CaseImage:
    """One image of a case.

    Attributes
    ----------
    id : str
        Unique in the case.
    session : Session
        Its analysis, path, fingerprint and audit entries (settings: the case's).
    kind : {'field', 'slide'}
    counting_area : CountingArea, optional
        Where its white cells count (all of them when None).
    side_table : str, optional
        A slide's table of red cells and platelets (path as written).
    estimated_counts : dict of str to int, optional
        A slide's cells per kind extrapolated from the sampled tiles.
    """

    id: str
    session: Session
    kind: str = "field"
    counting_area: CountingArea | None = None
    side_table: str | None = None
    estimated_counts: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in IMAGE_KINDS:
            raise SessionError(f"image kind must be one of {IMAGE_KINDS}, got {self.kind!r}")

    @property
    def analysis(self) -> Analysis:
        return self.session.analysis

    @property
    def path(self) -> str:
        return self.session.image_path

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else self.id

    def cell(self, cell_id: int) -> Cell:
        return self.session.cell(cell_id)

    def counted(self, cells: Sequence[Cell] | None = None) -> list[Cell]:
        """The cells the differential counts: inside the counting area (all without one)."""
        cells = list(self.analysis.cells if cells is None else cells)
        if self.counting_area is None or not cells:
            return cells
        import numpy as np

        inside = self.counting_area.contains(np.array([c.centroid for c in cells], float))
        return [c for c, ok in zip(cells, inside, strict=True) if ok]

    def differential(self, threshold: float, *, in_area: bool = True) -> Differential:
        cells = review_cells(self.analysis.cells)
        if in_area:
            cells = self.counted(cells)
        return differential_count(cells, self.analysis.models, threshold)


def _unique_id(stem: str, used: set[str]) -> str:
    base = stem or "image"
    candidate, n = base, 1
    while candidate in used:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


@dataclass
class Case:
    """One specimen's images, analysed and reviewed as one (see the module docstring).

    Attributes
    ----------
    name : str
    images : list of CaseImage
        In reading order (next / previous field).
    settings : SessionSettings
        One for the case, shared by every image's session.
    events : list of CaseEvent
    created, modified, app_version : str
    """

    name: str
    images: list[CaseImage] = field(default_factory=list)
    settings: SessionSettings = field(default_factory=SessionSettings)
    events: list[CaseEvent] = field(default_factory=list)
    created: str = field(default_factory=now_iso)
    modified: str = field(default_factory=now_iso)
    app_version: str = ""

    def __post_init__(self) -> None:
        name = str(self.name).strip()
        if not name or any(ch in name for ch in "/\\\0") or name in (".", ".."):
            raise SessionError(f"a case name must be a plain file name, got {self.name!r}")
        self.name = name
        if not self.app_version:
            from .. import __version__

            self.app_version = __version__

    # ---------------------------------------------------------------- images

    @classmethod
    def new(cls, name: str, settings: SessionSettings | None = None) -> Case:
        return cls(name=name, settings=settings or SessionSettings())

    @classmethod
    def from_session(cls, session: Session, name: str | None = None) -> Case:
        """A case of one image, sharing that session (its settings become the case's)."""
        stem = Path(session.image_path).stem if session.image_path else "image"
        case = cls(name=name or stem, settings=session.settings)
        case.images.append(CaseImage(_unique_id(stem, set()), session))
        return case

    @property
    def threshold(self) -> float:
        return self.settings.confidence_threshold

    def ids(self) -> list[str]:
        return [image.id for image in self.images]

    def image(self, image_id: str) -> CaseImage:
        for image in self.images:
            if image.id == image_id:
                return image
        raise KeyError(image_id)

    def index(self, image_id: str) -> int:
        return self.ids().index(image_id)

    def step(self, image_id: str, step: int = 1) -> str | None:
        """The image ``step`` places after (``-1``: before) ``image_id``; None past either end."""
        k = self.index(image_id) + step
        return self.images[k].id if 0 <= k < len(self.images) else None

    def add_image(
        self,
        analysis: Analysis,
        path: str | os.PathLike[str] | None = None,
        *,
        kind: str = "field",
        image_id: str | None = None,
        counting_area: CountingArea | None = None,
        side_table: str | None = None,
        estimated_counts: Mapping[str, int] | None = None,
        who: str | None = None,
    ) -> CaseImage:
        """Add an analysed image (its fingerprint taken now); audited."""
        stem = image_id or (Path(path).stem if path is not None else (Path(analysis.image).stem if analysis.image else "image"))
        new_id = _unique_id(stem, set(self.ids()))
        if image_id is not None and new_id != image_id:
            raise SessionError(f"the case already has an image {image_id!r}")
        session = Session.new(analysis, path, settings=self.settings, who=who)  # the case's settings object
        image = CaseImage(
            new_id, session, kind, counting_area, side_table,
            None if estimated_counts is None else dict(estimated_counts),
        )
        self.images.append(image)
        self._event(CaseAction.ADD_IMAGE, new_id, f"{kind} {image.name}, {len(analysis.cells)} cells", who)
        return image

    def remove_image(self, image_id: str, who: str | None = None) -> CaseImage:
        image = self.image(image_id)
        self.images.remove(image)
        self._event(CaseAction.REMOVE_IMAGE, image_id, image.name, who)
        return image

    def set_counting_area(self, image_id: str, area: CountingArea | None, who: str | None = None) -> None:
        """Count only the white cells inside ``area`` on this image (None: all of them); audited."""
        image = self.image(image_id)
        image.counting_area = None if area is None or area.empty else area
        if image.counting_area is None:
            self._event(CaseAction.CLEAR_COUNTING_AREA, image_id, "", who)
        else:
            inside = len(image.counted(review_cells(image.analysis.cells)))
            note = (f"{image.counting_area.source}, {len(image.counting_area.polygons)} polygon(s), "
                    f"{inside} white cells inside")
            self._event(CaseAction.SET_COUNTING_AREA, image_id, note, who)

    def _event(self, action: CaseAction, image: str | None, note: str, who: str | None) -> CaseEvent:
        event = CaseEvent(now_iso(), who or current_user(), action, image, note)
        self.events.append(event)
        self.modified = event.time
        return event

    def check_images(self) -> list[tuple[str, ImageMatch, str]]:
        """Whether each image file is still the one analysed: ``(id, match, reason)``."""
        out = []
        for image in self.images:
            path = Path(image.path)
            if not image.path or not path.is_file():
                out.append((image.id, ImageMatch.UNREADABLE, f"{image.path or 'no path'} is not there"))
                continue
            try:
                same = image_fingerprint(path) == image.session.fingerprint
            except SessionError as exc:
                out.append((image.id, ImageMatch.UNREADABLE, exc.reason))
                continue
            out.append((image.id, ImageMatch.SAME if same else ImageMatch.CHANGED,
                        "" if same else "the file changed since it was analysed"))
        return out

    # ---------------------------------------------------------------- cells

    def image_session(self, image_id: str) -> Session:
        """The session of one image: the same object, so what is done to it is done to the case."""
        return self.image(image_id).session

    def cell(self, ref: CellRef | tuple[str, int]) -> Cell:
        ref = CellRef(*ref)
        return self.image(ref.image).cell(ref.cell)

    def cells(self, *, review_only: bool = True) -> Iterator[tuple[CellRef, Cell]]:
        """Every cell of the case (the review cells only by default), image by image."""
        for image in self.images:
            cells = review_cells(image.analysis.cells) if review_only else image.analysis.cells
            for cell in cells:
                yield CellRef(image.id, cell.id), cell

    def counted(self) -> Iterator[tuple[CellRef, Cell]]:
        """The review cells the differential counts (inside each image's counting area)."""
        for image in self.images:
            for cell in image.counted(review_cells(image.analysis.cells)):
                yield CellRef(image.id, cell.id), cell

    def differential(self, threshold: float | None = None, *, in_area: bool = True) -> Differential:
        """One differential pooled over the case's images (their counting areas applied)."""
        threshold = self.threshold if threshold is None else threshold
        parts = [image.differential(threshold, in_area=in_area) for image in self.images]
        pooled = merge_differentials(parts)
        return pooled if pooled is not None else differential_count([], [], threshold)

    def counts_by_kind(self) -> dict[str, int]:
        """Cells found per kind, over the images."""
        total = dict.fromkeys(CELL_KINDS, 0)
        for image in self.images:
            for kind, n in image.analysis.counts_by_kind().items():
                total[kind] = total.get(kind, 0) + n
        return total

    def estimated_counts_by_kind(self) -> dict[str, int]:
        """As :meth:`counts_by_kind`, with slides' red cells and platelets extrapolated from their samples."""
        total = dict.fromkeys(CELL_KINDS, 0)
        for image in self.images:
            counts = image.estimated_counts or image.analysis.counts_by_kind()
            for kind in CELL_KINDS:
                total[kind] += int(counts.get(kind, 0))
        return total

    def blast_fraction(self, threshold: float | None = None) -> float | None:
        """Blasts over the differential's white-cell total (None: nothing could call one, or no cell)."""
        percent = self.differential(threshold).blast_percent
        return None if percent is None else percent / 100.0

    def domain(self) -> DomainCheck:
        return case_check([image.analysis.domain for image in self.images])

    def review_order(self, threshold: float | None = None) -> list[CellRef]:
        """The counted cells in the order they are offered: atypical, flagged, unreviewed, reviewed.

        Within a group, the least confident first; ties in image order, then reading order.
        """
        threshold = self.threshold if threshold is None else threshold
        order = {image.id: k for k, image in enumerate(self.images)}
        keyed = []
        for ref, cell in self.counted():
            models = self.image(ref.image).analysis.models
            call = call_cell(cell, models, threshold)
            lowest = lowest_confidence(cell, models)
            group = 3 if call.reviewed else (0 if call.atypical else (1 if call.needs_review else 2))
            keyed.append(((group, 1.0 if lowest is None else lowest, order[ref.image],
                           round(cell.centroid[1] / 32.0), cell.centroid[0]), ref))
        keyed.sort(key=lambda t: t[0])
        return [ref for _, ref in keyed]

    def gallery(self, threshold: float | None = None) -> dict[str | None, list[CellRef]]:
        """One gallery across the case: counted cells by call (None: unclassified), in review order."""
        threshold = self.threshold if threshold is None else threshold
        out: dict[str | None, list[CellRef]] = {}
        for ref in self.review_order(threshold):
            image = self.image(ref.image)
            label = call_cell(image.cell(ref.cell), image.analysis.models, threshold).label
            out.setdefault(label, []).append(ref)
        return out

    # ---------------------------------------------------------------- review

    def review(
        self, ref: CellRef | tuple[str, int], label: str | None, *,
        action: AuditAction | str = AuditAction.RECLASSIFY, who: str | None = None,
    ) -> tuple[ReviewState, AuditEntry]:
        """Give a cell the reviewer's label (None clears it); audited in its image's log."""
        ref = CellRef(*ref)
        result = self.image_session(ref.image).set_review(ref.cell, label, action=action, who=who)
        self.modified = result[1].time
        return result

    def restore_review(
        self, ref: CellRef | tuple[str, int], state: ReviewState, *, action: AuditAction | str, who: str | None = None
    ) -> AuditEntry:
        """Put back an earlier review state (undo / redo); audited."""
        ref = CellRef(*ref)
        entry = self.image_session(ref.image).restore_review(ref.cell, state, action=action, who=who)
        self.modified = entry.time
        return entry

    def audit_log(self) -> list[LogLine]:
        """The one audit log: every image's entries and the case's events, in time order."""
        lines: list[tuple[str, int, LogLine]] = []
        seq = 0
        for event in self.events:
            lines.append((event.time, seq, LogLine(event.image, event)))
            seq += 1
        for image in self.images:
            for entry in image.session.audit:
                lines.append((entry.time, seq, LogLine(image.id, entry)))
                seq += 1
        lines.sort(key=lambda t: (t[0], t[1]))
        return [line for _, _, line in lines]

    def pooled_analysis(self) -> tuple[Analysis, list[CellRef]]:
        """Every counted cell as one analysis (ids 1..n, copies) and the case reference of each.

        For a report or a CSV of the whole case; the models are the first image's.
        """
        cells: list[Cell] = []
        refs: list[CellRef] = []
        for ref, cell in self.counted():
            copied = copy.deepcopy(cell)
            copied.id = len(cells) + 1
            cells.append(copied)
            refs.append(ref)
        first = self.images[0].analysis if self.images else Analysis(0, 0, [])
        analysis = Analysis(
            width=first.width, height=first.height, cells=cells, models=list(first.models),
            image=f"case {self.name}", calibration=first.calibration,
            confidence_threshold=self.threshold, domain=self.domain() if self.images else None,
        )
        return analysis, refs

    # ---------------------------------------------------------------- files

    def to_dict(self) -> dict[str, Any]:
        images = []
        for image in self.images:
            s = image.session
            images.append({
                "id": image.id,
                "kind": image.kind,
                "name": image.name,
                "path": s.image_path,
                "size_bytes": s.size_bytes,
                "fingerprint": s.fingerprint,
                "created": s.created,
                "analysis": s.analysis.to_dict(self.threshold),
                "counting_area": None if image.counting_area is None else image.counting_area.to_dict(),
                "side_table": image.side_table,
                "estimated_counts": image.estimated_counts,
            })
        audit = [
            {"image": line.image, **line.entry.to_dict()} if isinstance(line.entry, AuditEntry) else line.entry.to_dict()
            for line in self.audit_log()
        ]
        return {
            "format": CASE_FORMAT,
            "schema_version": CASE_SCHEMA_VERSION,
            "name": self.name,
            "app_version": self.app_version,
            "created": self.created,
            "modified": self.modified,
            "settings": self.settings.to_dict(),
            "images": images,
            "audit": audit,
        }

    @classmethod
    def from_dict(cls, data: Any, path: str | os.PathLike[str] | None = None) -> Case:
        if not isinstance(data, dict) or data.get("format") != CASE_FORMAT:
            raise SessionDamaged("not a LeukView case file", path)
        version = data.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > CASE_SCHEMA_VERSION:
            raise SessionNewerVersion(
                f"case schema_version {version} is newer than this LeukView reads ({CASE_SCHEMA_VERSION}); "
                "update LeukView", path,
            )
        if version != CASE_SCHEMA_VERSION or isinstance(version, bool):
            raise SessionDamaged(f"case schema_version {version!r} is not a version", path)
        try:
            settings = SessionSettings.from_dict(data.get("settings"))
            case = cls(
                name=str(data["name"]), settings=settings,
                created=str(data.get("created", "")), modified=str(data.get("modified", "")),
                app_version=str(data.get("app_version", "")),
            )
            seen: set[str] = set()
            for raw in data.get("images", []):
                image_id = str(raw["id"])
                if image_id in seen:
                    raise SessionError(f"two images have the id {image_id!r}")
                seen.add(image_id)
                session = Session(
                    analysis=Analysis.from_dict(raw["analysis"]),
                    image_path=str(raw.get("path") or ""),
                    fingerprint=str(raw.get("fingerprint") or ""),
                    size_bytes=int(raw.get("size_bytes") or 0),
                    settings=settings,
                    created=str(raw.get("created", "")),
                    app_version=case.app_version,
                )
                area = raw.get("counting_area")
                estimated = raw.get("estimated_counts")
                case.images.append(CaseImage(
                    image_id, session, str(raw.get("kind", "field")),
                    None if area is None else CountingArea.from_dict(area),
                    None if raw.get("side_table") is None else str(raw["side_table"]),
                    None if estimated is None else {str(k): int(v) for k, v in estimated.items()},
                ))
            for raw in data.get("audit", []):
                if not isinstance(raw, dict):
                    raise SessionError(f"an audit entry must be an object, got {raw!r}")
                if raw.get("action") in {a.value for a in CaseAction}:
                    case.events.append(CaseEvent.from_dict(raw))
                    continue
                owner = raw.get("image")
                if owner not in seen:
                    raise SessionError(f"an audit entry names no image of the case ({owner!r})")
                entry = AuditEntry.from_dict({k: v for k, v in raw.items() if k != "image"})
                case.image(str(owner)).session.audit.append(entry)
            return case
        except LeukViewError as exc:
            raise SessionDamaged(f"damaged case file: {exc.reason}", path) from exc
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise SessionDamaged(f"damaged case file ({type(exc).__name__}: {exc})", path) from exc
        except RecursionError as exc:
            raise SessionDamaged("damaged case file: content nested too deeply", path) from exc


def case_path(folder: str | os.PathLike[str], name: str) -> Path:
    """``<folder>/<name>.case.leukview.json``."""
    return Path(folder) / f"{name}{CASE_SUFFIX}"


def save_case(case: Case, path: str | os.PathLike[str]) -> Path:
    """Write a case file atomically (a crash leaves the previous one)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(case.to_dict(), separators=(",", ":")))
    return path


_MAX_CASE_BYTES = 2 * 1024**3


def load_case(path: str | os.PathLike[str]) -> Case:
    """Read a case file.

    Raises
    ------
    SessionError
        Missing, unreadable, damaged, or of a newer version.
    """
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_CASE_BYTES:
            raise SessionDamaged("the case file is larger than 2 GiB", path)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SessionError("no such case file", path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"cannot read the case file ({exc})", path) from exc
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SessionDamaged(f"the case file is not valid JSON ({exc})", path) from exc
    return Case.from_dict(data, path)


def case_summary(case: Case, threshold: float | None = None) -> dict[str, Any]:
    """The ``<name>.case.json`` of ``leukview analyze --case``.

    Keys: ``case``, ``images`` (id, path, kind, size, cells per kind, white
    cells counted, counting area), ``counts_by_kind`` (cells found),
    ``estimated_counts_by_kind`` (slides' red cells and platelets
    extrapolated), ``differential`` ({class: count}, pooled, counting areas
    applied), ``unclassified``, ``atypical``, ``leukocytes`` (the
    denominator), ``blast_fraction`` (blasts / leukocytes, None when nothing
    could call a blast or no white cell was classified), ``target`` and
    ``target_reached`` (the 100/200-cell count), ``confidence_threshold``.
    """
    threshold = case.threshold if threshold is None else threshold
    diff = case.differential(threshold)
    blast = diff.blast_percent
    images = []
    for image in case.images:
        a = image.analysis
        images.append({
            "id": image.id,
            "path": image.path,
            "kind": image.kind,
            "width": a.width,
            "height": a.height,
            "counts_by_kind": a.counts_by_kind(),
            "white_cells_counted": len(image.counted(review_cells(a.cells))),
            "counting_area": None if image.counting_area is None else image.counting_area.source,
        })
    target = int(case.settings.target)
    return {
        "case": case.name,
        "images": images,
        "counts_by_kind": case.counts_by_kind(),
        "estimated_counts_by_kind": case.estimated_counts_by_kind(),
        "differential": {name: int(diff.counts.get(name, 0)) for name in diff.classes},
        "unclassified": diff.unclassified,
        "atypical": diff.atypical,
        "leukocytes": diff.leukocytes,
        "blast_fraction": None if blast is None else round(blast / 100.0, 6),
        "target": target,
        "target_reached": diff.leukocytes >= target,
        "confidence_threshold": threshold,
    }
