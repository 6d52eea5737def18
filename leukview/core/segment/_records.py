"""Cell records from crop masks: contour, box and centroid in image pixels, measurements."""

from __future__ import annotations

import cv2
import numpy as np

from ..cells import Cell
from ..measure import measure_cell


def _make_cell(
    cid: int,
    kind: str,
    image: np.ndarray,
    mask: np.ndarray,
    nucleus: np.ndarray | None,
    origin: tuple[int, int],
    pixel_scale: float,
    pixel_size_um: float | None,
) -> Cell:
    """A Cell from a crop mask whose top-left is ``origin`` (x, y) in mask pixels."""
    ox, oy = origin
    meas = measure_cell(mask, image, nucleus, pixel_size_um=pixel_size_um, pixel_scale=pixel_scale)
    ys, xs = np.nonzero(mask)
    cy = (ys.mean() + oy + 0.5) * pixel_scale - 0.5
    cx = (xs.mean() + ox + 0.5) * pixel_scale - 0.5
    contour = _contour(mask).astype(np.float64)
    contour = np.round((contour + (ox, oy) + 0.5) * pixel_scale - 0.5).astype(np.int32)
    x0 = int(np.floor((xs.min() + ox) * pixel_scale))
    y0 = int(np.floor((ys.min() + oy) * pixel_scale))
    x1 = int(np.ceil((xs.max() + ox + 1) * pixel_scale))
    y1 = int(np.ceil((ys.max() + oy + 1) * pixel_scale))
    nuc_contour = None
    if nucleus is not None and nucleus.any():
        nc = _contour(nucleus).astype(np.float64)
        nuc_contour = np.round((nc + (ox, oy) + 0.5) * pixel_scale - 0.5).astype(np.int32)
    return Cell(
        id=cid,
        kind=kind,
        contour=contour,
        bbox=(x0, y0, x1, y1),
        centroid=(float(cx), float(cy)),
        nucleus_contour=nuc_contour,
        measurements=meas,
    )


def _contour(mask: np.ndarray) -> np.ndarray:
    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not cs:
        return np.zeros((0, 2), np.int32)
    c = max(cs, key=cv2.contourArea)
    return c.reshape(-1, 2).astype(np.int32)


def _clip_to_image(cell: Cell, width: int, height: int) -> None:
    """Keep work-scale geometry inside the image (rounding can push it past the edge)."""
    x0, y0, x1, y1 = cell.bbox
    cell.bbox = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
    limit = np.array([width - 1, height - 1])
    cell.contour = np.clip(cell.contour, 0, limit).astype(np.int32)
    if cell.nucleus_contour is not None:
        cell.nucleus_contour = np.clip(cell.nucleus_contour, 0, limit).astype(np.int32)
