"""White cells: distant lobes joined, cytoplasm kept off red cells, full-resolution outlines."""

from __future__ import annotations

import numpy as np
import pytest

from leukview.core.segment import _pipeline, segment
from leukview.core.segment._white_cells import _merge_lobes


@pytest.mark.parametrize("shift", [(0, 0, 0), (7, 3, 1), (-11, 5, 2)])
def test_lobes_far_apart_are_one_cell(smear, monkeypatch, shift: tuple[int, int, int]) -> None:
    """Two lobes as far apart as the lobe distance, in one round cell with plenty of cytoplasm."""
    d = 40.0
    shape = (360, 480)
    x, y = 240.0 + shift[0], 180.0 + shift[1]
    lobes = [(-0.55 * d, 0, 0.6 * d), (0.55 * d, 0, 0.6 * d)]
    red = smear.away(smear.grid(d, shape), x, y, 1.8 * d)
    rgb = smear.field(shape, red, [(x, y, 1.9 * d, lobes)], seed=shift[2])
    # The nuclei are two groups; joining the cells grown from them is the lobe merge's doing.
    calls = []

    def spy(*args, **kwargs):
        out = _merge_lobes(*args, **kwargs)
        calls.append((args[3], out[2]))
        return out

    monkeypatch.setattr(_pipeline, "_merge_lobes", spy)
    wbcs = segment(rgb).cells_of_kind("wbc")
    assert calls == [(2, 1)]
    assert len(wbcs) == 1
    assert wbcs[0].measurements["lobe_count"] == 2
    assert wbcs[0].centroid == pytest.approx((x, y), abs=0.1 * d)


def test_blasts_pressed_together_stay_two(smear) -> None:
    """Nuclei that fill their cells are not lobes: two blasts touching stay two cells."""
    d = 40.0
    shape = (360, 480)
    x, y = 240.0, 180.0
    white = [(x - 0.6 * d, y, 1.2 * d, [(0, 0, d)]), (x + 0.6 * d, y, 1.2 * d, [(0, 0, d)])]
    rgb = smear.field(shape, smear.away(smear.grid(d, shape), x, y, 2.3 * d), white)
    assert len(segment(rgb).cells_of_kind("wbc")) == 2


def test_cytoplasm_does_not_take_touching_red_cells(smear) -> None:
    """A white cell ringed by touching red cells: they stay red cells, it keeps its own size."""
    d = 40.0
    shape = (360, 480)
    x, y = 240.0, 180.0
    angles = np.linspace(0, 2 * np.pi, 7)[:-1] + 0.3
    ring = [(x + 1.2 * d * np.cos(t), y + 1.2 * d * np.sin(t), d) for t in angles]
    red = smear.away(smear.grid(d, shape), x, y, 2.6 * d) + ring
    seg = segment(smear.field(shape, red, [(x, y, 1.5 * d, [(0, 0, 0.9 * d)])]))
    (wbc,) = seg.cells_of_kind("wbc")
    drawn = np.pi * (0.75 * d) ** 2
    # Grown to its full reach (0.45 d beyond the nucleus) it would be 1.44 x its drawn area.
    assert 0.85 * drawn < wbc.measurements["area"] < 1.25 * drawn
    found = [c.centroid for c in seg.cells_of_kind("rbc")]
    for rx, ry, _ in ring:
        assert min(np.hypot(cx - rx, cy - ry) for cx, cy in found) < 0.2 * d


def test_white_cell_is_redrawn_at_full_resolution(smear) -> None:
    """Segmented at a fifth of the size, the outlines follow the drawn cell to a few pixels."""
    d = 100.0
    shape = (900, 1200)
    x, y = 600.3, 450.7
    red = smear.away(smear.grid(d, shape), x, y, 1.8 * d)
    seg = segment(smear.field(shape, red, [(x, y, 1.5 * d, [(0, 0, 0.9 * d)])]))
    assert seg.scale < 0.3
    (wbc,) = seg.cells_of_kind("wbc")
    assert wbc.nucleus_contour is not None
    # Full-resolution contours: many points, each near the drawn circle (work pixels are 4 px).
    outlines = ((wbc.nucleus_contour, 0.45 * d, 0.04 * d), (wbc.contour, 0.75 * d, 0.08 * d))
    for contour, radius, tol in outlines:
        r = np.hypot(contour[:, 0] - x, contour[:, 1] - y)
        assert len(contour) > 60
        assert np.abs(r - radius).max() < tol
    nucleus = smear.disc_mask(shape, x, y, 0.9 * d)
    overlap = (seg.nucleus_mask & nucleus).sum() / (seg.nucleus_mask | nucleus).sum()
    assert overlap > 0.85
    assert seg.labels[int(y), int(x)] == wbc.id
