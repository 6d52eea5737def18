"""Classical segmentation of a blood smear field: white cells, red cells, platelets.

The method, step by step (each step is a few array operations a person can
inspect; nothing is learned). docs/segmentation.md has the figures.

1. **Scale.** The red-cell diameter ``d`` is estimated from the image
   (:func:`estimate_rbc_diameter`: isolated round cells, else distance-transform
   peaks, found fine to coarse so small cells never merge) and the field is
   shrunk so a red cell spans about :attr:`SegmentationParams.work_rbc_diameter`
   pixels. Every size below is a multiple of ``d``, so magnification does not
   matter, and the work image is small, so segmentation is fast.
2. **Background and stains.** The background colour is taken per tile from
   the brightest pixels (flattening uneven illumination), or is black for
   cells cut out on black (C-NMC). Optical density against it gives a *cell*
   channel (total stain; cut just above the glass's own spread, or at the
   lower cut of a three-class Otsu) and a *nuclear stain* channel (blue minus
   green: Romanowsky-stained nuclei are blue-purple, red cells red-pink),
   cut at the upper threshold of a three-class Otsu over the cells.
3. **Nuclei.** The nuclear-stain mask is cleaned by morphology. Fragments
   closer than :attr:`~SegmentationParams.lobe_merge_distance` are grouped
   (the lobes of a neutrophil are one cell). Groups large and thick enough are
   white-cell nuclei (erythroblasts included); small isolated specks are
   platelets. Touching nuclei are split by a marker-controlled watershed on
   the distance transform (h-maxima markers) when each piece is nucleus-sized.
4. **Cytoplasm and red cells.** One watershed on the distance transform of
   the cell mask grows every white cell from its nucleus and every red cell
   from its thick core; they meet at the waists between them. A white cell is
   limited to :attr:`~SegmentationParams.max_cytoplasm_width` beyond its
   nucleus and trimmed by colour where it grew into red cells; touching
   white cells that together make one round cell with plenty of cytoplasm
   are joined (lobes far apart).
5. **Red cells and platelets.** Red cells get their own, stricter cut of total
   stain (Otsu, glass | red cells), their pallor filled, and are split by a
   distance-transform marker watershed sized by their own diameter; clumps
   still several cells large are divided by area. Platelets are small specks of
   nuclear stain with a dark centre, away from white cells, not enclosed by red
   cells.
6. **Refine and measure.** White cells and their nuclei are redrawn at full
   resolution in their own small crop; every cell is measured
   (:func:`leukview.core.measure.measure_cell`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_multiotsu, threshold_otsu
from skimage.segmentation import watershed

from .cells import Cell
from .errors import LeukViewError
from .measure import fill_holes, label_max, measure_cell

__all__ = [
    "SegmentationParams",
    "Segmentation",
    "segment",
    "estimate_rbc_diameter",
]


#: Side (px) of the window the red-cell diameter is first looked for in, per pyramid level.
_PYRAMID_WINDOW = 256

#: A red cell's diameter relative to a white cell's, for crops that hold only a white cell.
WHITE_TO_RED_DIAMETER = 0.8

#: A red cell's diameter relative to the largest nucleus (lobes grouped), for crops
#: around one white cell with no red cell in full view.
NUCLEUS_TO_RED_DIAMETER = 1.0


@dataclass(frozen=True)
class SegmentationParams:
    """Every tunable of :func:`segment`, with defaults that work across stains.

    Sizes are multiples of the red-cell diameter ``d`` (estimated per image
    unless :attr:`rbc_diameter` is given), so they hold at any magnification.
    """

    rbc_diameter: float | None = None
    """Red-cell diameter in image pixels; None estimates it from the image."""

    work_rbc_diameter: float = 24.0
    """The image is shrunk so a red cell spans about this many pixels (never enlarged)."""

    smoothing: float = 1.0
    """Gaussian smoothing before thresholding, in work-image pixels."""

    black_background_level: int = 25
    """Pixels darker than this in every channel are background (cells cut out on black)."""

    cell_threshold_scale: float = 1.0
    """Multiplies the automatic (Otsu) threshold of total stain that separates cells from background."""

    min_cell_density: float = 0.08
    """Lowest total optical density counted as a cell whatever Otsu says (blank fields find nothing)."""

    nucleus_threshold_scale: float = 1.0
    """Multiplies the automatic (Otsu) threshold of the nuclear stain; above 1 keeps only darker nuclei."""

    min_nucleus_contrast: float = 20.0
    """Least blue-minus-green excess over the background (0-255) counted as nuclear stain."""

    lobe_merge_distance: float = 0.5
    """Nuclear fragments closer than this (× d) are lobes of one cell."""

    split_depth: float = 0.3
    """Touching nuclei are split where the waist between them is this much thinner (× d) than each."""

    split_min_radius: float = 0.25
    """A nucleus core must be at least this thick (half-width, × d) to seed its own cell."""

    min_split_nucleus_area: float = 0.4
    """Touching nuclei are split only if each piece has at least this area (× red-cell area)."""

    min_split_group_area: float = 1.3
    """Nuclear groups smaller than this (× red-cell area) are one cell, never split."""

    min_wbc_nucleus_area: float = 0.3
    """Smallest white-cell nucleus (× red-cell area); smaller stained specks are platelets."""

    min_nucleus_thickness: float = 0.15
    """A white-cell nucleus is at least this thick somewhere (half-width, × d); platelet clumps are thinner."""

    min_border_nucleus_chord: float = 0.4
    """A stained group cut by the image border is a white-cell nucleus when it runs at least
    this far along the border (× d) and is dark (see ``min_border_nucleus_stain``)."""

    min_border_nucleus_stain: float = 1.3
    """A border-cut nucleus peaks at least this many times the nuclear-stain threshold."""

    min_platelet_area: float = 0.01
    """Smallest platelet (× red-cell area); smaller specks are noise."""

    max_lobed_nucleus_fraction: float = 0.6
    """Touching white cells are one cell when their nuclei fill at most this fraction of them."""

    max_wbc_diameter: float = 2.6
    """Largest white cell (equivalent diameter, × d) that lobes may be joined into."""

    cytoplasm_ring: float = 0.08
    """Width of the ring around a nucleus (× d) whose colour is taken as the cell's cytoplasm."""

    min_cytoplasm_contrast: float = 0.08
    """Cytoplasm is told from red cells by colour only when their optical densities differ this much."""

    max_cytoplasm_width: float = 0.45
    """Cytoplasm is grown at most this far beyond the nucleus (× d)."""

    rbc_split_depth: float = 0.1
    """Touching red cells are split where the waist between them is this much thinner (× d)."""

    min_rbc_area: float = 0.25
    """Smallest red cell (× red-cell area); smaller pieces are dropped."""

    rbc_threshold_scale: float = 0.6
    """Multiplies the automatic (Otsu, glass | red cells) threshold of total stain for red cells."""

    rbc_marker_distance: float = 0.35
    """Red-cell watershed seeds are distance-transform peaks at least this far apart (× d)."""

    rbc_close: float = 0.1
    """Gaps in a red cell's rim up to about twice this (× d) are closed so its pallor is filled."""

    max_rbc_area: float = 1.8
    """A red-cell piece larger than this (× red-cell area) is a clump, divided by area."""

    platelet_threshold_scale: float = 0.6
    """Platelets are specks above this fraction of the nuclear-stain threshold (paler than nuclei)."""

    max_platelet_area: float = 0.3
    """Largest platelet (× red-cell area)."""

    platelet_peak_scale: float = 0.8
    """A platelet's darkest point reaches at least this fraction of the nuclear-stain threshold."""

    max_platelet_surround: float = 0.95
    """A platelet lies on the glass: at most this fraction of a thin ring around it is red cells."""

    detect_rbc: bool = True
    """Find and split red cells (turn off to segment white cells only, faster)."""

    detect_platelets: bool = True
    """Report small stained specks as platelets."""

    def __post_init__(self) -> None:
        if self.rbc_diameter is not None and not self.rbc_diameter > 0:
            raise LeukViewError(f"rbc_diameter must be positive, got {self.rbc_diameter}")
        if not self.work_rbc_diameter >= 8:
            raise LeukViewError(f"work_rbc_diameter must be at least 8 px, got {self.work_rbc_diameter}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dictionary (settings persistence)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentationParams:
        """Inverse of :meth:`to_dict`; unknown keys (older or newer settings) are ignored."""
        names = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names or value is None:
                if key in names:
                    kwargs[key] = None
                continue
            default = getattr(cls, key, None)
            if isinstance(default, bool):
                kwargs[key] = bool(value)
            elif isinstance(default, int):
                kwargs[key] = int(value)
            else:
                kwargs[key] = float(value)
        return cls(**kwargs)

    @staticmethod
    def describe() -> dict[str, str]:
        """One-line description of every field (for tooltips)."""
        import inspect

        src = inspect.getsource(SegmentationParams)
        out: dict[str, str] = {}
        lines = src.splitlines()
        for i, line in enumerate(lines[:-1]):
            head = line.strip()
            if ":" in head and "=" in head and not head.startswith(("def", "#", '"')):
                name = head.split(":", 1)[0]
                doc = lines[i + 1].strip()
                if doc.startswith('"""'):
                    out[name] = doc.strip('"')
        return out


@dataclass
class Segmentation:
    """What :func:`segment` found in one image.

    Attributes
    ----------
    cells : list of Cell
        Ids 1..n: white cells first, then red cells, then platelets, each in
        reading order; measurements filled.
    rbc_diameter : float
        Red-cell diameter used, in image pixels.
    labels : ndarray of int32, shape (H, W)
        Pixel value = cell id, 0 for background.
    nucleus_mask : ndarray of bool, shape (H, W)
        Nuclei of the white cells.
    scale : float
        Work-image pixels per image pixel (1 when not shrunk).
    """

    cells: list[Cell]
    rbc_diameter: float
    labels: np.ndarray
    nucleus_mask: np.ndarray
    scale: float = 1.0
    params: SegmentationParams = field(default_factory=SegmentationParams)

    def cells_of_kind(self, kind: str) -> list[Cell]:
        return [c for c in self.cells if c.kind == kind]


# ----------------------------------------------------------------------------
# input, scale


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Check and convert the input to RGB uint8, or raise a clear LeukViewError."""
    if not isinstance(image, np.ndarray):
        raise LeukViewError(f"segmentation needs a numpy image array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise LeukViewError(
            f"segmentation needs an RGB image of shape (H, W, 3), got shape {image.shape}; "
            "convert greyscale or RGBA images to RGB first (leukview.core.io does)"
        )
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        hi = 1.0 if float(np.nanmax(image, initial=0.0)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(image) * (255.0 / hi), 0, 255).astype(np.uint8)
    raise LeukViewError(f"segmentation needs an 8- or 16-bit RGB image, got dtype {image.dtype}")


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize by ``scale`` (area averaging when shrinking; halvings by pyrDown are fast)."""
    if abs(scale - 1.0) < 1e-6:
        return img
    h, w = img.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    if scale >= 1:
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    out = img
    while out.shape[1] >= 2 * size[0] * 2 and out.shape[0] >= 2 * size[1] * 2:
        out = cv2.pyrDown(out)
    return cv2.resize(out, size, interpolation=cv2.INTER_AREA)


def _channel_max(f: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the 3 channels (OpenCV: much faster than numpy's reduce)."""
    return cv2.max(cv2.max(f[..., 0], f[..., 1]), f[..., 2])


def _channel_sum(f: np.ndarray) -> np.ndarray:
    """Per-pixel sum over the 3 channels, float32."""
    f = np.ascontiguousarray(f, dtype=np.float32)
    return cv2.transform(f, np.ones((1, 3), np.float32)).reshape(f.shape[:2])


def _disk(radius: float) -> np.ndarray:
    r = max(int(round(radius)), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


# ----------------------------------------------------------------------------
# stain channels


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
    f = rgb.astype(np.float32)
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


# ----------------------------------------------------------------------------
# red-cell diameter


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


def _estimate(rgb: np.ndarray, params: SegmentationParams) -> tuple[float, np.ndarray | None, float]:
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


# ----------------------------------------------------------------------------
# segmentation


def segment(
    image: np.ndarray,
    params: SegmentationParams | None = None,
    *,
    pixel_size_um: float | None = None,
) -> Segmentation:
    """Find and measure the white cells, red cells and platelets of a field.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        RGB field (16-bit and float images are converted).
    params : SegmentationParams, optional
        Defaults when None.
    pixel_size_um : float, optional
        µm per pixel; adds ``*_um2`` measurements when given.

    Returns
    -------
    Segmentation

    Raises
    ------
    LeukViewError
        When the input is not an RGB image.
    """
    params = params or SegmentationParams()
    rgb = _as_rgb(image)
    h, w = rgb.shape[:2]
    d, small, est_scale = _estimate(rgb, params)
    if min(h, w) < 8:
        return Segmentation([], d, np.zeros((h, w), np.int32), np.zeros((h, w), bool), 1.0, params)
    scale = min(1.0, params.work_rbc_diameter / d)
    if small is not None and abs(scale / est_scale - 1.0) < 0.2:
        scale = est_scale  # the estimate's own copy is close enough: no second resize
    else:
        small = _resize(rgb, scale)
    ds = d * scale  # red-cell diameter in work pixels
    rbc_area = np.pi * ds * ds / 4.0
    ch = _channels(small, params, tile=3.0 * ds)
    lit = ~ch.black

    # --- cells (any kind) against the glass; central pallor and small gaps filled
    cells = lit if ch.black.any() else ch.density > ch.cell_threshold
    cells = cv2.morphologyEx(cells.astype(np.uint8), cv2.MORPH_OPEN, _disk(1))
    cells = cv2.morphologyEx(cells, cv2.MORPH_CLOSE, _disk(1)) > 0
    cells = _fill_small_holes(cells, 0.5 * rbc_area)

    # --- nuclear stain: white-cell nuclei (lobes grouped) and platelets
    nuc = (ch.nuclear > ch.nucleus_threshold) & lit
    nuc = cv2.morphologyEx(nuc.astype(np.uint8), cv2.MORPH_OPEN, _disk(max(1.0, 0.03 * ds))) > 0
    nuc = _fill_small_holes(nuc, 0.1 * rbc_area)
    zones, n_wbc, plt_labels, sliver = _nucleus_groups(
        nuc, ds, params, ch.nuclear, ch.nucleus_threshold
    )
    wbc_nuc = np.where(nuc, zones, 0).astype(np.int32)

    # --- one watershed for all cells: white cells grow from their nuclei, red cells
    # from the thick cores of the cell mask; they meet at the waists between them.
    body = cells | (zones > 0)
    dist = _distance(body)
    markers = zones.copy()
    if params.detect_rbc or n_wbc:
        # (Not near a border sliver of nucleus: its cell body may still hold red-cell
        # seeds, else a neighbouring white cell floods through the waist into it.)
        near = cv2.dilate(((zones > 0) & ~sliver[zones]).astype(np.uint8), _disk(0.15 * ds)) > 0
        cores = _h_maxima(dist, max(0.5, params.rbc_split_depth * ds), ds) & (dist >= 0.25 * ds) & ~near
        core_lab, n_core = _label_cores(cores, 0.1 * ds)
        markers = np.where(cores, core_lab + n_wbc, markers).astype(np.int32)
    flood = watershed(-dist, markers, mask=body)

    wbc_labels = np.zeros(nuc.shape, np.int32)
    if n_wbc:
        if ch.black.any():
            reach = body  # a cell cut out on black is the whole lit object
        else:
            disk = _disk(params.max_cytoplasm_width * ds)
            cut = sliver[zones]
            reach = cv2.dilate(((zones > 0) & ~cut).astype(np.uint8), disk) > 0
            if cut.any():
                # Each cell within reach of its own nucleus: a border sliver's reach must
                # not let a neighbour's flood through the waist into the sliver's cell.
                near_cut = cv2.dilate(cut.astype(np.uint8), disk) > 0
                reach = np.where(sliver[np.minimum(flood, n_wbc)] & (flood > 0), near_cut, reach)
        wbc_labels = np.where((flood > 0) & (flood <= n_wbc) & reach, flood, 0).astype(np.int32)
        wbc_labels = _fill_each(wbc_labels, n_wbc)
        wbc_labels, zones, n_wbc = _merge_lobes(wbc_labels, zones, nuc, n_wbc, ds, params, sliver)
        wbc_nuc = np.where(nuc, zones, 0).astype(np.int32)
        if not ch.black.any():
            rbc_pixels = (flood > n_wbc) & cells
            wbc_labels = _trim_cytoplasm(wbc_labels, zones, rbc_pixels, ch, n_wbc, ds, params)
        # A stained speck inside a white cell is a granule or a lobe, not a platelet.
        plt_labels[wbc_labels > 0] = 0

    rbc_labels = np.zeros(nuc.shape, np.int32)
    red = np.zeros(nuc.shape, bool)
    if params.detect_rbc:
        if ch.black.any():
            red = cells & (flood > n_wbc)
        else:
            red = _red_cell_mask(ch, nuc, wbc_labels, ds, params)
        rbc_labels = _split_red_cells(red & (wbc_labels == 0) & (plt_labels == 0), ds, params)
    if params.detect_platelets and not ch.black.any():
        plt_labels = _platelets(ch, nuc, wbc_labels, red, plt_labels, ds, params)

    return _assemble(
        rgb, small, scale, d, params, pixel_size_um, wbc_labels, wbc_nuc, n_wbc, rbc_labels,
        plt_labels, ch,
    )


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
    inradius = label_max(np.where(red, dist, 0.0).astype(np.float32), lab, n - 1, separated=True)[1:] + 0.5
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


def _platelets(
    ch: _Channels,
    nuc: np.ndarray,
    wbc_labels: np.ndarray,
    red: np.ndarray,
    plt_labels: np.ndarray,
    ds: float,
    params: SegmentationParams,
) -> np.ndarray:
    """Platelets: small specks of nuclear stain, paler than nuclei, not in a white cell.

    Platelets are purple-blue like nuclei but smaller and often paler, so the
    nuclear cut misses many. Specks above
    :attr:`SegmentationParams.platelet_threshold_scale` × the nuclear cut (and
    the least nuclear contrast), between :attr:`~SegmentationParams.min_platelet_area`
    and :attr:`~SegmentationParams.max_platelet_area` red-cell areas, away from
    white cells, are platelets; those found by the nuclear cut are kept.

    Returns
    -------
    ndarray of int32, one label per platelet
    """
    rbc_area = np.pi * ds * ds / 4.0
    thr = max(float(params.min_nucleus_contrast), params.platelet_threshold_scale * ch.nucleus_threshold)
    cand = (ch.nuclear > thr) & ~ch.black
    near_wbc = cv2.dilate((wbc_labels > 0).astype(np.uint8), _disk(0.1 * ds)) > 0
    cand &= ~near_wbc
    cand |= plt_labels > 0
    n, lab, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(cand.shape, np.int32)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    keep = (area >= max(2.0, params.min_platelet_area * rbc_area)) & (area <= params.max_platelet_area * rbc_area)
    # A speck that touches a white cell is a piece of it (granule, cytoplasm edge).
    touch = np.zeros(n, bool)
    touch[np.unique(lab[near_wbc & (lab > 0)])] = True
    keep &= ~touch
    # A platelet has a dark centre (granulomere): pale specks are red-cell edges.
    peak = label_max(np.where(lab > 0, ch.nuclear, 0).clip(0).astype(np.float32), lab, n - 1, separated=True)
    keep &= peak >= params.platelet_peak_scale * ch.nucleus_threshold
    # No cell around: a ring around the speck lies mostly on the glass (a blue
    # speck within a red cell is its rim or a stain deposit).
    grown = cv2.dilate(lab.astype(np.float32), _disk(max(1.0, 0.1 * ds))).astype(np.int32)
    ring = (grown > 0) & (lab == 0)
    ring_n = np.bincount(grown[ring], minlength=n)
    ring_red = np.bincount(grown[ring & red], minlength=n)
    keep &= ring_red <= params.max_platelet_surround * np.maximum(ring_n, 1)
    keep[0] = False
    lut = np.zeros(n, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return lut[lab]


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
    pairs = set()
    for other in (hi, lo):
        near = (cells > 0) & (other > 0) & (other <= n) & (other != cells)
        if near.any():
            ab = np.stack([np.minimum(cells[near], other[near]), np.maximum(cells[near], other[near])], 1)
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
            slice(min(objs[i - 1][k].start for i in members), max(objs[i - 1][k].stop for i in members))
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


def root_of(parent: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Union-find roots of an array of labels (0 stays 0)."""
    out = parent[labels]
    while True:
        nxt = parent[out]
        if np.array_equal(nxt, out):
            return out
        out = nxt


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


def _nucleus_groups(
    nuc: np.ndarray,
    ds: float,
    params: SegmentationParams,
    nuclear: np.ndarray | None = None,
    threshold: float = 0.0,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Group nuclear-stain fragments into white-cell nuclei and platelets.

    ``nuclear`` (float, same shape as ``nuc``) and its cut ``threshold`` let a dark
    nucleus cut by the image border count although little of it shows.

    Returns
    -------
    zones : ndarray of int32
        1..n per white cell: its grouped nucleus region (lobes and the gaps
        between them), touching nuclei split by a distance-transform watershed.
    n : int
    platelets : ndarray of int32
        Nonzero on small isolated stained specks (one label per speck).
    sliver : ndarray of bool, shape (n + 1,)
        True for nuclei kept only because the image border cuts them.
    """
    rbc_area = np.pi * ds * ds / 4.0
    zones = np.zeros(nuc.shape, np.int32)
    plt_labels = np.zeros(nuc.shape, np.int32)
    if not nuc.any():
        return zones, 0, plt_labels, np.zeros(1, bool)
    merged = cv2.morphologyEx(
        nuc.astype(np.uint8), cv2.MORPH_CLOSE, _disk(params.lobe_merge_distance * ds / 2.0)
    ) > 0
    merged = _fill_small_holes(merged | nuc, 0.5 * rbc_area)
    group_lab, n_group = ndi.label(merged)
    sizes = np.bincount(group_lab.ravel(), weights=nuc.ravel(), minlength=n_group + 1)
    # Thickness (largest half-width of stained pixels) tells a nucleus from a clump of
    # platelet granules of the same area.
    nuc_dist = _distance(nuc)
    thick = label_max(nuc_dist, group_lab, n_group, separated=True)
    is_wbc = (sizes >= params.min_wbc_nucleus_area * rbc_area) & (
        thick >= params.min_nucleus_thickness * ds
    )
    if nuclear is not None and threshold > 0:
        # A nucleus cut by the image border shows only a sliver: too small and thin for
        # the rules above. A platelet is narrower than a long dark chord along the border.
        chord = np.zeros(n_group + 1)
        for edge in (group_lab[0], group_lab[-1], group_lab[:, 0], group_lab[:, -1]):
            on = edge[edge > 0]
            if on.size:
                chord = np.maximum(chord, np.bincount(on, minlength=n_group + 1))
        cut = (chord >= params.min_border_nucleus_chord * ds) & ~is_wbc
        cut[0] = False
        # Dark, and one solid piece (the granules of a platelet clump are several).
        boxes = ndi.find_objects(group_lab)
        for g in np.flatnonzero(cut):
            sl = boxes[g - 1]
            piece = nuc[sl] & (group_lab[sl] == g)
            cut[g] = (
                nuclear[sl][piece].max() >= params.min_border_nucleus_stain * threshold
                and ndi.label(piece)[1] == 1
            )
        is_wbc |= cut
    else:
        cut = np.zeros(n_group + 1, bool)
    is_wbc[0] = False
    is_plt = (~is_wbc) & (sizes >= params.min_platelet_area * rbc_area)
    is_plt[0] = False
    if params.detect_platelets and is_plt.any():
        plt_labels = np.where(is_plt[group_lab] & nuc, group_lab, 0).astype(np.int32)
    if not is_wbc.any():
        return zones, 0, plt_labels, np.zeros(1, bool)
    wbc_groups = is_wbc[group_lab]
    dist = _distance(wbc_groups)
    # One marker per thick core: regional maxima of the distance that stand out by
    # a fraction of d (two touching nuclei have a waist between them).
    cores = _h_maxima(dist, max(0.5, params.split_depth * ds), ds) & (
        dist >= params.split_min_radius * ds
    )
    markers, n_mk = _label_cores(cores, 0.1 * ds)
    have = np.zeros(n_group + 1, bool)
    have[np.unique(group_lab[cores])] = True
    missing = np.flatnonzero(is_wbc & ~have)
    if missing.size:
        # Groups without a thick core still get one marker at their deepest point.
        pos = ndi.maximum_position(dist, group_lab, missing)
        for k, (py, px) in enumerate(pos):
            markers[py, px] = n_mk + 1 + k
    split = watershed(-dist, markers, mask=wbc_groups)
    # A split stands only if every piece holds a nucleus of its own size: a group
    # with a small piece (a lobe, a bulge) stays one cell.
    n_split = int(split.max())
    piece_area = np.bincount(split[nuc], minlength=n_split + 1)
    piece_group = np.zeros(n_split + 1, np.int64)
    piece_group[split[wbc_groups]] = group_lab[wbc_groups]
    small_piece = piece_area < params.min_split_nucleus_area * rbc_area
    small_piece[0] = False
    bad_group = np.zeros(n_group + 1, bool)
    bad_group[piece_group[small_piece]] = True
    # Lobes of one cell: a group no larger than one big nucleus is never split.
    bad_group |= sizes < params.min_split_group_area * rbc_area
    first_piece = np.zeros(n_group + 1, np.int64)
    order = np.arange(n_split, 0, -1)
    first_piece[piece_group[order]] = order  # lowest piece id per group wins
    lut_merge = np.arange(n_split + 1)
    lut_merge[1:] = np.where(bad_group[piece_group[1:]], first_piece[piece_group[1:]], lut_merge[1:])
    split = lut_merge[split]
    # Relabel compactly, dropping pieces left without nuclear pixels.
    ids = np.unique(split[nuc & wbc_groups])
    ids = ids[ids > 0]
    lut = np.zeros(int(split.max()) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1)
    zones = lut[split]
    sliver = np.zeros(len(ids) + 1, bool)
    sliver[lut[split[cut[group_lab] & (split > 0)]]] = True
    sliver[0] = False
    return zones, len(ids), plt_labels, sliver


def _fill_each(labels: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros_like(labels)
    for i, sl in enumerate(ndi.find_objects(labels, max_label=n), start=1):
        if sl is None:
            continue
        m = labels[sl] == i
        m = fill_holes(m)
        m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, _disk(1)) > 0 if m.sum() > 50 else m
        sub = out[sl]
        sub[m & (sub == 0)] = i
    return out


def _contour(mask: np.ndarray) -> np.ndarray:
    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not cs:
        return np.zeros((0, 2), np.int32)
    c = max(cs, key=cv2.contourArea)
    return c.reshape(-1, 2).astype(np.int32)


def _assemble(
    rgb: np.ndarray,
    small: np.ndarray,
    scale: float,
    d: float,
    params: SegmentationParams,
    pixel_size_um: float | None,
    wbc_labels: np.ndarray,
    wbc_nuc: np.ndarray,
    n_wbc: int,
    rbc_labels: np.ndarray,
    plt_labels: np.ndarray,
    ch: _Channels,
) -> Segmentation:
    """Cells with ids, full-resolution labels and nucleus mask, measurements."""
    h, w = rgb.shape[:2]
    inv = 1.0 / scale
    # Ids: white cells, red cells, platelets, each in reading order.
    work = np.zeros(wbc_labels.shape, np.int32)
    entries: list[tuple[str, np.ndarray, int, tuple[slice, slice]]] = []
    offset = 0
    for kind, lab in (("wbc", wbc_labels), ("rbc", rbc_labels), ("platelet", plt_labels)):
        objs = ndi.find_objects(lab)
        found = [(i, sl) for i, sl in enumerate(objs, start=1) if sl is not None]
        found.sort(key=lambda t: (t[1][0].start + t[1][0].stop, t[1][1].start + t[1][1].stop))
        if not found:
            continue
        lut = np.zeros(len(objs) + 1, np.int32)
        for k, (i, sl) in enumerate(found, start=offset + 1):
            lut[i] = k
            entries.append((kind, lab, i, sl))
        work = np.where(lab > 0, lut[lab], work)
        offset += len(found)
    if scale >= 0.999:
        full = work.copy()
    else:
        full = cv2.resize(work, (w, h), interpolation=cv2.INTER_NEAREST)
    nucleus_full = np.zeros((h, w), bool)
    cells: list[Cell] = []
    sigma = max(params.smoothing, 0.5 * inv) if params.smoothing > 0 else 0.0
    for cid, (kind, lab, i, sl) in enumerate(entries, start=1):
        if kind == "wbc":
            cell = _refine_wbc(rgb, full, nucleus_full, cid, lab, wbc_nuc, i, sl, scale, sigma, ch, pixel_size_um)
        else:
            m = lab[sl] == i
            cell = _make_cell(cid, kind, small[sl], m, None, (sl[1].start, sl[0].start), inv, pixel_size_um)
        if cell is not None:
            cells.append(cell)
    # Drop ids that lost every pixel (a white cell redrawn over them): keep ids 1..n.
    if len(cells) != len(entries):
        lut = np.zeros(len(entries) + 1, np.int32)
        for new_id, cell in enumerate(cells, start=1):
            lut[cell.id] = new_id
            cell.id = new_id
        full = lut[full]
    for cell in cells:
        _clip_to_image(cell, w, h)
    return Segmentation(cells, float(d), full, nucleus_full, float(scale), params)


def _clip_to_image(cell: Cell, width: int, height: int) -> None:
    """Keep geometry found at the work scale inside the image (rounding can push it past the edge)."""
    x0, y0, x1, y1 = cell.bbox
    cell.bbox = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
    limit = np.array([width - 1, height - 1])
    cell.contour = np.clip(cell.contour, 0, limit).astype(np.int32)
    if cell.nucleus_contour is not None:
        cell.nucleus_contour = np.clip(cell.nucleus_contour, 0, limit).astype(np.int32)


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
    f = rgb[y0:y1, x0:x1].astype(np.float32)
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


def _make_cell(
    cid: int,
    kind: str,
    image: np.ndarray,
    mask: np.ndarray,
    nucleus: np.ndarray | None,
    origin: tuple[int, int],
    pixel_scale: float,
    pixel_size_um: float | None,
) -> Cell:
    """A Cell from a crop mask whose top-left is ``origin`` (x, y) in mask pixels."""
    ox, oy = origin
    meas = measure_cell(mask, image, nucleus, pixel_size_um=pixel_size_um, pixel_scale=pixel_scale)
    ys, xs = np.nonzero(mask)
    cy = (ys.mean() + oy + 0.5) * pixel_scale - 0.5
    cx = (xs.mean() + ox + 0.5) * pixel_scale - 0.5
    contour = _contour(mask).astype(np.float64)
    contour = np.round((contour + (ox, oy) + 0.5) * pixel_scale - 0.5).astype(np.int32)
    x0 = int(np.floor((xs.min() + ox) * pixel_scale))
    y0 = int(np.floor((ys.min() + oy) * pixel_scale))
    x1 = int(np.ceil((xs.max() + ox + 1) * pixel_scale))
    y1 = int(np.ceil((ys.max() + oy + 1) * pixel_scale))
    nuc_contour = None
    if nucleus is not None and nucleus.any():
        nc = _contour(nucleus).astype(np.float64)
        nuc_contour = np.round((nc + (ox, oy) + 0.5) * pixel_scale - 0.5).astype(np.int32)
    return Cell(
        id=cid,
        kind=kind,
        contour=contour,
        bbox=(x0, y0, x1, y1),
        centroid=(float(cx), float(cy)),
        nucleus_contour=nuc_contour,
        measurements=meas,
    )
