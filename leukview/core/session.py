"""A review session: the analysis of one image, every correction and an audit log.

Saved beside the image as ``<image>.leukview.json`` (``BloodImage_00214.jpg``
-> ``BloodImage_00214.jpg.leukview.json``), written atomically so that a
crash or a full disk leaves the last saved session intact. The document is
versioned (``schema_version``); a newer version is refused with a clear
message instead of being misread.

Example (``schema_version`` 1, abridged)::

    {
      "format": "leukview-session", "schema_version": 1, "app_version": "0.1.0",
      "created": "2024-05-02T10:14:03+02:00", "modified": "2024-05-02T10:20:41+02:00",
      "image": {"name": "BloodImage_00214.jpg", "path": "/data/BloodImage_00214.jpg",
                "size_bytes": 30245, "fingerprint": "<sha256 of size, head and tail>"},
      "settings": {"models": ["wbc-type"], "segmentation": {...}, "confidence_threshold": 0.7},
      "analysis": {<the cells.json document, reviews included>},
      "cams": {"<cell id>": {"<model>": {"shape": [h, w], "box": [x0, y0, x1, y1],
                                          "data": "<base64 uint8>"}}},
      "audit": [{"when": "...", "who": "jdoe", "action": "reclassify", "cell": 7,
                 "before": "monocyte", "after": "lymphocyte",
                 "model": "wbc-type", "model_version": "1.0.0", "detail": ""}]
    }
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import Analysis
from .atomic import atomic_write_text
from .cells import Cell, ReviewState
from .errors import LeukViewError, SessionError
from .export import cell_call

SESSION_FORMAT = "leukview-session"
SESSION_SCHEMA_VERSION = 1
SESSION_SUFFIX = ".leukview.json"
_FINGERPRINT_CHUNK = 1 << 20


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


@dataclass
class AuditEntry:
    """One line of the audit log: who did what, when, to which cell, against which model."""

    when: str
    who: str
    action: str
    cell: int | None = None
    before: str | None = None
    after: str | None = None
    model: str | None = None
    model_version: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "when": self.when,
            "who": self.who,
            "action": self.action,
            "cell": self.cell,
            "before": self.before,
            "after": self.after,
            "model": self.model,
            "model_version": self.model_version,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEntry:
        cell = data.get("cell")
        return cls(
            when=str(data["when"]),
            who=str(data["who"]),
            action=str(data["action"]),
            cell=None if cell is None else int(cell),
            before=data.get("before"),
            after=data.get("after"),
            model=data.get("model"),
            model_version=data.get("model_version"),
            detail=str(data.get("detail", "")),
        )

    def describe(self) -> str:
        """One human line, e.g. ``cell 7: monocyte -> lymphocyte (wbc-type 1.0.0)``."""
        text = self.action if self.cell is None else f"{self.action} cell {self.cell}"
        if self.before is not None or self.after is not None:
            text += f": {self.before or '—'} -> {self.after or '—'}"
        if self.model:
            text += f" ({self.model} {self.model_version or ''})".rstrip()
        if self.detail:
            text += f"; {self.detail}"
        return text


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
    settings : dict
        Models, segmentation parameters and thresholds the analysis used.
    audit : list of AuditEntry
        Append-only; undo and redo are entries too.
    """

    analysis: Analysis
    image_path: str = ""
    fingerprint: str = ""
    size_bytes: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    created: str = field(default_factory=now_iso)
    modified: str = field(default_factory=now_iso)
    app_version: str = ""

    @classmethod
    def new(
        cls,
        analysis: Analysis,
        image_path: str | os.PathLike[str] | None = None,
        settings: dict[str, Any] | None = None,
        who: str | None = None,
    ) -> Session:
        """A fresh session for an analysis, with an ``analyse`` entry naming the models."""
        from .. import __version__

        session = cls(analysis=analysis, settings=dict(settings or {}), app_version=__version__)
        if image_path is not None:
            session.image_path = os.fspath(image_path)
            try:
                session.fingerprint = image_fingerprint(image_path)
                session.size_bytes = Path(image_path).stat().st_size
            except (SessionError, OSError):
                pass  # an image that vanished can still be reviewed from memory
        models = ", ".join(f"{m.name} {m.version} on {m.provider}" for m in analysis.models) or "no model"
        session.log("analyse", detail=f"{len(analysis.cells)} cells; {models}", who=who)
        return session

    def cell(self, cell_id: int) -> Cell:
        """The cell with this id; KeyError if there is none."""
        for cell in self.analysis.cells:
            if cell.id == cell_id:
                return cell
        raise KeyError(cell_id)

    def log(
        self,
        action: str,
        *,
        cell: int | None = None,
        before: str | None = None,
        after: str | None = None,
        model: str | None = None,
        detail: str = "",
        who: str | None = None,
    ) -> AuditEntry:
        """Append an entry to the audit log; ``model_version`` is looked up from the analysis."""
        version = next((m.version for m in self.analysis.models if m.name == model), None)
        entry = AuditEntry(
            when=now_iso(),
            who=who or current_user(),
            action=action,
            cell=cell,
            before=before,
            after=after,
            model=model,
            model_version=version,
            detail=detail,
        )
        self.audit.append(entry)
        self.modified = entry.when
        return entry

    def set_review(
        self,
        cell_id: int,
        label: str | None,
        *,
        action: str = "reclassify",
        who: str | None = None,
        detail: str = "",
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
        call = cell_call(cell, self.analysis.models)
        who = who or current_user()
        cell.review = ReviewState(label=label, reviewer=who if label else None, time=now_iso() if label else None)
        model = call.model or _deciding_model(cell, self.analysis)
        entry = self.log(action, cell=cell_id, before=call.label, after=label, model=model, detail=detail, who=who)
        return previous, entry

    def restore_review(self, cell_id: int, state: ReviewState, *, action: str, who: str | None = None) -> AuditEntry:
        """Put back an earlier review state (undo / redo) and log it as ``action``."""
        cell = self.cell(cell_id)
        before = cell_call(cell, self.analysis.models).label
        cell.review = ReviewState(state.label, state.reviewer, state.time)
        after = cell_call(cell, self.analysis.models).label
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
            "settings": self.settings,
            "analysis": self.analysis.to_dict(),
            "cams": encode_cams(self.analysis.cells),
            "audit": [e.to_dict() for e in self.audit],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | os.PathLike[str] | None = None) -> Session:
        if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
            raise SessionError("not a LeukView session file", path)
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SESSION_SCHEMA_VERSION or version < 1:
            raise SessionError(
                f"session schema_version {version!r} is not supported by this LeukView "
                f"(it reads version {SESSION_SCHEMA_VERSION}); update LeukView",
                path,
            )
        try:
            analysis = Analysis.from_dict(data["analysis"])
            decode_cams(analysis.cells, data.get("cams") or {})
            image = data.get("image") or {}
            return cls(
                analysis=analysis,
                image_path=str(image.get("path") or ""),
                fingerprint=str(image.get("fingerprint") or ""),
                size_bytes=int(image.get("size_bytes") or 0),
                settings=dict(data.get("settings") or {}),
                audit=[AuditEntry.from_dict(e) for e in data.get("audit", [])],
                created=str(data.get("created", "")),
                modified=str(data.get("modified", "")),
                app_version=str(data.get("app_version", "")),
            )
        except LeukViewError as exc:
            raise SessionError(f"damaged session: {exc.reason}", path) from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SessionError(f"damaged session ({type(exc).__name__}: {exc})", path) from exc

    def matches_image(self, image_path: str | os.PathLike[str], width: int, height: int) -> str | None:
        """None when this session belongs to the image, else the reason it does not."""
        if (self.analysis.width, self.analysis.height) != (width, height):
            return (
                f"the session was made for a {self.analysis.width}x{self.analysis.height} image, "
                f"this one is {width}x{height}"
            )
        if self.fingerprint:
            try:
                if image_fingerprint(image_path) != self.fingerprint:
                    return "the image file has changed since the session was saved"
            except SessionError as exc:
                return exc.reason
        return None


def _deciding_model(cell: Cell, analysis: Analysis) -> str | None:
    # the model whose call a reviewer label replaced
    return cell_call(cell, analysis.models, use_review=False).model


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
    SessionError
        Missing, unreadable, not JSON, not a session, a newer schema version, or damaged.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SessionError("session file not found", path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"cannot read the session ({exc})", path) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionError(f"the session is not valid JSON (line {exc.lineno}: {exc.msg})", path) from exc
    return Session.from_dict(data, path)
