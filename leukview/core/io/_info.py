"""What an image header says: :class:`ImageInfo`."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ImageInfo"]


@dataclass(frozen=True)
class ImageInfo:
    """What the header of an image file says, without decoding pixels.

    Attributes
    ----------
    width, height : int
        Size of level 0 in pixels, after EXIF / TIFF orientation (the shape that
        :func:`~leukview.core.io.read_image` returns is ``(height, width, 3)``).
    levels : list of (int, int)
        ``(width, height)`` of every resolution level, level 0 first; one entry
        for a flat image.
    pixel_size_um : float or None
        Micrometres per pixel of level 0, or None when the file does not say
        (see the notes of :mod:`leukview.core.io` for which metadata count).
    tiled : bool
        True when level 0 is stored in tiles (a TIFF that
        :func:`~leukview.core.io.read_region` reads tile by tile).
    format : str
        ``'JPEG'``, ``'PNG'``, ``'BMP'``, ``'TIFF'`` or ``'OME-TIFF'``.
    warnings : tuple of str
        Problems in the header that do not stop the image from being read, one
        sentence each, for a person (for example an absurd pixel size that was
        ignored, or tifffile's complaints about the file's structure); empty for
        a sound file.
    read_bytes : int or None
        Estimated peak memory, in bytes, of :func:`~leukview.core.io.read_image`
        for this file (the decoder's image and buffers, the RGB result, the
        temporaries), the figure checked against
        :func:`~leukview.core.io.max_read_bytes_limit` before decoding; None
        when not estimated.
    """

    width: int
    height: int
    levels: list[tuple[int, int]] = field(default_factory=list)
    pixel_size_um: float | None = None
    tiled: bool = False
    format: str = ""
    warnings: tuple[str, ...] = ()
    read_bytes: int | None = field(default=None, compare=False)  # an estimate, not a fact
