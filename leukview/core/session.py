"""A review session: the analysis of one image, every correction and an audit log.

Saved beside the image as ``<image>.leukview.json`` (``BloodImage_00214.jpg``
-> ``BloodImage_00214.jpg.leukview.json``), written atomically so that a
crash or a full disk leaves the last saved session intact. The document is
versioned (``schema_version``); a newer version is refused with a clear
message instead of being misread.

Example (``schema_version`` 2, abridged)::

    {
      "format": "leukview-session", "schema_version": 2, "app_version": "0.1.0",
      "created": "2024-05-02T10:14:03+02:00", "modified": "2024-05-02T10:20:41+02:00",
      "image": {"name": "BloodImage_00214.jpg", "path": "/data/BloodImage_00214.jpg",
                "size_bytes": 30245, "fingerprint": "<sha256 of size, head and tail>"},
      "settings": {"models": ["wbc-type"], "segmentation": {...}, "confidence_threshold": 0.7,
                   "field": null, "target": 100, "heat_mode": "off", "heat_opacity": 0.5},
      "analysis": {<the cells.json document, reviews and calibration included>},
      "cams": {"<cell id>": {"<model>": {"shape": [h, w], "box": [x0, y0, x1, y1],
                                          "data": "<base64 uint8>"}}},
      "audit": [{"time": "...", "reviewer": "jdoe", "action": "reclassify", "cell": 7,
                 "before": "monocyte", "after": "lymphocyte", "model": "wbc-type",
                 "models": {"wbc-type": "1.0.0"}, "detail": null, "note": ""},
                {"time": "...", "reviewer": "jdoe", "action": "set pixel size", "cell": null,
                 "before": null, "after": null, "model": null, "models": {"wbc-type": "1.0.0"},
                 "detail": {"pixel_size_um": 0.25, "source": "user"}, "note": ""}]
    }

Version 1 (still read): ``settings`` was an untyped object that also held
``pixel_size_um`` and a prose ``pixel_size_source`` (now the analysis's
calibration); audit entries had ``when``, ``who``, ``model_version`` and a
prose ``detail`` (now ``time``, ``reviewer``, ``models`` and ``note``).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from .analysis import Analysis
from .atomic import atomic_write_text
from .calibration import Calibration
from .calls import DEFAULT_CONFIDENCE_THRESHOLD, call_cell
from .cells import Cell, ReviewState
from .errors import LeukViewError, SessionError

SESSION_FORMAT = "leukview-session"
SESSION_SCHEMA_VERSION = 2
SESSION_SUFFIX = ".leukview.json"
_FINGERPRINT_CHUNK = 1 << 20


class SessionNotFound(SessionError):
    """There is no session file."""


class SessionUnreadable(SessionError):
    """The file exists but cannot be read (permission, I/O error): it must be kept as it is."""


class SessionNewerVersion(SessionError):
    """A newer LeukView wrote the file: it must be kept for that version, not overwritten."""


class SessionDamaged(SessionError):
    """The file is not a readable session (not JSON, not a session, damaged content)."""


class ImageMatch(Enum):
    """Whether a session belongs to the image it is opened with (:meth:`Session.check_image`)."""

    SAME = "same"
    CHANGED = "changed"  # same size, different file content: the review still fits the pixels' grid
    OTHER_SIZE = "other size"  # another image: the cells would not fit
    UNREADABLE = "unreadable"  # the image could not be read to compare


HEAT_MODES = ("off", "selected", "all")
#: The differential's target counts offered (a 100- or 200-cell differential).
MIN_TARGET, MAX_TARGET = 1, 100_000
# Pre-calibration sessions kept the pixel size among the settings, in prose.
_LEGACY_SOURCES = {
    "from the file": "file",
    "set by the user": "user",
    "estimated from red cells": "rbc-estimate",
}


@dataclass
class SessionSettings:
    """How an image was analysed and reviewed: what a session records besides the cells.

    The pixel size is not a setting: it is the analysis's
    :class:`~leukview.core.calibration.Calibration`, saved with the analysis.

    Attributes
    ----------
    models : list of str
        Names of the models that ran (empty: segmentation only).
    segmentation : dict
        :meth:`SegmentationParams.to_dict` of the parameters used.
    confidence_threshold : float
        In [0, 1]: an unreviewed cell a model calls with less is flagged. The
        one threshold every view, export and report of the session uses.
    analysed_field : tuple of int or None
        (x, y, width, height) of the field analysed, in image pixels; None for
        the whole image. Saved as ``field``.
    target : int
        Cells the differential aims at (100 or 200).
    heat_mode : {'off', 'selected', 'all'}
        Which class-activation heatmaps are shown.
    heat_opacity : float
        In [0, 1].
    extra : dict
        Keys this version does not know (written by a newer LeukView), kept
        and saved back unchanged.
    """

    models: list[str] = field(default_factory=list)
    segmentation: dict[str, Any] = field(default_factory=dict)
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    analysed_field: tuple[int, int, int, int] | None = None
    target: int = 100
    heat_mode: str = "off"
    heat_opacity: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check types and ranges; SessionError names the first bad value."""
        self.models = [_text(v, "models") for v in _sequence(self.models, "models")]
        if not isinstance(self.segmentation, Mapping) or not all(isinstance(k, str) for k in self.segmentation):
            raise SessionError(f"settings: segmentation must be an object, got {self.segmentation!r}")
        for key, value in self.segmentation.items():
            if value is not None and not isinstance(value, (bool, int, float)):
                raise SessionError(f"settings: segmentation parameter {key} = {value!r} is not a number")
        self.segmentation = dict(self.segmentation)
        self.confidence_threshold = _fraction(self.confidence_threshold, "confidence_threshold")
        self.analysed_field = _field_rect(self.analysed_field)
        self.target = _integer(self.target, "target", MIN_TARGET, MAX_TARGET)
        if self.heat_mode not in HEAT_MODES:
            raise SessionError(f"settings: heat_mode must be one of {', '.join(HEAT_MODES)}, got {self.heat_mode!r}")
        self.heat_opacity = _fraction(self.heat_opacity, "heat_opacity")

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "models": list(self.models),
            "segmentation": dict(self.segmentation),
            "confidence_threshold": self.confidence_threshold,
            "field": None if self.analysed_field is None else list(self.analysed_field),
            "target": self.target,
            "heat_mode": self.heat_mode,
            "heat_opacity": self.heat_opacity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SessionSettings:
        """Read :meth:`to_dict`, or the untyped dictionary of older sessions.

        Missing keys take their defaults; ``pixel_size_um`` and
        ``pixel_size_source`` of older sessions are left to
        :func:`legacy_calibration`. SessionError for a value of the wrong type
        or out of range.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise SessionError(f"settings must be an object, got {type(data).__name__}")
        known = {"models", "segmentation", "confidence_threshold", "field", "target", "heat_mode", "heat_opacity"}
        legacy = {"pixel_size_um", "pixel_size_source"}
        defaults = cls()
        return cls(
            models=list(_sequence(data.get("models", defaults.models), "models")),
            segmentation=data.get("segmentation") or {},
            confidence_threshold=data.get("confidence_threshold", defaults.confidence_threshold),
            analysed_field=data.get("field"),
            target=data.get("target", defaults.target),
            heat_mode=data.get("heat_mode", defaults.heat_mode),
            heat_opacity=data.get("heat_opacity", defaults.heat_opacity),
            extra={k: v for k, v in data.items() if k not in known | legacy},
        )

    def segmentation_params(self) -> Any:
        """The :class:`~leukview.core.segment.SegmentationParams` recorded (defaults when empty).

        Raises LeukViewError when the recorded mix is invalid.
        """
        from .segment import SegmentationParams

        try:
            return SegmentationParams.from_dict(self.segmentation)
        except (TypeError, ValueError) as exc:
            raise LeukViewError(f"invalid segmentation settings ({exc})") from exc


def legacy_calibration(settings: Mapping[str, Any] | None) -> Calibration | None:
    """The calibration an older session kept among its settings; None when it kept none.

    Sessions before the calibration object stored ``pixel_size_um`` and a prose
    ``pixel_size_source`` (``"set by the user"``) in ``settings``.
    """
    if not isinstance(settings, Mapping) or "pixel_size_um" not in settings:
        return None
    value = settings.get("pixel_size_um")
    if value is None:
        return Calibration.unknown()
    text = str(settings.get("pixel_size_source") or "")
    source = _LEGACY_SOURCES.get(text, text)
    if source not in _LEGACY_SOURCES.values():
        source = "user"  # e.g. "set in the session": someone chose it
    try:
        return Calibration(value, source)  # type: ignore[arg-type]
    except LeukViewError as exc:
        raise SessionError(f"settings: {exc.reason}") from exc


def _sequence(value: Any, name: str) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise SessionError(f"settings: {name} must be a list, got {value!r}")
    return list(value)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise SessionError(f"settings: {name} must hold names, got {value!r}")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SessionError(f"settings: {name} must be a number, got {value!r}")
    return float(value)


def _fraction(value: Any, name: str) -> float:
    number = _number(value, name)
    if not 0.0 <= number <= 1.0:
        raise SessionError(f"settings: {name} must be between 0 and 1, got {value!r}")
    return number


def _integer(value: Any, name: str, low: int, high: int) -> int:
    number = _number(value, name)
    if number != int(number) or not low <= number <= high:
        raise SessionError(f"settings: {name} must be a whole number from {low} to {high}, got {value!r}")
    return int(number)


def _field_rect(value: Any) -> tuple[int, int, int, int] | None:
    if value is None:
        return None
    items = _sequence(value, "field")
    if len(items) != 4:
        raise SessionError(f"settings: field must be [x, y, width, height], got {value!r}")
    x, y = (_integer(v, "field", 0, 1 << 31) for v in items[:2])
    w, h = (_integer(v, "field", 1, 1 << 31) for v in items[2:])
    return x, y, w, h


def session_path(image_path: str | os.PathLike[str]) -> Path:
    """Where the session of an image is saved: beside it, ``<image>.leukview.json``."""
    path = Path(image_path)
    return path.with_name(path.name + SESSION_SUFFIX)


def fallback_session_path(image_path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """Session file in ``folder`` for an image whose own folder is read-only.

    The name carries a hash of the image's absolute path, so two images of the
    same name in different folders do not share a session.
    """
    path = Path(image_path).resolve()
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:12]
    return Path(folder) / f"{path.name}-{digest}{SESSION_SUFFIX}"


def current_user() -> str:
    """The operating-system user name (``unknown`` when the system cannot tell)."""
    try:
        return getpass.getuser()
    except Exception:  # getpass raises OSError or KeyError without a passwd entry
        return "unknown"


def now_iso() -> str:
    """Local time with its UTC offset, to the second (ISO 8601)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def image_fingerprint(path: str | os.PathLike[str]) -> str:
    """A quick identity of an image file: SHA-256 of its size, first and last MiB.

    Whole-slide files are gigabytes, so the whole file is not hashed; an edit
    that keeps the size and both ends is not detected.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        digest = hashlib.sha256(str(size).encode())
        with path.open("rb") as handle:
            digest.update(handle.read(_FINGERPRINT_CHUNK))
            if size > _FINGERPRINT_CHUNK:
                handle.seek(max(size - _FINGERPRINT_CHUNK, _FINGERPRINT_CHUNK))
                digest.update(handle.read(_FINGERPRINT_CHUNK))
    except OSError as exc:
        raise SessionError(f"cannot read the image to identify it ({exc.strerror or exc})", path) from exc
    return digest.hexdigest()


class AuditAction(str, Enum):
    """What an audit entry records: a closed set (a file naming another action is damaged)."""

    ANALYSE = "analyse"
    RECLASSIFY = "reclassify"
    CONFIRM = "confirm"
    CLEAR = "clear"
    UNDO = "undo"
    REDO = "redo"
    SET_THRESHOLD = "set confidence threshold"
    SET_CALIBRATION = "set pixel size"
    EXPORT_CSV = "export CSV"
    EXPORT_PNG = "export PNG"
    EXPORT_PDF = "export PDF report"

    def __str__(self) -> str:
        return self.value


#: Actions that set, confirm or clear a reviewer's label (undo and redo included).
REVIEW_ACTIONS = frozenset(
    {AuditAction.RECLASSIFY, AuditAction.CONFIRM, AuditAction.CLEAR, AuditAction.UNDO, AuditAction.REDO}
)
EXPORT_ACTIONS = frozenset({AuditAction.EXPORT_CSV, AuditAction.EXPORT_PNG, AuditAction.EXPORT_PDF})


class ModelDetail(TypedDict):
    name: str
    version: str
    provider: str


class AnalyseDetail(TypedDict):
    """``analyse``: how many cells were found, by which models on which provider."""

    cells: int
    models: list[ModelDetail]


class ThresholdDetail(TypedDict):
    """``set confidence threshold``."""

    confidence_threshold: float


class CalibrationDetail(TypedDict):
    """``set pixel size``: the new calibration (None: unknown)."""

    pixel_size_um: float | None
    source: str | None


class ExportDetail(TypedDict):
    """``export CSV`` / ``export PNG`` / ``export PDF report``: the file written."""

    path: str


AuditDetail = AnalyseDetail | ThresholdDetail | CalibrationDetail | ExportDetail
# The detail keys each action carries (and must carry, when it has a detail).
_DETAIL_KEYS: dict[AuditAction, frozenset[str]] = {
    AuditAction.ANALYSE: frozenset(AnalyseDetail.__annotations__),
    AuditAction.SET_THRESHOLD: frozenset(ThresholdDetail.__annotations__),
    AuditAction.SET_CALIBRATION: frozenset(CalibrationDetail.__annotations__),
    **{action: frozenset(ExportDetail.__annotations__) for action in EXPORT_ACTIONS},
}


@dataclass
class AuditEntry:
    """One line of the audit log: who did what, when, to which cell, against which models.

    Attributes
    ----------
    time : str
        ISO 8601 with the UTC offset.
    reviewer : str
        The operating-system user who acted.
    action : AuditAction
    cell : int or None
        The cell acted on (review actions).
    before, after : str or None
        The call before and after (review actions).
    model : str or None
        The model whose call the reviewer saw or replaced.
    models : dict of str to str
        Version of every model of the analysis at the time, by name.
    detail : dict or None
        The action's typed payload (:class:`AnalyseDetail`, :class:`ThresholdDetail`,
        :class:`CalibrationDetail`, :class:`ExportDetail`); None for review actions.
    note : str
        Free text: what older sessions wrote as their prose ``detail``.
    """

    time: str
    reviewer: str
    action: AuditAction
    cell: int | None = None
    before: str | None = None
    after: str | None = None
    model: str | None = None
    models: dict[str, str] = field(default_factory=dict)
    detail: AuditDetail | None = None
    note: str = ""

    def __post_init__(self) -> None:
        try:
            self.action = AuditAction(self.action)
        except ValueError as exc:
            raise SessionError(f"unknown audit action {self.action!r}") from exc
        if self.detail is not None:
            if not isinstance(self.detail, Mapping):
                raise SessionError(f"audit detail of {self.action} must be an object, got {self.detail!r}")
            expected = _DETAIL_KEYS.get(self.action)
            if expected is None or set(self.detail) != expected:
                raise SessionError(f"audit detail of {self.action} has keys {sorted(self.detail)}")

    # -- the names of schema 1, still read by older code
    @property
    def when(self) -> str:
        return self.time

    @property
    def who(self) -> str:
        return self.reviewer

    @property
    def model_version(self) -> str | None:
        """The version of :attr:`model`."""
        return None if self.model is None else self.models.get(self.model)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "reviewer": self.reviewer,
            "action": self.action.value,
            "cell": self.cell,
            "before": self.before,
            "after": self.after,
            "model": self.model,
            "models": dict(self.models),
            "detail": None if self.detail is None else dict(self.detail),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEntry:
        """Read :meth:`to_dict`, or a schema-1 entry (``when``, ``who``, ``model_version``, prose ``detail``)."""
        if not isinstance(data, Mapping):
            raise SessionError(f"an audit entry must be an object, got {data!r}")
        cell = data.get("cell")
        detail = data.get("detail")
        note = str(data.get("note") or "")
        if isinstance(detail, str):  # schema 1: prose
            note, detail = "; ".join(t for t in (note, detail) if t), None
        models = data.get("models")
        model = data.get("model")
        if models is None:  # schema 1 knew the version of the deciding model only
            version = data.get("model_version")
            models = {str(model): str(version)} if model and version is not None else {}
        if not isinstance(models, Mapping):
            raise SessionError(f"audit models must be an object, got {models!r}")
        return cls(
            time=str(data["time"] if "time" in data else data["when"]),
            reviewer=str(data["reviewer"] if "reviewer" in data else data["who"]),
            action=data["action"],
            cell=None if cell is None else int(cell),
            before=_optional_text(data.get("before")),
            after=_optional_text(data.get("after")),
            model=_optional_text(model),
            models={str(k): str(v) for k, v in models.items()},
            detail=detail or None,
            note=note,
        )

    def describe(self) -> str:
        """One human line, e.g. ``reclassify cell 7: monocyte -> lymphocyte (wbc-type 1.0.0)``."""
        text = self.action.value if self.cell is None else f"{self.action.value} cell {self.cell}"
        if self.before is not None or self.after is not None:
            text += f": {self.before or '—'} -> {self.after or '—'}"
        if self.model:
            text += f" ({self.model} {self.model_version or ''})".rstrip()
        detail = self._detail_text()
        if detail:
            text += f": {detail}" if self.cell is None and self.before is None and self.after is None else f"; {detail}"
        if self.note:
            text += f"; {self.note}"
        return text

    def _detail_text(self) -> str:
        d: Mapping[str, Any] = self.detail or {}
        if not d:
            return ""
        if self.action is AuditAction.ANALYSE:
            runs = ", ".join(f"{m['name']} {m['version']} on {m['provider']}" for m in d["models"]) or "no model"
            return f"{d['cells']} cells; {runs}"
        if self.action is AuditAction.SET_THRESHOLD:
            return f"{d['confidence_threshold']:.2f}"
        if self.action is AuditAction.SET_CALIBRATION:
            return Calibration(d["pixel_size_um"], d["source"]).describe()
        return str(d.get("path", ""))


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass
class Session:
    """Everything a reviewer did on one image.

    Attributes
    ----------
    analysis : Analysis
        Cells (with their review states) and the models that ran.
    image_path : str
        The image's path when the session was last saved.
    fingerprint : str
        :func:`image_fingerprint` of the image, to detect a replaced file.
    size_bytes : int
    settings : SessionSettings
        Models, segmentation parameters, the confidence threshold, the field.
    audit : list of AuditEntry
        Append-only; undo and redo are entries too.
    """

    analysis: Analysis
    image_path: str = ""
    fingerprint: str = ""
    size_bytes: int = 0
    settings: SessionSettings = field(default_factory=SessionSettings)
    audit: list[AuditEntry] = field(default_factory=list)
    created: str = field(default_factory=now_iso)
    modified: str = field(default_factory=now_iso)
    app_version: str = ""

    @classmethod
    def new(
        cls,
        analysis: Analysis,
        image_path: str | os.PathLike[str] | None = None,
        settings: SessionSettings | Mapping[str, Any] | None = None,
        who: str | None = None,
    ) -> Session:
        """A fresh session for an analysis, with an ``analyse`` entry naming the models."""
        from .. import __version__

        if not isinstance(settings, SessionSettings):
            settings = SessionSettings.from_dict(settings)
        session = cls(analysis=analysis, settings=settings, app_version=__version__)
        if image_path is not None:
            session.image_path = os.fspath(image_path)
            try:
                session.fingerprint = image_fingerprint(image_path)
                session.size_bytes = Path(image_path).stat().st_size
            except (SessionError, OSError):
                pass  # an image that vanished can still be reviewed from memory
        detail: AnalyseDetail = {
            "cells": len(analysis.cells),
            "models": [{"name": m.name, "version": m.version, "provider": m.provider} for m in analysis.models],
        }
        session.log(AuditAction.ANALYSE, detail=detail, who=who)
        return session

    def cell(self, cell_id: int) -> Cell:
        """The cell with this id; KeyError if there is none."""
        for cell in self.analysis.cells:
            if cell.id == cell_id:
                return cell
        raise KeyError(cell_id)

    def log(
        self,
        action: AuditAction | str,
        *,
        cell: int | None = None,
        before: str | None = None,
        after: str | None = None,
        model: str | None = None,
        detail: AuditDetail | None = None,
        note: str = "",
        who: str | None = None,
    ) -> AuditEntry:
        """Append an entry to the audit log, with the versions of the analysis's models."""
        entry = AuditEntry(
            time=now_iso(),
            reviewer=who or current_user(),
            action=action,  # type: ignore[arg-type]  # checked by AuditEntry
            cell=cell,
            before=before,
            after=after,
            model=model,
            models={m.name: m.version for m in self.analysis.models},
            detail=detail,
            note=note,
        )
        self.audit.append(entry)
        self.modified = entry.time
        return entry

    def set_review(
        self,
        cell_id: int,
        label: str | None,
        *,
        action: AuditAction | str = AuditAction.RECLASSIFY,
        who: str | None = None,
    ) -> tuple[ReviewState, AuditEntry]:
        """Give a cell the reviewer's label (None clears it) and log it.

        Returns
        -------
        previous : ReviewState
            The state before, for undo (:meth:`restore_review`).
        entry : AuditEntry
            ``before`` is the call the reviewer saw (model or earlier review),
            ``model`` the model behind that call.
        """
        cell = self.cell(cell_id)
        previous = ReviewState(cell.review.label, cell.review.reviewer, cell.review.time)
        call = call_cell(cell, self.analysis.models)
        who = who or current_user()
        cell.review = ReviewState(label=label, reviewer=who if label else None, time=now_iso() if label else None)
        model = call.model or _deciding_model(cell, self.analysis)
        entry = self.log(action, cell=cell_id, before=call.label, after=label, model=model, who=who)
        return previous, entry

    def restore_review(
        self, cell_id: int, state: ReviewState, *, action: AuditAction | str, who: str | None = None
    ) -> AuditEntry:
        """Put back an earlier review state (undo / redo) and log it as ``action``."""
        cell = self.cell(cell_id)
        before = call_cell(cell, self.analysis.models).label
        cell.review = ReviewState(state.label, state.reviewer, state.time)
        after = call_cell(cell, self.analysis.models).label
        return self.log(
            action, cell=cell_id, before=before, after=after, model=_deciding_model(cell, self.analysis), who=who
        )

    @property
    def corrections(self) -> list[AuditEntry]:
        """Entries where a reviewer's label differs from the call they saw."""
        return [e for e in self.audit if e.cell is not None and e.after is not None and e.before != e.after]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SESSION_FORMAT,
            "schema_version": SESSION_SCHEMA_VERSION,
            "app_version": self.app_version,
            "created": self.created,
            "modified": self.modified,
            "image": {
                "name": Path(self.image_path).name if self.image_path else None,
                "path": self.image_path,
                "size_bytes": self.size_bytes,
                "fingerprint": self.fingerprint,
            },
            "settings": self.settings.to_dict(),
            # the cells' flags follow the session's threshold, the one the reviewer saw
            "analysis": self.analysis.to_dict(self.settings.confidence_threshold),
            "cams": encode_cams(self.analysis.cells),
            "audit": [e.to_dict() for e in self.audit],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | os.PathLike[str] | None = None) -> Session:
        """Read :meth:`to_dict` (schema 1 or 2).

        Raises
        ------
        SessionNewerVersion
            A newer schema version.
        SessionDamaged
            Not a session, or content of the wrong type.
        """
        if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
            raise SessionDamaged("not a LeukView session file", path)
        version = data.get("schema_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > SESSION_SCHEMA_VERSION:
            raise SessionNewerVersion(
                f"session schema_version {version!r} is not supported by this LeukView "
                f"(it reads versions 1 to {SESSION_SCHEMA_VERSION}); update LeukView",
                path,
            )
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise SessionDamaged(f"session schema_version {version!r} is not a version", path)
        try:
            analysis = Analysis.from_dict(data["analysis"])
            decode_cams(analysis.cells, data.get("cams") or {})
            image = data.get("image") or {}
            raw_settings = data.get("settings")
            settings = SessionSettings.from_dict(raw_settings)
            calibration = legacy_calibration(raw_settings)
            if calibration is not None:  # an older session: its settings held the pixel size
                analysis.calibration = calibration
            return cls(
                analysis=analysis,
                image_path=str(image.get("path") or ""),
                fingerprint=str(image.get("fingerprint") or ""),
                size_bytes=int(image.get("size_bytes") or 0),
                settings=settings,
                audit=[AuditEntry.from_dict(e) for e in data.get("audit", [])],
                created=str(data.get("created", "")),
                modified=str(data.get("modified", "")),
                app_version=str(data.get("app_version", "")),
            )
        except LeukViewError as exc:
            raise SessionDamaged(f"damaged session: {exc.reason}", path) from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SessionDamaged(f"damaged session ({type(exc).__name__}: {exc})", path) from exc

    def check_image(self, image_path: str | os.PathLike[str], width: int, height: int) -> tuple[ImageMatch, str]:
        """Whether this session belongs to the image, and if not, why (a sentence)."""
        if (self.analysis.width, self.analysis.height) != (width, height):
            return ImageMatch.OTHER_SIZE, (
                f"the session was made for a {self.analysis.width}x{self.analysis.height} image, "
                f"this one is {width}x{height}"
            )
        if self.fingerprint:
            try:
                if image_fingerprint(image_path) != self.fingerprint:
                    return ImageMatch.CHANGED, "the image file has changed since the session was saved"
            except SessionError as exc:
                return ImageMatch.UNREADABLE, exc.reason
        return ImageMatch.SAME, ""

    def matches_image(self, image_path: str | os.PathLike[str], width: int, height: int) -> str | None:
        """None when this session belongs to the image, else the reason it does not."""
        match, reason = self.check_image(image_path, width, height)
        return None if match is ImageMatch.SAME else reason


def _deciding_model(cell: Cell, analysis: Analysis) -> str | None:
    # the model whose call a reviewer label replaced
    return call_cell(cell, analysis.models, use_review=False).model


def encode_cams(cells: list[Cell]) -> dict[str, dict[str, dict[str, Any]]]:
    """Class-activation maps as compact JSON: uint8 grids in base64 (they are in [0, 1])."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for cell in cells:
        for name, pred in cell.predictions.items():
            if pred.cam is None or pred.cam_box is None:
                continue
            cam = np.clip(np.asarray(pred.cam, np.float32), 0.0, 1.0)
            data = np.round(cam * 255.0).astype(np.uint8)
            out.setdefault(str(cell.id), {})[name] = {
                "shape": list(data.shape),
                "box": [round(float(v), 2) for v in pred.cam_box],
                "data": base64.b64encode(data.tobytes()).decode("ascii"),
            }
    return out


def decode_cams(cells: list[Cell], data: dict[str, Any]) -> None:
    """Put maps from :func:`encode_cams` back onto the cells' predictions (in place)."""
    by_id = {str(c.id): c for c in cells}
    for cell_id, per_model in data.items():
        cell = by_id.get(str(cell_id))
        if cell is None:
            continue
        for name, item in per_model.items():
            pred = cell.predictions.get(name)
            if pred is None:
                continue
            shape = tuple(int(v) for v in item["shape"])
            raw = np.frombuffer(base64.b64decode(item["data"]), np.uint8)
            pred.cam = raw.reshape(shape).astype(np.float32) / 255.0
            pred.cam_box = tuple(float(v) for v in item["box"])  # type: ignore[assignment]


def save_session(session: Session, path: str | os.PathLike[str]) -> Path:
    """Write a session atomically (temporary file, fsync, rename).

    Raises
    ------
    SessionError
        When the folder is not writable or the disk is full; the previous
        file, if any, is left as it was.
    """
    path = Path(path)
    session.modified = now_iso()
    text = json.dumps(session.to_dict(), ensure_ascii=False, separators=(",", ":"))
    try:
        return atomic_write_text(path, text)
    except OSError as exc:
        raise SessionError(f"cannot save the session ({exc.strerror or exc})", path) from exc


def load_session(path: str | os.PathLike[str]) -> Session:
    """Read a session file.

    Raises
    ------
    SessionNotFound
        No such file.
    SessionUnreadable
        It exists but cannot be read (permission, I/O error).
    SessionNewerVersion
        A newer LeukView wrote it.
    SessionDamaged
        Not UTF-8, not JSON, not a session, or damaged content.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise SessionNotFound("session file not found", path) from exc
    except OSError as exc:
        raise SessionUnreadable(f"cannot read the session ({exc.strerror or exc})", path) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SessionDamaged(f"the session is not UTF-8 text (byte {exc.start})", path) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionDamaged(f"the session is not valid JSON (line {exc.lineno}: {exc.msg})", path) from exc
    return Session.from_dict(data, path)
