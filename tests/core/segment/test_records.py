"""Cell records from crop masks: geometry in image pixels, measurements, clipping to the image."""

from __future__ import annotations

import numpy as np
import pytest

from leukview.core.cells import Cell
from leukview.core.segment._records import _clip_to_image, _contour, _make_cell


def _square_crop() -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:20] = True  # 10 x 10 pixels
    image = np.full((20, 30, 3), 200, np.uint8)
    image[mask] = (180, 90, 100)
    return mask, image


def test_make_cell_places_the_crop_at_its_origin() -> None:
    mask, image = _square_crop()
    cell = _make_cell(7, "rbc", image, mask, None, (100, 50), 1.0, None)
    assert cell.id == 7 and cell.kind == "rbc"
    assert cell.bbox == (110, 55, 120, 65)
    assert cell.centroid == pytest.approx((114.5, 59.5))
    assert cell.contour.dtype == np.int32 and cell.contour.shape[1] == 2
    assert cell.contour[:, 0].min() == 110 and cell.contour[:, 0].max() == 119
    assert cell.nucleus_contour is None
    assert cell.measurements["area"] == pytest.approx(100.0)


def test_make_cell_scales_work_pixels_to_image_pixels() -> None:
    """A mask found at half size: box, centroid and areas come back in image pixels."""
    mask, image = _square_crop()
    nucleus = np.zeros_like(mask)
    nucleus[8:12, 13:17] = True
    cell = _make_cell(1, "wbc", image, mask, nucleus, (100, 50), 2.0, None)
    assert cell.bbox == (220, 110, 240, 130)
    assert cell.centroid == pytest.approx((229.5, 119.5))
    assert cell.measurements["area"] == pytest.approx(400.0)
    assert cell.measurements["nucleus_area"] == pytest.approx(64.0)
    assert cell.nucleus_contour is not None
    assert cell.nucleus_contour[:, 0].min() >= 226 and cell.nucleus_contour[:, 0].max() <= 234


def test_contour_of_an_empty_mask_is_empty() -> None:
    assert _contour(np.zeros((5, 5), bool)).shape == (0, 2)
    two = np.zeros((10, 10), bool)
    two[1:3, 1:3] = True
    two[4:9, 4:9] = True
    assert _contour(two)[:, 0].min() == 4  # the larger piece


def test_clip_to_image_keeps_geometry_inside() -> None:
    cell = Cell(
        id=1,
        kind="rbc",
        contour=np.array([[-1, 0], [10, 5], [3, 12]], np.int32),
        bbox=(-1, 0, 11, 13),
        centroid=(4.0, 5.0),
        nucleus_contour=np.array([[0, 0], [11, 2]], np.int32),
    )
    _clip_to_image(cell, 10, 12)
    assert cell.bbox == (0, 0, 10, 12)
    assert cell.contour.tolist() == [[0, 0], [9, 5], [3, 11]]
    assert cell.nucleus_contour is not None and cell.nucleus_contour.tolist() == [[0, 0], [9, 2]]
    assert cell.contour.dtype == np.int32
