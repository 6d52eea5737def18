"""Orientation transforms and white-padded crops of ``(H, W, C)`` arrays."""

from __future__ import annotations

import numpy as np

__all__ = ["orient", "paste"]


def orient(a: np.ndarray, orientation: int | None) -> np.ndarray:
    """Apply an EXIF/TIFF orientation, as :func:`PIL.ImageOps.exif_transpose` does.

    Parameters
    ----------
    a : numpy.ndarray
        ``(H, W, C)`` image as stored.
    orientation : int or None
        EXIF / TIFF Orientation 1..8; anything else leaves the image as is.

    Returns
    -------
    numpy.ndarray
        ``(H, W, C)`` for 1..4, ``(W, H, C)`` for 5..8; C-contiguous when transformed,
        ``a`` itself when not.
    """
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    else:
        return a
    return np.ascontiguousarray(a)


def paste(img: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """Crop ``img`` to a rectangle, white where it lies outside.

    Parameters
    ----------
    img : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.
    x, y : int
        Top-left corner of the rectangle in the pixels of ``img``; may be outside.
    width, height : int
        Size of the rectangle.

    Returns
    -------
    numpy.ndarray
        ``(height, width, 3)`` uint8; 255 outside ``img``.
    """
    out = np.full((height, width, 3), 255, np.uint8)
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + width, w), min(y + height, h)
    if x0 < x1 and y0 < y1:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = img[y0:y1, x0:x1]
    return out
