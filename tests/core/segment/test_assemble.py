"""Assembly: ids by kind then reading order, full-resolution labels, the Segmentation record."""

from __future__ import annotations

import numpy as np
import pytest

from leukview.core.cells import CELL_KINDS
from leukview.core.segment import Segmentation, SegmentationParams, segment

ORDER = {"wbc": 0, "rbc": 1, "platelet": 2}


def test_ids_go_white_red_platelet_in_reading_order(sample, consistent) -> None:
    rgb = sample.rgb
    seg = segment(rgb)
    consistent(seg, rgb.shape[:2])
    assert set(ORDER) == set(CELL_KINDS)
    ranks = [ORDER[c.kind] for c in seg.cells]
    assert ranks == sorted(ranks)
    # Red cells and platelets in reading order (by box centre, top to bottom): their boxes
    # come from work-scale masks, so rounding to image pixels may shift a sum by 2 px.
    slack = 2.0 / seg.scale + 2
    for kind in ("rbc", "platelet"):
        rows = [c.bbox[1] + c.bbox[3] for c in seg.cells_of_kind(kind)]
        assert all(b >= a - slack for a, b in zip(rows[:-1], rows[1:], strict=True)), (kind, rows)
    # Each id's pixels in the label image are its cell's: box and centroid agree to about
    # one work pixel (the label image is the work labels resized by nearest neighbour).
    tol = 1.0 / seg.scale + 1
    for cell in seg.cells:
        ys, xs = np.nonzero(seg.labels == cell.id)
        x0, y0, x1, y1 = cell.bbox
        assert x0 - tol <= xs.min() and xs.max() < x1 + tol, cell.id
        assert y0 - tol <= ys.min() and ys.max() < y1 + tol, cell.id
        assert cell.centroid == pytest.approx((xs.mean(), ys.mean()), abs=tol)


def test_segmentation_record(samples) -> None:
    rgb = samples["BloodImage_00056"].rgb
    params = SegmentationParams(detect_platelets=False)
    seg = segment(rgb, params)
    assert isinstance(seg, Segmentation)
    assert seg.params is params
    # A BCCD red cell (~90 px) is shrunk to work_rbc_diameter pixels.
    assert seg.scale == pytest.approx(params.work_rbc_diameter / seg.rbc_diameter, rel=0.25)
    assert seg.labels.shape == rgb.shape[:2]
    assert [c.kind for c in seg.cells_of_kind("rbc")] == ["rbc"] * len(seg.cells_of_kind("rbc"))
    assert seg.cells_of_kind("platelet") == []
    assert len(seg.cells_of_kind("wbc")) + len(seg.cells_of_kind("rbc")) == len(seg.cells)


def test_small_images_are_not_shrunk(smear) -> None:
    """Red cells already smaller than work_rbc_diameter: segmented at full size (scale 1)."""
    shape = (160, 200)
    seg = segment(smear.field(shape, smear.grid(18.0, shape)))
    assert seg.scale == 1.0
    assert len(seg.cells_of_kind("rbc")) >= 20
