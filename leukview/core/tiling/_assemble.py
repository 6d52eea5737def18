"""A finished run assembled into one slide's cells.json and side table, streamed tile by tile.

cells.json of a slide is the usual schema 2 document (``Analysis.to_dict``)
with the white cells of every tile, renumbered over the slide in tile order,
and three more keys after ``cells``: ``counts_by_kind`` (what was found),
``slide`` (the grid, the modes, the red-cell sampling and estimate, the
automatic counting area, tiles that failed) and ``side_table``. Red cells
and platelets are in ``cells`` too while there are at most
:data:`SIDE_TABLE_MIN_CELLS` of them; past that they go to the side table
(``<stem>.cells.parquet``, or ``<stem>.cells.csv.gz`` without pyarrow), one
row per cell: ``id``, ``kind``, ``tile``, ``x``, ``y`` (centroid), ``x0``,
``y0``, ``x1``, ``y1`` (box, half-open), ``area``, ``perimeter``,
``equivalent_diameter``, ``circularity`` (pixels of level 0).

Nothing holds more than one tile's cells at a time.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..calls import Differential, differential_count
from ..cells import CELL_KINDS, Cell
from ..domain import DomainCheck, decide
from ..runs import ModelRun
from ._area import CountingArea
from ._plan import SlidePlan
from ._run import RunState, read_part

__all__ = [
    "MAX_OVERLAP",
    "MIN_COVERAGE",
    "SIDE_COLUMNS",
    "SIDE_TABLE_MIN_CELLS",
    "SlideSummary",
    "assemble",
    "auto_counting_area",
    "border_duplicates",
    "density_map",
    "merge_differentials",
]

#: Red cells and platelets stay in cells.json up to this many; more go to the side table.
SIDE_TABLE_MIN_CELLS = 20_000
SIDE_COLUMNS = ("id", "kind", "tile", "x", "y", "x0", "y0", "x1", "y1", "area", "perimeter",
                "equivalent_diameter", "circularity")
#: The monolayer: blocks where cells cover at least this fraction of the glass ...
MIN_COVERAGE = 0.35
#: ... at most this fraction (above: the thick area, where cells pile up) ...
MAX_COVERAGE = 0.95
#: ... and at most this fraction of the cell pixels are two cells deep.
MAX_OVERLAP = 0.3


def merge_differentials(parts: Sequence[Differential]) -> Differential | None:
    """Differentials of several images (or tiles) pooled into one: counts added, classes united."""
    if not parts:
        return None
    first = parts[0]
    classes = list(first.classes)
    for part in parts[1:]:
        for name in part.classes:
            if name not in classes:
                classes.insert(max(len(classes) - 1, 0), name)  # before "artefact", as differential_count does
    pooled = Differential(
        classes=classes,
        counts=dict.fromkeys(classes, 0),
        positives=set().union(*(p.positives for p in parts)),
        can_call_blast=any(p.can_call_blast for p in parts),
    )
    for part in parts:
        for name, count in part.counts.items():
            pooled.counts[name] = pooled.counts.get(name, 0) + count
        pooled.leukocytes += part.leukocytes
        pooled.unclassified += part.unclassified
        pooled.atypical += part.atypical
        pooled.reviewed += part.reviewed
        pooled.total += part.total
        pooled.flagged += part.flagged
    return pooled


def density_map(plan: SlidePlan, blocks: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and overlap per block of the slide, NaN where no tile reported."""
    b = plan.block
    shape = (math.ceil(plan.height / b), math.ceil(plan.width / b))
    coverage = np.full(shape, np.nan, np.float32)
    overlap = np.full(shape, np.nan, np.float32)
    for bx, by, cov, ovl in blocks:
        coverage[int(by), int(bx)] = cov
        overlap[int(by), int(bx)] = ovl
    return coverage, overlap


def auto_counting_area(plan: SlidePlan, blocks: Sequence[Sequence[float]]) -> CountingArea:
    """The monolayer from the red-cell density: away from the thick area and the feathered edge.

    A block (about eight red cells a side) counts when cells cover between
    :data:`MIN_COVERAGE` and :data:`MAX_COVERAGE` of it and at most
    :data:`MAX_OVERLAP` of its cell pixels are two cells deep; isolated
    blocks are dropped (opening), and small gaps closed. A heuristic: the area
    is shown and editable, and a person may replace it.
    """
    import cv2

    coverage, overlap = density_map(plan, blocks)
    with np.errstate(invalid="ignore"):
        ok = (coverage >= MIN_COVERAGE) & (coverage <= MAX_COVERAGE) & (overlap <= MAX_OVERLAP)
    mask = ok.astype(np.uint8)
    # isolated blocks are not a counting area; holes of one block inside one are
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min(3, int(mask.sum()))
    mask = keep[labels].astype(np.uint8)
    holes = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)) & (1 - mask)
    inner = cv2.erode(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)), np.ones((3, 3), np.uint8))
    mask |= holes & inner
    note = (
        f"automatic: blocks of {plan.block} px where cells cover {MIN_COVERAGE:.0%}-{MAX_COVERAGE:.0%} "
        f"and at most {MAX_OVERLAP:.0%} of them overlap"
    )
    area = CountingArea.from_mask(mask > 0, float(plan.block), source="auto", note=note, simplify=0.0)
    # clip to the slide: the last blocks may reach past it
    for polygon in area.polygons:
        for ring in polygon:
            np.clip(ring[:, 0], 0, plan.width, out=ring[:, 0])
            np.clip(ring[:, 1], 0, plan.height, out=ring[:, 1])
    return area


@dataclass
class SlideSummary:
    """What :func:`assemble` wrote and counted.

    Attributes
    ----------
    cells_json : Path
    side_table : Path or None
    counts_by_kind : dict of str to int
        Cells found (red cells and platelets on the sampled tiles only).
    estimated_counts : dict of str to int
        Red cells and platelets extrapolated from the sampled tiles' area to
        every analysed tile's (white cells: as found).
    differential : Differential or None
        Of every white cell of the slide.
    model_labels : dict of str to Counter
        Each model's own labels.
    models : list of ModelRun
    domain : DomainCheck or None
    counting_area : CountingArea
    failed : dict of int to str
        Tiles that could not be analysed, and why.
    tiles, tiles_done : int
    """

    cells_json: Path
    side_table: Path | None
    counts_by_kind: dict[str, int]
    estimated_counts: dict[str, int]
    differential: Differential | None
    model_labels: dict[str, Counter[str]]
    models: list[ModelRun]
    domain: DomainCheck | None
    counting_area: CountingArea
    failed: dict[int, str] = field(default_factory=dict)
    tiles: int = 0
    tiles_done: int = 0


def _side_row(cell: dict[str, Any], tile: int) -> dict[str, Any]:
    m = cell.get("measurements", {})
    x0, y0, x1, y1 = cell["bbox"]
    return {
        "id": cell["id"], "kind": cell["kind"], "tile": tile,
        "x": cell["centroid"][0], "y": cell["centroid"][1],
        "x0": x0, "y0": y0, "x1": x1, "y1": y1,
        "area": m.get("area"), "perimeter": m.get("perimeter"),
        "equivalent_diameter": m.get("equivalent_diameter"), "circularity": m.get("circularity"),
    }


class _SideTable:
    """Rows of red cells and platelets, written tile by tile (Parquet, else CSV.gz)."""

    def __init__(self, stem: Path) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            pa = pq = None
        self._pa, self._pq = pa, pq
        self.path = stem.with_name(stem.name + (".cells.parquet" if pa is not None else ".cells.csv.gz"))
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.rows = 0
        if pa is not None:
            self.schema = pa.schema(
                [("id", pa.int64()), ("kind", pa.string()), ("tile", pa.int32())]
                + [(name, pa.float32()) for name in ("x", "y")]
                + [(name, pa.int32()) for name in ("x0", "y0", "x1", "y1")]
                + [(name, pa.float32()) for name in ("area", "perimeter", "equivalent_diameter", "circularity")]
            )
            self._writer = pq.ParquetWriter(str(self.tmp), self.schema, compression="zstd")
        else:
            self._gz = gzip.open(self.tmp, "wt", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
            self._csv = csv.DictWriter(self._gz, fieldnames=SIDE_COLUMNS, lineterminator="\n")
            self._csv.writeheader()

    @property
    def format(self) -> str:
        return "parquet" if self._pa is not None else "csv.gz"

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.rows += len(rows)
        if self._pa is not None:
            columns = {name: [r[name] for r in rows] for name in SIDE_COLUMNS}
            self._writer.write_table(self._pa.table(columns, schema=self.schema))
        else:
            self._csv.writerows(rows)

    def close(self, keep: bool) -> None:
        if self._pa is not None:
            self._writer.close()
        else:
            self._gz.close()
        if keep:
            os.replace(self.tmp, self.path)
        else:
            with contextlib.suppress(OSError):
                self.tmp.unlink()


def _parts(state: RunState, drops: dict[int, set[int]] | None = None) -> Iterator[tuple[int, Any]]:
    for index in state.plan.tiles:
        if index in state.done:
            part = read_part(state.part(index))
            if drops and index in drops:
                part.wbc = [c for k, c in enumerate(part.wbc) if k not in drops[index]]
            yield index, part


def border_duplicates(state: RunState) -> dict[int, set[int]]:
    """White cells that two neighbouring tiles both kept: ``{tile: positions in its part to drop}``.

    A cell on a tile border is segmented by both tiles, each with its own
    surroundings, and the two centroids may fall on either side of the
    border. Two white cells of neighbouring tiles whose centroids are closer
    than half a red-cell diameter, both within the margin of a core edge, are
    one cell: the tile that comes first in the grid keeps it. Only the cells
    near the edges of the last grid row and a half are held, whatever the slide's size.
    """
    return _scan(state)[0]


def _scan(state: RunState) -> tuple[dict[int, set[int]], int]:
    """:func:`border_duplicates`, and how many white cells the parts hold once they are dropped."""
    plan = state.plan
    grid = plan.grid
    radius = 0.5 * plan.rbc_diameter
    band = max(grid.margin, 1)
    border: dict[int, list[tuple[float, float]]] = {}
    drops: dict[int, set[int]] = {}
    total = 0
    for index, part in _parts(state):
        total += len(part.wbc)
        tile = grid.tile(index)
        neighbours = [index - grid.cols]
        if tile.col > 0:
            neighbours += [index - 1, index - grid.cols - 1]
        if tile.col < grid.cols - 1:
            neighbours.append(index - grid.cols + 1)
        near: list[tuple[float, float]] = []
        for k, cell in enumerate(part.wbc):
            x, y = (float(v) for v in cell["centroid"])
            if min(x - tile.x0, tile.x1 - x, y - tile.y0, tile.y1 - y) >= band:
                continue
            if any(math.hypot(x - px, y - py) < radius for n in neighbours for px, py in border.get(n, ())):
                drops.setdefault(index, set()).add(k)
                continue
            near.append((x, y))
        border[index] = near
        for old in [i for i in border if i < index - grid.cols - 1]:
            del border[old]
    return drops, total - sum(len(v) for v in drops.values())


def assemble(state: RunState, out_stem: str | os.PathLike[str], *, side_table_min: int = SIDE_TABLE_MIN_CELLS,
             counting_area: CountingArea | None = None, extra: dict[str, Any] | None = None) -> SlideSummary:
    """Write ``<out_stem>.cells.json`` (and the side table) of a run, tile by tile.

    Parameters
    ----------
    state : RunState
        A finished (or partly failed) run.
    out_stem : path
        ``DIR/<stem>``.
    side_table_min : int
        Red cells and platelets go to the side table when there are more than this.
    counting_area : CountingArea, optional
        Replaces the automatic one (:func:`auto_counting_area`) in the document.
    extra : dict, optional
        More entries for the document's ``slide`` object (the slide's vendor, say).

    Returns
    -------
    SlideSummary
    """
    plan = state.plan
    stem = Path(out_stem)
    records = [state.done[i] for i in plan.tiles if i in state.done]
    found: Counter[str] = Counter()
    for record in records:
        found.update(record.get("cells", {}))
    blocks = [b for record in records for b in record.get("density", [])]
    if not blocks:  # older manifests: read them from the parts
        blocks = [b for _, part in _parts(state) for b in part.density]
    area = counting_area or auto_counting_area(plan, blocks)
    drops, found["wbc"] = _scan(state)
    n_wbc = found["wbc"]
    n_small = found.get("rbc", 0) + found.get("platelet", 0)
    side = _SideTable(stem) if n_small > side_table_min else None

    calibration = plan.get_calibration()
    models: list[ModelRun] = []
    diffs: list[Differential] = []
    labels: dict[str, Counter[str]] = {}
    scored = atypical = 0
    expected: float | None = None
    sampled_pixels = analysed_pixels = 0
    sampled_counts: Counter[str] = Counter()
    next_wbc, next_small = 1, n_wbc + 1
    final = stem.with_name(stem.name + ".cells.json")
    fd, tmp_name = tempfile.mkstemp(prefix=final.name + ".", suffix=".tmp", dir=final.parent)
    ok = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            wrote_cell = False
            header_models: list[dict[str, Any]] | None = None
            out.write('"cells":[')  # the header goes before it, the trailer after (_finish)
            small_in_json = side is None
            for index, part in _parts(state, drops):
                tile = plan.grid.tile(index)
                analysed_pixels += tile.core_pixels
                if part.sampled:
                    sampled_pixels += tile.core_pixels
                    sampled_counts.update(c["kind"] for c in part.others)
                if header_models is None and part.models:
                    header_models = part.models
                for cell in part.wbc:
                    cell["id"] = next_wbc
                    next_wbc += 1
                for cell in part.others:
                    cell["id"] = next_small
                    next_small += 1
                for cell in part.wbc:
                    out.write(("," if wrote_cell else "") + json.dumps(cell, separators=(",", ":")))
                    wrote_cell = True
                if side is not None:
                    side.write([_side_row(c, index) for c in part.others])
                # the differential and each model's labels, from the cells' own records
                runs = [ModelRun.from_dict(m) for m in part.models]
                if runs and not models:
                    models = runs
                cells = [Cell.from_dict(c) for c in part.wbc]
                diffs.append(differential_count(cells, runs, plan.confidence_threshold))
                for run in runs:
                    counter = labels.setdefault(run.name, Counter())
                    counter.update(c.predictions[run.name].label for c in cells if run.name in c.predictions)
                if "expected" in part.domain:
                    scored += int(part.domain["cells"])
                    atypical += int(part.domain["atypical"])
                    expected = max(expected or 0.0, float(part.domain["expected"]))
            if small_in_json:  # a second pass, so that ids run in file order: white cells first
                next_small = n_wbc + 1
                for _, part in _parts(state):
                    for cell in part.others:
                        cell["id"] = next_small
                        next_small += 1
                        out.write(("," if wrote_cell else "") + json.dumps(cell, separators=(",", ":")))
                        wrote_cell = True
            out.write("]")
            ok = True
    finally:
        if side is not None:
            side.close(keep=ok)
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)

    estimated = dict(found)
    if sampled_pixels:
        for kind in ("rbc", "platelet"):
            estimated[kind] = int(round(sampled_counts.get(kind, 0) * analysed_pixels / sampled_pixels))
    domain = None if expected is None else decide(scored, atypical, expected)
    slide_info = {
        "grid": plan.grid.to_dict(),
        "tiles": len(plan.grid),
        "tiles_analysed": len(plan.tiles),
        "tiles_done": len(records),
        "failed_tiles": {str(k): v for k, v in sorted(state.failed.items())},
        "border_duplicates_removed": sum(len(v) for v in drops.values()),
        "locate": plan.tiling.locate,
        "locate_level": plan.locate_level,
        "locate_scale": plan.locate_scale,
        "rbc_sampling": {
            "every": plan.tiling.rbc_every,
            "tiles": len([i for i in plan.sampled if i in state.done]),
            "area_fraction": round(sampled_pixels / analysed_pixels, 4) if analysed_pixels else None,
            "counted": {k: sampled_counts.get(k, 0) for k in ("rbc", "platelet")},
            "estimated": {k: estimated.get(k, 0) for k in ("rbc", "platelet")},
            "note": (
                f"red cells and platelets counted on {len(plan.sampled)} of {len(plan.tiles)} tiles "
                "and extrapolated by area"
                if plan.tiling.rbc_every > 1 else "red cells and platelets counted on every tile"
            ),
        },
        "counting_area": area.to_dict(),
        **(extra or {}),
    }
    header = {
        "schema_version": 2,
        "image": plan.image,
        "width": plan.width,
        "height": plan.height,
        "pixel_size_um": calibration.pixel_size_um,
        "pixel_size_source": calibration.source,
        "confidence_threshold": plan.confidence_threshold,
        "rbc_diameter_px": round(float(plan.rbc_diameter), 2),
        "models": [m.to_dict() for m in models],
        "domain": None if domain is None else domain.to_dict(),
    }
    side_info = None if side is None else {
        "path": side.path.name, "format": side.format, "kinds": ["rbc", "platelet"], "rows": side.rows,
        "columns": list(SIDE_COLUMNS),
    }
    trailer = {
        "counts_by_kind": {k: found.get(k, 0) for k in CELL_KINDS},
        "slide": slide_info,
        "side_table": side_info,
    }
    _finish(Path(tmp_name), final, header, trailer)
    return SlideSummary(
        cells_json=final,
        side_table=None if side is None else side.path,
        counts_by_kind={k: found.get(k, 0) for k in CELL_KINDS},
        estimated_counts={k: estimated.get(k, 0) for k in CELL_KINDS},
        differential=merge_differentials(diffs),
        model_labels=labels,
        models=models,
        domain=domain,
        counting_area=area,
        failed=dict(state.failed),
        tiles=len(plan.tiles),
        tiles_done=len(records),
    )


def _finish(body: Path, final: Path, header: dict[str, Any], trailer: dict[str, Any]) -> None:
    """Wrap the streamed ``"cells":[...]`` body with the header before and the trailer after, atomically.

    The cells are copied in blocks, so memory stays small however many there are.
    """
    fd, tmp = tempfile.mkstemp(prefix=final.name + ".", suffix=".tmp", dir=final.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out, body.open("r", encoding="utf-8") as src:
            head = json.dumps(header, separators=(",", ":"))
            out.write(head[:-1] + ",")
            while True:
                block = src.read(1 << 20)
                if not block:
                    break
                out.write(block)
            tail = json.dumps(trailer, separators=(",", ":"))
            out.write("," + tail[1:])
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        with contextlib.suppress(OSError):
            body.unlink()

