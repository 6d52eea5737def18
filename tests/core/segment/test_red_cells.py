"""Red cells: one label per cell, touching cells split, clumps divided, none covering several."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from leukview.core.segment import SegmentationParams, segment
from leukview.core.segment._red_cells import _kmeans_split, _split_red_cells

D = 40.0
SHAPE = (360, 480)
AREA = np.pi * D * D / 4.0


def test_no_red_cell_covers_several_cells(sample) -> None:
    """Red cells are split: none larger than about three red-cell areas (BCCD fields)."""
    name = sample.name
    seg = segment(sample.rgb)
    red = seg.cells_of_kind("rbc")
    assert len(red) >= 8, (name, len(red))
    area = np.pi * seg.rbc_diameter**2 / 4.0
    largest = max(c.measurements["area"] for c in red)
    assert largest <= 3.0 * area, (name, largest / area)


def test_separate_red_cells_are_one_cell_each(smear) -> None:
    red = smear.grid(D, SHAPE)
    seg = segment(smear.field(SHAPE, red))
    found = seg.cells_of_kind("rbc")
    assert len(found) == len(red) == len(seg.cells)
    assert all(0.8 * AREA < c.measurements["area"] < 1.4 * AREA for c in found)
    # Each drawn cell holds the centroid of one found cell.
    for x, y, _ in red:
        assert sum(np.hypot(c.centroid[0] - x, c.centroid[1] - y) < 0.2 * D for c in found) == 1


@pytest.mark.parametrize("sep", [0.6, 0.75, 0.9])
def test_touching_red_cells_are_split(smear, sep: float) -> None:
    """Two overlapping discs (centres ``sep`` x d apart): two red cells of about one area each."""
    x, y = SHAPE[1] / 2, SHAPE[0] / 2
    pair = [(x - sep * D / 2, y, D), (x + sep * D / 2, y, D)]
    red = smear.away(smear.grid(D, SHAPE), x, y, 1.8 * D) + pair
    found = segment(smear.field(SHAPE, red)).cells_of_kind("rbc")
    assert len(found) == len(red)
    near = [c for c in found if np.hypot(c.centroid[0] - x, c.centroid[1] - y) < D]
    assert len(near) == 2
    assert sorted(c.centroid[0] for c in near) == pytest.approx([p[0] for p in pair], abs=0.15 * D)
    assert all(0.6 * AREA < c.measurements["area"] < 1.3 * AREA for c in near)


def test_clump_without_waist_is_divided_by_area() -> None:
    """A capsule 3 d long has no waist: it is divided into parts of about one red cell each."""
    red = np.zeros((120, 200), np.uint8)
    ds = 24.0
    cv2.line(red, (50, 60), (50 + int(2 * ds), 60), 1, int(ds))
    labels = _split_red_cells(red > 0, ds, SegmentationParams())
    n = int(labels.max())
    area = np.pi * ds * ds / 4.0
    assert 3 <= n <= 4
    sizes = np.bincount(labels.ravel())[1:]
    assert (sizes <= SegmentationParams().max_rbc_area * area).all()
    assert sizes.sum() > 0.95 * (red > 0).sum()  # nothing dropped


def test_kmeans_split_is_compact_and_deterministic() -> None:
    region = np.zeros((40, 130), bool)
    region[10:30, 5:125] = True
    parts = _kmeans_split(region, 3)
    assert set(np.unique(parts[region])) == {1, 2, 3} and not parts[~region].any()
    # Three side-by-side parts of about equal size along the long axis.
    sizes = np.bincount(parts[region])[1:]
    assert sizes.min() > 0.7 * sizes.max()
    columns = [np.flatnonzero(np.any(parts == k, axis=0)) for k in (1, 2, 3)]
    assert all(c.max() - c.min() < 60 for c in columns)
    assert np.array_equal(parts, _kmeans_split(region, 3))


def test_red_cells_switched_off(smear) -> None:
    seg = segment(smear.field(SHAPE, smear.grid(D, SHAPE)), SegmentationParams(detect_rbc=False))
    assert seg.cells == [] and not seg.labels.any()
