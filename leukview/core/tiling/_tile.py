"""One tile analysed: white cells located, segmented, classified; red cells on sampled tiles."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..analysis import Analysis
from ..cells import CELL_KINDS, Cell, offset_cells
from ..domain import DEFAULT_EXPECTED_FRACTION, domain_check
from ..progress import CancelCheck, checkpoint
from ..runs import ModelRun
from ._grid import Tile
from ._locate import Candidate, block_density, local_background, locate_candidates
from ._plan import SlidePlan

if TYPE_CHECKING:
    from ..io import Slide
    from ..models import Classifier

__all__ = ["TileResult", "analyse_tile", "expected_fraction", "model_runs"]


@dataclass
class TileResult:
    """What one tile gave: its cells as cells.json objects, counts, density, timing.

    Attributes
    ----------
    index : int
    wbc : list of dict
        White cells owned by the tile, as cells.json cell objects (call,
        flags and µm measurements included) with ids 1.. in reading order;
        the assembly renumbers them over the slide.
    others : list of dict
        Red cells and platelets (sampled tiles only), the same objects.
    sampled : bool
        Whether red cells and platelets were counted here.
    candidates, windows, window_pixels : int
        Low-resolution candidates owned, windows segmented, and their pixels.
    density : list of [bx, by, coverage, overlap]
        The red-cell density of the blocks of the core.
    domain : dict
        ``{"cells": scored white cells, "atypical": atypical ones, "expected": the
        models' held-out fraction}``; empty when no model has an open-set score.
    models : list of dict
        :meth:`ModelRun.to_dict` of the models that ran.
    seconds : float
        Wall time (not part of any result file).
    """

    index: int
    wbc: list[dict[str, Any]] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)
    sampled: bool = False
    candidates: int = 0
    windows: int = 0
    window_pixels: int = 0
    density: list[list[float]] = field(default_factory=list)
    domain: dict[str, float] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        found = Counter(c["kind"] for c in self.wbc) + Counter(c["kind"] for c in self.others)
        return {kind: found.get(kind, 0) for kind in CELL_KINDS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "sampled": self.sampled,
            "candidates": self.candidates,
            "windows": self.windows,
            "window_pixels": self.window_pixels,
            "density": self.density,
            "domain": dict(self.domain),
            "models": self.models,
            "seconds": round(self.seconds, 4),
            "wbc": self.wbc,
            "others": self.others,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TileResult:
        return cls(
            index=int(data["index"]),
            wbc=list(data.get("wbc", [])),
            others=list(data.get("others", [])),
            sampled=bool(data.get("sampled", False)),
            candidates=int(data.get("candidates", 0)),
            windows=int(data.get("windows", 0)),
            window_pixels=int(data.get("window_pixels", 0)),
            density=[list(b) for b in data.get("density", [])],
            domain={k: float(v) for k, v in (data.get("domain") or {}).items()},
            models=list(data.get("models", [])),
            seconds=float(data.get("seconds", 0.0)),
        )


def model_runs(classifiers: Sequence[Classifier]) -> list[ModelRun]:
    return [ModelRun.of(c) for c in classifiers]


def expected_fraction(classifiers: Sequence[Classifier]) -> float | None:
    """The held-out atypical fraction the domain check compares with (as :func:`analyze_image`)."""
    expected = [
        float(c.spec.openset.get("flagged_fraction_heldout") or DEFAULT_EXPECTED_FRACTION)
        for c in classifiers
        if c.spec.openset
    ]
    return min(max(max(expected), 1e-3), 0.5) if expected else None


def _read_low(
    slide: Slide, plan: SlidePlan, rect: tuple[int, int, int, int]
) -> tuple[np.ndarray, tuple[float, float], float]:
    """A level-0 rectangle (or a little more) at the locate scale, on the slide's own pixel grid.

    The locate level is shrunk by a whole factor ``k`` (block means), from a
    level pixel that is a multiple of ``k``: every tile's low-resolution pixels
    are the same pixels where their reads overlap, so they find the same candidates.

    Returns
    -------
    low : ndarray of uint8, shape (h, w, 3)
    offset : (x, y)
        Level-0 position of ``low``'s top-left corner.
    scale : float
        Level-0 pixels per pixel of ``low``.
    """
    x0, y0, x1, y1 = rect
    level = plan.locate_level
    ds = slide.downsamples[level]
    k = max(1, int(round(plan.locate_scale / ds)))
    lx0, ly0 = (int(math.floor(x0 / ds)) // k) * k, (int(math.floor(y0 / ds)) // k) * k
    lx1, ly1 = -(-int(math.ceil(x1 / ds)) // k) * k, -(-int(math.ceil(y1 / ds)) // k) * k
    region = slide.read_region(lx0, ly0, lx1 - lx0, ly1 - ly0, level)
    if k > 1:
        region = cv2.resize(region, ((lx1 - lx0) // k, (ly1 - ly0) // k), interpolation=cv2.INTER_AREA)
    return region, (lx0 * ds, ly0 * ds), k * ds


def _blocks(
    plan: SlidePlan, tile: Tile, offset: tuple[float, float], scale: float
) -> list[tuple[int, int, int, int, int, int]]:
    """The density blocks of a tile's core, in pixels of its low-resolution read."""
    b = plan.block
    ox, oy = offset
    out = []
    for by in range(tile.y0 // b, math.ceil(tile.y1 / b)):
        for bx in range(tile.x0 // b, math.ceil(tile.x1 / b)):
            x0, y0 = bx * b - ox, by * b - oy
            x1, y1 = min((bx + 1) * b, tile.x1) - ox, min((by + 1) * b, tile.y1) - oy
            out.append((bx, by, max(int(x0 / scale), 0), max(int(y0 / scale), 0),
                        int(math.ceil(x1 / scale)), int(math.ceil(y1 / scale))))
    return out


def _clusters(boxes: list[tuple[float, float, float, float]]) -> list[list[int]]:
    """Groups of overlapping boxes (transitively), each in index order, groups by first index."""
    parent = list(range(len(boxes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(boxes)), key=lambda i: boxes[i][0])
    active: list[int] = []
    for i in order:  # sweep along x: only boxes still open can overlap
        x0, y0, x1, y1 = boxes[i]
        active = [j for j in active if boxes[j][2] > x0]
        for j in active:
            if boxes[j][1] < y1 and y0 < boxes[j][3]:
                parent[find(i)] = find(j)
        active.append(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _classify(classifiers: Sequence[Classifier], image: np.ndarray, cells: list[Cell]) -> None:
    for classifier in classifiers:
        targets = [c for c in cells if c.kind in classifier.spec.applies_to]
        if not targets:
            continue
        for cell, prediction in zip(targets, classifier.predict(image, targets, with_cam=False), strict=True):
            cell.predictions[classifier.spec.name] = prediction


def analyse_tile(
    slide: Slide,
    classifiers: Sequence[Classifier],
    plan: SlidePlan,
    index: int,
    *,
    should_cancel: CancelCheck | None = None,
) -> TileResult:
    """Analyse one tile of a plan (see :class:`~leukview.core.tiling.TilingParams` for the two modes).

    Parameters
    ----------
    slide : Slide
        The plan's slide, open.
    classifiers : sequence of Classifier
        The plan's models, loaded, in the plan's order.
    plan : SlidePlan
    index : int
        The tile.
    should_cancel : callable() -> bool, optional
        Polled between windows.

    Returns
    -------
    TileResult
        Cells in level-0 pixels of the slide, each owned by this tile only.
    """
    from ..segment import segment

    start = time.perf_counter()
    tile = plan.grid.tile(index)
    params = plan.params()
    sampled = plan.is_sampled(index)
    result = TileResult(index=index, sampled=sampled, models=[m.to_dict() for m in model_runs(classifiers)])
    background = np.asarray(plan.background, np.float64)
    wbc: list[Cell] = []
    others: list[Cell] = []
    full: np.ndarray | None = None

    if plan.tiling.locate == "full" or sampled:
        full = slide.read_region(tile.rx0, tile.ry0, tile.rx1 - tile.rx0, tile.ry1 - tile.ry0, 0)
        seg = segment(full, params)
        for cell in seg.cells:
            x, y = cell.centroid[0] + tile.rx0, cell.centroid[1] + tile.ry0
            if not tile.owns(x, y):
                continue
            if cell.kind == "wbc":
                if plan.tiling.locate == "full":
                    wbc.append(cell)
            else:
                others.append(cell)
        if plan.tiling.locate == "full":
            checkpoint(None, should_cancel, 0.0, "")
            _classify(classifiers, full, wbc)
        offset_cells(wbc + others, tile.rx0, tile.ry0, keep_maps=False)
        if not sampled:
            others = []

    if plan.tiling.locate == "full":
        assert full is not None
        s = plan.locate_scale
        size = (max(1, int(round(full.shape[1] / s))), max(1, int(round(full.shape[0] / s))))
        low = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
        offset, scale = (float(tile.rx0), float(tile.ry0)), (full.shape[1] / size[0] + full.shape[0] / size[1]) / 2
    else:
        low, offset, scale = _read_low(slide, plan, tile.read)
    del full
    result.density = block_density(
        low,
        background=local_background(low, background),
        cell_threshold=plan.cell_threshold,
        overlap_threshold=plan.overlap_threshold,
        blocks=_blocks(plan, tile, offset, scale),
    )

    if plan.tiling.locate == "lowres":
        # the slide's glass colour, not the tile's: every tile must see the same candidates
        wbc = _windows(slide, classifiers, plan, tile, low, offset, scale, background, params, result, should_cancel)

    wbc.sort(key=lambda c: (c.centroid[1], c.centroid[0]))
    others.sort(key=lambda c: (CELL_KINDS.index(c.kind), c.centroid[1], c.centroid[0]))
    for number, cell in enumerate(wbc + others, start=1):
        cell.id = number
    expected = expected_fraction(classifiers)
    if expected is not None:
        check = domain_check(wbc, expected)
        result.domain = {"cells": check.cells, "atypical": check.atypical, "expected": expected}
    document = Analysis(
        width=plan.width,
        height=plan.height,
        cells=wbc + others,
        models=model_runs(classifiers),
        calibration=plan.get_calibration(),
        confidence_threshold=plan.confidence_threshold,
    ).to_dict()
    cells = document["cells"]
    result.wbc, result.others = cells[: len(wbc)], cells[len(wbc) :]
    result.seconds = time.perf_counter() - start
    return result


def _windows(
    slide: Slide,
    classifiers: Sequence[Classifier],
    plan: SlidePlan,
    tile: Tile,
    low: np.ndarray,
    offset: tuple[float, float],
    scale: float,
    background: np.ndarray,
    params: Any,
    result: TileResult,
    should_cancel: CancelCheck | None,
) -> list[Cell]:
    """White cells of a tile: candidates at low resolution, each segmented in a full-resolution window."""
    from ..segment import segment

    d = plan.rbc_diameter
    # Red cells and platelets change no white cell of a field that has one (the same cells on
    # 60 BCCD fields): the windows skip them, a third of the time.
    window_params = replace(params, detect_rbc=False, detect_platelets=False)
    candidates = locate_candidates(
        low,
        scale=scale,
        offset=offset,
        background=background,
        nucleus_threshold=plan.nucleus_threshold,
        rbc_diameter_low=d / scale,
        min_nucleus_area=params.min_wbc_nucleus_area,
        lobe_merge_distance=params.lobe_merge_distance,
    )
    pad = plan.tiling.window_pad * d
    zone = plan.tiling.zone * d
    # Candidates within reach of one cell (their boxes less than two zones apart) form a group,
    # owned by the tile whose core holds the centroid of its first candidate in reading order.
    # Every tile whose read holds a group sees the same group, so exactly one tile analyses it,
    # and a cell found in two windows (of two tiles) is never kept twice, as it would be if each
    # window's own centroid of the cell, a pixel off from the other's, decided.
    grown = [(c.box[0] - zone, c.box[1] - zone, c.box[2] + zone, c.box[3] + zone) for c in candidates]
    group_of: dict[int, int] = {}
    owned: list[int] = []
    for number, group in enumerate(_clusters(grown)):
        for k in group:
            group_of[k] = number
        first = min(group, key=lambda k: (candidates[k].centroid[1], candidates[k].centroid[0]))
        if tile.owns(*candidates[first].centroid):
            owned.extend(group)
    result.candidates = len(owned)
    boxes = [
        (
            candidates[i].box[0] - pad,
            candidates[i].box[1] - pad,
            candidates[i].box[2] + pad,
            candidates[i].box[3] + pad,
        )
        for i in owned
    ]
    kept: list[Cell] = []
    pieces: list[tuple[int, int, np.ndarray]] = []
    for cluster in _clusters(boxes):
        checkpoint(None, should_cancel, 0.0, "")
        x0 = max(int(math.floor(min(boxes[k][0] for k in cluster))), 0)
        y0 = max(int(math.floor(min(boxes[k][1] for k in cluster))), 0)
        x1 = min(int(math.ceil(max(boxes[k][2] for k in cluster))), plan.width)
        y1 = min(int(math.ceil(max(boxes[k][3] for k in cluster))), plan.height)
        if x1 <= x0 or y1 <= y0:
            continue
        members = {group_of[owned[k]] for k in cluster}
        window = slide.read_region(x0, y0, x1 - x0, y1 - y0, 0)
        result.windows += 1
        result.window_pixels += (x1 - x0) * (y1 - y0)
        found = [c for c in segment(window, window_params).cells if c.kind == "wbc"]
        mine = []
        for cell in found:
            x, y = cell.centroid[0] + x0, cell.centroid[1] + y0
            nearest = _nearest(candidates, x, y)
            if nearest is not None and group_of[nearest] in members and candidates[nearest].distance(x, y) <= zone:
                mine.append(cell)
        if mine:
            offset_cells(mine, x0, y0, keep_maps=False)
            kept.extend(mine)
            pieces.append((x0, y0, window))
    if kept and classifiers:
        # One batch per model for the whole tile: a model call costs about as much for one cell as
        # for a full batch. The windows go back where they were read, so every crop sees the
        # slide's own pixels.
        cx0, cy0 = min(p[0] for p in pieces), min(p[1] for p in pieces)
        cx1 = max(p[0] + p[2].shape[1] for p in pieces)
        cy1 = max(p[1] + p[2].shape[0] for p in pieces)
        canvas = np.full((cy1 - cy0, cx1 - cx0, 3), 255, np.uint8)
        for x0, y0, window in pieces:
            canvas[y0 - cy0 : y0 - cy0 + window.shape[0], x0 - cx0 : x0 - cx0 + window.shape[1]] = window
        offset_cells(kept, -cx0, -cy0, keep_maps=False)
        _classify(classifiers, canvas, kept)
        offset_cells(kept, cx0, cy0, keep_maps=False)
    return kept


def _nearest(candidates: Sequence[Candidate], x: float, y: float) -> int | None:
    """The candidate nearest a point: by distance to its box, then to its centroid."""
    best, key = None, (math.inf, math.inf)
    for i, c in enumerate(candidates):
        k = (c.distance(x, y), math.hypot(c.centroid[0] - x, c.centroid[1] - y))
        if k < key:
            best, key = i, k
    return best
