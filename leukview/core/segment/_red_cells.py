"""Red cells: their own cut of total stain, pallor filled, split into one label per cell.

Red cells get a stricter cut of total stain than the cell mask (Otsu, glass |
red cells), their pallor filled, and are split by a distance-transform marker
watershed sized by their own diameter; clumps still several cells large are
divided by area.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from ..measure import label_max
from ._morphology import _disk, _distance, _fill_small_holes, _label_cores
from ._params import SegmentationParams
from ._stain import _Channels, _sample


def _red_cell_mask(
    ch: _Channels, nuc: np.ndarray, wbc_labels: np.ndarray, ds: float, params: SegmentationParams
) -> np.ndarray:
    """Red cells against the glass, at the work scale.

    The cell threshold of total stain is set low so that pale cytoplasm counts;
    on fields with a pale, uneven glass (BCCD) that lets the red cells bleed
    into the background. Red cells are stained well above the glass, so their
    own cut is a two-class Otsu of total stain over the pixels that are not
    white cells or nuclear stain (glass | red cells), times
    :attr:`SegmentationParams.rbc_threshold_scale`, and never below the cell
    threshold. Central pallor and small gaps are filled.

    Returns
    -------
    ndarray of bool, shape of ``ch.density``
    """
    other = ~ch.black & ~nuc & (wbc_labels == 0)
    thr = ch.cell_threshold
    v = _sample(ch.density[other])
    if v.size > 16 and float(v.max() - v.min()) > 1e-3:
        thr = max(thr, params.rbc_threshold_scale * float(threshold_otsu(v)))
    red = (ch.density > thr) & ~ch.black
    red = cv2.morphologyEx(red.astype(np.uint8), cv2.MORPH_OPEN, _disk(max(1.0, 0.06 * ds)))
    # Close rings (a pale centre reaching the rim) before filling the pallor.
    red = cv2.morphologyEx(red, cv2.MORPH_CLOSE, _disk(max(1.0, params.rbc_close * ds))) > 0
    return _fill_small_holes(red, np.pi * ds * ds / 4.0)


def _split_red_cells(red: np.ndarray, ds: float, params: SegmentationParams) -> np.ndarray:
    """One label per red cell: a marker watershed on the distance transform.

    Each red cell is a disc; in a clump of touching or overlapping discs the
    distance transform keeps a peak near each centre. The disc size is taken
    from the mask itself (median peak height, within 0.6-1.2 × d: the overall
    estimate can be off on crowded fields). Markers are the peaks at least
    :attr:`SegmentationParams.rbc_marker_distance` × that diameter apart; the
    watershed of the inverted distance from them splits the clump at the
    waists. Heavily overlapping cells leave no waist: a piece still larger than
    :attr:`~SegmentationParams.max_rbc_area` red-cell areas is divided into as
    many compact parts as its area holds cells (k-means of its pixel
    positions). Pieces smaller than :attr:`~SegmentationParams.min_rbc_area`
    are dropped.

    Returns
    -------
    ndarray of int32, labels 1..n (0 elsewhere)
    """
    if not red.any():
        return np.zeros(red.shape, np.int32)
    dist = _distance(red)
    dr = _red_disc_diameter(red, dist, ds)
    rbc_area = np.pi * dr * dr / 4.0
    kernel = _disk(max(1, int(round(params.rbc_marker_distance * dr))))
    peaks = (dist >= cv2.dilate(dist, kernel) - 1e-3) & (dist >= 0.15 * dr)
    markers, n = _label_cores(peaks, 0.1 * dr)
    if n == 0:
        return np.zeros(red.shape, np.int32)
    lab = watershed(-dist, markers, mask=red).astype(np.int32)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    big = np.flatnonzero(sizes[1:] > params.max_rbc_area * rbc_area) + 1
    if big.size:
        objs = ndi.find_objects(lab, max_label=n)
        for i in big:
            sl = objs[i - 1]
            region = lab[sl] == i
            k = int(round(sizes[i] / rbc_area))
            if k < 2:
                continue
            parts = _kmeans_split(region, k)
            sub = lab[sl]
            sub[region & (parts > 1)] = parts[region & (parts > 1)] + n - 1
            n += k - 1
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= params.min_rbc_area * rbc_area
    keep[0] = False
    lut = np.zeros(n + 1, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return lut[lab]


def _red_disc_diameter(red: np.ndarray, dist: np.ndarray, ds: float) -> float:
    """Red-cell diameter (work px) from the red-cell mask and its distance transform.

    The median equivalent diameter of isolated round pieces away from the
    border (a filled disc has area close to π × inradius²; clumps have more),
    when there are at least three; else ``ds``. Kept within 0.6-1.2 × ``ds``
    (the overall estimate can be off on crowded fields, by less than that).
    """
    n, lab, stats, _ = cv2.connectedComponentsWithStats(red.astype(np.uint8), connectivity=8)
    if n <= 4:
        return ds
    h, w = red.shape
    area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    x0, y0 = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
    x1, y1 = x0 + stats[1:, cv2.CC_STAT_WIDTH], y0 + stats[1:, cv2.CC_STAT_HEIGHT]
    inner = (x0 > 0) & (y0 > 0) & (x1 < w) & (y1 < h)
    red_dist = np.where(red, dist, 0.0).astype(np.float32)
    inradius = label_max(red_dist, lab, n - 1, separated=True)[1:] + 0.5
    ratio = area / (np.pi * inradius**2)
    round_ = inner & (ratio >= 0.75) & (ratio <= 1.5) & (inradius >= 0.2 * ds)
    if np.count_nonzero(round_) < 3:
        return ds
    return float(np.clip(2.0 * np.sqrt(np.median(area[round_]) / np.pi), 0.6 * ds, 1.2 * ds))


def _kmeans_split(region: np.ndarray, k: int, iterations: int = 6) -> np.ndarray:
    """Divide a mask into ``k`` compact parts (k-means of pixel positions, deterministic).

    Centres start at the farthest-point sample of the pixels well inside the
    mask, beginning with the deepest; they are refined on a subsample of at
    most a few hundred pixels (speed), then every pixel goes to the nearest.

    Returns
    -------
    ndarray of int32, same shape: part 1..k on the mask, 0 elsewhere
    """
    ys, xs = np.nonzero(region)
    pts = np.stack([xs, ys], 1).astype(np.float32)
    depth = _distance(region)[ys, xs]
    step = max(1, pts.shape[0] // 400)
    fit, fit_depth = pts[::step], depth[::step]
    first = int(np.argmax(fit_depth))
    centres = [fit[first]]
    d2 = ((fit - fit[first]) ** 2).sum(1)
    # Farthest points, but among the pixels well inside (not the tips of the outline).
    inner = fit_depth >= 0.5 * float(fit_depth.max())
    for _ in range(k - 1):
        j = int(np.argmax(np.where(inner, d2, -1.0)))
        centres.append(fit[j])
        d2 = np.minimum(d2, ((fit - fit[j]) ** 2).sum(1))
    c = np.stack(centres)
    for _ in range(iterations):
        assign = np.argmin(((fit[:, None, :] - c[None]) ** 2).sum(2), axis=1)
        counts = np.bincount(assign, minlength=k)
        ok = counts > 0
        c[ok, 0] = np.bincount(assign, fit[:, 0], k)[ok] / counts[ok]
        c[ok, 1] = np.bincount(assign, fit[:, 1], k)[ok] / counts[ok]
    assign = np.argmin(((pts[:, None, :] - c[None]) ** 2).sum(2), axis=1)
    out = np.zeros(region.shape, np.int32)
    out[ys, xs] = assign + 1
    return out
