"""Which backend opens a slide: OpenSlide for the vendors' formats, tifffile for
OME-TIFF and what OpenSlide cannot read, the plain-image reader for the rest.

Apart from :mod:`._slide` (the interface) so that the backends, which subclass it,
are imported by this module alone, without a cycle.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ImageReadError
from ._openslide import OpenSlideSlide, detect_vendor
from ._slide import ImageSlide, Slide
from ._slide_tiff import TiffSlide, tiff_level_count
from ._sniff import open_check


def open_slide(path: str | os.PathLike[str]) -> Slide:
    """Open any slide or image LeukView reads, with the backend that reads it best.

    Parameters
    ----------
    path : str or path-like
        A whole-slide file (``.svs``, ``.ndpi``, ``.mrxs``, ``.dcm``, tiled
        TIFF, ...), an OME-TIFF, or a plain image.

    Returns
    -------
    Slide

    Raises
    ------
    ImageReadError
        Missing, not a slide or image, or damaged (OpenSlide's reason is given).
    """
    file = Path(os.fspath(path))
    if not file.exists():
        raise ImageReadError("no such file", file)
    if not file.is_file():
        raise ImageReadError("not a regular file", file)
    vendor = detect_vendor(file)
    refused: ImageReadError | None = None
    if vendor is not None:
        tiff_levels = tiff_level_count(file) if vendor == "generic-tiff" else None
        if tiff_levels is None or tiff_levels[0] != "OME-TIFF":
            try:
                slide: Slide = OpenSlideSlide(file, vendor)
            except ImageReadError as exc:
                if tiff_levels is None:
                    raise
                refused = exc  # a generic TIFF: tifffile may still read it
            else:
                if tiff_levels is None or tiff_levels[1] <= slide.level_count:
                    return slide
                slide.close()  # tifffile sees a pyramid (SubIFDs) OpenSlide does not
    file, fmt = open_check(file)
    if fmt != "TIFF":
        return ImageSlide(file, fmt)
    try:
        return TiffSlide(file)
    except ImageReadError as exc:
        if refused is None:
            raise
        raise ImageReadError(f"{refused.reason}; tifffile cannot read it either ({exc.reason})", file) from exc
