"""White-cell nuclei: lobes grouped, touching nuclei split, specks and border slivers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from leukview.core.segment import SegmentationParams, segment
from leukview.core.segment._nuclei import _nucleus_groups

DS = 24.0  # red-cell diameter at the work scale
PARAMS = SegmentationParams()


def _discs(discs, shape=(120, 160)) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for x, y, r in discs:
        cv2.circle(m, (int(round(x)), int(round(y))), int(round(r)), 1, -1)
    return m > 0


@pytest.mark.parametrize("sep", [0.9, 1.0, 1.2])
@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_touching_nuclei_are_split(sep: float, shift: float) -> None:
    """Two nucleus-sized discs (radius d / 2), overlapping, touching or close: two cells."""
    r = DS / 2
    nuc = _discs([(80 - sep * r + shift, 60, r), (80 + sep * r + shift, 60, r)])
    zones, n, platelets, sliver = _nucleus_groups(nuc, DS, PARAMS)
    assert n == 2
    assert not platelets.any()
    assert set(np.unique(zones[nuc])) == {1, 2}
    # One zone per disc: each centre in its own zone.
    assert zones[60, int(80 - sep * r)] != zones[60, int(80 + sep * r)]
    assert sliver.shape == (3,) and not sliver.any()


def test_lobes_are_one_nucleus() -> None:
    """Three small lobes closer than the lobe distance: one white cell (a segmented neutrophil)."""
    nuc = _discs([(70, 55, 6), (90, 55, 6), (80, 68, 6)])
    zones, n, platelets, _ = _nucleus_groups(nuc, DS, PARAMS)
    assert n == 1
    assert (zones[nuc] == 1).all()
    assert not platelets.any()


def test_small_specks_are_platelets_not_nuclei() -> None:
    nuc = _discs([(40, 60, 12), (120, 60, 3)])
    zones, n, platelets, _ = _nucleus_groups(nuc, DS, PARAMS)
    assert n == 1
    assert zones[60, 40] == 1 and zones[60, 120] == 0
    assert platelets[60, 120] > 0 and not platelets[60, 40]
    # Platelets switched off: the speck is nothing.
    _, _, none, _ = _nucleus_groups(nuc, DS, SegmentationParams(detect_platelets=False))
    assert not none.any()
    # Too small even for a platelet (a few pixels): noise.
    speck = np.zeros_like(nuc)
    speck[60, 120:122] = True
    assert speck.sum() < PARAMS.min_platelet_area * np.pi * DS**2 / 4
    _, n_noise, tiny, _ = _nucleus_groups(speck, DS, PARAMS)
    assert n_noise == 0 and not tiny.any()


def test_dark_nucleus_cut_by_the_border_counts() -> None:
    """A sliver along the image border is a nucleus when it is long and dark, else a platelet."""
    shape = (120, 160)
    nuc = _discs([(80, -9, 12)], shape)  # a cap 3 px deep, 13 px (0.55 d) along the top edge
    assert 0 < nuc.sum() < PARAMS.min_wbc_nucleus_area * np.pi * DS**2 / 4
    threshold = 30.0
    dark = np.where(nuc, 2.0 * threshold, 0.0).astype(np.float32)
    zones, n, _, sliver = _nucleus_groups(nuc, DS, PARAMS, dark, threshold)
    assert n == 1 and sliver[1]
    pale = np.where(nuc, 1.1 * threshold, 0.0).astype(np.float32)
    assert _nucleus_groups(nuc, DS, PARAMS, pale, threshold)[1] == 0
    assert _nucleus_groups(nuc, DS, PARAMS)[1] == 0  # without the stain: not a nucleus


def test_close_nuclei_in_a_field_are_two_cells(smear) -> None:
    """Two blasts side by side, nuclei closer than the lobe distance: still two white cells."""
    d = 40.0
    shape = (360, 480)
    x, y = 240.0, 180.0
    gap = 0.4 * d
    assert gap < PARAMS.lobe_merge_distance * d  # grouped as lobes before the split
    half = (d + gap) / 2
    white = [(x - half, y, 1.1 * d, [(0, 0, d)]), (x + half, y, 1.1 * d, [(0, 0, d)])]
    seg = segment(smear.field(shape, smear.away(smear.grid(d, shape), x, y, 2.3 * d), white))
    wbcs = seg.cells_of_kind("wbc")
    assert len(wbcs) == 2
    assert sorted(round(c.centroid[0]) for c in wbcs) == pytest.approx([x - half, x + half], abs=3)


def test_lobed_nucleus_in_a_field_is_one_cell(smear) -> None:
    d = 40.0
    shape = (360, 480)
    x, y = 240.0, 180.0
    lobes = [(-0.4 * d, -0.2 * d, 0.5 * d), (0.4 * d, -0.2 * d, 0.5 * d), (0, 0.35 * d, 0.5 * d)]
    red = smear.away(smear.grid(d, shape), x, y, 1.6 * d)
    seg = segment(smear.field(shape, red, [(x, y, 1.6 * d, lobes)]))
    wbcs = seg.cells_of_kind("wbc")
    assert len(wbcs) == 1
    assert wbcs[0].measurements["lobe_count"] >= 2
    assert seg.cells_of_kind("platelet") == []  # the lobes are not taken for platelets


@pytest.mark.real_data
def test_touching_nuclei_are_split_in_a_real_field(data_dir: Path, read_rgb, consistent) -> None:
    # Two B-ALL blasts pressed together in a Taleqani field: their nuclei touch.
    rgb = read_rgb(data_dir / "taleqani" / "Pro" / "WBC-Malignant-Pro-033.jpg")
    seg = segment(rgb)
    consistent(seg, rgb.shape[:2])
    inside = [
        c for c in seg.cells
        if c.kind == "wbc" and 92 <= c.centroid[0] <= 145 and 98 <= c.centroid[1] <= 140
    ]
    assert len(inside) == 2
    a, b = (seg.labels == c.id for c in inside)
    nuclei_a, nuclei_b = seg.nucleus_mask & a, seg.nucleus_mask & b
    grown = cv2.dilate(nuclei_a.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert (grown & nuclei_b).any(), "the test needs nuclei that touch"
    assert abs(inside[0].centroid[0] - inside[1].centroid[0]) > 10
