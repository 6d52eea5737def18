"""Slides that tifffile reads: OME-TIFF, and TIFF pyramids OpenSlide does not see or open.

Pixels come through :func:`~leukview.core.io.read_region` (tile by tile, the
memory budget and the damaged-file checks of :mod:`leukview.core.io`); the
associated images are the file's other series (an SVS's ``Label``,
``Macro``, ``Thumbnail``) when they are small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ImageReadError
from ._slide import Slide

__all__ = ["TiffSlide", "tiff_level_count"]

# Associated images are read whole: only small ones.
_MAX_ASSOCIATED_PIXELS = 16_000_000


def tiff_level_count(path: Path) -> tuple[str, int] | None:
    """``('OME-TIFF' or 'TIFF', number of pyramid levels)`` of a TIFF, None when tifffile cannot read it."""
    from ._tiff import open_tiff

    try:
        with open_tiff(path) as tif:
            if not tif.series:
                return None
            return ("OME-TIFF" if tif.is_ome else "TIFF", len(tif.series[0].levels))
    except Exception:  # any parse failure: tifffile is no use for this file
        return None


class TiffSlide(Slide):
    """A TIFF (OME-TIFF, pyramidal or flat) read with tifffile (see :class:`~leukview.core.io.Slide`)."""

    backend = "tifffile"

    def __init__(self, path: Path) -> None:
        from ._read import image_info

        info = image_info(path)
        w0, h0 = info.levels[0] if info.levels else (info.width, info.height)
        levels = tuple(info.levels) if info.levels else ((info.width, info.height),)
        downsamples = tuple((w0 / max(w, 1) + h0 / max(h, 1)) / 2.0 for w, h in levels)
        from ._tiff import open_tiff

        associated: dict[str, int] = {}
        try:
            with open_tiff(path) as tif:
                for index, series in enumerate(tif.series[1:], start=1):
                    name = (series.name or "").strip().lower()
                    if name and name not in associated and int(np.prod(series.shape[:2])) <= _MAX_ASSOCIATED_PIXELS:
                        associated[name] = index
        except Exception:  # image_info read the header; only the extras are lost
            associated = {}
        super().__init__(
            path,
            vendor="ome-tiff" if info.format == "OME-TIFF" else "tiff",
            levels=levels,
            downsamples=downsamples,
            pixel_size_um=info.pixel_size_um,
            associated=tuple(associated),
            warnings=tuple(info.warnings),
        )
        self._series = associated
        # one small read of the coarsest level: undecodable data fails here, not mid-analysis
        level = len(self.levels) - 1
        self._read(0, 0, min(self.levels[level][0], 64), min(self.levels[level][1], 64), level)

    def _read(self, x: int, y: int, width: int, height: int, level: int) -> np.ndarray:
        from ._read import read_region

        return read_region(self.path, x, y, width, height, level)

    def associated_image(self, name: str) -> np.ndarray:
        index = self._series.get(name)
        if index is None:
            raise KeyError(name)
        from ._tiff import open_tiff

        try:
            with open_tiff(self.path) as tif:
                data = tif.series[index].asarray()
        except Exception as exc:
            raise ImageReadError(f"the associated image {name!r} cannot be decoded ({exc})", self.path) from exc
        if data.ndim == 2:
            data = np.repeat(data[..., None], 3, axis=2)
        if data.dtype != np.uint8 or data.ndim != 3 or data.shape[2] < 3:
            raise ImageReadError(f"the associated image {name!r} is not 8-bit RGB", self.path)
        return np.ascontiguousarray(data[..., :3])
