"""White cells after the common watershed: cytoplasm trimmed, lobes joined, full-resolution redraw.

At the work scale a white cell is limited to its reach beyond the nucleus and
trimmed by colour where it grew into red cells; touching white cells that
together make one round cell with plenty of cytoplasm are joined. At the end
each white cell and its nucleus are redrawn at full resolution in their own
small crop.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from ..cells import Cell
from ..measure import fill_holes
from ._morphology import _disk, _fill_each
from ._params import SegmentationParams
from ._records import _make_cell
from ._stain import _Channels


def _trim_cytoplasm(
    cells: np.ndarray,
    zones: np.ndarray,
    rbc_pixels: np.ndarray,
    ch: _Channels,
    n: int,
    ds: float,
    params: SegmentationParams,
) -> np.ndarray:
    """Give back to the red cells what a white cell grew into.

    Where a white cell lies among red cells with no waist between them, the
    geometric watershed lets it grow into its neighbours up to its reach. Each
    white cell's own cytoplasm colour is measured in a thin ring around its
    nucleus; a pixel of the grown cell stays only if its colour (optical density
    per channel) is closer to that cytoplasm than to the red cells' median. The
    part connected to the nucleus is kept, its holes filled. Cells whose
    cytoplasm looks like the red cells (no contrast) are left as they are.
    """
    od = ch.od
    if od is None or np.count_nonzero(rbc_pixels) < 50:
        return cells
    rbc_colour = np.median(od[rbc_pixels], axis=0)
    out = cells.copy()
    ring_width = max(1.0, params.cytoplasm_ring * ds)
    for i, sl in enumerate(ndi.find_objects(cells, max_label=n), start=1):
        if sl is None:
            continue
        cell = cells[sl] == i
        zone = zones[sl] == i
        ring = cell & ~zone & (cv2.dilate(zone.astype(np.uint8), _disk(ring_width)) > 0)
        if np.count_nonzero(ring) < 10:
            continue
        sub = od[sl]
        cyto_colour = np.median(sub[ring], axis=0)
        if float(np.linalg.norm(cyto_colour - rbc_colour)) < params.min_cytoplasm_contrast:
            continue
        d_cyto = np.linalg.norm(sub - cyto_colour, axis=2)
        d_rbc = np.linalg.norm(sub - rbc_colour, axis=2)
        keep = (cell & (d_cyto <= d_rbc)) | zone
        keep = cv2.morphologyEx(keep.astype(np.uint8), cv2.MORPH_OPEN, _disk(1)) > 0
        keep |= zone
        lab, _ = ndi.label(keep)
        own = np.unique(lab[zone])
        keep = np.isin(lab, own[own > 0])
        keep = fill_holes(keep) & cell
        region = out[sl]
        region[cell & ~keep] = 0
    return out


def _merge_lobes(
    cells: np.ndarray,
    zones: np.ndarray,
    nuc: np.ndarray,
    n: int,
    ds: float,
    params: SegmentationParams,
    sliver: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Join white cells that are lobes of one cell.

    Lobes of a segmented neutrophil or eosinophil can lie farther apart than
    :attr:`SegmentationParams.lobe_merge_distance` (granules between them) and
    then grow as separate cells, touching or nearly. Two such cells are one
    when together they make one compact cell with plenty of cytoplasm: nearly
    convex (solidity at least 0.9), no wider than ``max_wbc_diameter`` × d,
    and nucleus at most ``max_lobed_nucleus_fraction`` of it. Two blasts
    pressed together fail the last test: their nuclei fill their cells.

    ``sliver`` (bool, shape (n + 1,)) marks nuclei cut by the image border: they
    are never joined (their cell's shape is unknown, and a neighbour would swallow it).

    Returns
    -------
    cells, zones : ndarray of int32
        Relabelled 1..n.
    n : int
    """
    if n < 2:
        return cells, zones, n
    # Pairs of different cells closer than a small gap.
    gap = max(1, int(round(0.08 * ds)))
    kernel = np.ones((2 * gap + 1, 2 * gap + 1), np.uint8)
    # (float32 holds label ids exactly; OpenCV's morphology has no int32.)
    hi = cv2.dilate(cells.astype(np.float32), kernel).astype(np.int32)
    lo = cv2.erode(np.where(cells > 0, cells, n + 1).astype(np.float32), kernel).astype(np.int32)
    pairs: set[tuple[int, int]] = set()
    for other in (hi, lo):
        near = (cells > 0) & (other > 0) & (other <= n) & (other != cells)
        if near.any():
            mine, theirs = cells[near], other[near]
            ab = np.stack([np.minimum(mine, theirs), np.maximum(mine, theirs)], 1)
            pairs.update(map(tuple, np.unique(ab, axis=0).tolist()))
    if not pairs:
        return cells, zones, n
    nuc_area = np.bincount(zones[nuc], minlength=n + 1).astype(np.float64)
    cell_area = np.bincount(cells.ravel(), minlength=n + 1).astype(np.float64)
    parent = np.arange(n + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    objs = ndi.find_objects(cells, max_label=n)
    for a, b in sorted(pairs):
        ra, rb = root(a), root(b)
        if ra == rb or (sliver is not None and (sliver[a] or sliver[b])):
            continue
        members = [i for i in range(1, n + 1) if root(i) in (ra, rb)]
        area = float(cell_area[members].sum())
        if nuc_area[members].sum() > params.max_lobed_nucleus_fraction * area:
            continue
        if 2.0 * np.sqrt(area / np.pi) > params.max_wbc_diameter * ds:
            continue
        sl = tuple(
            slice(
                min(objs[i - 1][k].start for i in members),
                max(objs[i - 1][k].stop for i in members),
            )
            for k in (0, 1)
        )
        union = np.isin(cells[sl], members)
        hull = cv2.convexHull(cv2.findNonZero(union.astype(np.uint8)))
        if area < 0.9 * max(cv2.contourArea(hull), 1.0):
            continue
        parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(n + 1)])
    ids = np.unique(roots[1:])
    lut = np.zeros(n + 1, np.int32)
    lut[1:] = np.searchsorted(ids, roots[1:]) + 1
    merged = lut[cells]
    if len(ids) < n:
        # Fill the small gap between joined lobes' cells.
        merged = _fill_each(merged, len(ids))
    return merged, lut[zones], len(ids)


def _refine_wbc(
    rgb: np.ndarray,
    full: np.ndarray,
    nucleus_full: np.ndarray,
    cid: int,
    lab: np.ndarray,
    wbc_nuc: np.ndarray,
    i: int,
    sl: tuple[slice, slice],
    scale: float,
    sigma: float,
    ch: _Channels,
    pixel_size_um: float | None,
) -> Cell | None:
    """Redraw one white cell and its nucleus at full resolution in its own crop."""
    h, w = rgb.shape[:2]
    inv = 1.0 / scale
    pad = 2 + int(inv)
    y0 = max(0, int(np.floor(sl[0].start * inv)) - pad)
    y1 = min(h, int(np.ceil(sl[0].stop * inv)) + pad)
    x0 = max(0, int(np.floor(sl[1].start * inv)) - pad)
    x1 = min(w, int(np.ceil(sl[1].stop * inv)) + pad)
    box = (x0, y0, x1, y1)
    cm = _upsample_mask(lab, i, box, scale)
    sub = full[y0:y1, x0:x1]
    # Never take pixels of another white cell (lower ids were drawn already).
    cm &= ~((sub > 0) & (sub < cid))
    if not cm.any():
        sub[sub == cid] = 0
        return None
    f: np.ndarray = rgb[y0:y1, x0:x1].astype(np.float32)
    if sigma > 0:
        f = cv2.GaussianBlur(f, (0, 0), sigma)
    nm = ((f[..., 2] - f[..., 1]) - ch.nuclear_offset > ch.nucleus_threshold) & cm
    coarse = _upsample_mask(wbc_nuc, i, box, scale)
    nm &= cv2.dilate(coarse.astype(np.uint8), _disk(max(1.0, inv))) > 0
    if not nm.any():
        nm = coarse & cm
    nm = fill_holes(nm)
    sub[(sub == cid) & ~cm] = 0
    sub[cm] = cid
    nucleus_full[y0:y1, x0:x1] |= nm
    return _make_cell(cid, "wbc", rgb[y0:y1, x0:x1], cm, nm, (x0, y0), 1.0, pixel_size_um)


def _upsample_mask(
    labels: np.ndarray, label: int, box: tuple[int, int, int, int], scale: float
) -> np.ndarray:
    """The work-scale region ``label`` resampled onto a full-resolution box (smooth edges).

    Returns a bool array of shape (y1 - y0, x1 - x0).
    """
    x0, y0, x1, y1 = box
    if scale >= 0.999:
        return labels[y0:y1, x0:x1] == label
    hh, ww = labels.shape
    wy0, wy1 = max(int(np.floor(y0 * scale)) - 1, 0), min(int(np.ceil(y1 * scale)) + 1, hh)
    wx0, wx1 = max(int(np.floor(x0 * scale)) - 1, 0), min(int(np.ceil(x1 * scale)) + 1, ww)
    win = (labels[wy0:wy1, wx0:wx1] == label).astype(np.float32)
    # Full-res pixel centres in work coordinates, relative to the window.
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5) * scale - 0.5 - wy0
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5) * scale - 0.5 - wx0
    mx, my = np.meshgrid(xs, ys)
    out = cv2.remap(win, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out >= 0.5
