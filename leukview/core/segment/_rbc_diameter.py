"""The red-cell diameter of a field, which sets the scale of every other step.

Isolated round cells are measured, else distance-transform peaks; the search
runs fine to coarse over an image pyramid so small cells never merge.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.filters import threshold_otsu

from ..measure import fill_holes, label_max
from ._image import _as_rgb, _channel_max, _channel_sum, _resize
from ._morphology import _disk, _distance, _local_peaks
from ._params import SegmentationParams
from ._stain import _channels, _sample, _upper_cut

#: Side (px) of the window the red-cell diameter is first looked for in, per pyramid level.
_PYRAMID_WINDOW = 256

#: A red cell's diameter relative to a white cell's, for crops that hold only a white cell.
WHITE_TO_RED_DIAMETER = 0.8

#: A red cell's diameter relative to the largest nucleus (lobes grouped), for crops
#: around one white cell with no red cell in full view.
NUCLEUS_TO_RED_DIAMETER = 1.0


def estimate_rbc_diameter(image: np.ndarray, params: SegmentationParams | None = None) -> float:
    """Estimate the red-cell diameter of a field, in image pixels.

    The cells are thresholded (total stain, Otsu over the pixels that are not
    nuclear stain), closed and their holes (central pallor) filled. The
    distance transform peaks at the centre of every disc with the disc's
    radius, also inside clumps of touching cells; the median peak height,
    taking only peaks at least about a radius apart (two passes), gives the
    diameter. On a crop around one white cell with few red cells around it
    (Zheng, C-NMC) the white cell dominates and the estimate is about its
    size, which keeps every size rule sensible.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    params : SegmentationParams, optional
        Its ``rbc_diameter``, when set, is returned as is.

    Returns
    -------
    float
        Diameter in pixels, at least 4.

    Raises
    ------
    LeukViewError
        When the input is not an RGB image.
    """
    params = params or SegmentationParams()
    rgb = _as_rgb(image)
    return _estimate(rgb, params)[0]


def _estimate(
    rgb: np.ndarray, params: SegmentationParams
) -> tuple[float, np.ndarray | None, float]:
    """Red-cell diameter, and the image shrunk for segmentation when it came for free.

    Returns
    -------
    d : float
    small : ndarray of uint8 or None
        ``rgb`` resized by ``scale`` (the whole image), or None.
    scale : float
    """
    h, w = rgb.shape[:2]
    if params.rbc_diameter is not None:
        return float(params.rbc_diameter), None, 1.0
    if min(h, w) < 8:
        return float(max(h, w, 4)), None, 1.0
    # Fine to coarse: a centre window of 256 x 256 pixels at scale 1, 1/2, 1/4, ...
    # until it holds at least four cells across (magnification unknown: at too
    # coarse a scale small cells merge and look big, so never start coarse).
    scale = 1.0
    while True:
        side = int(round(_PYRAMID_WINDOW / scale))
        y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
        window = rgb[y0: y0 + side, x0: x0 + side]
        d_level, n_red = _estimate_at(_resize(window, scale), params)
        # Enough cells across, and several red cells seen (a window filled by one
        # white cell and slivers of red cells around it is no measure).
        if (d_level <= _PYRAMID_WINDOW / 4 and n_red >= 4) or side >= max(h, w):
            break
        scale /= 2.0
    d = d_level / scale
    # Final pass at the segmentation's work scale (a red cell about
    # work_rbc_diameter px across), over the whole image when that is at most
    # 640 x 640 work pixels (then reused by segment), else over a centre window.
    scale2 = min(1.0, params.work_rbc_diameter / max(d, 1.0))
    side = int(round(640 / scale2))
    if side >= max(h, w):
        small = _resize(rgb, scale2)
        return float(max(_estimate_at(small, params, True)[0] / scale2, 4.0)), small, scale2
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    d = _estimate_at(_resize(rgb[y0: y0 + side, x0: x0 + side], scale2), params, True)[0] / scale2
    return float(max(d, 4.0)), None, scale2


def _estimate_at(
    rgb: np.ndarray, params: SegmentationParams, careful: bool = False
) -> tuple[float, int]:
    """Red-cell diameter in ``rgb``'s pixels, and how many red cells it rests on.

    ``careful`` uses the segmentation's own stain channels (background per
    tile, for uneven illumination); otherwise a light-weight version with one
    background colour, good enough to pick the pyramid level.
    """
    h, w = rgb.shape[:2]
    if min(h, w) < 8:
        return float(max(h, w, 4)), 0
    if careful:
        ch = _channels(rgb, params, cell_threshold=False)
        lit = ~ch.black
        stained = (ch.nuclear > ch.nucleus_threshold) & lit
        if ch.black.any():
            return _diameter_on_black(lit)
        else:
            dens = _sample(ch.density[lit & ~stained])
            thr = params.min_cell_density
            if dens.size > 16 and float(dens.max() - dens.min()) > 1e-3:
                thr = max(thr, float(threshold_otsu(dens)))
            cells = ch.density > thr
        return _diameter_from_mask(cells, stained)
    # Light-weight stains: one background colour, subsampled thresholds.
    f = cv2.GaussianBlur(rgb, (0, 0), params.smoothing) if params.smoothing > 0 else rgb
    f = f.astype(np.float32)
    black = _channel_max(f) < params.black_background_level
    if black.mean() <= 0.05:
        black[:] = False
    lit = ~black
    nuclear = f[..., 2] - f[..., 1]
    if black.any():
        return _diameter_on_black(lit)
    else:
        sample = f[::3, ::3].reshape(-1, 3)
        bright = sample.sum(axis=1)
        bg = np.median(sample[bright >= np.percentile(bright, 90)], axis=0)
        density = _channel_sum(np.log(np.maximum(bg, 1.0) / np.maximum(f, 1.0)))
        nuclear -= float(bg[2] - bg[1])
        nv = _sample(nuclear.ravel(), 5000)
        nuc_thr = float(params.min_nucleus_contrast)
        if float(nv.max() - nv.min()) > 1e-3:
            nuc_thr = max(nuc_thr, _upper_cut(nv))
        stained = nuclear > nuc_thr
        dens = _sample(density[~stained], 5000)
        thr = params.min_cell_density
        if dens.size > 16 and float(dens.max() - dens.min()) > 1e-3:
            thr = max(thr, float(threshold_otsu(dens)))
        cells = density > thr
    return _diameter_from_mask(cells, stained)


def _diameter_on_black(lit: np.ndarray) -> tuple[float, int]:
    """Cells cut out on black (C-NMC): no red cells; a bit less than the largest cell's size."""
    dist = _distance(lit)
    return WHITE_TO_RED_DIAMETER * (2.0 * float(dist.max()) + 1.0), 0


def _diameter_from_mask(cells: np.ndarray, stained: np.ndarray) -> tuple[float, int]:
    """Red-cell diameter from a cell mask (see :func:`estimate_rbc_diameter`).

    Red cells with a pale centre can come out as rings, open where the pallor
    reaches the rim; the ring's thickness would then pass for a radius. So the
    gaps are closed with a radius set by the first estimate and the estimate
    is repeated until it settles (at most three rounds). In a dense field of
    pale red cells (Taleqani) even the first closing joins neighbours into a
    network whose filled gaps make one giant "cell"; a barely closed mask
    then sees many more, much smaller cells, and is believed instead.
    """
    d, n = _diameter_once(cells, stained, 3)
    d_fine, n_fine = _diameter_once(cells, stained, 1)
    if d > 1.5 * d_fine and n_fine > n:
        d, n = d_fine, n_fine
    close = int(round(0.12 * d))
    if close > 3:
        # One more round with gaps closed at the cell's scale; kept only if it does
        # not merge cells (as many red cells seen, at most a third larger).
        d_next, n_next = _diameter_once(cells, stained, close)
        if d <= d_next <= 1.35 * d and n_next >= 0.8 * n:
            d, n = d_next, n_next
    return d, n


def _diameter_once(cells: np.ndarray, stained: np.ndarray, close: int) -> tuple[float, int]:
    """One estimate and the number of red cells it rests on."""
    h, w = cells.shape
    cells = cv2.morphologyEx(cells.astype(np.uint8), cv2.MORPH_CLOSE, _disk(close))
    cells = fill_holes(cells).astype(np.uint8)
    cells = cv2.morphologyEx(cells, cv2.MORPH_OPEN, _disk(1))
    if not cells.any():
        return max(h, w) / 6.0, 0
    # The largest nucleus (lobes grouped): red cells are not much smaller than it,
    # and without red cells in view it stands in for one (about the same size).
    nucleus = 0.0
    if stained.any():
        grouped = cv2.morphologyEx(stained.astype(np.uint8), cv2.MORPH_CLOSE, _disk(3))
        n_st, _, st_stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
        if n_st > 1:
            nucleus = float(2.0 * np.sqrt(st_stats[1:, cv2.CC_STAT_AREA].max() / np.pi))
    smallest = 0.35 * nucleus  # red cells narrower than this are specks, not cells
    near_stain = cv2.dilate(stained.astype(np.uint8), _disk(2)).astype(np.float32)
    # First choice: isolated round cells without nuclear stain, away from the border.
    # A filled disc has area close to pi * (its largest inscribed radius)^2; rings
    # (an unfilled pale centre) and clumps have much more, so they are left out.
    dist = _distance(cells)
    n_comp, comp, stats, _ = cv2.connectedComponentsWithStats(cells, connectivity=8)
    if n_comp > 1:
        area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
        x0, y0 = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
        x1, y1 = x0 + stats[1:, cv2.CC_STAT_WIDTH], y0 + stats[1:, cv2.CC_STAT_HEIGHT]
        inner = (x0 > 0) & (y0 > 0) & (x1 < w) & (y1 < h)
        inradius = label_max(dist, comp, n_comp - 1, separated=True)[1:] + 0.5
        stained_comp = np.bincount(comp[near_stain > 0], minlength=n_comp)[1:] > 0
        ratio = area / (np.pi * inradius**2)
        round_cells = (
            inner & ~stained_comp & (area >= 20) & (ratio >= 0.75) & (ratio <= 1.5)
            & (2.0 * inradius >= smallest)
        )
        # Area-weighted median, and only when round cells make a fair part of the mask,
        # so specks and platelets (small, often many) do not count.
        if np.count_nonzero(round_cells) >= 3 and area[round_cells].sum() >= 0.1 * area.sum():
            a = np.sort(area[round_cells])
            median_area = a[np.searchsorted(np.cumsum(a), 0.5 * a.sum())]
            return float(2.0 * np.sqrt(median_area / np.pi)), int(np.count_nonzero(round_cells))
    # Else: distance-transform peaks over the clumps. Here the image border is not an
    # edge: a red cell cut by it keeps its radius.
    if not cells.all():
        dist = cv2.distanceTransform(cells, cv2.DIST_L2, 5)
    peaks, _ = _local_peaks(dist, 2, 2.0)
    if peaks.size == 0:
        return max(2.0 * float(dist.max()) + 1.0, nucleus, 4.0), 0
    r = float(np.percentile(peaks, 75))
    # Second pass: one peak per disc (peaks closer than a radius are one cell's
    # ridge), and shallow bumps along edges left out.
    heights, on_stain = _local_peaks(dist, max(2, int(0.8 * r)), max(2.0, 0.5 * r), near_stain)
    # Peaks inside white cells say nothing about red cells.
    red = (on_stain < 0.5) & (2.0 * heights + 1.0 >= smallest)
    if np.count_nonzero(red) >= 3:
        return 2.0 * float(np.median(heights[red])) + 1.0, int(np.count_nonzero(red))
    if nucleus > 0:
        # A crop around one white cell: the nucleus stands in for a red cell.
        return nucleus * NUCLEUS_TO_RED_DIAMETER, int(np.count_nonzero(red))
    if heights.size:
        return 2.0 * float(np.median(heights)) + 1.0, int(np.count_nonzero(red))
    return 2.0 * r + 1.0, 0
