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
from leukview.core.calls import FLAG_COLOUR, CellCall, display_name, unsure_models
from leukview.core.cells import Cell
from leukview.core.classes import abbreviation
from leukview.core.report import provider_text  # one name per provider, as the report writes it

__all__ = [
    "FLAG_COLOUR",
    "KIND_COLOURS",
    "MEASURES",
    "abbreviation",
    "call_text",
    "class_colour",
    "detail_html",
    "display_name",
    "doubting_models",
    "marker_text",
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


def doubting_models(cell: Cell, call: CellCall, models: Sequence[ModelRun], threshold: float) -> list[tuple[str, float]]:
    """(model, confidence) of the models other than the one behind the call that are unsure of the cell.

    A cell called ``blast 99%`` by one model is flagged when another model is
    under the threshold: the label's confidence is the call's own, and this is
    why it is flagged anyway. Empty for a reviewed cell.
    """
    if call.reviewed:
        return []
    return [(name, value) for name, value in unsure_models(cell, models, threshold, call.source) if name != call.model]


def marker_text(cell: Cell, call: CellCall, models: Sequence[ModelRun], threshold: float) -> str:
    """What the label adds when another model is unsure: ``⚑ wbc-type 62%`` (empty otherwise)."""
    doubts = doubting_models(cell, call, models, threshold)
    return " ".join(f"⚑ {name} {value:.0%}" for name, value in doubts)


def _flag_lines(
    cell: Cell, call: CellCall, models: Sequence[ModelRun], threshold: float | None, *, ask: bool = True
) -> list[str]:
    lines = []
    if call.needs_review and ask:
        lines.append(f"<span style='color:{FLAG_COLOUR}'><b>please review</b></span>")
    doubts = doubting_models(cell, call, models, threshold) if threshold is not None else []
    if doubts and call.label and threshold is not None:
        own = f"{call.confidence:.0%} by {call.model}" if call.confidence is not None and call.model else ""
        unsure = ", ".join(f"{html.escape(n)} {v:.0%}" for n, v in doubts)
        lines.append(
            f"<span style='color:{FLAG_COLOUR}'>⚑ flagged for the low confidence of another model: {unsure} "
            f"&lt; {threshold:.0%}</span>" + (f" (the call, {html.escape(own)}, is sure)" if own else "")
        )
    sure = threshold is not None and call.confidence is not None and call.confidence >= threshold
    for reason in call.reasons:
        if doubts and sure and reason.startswith("low confidence"):
            continue  # said just above, with which model
        lines.append(f"<span style='color:{FLAG_COLOUR}'>{html.escape(reason)}</span>")
    return lines


def tooltip_html(
    cell: Cell, call: CellCall, models: Sequence[ModelRun], calibration: Calibration, threshold: float | None = None
) -> str:
    """Rich-text tooltip: the call, why it is flagged, each model's top classes, the measurements.

    With ``threshold`` (the document's), a cell flagged because another model
    than the one behind its call is unsure says so (:func:`doubting_models`).
    """
    kind = {"wbc": "white cell", "rbc": "red cell", "platelet": "platelet"}.get(cell.kind, cell.kind)
    lines = [f"<b>Cell {cell.id}</b> · {html.escape(kind)}"]
    if call.label:
        source = (
            f"reviewed by {html.escape(cell.review.reviewer or '?')}"
            if call.reviewed
            else f"{call.confidence or 0.0:.0%} by {html.escape(call.model or '')}"
        )
        lines.append(f"<b>{html.escape(display_name(call.label))}</b> ({source})")
    lines.extend(_flag_lines(cell, call, models, threshold))
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


def detail_html(
    cell: Cell, call: CellCall, model_call: CellCall, models: Sequence[ModelRun], calibration: Calibration,
    threshold: float,
) -> str:  # fmt: skip
    """The Review panel's detail of the selected cell: the call, why it is flagged, every model's output.

    Parameters
    ----------
    cell : Cell
    call : CellCall
        The cell's call (the reviewer's when reviewed).
    model_call : CellCall
        What the models called, as if nobody had reviewed the cell.
    models : sequence of ModelRun
    calibration : Calibration
    threshold : float
        The document's confidence threshold.
    """
    esc = html.escape
    kind = {"wbc": "white cell", "rbc": "red cell", "platelet": "platelet"}.get(cell.kind, cell.kind)
    colour = calls.class_colour(call.label)
    head = (
        f"<b>Cell {cell.id}</b> · {esc(kind)} · <span style='color:{colour}'>■</span> "
        f"<b>{esc(display_name(call.label))}</b> ({esc(abbreviation(call.label))})"
    )
    if call.reviewed:
        head += f", reviewed by {esc(cell.review.reviewer or '?')}"
        if model_call.label and model_call.label != call.label:
            head += f" (the models said {esc(display_name(model_call.label))})"
    elif call.confidence is not None:
        head += f", {call.confidence:.0%} by {esc(call.model or '')}"
    if call.needs_review:
        head += f" — <b style='color:{FLAG_COLOUR}'>please review</b>"
    lines = [head, *_flag_lines(cell, call, models, threshold, ask=False)]
    rows = []
    unsure = {name for name, _value in unsure_models(cell, models, threshold, model_call.source)}
    for run in models:
        pred = cell.predictions.get(run.name)
        if pred is None:
            rows.append(f"<tr><td>{esc(run.name)}</td><td colspan='3'>did not classify this cell</td></tr>")
            continue
        top = sorted(pred.probabilities.items(), key=lambda kv: -kv[1])[:3]
        others = ", ".join(f"{esc(display_name(k))} {v:.0%}" for k, v in top[1:])
        decides = "the call" if run.name == model_call.model else (
            "not asked (it re-decides only " + ", ".join(run.refines) + ")" if run.refines else ""
        )
        sure = run.name not in unsure
        style = "" if sure else f" style='color:{FLAG_COLOUR}'"
        atypical = "" if pred.atypicality is None else f"; {pred.atypicality:.1f}× open-set"
        rows.append(
            f"<tr><td>{esc(run.name)} {esc(run.version)}</td><td{style}><b>{esc(display_name(pred.label))} "
            f"{pred.confidence:.0%}</b>{'' if sure else ' (unsure)'}</td><td>{others}{esc(atypical)}</td>"
            f"<td>{decides}</td></tr>"
        )
    table = (
        "<table cellspacing='0' cellpadding='2' width='100%'><tr><th align='left'>Model</th>"
        "<th align='left'>Top class</th><th align='left'>Next</th><th></th></tr>" + "".join(rows) + "</table>"
        if rows
        else "<i>No model classified this cell.</i>"
    )
    measures = ", ".join(
        f"{title} {esc(measure_text(cell, key, calibration))}"
        for key, title in MEASURES
        if measure_text(cell, key, calibration)
    )
    return "<br>".join(lines) + table + (f"<span style='color:gray'>{measures}</span>" if measures else "")
