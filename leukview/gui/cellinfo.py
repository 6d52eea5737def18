"""How cells are named, coloured and described on screen (shared by overlays, table, gallery)."""

from __future__ import annotations

import colorsys
import html
from collections.abc import Sequence

from PySide6.QtGui import QColor

from leukview.core.analysis import ModelRun
from leukview.core.cells import Cell
from leukview.core.export import ARTEFACT, cell_call, is_flagged

# Distinct on a pink-violet smear; blasts in yellow, the class a reader must not miss.
CLASS_COLOURS = {
    "neutrophil": "#2F8CFF",
    "band": "#5BC0EB",
    "lymphocyte": "#00C853",
    "monocyte": "#FF9800",
    "eosinophil": "#FF1744",
    "basophil": "#9C6BFF",
    "ig": "#00BFA5",
    "blast": "#FFE000",
    "erythroblast": "#FF5FA2",
    "platelet": "#A1887F",
    "normal": "#90A4AE",
    ARTEFACT: "#9E9E9E",
}
UNCLASSIFIED_COLOUR = "#FFFFFF"
KIND_COLOURS = {"rbc": QColor(229, 115, 115, 170), "platelet": QColor(206, 147, 216, 220)}
FLAG_COLOUR = "#FFB300"

PRETTY = {"ig": "IG", ARTEFACT: "artefact"}

# (measurement key, column title); units follow the pixel size
MEASURES = (
    ("area", "Area"),
    ("equivalent_diameter", "Diameter"),
    ("circularity", "Circularity"),
    ("nc_ratio", "N:C"),
    ("lobe_count", "Lobes"),
    ("nucleus_area", "Nucleus area"),
)


def provider_text(provider: str) -> str:
    """A short, user-facing name of an onnxruntime execution provider."""
    return {
        "CPUExecutionProvider": "CPU",
        "CUDAExecutionProvider": "GPU (CUDA)",
        "TensorrtExecutionProvider": "GPU (TensorRT)",
        "DmlExecutionProvider": "GPU (DirectML)",
        "CoreMLExecutionProvider": "CoreML",
    }.get(provider, provider or "?")


def class_colour(name: str | None) -> QColor:
    """The fixed colour of a class; unknown classes get a stable golden-angle hue."""
    if name is None:
        return QColor(UNCLASSIFIED_COLOUR)
    if name in CLASS_COLOURS:
        return QColor(CLASS_COLOURS[name])
    hue = (sum(map(ord, name)) * 0.381966) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return QColor(int(r * 255), int(g * 255), int(b * 255))


def pretty(name: str | None) -> str:
    """Display name of a class (``ig`` -> ``IG``); ``unclassified`` for None."""
    if name is None:
        return "unclassified"
    return PRETTY.get(name, name)


def measure_value(cell: Cell, key: str, pixel_size_um: float | None) -> float | None:
    """A measurement in display units: µm / µm² when the pixel size is known, else px."""
    value = cell.measurements.get(key)
    if value is None:
        return None
    if pixel_size_um:
        if key in ("area", "nucleus_area"):
            return value * pixel_size_um**2
        if key in ("equivalent_diameter", "perimeter"):
            return value * pixel_size_um
    return float(value)


def measure_text(cell: Cell, key: str, pixel_size_um: float | None) -> str:
    value = measure_value(cell, key, pixel_size_um)
    if value is None:
        return ""
    if key == "lobe_count":
        return f"{int(round(value))}"
    unit = ""
    if key in ("area", "nucleus_area"):
        unit = " µm²" if pixel_size_um else " px²"
        return f"{value:,.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}"
    if key in ("equivalent_diameter", "perimeter"):
        unit = " µm" if pixel_size_um else " px"
        return f"{value:.1f}{unit}"
    return f"{value:.2f}"


def call_text(cell: Cell, models: Sequence[ModelRun], threshold: float) -> str:
    """Short label drawn on the image: ``12 neutrophil 87%``, ``✓`` when reviewed, ``?`` when flagged."""
    call = cell_call(cell, models)
    text = f"{cell.id} {pretty(call.label)}" if call.label else f"{cell.id}"
    if call.reviewed:
        return text + " ✓"
    if call.confidence is not None:
        text += f" {call.confidence:.0%}"
    if is_flagged(cell, models, threshold):
        text = "? " + text
    return text


def tooltip_html(cell: Cell, models: Sequence[ModelRun], threshold: float, pixel_size_um: float | None) -> str:
    """Rich-text tooltip: the call, each model's top classes, the measurements."""
    call = cell_call(cell, models)
    kind = {"wbc": "white cell", "rbc": "red cell", "platelet": "platelet"}.get(cell.kind, cell.kind)
    lines = [f"<b>Cell {cell.id}</b> · {html.escape(kind)}"]
    if call.label:
        source = (
            f"reviewed by {html.escape(cell.review.reviewer or '?')}"
            if call.reviewed
            else f"{call.confidence:.0%} by {html.escape(call.model or '')}"
        )
        lines.append(f"<b>{html.escape(pretty(call.label))}</b> ({source})")
    if is_flagged(cell, models, threshold):
        lines.append(f"<span style='color:{FLAG_COLOUR}'>low confidence: please review</span>")
    for run in models:
        pred = cell.predictions.get(run.name)
        if pred is None:
            continue
        top = sorted(pred.probabilities.items(), key=lambda kv: -kv[1])[:3]
        parts = ", ".join(f"{html.escape(pretty(k))} {v:.0%}" for k, v in top)
        lines.append(f"<i>{html.escape(run.name)} {html.escape(run.version)}</i>: {parts}")
    rows = []
    for key, title in MEASURES:
        text = measure_text(cell, key, pixel_size_um)
        if text:
            rows.append(f"<tr><td>{title}</td><td align='right'>{html.escape(text)}</td></tr>")
    table = "<table cellspacing='0' cellpadding='1'>" + "".join(rows) + "</table>" if rows else ""
    return "<br>".join(lines) + table
