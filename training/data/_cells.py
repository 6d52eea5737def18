"""Finding the cells of a source: the app's segmentation, boxes, masks on black.

Every finder returns :class:`leukview.core.cells.Cell` records, so the crops
are cut by the app's own :func:`leukview.core.preprocess.crop_cell`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from leukview.core.cells import Cell
from leukview.core.errors import ImageReadError

from ._source import Source


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image as RGB uint8 with the app's reader (Pillow when it is absent)."""
    try:
        from leukview.core.io import read_image
    except ImportError:  # the app's reader is optional here
        pass
    else:
        return read_image(path)
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read image ({exc})", path) from exc


def cell_from_mask(mask: np.ndarray, cell_id: int = 1, kind: str = "wbc") -> Cell | None:
    """A Cell from the largest connected region of a boolean mask, or None if empty."""
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == best).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.int32)
    x, y, w, h = (int(v) for v in stats[best, :4])
    area = float(stats[best, cv2.CC_STAT_AREA])
    cx, cy = (float(v) for v in centroids[best])
    return Cell(cell_id, kind, contour, (x, y, x + w, y + h), (cx, cy), measurements={"area": area})


def cell_on_black(image: np.ndarray, threshold: int = 12) -> Cell | None:
    """The cell of a C-NMC style image: the largest region brighter than black.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    threshold : int
        A pixel belongs to the cell when one of its channels exceeds this
        (JPEG and resampling leave near-black noise around the cell).
    """
    mask = image.max(axis=2) > threshold
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    return cell_from_mask(mask)


def box_cell(box: Sequence[float], cell_id: int = 1) -> Cell:
    """A Cell known only by a box (empty contour), e.g. a fallback crop."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return Cell(cell_id, "wbc", np.zeros((0, 2), np.int32), (x0, y0, x1, y1), ((x0 + x1) / 2.0, (y0 + y1) / 2.0))


Segmenter = Callable[[np.ndarray], list[Cell]]


def app_segmenter(image: np.ndarray) -> list[Cell]:
    """The app's segmentation (:func:`leukview.core.segment.segment`), cells only."""
    from leukview.core.segment import segment

    return list(segment(image).cells)


@functools.lru_cache(maxsize=1)
def segmenter_fingerprint() -> str:
    """Changes whenever the app's segmentation code or default parameters change.

    Computed once per process, right after the segmentation module is
    imported, so it describes the code that actually runs.
    """
    from leukview.core import measure, segment

    digest = hashlib.sha256()
    for module in (segment, measure):
        digest.update(_source_text(module).encode())
    params = getattr(segment, "SegmentationParams", None)
    if params is not None:
        digest.update(json.dumps(params().to_dict(), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _source_text(module: ModuleType) -> str:
    # a package's __init__ alone would miss changes to its other modules
    folders = getattr(module, "__path__", None)
    if folders is None:
        return inspect.getsource(module)
    files = sorted(p for folder in folders for p in Path(folder).rglob("*.py"))
    return "".join(p.read_text(encoding="utf-8") for p in files)


def nearest_to(cells: Sequence[Cell], point: tuple[float, float]) -> Cell | None:
    """The cell whose centroid is nearest to ``point`` (x, y), or None."""
    if not cells:
        return None
    return min(cells, key=lambda c: (c.centroid[0] - point[0]) ** 2 + (c.centroid[1] - point[1]) ** 2)


def match_box(cells: Sequence[Cell], box: Sequence[float]) -> Cell | None:
    """The white cell whose centroid lies inside ``box`` and nearest its centre, or None."""
    x0, y0, x1, y1 = box
    inside = [c for c in cells if x0 <= c.centroid[0] < x1 and y0 <= c.centroid[1] < y1]
    return nearest_to(inside, ((x0 + x1) / 2.0, (y0 + y1) / 2.0))


def select_cells(
    source: Source, entry: dict[str, Any] | None, image: np.ndarray | None = None
) -> list[tuple[Cell, str, str]]:
    """The cells of one source with their labels and how they were found.

    Returns
    -------
    picks : list of (Cell, label, how)
        ``how`` is 'segmented', 'mask' or 'box'; empty when no cell was found
        (the caller decides about fallbacks).
    """
    if source.finder == "mask":
        if image is None:
            image = read_rgb(source.path)
        cell = cell_on_black(image)
        return [] if cell is None else [(cell, source.label, "mask")]
    cells = [Cell.from_dict(c) for c in (entry or {}).get("cells", [])]
    wbcs = [c for c in cells if c.kind == "wbc"]
    if source.finder == "all":
        return [(c, source.label, "segmented") for c in wbcs]
    if source.finder == "centre":
        h, w = (entry or {}).get("shape", [0, 0])
        cell = nearest_to(wbcs, ((w - 1) / 2.0, (h - 1) / 2.0))
        return [] if cell is None else [(cell, source.label, "segmented")]
    picks = []
    for i, box in enumerate(source.boxes):
        label = source.labels[i] if i < len(source.labels) else source.label
        cell = match_box(wbcs, box)
        if cell is not None:
            picks.append((cell, label, "segmented"))
    return picks

