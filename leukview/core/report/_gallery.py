"""The report's cell images, grouped by class (:func:`report_gallery`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..analysis import ModelRun
from ..calls import call_cell, display_name, review_cells, review_classes, review_order
from ..cells import Cell
from ..classes import abbreviation, active_classes
from ..preprocess import CropRule, crop_cell
from ._snapshot import _moved

__all__ = [
    "GALLERY_RULE",
    "GALLERY_SIDE",
    "MAX_GALLERY_PER_CLASS",
    "GalleryCell",
    "GalleryGroup",
    "image_crops",
    "report_gallery",
]

#: The cell images of the report: cut as the viewer's gallery cuts them, this many pixels a side.
GALLERY_RULE = CropRule(scale=1.4, min_side=24, background="keep")
GALLERY_SIDE = 112
#: At most this many images per class (the first in review order: flagged and least sure first).
MAX_GALLERY_PER_CLASS = 48


@dataclass(frozen=True)
class GalleryCell:
    """One cell image of the report's gallery."""

    id: int
    crop: np.ndarray
    flagged: bool
    reviewed: bool


@dataclass(frozen=True)
class GalleryGroup:
    """The images of one class (or of the unclassified cells: ``name`` None)."""

    name: str | None
    total: int
    cells: tuple[GalleryCell, ...]

    @property
    def title(self) -> str:
        code = abbreviation(self.name) if self.name else "—"
        return f"{display_name(self.name)} ({code})"


def report_gallery(
    cells: Sequence[Cell],
    models: Sequence[ModelRun],
    threshold: float,
    crop: Callable[[Cell], np.ndarray | None],
    *,
    per_class: int = MAX_GALLERY_PER_CLASS,
    side: int = GALLERY_SIDE,
) -> list[GalleryGroup]:
    """The review cells' images grouped by their call, classes in clinical order, unclassified last.

    Within a class, cells come in review order (flagged and least sure first);
    at most ``per_class`` of them (:attr:`GalleryGroup.total` says how many there are).
    """
    lab = active_classes()
    groups: dict[str | None, list[Cell]] = {}
    calls = {c.id: call_cell(c, models, threshold) for c in review_cells(cells)}
    for cell in review_order(cells, models, threshold):
        label = calls[cell.id].label
        groups.setdefault(None if label is None else lab.canonical(label), []).append(cell)
    order = [n for n in review_classes(models) if n in groups]
    order += [n for n in groups if n is not None and n not in order]
    names: list[str | None] = [*order, None] if None in groups else list(order)
    result = []
    for name in names:
        members = groups[name]
        shown = []
        for cell in members[:per_class]:
            array = crop(cell)
            if array is None or array.size == 0:
                continue
            image = cv2.resize(np.ascontiguousarray(array[..., :3]), (side, side), interpolation=cv2.INTER_AREA)
            call = calls[cell.id]
            shown.append(GalleryCell(cell.id, image, call.needs_review, call.reviewed))
        result.append(GalleryGroup(name, len(members), tuple(shown)))
    return result


def image_crops(image: np.ndarray, region: tuple[int, int, int, int] | None = None) -> Callable[[Cell], np.ndarray]:
    """Cut the report's cell images out of ``image`` (showing ``region`` of the analysed image)."""
    if region is None:
        return lambda cell: crop_cell(image, cell, GALLERY_RULE, GALLERY_SIDE)
    rx, ry, rw, rh = region
    sx, sy = image.shape[1] / max(rw, 1), image.shape[0] / max(rh, 1)
    return lambda cell: crop_cell(image, _moved(cell, sx, sy, rx, ry), GALLERY_RULE, GALLERY_SIDE)
