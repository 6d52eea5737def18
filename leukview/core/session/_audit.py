"""The audit log's entries: a closed set of actions, each with its typed payload, readable as text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypedDict

from ..calibration import Calibration
from ..errors import SessionError

__all__ = [
    "EDIT_ACTIONS",
    "EXPORT_ACTIONS",
    "REVIEW_ACTIONS",
    "AnalyseDetail",
    "AuditAction",
    "AuditDetail",
    "AuditEntry",
    "CalibrationDetail",
    "EditDetail",
    "ExportDetail",
    "ModelDetail",
    "ThresholdDetail",
]


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
    SET_REPORT_DETAILS = "set report details"
    SIGN = "sign off"
    ADD_CELL = "add cell"
    DELETE_CELL = "delete cell"
    SPLIT_CELL = "split cell"
    REDRAW_CELL = "redraw outline"
    UNDO_EDIT = "undo segmentation edit"
    REDO_EDIT = "redo segmentation edit"

    def __str__(self) -> str:
        return self.value


#: Actions that set, confirm or clear a reviewer's label (undo and redo included).
REVIEW_ACTIONS = frozenset(
    {AuditAction.RECLASSIFY, AuditAction.CONFIRM, AuditAction.CLEAR, AuditAction.UNDO, AuditAction.REDO}
)
EXPORT_ACTIONS = frozenset({AuditAction.EXPORT_CSV, AuditAction.EXPORT_PNG, AuditAction.EXPORT_PDF})
#: Corrections of the segmentation (cells added, deleted, split, redrawn), their undo and redo included.
EDIT_ACTIONS = frozenset(
    {
        AuditAction.ADD_CELL,
        AuditAction.DELETE_CELL,
        AuditAction.SPLIT_CELL,
        AuditAction.REDRAW_CELL,
        AuditAction.UNDO_EDIT,
        AuditAction.REDO_EDIT,
    }
)


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


class EditDetail(TypedDict):
    """A segmentation edit (``add cell``, ``delete cell``, ``split cell``, ``redraw outline``,
    and their ``undo`` / ``redo segmentation edit``): which cells went and came, and how.

    ``cells_before`` are the ids the edit removed, ``cells_after`` the new ids
    it made (ids are never reused); ``calls_before`` / ``calls_after`` their
    calls, in the same order. ``method`` is how the geometry was given
    (``outline``, ``click``, ``line``, ``seeds``, ``selection``) and
    ``geometry`` the points themselves, (x, y) in image pixels. ``unclassified``
    names the models of the analysis that could not classify the new cells
    (not loaded, or another version).
    """

    cells_before: list[int]
    cells_after: list[int]
    calls_before: list[str | None]
    calls_after: list[str | None]
    method: str
    geometry: list[list[float]]
    unclassified: list[str]


AuditDetail = AnalyseDetail | ThresholdDetail | CalibrationDetail | ExportDetail | EditDetail
# The detail keys each action carries (and must carry, when it has a detail).
_DETAIL_KEYS: dict[AuditAction, frozenset[str]] = {
    AuditAction.ANALYSE: frozenset(AnalyseDetail.__annotations__),
    AuditAction.SET_THRESHOLD: frozenset(ThresholdDetail.__annotations__),
    AuditAction.SET_CALIBRATION: frozenset(CalibrationDetail.__annotations__),
    **{action: frozenset(ExportDetail.__annotations__) for action in EXPORT_ACTIONS},
    **{action: frozenset(EditDetail.__annotations__) for action in EDIT_ACTIONS},
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
        :class:`CalibrationDetail`, :class:`ExportDetail`, :class:`EditDetail`); None for
        review actions.
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
        if self.action in EDIT_ACTIONS:
            return _edit_text(d)
        return str(d.get("path", ""))


def _edit_text(d: Mapping[str, Any]) -> str:
    """``12 (monocyte) -> 107 (monocyte), 108 (lymphocyte) by line``."""

    def cells(ids: list[int], calls: list[str | None]) -> str:
        named = [f"{i} ({c or 'unclassified'})" for i, c in zip(ids, calls, strict=False)]
        return ", ".join(named) or "—"

    text = f"{cells(d['cells_before'], d['calls_before'])} -> {cells(d['cells_after'], d['calls_after'])}"
    text += f" by {d['method']}"
    if d["unclassified"]:
        text += f"; not classified by {', '.join(d['unclassified'])}"
    return text


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)
