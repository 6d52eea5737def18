"""Whole-slide files through OpenSlide (the ``openslide-bin`` wheel: no system library).

OpenSlide's reads return non-premultiplied RGBA; transparent pixels (outside
the scanned area, missing tiles) are composited on white, like every other
reader of :mod:`leukview.core.io`. A file OpenSlide recognises but cannot open
or decode is an :class:`~leukview.core.errors.ImageReadError` with its reason:
the handle is probed with one small read when opened, and an error while
reading (after which OpenSlide refuses every further call on that handle)
reopens the handle once so that one damaged tile fails only its own region.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError
from ._slide import Slide, plausible_pixel_size

__all__ = ["OpenSlideSlide", "detect_vendor", "openslide_available"]

# Per-handle tile cache: enough for the tiles of a few analysis windows.
_CACHE_BYTES = 64 * 1024 * 1024


def _module() -> Any | None:
    try:
        import openslide
    except (ImportError, OSError):  # no wheel, or its library failed to load
        return None
    return openslide


def openslide_available() -> bool:
    """Whether OpenSlide (``openslide-python`` and its library) can be used here."""
    return _module() is not None


def detect_vendor(path: Path) -> str | None:
    """OpenSlide's vendor name for a file (``aperio``, ``dicom``, ``generic-tiff``, ...), or None."""
    openslide = _module()
    if openslide is None:
        return None
    try:
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:  # any failure to sniff is "not a slide OpenSlide knows"
        return None


def _rgb(rgba: np.ndarray) -> np.ndarray:
    """Non-premultiplied RGBA to RGB on white."""
    import cv2

    if rgba.ndim != 3 or rgba.shape[2] != 4:
        return np.ascontiguousarray(rgba[..., :3])
    alpha = rgba[..., 3:4]
    if int(alpha.min()) == 255:  # opaque (nearly always): one fast copy
        return np.asarray(cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), np.uint8)
    a = alpha.astype(np.uint16)
    out = (rgba[..., :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


class OpenSlideSlide(Slide):
    """A slide read by OpenSlide (see :class:`~leukview.core.io.Slide`)."""

    backend = "openslide"

    def __init__(self, path: Path, vendor: str | None = None) -> None:
        openslide = _module()
        if openslide is None:
            raise ImageReadError("OpenSlide is not installed (pip install openslide-python openslide-bin)", path)
        self._openslide = openslide
        handle = self._open(path)
        props = {str(k): str(v) for k, v in handle.properties.items()}
        warnings: list[str] = []
        mpp_x = plausible_pixel_size(props.get("openslide.mpp-x"), "openslide.mpp-x", warnings)
        mpp_y = plausible_pixel_size(props.get("openslide.mpp-y"), "openslide.mpp-y", warnings)
        if mpp_x is not None and mpp_y is not None and abs(mpp_x - mpp_y) > 0.02 * mpp_x:
            warnings.append(f"pixels are not square ({mpp_x:g} x {mpp_y:g} µm); the x size is used")
        super().__init__(
            path,
            vendor=vendor or props.get("openslide.vendor", "unknown"),
            levels=tuple(handle.level_dimensions),
            downsamples=tuple(handle.level_downsamples),
            pixel_size_um=mpp_x if mpp_x is not None else mpp_y,
            properties=props,
            associated=tuple(sorted(handle.associated_images.keys())),
            warnings=tuple(warnings),
        )
        self._handle = handle
        try:  # one small read of the coarsest level: a file whose tiles cannot be decoded fails here
            level = len(self.levels) - 1
            self._read(0, 0, min(self.levels[level][0], 64), min(self.levels[level][1], 64), level)
        except ImageReadError:
            self.close()
            raise

    def _open(self, path: Path) -> Any:
        try:
            handle = self._openslide.OpenSlide(str(path))
        except self._openslide.OpenSlideUnsupportedFormatError as exc:
            raise ImageReadError("OpenSlide does not recognise this file as a slide", path) from exc
        except self._openslide.OpenSlideError as exc:
            raise ImageReadError(f"the slide is damaged: OpenSlide cannot open it ({exc})", path) from exc
        except OSError as exc:
            raise ImageReadError(f"cannot open the slide ({exc.strerror or exc})", path) from exc
        # older OpenSlide has no per-handle cache: its default one
        with contextlib.suppress(AttributeError, self._openslide.OpenSlideError):
            handle.set_cache(self._openslide.OpenSlideCache(_CACHE_BYTES))
        return handle

    def _read(self, x: int, y: int, width: int, height: int, level: int) -> np.ndarray:
        ds = self.downsamples[level]
        # OpenSlide places a region by level-0 coordinates
        location = (int(round(x * ds)), int(round(y * ds)))
        try:
            image = self._handle.read_region(location, level, (width, height))
        except self._openslide.OpenSlideError as exc:
            self._reopen()
            raise ImageReadError(
                f"the slide is damaged: OpenSlide cannot decode the region {width} x {height} at "
                f"({x}, {y}) of level {level} ({exc})",
                self.path,
            ) from exc
        return _rgb(np.asarray(image))

    def _reopen(self) -> None:
        with self._lock:
            with contextlib.suppress(Exception):  # an errored handle may refuse even to close
                self._handle.close()
            with contextlib.suppress(ImageReadError):  # the next read reports it
                self._handle = self._open(self.path)

    def associated_image(self, name: str) -> np.ndarray:
        if name not in self.associated:
            raise KeyError(name)
        try:
            image = self._handle.associated_images[name]
        except self._openslide.OpenSlideError as exc:
            self._reopen()
            raise ImageReadError(f"the associated image {name!r} cannot be decoded ({exc})", self.path) from exc
        return _rgb(np.asarray(image))

    def close(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            with contextlib.suppress(Exception):  # closing twice or an errored handle
                handle.close()
