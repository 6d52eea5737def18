"""Cell measurements on synthetic masks with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from leukview.core.calibration import Calibration
from leukview.core.errors import LeukViewError
from leukview.core.measure import (
    circularity,
    fill_holes,
    label_max,
    lobe_count,
    measure_cell,
    perimeter,
)


def disc(radius: float, size: int | None = None, center: tuple[float, float] | None = None) -> np.ndarray:
    size = size or int(2 * radius + 10)
    cy, cx = center or ((size - 1) / 2, (size - 1) / 2)
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def flat_image(shape: tuple[int, int], rgb: tuple[int, int, int]) -> np.ndarray:
    img = np.zeros((*shape, 3), np.uint8)
    img[:] = rgb
    return img


@pytest.mark.parametrize("radius", [10, 20, 45])
def test_disc_area_perimeter_circularity(radius: float) -> None:
    cell = disc(radius)
    m = measure_cell(cell, flat_image(cell.shape, (200, 100, 100)))
    assert m["area"] == pytest.approx(np.pi * radius**2, rel=0.03)
    assert m["perimeter"] == pytest.approx(2 * np.pi * radius, rel=0.04)
    assert m["circularity"] == pytest.approx(1.0, abs=0.08)
    assert m["equivalent_diameter"] == pytest.approx(2 * radius, rel=0.02)


def test_square_and_elongated_shapes_are_less_circular() -> None:
    square = np.zeros((60, 60), bool)
    square[10:50, 10:50] = True
    assert perimeter(square) == pytest.approx(4 * 39, rel=0.04)  # pixel centres: side 39
    assert circularity(square.sum(), perimeter(square)) == pytest.approx(np.pi / 4, abs=0.05)
    bar = np.zeros((30, 200), bool)
    bar[10:20, 10:190] = True
    assert measure_cell(bar, flat_image(bar.shape, (1, 2, 3)))["circularity"] < 0.4


def test_empty_mask_measures_zero() -> None:
    m = measure_cell(np.zeros((10, 10), bool), flat_image((10, 10), (0, 0, 0)))
    assert m["area"] == 0 and m["perimeter"] == 0 and m["circularity"] == 0
    assert "cytoplasm_mean_rgb_r" not in m and "nucleus_mean_rgb_r" not in m


def two_lobed(size: int = 120, radius: int = 16, gap: int = 44, bridge: int = 3) -> np.ndarray:
    """Two discs joined by a thin filament, as a segmented neutrophil's lobes."""
    c = size // 2
    mask = disc(radius, size, (c, c - gap / 2)) | disc(radius, size, (c, c + gap / 2))
    mask[c - bridge // 2 : c + bridge // 2 + 1, c - gap // 2 : c + gap // 2] = True
    return mask


def test_lobe_count() -> None:
    assert lobe_count(np.zeros((20, 20), bool)) == 0
    assert lobe_count(disc(15)) == 1
    assert lobe_count(two_lobed()) == 2
    # Separate fragments count as lobes as well, tiny specks do not.
    three = two_lobed() | disc(12, 120, (100, 60))
    speck = three.copy()
    speck[5:7, 5:7] = True
    assert lobe_count(three) == 3
    assert lobe_count(speck) == 3
    # An oval is one lobe.
    oval = np.zeros((80, 120), bool)
    cv2.ellipse(oval.view(np.uint8), (60, 40), (40, 22), 0, 0, 360, 1, -1)
    assert lobe_count(oval) == 1


def test_nucleus_measurements_and_colours() -> None:
    cell = disc(30, 80)
    nucleus = disc(15, 80)
    img = flat_image(cell.shape, (230, 180, 190))
    img[nucleus] = (90, 40, 160)
    m = measure_cell(cell, img, nucleus)
    assert m["nucleus_area"] == pytest.approx(np.pi * 15**2, rel=0.03)
    cyto = m["area"] - m["nucleus_area"]
    assert m["nc_ratio"] == pytest.approx(m["nucleus_area"] / cyto, rel=1e-6)
    assert m["nc_ratio"] == pytest.approx(1 / 3, rel=0.06)
    assert m["nucleus_fraction"] == pytest.approx(0.25, rel=0.06)
    assert m["lobe_count"] == 1
    assert (m["nucleus_mean_rgb_r"], m["nucleus_mean_rgb_g"], m["nucleus_mean_rgb_b"]) == (90, 40, 160)
    assert (m["cytoplasm_mean_rgb_r"], m["cytoplasm_mean_rgb_g"], m["cytoplasm_mean_rgb_b"]) == (230, 180, 190)
    # A nucleus reaching outside the cell is clipped to it.
    m2 = measure_cell(disc(10, 80), img, nucleus)
    assert m2["nucleus_area"] == pytest.approx(m2["area"])
    assert m2["nc_ratio"] == pytest.approx(m2["nucleus_area"])  # cytoplasm floored at 1 px


def test_micrometre_conversion_and_pixel_scale() -> None:
    cell = disc(20)
    img = flat_image(cell.shape, (10, 20, 30))
    base = measure_cell(cell, img, disc(8, cell.shape[0]))
    assert not any(k.endswith(("_um", "_um2")) for k in base)  # pixels only unless asked
    m = measure_cell(cell, img, disc(8, cell.shape[0]), pixel_size_um=0.5)
    # the deprecated pixel_size_um adds the calibration's derived figures, nothing else
    assert m == {**base, **Calibration.from_user(0.5).derived_measurements(base)}
    assert m["area_um2"] == pytest.approx(base["area"] * 0.25)
    assert m["nucleus_area_um2"] == pytest.approx(base["nucleus_area"] * 0.25)
    assert m["equivalent_diameter_um"] == pytest.approx(base["equivalent_diameter"] * 0.5)
    assert m["perimeter_um"] == pytest.approx(base["perimeter"] * 0.5)
    # Masks measured on a copy shrunk 4x report image-pixel units.
    scaled = measure_cell(cell, img, pixel_scale=4.0, pixel_size_um=0.5)
    assert scaled["area"] == pytest.approx(base["area"] * 16)
    assert scaled["perimeter"] == pytest.approx(base["perimeter"] * 4)
    assert scaled["area_um2"] == pytest.approx(base["area"] * 16 * 0.25)


def test_values_are_plain_floats() -> None:
    cell = disc(10)
    m = measure_cell(cell, flat_image(cell.shape, (1, 2, 3)), disc(4, cell.shape[0]), pixel_size_um=1.0)
    assert all(type(v) is float for v in m.values())


def test_bad_shapes_raise() -> None:
    with pytest.raises(LeukViewError):
        measure_cell(np.ones((5, 5), bool), np.zeros((6, 5, 3), np.uint8))
    with pytest.raises(LeukViewError):
        measure_cell(np.ones((5, 5), bool), np.zeros((5, 5), np.uint8))
    with pytest.raises(LeukViewError):
        measure_cell(np.ones((5, 5), bool), np.zeros((5, 5, 3), np.uint8), np.ones((4, 4), bool))


def test_fill_holes_and_label_max_match_scipy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = rng.random((40, 50)) > 0.4
        np.testing.assert_array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))
        labels, n = ndi.label(mask)
        values = rng.random(mask.shape)
        expected = np.zeros(n + 1)
        expected[1:] = ndi.maximum(values, labels, np.arange(1, n + 1))
        np.testing.assert_allclose(label_max(values, labels, n), expected)
