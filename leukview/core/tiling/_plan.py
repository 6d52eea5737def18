"""What is decided once per slide before any tile runs: the overview, the scale, the grid, the plan."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from ..calibration import Calibration
from ..calls import DEFAULT_CONFIDENCE_THRESHOLD
from ..errors import LeukViewError
from ._grid import TileGrid
from ._locate import LOCATE_RBC_PX, local_background, stain_maps

__all__ = ["LOCATE_MODES", "PLAN_VERSION", "Overview", "SlidePlan", "TilingParams", "plan_slide", "slide_overview"]

PLAN_VERSION = 1
LOCATE_MODES = ("lowres", "full")
#: Side (level-0 px, at most) of each region the red-cell diameter is estimated on.
_SAMPLE_SIDE = 1024
_SAMPLES = 5
#: Total optical density over which an overview pixel is smear, not glass.
_EXTENT_DENSITY = 0.06
#: Blocks of the density map are about this many red-cell diameters a side.
_BLOCK_RBC = 8.0


@dataclass(frozen=True)
class TilingParams:
    """How a slide is cut into tiles and analysed.

    Attributes
    ----------
    tile_size : int
        Side of a tile's core in level-0 pixels.
    margin : int or None
        How far a tile's read reaches beyond its core (level-0 pixels); None:
        one white-cell diameter, ``max_wbc_diameter`` x the red-cell diameter.
        It is never made smaller than that.
    locate : {'lowres', 'full'}
        ``lowres``: white cells are located at low resolution and each is
        segmented and classified in a window at full resolution (red cells and
        platelets on the sampled tiles only). ``full``: every tile is segmented
        at full resolution.
    rbc_every : int
        Red cells and platelets are counted on one tile in ``rbc_every`` (1: all).
    window_pad : float
        A white cell's window reaches this many red-cell diameters beyond its stain.
    zone : float
        A cell found in a window belongs to the nearest candidate within this
        many red-cell diameters, and is kept only when that candidate's group is
        the tile's (candidates less than two zones apart are one group).
    """

    tile_size: int = 2048
    margin: int | None = None
    locate: str = "lowres"
    rbc_every: int = 4
    window_pad: float = 1.0
    zone: float = 0.5

    def __post_init__(self) -> None:
        if self.tile_size < 256:
            raise LeukViewError(f"tile size must be at least 256 px, got {self.tile_size}")
        if self.locate not in LOCATE_MODES:
            raise LeukViewError(f"locate must be one of {LOCATE_MODES}, got {self.locate!r}")
        if self.rbc_every < 1:
            raise LeukViewError(f"rbc_every must be at least 1, got {self.rbc_every}")
        if self.margin is not None and self.margin < 0:
            raise LeukViewError(f"margin must be >= 0, got {self.margin}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TilingParams:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Overview:
    """The whole slide at a glance: a thumbnail and where the smear is.

    Attributes
    ----------
    image : ndarray of uint8, shape (h, w, 3)
        The thumbnail.
    downsample : float
        Level-0 pixels per thumbnail pixel.
    extent : ndarray of bool, shape (h, w)
        Smear (stained), not bare glass.
    background : ndarray of float, shape (3,)
        The glass colour.
    """

    image: np.ndarray
    downsample: float
    extent: np.ndarray
    background: np.ndarray

    def extent_fraction(self) -> float:
        return float(self.extent.mean()) if self.extent.size else 0.0

    def covers(self, x0: int, y0: int, x1: int, y1: int) -> bool:
        """Whether any smear lies in a level-0 rectangle."""
        s = self.downsample
        h, w = self.extent.shape
        a, b = max(int(x0 / s), 0), min(int(math.ceil(x1 / s)), w)
        c, d = max(int(y0 / s), 0), min(int(math.ceil(y1 / s)), h)
        return b > a and d > c and bool(self.extent[c:d, a:b].any())


def slide_overview(slide: Any, max_side: int = 1024) -> Overview:
    """:class:`Overview` of a slide: its thumbnail, the glass colour and the smear's extent."""
    image, downsample = slide.thumbnail(max_side)
    flat = image.reshape(-1, 3).astype(np.float32)
    bright = flat.sum(axis=1)
    glass = flat[bright >= np.percentile(bright, 95)]
    background = np.median(glass, axis=0) if len(glass) else np.full(3, 255.0, np.float32)
    density, _ = stain_maps(image, background)
    stained = (density > _EXTENT_DENSITY).astype(np.uint8)
    # a smear is one region: drop specks of dust, close the gaps between cells
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    closed = cv2.morphologyEx(stained, cv2.MORPH_CLOSE, k)
    opened = cv2.morphologyEx(closed, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    extent = np.asarray(cv2.dilate(opened, k), np.uint8) > 0  # a tile at the very edge is still read
    return Overview(image, float(downsample), extent, np.asarray(background, np.float64))


@dataclass(frozen=True)
class SlidePlan:
    """Everything a worker needs to analyse any tile of a slide, fixed before the first one.

    Being JSON (``to_dict``), the plan travels to Dask workers and is kept in
    the run's manifest; :meth:`key` says whether a saved run can be resumed.

    Attributes
    ----------
    path : str
        The slide, as the workers open it (a path they share).
    image : str
        The slide's name as given (cells.json's ``image``).
    fingerprint : str
        :func:`~leukview.core.session.image_fingerprint` of the file.
    grid : TileGrid
    tiles : tuple of int
        The tiles analysed: those that hold smear.
    sampled : tuple of int
        Of those, the ones whose red cells and platelets are counted.
    rbc_diameter : float
        Red-cell diameter in level-0 pixels (median of a few regions), fixed
        for every tile so all tiles segment at one scale.
    locate_level : int
        The slide level white cells are located at.
    locate_scale : float
        Level-0 pixels per pixel of the located image.
    background : tuple of float
        The glass colour.
    nucleus_threshold, cell_threshold, overlap_threshold : float
        Nuclear stain of a nucleus, density of a cell, density of two overlapping cells.
    block : int
        Side (level-0 px) of a block of the density map (a divisor of the tile size).
    segmentation : dict
        :meth:`SegmentationParams.to_dict`, ``rbc_diameter`` set.
    tiling : TilingParams
    calibration : dict
        :meth:`Calibration.to_dict`.
    confidence_threshold : float
    models : tuple of str
        Names of the models run, in order.
    models_dir : str or None
        Where the workers load them from (None: the installed ``models/``).
    """

    path: str
    image: str
    fingerprint: str
    grid: TileGrid
    tiles: tuple[int, ...]
    sampled: tuple[int, ...]
    rbc_diameter: float
    locate_level: int
    locate_scale: float
    background: tuple[float, float, float]
    nucleus_threshold: float
    cell_threshold: float
    overlap_threshold: float
    block: int
    segmentation: dict[str, Any]
    tiling: TilingParams = field(default_factory=TilingParams)
    calibration: dict[str, Any] = field(default_factory=dict)
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    models: tuple[str, ...] = ()
    models_dir: str | None = None
    version: int = PLAN_VERSION

    @property
    def width(self) -> int:
        return self.grid.width

    @property
    def height(self) -> int:
        return self.grid.height

    def params(self) -> Any:
        """The :class:`~leukview.core.segment.SegmentationParams` of every tile."""
        from ..segment import SegmentationParams

        return SegmentationParams.from_dict(self.segmentation)

    def get_calibration(self) -> Calibration:
        return Calibration.from_dict(self.calibration)

    def is_sampled(self, index: int) -> bool:
        return index in set(self.sampled)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": self.path,
            "image": self.image,
            "fingerprint": self.fingerprint,
            "grid": self.grid.to_dict(),
            "tiles": list(self.tiles),
            "sampled": list(self.sampled),
            "rbc_diameter": self.rbc_diameter,
            "locate_level": self.locate_level,
            "locate_scale": self.locate_scale,
            "background": list(self.background),
            "nucleus_threshold": self.nucleus_threshold,
            "cell_threshold": self.cell_threshold,
            "overlap_threshold": self.overlap_threshold,
            "block": self.block,
            "segmentation": dict(self.segmentation),
            "tiling": self.tiling.to_dict(),
            "calibration": dict(self.calibration),
            "confidence_threshold": self.confidence_threshold,
            "models": list(self.models),
            "models_dir": self.models_dir,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlidePlan:
        if data.get("version") != PLAN_VERSION:
            raise LeukViewError(f"tile plan version {data.get('version')!r} is not {PLAN_VERSION}")
        g = data["grid"]
        return cls(
            path=str(data["path"]),
            image=str(data["image"]),
            fingerprint=str(data["fingerprint"]),
            grid=TileGrid(int(g["width"]), int(g["height"]), int(g["tile_size"]), int(g["margin"])),
            tiles=tuple(int(i) for i in data["tiles"]),
            sampled=tuple(int(i) for i in data["sampled"]),
            rbc_diameter=float(data["rbc_diameter"]),
            locate_level=int(data["locate_level"]),
            locate_scale=float(data["locate_scale"]),
            background=tuple(float(v) for v in data["background"]),  # type: ignore[arg-type]
            nucleus_threshold=float(data["nucleus_threshold"]),
            cell_threshold=float(data["cell_threshold"]),
            overlap_threshold=float(data["overlap_threshold"]),
            block=int(data["block"]),
            segmentation=dict(data["segmentation"]),
            tiling=TilingParams.from_dict(data["tiling"]),
            calibration=dict(data.get("calibration") or {}),
            confidence_threshold=float(data["confidence_threshold"]),
            models=tuple(str(m) for m in data.get("models", ())),
            models_dir=data.get("models_dir"),
        )

    def key(self) -> str:
        """A digest of everything that decides the results: equal keys, interchangeable tiles."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _sample_regions(grid: TileGrid, tiles: Sequence[int], side: int) -> list[tuple[int, int, int, int]]:
    """Up to :data:`_SAMPLES` squares at the centres of tiles spread over the smear."""
    if not tiles:
        return []
    picks = sorted({tiles[round(i * (len(tiles) - 1) / max(_SAMPLES - 1, 1))] for i in range(_SAMPLES)})
    out = []
    for index in picks:
        t = grid.tile(index)
        w, h = min(side, t.x1 - t.x0), min(side, t.y1 - t.y0)
        cx, cy = (t.x0 + t.x1) // 2, (t.y0 + t.y1) // 2
        out.append((cx - w // 2, cy - h // 2, w, h))
    return out


def _read_scaled(slide: Any, x: int, y: int, w: int, h: int, scale: float, level: int) -> np.ndarray:
    """A level-0 rectangle read at ``level`` and shrunk to ``scale`` level-0 pixels per pixel."""
    ds = slide.downsamples[level]
    lx, ly = int(math.floor(x / ds)), int(math.floor(y / ds))
    lw = max(1, int(math.ceil((x + w) / ds)) - lx)
    lh = max(1, int(math.ceil((y + h) / ds)) - ly)
    region = slide.read_region(lx, ly, lw, lh, level)
    out_w, out_h = max(1, int(round(w / scale))), max(1, int(round(h / scale)))
    if (lw, lh) != (out_w, out_h):
        region = cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA)
    return region


def plan_slide(
    slide: Any,
    *,
    image: str | None = None,
    params: Any | None = None,
    tiling: TilingParams | None = None,
    calibration: Calibration | None = None,
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
    models: Sequence[str] = (),
    models_dir: str | None = None,
    overview: Overview | None = None,
) -> tuple[SlidePlan, Overview]:
    """Decide how a slide is analysed: its overview, red-cell scale, tiles and thresholds.

    Parameters
    ----------
    slide : Slide
        An open slide (:func:`~leukview.core.io.open_slide`).
    image : str, optional
        The name cells.json gives the slide (its path by default).
    params : SegmentationParams, optional
        Its ``rbc_diameter``, when set, is used as is.
    tiling : TilingParams, optional
    calibration : Calibration, optional
        The slide's (from its metadata when None).
    confidence_threshold : float
    models : sequence of str
        The names of the models that will run, in order.
    models_dir : str, optional
        Where workers load them from.
    overview : Overview, optional
        Already made (:func:`slide_overview`).

    Returns
    -------
    plan : SlidePlan
    overview : Overview
    """
    from ..segment import SegmentationParams, estimate_rbc_diameter
    from ..session import image_fingerprint

    params = params or SegmentationParams()
    tiling = tiling or TilingParams()
    calibration = calibration or Calibration.from_file(slide.pixel_size_um)
    overview = overview or slide_overview(slide)
    # The margin must hold a white cell, whose size follows from the red cells': a first grid at
    # no margin picks the sample regions, the real one follows.
    probe = TileGrid(slide.width, slide.height, tiling.tile_size, 0)
    smear = [t.index for t in probe.tiles() if overview.covers(*t.core)]
    regions = _sample_regions(probe, smear or list(range(len(probe))), _SAMPLE_SIDE)
    if params.rbc_diameter:
        d = float(params.rbc_diameter)
    else:
        estimates = [estimate_rbc_diameter(slide.read_region(*r)) for r in regions]
        d = float(np.median(estimates)) if estimates else 8.0
    d = max(d, 4.0)
    need = int(math.ceil(params.max_wbc_diameter * d))
    margin = max(need, tiling.margin or 0)
    grid = TileGrid(slide.width, slide.height, tiling.tile_size, margin)
    tiles = tuple(t.index for t in grid.tiles() if overview.covers(*t.core))
    sampled = tuple(index for k, index in enumerate(tiles) if k % tiling.rbc_every == 0)

    want = max(1.0, d / LOCATE_RBC_PX)
    level = slide.best_level(want)
    # a whole shrink factor of that level, so every tile's low-resolution pixels are the same pixels
    scale = slide.downsamples[level] * max(1, int(round(want / slide.downsamples[level])))
    lows = [_read_scaled(slide, *r, scale, level) for r in regions]
    background = np.asarray(overview.background, np.float64)
    nuclear_values, density_values = [], []
    for low in lows:
        bg = local_background(low, background)
        density, nuclear = stain_maps(low, bg)
        density_values.append(density.ravel())
        nuclear_values.append(nuclear.ravel())
    nucleus_threshold, cell_threshold, overlap_threshold = _thresholds(
        np.concatenate(density_values) if density_values else np.zeros(0, np.float32),
        np.concatenate(nuclear_values) if nuclear_values else np.zeros(0, np.float32),
        params,
    )
    n_blocks = max(1, int(round(tiling.tile_size / (_BLOCK_RBC * d))))
    block = max(1, tiling.tile_size // n_blocks)
    while tiling.tile_size % block:
        block -= 1  # blocks tile the cores exactly
    plan = SlidePlan(
        path=str(slide.path.resolve()),
        image=image if image is not None else str(slide.path),
        fingerprint=image_fingerprint(slide.path),
        grid=grid,
        tiles=tiles,
        sampled=sampled,
        rbc_diameter=round(d, 3),
        locate_level=level,
        locate_scale=round(scale, 6),
        background=tuple(round(float(v), 3) for v in background),  # type: ignore[arg-type]
        nucleus_threshold=round(nucleus_threshold, 4),
        cell_threshold=round(cell_threshold, 4),
        overlap_threshold=round(overlap_threshold, 4),
        block=block,
        segmentation={**params.to_dict(), "rbc_diameter": round(d, 3)},
        tiling=tiling,
        calibration=calibration.to_dict(),
        confidence_threshold=float(confidence_threshold),
        models=tuple(models),
        models_dir=models_dir,
    )
    return plan, overview


def _thresholds(density: np.ndarray, nuclear: np.ndarray, params: Any) -> tuple[float, float, float]:
    """Nucleus, cell and overlap thresholds from sample pixels at the locate level."""
    from skimage.filters import threshold_multiotsu, threshold_otsu

    cell = float(params.min_cell_density)
    if density.size > 64 and float(np.ptp(density)) > 1e-3:
        cell = max(cell, float(threshold_otsu(density[:: max(1, density.size // 50_000)])))
    cells = density > cell
    nucleus = float(params.min_nucleus_contrast)
    values = nuclear[cells]
    if values.size > 64 and float(np.ptp(values)) > 1e-3:
        try:
            upper = float(threshold_multiotsu(values[:: max(1, values.size // 50_000)], classes=3, nbins=128)[1])
        except ValueError:
            upper = float(threshold_otsu(values))
        nucleus = max(nucleus, params.nucleus_threshold_scale * upper)
    median = float(np.median(density[cells])) if cells.any() else 2.0 * cell
    overlap = max(1.8 * median, 1.5 * cell)
    return nucleus, cell, overlap
