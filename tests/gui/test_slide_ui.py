"""A whole slide in the viewer: open at once, analysed tile by tile in the background, cancel, resume, review."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from leukview.core.calls import review_cells
from leukview.core.io._openslide import openslide_available
from leukview.core.tiling import MANIFEST_FILE, TilingParams, work_folder
from leukview.gui.slide_source import SlidePixels, SlideTileSource

pytestmark = [pytest.mark.gui, pytest.mark.skipif(not openslide_available(), reason="OpenSlide is not installed")]

TILE = 768


@pytest.fixture(scope="module")
def written_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from slide_factory import mosaic, write_generic_tiff

    folder = tmp_path_factory.mktemp("slide")
    return write_generic_tiff(folder / "smear.tif", mosaic(3, 4), mpp=0.1, levels=4)


@pytest.fixture()
def slide_file(written_slide: Path, tmp_path: Path) -> Path:
    """The bundled fields tiled 3 x 4 (2560 x 1440, 4 levels, 0.1 µm/px: 8 tiles of 768 px), alone in a folder."""
    folder = tmp_path / "slides"
    folder.mkdir()
    return Path(shutil.copy(written_slide, folder / written_slide.name))


def write_cheap_slide(path: Path, side: int, field: np.ndarray) -> Path:
    """A pyramidal TIFF ``side`` x ``side`` px of constant glass tiles, a real field in the first one (cheap to write)."""
    import tifffile

    tile = 512
    glass = np.full((tile, tile, 3), (232, 226, 236), np.uint8)
    first = glass.copy()
    h, w = min(tile, field.shape[0]), min(tile, field.shape[1])
    first[:h, :w] = field[:h, :w]

    def tiles(size: int, with_field: bool):
        n = -(-size // tile)
        for k in range(n * n):
            yield first if (k == 0 and with_field) else glass

    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        size, level = side, 0
        while True:
            tw.write(tiles(size, level == 0), shape=(size, size, 3), dtype=np.uint8, tile=(tile, tile),
                     photometric="rgb", compression="zlib", subfiletype=1 if level else 0,
                     resolution=(1e4 / (0.25 * 2**level),) * 2, resolutionunit="CENTIMETER")
            if size <= 1024:
                break
            size, level = (size + 1) // 2, level + 1
    return path


def first_view(window, path: Path) -> tuple[float, float]:  # noqa: ANN001
    """Seconds from open to the first painted view, and to every visible tile drawn at the view's level."""
    start = time.perf_counter()
    assert window.open_image(path)
    window.view.viewport().grab()  # paints now: the thumbnail stands in for tiles still loading
    painted = time.perf_counter() - start
    item = window.image_item
    while True:
        QApplication.processEvents()
        if item.tiles_loaded(window.view.visible_rect(), window.view.scale_factor):
            break
        assert time.perf_counter() - start < 10, "the visible tiles never loaded"
        time.sleep(0.002)
    return painted, time.perf_counter() - start


def test_a_slide_opens_at_once_whatever_its_size(make_window, no_models: Path, tmp_path: Path):
    from slide_factory import sample_fields

    field = sample_fields()[0]
    small = write_cheap_slide(tmp_path / "small.tif", 4096, field)  # 17 Mpx
    large = write_cheap_slide(tmp_path / "large.tif", 20480, field)  # 419 Mpx: 25 times the pixels
    window = make_window(no_models)
    window.slide_min_pixels = 1_000_000
    first_view(window, small)  # warm: the first open loads OpenSlide
    times = {name: min(first_view(window, path) for _ in range(3)) for name, path in (("small", small), ("large", large))}
    assert isinstance(window.source, SlideTileSource) and window.source.width == 20480
    assert window.slide_dock.isVisible() and window.session is None  # shown, not analysed on open
    for painted, complete in times.values():
        assert painted < 1.0 and complete < 1.0
    # independent of the slide's size: 25 times the pixels, about the same time
    assert times["large"][1] < 3 * times["small"][1] + 0.15, times


def test_slide_pixels_read_regions_and_sample_the_thumbnail(slide_file: Path):
    from leukview.core.io import open_slide, read_image

    whole = read_image(slide_file)
    source = SlideTileSource(open_slide(slide_file))
    pixels = SlidePixels(source)
    assert pixels.shape == whole.shape
    np.testing.assert_array_equal(pixels[100:180, 700:760, :3], whole[100:180, 700:760])
    sampled = pixels[np.array([0, 700, 1400])][:, np.array([0, 1280, 2500]), :3]
    assert sampled.shape == (3, 3, 3)
    coarse = pixels[::64, ::64, :3]
    assert coarse.shape == whole[::64, ::64].shape
    assert np.abs(coarse.astype(int) - whole[::64, ::64].astype(int)).mean() < 40  # the same picture, smaller
    source.close()


def _open(window, slide_file: Path, out: Path) -> None:  # noqa: ANN001
    window.slide_min_pixels = 1_000_000
    window.slide_tiling = TilingParams(tile_size=TILE)
    window.slide_out = out
    assert window.open_image(slide_file)
    assert isinstance(window.source, SlideTileSource)


def test_a_slide_is_analysed_in_the_background_and_reviewed_whole(make_window, models_dir: Path, slide_file: Path,
                                                                  tmp_path: Path, dialogs):
    window = make_window(models_dir)
    _open(window, slide_file, tmp_path / "out")
    assert window.actions["analyse_slide"].isEnabled()
    window.actions["analyse_slide"].trigger()
    assert window.slide_busy and window.slide_panel.progress.isVisible()
    live: list[int] = []
    deadline = time.monotonic() + 120
    while window.slide_busy or window._slide_job is not None:
        QApplication.processEvents()
        if window.slide_live is not None:
            live.append(len(window.slide_live.cells))
        assert time.monotonic() < deadline
        time.sleep(0.005)
    QApplication.processEvents()
    run = window.slide_run
    assert run.total == 8 and sorted(run.analysed) == sorted(run.plan.tiles) and not run.failed
    assert max(live) > 0  # cells were on the view before the slide was assembled
    assert not [d for d in dialogs if d[0] == "critical"]

    # the overview shows every tile done, and the counting area
    overview = window.slide_panel.overview
    assert set(overview.states) == set(run.plan.tiles) and set(overview.states.values()) == {"done"}
    picture = overview.grab().toImage()
    greenish = sum(
        1 for y in range(0, picture.height(), 3) for x in range(0, picture.width(), 3)
        if (c := picture.pixelColor(x, y)).green() > c.red() + 40 and c.green() > c.blue() + 40
    )
    assert greenish > 0

    # one review document over the whole slide: a one-slide case with the counting area
    document = window.document
    case = document.case
    assert case is not None and case.images[0].kind == "slide" and Path(case.images[0].path) == slide_file
    cells = review_cells(document.cells)
    assert len(cells) >= 8
    xs = [c.centroid[0] for c in cells]
    ys = [c.centroid[1] for c in cells]
    assert max(xs) - min(xs) > 2 * TILE and max(ys) - min(ys) > TILE  # from tiles all over the slide
    counted = case.images[0].counted(cells)
    diff = document.differential()
    assert diff.total == len(counted) and diff.total > 0
    assert window.review.model.rowCount() >= len(cells)
    content = document.report_content()
    assert content.snapshot.ndim == 3 and content.snapshot.shape[2] == 3
    saved = list((tmp_path / "out").glob("*.cells.json")) + list(slide_file.parent.glob("*.case.leukview.json"))
    assert any(p.name == "smear.cells.json" for p in saved)
    assert any(p.name.endswith(".case.leukview.json") for p in saved)


def test_cancel_stops_and_starting_again_resumes_without_redoing_tiles(
    make_window, no_models: Path, slide_file: Path, tmp_path: Path, sample: Path, dialogs
):
    out = tmp_path / "out"
    window = make_window(no_models)
    _open(window, slide_file, out)
    window.analyse_slide()
    job = window._slide_job
    # cancel from the worker as the first tile is written, so the run cannot finish first
    job.tile_done.connect(lambda *_: job.cancel(), Qt.ConnectionType.DirectConnection)
    assert window.wait_for_slide(120000)
    run = window.slide_run
    done_before = set(run.done)
    assert 1 <= len(done_before) < run.total  # stopped mid-run, the finished tile(s) kept
    assert window.document.case is None and not window.slide_busy
    assert "cancelled" in window.slide_panel.status.text()
    manifest = work_folder(out, slide_file.stem) / MANIFEST_FILE
    finished = [json.loads(line)["tile"] for line in manifest.read_text().splitlines()[1:]]
    assert set(finished) == done_before

    window.analyse_slide()  # Ctrl+Alt+R again: resumes
    assert window.wait_for_slide(120000)
    run = window.slide_run
    assert run.resumed == len(done_before)
    assert set(run.analysed) == set(run.plan.tiles) - done_before  # no finished tile analysed again
    assert set(window.slide_panel.overview.states.values()) == {"done"}
    assert window.document.case is not None and window.document.cells

    # reviewed, left and reopened: the slide's case comes back with the review
    cell = review_cells(window.document.cells)[0]
    assert window.document.review(cell.id, "lymphocyte")
    assert window.open_image(sample, analyse=False)
    assert window.slide_source is None and not window.slide_dock.isVisible()
    assert window.open_image(slide_file)
    again = window.document.cell(cell.id)
    assert again.review.label == "lymphocyte"


def test_a_slide_case_opened_as_a_case_goes_through_the_slide_never_read_whole(
    make_window, no_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dialogs
):
    """File > Open case on ``<stem>.case.leukview.json`` of kind slide: the lazy slide source, the review back."""
    from cell_factory import BLAST, TYPE, make_cell
    from slide_factory import mosaic, write_generic_tiff

    from leukview.core import io as core_io
    from leukview.core.analysis import Analysis
    from leukview.core.case import Case, case_path, save_case
    from leukview.core.io import _read

    folder = tmp_path / "slides"
    folder.mkdir()
    slide = write_generic_tiff(folder / "smear.tif", mosaic(2, 2), mpp=0.25, levels=3)  # 1280 x 960, 3 levels
    cells = [make_cell(k + 1, x=100 + 300 * k, y=120 + 200 * k, half=20, wbc_type=("neutrophil", 0.95),
                       all_blast=("normal", 0.9)) for k in range(3)]
    case = Case.new("smear")
    case.add_image(Analysis(1280, 960, cells, models=[TYPE, BLAST], image=str(slide)), slide, kind="slide",
                   image_id="smear")
    case.review(("smear", 2), "lymphocyte", who="dr-a")
    saved = save_case(case, case_path(folder, "smear"))

    def whole(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the slide was read whole")

    monkeypatch.setattr(core_io, "read_image", whole)
    monkeypatch.setattr(_read, "read_image", whole)
    window = make_window(no_models)
    assert window.open_case([saved])  # File > Open case with the case file
    assert isinstance(window.source, SlideTileSource) and window.slide_path == slide
    assert window.slide_dock.isVisible() and "restored" in window.slide_panel.status.text()
    document = window.document
    assert document.case is not None and document.case_file == saved and document.current == "smear"
    assert [c.id for c in review_cells(document.cells)] == [1, 2, 3]
    assert document.cell(2).review.label == "lymphocyte" and document.differential().total == 3
    window.view.viewport().grab()  # the view painted, its tiles read from the slide's levels
    content = document.report_content()  # the report's contact sheet and cell images, from the slide's regions
    assert len(content.cells) == 3 and content.snapshot.ndim == 3
    assert not [d for d in dialogs if d[0] == "critical"]
