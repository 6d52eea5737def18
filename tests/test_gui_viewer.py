"""The slide viewer: tiles and levels with bounded memory, zoom to the cursor, keys, field analysis."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")
tifffile = pytest.importorskip("tifffile")
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QImage, QPainter, QWheelEvent  # noqa: E402

from leukview.core import io as core_io  # noqa: E402
from leukview.core.preprocess import crop_box  # noqa: E402
from leukview.gui import mainwindow as mainwindow_mod  # noqa: E402
from leukview.gui.mainwindow import MainWindow  # noqa: E402
from leukview.gui.settings import AppSettings  # noqa: E402
from leukview.gui.tiles import ArrayTileSource, RegionTileSource, TileCache, to_qimage  # noqa: E402

pytestmark = pytest.mark.gui
FIELDS = ("BloodImage_00010.jpg", "BloodImage_00214.jpg", "BloodImage_00056.jpg", "BloodImage_00262.jpg")


@pytest.fixture(scope="module")
def mosaic(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 3x3 mosaic of real BCCD fields as a tiled, pyramidal TIFF (1920x1440, 3 levels)."""
    fields = [
        cv2.cvtColor(cv2.imread(str(data_dir / "bccd" / "JPEGImages" / name)), cv2.COLOR_BGR2RGB) for name in FIELDS
    ]
    rows = [np.hstack([fields[(r + c) % len(fields)] for c in range(3)]) for r in range(3)]
    image = np.ascontiguousarray(np.vstack(rows))
    path = tmp_path_factory.mktemp("tiff") / "mosaic.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(256, 256), photometric="rgb", compression="zlib", subifds=2,
                  resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")  # fmt: skip
        for factor in (2, 4):
            small = cv2.resize(image, (image.shape[1] // factor, image.shape[0] // factor), interpolation=cv2.INTER_AREA)
            tif.write(small, tile=(256, 256), photometric="rgb", compression="zlib", subfiletype=1)
    return path, image


def make_window(qtbot, tmp_path: Path) -> MainWindow:  # noqa: ANN001
    empty = tmp_path / "no-models"
    empty.mkdir(exist_ok=True)
    window = MainWindow(AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)), empty)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    return window


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


def test_tile_cache_keeps_to_its_budget():
    tile = to_qimage(np.zeros((64, 64, 3), np.uint8))
    cache = TileCache(max_bytes=tile.sizeInBytes() * 3)
    for col in range(5):
        cache.put((0, col, 0), tile)
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes
    assert cache.get((0, 0, 0)) is None and cache.get((0, 4, 0)) is not None
    cache.get((0, 2, 0))  # recently used: survives the next insertion
    cache.put((0, 5, 0), tile)
    assert cache.get((0, 2, 0)) is not None and cache.get((0, 3, 0)) is None


def test_large_tiff_pans_from_tiles_with_bounded_memory(qtbot, tmp_path: Path, mosaic, monkeypatch):
    path, image = mosaic
    monkeypatch.setattr(mainwindow_mod, "LARGE_IMAGE_PIXELS", 1_000_000)

    def never(*args, **kwargs):  # a large image must not be decoded whole
        raise AssertionError("read_image called on a large image")

    monkeypatch.setattr(core_io, "read_image", never)
    window = make_window(qtbot, tmp_path)
    assert window.open_image(path, analyse=False)
    assert isinstance(window.source, RegionTileSource)
    assert window.pixel_size_um == pytest.approx(0.5)  # read from the TIFF
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


def test_field_analysis_of_a_large_image_keeps_image_coordinates(qtbot, tmp_path: Path, mosaic, monkeypatch):
    from leukview.core.segment import segment

    path, image = mosaic
    monkeypatch.setattr(mainwindow_mod, "LARGE_IMAGE_PIXELS", 1_000_000)
    monkeypatch.setattr(mainwindow_mod, "MAX_FIELD_SIDE", 800)
    window = make_window(qtbot, tmp_path)
    assert window.open_image(path, analyse=False)
    window.view.set_scale(1.0)
    window.view.centerOn(QPointF(1000, 700))
    window.analyse()
    qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=60000)
    x, y, w, h = window._field_rect
    assert (w, h) == (800, 800) or (w <= 800 and h <= 800)
    assert x <= 1000 <= x + w and y <= 700 <= y + h
    assert (window.analysis.width, window.analysis.height) == (1920, 1440)
    expected = segment(np.ascontiguousarray(image[y : y + h, x : x + w])).cells
    got = window.analysis.cells
    assert len(got) == len(expected) > 0
    for a, b in zip(got, expected, strict=True):
        assert a.centroid == pytest.approx((b.centroid[0] + x, b.centroid[1] + y))
        assert a.bbox == (b.bbox[0] + x, b.bbox[1] + y, b.bbox[2] + x, b.bbox[3] + y)
    assert "Large image" in window.banner.text()
    # the gallery crops come from the file at the cells' image coordinates
    wbc = next(c for c in got if c.kind == "wbc")
    crop = window.crop_for(wbc)
    x0, y0, x1, y1 = crop_box(wbc, mainwindow_mod.GALLERY_RULE)
    assert crop is not None and crop.shape[:2] == (y1 - y0, x1 - x0)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, 1920), min(y1, 1440)
    np.testing.assert_array_equal(crop[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], image[cy0:cy1, cx0:cx1])


def test_wheel_zooms_about_the_cursor_and_keys_navigate(qtbot, tmp_path: Path, data_dir: Path):
    window = make_window(qtbot, tmp_path)
    path = data_dir / "bccd" / "JPEGImages" / "BloodImage_00214.jpg"
    assert window.open_image(path, analyse=False)
    assert isinstance(window.source, ArrayTileSource)
    qtbot.wait(50)  # the deferred fit after opening
    view = window.view
    view.fit()
    fit = view.scale_factor
    assert fit == pytest.approx(view.fit_scale() * 0.98, rel=1e-3)
    cursor = QPoint(view.viewport().width() // 3, view.viewport().height() // 3)
    under = view.mapToScene(cursor)
    event = QWheelEvent(
        QPointF(cursor), QPointF(view.viewport().mapToGlobal(cursor)), QPoint(0, 0), QPoint(0, 240),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    view.wheelEvent(event)
    assert view.scale_factor == pytest.approx(fit * 1.0015**240)
    after = view.mapToScene(cursor)
    assert abs(after.x() - under.x()) < 2 / view.scale_factor + 0.5
    assert abs(after.y() - under.y()) < 2 / view.scale_factor + 0.5

    view.setFocus()
    centre = view.visible_rect().center()
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.visible_rect().center().x() > centre.x()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.visible_rect().center().y() > centre.y()
    window.activateWindow()
    scale = view.scale_factor
    window.act_zoom_out.trigger()
    assert view.scale_factor == pytest.approx(scale * 0.8)
    window.act_actual.trigger()
    assert view.scale_factor == pytest.approx(1.0)
    window.act_fit.trigger()
    assert view.scale_factor == pytest.approx(fit)
    # a scale bar appears once the pixel size is known
    assert view.pixel_size_um is None
    window.set_pixel_size(0.1, "set by the user")
    assert view.pixel_size_um == 0.1 and "0.1 µm/px" in window.pixel_label.text()


def test_qt_binding_refcount_bug_is_neutralised():
    """PySide6 6.12 on Python 3.11 drops a reference to None per Python paint(): guarded."""
    from PySide6.QtCore import QRectF
    from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene

    from leukview.gui import _qtfix

    class Item(QGraphicsItem):
        def boundingRect(self) -> QRectF:
            return QRectF(0, 0, 4, 4)

        def paint(self, painter, option, widget=None) -> None:  # noqa: ANN001
            pass

    scene = QGraphicsScene()
    scene.addItem(Item())
    target = QImage(8, 8, QImage.Format.Format_RGB32)
    before = sys.getrefcount(None)
    for _ in range(50):
        painter = QPainter(target)
        scene.render(painter)
        painter.end()
    leaked = before - sys.getrefcount(None)
    if leaked > 40 and sys.version_info < (3, 12):
        assert _qtfix.GUARDED and sys.getrefcount(None) > 1 << 39
    assert _qtfix.needs_guard("6.12.0", (3, 11)) and not _qtfix.needs_guard("6.11.3", (3, 11))
    assert not _qtfix.needs_guard("6.12.0", (3, 12))


def test_tiff_without_pyramid_opens_at_once_and_reads_in_chunks(qtbot, tmp_path: Path, mosaic, monkeypatch):
    from leukview.gui import tiles

    _, image = mosaic
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, image, tile=(256, 256), photometric="rgb", compression="zlib")
    monkeypatch.setattr(mainwindow_mod, "LARGE_IMAGE_PIXELS", 1_000_000)
    monkeypatch.setattr(tiles, "THUMBNAIL_SIDE", 256)
    monkeypatch.setattr(tiles, "CHUNK_SIDE", 512)
    sizes: list[int] = []
    real = core_io.read_region

    def spy(path, x, y, w, h, level=0, **kwargs):  # noqa: ANN001
        sizes.append(w * h)
        return real(path, x, y, w, h, level, **kwargs)

    monkeypatch.setattr(core_io, "read_region", spy)
    window = make_window(qtbot, tmp_path)
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
