"""Background and stain channels: total optical density and nuclear stain, and their cuts.

The background colour is taken per tile from the brightest pixels (flattening
uneven illumination), or is white for cells cut out on black (C-NMC). Optical
density against it gives a *cell* channel (total stain; cut just above the
glass's own spread, or at the lower cut of a three-class Otsu) and a *nuclear
stain* channel (blue minus green: Romanowsky-stained nuclei are blue-purple,
red cells red-pink), cut at the upper threshold of a three-class Otsu over the
cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_multiotsu, threshold_otsu

from ._image import _channel_max, _channel_sum
from ._morphology import _disk
from ._params import SegmentationParams


@dataclass
class _Channels:
    black: np.ndarray  # bool: cut-out background (C-NMC)
    density: np.ndarray  # float32: total optical density over the background
    nuclear: np.ndarray  # float32: blue minus green, relative to the background
    cell_threshold: float
    nucleus_threshold: float
    nuclear_offset: float  # background blue-minus-green, subtracted from the nuclear channel
    od: np.ndarray | None = None  # float32 (H, W, 3): optical density per channel


def _channels(
    rgb: np.ndarray,
    params: SegmentationParams,
    tile: float | None = None,
    *,
    cell_threshold: bool = True,
) -> _Channels:
    """Stain channels of a (work-scale) RGB image.

    ``tile`` is the side (px) of the squares over which the background colour is
    estimated (about three red cells); None uses a quarter of the image.
    ``cell_threshold`` False skips that threshold (the diameter estimate has its own).
    """
    f: np.ndarray = rgb.astype(np.float32)
    if params.smoothing > 0:
        f = cv2.GaussianBlur(f, (0, 0), params.smoothing)
    black = _channel_max(f) < params.black_background_level
    if black.mean() > 0.05:
        black = cv2.morphologyEx(black.astype(np.uint8), cv2.MORPH_OPEN, _disk(1)).astype(bool)
    else:
        black = np.zeros(black.shape, dtype=bool)
    lit = ~black
    if black.any():
        # Cells cut out on black: the slide's background is not in the image; use white.
        bg = np.full(f.shape, 255.0, np.float32)
    else:
        h, w = f.shape[:2]
        bg = _background(f, tile if tile else max(h, w) / 4.0)
    od = np.log(np.maximum(bg, 1.0) / np.maximum(f, 1.0))
    density = _channel_sum(od)
    density[black] = 0.0
    bgd = bg[..., 2] - bg[..., 1]
    offset = float(np.median(bgd[lit])) if lit.any() else 0.0
    nuclear = ((f[..., 2] - f[..., 1]) - bgd).astype(np.float32)
    nuclear[black] = 0.0

    cell_thr = params.min_cell_density
    dens_lit = _sample(density[lit]) if cell_threshold else np.zeros(0, np.float32)
    if dens_lit.size > 16 and float(dens_lit.max() - dens_lit.min()) > 1e-3:
        # The lower of two views: just above the glass's own spread, or the lower cut of
        # a three-class Otsu (glass | red cells | nuclei) when the glass peak is broad.
        cut = min(_background_cut(dens_lit), _lower_cut(dens_lit))
        cell_thr = max(cell_thr, params.cell_threshold_scale * cut)
    cells = lit if black.any() or not cell_threshold else density > cell_thr
    nuc_thr = float(params.min_nucleus_contrast)
    nv = _sample(nuclear[cells])
    if nv.size > 16 and float(nv.max() - nv.min()) > 1e-3:
        nuc_thr = max(nuc_thr, params.nucleus_threshold_scale * _upper_cut(nv))
    return _Channels(black, density, nuclear, cell_thr, nuc_thr, offset, od.astype(np.float32))


def _sample(values: np.ndarray, n: int = 20_000) -> np.ndarray:
    """A regular subsample of at most about ``n`` values (plenty for a histogram threshold)."""
    step = values.size // n + 1
    return values[::step] if step > 1 else values


def _background(f: np.ndarray, tile: float) -> np.ndarray:
    """Background colour per pixel, shape (H, W, 3) float32.

    Per square of side ``tile``: the median colour of its brightest tenth
    (the glass between cells); a 3x3 median over the squares rejects squares
    covered by cells, and bilinear interpolation makes it smooth, which
    flattens uneven illumination (vignetting).
    """
    h, w = f.shape[:2]
    ny, nx = max(1, int(round(h / tile))), max(1, int(round(w / tile)))
    ys = np.linspace(0, h, ny + 1).astype(int)
    xs = np.linspace(0, w, nx + 1).astype(int)
    bright = _channel_sum(f)
    grid = np.zeros((ny, nx, 3), np.float32)
    # Every other pixel per tile: the same percentile at a quarter of the cost.
    st = 2 if tile >= 24 else 1
    for i in range(ny):
        for j in range(nx):
            b = bright[ys[i]: ys[i + 1]: st, xs[j]: xs[j + 1]: st].ravel()
            c = f[ys[i]: ys[i + 1]: st, xs[j]: xs[j + 1]: st].reshape(-1, 3)
            sel = b >= np.percentile(b, 90)
            grid[i, j] = np.median(c[sel], axis=0)
    if ny >= 3 and nx >= 3:
        grid = ndi.median_filter(grid, size=(3, 3, 1), mode="nearest")
    # A square whose brightest tenth is still a cell is darker than its neighbours:
    # never let the background fall far below the image's bright level.
    top = np.percentile(grid.reshape(-1, 3), 75, axis=0)
    grid = np.maximum(grid, 0.85 * top)
    if ny == 1 and nx == 1:
        return np.broadcast_to(grid[0, 0], f.shape).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)


def _background_cut(values: np.ndarray) -> float:
    """Threshold of total stain just above the background's own spread.

    The background is the lowest clear peak of the density histogram; its
    spread is measured on its lower side (pure glass) and the cut is six of
    those spreads above the peak, so pale red cells and cytoplasm count as cells
    whatever the rest of the histogram looks like.
    """
    v = _sample(values)
    lo, hi = np.percentile(v, [0.5, 99.5])
    if hi - lo < 1e-3:
        return float(hi)
    hist, edges = np.histogram(v, bins=200, range=(lo, hi))
    hist = ndi.gaussian_filter1d(hist.astype(np.float64), 1.5)
    centers = 0.5 * (edges[:-1] + edges[1:])
    is_peak = (hist >= np.roll(hist, 1)) & (hist >= np.roll(hist, -1))
    is_peak[0] = hist[0] >= hist[1]
    is_peak[-1] = False
    strong = np.flatnonzero(is_peak & (hist >= 0.2 * hist.max()))
    peak = float(centers[strong[0]]) if strong.size else float(centers[np.argmax(hist)])
    left = v[v <= peak] - peak
    sigma = float(np.sqrt(np.mean(left * left))) if left.size > 20 else 0.02
    return peak + 6.0 * max(sigma, 0.005)


def _upper_cut(values: np.ndarray) -> float:
    """Upper threshold of a three-class Otsu (red cells | cytoplasm, pale | nuclei)."""
    v = _sample(values)
    try:
        return float(threshold_multiotsu(v, classes=3, nbins=128)[1])
    except ValueError:
        return float(threshold_otsu(v))


def _lower_cut(values: np.ndarray) -> float:
    """Lower threshold of a three-class Otsu (background | red cells | nuclei)."""
    v = _sample(values)
    try:
        return float(threshold_multiotsu(v, classes=3, nbins=128)[0])
    except ValueError:  # too few distinct values
        return float(threshold_otsu(v))
