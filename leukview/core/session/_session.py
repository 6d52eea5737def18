"""The session: one image's analysis, its review and audit log; saved and read atomically."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import Analysis
from ..atomic import atomic_write_text, json_text
from ..calls import call_cell
from ..cells import Cell, ReviewState
from ..errors import LeukViewError, SessionError
from ._audit import AnalyseDetail, AuditAction, AuditDetail, AuditEntry
from ._errors import (
    ImageMatch,
    SessionDamaged,
    SessionNewerVersion,
    SessionNotFound,
    SessionUnreadable,
)
from ._identity import current_user, image_fingerprint, now_iso
from ._settings import SessionSettings, legacy_calibration

__all__ = [
    "MAX_SESSION_BYTES",
    "SESSION_FORMAT",
    "SESSION_SCHEMA_VERSION",
    "Session",
    "decode_cams",
    "encode_cams",
    "load_session",
    "save_session",
]

SESSION_FORMAT = "leukview-session"
SESSION_SCHEMA_VERSION = 2
#: A session file larger than this is refused before it is read (a real one is a few MiB).
MAX_SESSION_BYTES = 512 * 2**20


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
        from ... import __version__

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
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise SessionDamaged(f"damaged session ({type(exc).__name__}: {exc})", path) from exc
        except RecursionError as exc:
            raise SessionDamaged("damaged session: content nested too deeply", path) from exc

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

    The file gets the permissions :func:`open` would give it (``0o666`` less
    the umask), or keeps those of the file it replaces, so a session in a
    shared folder stays readable by the lab.

    Raises
    ------
    SessionError
        When the folder is not writable or the disk is full, or a value in the
        session is not a finite number; the previous file, if any, is left as
        it was.
    """
    path = Path(path)
    session.modified = now_iso()
    try:
        text = json_text(session.to_dict())  # never NaN or Infinity: they are not JSON
    except LeukViewError as exc:
        raise SessionError(f"cannot save the session: {exc.reason}", path) from exc
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
        It exists but cannot be read (permission, I/O error, not enough memory).
    SessionNewerVersion
        A newer LeukView wrote it.
    SessionDamaged
        Not UTF-8, not JSON, nested too deeply, larger than
        :data:`MAX_SESSION_BYTES`, not a session, or damaged content.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SESSION_BYTES:
            raise SessionDamaged(
                f"the session file is {size:,} bytes, more than any session "
                f"({MAX_SESSION_BYTES // 2**20} MiB at most): it is not read",
                path,
            )
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise SessionNotFound("session file not found", path) from exc
    except OSError as exc:
        raise SessionUnreadable(f"cannot read the session ({exc.strerror or exc})", path) from exc
    except MemoryError as exc:
        raise SessionUnreadable("not enough memory to read the session", path) from exc
    if len(raw) > MAX_SESSION_BYTES:  # it grew while being read
        raise SessionDamaged(f"the session file is over {MAX_SESSION_BYTES // 2**20} MiB", path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SessionDamaged(f"the session is not UTF-8 text (byte {exc.start})", path) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionDamaged(f"the session is not valid JSON (line {exc.lineno}: {exc.msg})", path) from exc
    except RecursionError as exc:
        raise SessionDamaged("the session is not a session: its JSON is nested too deeply", path) from exc
    except MemoryError as exc:  # this computer's limit, not damage: keep the file
        raise SessionUnreadable("not enough memory to read the session", path) from exc
    return Session.from_dict(data, path)
