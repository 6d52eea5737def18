"""The typed settings a session records: models, segmentation, threshold, field, view."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..calibration import Calibration
from ..calls import DEFAULT_CONFIDENCE_THRESHOLD
from ..errors import LeukViewError, SessionError

__all__ = ["HEAT_MODES", "MAX_TARGET", "MIN_TARGET", "REPORT_FIELDS", "ReportFields", "SessionSettings", "legacy_calibration"]


HEAT_MODES = ("off", "selected", "all")
#: The differential's target counts offered (a 100- or 200-cell differential).
MIN_TARGET, MAX_TARGET = 1, 100_000
# Pre-calibration sessions kept the pixel size among the settings, in prose.
_LEGACY_SOURCES = {
    "from the file": "file",
    "set by the user": "user",
    "estimated from red cells": "rbc-estimate",
}


#: The report's case fields: (attribute, label on the report and in the dialog).
REPORT_FIELDS = (
    ("patient_id", "Patient ID"),
    ("specimen_id", "Specimen ID"),
    ("physician", "Ordering physician"),
    ("reviewer", "Reviewer"),
)
_MAX_FIELD = 200


@dataclass
class ReportFields:
    """What a report says about the case, besides the cells (saved with the session).

    The sign-off is not a field: it is the audit log's ``sign off`` entry
    (:func:`leukview.core.report.signature`), so that who signed and when is
    audited and cannot be edited here.

    Attributes
    ----------
    patient_id, specimen_id, physician, reviewer : str
        Free text, at most 200 characters, no control characters; empty: not given.
    """

    patient_id: str = ""
    specimen_id: str = ""
    physician: str = ""
    reviewer: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name, label in REPORT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str):
                raise SessionError(f"settings: report {label} must be text, got {value!r}")
            value = value.strip()
            if len(value) > _MAX_FIELD:
                raise SessionError(f"settings: report {label} is longer than {_MAX_FIELD} characters")
            if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
                raise SessionError(f"settings: report {label} holds control characters")
            setattr(self, name, value)

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name, _ in REPORT_FIELDS}

    @classmethod
    def from_dict(cls, data: Any) -> ReportFields:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise SessionError(f"settings: report must be an object, got {data!r}")
        return cls(**{name: data.get(name, "") for name, _ in REPORT_FIELDS})

    def changes(self, other: ReportFields) -> list[str]:
        """``Patient ID: 'A' -> 'B'`` for each field that differs (for the audit log)."""
        return [
            f"{label}: {getattr(self, name)!r} -> {getattr(other, name)!r}"
            for name, label in REPORT_FIELDS
            if getattr(self, name) != getattr(other, name)
        ]


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
    report : ReportFields
        Patient, specimen, ordering physician and reviewer, for the report.
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
    report: ReportFields = field(default_factory=ReportFields)
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
        if not isinstance(self.report, ReportFields):
            raise SessionError(f"settings: report must be report fields, got {self.report!r}")
        self.report.validate()

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
            "report": self.report.to_dict(),
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
        known = {
            "models", "segmentation", "confidence_threshold", "field", "target", "heat_mode", "heat_opacity", "report",
        }  # fmt: skip
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
            report=ReportFields.from_dict(data.get("report")),
            extra={k: v for k, v in data.items() if k not in known | legacy},
        )

    def segmentation_params(self) -> Any:
        """The :class:`~leukview.core.segment.SegmentationParams` recorded (defaults when empty).

        Raises LeukViewError when the recorded mix is invalid.
        """
        from ..segment import SegmentationParams

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
