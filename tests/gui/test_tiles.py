"""Tiles and levels: a large TIFF is shown from disk with bounded memory."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QImage

from leukview.core import io as core_io
from leukview.gui.tiles import RegionTileSource, TileCache, to_qimage

pytestmark = pytest.mark.gui
tifffile = pytest.importorskip("tifffile")


def test_region_source_reads_levels_like_the_image(mosaic):
    path, image = mosaic
    source = RegionTileSource(path, core_io.image_info(path))
    assert (source.width, source.height) == (1920, 1440)
    assert source.file_levels == [(1920, 1440), (960, 720), (480, 360)]
    np.testing.assert_array_equal(source.read_level(0, 300, 200, 256, 128), image[200:328, 300:556])
    # a coarser level comes from the file's own pyramid, not from level 0
    expected = cv2.resize(image, (960, 720), interpolation=cv2.INTER_AREA)[100:164, 50:114]
    got = source.read_level(1, 50, 100, 64, 64)
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 2.0
    assert max(source.thumbnail().shape[:2]) <= 1024


def test_tile_cache_keeps_to_its_budget(qapp):  # noqa: ANN001
    tile = to_qimage(np.zeros((64, 64, 3), np.uint8))
    cache = TileCache(max_bytes=tile.sizeInBytes() * 3)
    for col in range(5):
        cache.put((0, col, 0), tile)
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes
    assert cache.get((0, 0, 0)) is None and cache.get((0, 4, 0)) is not None
    cache.get((0, 2, 0))  # recently used: survives the next insertion
    cache.put((0, 5, 0), tile)
    assert cache.get((0, 2, 0)) is not None and cache.get((0, 3, 0)) is None


def test_large_tiff_pans_from_tiles_with_bounded_memory(qtbot, make_window, no_models: Path, mosaic, monkeypatch):
    path, image = mosaic

    def never(*args, **kwargs):  # a large image must not be decoded whole
        raise AssertionError("read_image called on a large image")

    monkeypatch.setattr(core_io, "read_image", never)
    window = make_window(no_models)
    window.document.large_image_pixels = 1_000_000
    assert window.open_image(path, analyse=False)
    assert isinstance(window.source, RegionTileSource)
    assert window.document.calibration.pixel_size_um == pytest.approx(0.5)  # read from the TIFF
    assert window.document.calibration.source == "file"
    assert "0.5 µm/px (from the file)" in window.pixel_label.text()
    item = window.image_item
    budget = 40 * 256 * 256 * 4  # forty tiles of 256x256 at most
    item.cache.max_bytes = budget
    view = window.view
    qtbot.wait(50)  # let the window settle (open_image fits the view once the layout is done)
    view.set_scale(1.0)
    for x, y in ((300, 300), (1600, 400), (900, 1100), (200, 1300), (1700, 1200)):
        view.centerOn(QPointF(x, y))
        keys = item.visible_keys(view.visible_rect(), 0)
        # the tiles on screen arrive from the worker threads while the window stays responsive
        qtbot.waitUntil(lambda k=keys: all(item.cache.get(key) is not None for key in k), timeout=10000)
    assert 0 < item.cache.bytes <= budget
    # what is on screen is the image, not the thumbnail stand-in
    view.viewport().repaint()
    shot = view.viewport().grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    centre = view.mapFromScene(QPointF(1700, 1200))
    pixel = shot.pixelColor(centre.x(), centre.y())
    expected = image[1200, 1700]
    assert np.abs(np.array([pixel.red(), pixel.green(), pixel.blue()]) - expected).max() <= 12


def test_tiff_without_pyramid_opens_at_once_and_reads_in_chunks(qtbot, make_window, no_models: Path, tmp_path: Path, mosaic, monkeypatch):
    from leukview.gui import tiles

    _, image = mosaic
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, image, tile=(256, 256), photometric="rgb", compression="zlib")
    monkeypatch.setattr(tiles, "THUMBNAIL_SIDE", 256)
    monkeypatch.setattr(tiles, "CHUNK_SIDE", 512)
    sizes: list[int] = []
    real = core_io.read_region

    def spy(path, x, y, w, h, level=0, **kwargs):  # noqa: ANN001
        sizes.append(w * h)
        return real(path, x, y, w, h, level, **kwargs)

    monkeypatch.setattr(core_io, "read_region", spy)
    window = make_window(no_models)
    window.document.large_image_pixels = 1_000_000
    assert window.open_image(flat, analyse=False)
    item = window.image_item
    assert item.source.thumbnail_is_slow
    ready: list = []
    item.thumbnail_changed.append(ready.append)
    qtbot.waitUntil(lambda: bool(ready), timeout=20000)  # the overview arrives from a worker
    thumb = ready[0].convertToFormat(QImage.Format.Format_RGB888)
    assert (thumb.width(), thumb.height()) == item.source.levels[-1]
    expected = cv2.resize(image, (thumb.width(), thumb.height()), interpolation=cv2.INTER_AREA)
    got = np.array(thumb.constBits(), np.uint8).reshape(thumb.height(), thumb.bytesPerLine())
    got = got[:, : thumb.width() * 3].reshape(thumb.height(), thumb.width(), 3)
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 4.0
    assert max(sizes) <= 512 * 512  # never more than a chunk at once
