"""How cells are named, coloured and described on screen (shared by overlays, table, gallery).

Every class name, colour and call shown comes from :mod:`leukview.core.calls`
(the one rule), every µm figure from the document's
:class:`~leukview.core.calibration.Calibration`; this module only turns them
into Qt colours and text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtGui import QColor

from leukview.core import calls
from leukview.core.analysis import ModelRun
from leukview.core.calibration import Calibration
from leukview.core.calls import FLAG_COLOUR, CellCall, display_name
from leukview.core.cells import Cell
from leukview.core.report import provider_text  # one name per provider, as the report writes it

__all__ = [
    "FLAG_COLOUR",
    "KIND_COLOURS",
    "MEASURES",
    "call_text",
    "class_colour",
    "display_name",
    "measure_text",
    "measure_value",
    "provider_text",
    "tooltip_html",
]

KIND_COLOURS = {"rbc": QColor(229, 115, 115, 170), "platelet": QColor(206, 147, 216, 220)}

# (measurement key, column title); units follow the calibration
MEASURES = (
    ("area", "Area"),
    ("equivalent_diameter", "Diameter"),
    ("circularity", "Circularity"),
    ("nc_ratio", "N:C"),
    ("lobe_count", "Lobes"),
    ("nucleus_area", "Nucleus area"),
)


def class_colour(name: str | None) -> QColor:
    """The class's colour of the one palette (:func:`leukview.core.calls.class_colour`)."""
    return QColor(calls.class_colour(name))


def measure_value(cell: Cell, key: str, calibration: Calibration) -> float | None:
    """A measurement in display units: µm / µm² when the pixel size is known, else px."""
    value = cell.measurements.get(key)
    if value is None:
        return None
    return calibration.physical(key, value)[0]


def measure_text(cell: Cell, key: str, calibration: Calibration) -> str:
    """A measurement as shown: ``1,234 µm²``, ``12.3 µm``, ``0.85``, ``3`` (lobes)."""
    value = cell.measurements.get(key)
    if value is None:
        return ""
    if key == "lobe_count":
        return f"{int(round(value))}"
    shown, unit = calibration.physical(key, value)
    if unit in ("µm²", "px²"):
        return f"{shown:,.0f} {unit}" if shown >= 100 else f"{shown:.1f} {unit}"
    if unit in ("µm", "px"):
        return f"{shown:.1f} {unit}"
    return f"{shown:.2f}"


def measure_unit(key: str, calibration: Calibration) -> str:
    """The unit a column of this measurement shows (empty for ratios and counts)."""
    return calibration.physical(key, 1.0)[1]


def call_text(cell: Cell, call: CellCall) -> str:
    """Short label drawn on the image: ``12 neutrophil 87%``, ``✓`` when reviewed, ``?`` when flagged."""
    text = f"{cell.id} {display_name(call.label)}" if call.label else f"{cell.id}"
    if call.reviewed:
        return text + " ✓"
    if call.confidence is not None:
        text += f" {call.confidence:.0%}"
    if call.needs_review:
        text = "? " + text
    return text


def tooltip_html(cell: Cell, call: CellCall, models: Sequence[ModelRun], calibration: Calibration) -> str:
    """Rich-text tooltip: the call, why it is flagged, each model's top classes, the measurements."""
    kind = {"wbc": "white cell", "rbc": "red cell", "platelet": "platelet"}.get(cell.kind, cell.kind)
    lines = [f"<b>Cell {cell.id}</b> · {html.escape(kind)}"]
    if call.label:
        source = (
            f"reviewed by {html.escape(cell.review.reviewer or '?')}"
            if call.reviewed
            else f"{call.confidence or 0.0:.0%} by {html.escape(call.model or '')}"
        )
        lines.append(f"<b>{html.escape(display_name(call.label))}</b> ({source})")
    if call.needs_review:
        lines.append(f"<span style='color:{FLAG_COLOUR}'><b>please review</b></span>")
    for reason in call.reasons:
        lines.append(f"<span style='color:{FLAG_COLOUR}'>{html.escape(reason)}</span>")
    for run in models:
        pred = cell.predictions.get(run.name)
        if pred is None:
            continue
        top = sorted(pred.probabilities.items(), key=lambda kv: -kv[1])[:3]
        parts = ", ".join(f"{html.escape(display_name(k))} {v:.0%}" for k, v in top)
        lines.append(f"<i>{html.escape(run.name)} {html.escape(run.version)}</i>: {parts}")
    rows = []
    for key, title in MEASURES:
        text = measure_text(cell, key, calibration)
        if text:
            rows.append(f"<tr><td>{title}</td><td align='right'>{html.escape(text)}</td></tr>")
    table = "<table cellspacing='0' cellpadding='1'>" + "".join(rows) + "</table>" if rows else ""
    return "<br>".join(lines) + table
