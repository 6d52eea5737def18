"""Corrections of the segmentation, without Qt: add a missed cell, split a merged one, redraw an outline.

Pure functions of the image's pixels and the reviewer's geometry, in image
pixels. Every cell they make is drawn, measured and described exactly as the
pipeline's (:func:`leukview.core.segment.segment`): its record from its mask
(the pipeline's ``_make_cell``, so :func:`~leukview.core.measure.measure_cell`),
its nucleus by the pipeline's full-resolution nuclear-stain rule (blue minus
green over the glass's, above the field's nucleus threshold, holes filled),
and sizes as multiples of the red-cell diameter. :func:`classify_cells` runs
the models of the analysis on the new cells (with their class-activation maps).

The undoable, audited commands that use them are the review document's
(:meth:`leukview.core.document.ReviewDocument.add_cell`, ``delete_cells``,
``split_cell``, ``redraw_cell``).

Public API
----------
EditContext
    The image's pixels (a region reader), its red-cell diameter and stain
    levels, the segmentation parameters and the loaded classifiers.
StainLevels
    The field's background colour and its cell and nucleus thresholds.
EditError
    An edit that cannot be made (the message says what to do instead).
cell_from_outline, cell_from_click, split_cell, redraw_cell
    New cells from a drawn outline, a click, a line or seeds, a new outline.
classify_cells, absorbed_cells, cell_at, cell_to_split, cells_crossed, cell_mask
    Re-classification, the red cells and platelets a new cell covers, hit
    tests, a cell's mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from .cells import Cell
from .errors import LeukViewError
from .measure import fill_holes
from .preprocess import crop_box
from .segment import SegmentationParams, estimate_rbc_diameter
from .segment._image import _as_rgb, _resize
from .segment._morphology import _disk, _distance, _fill_small_holes, _h_maxima, _label_cores
from .segment._records import _clip_to_image, _make_cell
from .segment._stain import _background, _channels

if TYPE_CHECKING:
    from .models import Classifier
    from .runs import ModelRun

__all__ = [
    "EditContext",
    "EditError",
    "RegionReader",
    "StainLevels",
    "absorbed_cells",
    "cell_at",
    "cell_from_click",
    "cell_from_outline",
    "cell_mask",
    "cell_to_split",
    "cells_crossed",
    "classify_cells",
    "redraw_cell",
    "split_cell",
]

RegionReader = Callable[[int, int, int, int], np.ndarray]
"""``read(x, y, w, h)``: the RGB uint8 pixels (h, w, 3) of a rectangle inside the image."""

Points = Sequence[Sequence[float]] | np.ndarray
"""(x, y) points in image pixels, shape (N, 2)."""


#: Weight of the distance to the seed against the distance transform in a split by seeds.
SEED_COMPACTNESS = 0.1


class EditError(LeukViewError):
    """A correction that cannot be made as asked; nothing was changed."""


@dataclass(frozen=True)
class StainLevels:
    """The field's glass colour and stain cuts, as the pipeline found them.

    Attributes
    ----------
    background : (r, g, b)
        The glass's colour (median of the per-tile background).
    cell_threshold : float
        Total optical density above which a pixel is a cell.
    nucleus_threshold : float
        Blue minus green above the glass's (0-255) from which a pixel is nuclear stain.
    nuclear_offset : float
        The glass's own blue minus green.
    black : bool
        Cells cut out on black (C-NMC): every lit pixel is a cell.
    """

    background: tuple[float, float, float]
    cell_threshold: float
    nucleus_threshold: float
    nuclear_offset: float
    black: bool = False

    @classmethod
    def measure(cls, image: np.ndarray, rbc_diameter: float, params: SegmentationParams | None = None) -> StainLevels:
        """The levels of a field, computed as :func:`~leukview.core.segment.segment` computes them.

        Parameters
        ----------
        image : ndarray of uint8, shape (H, W, 3)
            The analysed field.
        rbc_diameter : float
            Red-cell diameter in image pixels.
        params : SegmentationParams, optional
        """
        params = params or SegmentationParams()
        rgb = _as_rgb(image)
        scale = min(1.0, params.work_rbc_diameter / max(rbc_diameter, 1.0))
        small = _resize(rgb, scale)
        ds = rbc_diameter * scale
        ch = _channels(small, params, tile=3.0 * ds)
        black = bool(ch.black.any())
        if black:
            background = (255.0, 255.0, 255.0)
        else:
            f: np.ndarray = small.astype(np.float32)
            if params.smoothing > 0:
                f = cv2.GaussianBlur(f, (0, 0), params.smoothing)
            bg = _background(f, 3.0 * ds).reshape(-1, 3)
            background = tuple(float(v) for v in np.median(bg, axis=0))  # type: ignore[assignment]
        return cls(background, float(ch.cell_threshold), float(ch.nucleus_threshold), float(ch.nuclear_offset), black)


@dataclass
class EditContext:
    """What an edit needs of the image: its pixels, scale, stain levels and models.

    Attributes
    ----------
    read : callable(x, y, w, h) -> ndarray
        The image's pixels (a whole array, or a large image's tiles).
    width, height : int
        The image's size.
    rbc_diameter : float
        Red-cell diameter in image pixels (every size of an edit is a multiple of it).
    levels : StainLevels
    params : SegmentationParams
        Those the analysis used.
    classifiers : sequence of Classifier
        Loaded models; a model of the analysis re-classifies new cells when
        one of the same name and version is here.
    """

    read: RegionReader
    width: int
    height: int
    rbc_diameter: float
    levels: StainLevels
    params: SegmentationParams = field(default_factory=SegmentationParams)
    classifiers: Sequence[Classifier] = ()

    @classmethod
    def from_image(
        cls,
        image: np.ndarray,
        *,
        rbc_diameter: float | None = None,
        params: SegmentationParams | None = None,
        classifiers: Sequence[Classifier] = (),
        field: tuple[int, int, int, int] | None = None,
    ) -> EditContext:
        """The context of an image held in memory.

        Parameters
        ----------
        image : ndarray of uint8, shape (H, W, 3)
        rbc_diameter : float, optional
            The analysis's (``Analysis.rbc_diameter_px``); estimated from the field when None.
        params : SegmentationParams, optional
        classifiers : sequence of Classifier
        field : (x, y, w, h), optional
            The analysed field, whose stain levels are taken (the whole image when None).
        """
        rgb = _as_rgb(image)
        height, width = rgb.shape[:2]

        def read(x: int, y: int, w: int, h: int) -> np.ndarray:
            return rgb[y : y + h, x : x + w]

        return cls.from_reader(
            read, (width, height), rbc_diameter=rbc_diameter, params=params, classifiers=classifiers, field=field
        )

    @classmethod
    def from_reader(
        cls,
        read: RegionReader,
        size: tuple[int, int],
        *,
        rbc_diameter: float | None = None,
        params: SegmentationParams | None = None,
        classifiers: Sequence[Classifier] = (),
        field: tuple[int, int, int, int] | None = None,
    ) -> EditContext:
        """The context of an image read by regions (a large image's tiles); see :meth:`from_image`.

        ``size`` is (width, height); the stain levels are measured on ``field``
        (the whole image when None), read once.
        """
        params = params or SegmentationParams()
        width, height = int(size[0]), int(size[1])
        x, y, w, h = field if field is not None else (0, 0, width, height)
        sample = _as_rgb(np.ascontiguousarray(read(int(x), int(y), int(w), int(h))))
        if not rbc_diameter or rbc_diameter <= 0:
            rbc_diameter = params.rbc_diameter or estimate_rbc_diameter(sample, params)
        levels = StainLevels.measure(sample, float(rbc_diameter), params)
        return cls(read, width, height, float(rbc_diameter), levels, params, tuple(classifiers))

    # -- sizes --------------------------------------------------------------

    @property
    def rbc_area(self) -> float:
        return float(np.pi * self.rbc_diameter**2 / 4.0)

    @property
    def smoothing(self) -> float:
        """The Gaussian sigma of the pipeline's full-resolution redraw (image pixels)."""
        if self.params.smoothing <= 0:
            return 0.0
        scale = min(1.0, self.params.work_rbc_diameter / self.rbc_diameter)
        return max(self.params.smoothing, 0.5 / scale)

    # -- pixels -------------------------------------------------------------

    def window(self, x0: float, y0: float, x1: float, y1: float) -> tuple[np.ndarray, int, int]:
        """The pixels of a box (clipped to the image) and its top-left corner.

        Raises
        ------
        EditError
            When the box lies outside the image.
        """
        ix0, iy0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        ix1, iy1 = min(int(np.ceil(x1)), self.width), min(int(np.ceil(y1)), self.height)
        if ix1 - ix0 < 2 or iy1 - iy0 < 2:
            raise EditError("that is outside the image")
        pixels = _as_rgb(np.ascontiguousarray(self.read(ix0, iy0, ix1 - ix0, iy1 - iy0)))
        return pixels, ix0, iy0

    def _smoothed(self, pixels: np.ndarray) -> np.ndarray:
        f: np.ndarray = pixels.astype(np.float32)
        sigma = self.smoothing
        return cv2.GaussianBlur(f, (0, 0), sigma) if sigma > 0 else f

    def _lit(self, f: np.ndarray) -> np.ndarray:
        if not self.levels.black:
            return np.ones(f.shape[:2], bool)
        return f.max(axis=2) >= self.params.black_background_level

    def nucleus(self, pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The pipeline's nucleus of a cell: nuclear stain above the field's cut, in ``mask``, holes filled.

        Parameters
        ----------
        pixels : ndarray of uint8, shape (h, w, 3)
        mask : ndarray of bool, shape (h, w)

        Returns
        -------
        ndarray of bool, shape (h, w)
        """
        f = self._smoothed(pixels)
        nm = ((f[..., 2] - f[..., 1]) - self.levels.nuclear_offset > self.levels.nucleus_threshold) & mask
        nm &= self._lit(f)
        radius = 0.03 * self.rbc_diameter
        if radius >= 1.0:
            nm = cv2.morphologyEx(nm.astype(np.uint8), cv2.MORPH_OPEN, _disk(radius)) > 0
        return fill_holes(nm) & mask

    def stain_masks(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cells (total stain over the glass) and nuclear stain of a window, at full resolution.

        Returns
        -------
        cells, nuclear : ndarray of bool, shape (h, w)
        """
        f = self._smoothed(pixels)
        lit = self._lit(f)
        bg = np.asarray(self.levels.background, np.float32)
        density = np.log(np.maximum(bg, 1.0) / np.maximum(f, 1.0)).sum(axis=2)
        cells = lit if self.levels.black else (density > self.levels.cell_threshold) & lit
        cells = cv2.morphologyEx(cells.astype(np.uint8), cv2.MORPH_OPEN, _disk(1))
        cells = cv2.morphologyEx(cells, cv2.MORPH_CLOSE, _disk(1)) > 0
        cells = _fill_small_holes(cells, 0.5 * self.rbc_area)
        nuc = ((f[..., 2] - f[..., 1]) - self.levels.nuclear_offset > self.levels.nucleus_threshold) & lit
        nuc = cv2.morphologyEx(nuc.astype(np.uint8), cv2.MORPH_OPEN, _disk(max(1.0, 0.03 * self.rbc_diameter))) > 0
        nuc = _fill_small_holes(nuc, 0.1 * self.rbc_area)
        return cells, nuc

    def classifier(self, run: ModelRun) -> Classifier | None:
        """The loaded classifier of a model run (same name and version), or None."""
        for classifier in self.classifiers:
            if classifier.spec.name == run.name and str(classifier.spec.version) == str(run.version):
                return classifier
        return None


# ---------------------------------------------------------------- masks and hit tests


def cell_mask(cell: Cell, origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """A cell's region (its contour filled) in a box of ``shape`` (h, w) whose top-left is ``origin`` (x, y)."""
    mask = np.zeros(shape, np.uint8)
    contour = np.asarray(cell.contour, np.int64).reshape(-1, 2)
    if len(contour) >= 3:
        shifted = (contour - np.asarray(origin, np.int64)).astype(np.int32)
        cv2.fillPoly(mask, [shifted.reshape(-1, 1, 2)], 1)
    elif len(contour):
        x0, y0, x1, y1 = cell.bbox
        ox, oy = origin
        mask[max(y0 - oy, 0) : max(y1 - oy, 0), max(x0 - ox, 0) : max(x1 - ox, 0)] = 1
    return mask > 0


def _inside(cell: Cell, x: float, y: float) -> bool:
    x0, y0, x1, y1 = cell.bbox
    if not (x0 <= x < x1 and y0 <= y < y1) or len(cell.contour) < 3:
        return False
    contour = np.asarray(cell.contour, np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0


def cell_at(cells: Iterable[Cell], point: Sequence[float], kinds: Sequence[str] | None = None) -> Cell | None:
    """The cell under a point (white cells before red cells and platelets), or None."""
    x, y = float(point[0]), float(point[1])
    found = [c for c in cells if (kinds is None or c.kind in kinds) and _inside(c, x, y)]
    found.sort(key=lambda c: (c.kind != "wbc", c.measurements.get("area", 0.0)))
    return found[0] if found else None


def cells_crossed(cells: Iterable[Cell], points: Points) -> list[Cell]:
    """The cells a drawn line passes through, the most crossed first (white cells first on a tie).

    The line is sampled every pixel; a cell counts when a sample lies inside it.
    """
    line = _as_points(points)
    if len(line) == 0:
        return []
    samples = [line[0]]
    for a, b in zip(line[:-1], line[1:], strict=True):
        n = max(int(np.ceil(np.hypot(*(b - a)))), 1)
        samples.extend(a + (b - a) * (k / n) for k in range(1, n + 1))
    hits: list[tuple[int, Cell]] = []
    for cell in cells:
        count = sum(_inside(cell, x, y) for x, y in samples)
        if count:
            hits.append((count, cell))
    hits.sort(key=lambda t: (-t[0], t[1].kind != "wbc"))
    return [cell for _, cell in hits]


def cell_to_split(cells: Iterable[Cell], line: Points) -> Cell | None:
    """The cell a line drawn across it means: the one under the line's middle, else the most crossed."""
    path = _as_points(line)
    cells = list(cells)
    if len(path) == 0:
        return None
    steps = np.hypot(*np.diff(path, axis=0).T) if len(path) > 1 else np.zeros(0)
    middle = path[0]
    if steps.sum() > 0:
        half = steps.sum() / 2.0
        k = int(np.searchsorted(np.cumsum(steps), half))
        before = float(np.cumsum(steps)[k - 1]) if k else 0.0
        middle = path[k] + (path[k + 1] - path[k]) * ((half - before) / max(float(steps[k]), 1e-9))
    under = cell_at(cells, middle)
    if under is not None:
        return under
    crossed = cells_crossed(cells, path)
    return crossed[0] if crossed else None


def absorbed_cells(new: Sequence[Cell], cells: Iterable[Cell]) -> list[Cell]:
    """The red cells and platelets whose centre lies inside one of the new cells.

    A white cell the pipeline missed was often cut into red cells or left with
    specks called platelets, and an outline drawn round two red cells is one
    cell: a reviewer who outlines a cell replaces what it covers. White cells
    are never covered (a new cell leaves their pixels to them).
    """
    new = list(new)
    return [c for c in cells if c.kind != "wbc" and all(c is not n for n in new) and any(_inside(n, *c.centroid) for n in new)]


# ---------------------------------------------------------------- new cells


def cell_from_outline(
    context: EditContext,
    outline: Points,
    cell_id: int,
    *,
    others: Iterable[Cell] = (),
    kind: str | None = None,
) -> Cell:
    """A cell whose outline the reviewer drew.

    Parameters
    ----------
    context : EditContext
    outline : (N, 2) points
        The outline in image pixels (closed implicitly), at least 3 points.
    cell_id : int
        The new cell's id.
    others : iterable of Cell
        The image's other cells: pixels of other white cells are left to them.
    kind : {'wbc', 'rbc', 'platelet'}, optional
        None: a white cell when nuclear stain of a white cell's nucleus is
        inside, else a platelet when platelet-sized, else a red cell.

    Returns
    -------
    Cell
        Measured, with its nucleus (white cells); no predictions yet.

    Raises
    ------
    EditError
        Fewer than three points, or an outline enclosing almost nothing.
    """
    polygon = _as_points(outline)
    if len(polygon) < 3:
        raise EditError("an outline needs at least three points")
    pixels, ox, oy, mask = _polygon_window(context, polygon)
    mask &= ~_white_cells_mask(others, (ox, oy), mask.shape)
    return _cell_from_mask(context, pixels, _largest(mask), (ox, oy), cell_id, kind)


def redraw_cell(
    context: EditContext, cell: Cell, outline: Points, cell_id: int, *, others: Iterable[Cell] = ()
) -> Cell:
    """The cell with a new outline, as a new cell of the same kind (new id, measured again).

    ``others`` are the image's other cells (pixels of other white cells stay theirs).
    EditError when the outline encloses almost nothing.
    """
    others = [c for c in others if c is not cell and c.id != cell.id]
    return cell_from_outline(context, outline, cell_id, others=others, kind=cell.kind)


def cell_from_click(
    context: EditContext,
    point: Sequence[float],
    cell_id: int,
    *,
    others: Iterable[Cell] = (),
    kind: str | None = None,
) -> Cell:
    """A missed cell found around a click, by the pipeline's rules in a window about it.

    When nuclear stain lies at (or just beside) the click, the nucleus's lobes
    are grouped and its cell is grown from it by a watershed on the distance
    transform of the stained pixels, with the other nuclei and the red cells'
    thick cores as rival seeds, no farther than the cytoplasm's reach (a white
    cell). Otherwise the stained object under the click is split at its
    waists and the piece clicked is the cell (a red cell, or a platelet when
    small).

    Parameters
    ----------
    context : EditContext
    point : (x, y)
        The click, in image pixels.
    cell_id : int
    others : iterable of Cell
        The image's other cells; pixels of white cells are left to them.
    kind : str, optional
        Force the kind (else found as described).

    Raises
    ------
    EditError
        The click is inside a white cell already, on glass, or on a clump too
        big for one cell.
    """
    others = list(others)
    x, y = float(point[0]), float(point[1])
    if not (0 <= x < context.width and 0 <= y < context.height):
        raise EditError("the click is outside the image")
    taken = cell_at(others, (x, y), kinds=("wbc",))
    if taken is not None:
        raise EditError(f"cell {taken.id} is already there (split or redraw it instead)")
    params, d = context.params, context.rbc_diameter
    reach = (0.5 * params.max_wbc_diameter + params.max_cytoplasm_width + 0.5) * d
    pixels, ox, oy = context.window(x - reach, y - reach, x + reach + 1, y + reach + 1)
    px, py = int(np.floor(x)) - ox, int(np.floor(y)) - oy
    occupied = _white_cells_mask(others, (ox, oy), pixels.shape[:2])
    cells, nuc = context.stain_masks(pixels)
    cells &= ~occupied
    nuc &= ~occupied
    rbc_area = context.rbc_area

    merged = cv2.morphologyEx(nuc.astype(np.uint8), cv2.MORPH_CLOSE, _disk(params.lobe_merge_distance * d / 2.0)) > 0
    merged = _fill_small_holes((merged | nuc) & ~occupied, 0.5 * rbc_area)
    groups, n_groups = ndi.label(merged)
    group = _label_near(groups, px, py, 0.25 * d)
    nuclear_area = int(np.count_nonzero(nuc & (groups == group))) if group else 0
    if group and kind in (None, "wbc") and nuclear_area >= 0.5 * params.min_wbc_nucleus_area * rbc_area:
        body = (cells | merged) & ~occupied
        dist = _distance(body)
        markers = groups.astype(np.int32)
        near = cv2.dilate((groups > 0).astype(np.uint8), _disk(0.15 * d)) > 0
        cores = _h_maxima(dist, max(0.5, params.rbc_split_depth * d), d) & (dist >= 0.25 * d) & ~near
        core_lab, _ = _label_cores(cores, 0.1 * d)
        markers = np.where(cores, core_lab + n_groups, markers).astype(np.int32)
        flood = watershed(-dist, markers, mask=body)
        limit = cv2.dilate((groups == group).astype(np.uint8), _disk(params.max_cytoplasm_width * d)) > 0
        mask = fill_holes((flood == group) & limit) & ~occupied
        if np.count_nonzero(mask) > 50:
            mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, _disk(1)) > 0
        mask = _component_at(mask | (groups == group), groups == group)
        return _cell_from_mask(context, pixels, mask, (ox, oy), cell_id, kind or "wbc")
    if not cells[py, px]:
        raise EditError("no stained cell under the click: draw its outline instead (Shift+A)")
    obj, _ = ndi.label(cells)
    obj = obj == obj[py, px]
    dist = _distance(obj)
    cores = _h_maxima(dist, max(0.5, params.rbc_split_depth * d), d) & (dist >= 0.25 * d)
    markers, n_markers = _label_cores(cores, 0.1 * d)
    piece = obj
    if n_markers > 1:
        split = watershed(-dist, markers, mask=obj)
        if split[py, px]:
            piece = split == split[py, px]
    area = float(np.count_nonzero(piece))
    if kind is None and area > params.max_rbc_area * rbc_area:
        raise EditError("the stained object under the click is too large for one cell: draw its outline")
    if kind is None:
        kind = "platelet" if area <= params.max_platelet_area * rbc_area else "rbc"
    return _cell_from_mask(context, pixels, fill_holes(piece), (ox, oy), cell_id, kind)


def split_cell(
    context: EditContext,
    cell: Cell,
    first_id: int,
    *,
    line: Points | None = None,
    seeds: Points | None = None,
) -> list[Cell]:
    """Split a merged cell by a line drawn across it, or by two or more seeds inside it.

    A line cuts the cell's region (pieces too small to be a cell rejoin their
    neighbour); seeds grow one cell each by a marker-controlled watershed on
    the distance transform of the cell's region (compact: the nearer seed wins
    on a plateau), each seed's marker being the nuclear-stain fragment under it
    and a small disc. Each piece becomes a
    new cell, measured with its own nucleus; its kind is found again (a piece
    without a nucleus is not a white cell).

    Parameters
    ----------
    context : EditContext
    cell : Cell
    first_id : int
        The pieces get ids ``first_id``, ``first_id + 1``, ... (largest first).
    line : (N, 2) points, optional
    seeds : (K, 2) points, optional
        Exactly one of ``line`` and ``seeds``.

    Returns
    -------
    list of Cell
        Two or more.

    Raises
    ------
    EditError
        The line does not cut the cell in two, fewer than two seeds lie inside it, or a piece is too small.
    """
    if (line is None) == (seeds is None):
        raise EditError("split a cell by a line or by seeds")
    x0, y0, x1, y1 = cell.bbox
    pixels, ox, oy = context.window(x0 - 2, y0 - 2, x1 + 2, y1 + 2)
    mask = cell_mask(cell, (ox, oy), pixels.shape[:2])
    d = context.rbc_diameter
    least = max(9.0, context.params.min_platelet_area * context.rbc_area)
    if line is not None:
        path = _as_points(line)
        if len(path) < 2:
            raise EditError("draw a line across the cell")
        cut = np.zeros(mask.shape, np.uint8)
        shifted = np.round(path - (ox, oy)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(cut, [shifted], False, 1, thickness=max(1, int(round(0.02 * d))), lineType=cv2.LINE_4)
        pieces, n = ndi.label(mask & (cut == 0))  # 4-connected: a 4-connected line separates them
        sizes = np.bincount(pieces.ravel(), minlength=n + 1)
        keep = [i for i in range(1, n + 1) if sizes[i] >= max(least, 0.05 * sizes[1:].sum())]
        if len(keep) < 2:
            raise EditError("the line does not cut the cell in two: draw it across the cell, edge to edge")
        markers = np.zeros(mask.shape, np.int32)
        for k, i in enumerate(keep, start=1):
            markers[pieces == i] = k
        labels = _nearest_fill(markers, mask)
    else:
        points = _as_points(seeds)  # type: ignore[arg-type]
        nucleus = context.nucleus(pixels, mask)
        fragments, _ = ndi.label(nucleus)
        markers = np.zeros(mask.shape, np.int32)
        inside = []
        for sx, sy in points:
            px, py = int(np.floor(sx)) - ox, int(np.floor(sy)) - oy
            if 0 <= py < mask.shape[0] and 0 <= px < mask.shape[1] and mask[py, px]:
                inside.append((px, py))
        if len(inside) < 2:
            raise EditError("place at least two seeds inside the cell, one in each part")
        fragment_of = [int(fragments[py, px]) for px, py in inside]
        for k, (px, py) in enumerate(inside, start=1):
            frag = fragment_of[k - 1]
            if frag and fragment_of.count(frag) == 1:
                markers[(fragments == frag) & (markers == 0)] = k
            disc = np.zeros(mask.shape, np.uint8)
            cv2.circle(disc, (px, py), max(1, int(round(0.05 * d))), 1, -1)
            markers[(disc > 0) & mask] = k
        # A compact watershed: the distance transform finds the waist, and a pull
        # towards the nearer seed (both in pixels, so at any magnification) keeps a
        # seed placed off a cell's centre from losing its cell to the other.
        labels = watershed(-_distance(mask), markers, mask=mask, compactness=SEED_COMPACTNESS)
    parts = []
    for k in range(1, int(labels.max()) + 1):
        part = _largest(labels == k)
        if np.count_nonzero(part) < least:
            raise EditError("a piece would be too small to be a cell")
        parts.append(fill_holes(part))
    parts.sort(key=lambda m: -int(np.count_nonzero(m)))
    return [
        _cell_from_mask(context, pixels, part, (ox, oy), first_id + i, None) for i, part in enumerate(parts)
    ]


# ---------------------------------------------------------------- classification


def classify_cells(context: EditContext, cells: Sequence[Cell], runs: Sequence[ModelRun]) -> list[str]:
    """Run the analysis's models on new cells, as the analysis ran them (maps included), in place.

    Each model reads a window of the image holding the crops of the cells it
    applies to, so a large image is never read whole.

    Parameters
    ----------
    context : EditContext
    cells : sequence of Cell
    runs : sequence of ModelRun
        The models of the analysis.

    Returns
    -------
    list of str
        The models of ``runs`` that could not classify the cells (no loaded
        classifier of that name and version); their cells have no prediction by them.
    """
    missing: list[str] = []
    for run in runs:
        classifier = context.classifier(run)
        if classifier is None:
            missing.append(run.name)
            continue
        spec = classifier.spec
        targets = [c for c in cells if c.kind in spec.applies_to]
        if not targets:
            continue
        boxes = np.array([crop_box(c, spec.crop) for c in targets])
        x0, y0 = max(int(boxes[:, 0].min()), 0), max(int(boxes[:, 1].min()), 0)
        x1, y1 = min(int(boxes[:, 2].max()), context.width), min(int(boxes[:, 3].max()), context.height)
        pixels, ox, oy = context.window(x0, y0, x1, y1)
        # The window's borders are the image's where the crops reach past it, so
        # mirroring happens where the analysis mirrored.
        shifted = [_moved(c, -ox, -oy) for c in targets]
        predictions = classifier.predict(pixels, shifted)
        for cell, prediction in zip(targets, predictions, strict=True):
            if prediction.cam_box is not None:
                bx0, by0, bx1, by1 = prediction.cam_box
                prediction.cam_box = (bx0 + ox, by0 + oy, bx1 + ox, by1 + oy)
            cell.predictions[run.name] = prediction
    return missing


# ---------------------------------------------------------------- helpers


def _as_points(points: Points) -> np.ndarray:
    array = np.asarray(points, np.float64)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2 or not np.isfinite(array).all():
        raise EditError("points must be finite (x, y) pairs")
    return array


def _moved(cell: Cell, dx: int, dy: int) -> Cell:
    contour = np.asarray(cell.contour, np.int32) + np.array([dx, dy], np.int32)
    x0, y0, x1, y1 = cell.bbox
    return replace(
        cell,
        contour=contour,
        bbox=(x0 + dx, y0 + dy, x1 + dx, y1 + dy),
        centroid=(cell.centroid[0] + dx, cell.centroid[1] + dy),
        nucleus_contour=None,
        predictions={},
    )


def _polygon_window(context: EditContext, polygon: np.ndarray) -> tuple[np.ndarray, int, int, np.ndarray]:
    x0, y0 = polygon.min(axis=0) - 2
    x1, y1 = polygon.max(axis=0) + 3
    pixels, ox, oy = context.window(x0, y0, x1, y1)
    mask = np.zeros(pixels.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon - (ox, oy)).astype(np.int32).reshape(-1, 1, 2)], 1)
    return pixels, ox, oy, mask > 0


def _white_cells_mask(cells: Iterable[Cell], origin: tuple[int, int], shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    ox, oy = origin
    out = np.zeros((h, w), bool)
    for cell in cells:
        if cell.kind != "wbc":
            continue
        x0, y0, x1, y1 = cell.bbox
        if x1 <= ox or y1 <= oy or x0 >= ox + w or y0 >= oy + h:
            continue
        out |= cell_mask(cell, origin, (h, w))
    return out


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _component_at(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` connected to ``seed``."""
    labels, _ = ndi.label(mask)
    own = np.unique(labels[seed & mask])
    return np.isin(labels, own[own > 0])


def _label_near(labels: np.ndarray, x: int, y: int, radius: float) -> int:
    """The label at (x, y), else the nearest within ``radius`` pixels, else 0."""
    if labels[y, x]:
        return int(labels[y, x])
    r = max(int(np.ceil(radius)), 1)
    y0, y1 = max(y - r, 0), min(y + r + 1, labels.shape[0])
    x0, x1 = max(x - r, 0), min(x + r + 1, labels.shape[1])
    ys, xs = np.nonzero(labels[y0:y1, x0:x1])
    if not len(ys):
        return 0
    dist = (ys + y0 - y) ** 2 + (xs + x0 - x) ** 2
    best = int(np.argmin(dist))
    return int(labels[ys[best] + y0, xs[best] + x0]) if dist[best] <= radius * radius else 0


def _nearest_fill(markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give every pixel of ``mask`` the label of the nearest marker pixel."""
    _, (iy, ix) = ndi.distance_transform_edt(markers == 0, return_indices=True)
    return np.where(mask, markers[iy, ix], 0).astype(np.int32)


def _cell_from_mask(
    context: EditContext,
    pixels: np.ndarray,
    mask: np.ndarray,
    origin: tuple[int, int],
    cell_id: int,
    kind: str | None,
) -> Cell:
    """A measured cell record from a mask in a window, its kind found when None."""
    mask = np.asarray(mask, bool)
    area = float(np.count_nonzero(mask))
    if area < max(9.0, context.params.min_platelet_area * context.rbc_area):
        raise EditError("the outline encloses too little to be a cell")
    nucleus = context.nucleus(pixels, mask)
    if kind is None:
        nuclear_area = float(np.count_nonzero(nucleus))
        if nuclear_area >= context.params.min_wbc_nucleus_area * context.rbc_area:
            kind = "wbc"
        elif area <= context.params.max_platelet_area * context.rbc_area:
            kind = "platelet"
        else:
            kind = "rbc"
    cell = _make_cell(cell_id, kind, pixels, mask, nucleus if kind == "wbc" else None, origin, 1.0, None)
    _clip_to_image(cell, context.width, context.height)
    return cell
