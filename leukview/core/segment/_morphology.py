"""Mask and distance-transform primitives shared by the segmentation steps.

Structuring discs, the distance transform, local and h-maxima (watershed
seeds), and hole filling.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from ..measure import fill_holes, label_max


def _disk(radius: float) -> np.ndarray:
    """Elliptic structuring element, uint8 of shape (2r+1, 2r+1), r = round(radius) >= 1."""
    r = max(int(round(radius)), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance to the nearest background pixel, the image border counting as
    background (a mask with no background would otherwise be infinitely far)."""
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]


def _local_peaks(
    f: np.ndarray, radius: int, floor: float, probe: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of ``f`` within a square of half-side ``radius``, at least ``floor`` high.

    Adjacent maximal pixels (a plateau) count once.

    Returns
    -------
    heights : ndarray of float64, shape (n,)
    probe_values : ndarray of float64, shape (n,)
        Maximum of ``probe`` over each peak (zeros when ``probe`` is None).
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
    top = (f >= cv2.dilate(f, kernel) - 1e-6) & (f >= floor)
    n, lab = cv2.connectedComponents(top.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(0), np.zeros(0)
    heights = label_max(f, lab, n - 1)[1:]
    probes = label_max(probe, lab, n - 1)[1:] if probe is not None else np.zeros(n - 1)
    return heights, probes


def _h_maxima(f: np.ndarray, h: float, reach: float) -> np.ndarray:
    """Tops of the domes of ``f`` that rise at least ``h`` above their surroundings.

    Morphological reconstruction by dilation of ``f - h`` under ``f`` (as
    skimage's ``h_maxima``) with 3x3 dilations, stopped once stable or after
    ``3 * reach`` steps: domes are at most a few cells wide, so this is exact
    in practice and much faster on large images.

    Returns
    -------
    ndarray of bool, same shape as ``f``
    """
    f = f.astype(np.float32)
    rec = f - np.float32(h)
    kernel = np.ones((3, 3), np.uint8)
    steps = max(4, int(3 * reach))
    for i in range(steps):
        nxt = np.minimum(cv2.dilate(rec, kernel), f)
        if i % 4 == 3 and np.array_equal(nxt, rec):
            break
        rec = nxt
    return (f - rec) >= np.float32(h) - 1e-3


def _label_cores(cores: np.ndarray, join: float) -> tuple[np.ndarray, int]:
    """Label watershed seeds; pieces of one plateau closer than ``join`` px are one seed."""
    grown = cv2.dilate(cores.astype(np.uint8), _disk(join)) if join >= 1 else cores.astype(np.uint8)
    lab, n = ndi.label(grown, structure=np.ones((3, 3), bool))
    return np.where(cores, lab, 0).astype(np.int32), int(n)


def _fill_small_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """Fill the holes of a mask smaller than ``max_area`` pixels (central pallor, granules)."""
    filled = fill_holes(mask)
    holes = filled & ~mask
    if not holes.any():
        return mask
    lab, n = ndi.label(holes)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    small = sizes <= max_area
    small[0] = False
    return mask | small[lab]


def _fill_each(labels: np.ndarray, n: int) -> np.ndarray:
    """Labels 1..n each with its holes filled and (when over 50 px) its spurs opened away.

    Pixels already given to a lower label stay with it.
    """
    out = np.zeros_like(labels)
    for i, sl in enumerate(ndi.find_objects(labels, max_label=n), start=1):
        if sl is None:
            continue
        m = labels[sl] == i
        m = fill_holes(m)
        if m.sum() > 50:
            m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, _disk(1)) > 0
        sub = out[sl]
        sub[m & (sub == 0)] = i
    return out
