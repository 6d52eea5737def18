"""Overlay rendering without Qt, for the CLI's PNGs and for reports."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .analysis import Analysis

KIND_COLOURS = {"wbc": (40, 90, 255), "rbc": (230, 80, 80), "platelet": (160, 60, 200)}


def class_colour(index: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour for the class at ``index`` (golden-angle hues)."""
    hue = (index * 0.381966) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def render_overlay(
    image: np.ndarray,
    analysis: Analysis,
    model: str | None = None,
    *,
    heatmap: bool = True,
    heatmap_alpha: float = 0.4,
    show_rbc: bool = True,
) -> np.ndarray:
    """Draw contours, labels and class-activation heatmaps onto a copy of the image.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The analysed RGB image.
    analysis : Analysis
        Cells and model runs for this image.
    model : str, optional
        Model whose labels are drawn; the first model run when None.
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

    if model is None and analysis.models:
        model = analysis.models[0].name
    run = next((m for m in analysis.models if m.name == model), None)
    classes = run.classes if run else []
    out = image.copy()
    if heatmap and model is not None:
        heat = field_heatmap(analysis.cells, model, image.shape[:2])
        if heat.any():
            out = heatmap_overlay(out, heat, heatmap_alpha)
    scale = max(image.shape[:2]) / 640.0
    thickness = max(1, int(round(1.5 * scale)))
    font_scale = 0.45 * scale
    for cell in analysis.cells:
        if cell.kind != "wbc" and not show_rbc:
            continue
        contour = np.asarray(cell.contour, np.int32).reshape(-1, 1, 2)
        label = cell.label(model) if model else None
        if cell.kind == "wbc" and label in classes:
            colour = class_colour(classes.index(label))
        else:
            colour = KIND_COLOURS.get(cell.kind, (255, 255, 255))
        cv2.drawContours(out, [contour], -1, colour, thickness if cell.kind == "wbc" else 1, cv2.LINE_AA)
        if cell.kind == "wbc":
            pred = cell.predictions.get(model) if model else None
            text = f"{cell.id} {label}" if label else f"{cell.id} wbc"
            if pred is not None and cell.review.label is None:
                text += f" {pred.confidence:.0%}"
            x0, y0 = cell.bbox[0], max(cell.bbox[1] - 4, 12)
            cv2.putText(out, text, (x0, y0), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.putText(out, text, (x0, y0), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, thickness, cv2.LINE_AA)
    return out
