"""Which part of an image is analysed at once: the whole image, or a field of a large one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..analysis import Analysis, analyze_image
from ..calibration import Calibration
from ..cells import offset_cells
from ..progress import CancelCheck, ProgressCallback

if TYPE_CHECKING:
    from ..models import Classifier
    from ..segment import SegmentationParams

__all__ = [
    "LARGE_IMAGE_PIXELS",
    "MAX_FIELD_SIDE",
    "MIN_FIELD_SIDE",
    "FieldRect",
    "analyse_field",
    "field_rect",
    "offset_cells",
]

#: Images with more pixels are shown tile by tile from disk and analysed one field at a time.
LARGE_IMAGE_PIXELS = 36_000_000
#: The largest field analysed at once in a large image (level-0 pixels a side).
MAX_FIELD_SIDE = 4096
#: The smallest field analysed in a large image, however far the view is zoomed in.
MIN_FIELD_SIDE = 512

FieldRect = tuple[int, int, int, int]
"""(x, y, width, height) in level-0 image pixels."""


def field_rect(
    width: int,
    height: int,
    visible: tuple[float, float, float, float] | None = None,
    *,
    large_image_pixels: int = LARGE_IMAGE_PIXELS,
    max_side: int = MAX_FIELD_SIDE,
    min_side: int = MIN_FIELD_SIDE,
) -> FieldRect:
    """The field to analyse: the whole image, or for a large one the part in view.

    Parameters
    ----------
    width, height : int
        The image's size in pixels.
    visible : (x, y, w, h), optional
        The rectangle the view shows, in image pixels (may reach outside the image).
        None: the image's centre.
    large_image_pixels : int
        Images of at most this many pixels are analysed whole.
    max_side, min_side : int
        A large image's field is the visible rectangle grown to ``min_side``
        and cut to ``max_side`` a side, about the same centre, inside the image.

    Returns
    -------
    (x, y, w, h) : tuple of int
    """
    if width * height <= large_image_pixels:
        return 0, 0, width, height
    cx, cy, vw, vh = width / 2.0, height / 2.0, 0.0, 0.0
    if visible is not None:
        x0, y0 = max(visible[0], 0.0), max(visible[1], 0.0)
        x1, y1 = min(visible[0] + visible[2], width), min(visible[1] + visible[3], height)
        if x1 > x0 and y1 > y0:
            cx, cy, vw, vh = (x0 + x1) / 2.0, (y0 + y1) / 2.0, x1 - x0, y1 - y0
    w = int(min(width, max_side, max(vw, min_side)))
    h = int(min(height, max_side, max(vh, min_side)))
    x = int(min(max(cx - w / 2.0, 0.0), width - w))
    y = int(min(max(cy - h / 2.0, 0.0), height - h))
    return x, y, w, h


def analyse_field(
    field: np.ndarray,
    classifiers: Sequence[Classifier] = (),
    params: SegmentationParams | None = None,
    *,
    offset: tuple[int, int] = (0, 0),
    full_size: tuple[int, int] | None = None,
    calibration: Calibration | None = None,
    image_name: str | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> Analysis:
    """:func:`~leukview.core.analysis.analyze_image` of one field, in the whole image's coordinates.

    Parameters
    ----------
    field : ndarray of uint8, shape (h, w, 3)
        The pixels of the field (the whole image, or a region of a large one).
    offset : (x, y)
        Where the field's top-left corner lies in the image.
    full_size : (width, height), optional
        The whole image's size (the analysis's ``width`` and ``height``); the field's when None.

    Returns
    -------
    Analysis
        Cells in image coordinates.
    """
    analysis = analyze_image(
        field,
        classifiers,
        params,
        calibration=calibration,
        image_name=image_name,
        progress=progress,
        should_cancel=should_cancel,
    )
    offset_cells(analysis.cells, *offset)
    if full_size is not None:
        analysis.width, analysis.height = full_size
    return analysis
