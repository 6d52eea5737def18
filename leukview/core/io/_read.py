"""The public readers: whole images, regions of a level, and header information.

Each sniffs the format from the file's first bytes, then hands the file to
the Pillow or the TIFF reader.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ImageReadError
from ._geometry import paste
from ._info import ImageInfo
from ._limits import MAX_PIXELS_ENV, max_pixels_limit, max_read_bytes_limit
from ._pillow import pillow_info, pillow_read_image
from ._sniff import open_check
from ._tiff import open_tiff, tiff_info, tiff_read_image
from ._tiff_region import tiff_read_region

__all__ = ["image_info", "read_image", "read_region"]


def read_image(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    *,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Read a whole image as RGB ``uint8`` at its original size.

    Parameters
    ----------
    path : str, bytes or path-like
        A JPEG, PNG, BMP or TIFF file (format taken from its content). For a
        pyramidal TIFF, level 0 of the first series. A bytes path (a name that
        is not UTF-8) is taken as the operating system gives it.
    max_pixels : int, optional
        Decompression-bomb limit for this call (see
        :func:`~leukview.core.io.max_pixels_limit`).
    max_bytes : int, optional
        Memory budget for this call (see
        :func:`~leukview.core.io.max_read_bytes_limit`); what the read would
        need is estimated from the header (``ImageInfo.read_bytes``) and a read
        above it is refused before decoding.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` ``uint8`` RGB, orientation applied, alpha composited on
        white, more than 8 bits scaled by the effective bit depth.

    Raises
    ------
    ImageReadError
        Missing, empty, truncated, damaged, unsupported, above the pixel limit
        or above the memory budget.
    """
    limit = max_pixels_limit(max_pixels)
    budget = max_read_bytes_limit(max_bytes)
    file, fmt = open_check(path)
    if fmt == "TIFF":
        with open_tiff(file) as tif:
            return tiff_read_image(file, tif, limit, budget)
    return pillow_read_image(file, fmt, limit, budget)


def read_region(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    x: int,
    y: int,
    width: int,
    height: int,
    level: int = 0,
    *,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Read a rectangle of one resolution level, decoding only what it needs.

    Parameters
    ----------
    path : str or path-like
        Any supported image. A TIFF is read tile by tile (or strip by strip);
        other formats are small by the bomb limit and are decoded whole, then
        cropped.
    x, y : int
        Top-left corner in pixels **of the requested level** (not level 0);
        may lie outside the image.
    width, height : int
        Size of the rectangle in pixels of that level, both >= 1.
    level : int, optional
        Index into ``image_info(path).levels``; 0 is full resolution.
    max_pixels : int, optional
        Limit on ``width * height`` (and on one tile); see
        :func:`~leukview.core.io.max_pixels_limit`.
    max_bytes : int, optional
        Memory budget of this read (see
        :func:`~leukview.core.io.max_read_bytes_limit`): for a TIFF what the
        region and one tile need, for other formats what decoding the whole
        image needs.

    Returns
    -------
    numpy.ndarray
        ``(height, width, 3)`` ``uint8`` RGB; parts outside the image are
        white (255).

    Raises
    ------
    ValueError
        Non-integer coordinates, a size below 1 or a negative level.
    ImageReadError
        The file cannot be read, the level does not exist or the rectangle
        is above the pixel limit or the memory budget.
    """
    coords = (x, y, width, height, level)
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in coords):
        raise ValueError(f"region coordinates must be integers, got {coords}")
    x, y, width, height, level = (int(v) for v in coords)
    if width < 1 or height < 1:
        raise ValueError(f"region size must be at least 1 x 1, got {width} x {height}")
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    limit = max_pixels_limit(max_pixels)
    budget = max_read_bytes_limit(max_bytes)
    file, fmt = open_check(path)
    if width * height > limit:
        raise ImageReadError(
            f"the requested region {width} x {height} = {width * height:,} pixels is above the "
            f"limit of {limit:,} pixels; read it in smaller regions or raise {MAX_PIXELS_ENV}",
            file,
        )
    if fmt == "TIFF":
        with open_tiff(file) as tif:
            return tiff_read_region(file, tif, x, y, width, height, level, limit, budget)
    if level != 0:
        raise ImageReadError(f"level {level} does not exist: a {fmt} file has only level 0", file)
    return paste(pillow_read_image(file, fmt, limit, budget), x, y, width, height)


def image_info(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> ImageInfo:
    """Size, levels, pixel size and layout from the header, without decoding pixels.

    A header that claims a huge image is reported, not refused: the limit
    applies when pixels are read.

    Parameters
    ----------
    path : str or path-like
        Any supported image.

    Returns
    -------
    ImageInfo

    Raises
    ------
    ImageReadError
        Missing, empty, not an image or an unreadable header.
    """
    file, fmt = open_check(path)
    if fmt == "TIFF":
        with open_tiff(file) as tif:
            return tiff_info(file, tif)
    return pillow_info(file, fmt)
