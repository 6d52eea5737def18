"""Masks, hit tests and point lists of the edits (image pixels)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np
from scipy import ndimage as ndi

from ..cells import Cell
from ._context import EditContext, EditError

Points = Sequence[Sequence[float]] | np.ndarray
"""(x, y) points in image pixels, shape (N, 2), in the cells' coordinates: (i, j) is the
centre of pixel column i, row j (as contours and centroids)."""


def cell_mask(cell: Cell, origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """A cell's region (its contour filled) in a box of ``shape`` (h, w) whose top-left is ``origin`` (x, y)."""
    mask = np.zeros(shape, np.uint8)
    contour = np.asarray(cell.contour, np.int64).reshape(-1, 2)
    if len(contour) >= 3:
        shifted = (contour - np.asarray(origin, np.int64)).astype(np.int32)
        cv2.fillPoly(mask, [shifted.reshape(-1, 1, 2)], 1)
    elif len(contour):
        x0, y0, x1, y1 = cell.bbox
        ox, oy = origin
        mask[max(y0 - oy, 0) : max(y1 - oy, 0), max(x0 - ox, 0) : max(x1 - ox, 0)] = 1
    return mask > 0


def _inside(cell: Cell, x: float, y: float) -> bool:
    x0, y0, x1, y1 = cell.bbox
    if not (x0 <= x < x1 and y0 <= y < y1) or len(cell.contour) < 3:
        return False
    contour = np.asarray(cell.contour, np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0


def cell_at(cells: Iterable[Cell], point: Sequence[float], kinds: Sequence[str] | None = None) -> Cell | None:
    """The cell under a point (white cells before red cells and platelets), or None."""
    x, y = float(point[0]), float(point[1])
    found = [c for c in cells if (kinds is None or c.kind in kinds) and _inside(c, x, y)]
    found.sort(key=lambda c: (c.kind != "wbc", c.measurements.get("area", 0.0)))
    return found[0] if found else None


def cells_crossed(cells: Iterable[Cell], points: Points) -> list[Cell]:
    """The cells a drawn line passes through, the most crossed first (white cells first on a tie).

    The line is sampled every pixel; a cell counts when a sample lies inside it.
    """
    line = _as_points(points)
    if len(line) == 0:
        return []
    samples = [line[0]]
    for a, b in zip(line[:-1], line[1:], strict=True):
        n = max(int(np.ceil(np.hypot(*(b - a)))), 1)
        samples.extend(a + (b - a) * (k / n) for k in range(1, n + 1))
    hits: list[tuple[int, Cell]] = []
    for cell in cells:
        count = sum(_inside(cell, x, y) for x, y in samples)
        if count:
            hits.append((count, cell))
    hits.sort(key=lambda t: (-t[0], t[1].kind != "wbc"))
    return [cell for _, cell in hits]


def cell_to_split(cells: Iterable[Cell], line: Points) -> Cell | None:
    """The cell a line drawn across it means: the one under the line's middle, else the most crossed."""
    path = _as_points(line)
    cells = list(cells)
    if len(path) == 0:
        return None
    steps = np.hypot(*np.diff(path, axis=0).T) if len(path) > 1 else np.zeros(0)
    middle = path[0]
    if steps.sum() > 0:
        half = steps.sum() / 2.0
        k = int(np.searchsorted(np.cumsum(steps), half))
        before = float(np.cumsum(steps)[k - 1]) if k else 0.0
        middle = path[k] + (path[k + 1] - path[k]) * ((half - before) / max(float(steps[k]), 1e-9))
    under = cell_at(cells, middle)
    if under is not None:
        return under
    crossed = cells_crossed(cells, path)
    return crossed[0] if crossed else None


def absorbed_cells(new: Sequence[Cell], cells: Iterable[Cell]) -> list[Cell]:
    """The red cells and platelets whose centre lies inside one of the new cells.

    A white cell the pipeline missed was often cut into red cells or left with
    specks called platelets, and an outline drawn round two red cells is one
    cell: a reviewer who outlines a cell replaces what it covers. White cells
    are never covered (a new cell leaves their pixels to them).
    """
    new = list(new)
    return [c for c in cells if c.kind != "wbc" and all(c is not n for n in new) and any(_inside(n, *c.centroid) for n in new)]


def _as_points(points: Points) -> np.ndarray:
    array = np.asarray(points, np.float64)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2 or not np.isfinite(array).all():
        raise EditError("points must be finite (x, y) pairs")
    return array


def _polygon_window(context: EditContext, polygon: np.ndarray) -> tuple[np.ndarray, int, int, np.ndarray]:
    x0, y0 = polygon.min(axis=0) - 2
    x1, y1 = polygon.max(axis=0) + 3
    pixels, ox, oy = context.window(x0, y0, x1, y1)
    mask = np.zeros(pixels.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon - (ox, oy)).astype(np.int32).reshape(-1, 1, 2)], 1)
    return pixels, ox, oy, mask > 0


def _white_cells_mask(cells: Iterable[Cell], origin: tuple[int, int], shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    ox, oy = origin
    out = np.zeros((h, w), bool)
    for cell in cells:
        if cell.kind != "wbc":
            continue
        x0, y0, x1, y1 = cell.bbox
        if x1 <= ox or y1 <= oy or x0 >= ox + w or y0 >= oy + h:
            continue
        out |= cell_mask(cell, origin, (h, w))
    return out


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _component_at(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` connected to ``seed``."""
    labels, _ = ndi.label(mask)
    own = np.unique(labels[seed & mask])
    return np.isin(labels, own[own > 0])


def _label_near(labels: np.ndarray, x: int, y: int, radius: float) -> int:
    """The label at (x, y), else the nearest within ``radius`` pixels, else 0."""
    if labels[y, x]:
        return int(labels[y, x])
    r = max(int(np.ceil(radius)), 1)
    y0, y1 = max(y - r, 0), min(y + r + 1, labels.shape[0])
    x0, x1 = max(x - r, 0), min(x + r + 1, labels.shape[1])
    ys, xs = np.nonzero(labels[y0:y1, x0:x1])
    if not len(ys):
        return 0
    dist = (ys + y0 - y) ** 2 + (xs + x0 - x) ** 2
    best = int(np.argmin(dist))
    return int(labels[ys[best] + y0, xs[best] + x0]) if dist[best] <= radius * radius else 0


def _nearest_fill(markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give every pixel of ``mask`` the label of the nearest marker pixel."""
    _, (iy, ix) = ndi.distance_transform_edt(markers == 0, return_indices=True)
    return np.where(mask, markers[iy, ix], 0).astype(np.int32)
