"""The report's snapshot: the field with its outlines and labels, drawn at one size for the page."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import cv2
import numpy as np

from ..analysis import Analysis, ModelRun
from ..calls import FLAG_COLOUR, call_cell, class_rgb
from ..cells import Cell
from ..classes import abbreviation
from ..labels import LabelRequest, place_labels

__all__ = ["SNAPSHOT_SIDE", "report_snapshot", "snapshot_label_text"]

#: The snapshot's longer side in pixels, whatever the image's (a 224 px image is enlarged, a
#: large one reduced), so that its labels and outlines have one size on the page.
SNAPSHOT_SIDE = 1800

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_OTHER_KINDS = {"rbc": (230, 80, 80), "platelet": (160, 60, 200)}


def _moved(cell: Cell, sx: float, sy: float, ox: float, oy: float) -> Cell:
    """The cell in the snapshot's pixels (contour, box, centroid, maps), its call unchanged."""
    factor = np.array([sx, sy])
    origin = np.array([ox, oy])
    contour = (np.asarray(cell.contour, np.float64).reshape(-1, 2) - origin) * factor
    x0, y0, x1, y1 = cell.bbox
    predictions = {}
    for name, pred in cell.predictions.items():
        box = pred.cam_box
        if box is not None:
            box = ((box[0] - ox) * sx, (box[1] - oy) * sy, (box[2] - ox) * sx, (box[3] - oy) * sy)
        predictions[name] = dataclasses.replace(pred, cam_box=box)
    area = cell.measurements.get("area")
    measurements = dict(cell.measurements)
    if area:
        measurements["area"] = area * sx * sy  # the diameter follows (the heatmap's margin)
    return dataclasses.replace(
        cell,
        contour=contour,
        bbox=(
            int(np.floor((x0 - ox) * sx)), int(np.floor((y0 - oy) * sy)),
            int(np.ceil((x1 - ox) * sx)), int(np.ceil((y1 - oy) * sy)),
        ),  # fmt: skip
        centroid=((cell.centroid[0] - ox) * sx, (cell.centroid[1] - oy) * sy),
        measurements=measurements,
        predictions=predictions,
    )


def snapshot_label_text(cell: Cell, models: Sequence[ModelRun], threshold: float) -> str:
    """The snapshot's label of a cell: its id and class abbreviation (``12 Neut``), ``?`` when flagged.

    The abbreviation is the table's, so a reader finds the class without its colour.
    A reviewed cell's tick is drawn after the text.
    """
    call = call_cell(cell, models, threshold)
    text = f"{cell.id} {abbreviation(call.label)}" if call.label else f"{cell.id}"
    return f"? {text}" if call.needs_review else text


def report_snapshot(
    image: np.ndarray,
    analysis: Analysis,
    threshold: float,
    *,
    heatmap: bool = False,
    side: int = SNAPSHOT_SIDE,
    region: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """The field with its outlines and labels, drawn at one size for the page.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        What the snapshot shows: the analysed image, a reduced copy of it, or of ``region``.
    analysis : Analysis
    threshold : float
    heatmap : bool
        Blend the class-activation maps (off in reports unless chosen for the report).
    side : int
        The snapshot's longer side: ``image`` is scaled up or down to it, and
        outlines and labels are drawn for that size, so that they look the same
        on the page whatever the image's size.
    region : (x, y, width, height), optional
        The part of the analysed image that ``image`` shows (all of it when None).

    Returns
    -------
    ndarray of uint8, shape (h, w, 3)
        Labels (:func:`snapshot_label_text`) never overlap and never leave the
        image; a label that fits nowhere gives way to a smaller one (the id), or is left out.
    """
    from ..explain import field_heatmap, heatmap_overlay

    height, width = image.shape[:2]
    rx, ry, rw, rh = region if region is not None else (0, 0, analysis.width, analysis.height)
    scale = side / max(height, width, 1)
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(image[..., :3]), size, interpolation=interpolation)
    out_h, out_w = out.shape[:2]
    sx, sy = out_w / max(rw, 1), out_h / max(rh, 1)
    inside = [c for c in analysis.cells if _overlaps(c.bbox, (rx, ry, rx + rw, ry + rh))]
    moved = {c.id: _moved(c, sx, sy, rx, ry) for c in inside}
    models = analysis.models
    if heatmap and models:
        calls = {c.id: call_cell(c, models, threshold) for c in inside}
        for run in models:  # each cell's map from the model behind its call
            chosen = [moved[c.id] for c in inside if (calls[c.id].model or models[0].name) == run.name]
            heat = field_heatmap(chosen, run.name, out.shape[:2])
            if heat.any():
                out = heatmap_overlay(out, heat, 0.45)
    unit = side / 1800.0
    line = max(1, int(round(2.0 * unit)))
    requests: list[LabelRequest] = []
    texts: dict[int, tuple[str, str, tuple[int, int, int], bool, bool]] = {}
    font_scale = 0.95 * unit  # about 9 pt on the page
    thickness = max(1, int(round(2.0 * unit)))
    (_, text_h), base = cv2.getTextSize("0", _FONT, font_scale, thickness)
    box_h = text_h + base + int(round(8 * unit))
    for cell in inside:
        shown = moved[cell.id]
        points = np.round(np.asarray(shown.contour).reshape(-1, 2)).astype(np.int32).reshape(-1, 1, 2)
        if cell.kind != "wbc" and cell.review.label is None:
            cv2.polylines(out, [points], True, _OTHER_KINDS.get(cell.kind, (255, 255, 255)), 1, cv2.LINE_AA)
            continue
        call = call_cell(cell, models, threshold)
        colour = class_rgb(call.label)
        if call.needs_review:  # flagged: an amber halo as well as the ? mark
            cv2.polylines(out, [points], True, _hex(FLAG_COLOUR), line + 4, cv2.LINE_AA)
        cv2.polylines(out, [points], True, colour, line + (1 if call.reviewed else 0), cv2.LINE_AA)
        text = snapshot_label_text(cell, models, threshold)
        short = f"{cell.id}"
        widths = []
        for candidate in (text, short):
            (tw, _), _ = cv2.getTextSize(candidate, _FONT, font_scale, thickness)
            tick = box_h if call.reviewed else 0
            widths.append((tw + int(round(16 * unit)) + tick, box_h))
        texts[cell.id] = (text, short, colour, call.needs_review, call.reviewed)
        priority = 0.0 if call.needs_review else 1.0
        requests.append(LabelRequest(cell.id, shown.bbox, widths, priority + cell.id * 1e-6))
    for placed in place_labels(requests, (0, 0, out_w, out_h), gap=2.0 * unit, pad=2.0 * unit):
        text, short, colour, flagged, reviewed = texts[placed.key]
        _draw_tag(out, placed.rect, short if placed.form else text, colour, flagged, reviewed,
                  font_scale, thickness, unit)  # fmt: skip
    return out


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _overlaps(box: tuple[int, int, int, int], region: tuple[int, int, int, int]) -> bool:
    return box[0] < region[2] and region[0] < box[2] and box[1] < region[3] and region[1] < box[3]


def _draw_tag(
    out: np.ndarray, rect: tuple[float, float, float, float], text: str, colour: tuple[int, int, int],
    flagged: bool, reviewed: bool, font_scale: float, thickness: int, unit: float,
) -> None:  # fmt: skip
    # a dark tag with a class-coloured stripe, as in the viewer: readable on any stain
    x0, y0, x1, y1 = (int(round(v)) for v in rect)
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (20, 20, 26), -1)
    if flagged:
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), _hex(FLAG_COLOUR), max(1, int(round(2 * unit))))
    stripe = max(2, int(round(5 * unit)))
    pad = max(1, int(round(3 * unit)))
    cv2.rectangle(out, (x0 + pad, y0 + pad), (x0 + pad + stripe, y1 - 1 - pad), colour, -1)
    (_, text_h), base = cv2.getTextSize("0", _FONT, font_scale, thickness)
    tx = x0 + pad + stripe + pad * 2
    ty = y0 + (y1 - y0 + text_h) // 2
    ink = _hex(FLAG_COLOUR) if flagged else (255, 255, 255)
    cv2.putText(out, text, (tx, ty), _FONT, font_scale, ink, thickness, cv2.LINE_AA)
    if reviewed:  # Hershey fonts are ASCII only: the tick is drawn
        (tw, _), _ = cv2.getTextSize(text + " ", _FONT, font_scale, thickness)
        h = text_h
        x, y = tx + tw, ty
        tick = np.array([[x, y - 0.45 * h], [x + 0.35 * h, y], [x + h, y - h]]).round().astype(np.int32)
        cv2.polylines(out, [tick.reshape(-1, 1, 2)], False, (90, 220, 120), thickness + 1, cv2.LINE_AA)
