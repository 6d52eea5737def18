"""White cells located at low resolution, and the red-cell density of each block.

At the locate level a red cell spans about 12 pixels (:data:`LOCATE_RBC_PX`),
a sixteenth or less of the full-resolution pixels. There, two stain maps are
enough to find every white cell: the *nuclear stain* (blue minus green over
the background's; Romanowsky nuclei are blue-purple, red cells pink) and the
*density* (optical density summed over the channels). A white cell is a blob
of nuclear stain above :data:`LOCATE_FACTOR` times the slide's nucleus
threshold, its lobes merged, at least half the smallest nucleus the
segmentation accepts: a permissive superset of what the full-resolution
segmentation keeps (platelet clumps and stain debris become candidates too,
and the segmentation of their window drops them).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "LOCATE_FACTOR",
    "LOCATE_RBC_PX",
    "Candidate",
    "block_density",
    "locate_candidates",
    "stain_maps",
]

#: Red-cell diameter (pixels) at the level white cells are located at.
LOCATE_RBC_PX = 12.0
#: A candidate's nuclear stain exceeds this fraction of the slide's nucleus threshold.
LOCATE_FACTOR = 0.7
#: A candidate's stained area is at least this fraction of the smallest white-cell nucleus.
LOCATE_MIN_AREA = 0.5


@dataclass(frozen=True)
class Candidate:
    """A blob of nuclear stain at low resolution: maybe a white cell.

    Attributes
    ----------
    box : (x0, y0, x1, y1)
        Its stained pixels' box in level-0 pixels (half-open).
    centroid : (x, y)
        Their centroid in level-0 pixels: which tile owns the candidate.
    """

    box: tuple[float, float, float, float]
    centroid: tuple[float, float]

    def distance(self, x: float, y: float) -> float:
        """Level-0 distance from a point to the box (0 inside)."""
        x0, y0, x1, y1 = self.box
        dx = max(x0 - x, 0.0, x - x1)
        dy = max(y0 - y, 0.0, y - y1)
        return float(np.hypot(dx, dy))


def stain_maps(rgb: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density and nuclear stain of an RGB image against a background colour.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
    background : ndarray of float, shape (3,)
        The glass's RGB colour.

    Returns
    -------
    density : ndarray of float32, shape (H, W)
        Sum over the channels of ``log(background / value)``.
    nuclear : ndarray of float32, shape (H, W)
        ``(B - G) - (B_bg - G_bg)``.
    """
    f = rgb.astype(np.float32)
    bg = np.maximum(np.asarray(background, np.float32), 1.0)
    od = np.log(bg[None, None, :] / np.maximum(f, 1.0))
    density = od.sum(axis=2, dtype=np.float32)
    nuclear = (f[..., 2] - f[..., 1]) - float(bg[2] - bg[1])
    return density, nuclear.astype(np.float32)


def local_background(rgb: np.ndarray, slide_background: np.ndarray) -> np.ndarray:
    """The glass colour of a region: the median of its brightest tenth, unless that is a cell.

    When the brightest tenth is much darker than the slide's glass (a region
    covered by cells), the slide's colour is used instead.
    """
    flat = rgb.reshape(-1, 3)[:: max(1, rgb.shape[0] * rgb.shape[1] // 40_000)]
    bright = flat.astype(np.float32).sum(axis=1)
    cut = np.percentile(bright, 90)
    glass = np.median(flat[bright >= cut].astype(np.float32), axis=0)
    slide_bg = np.asarray(slide_background, np.float32)
    if glass.sum() < 0.85 * slide_bg.sum():
        return slide_bg
    return glass


def locate_candidates(
    low: np.ndarray,
    *,
    scale: float,
    offset: tuple[float, float],
    background: np.ndarray,
    nucleus_threshold: float,
    rbc_diameter_low: float,
    min_nucleus_area: float,
    lobe_merge_distance: float,
) -> list[Candidate]:
    """Blobs of nuclear stain that may be white cells, in level-0 pixels.

    Parameters
    ----------
    low : ndarray of uint8, shape (h, w, 3)
        The region at the locate level.
    scale : float
        Level-0 pixels per pixel of ``low``.
    offset : (x, y)
        Level-0 position of ``low``'s top-left corner.
    background : ndarray, shape (3,)
        The glass colour.
    nucleus_threshold : float
        The slide's nuclear-stain threshold (:class:`~leukview.core.tiling.SlidePlan`).
    rbc_diameter_low : float
        Red-cell diameter in pixels of ``low``.
    min_nucleus_area : float
        :attr:`SegmentationParams.min_wbc_nucleus_area` (x red-cell area).
    lobe_merge_distance : float
        :attr:`SegmentationParams.lobe_merge_distance` (x red-cell diameter).

    Returns
    -------
    list of Candidate
        In reading order of their labels (deterministic for the same pixels).
    """
    _, nuclear = stain_maps(low, background)
    nuclear = cv2.GaussianBlur(nuclear, (0, 0), 0.7)
    stained = (nuclear > LOCATE_FACTOR * nucleus_threshold).astype(np.uint8)
    mask = np.asarray(cv2.morphologyEx(stained, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)), np.uint8)
    if not mask.any():
        return []
    r = max(1, int(round(0.5 * lobe_merge_distance * rbc_diameter_low)))
    merged = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    n, labels = cv2.connectedComponents(merged, connectivity=8)
    labels = np.where(mask > 0, labels, 0)
    rbc_area = np.pi * rbc_diameter_low**2 / 4.0
    min_area = LOCATE_MIN_AREA * min_nucleus_area * rbc_area
    counts = np.bincount(labels.ravel(), minlength=n)
    out: list[Candidate] = []
    ox, oy = offset
    for label in range(1, n):
        if counts[label] < min_area:
            continue
        ys, xs = np.nonzero(labels == label)
        box = (
            ox + float(xs.min()) * scale,
            oy + float(ys.min()) * scale,
            ox + float(xs.max() + 1) * scale,
            oy + float(ys.max() + 1) * scale,
        )
        centroid = (ox + (float(xs.mean()) + 0.5) * scale, oy + (float(ys.mean()) + 0.5) * scale)
        out.append(Candidate(box, centroid))
    return out


def block_density(
    low: np.ndarray,
    *,
    background: np.ndarray,
    cell_threshold: float,
    overlap_threshold: float,
    blocks: list[tuple[int, int, int, int, int, int]],
) -> list[list[float]]:
    """Red-cell coverage and overlap of blocks of a low-resolution region.

    Parameters
    ----------
    low : ndarray of uint8, shape (h, w, 3)
    background : ndarray, shape (3,)
    cell_threshold, overlap_threshold : float
        Density above which a pixel is a cell, and two overlapping cells.
    blocks : list of (bx, by, x0, y0, x1, y1)
        Block indices and their rectangles in pixels of ``low``.

    Returns
    -------
    list of [bx, by, coverage, overlap]
        ``coverage``: fraction of the block's pixels that are cells;
        ``overlap``: fraction of its cell pixels that are two cells deep.
    """
    density, _ = stain_maps(low, background)
    cells = density > cell_threshold
    deep = density > overlap_threshold
    out = []
    for bx, by, x0, y0, x1, y1 in blocks:
        if x1 <= x0 or y1 <= y0:
            continue
        c = cells[y0:y1, x0:x1]
        n = int(c.sum())
        coverage = n / c.size
        overlap = float(deep[y0:y1, x0:x1][c].sum()) / n if n else 0.0
        out.append([bx, by, round(coverage, 4), round(overlap, 4)])
    return out
