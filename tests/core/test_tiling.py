"""Tiled analysis of whole slides: ownership, streaming, resume, side table, counting area."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from onnx_factory import make_tiny_classifier
from slide_factory import mosaic, write_generic_tiff, write_svs

from leukview.core.analysis import Analysis, analyze_image
from leukview.core.io import open_slide
from leukview.core.io._openslide import openslide_available
from leukview.core.progress import AnalysisCancelled
from leukview.core.segment import SegmentationParams
from leukview.core.tiling import (
    CountingArea,
    SerialExecutor,
    TileGrid,
    TilingParams,
    analyse_slide,
    load_run,
    plan_slide,
    points_in_rings,
    read_part,
    run_tiles,
    work_folder,
)

pytestmark = pytest.mark.skipif(not openslide_available(), reason="OpenSlide is not installed")

TILE = 768


@pytest.fixture(scope="module")
def field_mosaic() -> np.ndarray:
    return mosaic(2, 3)  # 1920 x 960: six real BCCD fields, one white cell or more each


@pytest.fixture(scope="module")
def svs(tmp_path_factory, field_mosaic):
    return write_svs(tmp_path_factory.mktemp("slide") / "mosaic.svs", field_mosaic)


@pytest.fixture(scope="module")
def whole(field_mosaic):
    """The mosaic analysed as one image, at the red-cell diameter the tiled run will use."""
    return field_mosaic


def _wbc(doc: dict) -> list[dict]:
    return [c for c in doc["cells"] if c["kind"] == "wbc"]


def _pairs(a: np.ndarray, b: np.ndarray, tol: float) -> int:
    """How many points of ``a`` have a point of ``b`` within ``tol`` (one to one, greedy)."""
    used: set[int] = set()
    hits = 0
    for p in a:
        d = np.hypot(*(b - p).T) if len(b) else np.array([])
        for j in np.argsort(d):
            if d[j] > tol:
                break
            if j not in used:
                used.add(int(j))
                hits += 1
                break
    return hits


# ---------------------------------------------------------------- grid and area


def test_tile_cores_partition_the_slide_and_reads_reach_the_margin():
    grid = TileGrid(1000, 700, 256, 40)
    owner = np.zeros((700, 1000), np.int32)
    for tile in grid.tiles():
        owner[tile.y0 : tile.y1, tile.x0 : tile.x1] += 1
        assert tile.rx0 == max(tile.x0 - 40, 0) and tile.rx1 == min(tile.x1 + 40, 1000)
        assert grid.index_at((tile.x0 + tile.x1) / 2, (tile.y0 + tile.y1) / 2) == tile.index
    assert (owner == 1).all()
    assert len(grid) == 4 * 3 and grid.index_at(1000, 5) is None
    with pytest.raises(ValueError):
        TileGrid(10, 10, 8, 0)


def test_counting_area_contains_points_inside_its_outline_and_outside_its_holes():
    outer = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], float)
    hole = np.array([[40, 40], [60, 40], [60, 60], [40, 60]], float)
    area = CountingArea([[outer, hole]], "user")
    inside = area.contains(np.array([[10, 10], [50, 50], [99, 50], [150, 50], [-1, 5]]))
    assert inside.tolist() == [True, False, True, False, False]
    assert area.area_px() == pytest.approx(100 * 100 - 20 * 20)
    again = CountingArea.from_dict(json.loads(json.dumps(area.to_dict())))
    assert again.contains(np.array([[10, 10], [50, 50]])).tolist() == [True, False]
    assert points_in_rings(np.array([[5.0, 5.0]]), [outer]).tolist() == [True]
    with pytest.raises(Exception, match="finite"):
        CountingArea([[np.array([[0, 0], [np.nan, 1], [1, 1]])]])


def test_counting_area_from_a_mask_follows_the_mask_at_its_scale():
    mask = np.zeros((10, 10), bool)
    mask[2:8, 2:8] = True
    mask[4:6, 4:6] = False
    area = CountingArea.from_mask(mask, 10.0, source="auto", simplify=0.1)
    pts = np.array([[25, 25], [75, 75], [50, 50], [5, 5], [95, 95]], float)
    assert area.contains(pts).tolist() == [True, True, False, False, False]
    assert area.source == "auto"


# ---------------------------------------------------------------- the tiled analysis


@pytest.mark.parametrize("locate", ["lowres", "full"])
def test_tiled_white_cells_match_the_whole_image_once_each(tmp_path, svs, field_mosaic, locate):
    slide = open_slide(svs)
    summary, plan, _ = analyse_slide(
        slide, tmp_path, tiling=TilingParams(tile_size=TILE, locate=locate, rbc_every=1), resume=False
    )
    assert len(plan.grid) == 3 * 2 and plan.grid.margin >= 2.6 * plan.rbc_diameter - 1
    doc = json.loads(summary.cells_json.read_text())
    tiled = np.array([c["centroid"] for c in _wbc(doc)])
    reference = analyze_image(field_mosaic, params=SegmentationParams(rbc_diameter=plan.rbc_diameter))
    ref = np.array([c.centroid for c in reference.cells if c.kind == "wbc"])
    assert len(ref) >= 6
    # the same white cells, once each: every tiled cell is one of the whole image's, none twice.
    # Segmentation adapts its thresholds to what it sees, so one borderline cell at the seam of
    # two fields of the mosaic (1586, 404) may go either way with another surrounding: at most one.
    assert _pairs(tiled, ref, 0.4 * plan.rbc_diameter) == len(tiled)
    assert len(ref) - 1 <= len(tiled) <= len(ref)
    distances = np.hypot(*(tiled[:, None] - tiled[None]).transpose(2, 0, 1)) + np.eye(len(tiled)) * 1e9
    assert distances.min() > 0.5 * plan.rbc_diameter
    # each in exactly one tile, and never cut by its tile's read
    for cell in _wbc(doc):
        x, y = cell["centroid"]
        tile = plan.grid.tile(plan.grid.index_at(x, y))
        x0, y0, x1, y1 = cell["bbox"]
        assert tile.rx0 <= x0 and x1 <= tile.rx1 and tile.ry0 <= y0 and y1 <= tile.ry1
    # ids run 1..n in tile order; the file is schema 2 and reads back
    assert [c["id"] for c in doc["cells"]] == list(range(1, len(doc["cells"]) + 1))
    assert doc["schema_version"] == 2 and doc["slide"]["locate"] == locate
    analysis = Analysis.from_dict(doc)
    assert analysis.width == 1920 and analysis.height == 960
    assert doc["counts_by_kind"]["wbc"] == len(tiled) and doc["counts_by_kind"]["rbc"] > 50
    assert (tmp_path / "mosaic.overview.png").is_file()


def test_low_resolution_location_loses_no_white_cell_of_the_full_resolution_run(tmp_path, svs):
    found = {}
    for locate in ("full", "lowres"):
        summary, plan, _ = analyse_slide(
            open_slide(svs), tmp_path / locate, tiling=TilingParams(tile_size=TILE, locate=locate), resume=False
        )
        found[locate] = np.array([c["centroid"] for c in _wbc(json.loads(summary.cells_json.read_text()))])
    # as above: one borderline cell at a seam between two fields may go either way
    assert _pairs(found["lowres"], found["full"], 0.4 * plan.rbc_diameter) >= len(found["full"]) - 1
    assert abs(len(found["lowres"]) - len(found["full"])) <= 1


def test_reads_are_bounded_by_the_tile_not_the_slide(tmp_path):
    slide = open_slide(write_svs(tmp_path / "big.svs", mosaic(3, 4)))  # 2560 x 1440
    largest = 0
    original, thumbnail = slide.read_region, slide.thumbnail
    in_overview = False

    def spy(x, y, w, h, level=0):
        nonlocal largest
        if level == 0 and not in_overview:
            largest = max(largest, w * h)
        return original(x, y, w, h, level)

    def overview(max_side=1024):  # the thumbnail is bounded by its own rule (bands past 16 Mpx)
        nonlocal in_overview
        in_overview = True
        try:
            return thumbnail(max_side)
        finally:
            in_overview = False

    slide.read_region = spy  # type: ignore[method-assign]
    slide.thumbnail = overview  # type: ignore[method-assign]
    _, plan, _ = analyse_slide(slide, tmp_path, tiling=TilingParams(tile_size=512, rbc_every=2), resume=False)
    assert largest <= (512 + 2 * plan.grid.margin) ** 2
    assert largest < slide.width * slide.height / 2


class Counting:
    """A serial executor that counts the tiles it analyses and can stop after some."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.inner = SerialExecutor()
        self.ran: list[int] = []
        self.stop_after = stop_after

    def run(self, plan, indices):
        for item in self.inner.run(plan, indices):
            self.ran.append(item.index)
            yield item


def test_an_interrupted_run_resumes_without_redoing_finished_tiles(tmp_path, svs):
    slide = open_slide(svs)
    tiling = TilingParams(tile_size=TILE, rbc_every=2)
    plan, _ = plan_slide(slide, tiling=tiling)
    folder = work_folder(tmp_path, "mosaic")
    first = Counting()
    done = []
    state = load_run(folder, plan)
    with pytest.raises(AnalysisCancelled):
        run_tiles(state, first, should_cancel=lambda: len(done) >= 3, on_tile=lambda item, st: done.append(item.index))
    assert len(list(folder.glob("tile-*.json"))) == 3
    resumed = load_run(folder, plan)
    assert resumed.resumed == 3 and len(resumed.remaining) == len(plan.tiles) - 3
    second = Counting()
    run_tiles(resumed, second)
    assert sorted(first.ran[:3] + second.ran) == sorted(plan.tiles)
    assert not set(second.ran) & set(first.ran[:3])
    # the result equals an uninterrupted run's, byte for byte
    seen = []
    summary, _, _ = analyse_slide(
        slide, tmp_path, tiling=tiling, stem="mosaic", on_plan=lambda p, st: seen.append(st.resumed)
    )  # all resumed: nothing runs
    assert seen == [len(plan.tiles)]
    fresh, _, _ = analyse_slide(slide, tmp_path / "fresh", tiling=tiling, stem="mosaic", resume=False)
    assert summary.cells_json.read_bytes() == fresh.cells_json.read_bytes()
    # a torn last manifest line (a crash mid-write) is ignored
    manifest = folder / "manifest.jsonl"
    manifest.write_text(manifest.read_text() + '{"tile": 3, "fi')
    assert load_run(folder, plan).resumed == len(plan.tiles)
    # another plan (another tile size) starts afresh
    other, _ = plan_slide(slide, tiling=TilingParams(tile_size=768))
    assert load_run(folder, other).resumed == 0 and not list(folder.glob("tile-*.json"))


def test_red_cells_are_sampled_and_extrapolated_and_go_to_a_side_table_past_a_size(tmp_path, svs):
    pa = pytest.importorskip("pyarrow.parquet")
    summary, plan, _ = analyse_slide(
        open_slide(svs), tmp_path, tiling=TilingParams(tile_size=TILE, rbc_every=2), side_table_min=10, resume=False
    )
    doc = json.loads(summary.cells_json.read_text())
    assert {c["kind"] for c in doc["cells"]} == {"wbc"}
    side = doc["side_table"]
    assert side["format"] == "parquet" and side["rows"] == summary.counts_by_kind["rbc"] + summary.counts_by_kind["platelet"]
    table = pa.read_table(tmp_path / side["path"])
    assert table.num_rows == side["rows"] and set(table.column("kind").to_pylist()) <= {"rbc", "platelet"}
    ids = table.column("id").to_pylist()
    assert min(ids) == doc["counts_by_kind"]["wbc"] + 1 and len(set(ids)) == len(ids)
    sampling = doc["slide"]["rbc_sampling"]
    assert sampling["every"] == 2 and sampling["tiles"] == len(plan.sampled) < len(plan.tiles)
    assert sampling["estimated"]["rbc"] > sampling["counted"]["rbc"] > 0
    assert "extrapolated" in sampling["note"]


def test_without_pyarrow_the_side_table_is_csv_gz(tmp_path, svs, monkeypatch):
    import gzip

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    summary, _, _ = analyse_slide(
        open_slide(svs), tmp_path, tiling=TilingParams(tile_size=1024, rbc_every=1), side_table_min=0, resume=False
    )
    assert summary.side_table is not None and summary.side_table.name == "mosaic.cells.csv.gz"
    with gzip.open(summary.side_table, "rt") as handle:
        lines = handle.read().splitlines()
    assert lines[0].startswith("id,kind,tile,x,y") and len(lines) - 1 == summary.counts_by_kind["rbc"] + summary.counts_by_kind["platelet"]


def test_bare_glass_is_not_analysed_and_the_counting_area_covers_the_smear(tmp_path, field_mosaic):
    m = 1024
    flat = field_mosaic.reshape(-1, 3)
    glass = np.median(flat[flat.sum(axis=1) >= np.percentile(flat.sum(axis=1), 97)], axis=0)
    canvas = np.empty((960 + 2 * m, 1920 + 2 * m, 3), np.uint8)
    canvas[:] = glass.astype(np.uint8)  # bare glass (the fields' own) around the smear
    canvas[m : m + 960, m : m + 1920] = field_mosaic
    path = write_generic_tiff(tmp_path / "glass.tif", canvas, levels=4)
    summary, plan, overview = analyse_slide(
        open_slide(path), tmp_path, tiling=TilingParams(tile_size=512), resume=False
    )
    assert 0.1 < overview.extent_fraction() < 0.3  # 1.8 of 11.9 Mpx
    glass = [t.index for t in plan.grid.tiles() if t.x1 <= m - 100 or t.y1 <= m - 100 or t.x0 >= m + 2020]
    assert glass and not set(glass) & set(plan.tiles)
    assert len(plan.tiles) < len(plan.grid) / 2
    area = summary.counting_area
    assert not area.empty and area.source == "auto"
    x0, y0, x1, y1 = area.bounds()
    assert x0 >= m - 512 and y0 >= m - 512 and x1 <= m + 1920 + 512 and y1 <= m + 960 + 512
    assert area.contains(np.array([[m + 960, m + 480]])).tolist() == [True]
    assert not area.contains(np.array([[100, 100]])).any()


def test_models_run_on_each_tile_and_the_call_is_in_cells_json(tmp_path, svs):
    models = tmp_path / "models"
    make_tiny_classifier(models / "tiny", ["lymphocyte", "neutrophil"])
    from leukview.core.models import load_models

    classifiers = load_models(None, models)
    summary, plan, _ = analyse_slide(
        open_slide(svs), tmp_path / "out", classifiers, tiling=TilingParams(tile_size=TILE), resume=False
    )
    doc = json.loads(summary.cells_json.read_text())
    assert [m["name"] for m in doc["models"]] == ["tiny"] and plan.models == ("tiny",)
    for cell in _wbc(doc):
        assert cell["call"]["label"] in {"lymphocyte", "neutrophil"} and "tiny" in cell["predictions"]
    assert summary.differential is not None and summary.differential.leukocytes == len(_wbc(doc))
    parts = sorted(work_folder(tmp_path / "out", "mosaic").glob("tile-*.json"))
    assert sum(len(read_part(p).wbc) for p in parts) == len(_wbc(doc))


def test_a_cell_kept_by_two_neighbouring_tiles_is_written_once(tmp_path, svs):
    from leukview.core.tiling import assemble, border_duplicates

    slide = open_slide(svs)
    summary, plan, _ = analyse_slide(slide, tmp_path, tiling=TilingParams(tile_size=TILE, locate="full"), resume=False)
    before = json.loads(summary.cells_json.read_text())
    state = load_run(work_folder(tmp_path, "mosaic"), plan)
    assert border_duplicates(state) == {}
    # the cell nearest a vertical tile border, as the tile on the other side would have kept it too
    best = None
    for index in plan.tiles:
        tile = plan.grid.tile(index)
        if tile.col + 1 >= plan.grid.cols:
            continue
        for cell in read_part(state.part(index)).wbc:
            gap = tile.x1 - cell["centroid"][0]
            if best is None or gap < best[0]:
                best = (gap, index, cell)
    assert best is not None and best[0] < plan.grid.margin
    _, index, cell = best
    neighbour = index + 1
    border_x = plan.grid.tile(neighbour).x0
    mine = read_part(state.part(index))
    for kept in mine.wbc:  # the cell, segmented by its own tile, three pixels short of the border
        if kept["id"] == cell["id"]:
            kept["centroid"] = [border_x - 3.0, cell["centroid"][1]]
    state.part(index).write_text(json.dumps(mine.to_dict()))
    part = read_part(state.part(neighbour))
    twin = json.loads(json.dumps(cell))
    twin["centroid"] = [border_x + 2.0, cell["centroid"][1] + 2.0]  # and by the next tile, just across it
    part.wbc.append(twin)
    state.part(neighbour).write_text(json.dumps(part.to_dict()))
    assert border_duplicates(state) == {neighbour: {len(part.wbc) - 1}}
    again = assemble(state, tmp_path / "again")
    doc = json.loads(again.cells_json.read_text())
    assert len(_wbc(doc)) == len(_wbc(before)) and doc["counts_by_kind"]["wbc"] == len(_wbc(before))
    assert doc["slide"]["border_duplicates_removed"] == 1
