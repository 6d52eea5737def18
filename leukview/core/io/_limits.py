"""The decompression-bomb limit: how many pixels one decoded array may hold."""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import ImageReadError

__all__ = ["DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "bomb_error", "max_pixels_limit"]

#: Largest image, in pixels (width x height), decoded in one array unless the
#: caller or ``$LEUKVIEW_MAX_PIXELS`` says otherwise: 500 million pixels, i.e.
#: 1.5 GB as RGB uint8. A 20000 x 20000 region (400 Mpx) fits; a header that
#: claims billions of pixels (a decompression bomb) does not.
DEFAULT_MAX_PIXELS = 500_000_000

#: Environment variable that overrides :data:`DEFAULT_MAX_PIXELS`.
MAX_PIXELS_ENV = "LEUKVIEW_MAX_PIXELS"


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


def bomb_error(file: Path, w: int, h: int, limit: int, *, tiff: bool = False) -> ImageReadError:
    """The error for a header (or one TIFF segment) of ``w x h`` pixels above ``limit``."""
    hint = ", or read it region by region" if tiff else ""
    return ImageReadError(
        f"refused before decoding: the header claims {w} x {h} = {w * h:,} pixels, more than the "
        f"limit of {limit:,} pixels (decompression-bomb guard); if the file is genuine, raise "
        f"the limit with {MAX_PIXELS_ENV}{hint}",
        file,
    )
