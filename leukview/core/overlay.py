"""Overlay rendering without Qt, for the CLI's PNGs and for reports.

Every white cell is labelled and coloured from its call
(:func:`leukview.core.calls.call_cell`, palette :func:`leukview.core.calls.class_rgb`),
exactly as the viewer labels it, so the PNG, the report and the viewer show
one class per cell.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import cv2
import numpy as np

from .analysis import Analysis, ModelRun
from .calls import DEFAULT_CONFIDENCE_THRESHOLD, call_cell, class_rgb, display_name
from .cells import Cell

KIND_COLOURS = {"wbc": (40, 90, 255), "rbc": (230, 80, 80), "platelet": (160, 60, 200)}
REVIEWED_MARK = "✓"
NEEDS_REVIEW_MARK = "?"


def cell_label_text(
    cell: Cell, models: Sequence[ModelRun], threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
) -> str:
    """The label drawn beside a cell: ``12 neutrophil 87%``, ``? 12 blast 55%``, ``12 lymphocyte ✓``.

    ``✓`` marks a reviewer's call, ``?`` an unreviewed call that needs review
    (:attr:`CellCall.needs_review <leukview.core.calls.CellCall.needs_review>`);
    a cell without a call shows its id alone.
    """
    call = call_cell(cell, models, threshold)
    text = f"{cell.id} {display_name(call.label)}" if call.label else f"{cell.id}"
    if call.reviewed:
        return f"{text} {REVIEWED_MARK}"
    if call.confidence is not None:
        text += f" {call.confidence:.0%}"
    if call.needs_review:
        text = f"{NEEDS_REVIEW_MARK} {text}"
    return text


def render_overlay(
    image: np.ndarray,
    analysis: Analysis,
    model: str | None = None,
    *,
    threshold: float | None = None,
    heatmap: bool = True,
    heatmap_alpha: float = 0.4,
    show_rbc: bool = True,
) -> np.ndarray:
    """Draw contours, labels and class-activation heatmaps onto a copy of the image.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The analysed RGB image, or a reduced copy of it: the cells' pixel
        coordinates are scaled by ``W / analysis.width`` and ``H / analysis.height``.
    analysis : Analysis
        Cells and model runs for this image.
    model : str, optional
        Model whose heatmap is blended; the first model run when None. Labels
        and colours are always the cells' calls, whichever model is named.
    threshold : float, optional
        Confidence threshold of the ``?`` mark; ``analysis.confidence_threshold`` when None.
    heatmap : bool
        Blend the field's class-activation heatmap over white cells.
    heatmap_alpha : float
        Heatmap opacity in [0, 1].
    show_rbc : bool
        Draw red-cell and platelet contours too.

    Returns
    -------
    overlay : ndarray of uint8, shape (H, W, 3)
    """
    from .explain import field_heatmap, heatmap_overlay

    if threshold is None:
        threshold = analysis.confidence_threshold
    if model is None and analysis.models:
        model = analysis.models[0].name
    height, width = image.shape[:2]
    sx = width / max(analysis.width, 1)
    sy = height / max(analysis.height, 1)
    out = image.copy()
    if heatmap and model is not None:
        heat = field_heatmap(_scaled_cams(analysis.cells, model, sx, sy), model, image.shape[:2])
        if heat.any():
            out = heatmap_overlay(out, heat, heatmap_alpha)
    scale = max(height, width) / 640.0
    thickness = max(1, int(round(1.5 * scale)))
    font_scale = 0.45 * scale
    factor = np.array([sx, sy])
    for cell in analysis.cells:
        labelled = cell.kind == "wbc" or cell.review.label is not None  # the review cells
        if not labelled and not show_rbc:
            continue
        contour = np.round(np.asarray(cell.contour, np.float64).reshape(-1, 2) * factor)
        contour = contour.astype(np.int32).reshape(-1, 1, 2)
        if not labelled:
            cv2.drawContours(out, [contour], -1, KIND_COLOURS.get(cell.kind, (255, 255, 255)), 1, cv2.LINE_AA)
            continue
        call = call_cell(cell, analysis.models, threshold)
        colour = class_rgb(call.label)
        width_px = thickness + 1 if call.reviewed else thickness
        cv2.drawContours(out, [contour], -1, colour, width_px, cv2.LINE_AA)
        text = cell_label_text(cell, analysis.models, threshold)
        origin = (int(round(cell.bbox[0] * sx)), max(int(round(cell.bbox[1] * sy)) - 4, 12))
        _put_label(out, text, origin, font_scale, thickness, colour)
    return out


def _put_label(
    out: np.ndarray, text: str, origin: tuple[int, int], font_scale: float, thickness: int, colour: tuple[int, ...]
) -> None:
    # Hershey fonts are ASCII only: the reviewed mark is drawn as a tick after the text.
    ticked = text.endswith(REVIEWED_MARK)
    if ticked:
        text = text[: -len(REVIEWED_MARK)].rstrip()
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(out, text, origin, font, font_scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(out, text, origin, font, font_scale, colour, thickness, cv2.LINE_AA)
    if ticked:
        (text_w, text_h), _ = cv2.getTextSize(text + " ", font, font_scale, thickness)
        x, y = origin[0] + text_w, origin[1]
        tick = np.array(
            [[x, y - 0.45 * text_h], [x + 0.35 * text_h, y], [x + text_h, y - text_h]], np.float64
        ).round().astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [tick], False, (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.polylines(out, [tick], False, colour, thickness, cv2.LINE_AA)


def _scaled_cams(cells: Sequence[Cell], model: str, sx: float, sy: float) -> list[Cell]:
    """Cells whose ``model`` CAM boxes are in the coordinates of a reduced image."""
    if sx == 1.0 and sy == 1.0:
        return list(cells)
    scaled = []
    for cell in cells:
        pred = cell.predictions.get(model)
        if pred is None or pred.cam is None or pred.cam_box is None:
            continue
        x0, y0, x1, y1 = pred.cam_box
        box = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
        contour = np.asarray(cell.contour, np.float64).reshape(-1, 2) * (sx, sy)  # the map is masked to the cell
        scaled.append(
            dataclasses.replace(cell, contour=contour, predictions={model: dataclasses.replace(pred, cam_box=box)})
        )
    return scaled
