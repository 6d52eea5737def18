"""Background and stain channels: the cuts separate glass, red cells and nuclei."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np

from leukview.core.segment import SegmentationParams, segment
from leukview.core.segment._stain import _channels

D = 24.0  # red-cell diameter at the work scale
SHAPE = (216, 288)


def _drawn_field(smear):
    x, y = SHAPE[1] / 2, SHAPE[0] / 2
    red = smear.away(smear.grid(D, SHAPE), x, y, 1.8 * D)
    rgb = smear.field(SHAPE, red, [(x, y, 1.5 * D, [(0, 0, 0.9 * D)])])
    return rgb, red, (x, y)


def test_cuts_separate_glass_red_cells_and_nuclei(smear) -> None:
    rgb, red, (x, y) = _drawn_field(smear)
    ch = _channels(rgb, SegmentationParams(), tile=3.0 * D)
    assert not ch.black.any()
    # Drawn edges are blurred twice (the painter's and the segmentation's smoothing,
    # sigma 1 px each): 4 px either side of an outline are left out.
    red_inner = np.zeros(SHAPE, bool)
    red_outer = np.zeros(SHAPE, bool)
    for rx, ry, d in red:
        red_inner |= smear.disc_mask(SHAPE, rx, ry, d - 8)
        red_outer |= smear.disc_mask(SHAPE, rx, ry, d + 8)
    nucleus = smear.disc_mask(SHAPE, x, y, 0.9 * D - 8)
    glass = ~red_outer & ~smear.disc_mask(SHAPE, x, y, 1.5 * D + 8)
    cells = ch.density > ch.cell_threshold
    stained = ch.nuclear > ch.nucleus_threshold
    # Total stain: every red cell and the white cell are cells, the glass is not.
    assert cells[red_inner].all() and cells[nucleus].all()
    assert not cells[glass].any()
    # Nuclear stain: the nucleus, and no red cell.
    assert stained[nucleus].all()
    assert not stained[red_outer].any()
    assert ch.od is not None and ch.od.shape == (*SHAPE, 3)


def test_black_background_is_found(smear) -> None:
    rgb, _, (x, y) = _drawn_field(smear)
    cut_out = np.where(smear.disc_mask(SHAPE, x, y, 1.5 * D)[..., None], rgb, 0).astype(np.uint8)
    ch = _channels(cut_out, SegmentationParams(), tile=3.0 * D)
    inside = smear.disc_mask(SHAPE, x, y, 1.5 * D - 8)
    outside = ~smear.disc_mask(SHAPE, x, y, 1.5 * D + 8)
    assert ch.black[outside].all() and not ch.black[inside].any()
    assert (ch.density[ch.black] == 0).all() and (ch.nuclear[ch.black] == 0).all()


def test_mild_uneven_illumination_changes_nothing(smear) -> None:
    """Background per tile: a vignetted field (corners 10% darker) gives the same cells."""
    d = 40.0
    shape = (360, 480)
    x, y = shape[1] / 2, shape[0] / 2
    red = smear.away(smear.grid(d, shape), x, y, 1.8 * d)
    platelet = (red[0][0] + 0.75 * d, red[0][1] + 0.75 * d, 0.3 * d)  # between red cells
    rgb = smear.field(shape, red, [(x, y, 1.5 * d, [(0, 0, 0.9 * d)])], [platelet])
    yy, xx = np.mgrid[0: shape[0], 0: shape[1]]
    fall = 1.0 - 0.1 * ((xx - x) ** 2 + (yy - y) ** 2) / (x**2 + y**2)
    dim = np.clip(rgb * fall[..., None], 0, 255).astype(np.uint8)
    flat_kinds = Counter(c.kind for c in segment(rgb).cells)
    assert flat_kinds == {"rbc": len(red), "wbc": 1, "platelet": 1}
    assert Counter(c.kind for c in segment(dim).cells) == flat_kinds
    assert cv2.absdiff(rgb, dim).max() > 20  # the corners are visibly darker
