"""A whole slide shown through the tiled view: :class:`SlideTileSource`, and its pixels as an array.

:class:`SlideTileSource` serves the view's pyramid from a
:class:`~leukview.core.io.Slide` (any backend :func:`~leukview.core.io.open_slide`
picks: OpenSlide, tifffile, a plain image). Opening reads the header only;
every view level is read on demand from the slide level nearest it, so the
first view of a 5 Gpx slide costs one read of its coarsest level, whatever
its size. :class:`SlidePixels` lets code that slices a field's pixel array
(the case's report and gallery) read a slide's regions instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .tiles import ChunkedTileSource, SourceLevel, pyramid_sizes

if TYPE_CHECKING:
    from leukview.core.io import Slide

__all__ = ["SlidePixels", "SlideTileSource"]


class SlideTileSource(ChunkedTileSource):
    """The view's pyramid of a slide, each level read from the slide's nearest finer level.

    Parameters
    ----------
    slide : Slide
        Open; closed by :meth:`close`.
    """

    def __init__(self, slide: Slide) -> None:
        super().__init__()
        self.slide = slide
        self.path = slide.path
        self.width, self.height = slide.width, slide.height
        self.levels = pyramid_sizes(self.width, self.height)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SlideTileSource:
        """Open a slide file (:func:`~leukview.core.io.open_slide`: ImageReadError when it cannot)."""
        from leukview.core.io import open_slide

        return cls(open_slide(path))

    def _source_level(self, level: int) -> SourceLevel:
        lw, lh = self.levels[level]
        target = self.width / lw, self.height / lh  # level-0 pixels per output pixel
        index = self.slide.best_level(min(target))
        sw, sh = self.slide.levels[index]
        fx, fy = target[0] * sw / self.width, target[1] * sh / self.height  # slide-level px per output px
        return SourceLevel(index, (sw, sh), (fx, fy), (1.0, 1.0), max(fx, fy))

    def _read_source(self, index: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self.slide.read_region(x, y, w, h, index)

    @property
    def thumbnail_is_slow(self) -> bool:  # type: ignore[override]
        """True when the slide has no small level: the overview is read in the background."""
        sw, sh = self.slide.levels[-1]
        tw, th = self.levels[-1]
        return sw * sh > 16 * tw * th

    def close(self) -> None:
        self.slide.close()


class SlidePixels:
    """A slide's level-0 pixels as a read-only ``(height, width, 3)`` array-like.

    ``pixels[y0:y1, x0:x1]`` reads that region (a step reads the thumbnail,
    sampled); an index array of rows (``pixels[rows][:, cols]``, how a
    contact sheet samples a field) is sampled from the thumbnail too. So the
    case's gallery, report cells and contact sheet work on a slide without
    reading it whole.
    """

    dtype = np.dtype(np.uint8)
    ndim = 3

    def __init__(self, source: SlideTileSource) -> None:
        self.source = source
        self.shape = (source.height, source.width, 3)

    def _sample(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        thumb = self.source.thumbnail()
        th, tw = thumb.shape[:2]
        ys = np.clip((rows * th / self.shape[0]).astype(int), 0, th - 1)
        xs = np.clip((cols * tw / self.shape[1]).astype(int), 0, tw - 1)
        return thumb[ys][:, xs]

    def __getitem__(self, key: Any) -> Any:
        key = key if isinstance(key, tuple) else (key,)
        ky, kx, kc = (*key, slice(None), slice(None))[:3]
        h, w = self.shape[:2]
        if not isinstance(ky, slice):
            return _Rows(self, np.asarray(ky, int).ravel())[(slice(None), kx, kc)]
        y0, y1, sy = ky.indices(h)
        if not isinstance(kx, slice):
            return self._sample(np.arange(y0, y1, sy), np.asarray(kx, int).ravel())[..., kc]
        x0, x1, sx = kx.indices(w)
        if y1 <= y0 or x1 <= x0:
            return np.empty((max(0, y1 - y0), max(0, x1 - x0), 3), np.uint8)[..., kc]
        if sy > 1 or sx > 1:
            return self._sample(np.arange(y0, y1, sy), np.arange(x0, x1, sx))[..., kc]
        return self.source.slide.read_region(x0, y0, x1 - x0, y1 - y0, 0)[..., kc]


class _Rows:
    """Some rows of a :class:`SlidePixels` (``pixels[rows]``), indexed next by columns."""

    def __init__(self, pixels: SlidePixels, rows: np.ndarray) -> None:
        self.pixels, self.rows = pixels, rows
        self.shape = (len(rows), pixels.shape[1], 3)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        _, kx, kc = (*key, slice(None), slice(None))[:3]
        cols = np.arange(*kx.indices(self.shape[1])) if isinstance(kx, slice) else np.asarray(kx, int).ravel()
        return self.pixels._sample(self.rows, cols)[..., kc]
