"""New cells from the reviewer's geometry: a drawn outline, a click, a line or seeds across a merge."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from ..cells import Cell
from ..measure import fill_holes
from ..segment._morphology import _disk, _distance, _fill_small_holes, _h_maxima, _label_cores
from ..segment._records import _clip_to_image, _make_cell
from ._context import EditContext, EditError
from ._geometry import (
    Points,
    _as_points,
    _component_at,
    _label_near,
    _largest,
    _nearest_fill,
    _polygon_window,
    _white_cells_mask,
    cell_at,
    cell_mask,
)

#: Weight of the distance to the seed against the distance transform in a split by seeds.
SEED_COMPACTNESS = 0.1


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
    if not (0 <= round(x) < context.width and 0 <= round(y) < context.height):
        raise EditError("the click is outside the image")
    taken = cell_at(others, (x, y), kinds=("wbc",))
    if taken is not None:
        raise EditError(f"cell {taken.id} is already there (split or redraw it instead)")
    params, d = context.params, context.rbc_diameter
    reach = (0.5 * params.max_wbc_diameter + params.max_cytoplasm_width + 0.5) * d
    pixels, ox, oy = context.window(x - reach, y - reach, x + reach + 1, y + reach + 1)
    px, py = int(round(x)) - ox, int(round(y)) - oy  # points are pixel-centre coordinates
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
            px, py = int(round(sx)) - ox, int(round(sy)) - oy
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
