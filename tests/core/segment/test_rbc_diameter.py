"""The red-cell diameter estimate: right on drawn discs, follows magnification, can be given."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from leukview.core.segment import SegmentationParams, estimate_rbc_diameter, segment


@pytest.mark.parametrize("d", [24.0, 45.0, 90.0])
def test_drawn_red_cells_give_their_diameter(smear, d: float) -> None:
    shape = (int(7 * d), int(9 * d))
    rgb = smear.field(shape, smear.grid(d, shape))
    assert estimate_rbc_diameter(rgb) == pytest.approx(d, rel=0.1)


def test_rbc_diameter_follows_magnification(sample) -> None:
    rgb = sample.rgb
    d1 = estimate_rbc_diameter(rgb)
    d2 = estimate_rbc_diameter(cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR))
    dh = estimate_rbc_diameter(cv2.resize(rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    assert 60 < d1 < 130  # BCCD red cells are ~90-110 px across
    assert d2 / d1 == pytest.approx(2.0, rel=0.15)
    assert dh / d1 == pytest.approx(0.5, rel=0.15)
    # The same white cells are found at both magnifications.
    n1 = sum(c.kind == "wbc" for c in segment(rgb).cells)
    n2 = sum(c.kind == "wbc" for c in segment(cv2.resize(rgb, None, fx=2, fy=2)).cells)
    assert n1 == n2 == 1


def test_given_rbc_diameter_is_used(samples) -> None:
    rgb = samples["BloodImage_00056"].rgb
    params = SegmentationParams(rbc_diameter=95.0)
    assert estimate_rbc_diameter(rgb, params) == 95.0
    assert segment(rgb, params).rbc_diameter == 95.0
    assert segment(rgb).rbc_diameter == pytest.approx(estimate_rbc_diameter(rgb))


def test_cell_on_black_sets_the_scale(smear) -> None:
    """A white cell cut out on black (C-NMC): no red cells, the diameter follows the cell's size."""
    shape = (300, 300)
    for cell in (120.0, 200.0):
        rgb = smear.field(shape, white=[(150, 150, cell, [(0, 0, 0.6 * cell)])])
        rgb[~smear.disc_mask(shape, 150, 150, cell)] = 0
        assert estimate_rbc_diameter(rgb) == pytest.approx(0.8 * cell, rel=0.1)


@pytest.mark.real_data
@pytest.mark.parametrize("number", [166, 175, 196])
def test_dense_pale_red_cells_keep_their_size(data_dir: Path, read_rgb, number: int) -> None:
    """Taleqani fields packed with pale red cells: closing must not join them into one giant."""
    rgb = read_rgb(data_dir / "taleqani" / "Benign" / f"WBC-Benign-{number}.jpg")
    assert 12 < estimate_rbc_diameter(rgb) < 30  # 224 px fields, red cells ~15-20 px across
    assert any(c.kind == "wbc" for c in segment(rgb).cells)
