"""One reader interface for whole-slide images: :class:`Slide` (opened by :func:`._open_slide.open_slide`).

A slide is a pyramid: level 0 at full resolution, coarser levels below it,
each with its size and its downsample from level 0, a pixel size, vendor
properties and associated images (label, macro, thumbnail). Three backends
give the same interface:

* ``openslide`` (``_openslide``): every format OpenSlide reads: Aperio SVS,
  Hamamatsu NDPI/VMS/VMU, 3DHISTECH MIRAX, Leica SCN, Philips TIFF, Ventana
  BIF, Sakura SVSlide, DICOM WSI and generic tiled TIFF;
* ``tifffile`` (``_slide_tiff``): OME-TIFF, and TIFFs whose pyramid OpenSlide
  does not see (levels in SubIFDs) or cannot open, through
  :func:`~leukview.core.io.read_region`;
* ``image``: a JPEG, PNG, BMP or flat TIFF small enough to read whole (one level).

Which backend reads a file (:func:`open_slide`): OpenSlide when it recognises
the format, except an OME-TIFF, and except a generic TIFF in which tifffile
finds more pyramid levels; else tifffile for a TIFF; else the image reader.
A file OpenSlide recognises but cannot open or decode (a damaged one) is an
:class:`~leukview.core.errors.ImageReadError` that says so, with OpenSlide's
own reason.
"""

from __future__ import annotations

import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import numpy as np

from ..errors import ImageReadError
from ._limits import MAX_PIXELS_ENV, max_pixels_limit

__all__ = ["SLIDE_MIN_PIXELS", "SLIDE_SUFFIXES", "ImageSlide", "Slide", "is_slide_file", "reads_as_slide"]

#: Suffixes of whole-slide formats (and TIFF, which may hold one).
SLIDE_SUFFIXES = (
    ".bif",
    ".dcm",
    ".mrxs",
    ".ndpi",
    ".scn",
    ".svs",
    ".svslide",
    ".tif",
    ".tiff",
    ".vms",
    ".vmu",
)
#: Suffixes only a slide reader opens (a ``.tif`` may also be a plain field).
VENDOR_SUFFIXES = tuple(s for s in SLIDE_SUFFIXES if s not in (".tif", ".tiff"))

# Light-microscope pixel sizes; a header value outside is a default or damage.
_PLAUSIBLE_UM_PER_PX = (0.01, 20.0)


def is_slide_file(path: str | os.PathLike[str]) -> bool:
    """Whether a name has a whole-slide suffix that only a slide reader opens (``.svs``, ``.ndpi``, ...).

    ``.tif`` and ``.tiff`` are not counted: they are fields as often as slides
    (see :func:`open_slide`, which reads both).
    """
    name = Path(path).name
    return not name.startswith("._") and Path(name).suffix.lower() in VENDOR_SUFFIXES


#: A TIFF with more pixels than this is a whole slide, analysed and shown tile by tile (the viewer's
#: large-image size: the whole image would no longer fit the read budget comfortably).
SLIDE_MIN_PIXELS = 36_000_000


def reads_as_slide(path: str | os.PathLike[str], force: bool = False, min_pixels: int = SLIDE_MIN_PIXELS) -> bool:
    """Whether a file is a whole slide for LeukView: read by region and tile by tile, never whole.

    Vendor slide formats always are; a TIFF when ``force`` or when it has more
    than ``min_pixels`` pixels; JPEG, PNG and BMP never (they cannot be read by
    region). A file whose header cannot be read is not (reading it names the problem).
    """
    from ..errors import LeukViewError
    from ._read import image_info

    path = Path(path)
    if is_slide_file(path):
        return True
    if path.suffix.lower() not in (".tif", ".tiff"):
        return False
    try:
        info = image_info(path)
    except (LeukViewError, OSError):
        return False
    return force or info.width * info.height > min_pixels


def plausible_pixel_size(value: object, what: str, warnings: list[str]) -> float | None:
    """A header's µm per pixel when it is a light microscope's, else None with a sentence in ``warnings``."""
    from ..calibration import validate_pixel_size
    from ..errors import LeukViewError

    if value is None or value == "":
        return None
    try:
        size = validate_pixel_size(value)
    except LeukViewError as exc:
        warnings.append(f"{what} ignored: {exc.reason}")
        return None
    lo, hi = _PLAUSIBLE_UM_PER_PX
    if not lo <= size <= hi:
        warnings.append(
            f"{what} = {size:g} µm per pixel ignored: outside {lo:g}-{hi:g} µm, the range of light "
            "microscopes (usually a resolution tag's default)"
        )
        return None
    return size


class Slide(ABC):
    """A whole-slide image, read region by region at any pyramid level.

    Attributes
    ----------
    path : Path
        The file opened.
    backend : {'openslide', 'tifffile', 'image'}
        Which reader reads it.
    vendor : str
        The format: OpenSlide's vendor (``aperio``, ``hamamatsu``, ``mirax``,
        ``leica``, ``philips``, ``ventana``, ``dicom``, ``generic-tiff``, ...),
        or ``ome-tiff``, ``tiff``, ``jpeg``, ``png``, ``bmp``.
    levels : tuple of (int, int)
        ``(width, height)`` per level, level 0 (full resolution) first.
    downsamples : tuple of float
        Level 0 pixels per pixel of each level (1.0 for level 0).
    pixel_size_um : float or None
        µm per pixel of level 0 (OpenSlide's ``openslide.mpp-x``, tifffile's
        metadata rules), None when the file does not say or says nonsense.
    properties : mapping of str to str
        The vendor's metadata as text (OpenSlide's property names).
    associated : tuple of str
        Names of the associated images (``label``, ``macro``, ``thumbnail``, ...).
    warnings : tuple of str
        Problems that do not stop reading, one sentence each.

    Notes
    -----
    Region coordinates are pixels **of the level read** (as
    :func:`~leukview.core.io.read_region`), x to the right, y down; parts
    outside the slide, and transparent parts (missing tiles), are white.
    Reads are safe from several threads.
    """

    backend: str = ""

    def __init__(
        self,
        path: Path,
        *,
        vendor: str,
        levels: tuple[tuple[int, int], ...],
        downsamples: tuple[float, ...],
        pixel_size_um: float | None,
        properties: Mapping[str, str] | None = None,
        associated: tuple[str, ...] = (),
        warnings: tuple[str, ...] = (),
    ) -> None:
        if not levels or len(levels) != len(downsamples):
            raise ImageReadError("the slide has no readable level", path)
        self.path = path
        self.vendor = vendor
        self.levels = tuple((int(w), int(h)) for w, h in levels)
        self.downsamples = tuple(float(d) for d in downsamples)
        self.pixel_size_um = pixel_size_um
        self.properties: Mapping[str, str] = dict(properties or {})
        self.associated = tuple(associated)
        self.warnings = tuple(warnings)
        self._lock = threading.Lock()

    # -- geometry

    @property
    def width(self) -> int:
        """Width of level 0 in pixels."""
        return self.levels[0][0]

    @property
    def height(self) -> int:
        """Height of level 0 in pixels."""
        return self.levels[0][1]

    @property
    def level_count(self) -> int:
        return len(self.levels)

    def best_level(self, downsample: float) -> int:
        """The coarsest level whose downsample is at most ``downsample`` (level 0 for <= 1).

        Reading that level and shrinking it by what is left never loses detail
        that the requested resolution would show.
        """
        best = 0
        for index, ds in enumerate(self.downsamples):
            if ds <= downsample * 1.01 and ds >= self.downsamples[best]:
                best = index
        return best

    # -- pixels

    def read_region(self, x: int, y: int, width: int, height: int, level: int = 0) -> np.ndarray:
        """A rectangle of one level as RGB.

        Parameters
        ----------
        x, y : int
            Top-left corner in pixels of ``level`` (may lie outside the slide).
        width, height : int
            Size in pixels of ``level``, both >= 1; at most
            :func:`~leukview.core.io.max_pixels_limit` pixels.
        level : int
            Index into :attr:`levels`.

        Returns
        -------
        ndarray of uint8, shape (height, width, 3)
            Outside the slide and transparent parts are white.

        Raises
        ------
        ValueError
            Non-integer coordinates, a size below 1, a level that does not exist.
        ImageReadError
            The region is above the pixel limit, or the file cannot be decoded there.
        """
        coords = (x, y, width, height, level)
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in coords):
            raise ValueError(f"region coordinates must be integers, got {coords}")
        x, y, width, height, level = (int(v) for v in coords)
        if width < 1 or height < 1:
            raise ValueError(f"region size must be at least 1 x 1, got {width} x {height}")
        if not 0 <= level < len(self.levels):
            raise ValueError(f"level {level} does not exist: the slide has levels 0 to {len(self.levels) - 1}")
        limit = max_pixels_limit()
        if width * height > limit:
            raise ImageReadError(
                f"the requested region {width} x {height} = {width * height:,} pixels is above the "
                f"limit of {limit:,} pixels; read it in smaller regions or raise {MAX_PIXELS_ENV}",
                self.path,
            )
        lw, lh = self.levels[level]
        out = np.full((height, width, 3), 255, np.uint8)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + width, lw), min(y + height, lh)
        if x1 <= x0 or y1 <= y0:
            return out
        out[y0 - y : y1 - y, x0 - x : x1 - x] = self._read(x0, y0, x1 - x0, y1 - y0, level)
        return out

    @abstractmethod
    def _read(self, x: int, y: int, width: int, height: int, level: int) -> np.ndarray:
        """RGB of a rectangle that lies inside ``level`` (checked by :meth:`read_region`)."""

    def associated_image(self, name: str) -> np.ndarray:
        """An associated image (``label``, ``macro``, ``thumbnail``, ...) as RGB ``(h, w, 3)``.

        Raises
        ------
        KeyError
            The slide has no associated image of that name.
        ImageReadError
            It cannot be decoded.
        """
        raise KeyError(name)

    def thumbnail(self, max_side: int = 1024) -> tuple[np.ndarray, float]:
        """The whole slide, at most ``max_side`` pixels a side.

        Read from the coarsest level that is still at least that large (so
        memory stays about that of the result), then shrunk.

        Returns
        -------
        image : ndarray of uint8, shape (h, w, 3)
        downsample : float
            Level 0 pixels per thumbnail pixel.
        """
        import cv2

        want = max(self.width, self.height) / max(int(max_side), 1)
        level = self.best_level(max(want, 1.0))
        lw, lh = self.levels[level]
        scale = min(1.0, max_side / max(lw, lh))
        if lw * lh <= 16_000_000:
            region = self.read_region(0, 0, lw, lh, level)
            if scale < 1.0:
                size = (max(1, round(lw * scale)), max(1, round(lh * scale)))
                region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
            return region, self.width / region.shape[1]
        # No coarse level: shrink band by band so memory stays bounded.
        out_w, out_h = max(1, round(lw * scale)), max(1, round(lh * scale))
        out = np.full((out_h, out_w, 3), 255, np.uint8)
        band = max(1, int(8_000_000 // lw))
        for y in range(0, lh, band):
            rows = min(band, lh - y)
            piece = self.read_region(0, y, lw, rows, level)
            oy0, oy1 = round(y * scale), round((y + rows) * scale)
            if oy1 > oy0:
                out[oy0:oy1] = cv2.resize(piece, (out_w, oy1 - oy0), interpolation=cv2.INTER_AREA)
        return out, self.width / out_w

    # -- lifetime

    def close(self) -> None:  # noqa: B027 - a backend with nothing to release keeps this one
        """Release the file (reads afterwards may fail)."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def describe(self) -> str:
        """One line for a person: vendor, size, levels, pixel size."""
        size = "unknown pixel size" if self.pixel_size_um is None else f"{self.pixel_size_um:g} µm/px"
        mpx = self.width * self.height / 1e6
        return (
            f"{self.vendor} slide {self.width} x {self.height} ({mpx:,.0f} Mpx), "
            f"{len(self.levels)} level(s), {size} [{self.backend}]"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path.name}: {self.describe()}>"


class ImageSlide(Slide):
    """A flat image read whole once, as a one-level slide."""

    backend = "image"

    def __init__(self, path: Path, fmt: str) -> None:
        from ._read import image_info

        info = image_info(path)
        super().__init__(
            path,
            vendor=fmt.lower(),
            levels=((info.width, info.height),),
            downsamples=(1.0,),
            pixel_size_um=info.pixel_size_um,
            warnings=tuple(info.warnings),
        )
        self._pixels: np.ndarray | None = None

    def _read(self, x: int, y: int, width: int, height: int, level: int) -> np.ndarray:
        from ._read import read_image

        with self._lock:
            if self._pixels is None:
                self._pixels = read_image(self.path)
            return self._pixels[y : y + height, x : x + width]

    def close(self) -> None:
        self._pixels = None


def level_for(slide: Slide, downsample: float) -> tuple[int, float]:
    """:meth:`Slide.best_level` of ``downsample`` and what is left to shrink after reading it."""
    level = slide.best_level(downsample)
    rest = downsample / slide.downsamples[level]
    return level, rest if math.isfinite(rest) and rest > 1.0 else 1.0
