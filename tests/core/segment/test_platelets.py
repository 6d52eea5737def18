"""Platelets: small dark purple specks on the glass; not inside red cells, not at white cells."""

from __future__ import annotations

import pytest

from leukview.core.segment import SegmentationParams, segment

D = 40.0
SHAPE = (360, 480)


def _field(smear, platelets, white=()):
    x, y = SHAPE[1] / 2, SHAPE[0] / 2
    red = smear.away(smear.grid(D, SHAPE), x, y, 2.0 * D)
    return smear.field(SHAPE, red, white, platelets)


def test_speck_on_the_glass_is_a_platelet(smear) -> None:
    x, y = SHAPE[1] / 2, SHAPE[0] / 2
    seg = segment(_field(smear, [(x, y, 0.3 * D)]))
    (platelet,) = seg.cells_of_kind("platelet")
    assert platelet.centroid == pytest.approx((x, y), abs=2.0)
    assert platelet.measurements["equivalent_diameter"] == pytest.approx(0.3 * D, rel=0.35)
    # Listed after the red cells.
    assert seg.cells[-1] is platelet
    off = segment(_field(smear, [(x, y, 0.3 * D)]), SegmentationParams(detect_platelets=False))
    assert off.cells_of_kind("platelet") == []


def test_speck_inside_a_red_cell_is_not_a_platelet(smear) -> None:
    """A purple speck on a red cell (a stain deposit, or the cell's rim) is not on the glass."""
    red = smear.grid(D, SHAPE)
    x, y, _ = red[len(red) // 2]
    seg = segment(smear.field(SHAPE, red, platelets=[(x + 0.15 * D, y, 0.25 * D)]))
    assert seg.cells_of_kind("platelet") == []
    assert len(seg.cells_of_kind("rbc")) == len(red)


def test_speck_at_a_white_cell_is_not_a_platelet(smear) -> None:
    """A speck touching a white cell is a granule or a piece of it."""
    x, y = SHAPE[1] / 2, SHAPE[0] / 2
    white = [(x, y, 1.5 * D, [(0, 0, 0.9 * D)])]
    seg = segment(_field(smear, [(x + 0.8 * D, y, 0.3 * D)], white))
    assert seg.cells_of_kind("platelet") == []
    assert len(seg.cells_of_kind("wbc")) == 1
    # The same speck a cell's width away is one.
    apart = segment(_field(smear, [(x + 1.4 * D, y, 0.3 * D)], white))
    assert len(apart.cells_of_kind("platelet")) == 1


def test_specks_over_platelet_size_are_nuclei(smear) -> None:
    """Past max_platelet_area a stained disc is big enough for a (bare) white-cell nucleus."""
    x, y = SHAPE[1] / 2, SHAPE[0] / 2
    area_in_red_cells = 0.75**2  # (0.75 d / d) squared
    assert area_in_red_cells > SegmentationParams().max_platelet_area
    seg = segment(_field(smear, [(x, y, 0.75 * D)]))
    assert seg.cells_of_kind("platelet") == []
    assert len(seg.cells_of_kind("wbc")) == 1


def test_pale_specks_are_not_platelets(smear) -> None:
    """Beside a white cell (which sets the nuclear cut), a pale lilac speck is not a platelet."""
    x, y = SHAPE[1] / 2, SHAPE[0] / 2
    white = [(x - 0.5 * D, y, 1.2 * D, [(0, 0, 0.8 * D)])]
    dark, pale = (x + 1.2 * D, y - 0.5 * D), (x + 1.2 * D, y + 0.5 * D)
    rgb = _field(smear, [(*dark, 0.3 * D)], white)
    rgb[smear.disc_mask(SHAPE, *pale, 0.3 * D)] = (215, 200, 225)  # blue over green, but faint
    (platelet,) = segment(rgb).cells_of_kind("platelet")
    assert platelet.centroid == pytest.approx(dark, abs=2.0)


def test_annotated_platelet_of_a_bundled_field_is_found(samples) -> None:
    sample = samples["BloodImage_00214"]
    (box,) = sample.platelet_boxes
    found = segment(sample.rgb).cells_of_kind("platelet")
    inside = [
        c for c in found if box[0] <= c.centroid[0] <= box[2] and box[1] <= c.centroid[1] <= box[3]
    ]
    assert len(inside) == 1
    # The speck itself, not a red cell next to it: its box lies within the annotated one.
    x0, y0, x1, y1 = inside[0].bbox
    assert box[0] - 5 <= x0 and box[1] - 5 <= y0 and x1 <= box[2] + 5 and y1 <= box[3] + 5
