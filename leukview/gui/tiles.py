"""Tiled, multi-resolution image display with bounded memory.

A :class:`TileSource` serves RGB tiles at pyramid levels; :class:`TiledImageItem`
draws the tiles a view needs at the level that matches its zoom, through an
LRU :class:`TileCache` of a fixed byte budget. Small images are served from
memory (:class:`ArrayTileSource`); large or tiled TIFFs are read tile by tile
from disk (:class:`RegionTileSource`, via :func:`leukview.core.io.read_region`)
in worker threads, so a 20000x20000 slide pans with a few hundred MB at most.
"""

from __future__ import annotations

import collections
import math
import os
import threading
from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRectF, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

TILE = 512
THUMBNAIL_SIDE = 1024
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
#: Largest side (file pixels) read at once when a coarse level is made from a finer one.
CHUNK_SIDE = 2048

TileKey = tuple[int, int, int]  # (level, column, row)


def to_qimage(rgb: np.ndarray) -> QImage:
    """An RGB uint8 array (H, W, 3) as a QImage that owns a copy of its pixels."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width = rgb.shape[:2]
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()  # the array may go away; the QImage must not point into it


def to_qimage_rgba(rgba: np.ndarray) -> QImage:
    """An RGBA uint8 array (H, W, 4), straight alpha, as a QImage owning its pixels."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    height, width = rgba.shape[:2]
    image = QImage(rgba.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
    return image.copy()


class TileSource:
    """An image as a pyramid of levels; level 0 is full resolution.

    Subclasses set ``width``, ``height``, ``levels`` (list of (width, height)
    per level) and implement :meth:`read_level`.
    """

    width: int
    height: int
    levels: list[tuple[int, int]]
    #: Tiles are cheap to read (in memory): the item reads them while painting.
    fast = False
    #: The thumbnail takes long to make (read it in the background).
    thumbnail_is_slow = False

    def downsample(self, level: int) -> float:
        """Level-0 pixels per pixel of ``level``."""
        return self.width / self.levels[level][0]

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """RGB uint8 (h, w, 3) of a rectangle in ``level``'s own pixel coordinates."""
        raise NotImplementedError

    def thumbnail(self) -> np.ndarray:
        """The whole image at the coarsest level (at most ~THUMBNAIL_SIDE px a side)."""
        level = len(self.levels) - 1
        w, h = self.levels[level]
        return self.read_level(level, 0, 0, w, h)

    def close(self) -> None:
        """Release files and memory."""


def pyramid_sizes(width: int, height: int, smallest: int | None = None) -> list[tuple[int, int]]:
    """Level sizes halving from (width, height) until the longer side is at most ``smallest``."""
    smallest = smallest or THUMBNAIL_SIDE
    sizes = [(width, height)]
    while max(sizes[-1]) > smallest:
        w, h = sizes[-1]
        sizes.append((max(1, (w + 1) // 2), max(1, (h + 1) // 2)))
    return sizes


class ArrayTileSource(TileSource):
    """An image held in memory; coarser levels are built on first use."""

    fast = True

    def __init__(self, image: np.ndarray) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
        self.height, self.width = image.shape[:2]
        self.levels = pyramid_sizes(self.width, self.height)
        self._arrays: dict[int, np.ndarray] = {0: image}
        self._lock = threading.Lock()

    @property
    def image(self) -> np.ndarray:
        return self._arrays[0]

    def _level(self, level: int) -> np.ndarray:
        with self._lock:  # levels are built once, whichever thread asks first
            return self._level_unlocked(level)

    def _level_unlocked(self, level: int) -> np.ndarray:
        if level not in self._arrays:
            previous = self._level_unlocked(level - 1)
            w, h = self.levels[level]
            self._arrays[level] = cv2.resize(previous, (w, h), interpolation=cv2.INTER_AREA)
        return self._arrays[level]

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._level(level)[y : y + h, x : x + w]

    def close(self) -> None:
        self._arrays = {0: self._arrays[0][:1, :1]}


class SourceLevel(NamedTuple):
    """Where a :class:`ChunkedTileSource` reads a view level from.

    A view level pixel ``(x, y)`` is source pixel ``(x * scale[0] / divisor[0],
    y * scale[1] / divisor[1])`` of source level ``level``, ``size`` (width, height).
    """

    level: int
    size: tuple[int, int]
    scale: tuple[float, float]
    divisor: tuple[float, float]
    #: Source pixels per output pixel that sizes the chunks read at once.
    ratio: float


class ChunkedTileSource(TileSource):
    """A pyramid read from a file's own levels, each view level from the nearest finer one.

    Subclasses say which source level serves a view level (:meth:`_source_level`)
    and read a region of it (:meth:`_read_source`). A source without a small
    enough level is read in chunks and shrunk chunk by chunk (bounded memory);
    the coarsest view level is the thumbnail, read once.
    """

    def __init__(self) -> None:
        self._thumb: np.ndarray | None = None
        self._thumb_lock = threading.Lock()

    def _source_level(self, level: int) -> SourceLevel:
        """The source level a view level is read from."""
        raise NotImplementedError

    def _read_source(self, index: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """RGB uint8 (h, w, 3) of a rectangle of source level ``index``, in its own pixels."""
        raise NotImplementedError

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        if level == len(self.levels) - 1:  # the coarsest level is the thumbnail: read it once
            return self.thumbnail()[y : y + h, x : x + w]
        return self._read_level(level, x, y, w, h)

    def _read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        index, (sw, sh), (ax, ay), (bx, by), ratio = self._source_level(level)
        step = max(1, int(CHUNK_SIDE / max(ratio, 1.0)))
        out = np.empty((h, w, 3), np.uint8)
        for oy in range(0, h, step):
            for ox in range(0, w, step):
                ow, oh = min(step, w - ox), min(step, h - oy)
                x0 = int(math.floor((x + ox) * ax / bx))
                y0 = int(math.floor((y + oy) * ay / by))
                x1 = max(x0 + 1, min(sw, int(math.ceil((x + ox + ow) * ax / bx))))
                y1 = max(y0 + 1, min(sh, int(math.ceil((y + oy + oh) * ay / by))))
                region = self._read_source(index, x0, y0, x1 - x0, y1 - y0)
                if region.shape[:2] != (oh, ow):
                    region = cv2.resize(region, (ow, oh), interpolation=cv2.INTER_AREA)
                out[oy : oy + oh, ox : ox + ow] = region
        return out

    def thumbnail(self) -> np.ndarray:
        with self._thumb_lock:  # tile threads asking meanwhile wait for this one reading
            if self._thumb is None:
                level = len(self.levels) - 1
                w, h = self.levels[level]
                self._thumb = self._read_level(level, 0, 0, w, h)
            return self._thumb


class RegionTileSource(ChunkedTileSource):
    """A large image read region by region from its file (never loaded whole).

    File levels (a pyramidal TIFF's own) are used where they exist; a level
    the file lacks is read from the nearest finer file level and shrunk.
    """

    def __init__(self, path: str | os.PathLike[str], info: object) -> None:
        from leukview.core import io as core_io

        super().__init__()
        self.path = os.fspath(path)
        self._read_region = core_io.read_region
        self.width = int(info.width)  # type: ignore[attr-defined]
        self.height = int(info.height)  # type: ignore[attr-defined]
        self.file_levels = _file_level_sizes(info, self.width, self.height)
        self.levels = pyramid_sizes(self.width, self.height)

    def _file_level_for(self, downsample: float) -> int:
        # the coarsest file level still at least as fine as asked
        best = 0
        for index, (w, _) in enumerate(self.file_levels):
            if self.width / w <= downsample * 1.01:
                best = index
        return best

    def _source_level(self, level: int) -> SourceLevel:
        target = self.downsample(level)
        file_level = self._file_level_for(target)
        fw, fh = self.file_levels[file_level]
        sx, sy = self.width / fw, self.height / fh  # level-0 pixels per file-level pixel
        # file-level pixels per output pixel (>= 1): target / sx
        return SourceLevel(file_level, (fw, fh), (target, target), (sx, sy), target / sx)

    def _read_source(self, index: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._read_region(self.path, x, y, w, h, level=index)

    @property
    def thumbnail_is_slow(self) -> bool:  # type: ignore[override]
        """True when the file has no small level: the overview must be read from far finer pixels."""
        fw, fh = self.file_levels[-1]
        tw, th = self.levels[-1]
        return fw * fh > 16 * tw * th


def _file_level_sizes(info: object, width: int, height: int) -> list[tuple[int, int]]:
    """(width, height) of each level the file has, from ImageInfo.levels in its forms."""
    levels = getattr(info, "levels", None)
    if isinstance(levels, int) or levels is None:
        count = max(1, int(levels or 1))
        return [(max(1, width >> i), max(1, height >> i)) for i in range(count)]
    sizes = []
    for item in levels:
        if isinstance(item, (tuple, list)) and len(item) >= 2:
            sizes.append((int(item[0]), int(item[1])))
        elif hasattr(item, "width"):
            sizes.append((int(item.width), int(item.height)))
    return sizes or [(width, height)]


class TileCache:
    """Least-recently-used QImage tiles under a byte budget."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._tiles: collections.OrderedDict[TileKey, QImage] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: TileKey) -> QImage | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, key: TileKey, tile: QImage) -> None:
        with self._lock:
            if key in self._tiles:
                self.bytes -= self._tiles.pop(key).sizeInBytes()
            self._tiles[key] = tile
            self.bytes += tile.sizeInBytes()
            while self.bytes > self.max_bytes and len(self._tiles) > 1:
                _, old = self._tiles.popitem(last=False)
                self.bytes -= old.sizeInBytes()

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._tiles)


class _LoaderSignals(QObject):
    loaded = Signal(object)  # TileKey
    failed = Signal(str)
    thumbnail = Signal(object)  # QImage


class _ThumbnailJob(QRunnable):
    def __init__(self, source: TileSource, signals: _LoaderSignals) -> None:
        super().__init__()
        self.source, self.signals = source, signals

    def run(self) -> None:
        try:
            self.signals.thumbnail.emit(to_qimage(self.source.thumbnail()))
        except Exception as exc:  # the overview stays grey; tiles still load
            self.signals.failed.emit(f"overview: {exc}")


class _TileJob(QRunnable):
    """Loads the most recently requested tile still waiting (newest first: what the user sees now)."""

    def __init__(self, loader: TileLoader) -> None:
        super().__init__()
        self.loader = loader

    def run(self) -> None:
        self.loader._run_one()


class TileLoader:
    """Reads tiles in worker threads; asks for the newest first and forgets stale requests."""

    MAX_PENDING = 96

    def __init__(self, source: TileSource, cache: TileCache, read: Callable[[TileKey], QImage]) -> None:
        self.source, self.cache, self._read = source, cache, read
        self.signals = _LoaderSignals()
        self._pending: collections.OrderedDict[TileKey, None] = collections.OrderedDict()
        self._busy: set[TileKey] = set()
        self._lock = threading.Lock()
        self._pool = QThreadPool()
        self._pool.setMaxThreadCount(max(2, min(4, os.cpu_count() or 2)))
        self._closed = False

    def request(self, key: TileKey) -> None:
        with self._lock:
            if self._closed or key in self._busy:
                return
            if key in self._pending:
                self._pending.move_to_end(key)
                return
            self._pending[key] = None
            while len(self._pending) > self.MAX_PENDING:
                self._pending.popitem(last=False)
        self._pool.start(_TileJob(self))

    def _run_one(self) -> None:
        with self._lock:
            if not self._pending or self._closed:
                return
            key, _ = self._pending.popitem(last=True)
            self._busy.add(key)
        try:
            tile = self._read(key)
        except Exception as exc:  # a damaged tile must not take the viewer down
            self.signals.failed.emit(f"tile {key}: {exc}")
            tile = None
        finally:
            with self._lock:
                self._busy.discard(key)
        if tile is not None and not self._closed:
            self.cache.put(key, tile)
            self.signals.loaded.emit(key)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._pending.clear()
        self._pool.clear()
        self._pool.waitForDone(2000)


class TiledImageItem(QGraphicsItem):
    """The image in scene coordinates = level-0 pixels, drawn from cached tiles.

    While a tile loads, the thumbnail stands in for it, scaled up, so panning
    never shows holes. Set :attr:`synchronous` to read missing tiles while
    painting (exports and screenshots must not capture placeholders).
    """

    def __init__(self, source: TileSource, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        super().__init__()
        self.source = source
        self.cache = TileCache(cache_bytes)
        self.synchronous = False
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self._loader: TileLoader | None = None
        if not source.fast:
            self._loader = TileLoader(source, self.cache, self._read_tile)
            self._loader.signals.loaded.connect(self._tile_loaded)
        if self._loader is not None and source.thumbnail_is_slow:
            # a grey stand-in until the overview is read, so opening never blocks
            w, h = source.levels[-1]
            self._thumbnail = to_qimage(np.full((max(1, h // 8), max(1, w // 8), 3), 200, np.uint8))
            self._loader.signals.thumbnail.connect(self._thumbnail_ready)
            self._loader._pool.start(_ThumbnailJob(source, self._loader.signals))
        else:
            self._thumbnail = to_qimage(source.thumbnail())
        self.thumbnail_changed: list = []  # callbacks (QGraphicsItem is no QObject)

    @property
    def thumbnail(self) -> QImage:
        return self._thumbnail

    def _thumbnail_ready(self, image: QImage) -> None:
        self._thumbnail = image
        self.update()
        for callback in self.thumbnail_changed:
            callback(image)

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.source.width, self.source.height)

    def level_for_scale(self, scale: float) -> int:
        """The coarsest level with at least one image pixel per screen pixel at ``scale``."""
        best = 0
        for level in range(len(self.source.levels)):
            if self.source.downsample(level) <= max(1.0, 1.0 / max(scale, 1e-9)) * 1.001:
                best = level
        return best

    def tile_rect(self, key: TileKey) -> QRectF:
        """Where a tile lies in scene (level-0) coordinates."""
        level, col, row = key
        lw, lh = self.source.levels[level]
        sx, sy = self.source.width / lw, self.source.height / lh
        x, y = col * TILE, row * TILE
        w, h = min(TILE, lw - x), min(TILE, lh - y)
        return QRectF(x * sx, y * sy, w * sx, h * sy)

    def _read_tile(self, key: TileKey) -> QImage:
        level, col, row = key
        lw, lh = self.source.levels[level]
        x, y = col * TILE, row * TILE
        return to_qimage(self.source.read_level(level, x, y, min(TILE, lw - x), min(TILE, lh - y)))

    def _tile_loaded(self, key: TileKey) -> None:
        self.update(self.tile_rect(key))

    def visible_keys(self, rect: QRectF, level: int) -> list[TileKey]:
        """Tiles of ``level`` that cover a scene rectangle."""
        lw, lh = self.source.levels[level]
        sx, sy = self.source.width / lw, self.source.height / lh
        rect = rect.intersected(self.boundingRect())
        if rect.isEmpty():
            return []
        c0 = max(0, int(rect.left() / sx) // TILE)
        r0 = max(0, int(rect.top() / sy) // TILE)
        c1 = min((lw - 1) // TILE, int(math.ceil(rect.right() / sx)) // TILE)
        r1 = min((lh - 1) // TILE, int(math.ceil(rect.bottom() / sy)) // TILE)
        return [(level, c, r) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    def tiles_loaded(self, rect: QRectF, scale: float) -> bool:
        """Whether every tile a view of scene ``rect`` at ``scale`` shows is in the cache (none: False)."""
        keys = self.visible_keys(rect, self.level_for_scale(scale))
        return bool(keys) and all(self.cache.get(k) is not None for k in keys)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        scale = painter.worldTransform().m11() or 1.0
        level = self.level_for_scale(abs(scale))
        exposed = option.exposedRect.intersected(self.boundingRect())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, abs(scale) < 2.0)
        keys = self.visible_keys(exposed, level)
        missing = [k for k in keys if self.cache.get(k) is None]
        if missing and (self.source.fast or self.synchronous):
            for key in missing:
                self.cache.put(key, self._read_tile(key))
            missing = []
        if missing:
            # stand-in while the tiles load: the thumbnail, scaled up
            thumb = self._thumbnail
            sx = thumb.width() / self.source.width
            sy = thumb.height() / self.source.height
            source = QRectF(exposed.left() * sx, exposed.top() * sy, exposed.width() * sx, exposed.height() * sy)
            painter.drawImage(exposed, thumb, source)
            if self._loader is not None:
                for key in missing:
                    self._loader.request(key)
        # stretch each tile by one screen pixel so smooth scaling leaves no seam between tiles
        pad = 1.0 / max(abs(scale), 1e-9)
        for key in keys:
            tile = self.cache.get(key)
            if tile is not None:
                rect = self.tile_rect(key)
                if len(keys) > 1:
                    rect = rect.adjusted(0, 0, min(pad, rect.width() * 0.01 + pad), min(pad, rect.height() * 0.01 + pad))
                painter.drawImage(rect, tile)

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()
        self.cache.clear()
        self.source.close()
