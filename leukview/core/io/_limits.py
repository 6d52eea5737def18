"""The two limits of a read: pixels in one decoded array, and memory for one read.

The pixel limit stops decompression bombs; the memory budget stops a read whose
decoder, output and temporaries together would not fit (see the notes of
:mod:`leukview.core.io`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from ..errors import ImageReadError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_READ_BYTES",
    "MAX_PIXELS_ENV",
    "MAX_READ_BYTES_ENV",
    "bomb_error",
    "format_bytes",
    "max_pixels_limit",
    "max_read_bytes_limit",
    "memory_error",
]

#: Largest image, in pixels (width x height), decoded in one array unless the
#: caller or ``$LEUKVIEW_MAX_PIXELS`` says otherwise: 500 million pixels, i.e.
#: 1.5 GB as RGB uint8. A 20000 x 20000 region (400 Mpx) fits; a header that
#: claims billions of pixels (a decompression bomb) does not.
DEFAULT_MAX_PIXELS = 500_000_000

#: Environment variable that overrides :data:`DEFAULT_MAX_PIXELS`.
MAX_PIXELS_ENV = "LEUKVIEW_MAX_PIXELS"

#: Most memory, in bytes, that one read (:func:`~leukview.core.io.read_image`, or
#: one :func:`~leukview.core.io.read_region`) may allocate: the decoder's own image
#: and buffers, the RGB result and the conversion's temporaries, as estimated from
#: the header before any pixel is decoded. 1 GiB: a 12000 x 12000 RGB JPEG (7 bytes
#: a pixel while it is decoded: Pillow's 4 and the result's 3) or an 18000 x 18000
#: RGB TIFF fits; a 20000 x 20000 grey PNG (a 440 KB file, 1.5 GiB to read) does
#: not. Whatever is read whole is then analysed whole, which takes several times
#: the image again, so a larger default would only move the failure later.
DEFAULT_MAX_READ_BYTES = 1024**3

#: Environment variable that overrides :data:`DEFAULT_MAX_READ_BYTES`: a whole
#: number of bytes, or one with a unit (``1.5GiB``, ``800MiB``, ``2GB``, ``500M``).
MAX_READ_BYTES_ENV = "LEUKVIEW_MAX_READ_BYTES"

_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
}  # fmt: skip


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The decompression-bomb limit in effect.

    Parameters
    ----------
    max_pixels : int, optional
        Explicit limit; wins over the environment.

    Returns
    -------
    int
        ``max_pixels`` if given, else ``$LEUKVIEW_MAX_PIXELS`` if set, else
        :data:`DEFAULT_MAX_PIXELS`.

    Raises
    ------
    ValueError
        ``max_pixels`` is not a positive integer.
    ImageReadError
        ``$LEUKVIEW_MAX_PIXELS`` is set but not a positive whole number.
    """
    if max_pixels is not None:
        try:
            whole = not isinstance(max_pixels, bool) and int(max_pixels) == max_pixels
        except (TypeError, ValueError, OverflowError):  # "lots", [1], inf, nan
            whole = False
        if not whole or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
        return int(max_pixels)
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(raw.replace("_", ""))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise ImageReadError(
            f"the environment variable {MAX_PIXELS_ENV}={raw!r} is not a positive whole "
            "number of pixels"
        )
    return int(value)


def max_read_bytes_limit(max_bytes: int | None = None) -> int:
    """The memory budget of one read in effect, in bytes.

    Parameters
    ----------
    max_bytes : int, optional
        Explicit budget; wins over the environment.

    Returns
    -------
    int
        ``max_bytes`` if given, else ``$LEUKVIEW_MAX_READ_BYTES`` if set, else
        :data:`DEFAULT_MAX_READ_BYTES`.

    Raises
    ------
    ValueError
        ``max_bytes`` is not a positive integer.
    ImageReadError
        ``$LEUKVIEW_MAX_READ_BYTES`` is set but is not a positive size.
    """
    if max_bytes is not None:
        try:
            whole = not isinstance(max_bytes, bool) and int(max_bytes) == max_bytes
        except (TypeError, ValueError, OverflowError):
            whole = False
        if not whole or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        return int(max_bytes)
    raw = os.environ.get(MAX_READ_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_READ_BYTES
    match = re.fullmatch(r"([0-9_.eE+]+)\s*([A-Za-z]*)", raw)
    value = math.nan
    if match and match.group(2).lower() in _UNITS:
        try:
            value = float(match.group(1).replace("_", "")) * _UNITS[match.group(2).lower()]
        except ValueError:
            value = math.nan
    if not (math.isfinite(value) and value >= 1):
        raise ImageReadError(
            f"the environment variable {MAX_READ_BYTES_ENV}={raw!r} is not a memory size "
            "(a positive number of bytes, or one with a unit such as 1.5GiB or 800MiB)"
        )
    return int(value)


def format_bytes(n: int | float) -> str:
    """``1.5 GiB``, ``800 MiB``, ``12 KiB``: a size for a person."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(n)} bytes"


def memory_error(
    file: Path,
    w: int,
    h: int,
    need: int,
    budget: int,
    *,
    fmt: str,
    region: bool = False,
) -> ImageReadError:
    """The error for a read of ``w x h`` pixels that would need ``need`` bytes, over ``budget``."""
    what = f"this {w} x {h} region" if region else f"this {w} x {h} image whole"
    if region:
        hint = "read it in smaller regions"
    elif fmt == "TIFF":
        hint = (
            "it can still be read region by region (read_region, as the viewer does); "
            "tiled analysis of large slides is coming"
        )
    else:
        hint = (
            f"a {fmt} cannot be read region by region without decoding it whole, so save it "
            "as a tiled TIFF to view it by regions; tiled analysis of large slides is coming"
        )
    return ImageReadError(
        f"refused before decoding: reading {what} needs about {format_bytes(need)} of memory, "
        f"more than the budget of {format_bytes(budget)} for one read (set {MAX_READ_BYTES_ENV} "
        f"to change it); {hint}",
        file,
    )


def bomb_error(
    file: Path, w: int, h: int, limit: int, *, tiff: bool = False, tile: bool = False
) -> ImageReadError:
    """The error for a header (or one TIFF tile or strip) of ``w x h`` pixels above ``limit``."""
    hint = ", or read it region by region" if tiff and not tile else ""
    what = "one tile (or strip) of " if tile else ""
    return ImageReadError(
        f"refused before decoding: the header claims {what}{w} x {h} = {w * h:,} pixels, more "
        f"than the limit of {limit:,} pixels (decompression-bomb guard); if the file is "
        f"genuine, raise the limit with {MAX_PIXELS_ENV}{hint}",
        file,
    )
