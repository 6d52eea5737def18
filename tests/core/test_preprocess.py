"""The preprocessing contract, on a real BCCD field."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from leukview.core.cells import Cell
from leukview.core.preprocess import CropRule, crop_box, crop_cell, normalize, preprocess_cells

EXACT = CropRule(scale=1.0, min_side=1, background="keep")  # window side = cell diameter


@pytest.fixture(scope="module")
def image(data_dir: Path) -> np.ndarray:
    bgr = cv2.imread(str(data_dir / "bccd" / "JPEGImages" / "BloodImage_00003.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def square_cell(cx: float, cy: float, side: int, contour: np.ndarray | None = None) -> Cell:
    """A cell whose diameter (from its box) is ``side``."""
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return Cell(
        id=1,
        kind="wbc",
        contour=np.zeros((0, 2), np.int32) if contour is None else contour,
        bbox=(x0, y0, x0 + side, y0 + side),
        centroid=(cx, cy),
    )


def test_crop_is_the_window_centred_on_the_cell(image: np.ndarray) -> None:
    cell = square_cell(300.0, 200.0, 64)
    assert crop_box(cell, EXACT) == (268, 168, 332, 232)
    crop = crop_cell(image, cell, EXACT, 64)
    assert crop.dtype == np.uint8 and crop.shape == (64, 64, 3)
    assert np.array_equal(crop, image[168:232, 268:332])


def test_crop_scale_and_min_side(image: np.ndarray) -> None:
    cell = square_cell(300.0, 200.0, 40)
    assert crop_box(cell, CropRule(scale=1.5, min_side=16)) == (270, 170, 330, 230)
    tiny = square_cell(300.0, 200.0, 4)
    x0, y0, x1, y1 = crop_box(tiny, CropRule(scale=1.5, min_side=16))
    assert x1 - x0 == y1 - y0 == 16
    measured = square_cell(300.0, 200.0, 40)
    measured.measurements["area"] = np.pi * 25.0**2  # diameter 50 from the area, not the box
    x0, _, x1, _ = crop_box(measured, CropRule(scale=2.0, min_side=16))
    assert x1 - x0 == 100


def test_shrinking_averages_pixels(image: np.ndarray) -> None:
    crop = crop_cell(image, square_cell(300.0, 200.0, 64), EXACT, 32)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    blocks = image[168:232, 268:332].astype(np.float32).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(crop.astype(np.float32) - blocks).max() <= 1.0


def test_enlarging_keeps_the_colours(image: np.ndarray) -> None:
    crop = crop_cell(image, square_cell(300.0, 200.0, 20), EXACT, 80)
    assert crop.shape == (80, 80, 3)
    window = image[190:210, 290:310].reshape(-1, 3).astype(np.float32)
    assert np.abs(crop.reshape(-1, 3).mean(0) - window.mean(0)).max() < 2.0


@pytest.mark.parametrize("corner", ["top-left", "bottom-right"])
def test_border_is_mirrored(image: np.ndarray, corner: str) -> None:
    height, width = image.shape[:2]
    if corner == "top-left":
        cell = square_cell(10.0, 12.0, 64)  # box (-22, -20, 42, 44)
        expected = np.pad(image[0:44, 0:42], ((20, 0), (22, 0), (0, 0)), mode="reflect")
    else:
        cell = square_cell(width - 5.0, height - 8.0, 64)
        x0, y0, x1, y1 = crop_box(cell, EXACT)
        region = image[y0:height, x0:width]
        expected = np.pad(region, ((0, y1 - height), (0, x1 - width), (0, 0)), mode="reflect")
    crop = crop_cell(image, cell, EXACT, 64)
    assert np.array_equal(crop, expected)


def test_window_outside_the_image_is_black(image: np.ndarray) -> None:
    crop = crop_cell(image, square_cell(-200.0, -200.0, 40), EXACT, 24)
    assert crop.shape == (24, 24, 3) and not crop.any()


def test_black_background_keeps_only_the_cell(image: np.ndarray) -> None:
    cx, cy, radius = 320, 240, 30
    contour = cv2.ellipse2Poly((cx, cy), (radius, radius), 0, 0, 360, 5).astype(np.int32)
    cell = square_cell(float(cx), float(cy), 80, contour)
    crop = crop_cell(image, cell, CropRule(scale=1.0, min_side=1, background="black"), 80)
    window = image[200:280, 280:360]
    yy, xx = np.mgrid[200:280, 280:360]
    distance = np.hypot(xx - cx, yy - cy)
    assert not crop[distance > radius + 1.5].any()
    assert np.array_equal(crop[distance < radius - 1.5], window[distance < radius - 1.5])
    kept = crop_cell(image, cell, EXACT, 80)
    assert kept[distance > radius + 1.5].any()  # 'keep' leaves the smear around it


def test_black_background_at_the_border_is_not_mirrored(image: np.ndarray) -> None:
    contour = cv2.ellipse2Poly((8, 8), (20, 20), 0, 0, 360, 5).astype(np.int32)
    cell = square_cell(8.0, 8.0, 64, contour)
    crop = crop_cell(image, cell, CropRule(scale=1.0, min_side=1, background="black"), 64)
    assert not crop[:24].any() and not crop[:, :24].any()  # above and left of the image
    assert np.array_equal(crop[24:30, 24:30], image[0:6, 0:6])


def test_crop_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        crop_cell(np.zeros((10, 10), np.uint8), square_cell(5, 5, 4), EXACT, 8)
    with pytest.raises(ValueError, match="RGB uint8"):
        crop_cell(np.zeros((10, 10, 3), np.float32), square_cell(5, 5, 4), EXACT, 8)


def test_normalize_maths() -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    batch = normalize(crops, mean, std)
    assert batch.shape == (2, 3, 5, 6) and batch.dtype == np.float32 and batch.flags.c_contiguous
    for n, c, y, x in [(0, 0, 0, 0), (1, 2, 4, 5), (0, 1, 2, 3)]:
        expected = (crops[n, y, x, c] / 255.0 - mean[c]) / std[c]
        assert batch[n, c, y, x] == pytest.approx(expected, abs=1e-5)
    assert normalize(crops[0], mean, std).shape == (1, 3, 5, 6)
    white = normalize(np.full((1, 1, 3), 255, np.uint8), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    np.testing.assert_allclose(white.ravel(), [1.0, 1.0, 1.0])


def test_preprocess_cells_is_crop_then_normalize(image: np.ndarray) -> None:
    cells = [square_cell(100.0, 100.0, 50), square_cell(5.0, 470.0, 30)]
    rule = CropRule(scale=1.5, min_side=16)
    batch = preprocess_cells(image, cells, rule, 48, (0.5,) * 3, (0.25,) * 3)
    crops = np.stack([crop_cell(image, c, rule, 48) for c in cells])
    assert np.array_equal(batch, normalize(crops, (0.5,) * 3, (0.25,) * 3))
    assert preprocess_cells(image, [], rule, 48, (0.5,) * 3, (0.25,) * 3).shape == (0, 3, 48, 48)


def test_crop_rule_validation() -> None:
    with pytest.raises(ValueError, match="scale"):
        CropRule(scale=0)
    with pytest.raises(ValueError, match="min_side"):
        CropRule(min_side=0)
    with pytest.raises(ValueError, match="background"):
        CropRule(background="white")
    rule = CropRule.from_dict({"scale": "2", "min_side": 24.0, "background": "black", "ignored": 1})
    assert rule == CropRule(scale=2.0, min_side=24, background="black")
    assert CropRule.from_dict(rule.to_dict()) == rule
