"""Samples of any layout and depth to RGB ``uint8``: the white level, alpha on white.

The rules (effective bit depth, floats, compositing on white) are in the notes of
:mod:`leukview.core.io`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Layout",
    "band_rows",
    "band_temp_bytes",
    "is_plain_rgb8",
    "layout_for_channels",
    "to_rgb8",
    "white_level",
]

# Colour conversion runs in bands of about this many pixels to bound temporaries.
_BAND_PIXELS = 1_000_000
# Most bytes of temporaries per pixel of a band: a decoder's copy of the band's
# samples, and for anything but plain 8-bit colour the float32 copies of the
# colour samples and of alpha while they are scaled, rounded, clipped and blended.
_BAND_BYTES_LIGHT = 16
_BAND_BYTES_HEAVY = 64


@dataclass(frozen=True)
class Layout:
    """How the samples of a pixel make a colour."""

    kind: str  # 'grey' | 'rgb' | 'palette'
    alpha: int | None = None  # sample index of the alpha channel
    premultiplied: bool = False
    invert: bool = False  # TIFF MinIsWhite
    bits: int = 8
    colormap: np.ndarray | None = None  # (N, 3) uint8 for 'palette'
    max_sample: int | None = None  # TIFF MaxSampleValue, when given

    @property
    def ncolor(self) -> int:
        """Number of colour samples (3 for RGB, else 1) before any extra samples."""
        return 3 if self.kind == "rgb" else 1


def layout_for_channels(channels: int, bits: int) -> Layout:
    """The layout of a decoded PNG with 1 (grey), 2 (grey + alpha), 3 or 4 channels."""
    kind = "grey" if channels <= 2 else "rgb"
    alpha = {2: 1, 4: 3}.get(channels)
    return Layout(kind, alpha=alpha, bits=bits)


def white_level(color: np.ndarray, layout: Layout) -> float:
    """The sample value that becomes 255.

    Parameters
    ----------
    color : numpy.ndarray
        ``(H, W, C)`` colour samples (no alpha).
    layout : Layout
        Their layout; ``bits`` and ``max_sample`` bound the white level.

    Returns
    -------
    float
        1 for palette indices and booleans, ``2**bits - 1`` below 8 bits, 255 for
        8-bit samples, the TIFF MaxSampleValue when it is below the dtype's
        maximum, else the smallest ``2**n - 1`` (``n >= 8``) at least the data's
        maximum; for floats 1 when the maximum is <= 1, else the maximum.
    """
    dtype = color.dtype
    if layout.kind == "palette" or dtype == np.bool_:
        return 1.0
    if dtype.kind in "ui":
        if layout.bits < 8:
            return float(2**layout.bits - 1)
        if dtype.itemsize == 1:
            return 255.0
        top = np.iinfo(dtype).max
        if layout.max_sample is not None and 255 < layout.max_sample < top:
            return float(layout.max_sample)
        peak = int(color.max()) if color.size else 0
        bits = 8
        while (1 << bits) - 1 < peak:
            bits += 1
        return float((1 << bits) - 1)
    if dtype.kind == "f":
        fpeak = float(np.nanmax(color)) if color.size else 0.0
        return 1.0 if not math.isfinite(fpeak) or fpeak <= 1.0 else fpeak
    raise ValueError(f"samples of type {dtype} cannot be shown")


def band_rows(width: int) -> int:
    """Rows in one band of a conversion of an image ``width`` pixels wide (at least 1)."""
    return max(1, _BAND_PIXELS // max(width, 1))


def band_temp_bytes(
    width: int, height: int, layout: Layout | None = None, itemsize: int = 1
) -> int:
    """Upper bound on the temporaries of converting a ``width x height`` image in bands.

    Plain 8-bit grey or colour without alpha needs little beyond a copy of the
    band; alpha, palettes, inversion and samples wider than a byte need float
    temporaries (``layout=None`` assumes the worst).
    """
    light = (
        layout is not None
        and itemsize == 1
        and layout.bits == 8
        and layout.alpha is None
        and layout.kind != "palette"
        and not layout.invert
    )
    per_pixel = _BAND_BYTES_LIGHT if light else _BAND_BYTES_HEAVY
    return min(height, band_rows(width)) * width * per_pixel


def is_plain_rgb8(raw: np.ndarray, layout: Layout) -> bool:
    """Whether ``raw`` already is its own RGB uint8 conversion (three samples, no alpha)."""
    return (
        layout.kind == "rgb"
        and layout.alpha is None
        and not layout.invert
        and layout.bits == 8
        and raw.dtype == np.uint8
        and raw.ndim == 3
        and raw.shape[-1] == 3
        and raw.flags.c_contiguous
        and raw.flags.writeable
    )


def to_rgb8(
    raw: np.ndarray, layout: Layout, white: float, out: np.ndarray | None = None
) -> np.ndarray:
    """Samples to RGB uint8, in bands of rows to bound temporaries.

    Parameters
    ----------
    raw : numpy.ndarray
        ``(H, W, S)`` samples: the colour samples of ``layout`` first, then any
        extra samples (alpha at ``layout.alpha``).
    layout : Layout
        How the samples make a colour.
    white : float
        The sample value that becomes 255 (see :func:`white_level`).
    out : numpy.ndarray, optional
        ``(H, W, 3)`` uint8 to write into (a view of a larger image, say);
        a new array when omitted.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB, alpha composited on white (``out`` when given).
    """
    h, w = raw.shape[:2]
    if out is None:
        out = np.empty((h, w, 3), np.uint8)
    step = band_rows(w)
    for r0 in range(0, h, step):
        _band_to_rgb8(raw[r0 : r0 + step], layout, white, out[r0 : r0 + step])
    return out


def _alpha_white(dtype: np.dtype, bits: int) -> float:
    if dtype == np.bool_:
        return 1.0
    if dtype.kind in "ui":
        return float(2**bits - 1) if bits < 8 * dtype.itemsize else float(np.iinfo(dtype).max)
    return 1.0


def _band_to_rgb8(raw: np.ndarray, layout: Layout, white: float, out: np.ndarray) -> None:
    if layout.kind == "palette":
        cmap = layout.colormap
        assert cmap is not None  # a palette layout always carries its map
        rgb = cmap[np.clip(raw[..., 0], 0, len(cmap) - 1).astype(np.intp)]
    else:
        rgb = _scale_to_uint8(raw[..., : layout.ncolor], white)
        if layout.invert:
            rgb = 255 - rgb
    if layout.alpha is None:
        out[...] = rgb  # a grey (..., 1) band broadcasts to three channels
        return
    alpha = raw[..., layout.alpha : layout.alpha + 1].astype(np.float32)
    alpha = np.clip(alpha / _alpha_white(raw.dtype, layout.bits), 0.0, 1.0)
    blend = np.empty(out.shape, np.float32)
    blend[...] = rgb
    if not layout.premultiplied:
        blend *= alpha
    blend += 255.0 * (1.0 - alpha)  # on white: slides are bright-field
    np.rint(blend, out=blend)
    np.clip(blend, 0, 255, out=blend)
    out[...] = blend


def _scale_to_uint8(color: np.ndarray, white: float) -> np.ndarray:
    if color.dtype == np.uint8 and white == 255.0:
        return color
    if color.dtype == np.bool_:
        return color.astype(np.uint8) * np.uint8(255)
    f = color.astype(np.float32)
    if f.dtype.kind == "f":
        np.nan_to_num(f, copy=False, nan=0.0, posinf=white, neginf=0.0)
    f *= np.float32(255.0 / white)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)
