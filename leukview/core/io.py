"""Images in: every supported file to an RGB ``uint8`` array, safely.

What comes out
--------------
:func:`read_image` returns the whole image, :func:`read_region` a rectangle of
one pyramid level, both as ``(H, W, 3)`` ``uint8`` RGB with the original pixel
grid (no resizing). :func:`image_info` reads only the header.

* JPEG, PNG and BMP are decoded by Pillow, 16-bit PNG by imagecodecs (Pillow
  would drop the low byte), TIFF by tifffile. The format is taken from the
  file's first bytes, not from its suffix.
* Greyscale is repeated into three channels; palette images are looked up;
  transparency (RGBA, grey + alpha, palette transparency, TIFF alpha samples,
  premultiplied or not) is composited on **white**, because slides are
  bright-field and an empty background is white.
* EXIF orientation (JPEG, PNG) and the TIFF Orientation tag are applied, with
  the same eight transforms as :func:`PIL.ImageOps.exif_transpose`.

More than 8 bits per sample
---------------------------
Samples are scaled by their **effective bit depth**, not by the dtype's maximum
and not by a min-max stretch: the white level is the TIFF ``MaxSampleValue`` tag
when it is below the dtype's maximum, else the smallest ``2**n - 1`` (``n >= 8``)
that is at least the data's maximum, and ``value * 255 / white`` is rounded.
So a 12-bit camera image stored in 16 bits (maximum <= 4095) fills 0..255
instead of coming out black, zero stays black and no contrast is invented.
Floating-point samples are taken as 0..1 when their maximum is <= 1, else
scaled by their maximum; negative values are clipped to 0. For a region read
the white level comes from the smallest pyramid level when it has at most
4 million pixels (so neighbouring regions match), else from the region itself.

Decompression bombs
-------------------
A file whose header claims more pixels than the limit is refused before any
pixel is decoded. The limit is, first to last: the ``max_pixels`` argument, the
``LEUKVIEW_MAX_PIXELS`` environment variable, :data:`DEFAULT_MAX_PIXELS`. It
bounds the pixels of the array that would be decoded: the whole image for
:func:`read_image`, the requested rectangle (and any single tile or strip) for
:func:`read_region`, so a 20000 x 20000 region of a larger slide is allowed.
Pillow's own bomb check (``Image.MAX_IMAGE_PIXELS``) is replaced by this limit
while LeukView decodes, and ``ImageFile.LOAD_TRUNCATED_IMAGES`` is held False:
a truncated file is an error, never a half-grey image.

Large TIFFs
-----------
Tiled, stripped, pyramidal (SubIFDs, OME-TIFF, reduced-resolution pages) and
OME-TIFF files are read through the first series that tifffile finds.
:func:`read_region` decodes only the tiles (or strips) that overlap the
rectangle, reading their bytes via the page's data offsets and decoding them
one by one with the page's own decoder, so memory is bounded by the region plus
one tile, whatever the size of the level. Its coordinates are in the pixels of
the level that is read (not level 0), and pixels outside the image are white.
Stacks (time, focus, series of pages) give their first plane; three separate
channel planes (OME ``C`` = 3) are combined as RGB.

Pixel size
----------
``ImageInfo.pixel_size_um`` (micrometres per pixel of level 0) comes from, in
order: OME-XML ``PhysicalSizeX`` (with its unit, default um), ImageJ metadata
(``unit`` with the resolution tags), Aperio ``MPP``, and otherwise the TIFF
``XResolution`` with ``ResolutionUnit`` inch or centimetre (or, for PNG and
JPEG, the pHYs / JFIF density). Resolution tags are often a meaningless default
(72 or 300 dpi, 1 pixel per unit, no unit): a value is kept only when its unit
is inch or centimetre and it gives 0.01 to 20 um/px, the range of light
microscopes; anything else gives ``None``.

Every failure raises :class:`~leukview.core.errors.ImageReadError` naming the
file and the reason.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageFile, UnidentifiedImageError

from .errors import ImageReadError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "SUPPORTED_SUFFIXES",
    "ImageInfo",
    "image_info",
    "is_supported",
    "max_pixels_limit",
    "read_image",
    "read_region",
]

#: Largest image, in pixels (width x height), decoded in one array unless the
#: caller or ``$LEUKVIEW_MAX_PIXELS`` says otherwise: 500 million pixels, i.e.
#: 1.5 GB as RGB uint8. A 20000 x 20000 region (400 Mpx) fits; a header that
#: claims billions of pixels (a decompression bomb) does not.
DEFAULT_MAX_PIXELS = 500_000_000

#: Environment variable that overrides :data:`DEFAULT_MAX_PIXELS`.
MAX_PIXELS_ENV = "LEUKVIEW_MAX_PIXELS"

#: File suffixes (lower case) that :func:`is_supported` accepts.
SUPPORTED_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff")

# Plausible light-microscope pixel sizes; resolution tags outside are defaults.
_PLAUSIBLE_UM_PER_PX = (0.01, 20.0)
# Smallest pyramid level up to this size sets the white level of region reads.
_OVERVIEW_MAX_PIXELS = 4_000_000
# Colour conversion runs in bands of about this many pixels to bound temporaries.
_BAND_PIXELS = 4_000_000

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PILLOW_FORMATS = {"JPEG": ("JPEG", "MPO"), "PNG": ("PNG",), "BMP": ("BMP",)}
_SUFFIX_FORMAT = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_OTHER_MAGIC = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"8BPS", "a Photoshop document"),
)
_JPEG_COMPRESSIONS = {6, 7, 34892, 33007}
_UNIT_UM = {
    "pm": 1e-6,
    "a": 1e-4,
    "å": 1e-4,
    "nm": 1e-3,
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
    "in": 25400.0,
    "inch": 25400.0,
}

# Pillow keeps its bomb limit and truncation switch in module globals; they are
# pinned while LeukView decodes, under one lock so concurrent reads agree.
_PILLOW_LOCK = threading.RLock()


@dataclass(frozen=True)
class ImageInfo:
    """What the header of an image file says, without decoding pixels.

    Attributes
    ----------
    width, height : int
        Size of level 0 in pixels, after EXIF / TIFF orientation (the shape that
        :func:`read_image` returns is ``(height, width, 3)``).
    levels : list of (int, int)
        ``(width, height)`` of every resolution level, level 0 first; one entry
        for a flat image.
    pixel_size_um : float or None
        Micrometres per pixel of level 0, or None when the file does not say
        (see the module notes for which metadata count).
    tiled : bool
        True when level 0 is stored in tiles (a TIFF that :func:`read_region`
        reads tile by tile).
    format : str
        ``'JPEG'``, ``'PNG'``, ``'BMP'``, ``'TIFF'`` or ``'OME-TIFF'``.
    """

    width: int
    height: int
    levels: list[tuple[int, int]] = field(default_factory=list)
    pixel_size_um: float | None = None
    tiled: bool = False
    format: str = ""


# --------------------------------------------------------------------------- public API


def is_supported(path: str | os.PathLike[str]) -> bool:
    """Whether a file name looks like an image LeukView reads (by suffix only).

    Parameters
    ----------
    path : str or path-like
        A file name; the file is not opened.

    Returns
    -------
    bool
        True when the lower-cased suffix is in :data:`SUPPORTED_SUFFIXES` and
        the name is not a macOS resource fork (``._name.jpg``).
    """
    name = Path(path).name
    return not name.startswith("._") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES


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
        if isinstance(max_pixels, bool) or int(max_pixels) != max_pixels or max_pixels < 1:
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


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Read a whole image as RGB ``uint8`` at its original size.

    Parameters
    ----------
    path : str or path-like
        A JPEG, PNG, BMP or TIFF file (format taken from its content). For a
        pyramidal TIFF, level 0 of the first series.
    max_pixels : int, optional
        Decompression-bomb limit for this call (see :func:`max_pixels_limit`).

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` ``uint8`` RGB, orientation applied, alpha composited on
        white, more than 8 bits scaled by the effective bit depth.

    Raises
    ------
    ImageReadError
        Missing, empty, truncated, damaged, unsupported or too large.
    """
    limit = max_pixels_limit(max_pixels)
    file, fmt = _open_check(path)
    if fmt == "TIFF":
        with _tiff_errors(file), tifffile.TiffFile(file) as tif:
            return _tiff_read_image(file, tif, limit)
    return _pillow_read_image(file, fmt, limit)


def read_region(
    path: str | os.PathLike[str],
    x: int,
    y: int,
    width: int,
    height: int,
    level: int = 0,
    *,
    max_pixels: int | None = None,
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
        :func:`max_pixels_limit`.

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
        is above the pixel limit.
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
    file, fmt = _open_check(path)
    if width * height > limit:
        raise ImageReadError(
            f"the requested region {width} x {height} = {width * height:,} pixels is above the "
            f"limit of {limit:,} pixels; read it in smaller regions or raise {MAX_PIXELS_ENV}",
            file,
        )
    if fmt == "TIFF":
        with _tiff_errors(file), tifffile.TiffFile(file) as tif:
            return _tiff_read_region(file, tif, x, y, width, height, level, limit)
    if level != 0:
        raise ImageReadError(f"level {level} does not exist: a {fmt} file has only level 0", file)
    return _paste(_pillow_read_image(file, fmt, limit), x, y, width, height)


def image_info(path: str | os.PathLike[str]) -> ImageInfo:
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
    file, fmt = _open_check(path)
    if fmt == "TIFF":
        with _tiff_errors(file), tifffile.TiffFile(file) as tif:
            return _tiff_info(file, tif)
    with (
        _pillow_errors(file, fmt),
        _pillow_guard(),
        Image.open(file, formats=_PILLOW_FORMATS[fmt]) as im,
    ):
        w, h = im.size
        orientation = _pillow_orientation(im, loaded=False)
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        return ImageInfo(
            width=w,
            height=h,
            levels=[(w, h)],
            pixel_size_um=_dpi_pixel_size(im.info.get("dpi")),
            tiled=False,
            format=fmt,
        )


# --------------------------------------------------------------------------- file checks


def _open_check(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """The path as a Path and its format from the first bytes, or a clear error."""
    try:
        file = Path(os.fspath(path))
    except TypeError as exc:
        raise ImageReadError(f"not a file path: {path!r}") from exc
    try:
        if not file.exists():
            raise ImageReadError("no such file", file)
        if file.is_dir():
            raise ImageReadError("is a folder, not an image file", file)
        if not file.is_file():
            raise ImageReadError("is not a regular file", file)
        size = file.stat().st_size
        if size == 0:
            raise ImageReadError("the file is empty (0 bytes)", file)
        with open(file, "rb") as fh:
            head = fh.read(512)
    except PermissionError as exc:
        raise ImageReadError("cannot open the file: permission denied", file) from exc
    except OSError as exc:
        raise ImageReadError(f"cannot open the file: {exc.strerror or exc}", file) from exc
    fmt = _sniff(head)
    if fmt is None:
        what = _describe_unknown(head)
        expected = _SUFFIX_FORMAT.get(file.suffix.lower())
        if expected:
            raise ImageReadError(f"not a {expected} file: it is {what}", file)
        raise ImageReadError(
            f"unsupported format: the file is {what}; LeukView reads JPEG, PNG, BMP and TIFF",
            file,
        )
    return file, fmt


def _sniff(head: bytes) -> str | None:
    if head[:4] in _TIFF_MAGIC:
        return "TIFF"
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:2] == b"BM" and len(head) >= 26:
        return "BMP"
    return None


def _describe_unknown(head: bytes) -> str:
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            return what
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "a HEIF/AVIF image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "text, not image data"
    return "in an unrecognised format"


def _bomb(file: Path, w: int, h: int, limit: int, *, tiff: bool = False) -> ImageReadError:
    hint = ", or read it region by region" if tiff else ""
    return ImageReadError(
        f"refused before decoding: the header claims {w} x {h} = {w * h:,} pixels, more than the "
        f"limit of {limit:,} pixels (decompression-bomb guard); if the file is genuine, raise "
        f"the limit with {MAX_PIXELS_ENV}{hint}",
        file,
    )


# --------------------------------------------------------------------------- Pillow formats


@contextlib.contextmanager
def _pillow_guard() -> Iterator[None]:
    """Pin Pillow's globals: our own bomb limit replaces its, truncation is an error."""
    with _PILLOW_LOCK:
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS = None
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


@contextlib.contextmanager
def _pillow_errors(file: Path, fmt: str) -> Iterator[None]:
    """Turn whatever Pillow or imagecodecs raise into an ImageReadError."""
    try:
        yield
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(
            f"refused before decoding: too many pixels (decompression-bomb guard: {exc})", file
        ) from exc
    except MemoryError as exc:
        raise ImageReadError("not enough memory to decode this image", file) from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"the {fmt} header is damaged or not recognised", file) from exc
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise ImageReadError(
                f"the {fmt} file is truncated: the image data end early ({exc})", file
            ) from exc
        raise ImageReadError(
            f"the {fmt} data are damaged or cannot be decoded ({exc})", file
        ) from exc
    except Exception as exc:  # decoders raise SyntaxError, ValueError, struct.error, ...
        raise ImageReadError(
            f"the {fmt} data are damaged or cannot be decoded ({exc})", file
        ) from exc


def _pillow_read_image(file: Path, fmt: str, limit: int) -> np.ndarray:
    with (
        _pillow_errors(file, fmt),
        _pillow_guard(),
        Image.open(file, formats=_PILLOW_FORMATS[fmt]) as im,
    ):
        w, h = im.size
        if w * h > limit:
            raise _bomb(file, w, h, limit)
        if w < 1 or h < 1:
            raise ImageReadError(f"the {fmt} header gives an empty size {w} x {h}", file)
        if fmt == "PNG" and _png_bit_depth(file) == 16:
            raw = _png16_raw(file)
            layout = _layout_for_channels(raw.shape[-1], bits=16)
            # Pillow would decode again to 8 bits just to find an eXIf chunk placed
            # after the pixels; only one before them (as the PNG spec asks) counts.
            orientation = _pillow_orientation(im, loaded=False)
        else:
            im.load()
            raw, layout = _pillow_raw(im, file)
            orientation = _pillow_orientation(im, loaded=True)
    color = raw[..., : layout.ncolor]
    rgb = _to_rgb8(raw, layout, _white_level(color, layout))
    return _orient(rgb, orientation)


def _png_bit_depth(file: Path) -> int:
    with open(file, "rb") as fh:
        head = fh.read(26)
    return head[24] if len(head) >= 26 and head[12:16] == b"IHDR" else 8


def _png16_raw(file: Path) -> np.ndarray:
    import imagecodecs  # a tifffile companion; only 16-bit PNG needs it here

    raw = imagecodecs.png_decode(file.read_bytes())
    return raw[..., None] if raw.ndim == 2 else raw


def _pillow_raw(im: Image.Image, file: Path) -> tuple[np.ndarray, _Layout]:
    """Samples ``(H, W, S)`` and their layout for a loaded Pillow image."""
    mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info or im.palette.mode == "RGBA"
        mode = "RGBA" if has_alpha else "RGB"
        im = im.convert(mode)
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im, mode = im.convert("RGB"), "RGB"
    layouts = {
        "RGB": _Layout("rgb", bits=8),
        "RGBA": _Layout("rgb", alpha=3, bits=8),
        "RGBa": _Layout("rgb", alpha=3, premultiplied=True, bits=8),
        "L": _Layout("grey", bits=8),
        "LA": _Layout("grey", alpha=1, bits=8),
        "La": _Layout("grey", alpha=1, premultiplied=True, bits=8),
        "I;16": _Layout("grey", bits=16),
        "I;16L": _Layout("grey", bits=16),
        "I;16B": _Layout("grey", bits=16),
        "I;16N": _Layout("grey", bits=16),
        "I": _Layout("grey", bits=32),
        "F": _Layout("grey", bits=32),
    }
    if mode not in layouts:
        raise ImageReadError(f"unsupported pixel mode {mode!r}", file)
    raw = np.asarray(im)
    if raw.ndim == 2:
        raw = raw[..., None]
    return raw, layouts[mode]


def _pillow_orientation(im: Image.Image, *, loaded: bool) -> int:
    """EXIF orientation 1..8 (1 when absent or unreadable); never decodes pixels."""
    try:
        if im.format == "PNG" and not loaded:
            data = im.info.get("exif")
            if not data:
                return 1
            exif = Image.Exif()
            exif.load(data)
        else:
            exif = im.getexif()
        value = int(exif.get(0x0112, 1))
    except Exception:  # a damaged EXIF block must not cost the pixels
        return 1
    return value if 1 <= value <= 8 else 1


def _orient(a: np.ndarray, orientation: int | None) -> np.ndarray:
    """Apply an EXIF/TIFF orientation to ``(H, W, C)``, as ``ImageOps.exif_transpose`` does."""
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


def _paste(img: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """Crop ``img`` to the rectangle, white where it lies outside."""
    out = np.full((height, width, 3), 255, np.uint8)
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + width, w), min(y + height, h)
    if x0 < x1 and y0 < y1:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = img[y0:y1, x0:x1]
    return out


# --------------------------------------------------------------------------- samples to RGB


@dataclass(frozen=True)
class _Layout:
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
        return 3 if self.kind == "rgb" else 1


def _layout_for_channels(channels: int, bits: int) -> _Layout:
    kind = "grey" if channels <= 2 else "rgb"
    alpha = {2: 1, 4: 3}.get(channels)
    return _Layout(kind, alpha=alpha, bits=bits)


def _white_level(color: np.ndarray, layout: _Layout) -> float:
    """The sample value that becomes 255 (see the module notes)."""
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
        peak = float(np.nanmax(color)) if color.size else 0.0
        return 1.0 if not math.isfinite(peak) or peak <= 1.0 else peak
    raise ValueError(f"samples of type {dtype} cannot be shown")


def _alpha_white(dtype: np.dtype, bits: int) -> float:
    if dtype == np.bool_:
        return 1.0
    if dtype.kind in "ui":
        return float(2**bits - 1) if bits < 8 * dtype.itemsize else float(np.iinfo(dtype).max)
    return 1.0


def _to_rgb8(raw: np.ndarray, layout: _Layout, white: float) -> np.ndarray:
    """Samples ``(H, W, S)`` to ``(H, W, 3)`` uint8, in bands of rows to bound temporaries."""
    h, w = raw.shape[:2]
    out = np.empty((h, w, 3), np.uint8)
    step = max(1, _BAND_PIXELS // max(w, 1))
    for r0 in range(0, h, step):
        out[r0 : r0 + step] = _band_to_rgb8(raw[r0 : r0 + step], layout, white)
    return out


def _band_to_rgb8(raw: np.ndarray, layout: _Layout, white: float) -> np.ndarray:
    if layout.kind == "palette":
        cmap = layout.colormap
        rgb = cmap[np.clip(raw[..., 0], 0, len(cmap) - 1).astype(np.intp)]
    else:
        rgb = _scale_to_uint8(raw[..., : layout.ncolor], white)
        if layout.invert:
            rgb = 255 - rgb
        if layout.ncolor == 1:
            rgb = np.repeat(rgb, 3, axis=-1)
    if layout.alpha is None:
        return rgb
    alpha = raw[..., layout.alpha : layout.alpha + 1].astype(np.float32)
    alpha = np.clip(alpha / _alpha_white(raw.dtype, layout.bits), 0.0, 1.0)
    blend = rgb.astype(np.float32)
    if not layout.premultiplied:
        blend *= alpha
    blend += 255.0 * (1.0 - alpha)  # on white: slides are bright-field
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


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


# --------------------------------------------------------------------------- TIFF


@contextlib.contextmanager
def _tiff_errors(file: Path) -> Iterator[None]:
    """Turn whatever tifffile or its codecs raise into an ImageReadError."""
    try:
        yield
    except ImageReadError:
        raise
    except MemoryError as exc:
        raise ImageReadError("not enough memory to decode this TIFF", file) from exc
    except tifffile.TiffFileError as exc:
        raise ImageReadError(f"the TIFF structure is damaged ({exc})", file) from exc
    except (NotImplementedError, ValueError) as exc:
        raise ImageReadError(f"the TIFF data cannot be decoded ({exc})", file) from exc
    except Exception as exc:  # codecs raise their own error types
        raise ImageReadError(
            f"the TIFF data are damaged or cannot be decoded ({exc})", file
        ) from exc


def _first_series(file: Path, tif: tifffile.TiffFile) -> tifffile.TiffPageSeries:
    if not tif.series or not tif.series[0].levels:
        raise ImageReadError("the TIFF holds no image", file)
    return tif.series[0]


def _level_planes(file: Path, level: tifffile.TiffPageSeries) -> list:
    """The pages that make one 2-D image of a level: the first plane, or C = 3 planes as RGB."""
    pages = list(level.pages)
    if not pages or pages[0] is None:
        raise ImageReadError("the TIFF image has no pixel data", file)
    if len(pages) == 1:
        return pages
    key = pages[0].keyframe
    nlead = len(level.shape) - len(key.shape)
    lead_axes, lead_shape = level.axes[:nlead], level.shape[:nlead]
    if nlead < 1 or math.prod(lead_shape) != len(pages):
        return pages[:1]
    if "C" in lead_axes and lead_shape[lead_axes.index("C")] > 1:
        nc = lead_shape[lead_axes.index("C")]
        if nc != 3 or key.samplesperpixel != 1:
            raise ImageReadError(
                f"unsupported sample layout: {nc} channel planes of {key.samplesperpixel} "
                "sample(s) each (a multi-channel image, not a bright-field colour picture)",
                file,
            )
        ci = lead_axes.index("C")
        planes = []
        for c in range(3):
            index = [0] * nlead
            index[ci] = c
            planes.append(pages[int(np.ravel_multi_index(index, lead_shape))])
        if any(p is None for p in planes):
            raise ImageReadError("the TIFF image is missing channel planes", file)
        return planes
    return pages[:1]


def _tiff_layout(file: Path, planes: list) -> _Layout:
    """How the samples of these pages make a colour; refuses what cannot be shown."""
    key = planes[0].keyframe
    if key.imagedepth > 1:
        raise ImageReadError("unsupported sample layout: a volumetric (3-D) TIFF", file)
    if key.dtype is None or key.dtype.kind not in "buif":
        raise ImageReadError(
            f"unsupported sample layout: {key.bitspersample}-bit samples of format "
            f"{int(key.sampleformat)}",
            file,
        )
    photometric = int(key.photometric)
    max_sample = key.tags.valueof(281)
    if isinstance(max_sample, (tuple, list)):
        max_sample = max(max_sample) if max_sample else None
    common = {"bits": int(key.bitspersample), "max_sample": max_sample}
    if len(planes) > 1:
        for p in planes:
            k = p.keyframe
            if k.shape != key.shape or k.dtype != key.dtype or int(k.photometric) not in (0, 1):
                raise ImageReadError("unsupported sample layout: mismatched channel planes", file)
        return _Layout("rgb", **common)
    spp = int(key.samplesperpixel)
    extras = tuple(int(e) for e in key.extrasamples)
    ncolor = spp - len(extras)
    alpha_at = [i for i, e in enumerate(extras) if e in (1, 2)]
    alpha = ncolor + alpha_at[0] if alpha_at else None
    premultiplied = bool(alpha_at) and extras[alpha_at[0]] == 1
    name = getattr(key.photometric, "name", str(photometric))
    if photometric in (0, 1):  # MinIsWhite, MinIsBlack
        if ncolor != 1 or any(e not in (1, 2) for e in extras):
            raise ImageReadError(
                f"unsupported sample layout: {spp} samples per pixel with photometric {name} "
                "(a multi-channel image, not a bright-field picture)",
                file,
            )
        return _Layout(
            "grey", alpha=alpha, premultiplied=premultiplied, invert=photometric == 0, **common
        )
    rgb_like = photometric == 2 or (photometric == 6 and key.compression in _JPEG_COMPRESSIONS)
    if rgb_like:
        if ncolor != 3:
            raise ImageReadError(
                f"unsupported sample layout: {spp} samples per pixel with photometric {name}", file
            )
        return _Layout("rgb", alpha=alpha, premultiplied=premultiplied, **common)
    if photometric == 3:  # palette
        cmap = key.colormap
        if cmap is None or ncolor != 1:
            raise ImageReadError(
                "unsupported sample layout: a palette TIFF without a colour map", file
            )
        cmap = np.asarray(cmap, dtype=np.float64).T  # (N, 3)
        if cmap.max(initial=0) > 255:
            cmap = cmap / 257.0
        cmap8 = np.clip(np.rint(cmap), 0, 255).astype(np.uint8)
        return _Layout(
            "palette", alpha=alpha, premultiplied=premultiplied, colormap=cmap8, **common
        )
    raise ImageReadError(
        f"unsupported sample layout: photometric interpretation {name} "
        "(LeukView reads grey, RGB and palette TIFFs)",
        file,
    )


def _page_raw(page) -> np.ndarray:
    """All samples of a page as ``(H, W, S)``."""
    a = page.asarray(squeeze=False)  # (separate samples, depth, length, width, contig samples)
    a = a[:, 0]
    if a.shape[0] > 1:
        return np.moveaxis(a[..., 0], 0, -1)
    return a[0]


def _decode_segment(decode, data: bytes | None, index: int, decodeargs: dict):
    """Decode one tile or strip (a seam that tests use to count decoded segments)."""
    return decode(data, index, **decodeargs)


def _page_region_raw(
    file: Path, page, x0: int, y0: int, x1: int, y1: int, limit: int
) -> np.ndarray:
    """Samples ``(y1 - y0, x1 - x0, S)`` of a page, decoding only overlapping segments."""
    key = page.keyframe
    width, length = int(key.imagewidth), int(key.imagelength)
    spp = int(key.samplesperpixel)
    separate = key.planarconfig == 2 and spp > 1
    if key.is_tiled:
        th, tw = int(key.tilelength), int(key.tilewidth)
    else:
        th, tw = min(int(key.rowsperstrip), length), width
    if th < 1 or tw < 1:
        raise ImageReadError(f"the TIFF has an invalid tile or strip size {tw} x {th}", file)
    if th * tw > limit:
        raise _bomb(file, tw, th, limit, tiff=True)
    nrows, ncols = math.ceil(length / th), math.ceil(width / tw)
    offsets, counts = page.dataoffsets, page.databytecounts
    if len(offsets) < (spp if separate else 1) * nrows * ncols or len(counts) < len(offsets):
        raise ImageReadError("the TIFF is damaged: tile or strip offsets are missing", file)
    decodeargs: dict = {"_fullsize": False}
    if key.compression in _JPEG_COMPRESSIONS:
        decodeargs["jpegtables"] = page.jpegtables
        decodeargs["jpegheader"] = key.jpegheader
    fh = page.parent.filehandle
    with fh.lock:
        key.init_decode()
        decode = key.decode
    out = np.full((y1 - y0, x1 - x0, spp), key.nodata, dtype=key.dtype)
    for plane in range(spp if separate else 1):
        for row in range(y0 // th, (y1 - 1) // th + 1):
            for col in range(x0 // tw, (x1 - 1) // tw + 1):
                index = (plane * nrows + row) * ncols + col
                offset, count = int(offsets[index]), int(counts[index])
                data = None
                if count > 0:
                    with fh.lock:
                        fh.seek(offset)
                        data = fh.read(count)
                    if len(data) < count:
                        raise ImageReadError(
                            "the TIFF file is truncated: tile data end early", file
                        )
                segment, (s, _d, h, w, _), shape = _decode_segment(decode, data, index, decodeargs)
                if segment is None:
                    continue
                segment = segment[0, : length - h, : width - w]  # (rows, cols, samples)
                sy0, sy1 = max(y0, h), min(y1, h + segment.shape[0])
                sx0, sx1 = max(x0, w), min(x1, w + segment.shape[1])
                if sy0 >= sy1 or sx0 >= sx1:
                    continue
                block = segment[sy0 - h : sy1 - h, sx0 - w : sx1 - w]
                if separate:
                    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0, s] = block[..., 0]
                else:
                    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = block
    return out


def _tiff_read_image(file: Path, tif: tifffile.TiffFile, limit: int) -> np.ndarray:
    series = _first_series(file, tif)
    planes = _level_planes(file, series.levels[0])
    key = planes[0].keyframe
    w, h = int(key.imagewidth), int(key.imagelength)
    if w * h > limit:
        raise _bomb(file, w, h, limit, tiff=True)
    if w < 1 or h < 1:
        raise ImageReadError(f"the TIFF header gives an empty size {w} x {h}", file)
    layout = _tiff_layout(file, planes)
    _check_complete(file, planes)
    raw = np.concatenate([_page_raw(p) for p in planes], axis=-1)
    rgb = _to_rgb8(raw, layout, _white_level(raw[..., : layout.ncolor], layout))
    return _orient(rgb, _tiff_orientation(key))


def _check_complete(file: Path, planes: list) -> None:
    """A clear message for a cut-off file, instead of a codec error or silent zeros."""
    size = file.stat().st_size
    for page in planes:
        offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        counts = np.asarray(page.databytecounts, dtype=np.int64)
        n = min(len(offsets), len(counts))
        if n and int((offsets[:n] + counts[:n]).max()) > size:
            raise ImageReadError("the TIFF file is truncated: pixel data end early", file)


def _tiff_read_region(
    file: Path,
    tif: tifffile.TiffFile,
    x: int,
    y: int,
    width: int,
    height: int,
    level: int,
    limit: int,
) -> np.ndarray:
    series = _first_series(file, tif)
    levels = series.levels
    if level >= len(levels):
        raise ImageReadError(
            f"level {level} does not exist: the TIFF has {len(levels)} level(s)", file
        )
    planes = _level_planes(file, levels[level])
    key = planes[0].keyframe
    if _tiff_orientation(key) != 1:
        # Rare for slides: orient the whole level (bounded by the limit), then crop.
        if level != 0:
            raise ImageReadError(
                "unsupported: pyramid levels of a rotated (Orientation) TIFF", file
            )
        return _paste(_tiff_read_image(file, tif, limit), x, y, width, height)
    layout = _tiff_layout(file, planes)
    w, h = int(key.imagewidth), int(key.imagelength)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + width, w), min(y + height, h)
    out = np.full((height, width, 3), 255, np.uint8)
    if x0 >= x1 or y0 >= y1:
        return out
    raw = np.concatenate(
        [_page_region_raw(file, p, x0, y0, x1, y1, limit) for p in planes], axis=-1
    )
    white = _region_white(file, series, layout, raw[..., : layout.ncolor])
    out[y0 - y : y1 - y, x0 - x : x1 - x] = _to_rgb8(raw, layout, white)
    return out


def _region_white(
    file: Path, series: tifffile.TiffPageSeries, layout: _Layout, color: np.ndarray
) -> float:
    """White level shared by all regions of a file (see the module notes)."""
    data_dependent = (
        layout.kind != "palette"
        and color.dtype.itemsize > 1
        and layout.bits >= 8
        and not (
            color.dtype.kind in "ui"
            and layout.max_sample is not None
            and 255 < layout.max_sample < np.iinfo(color.dtype).max
        )
    )
    if not data_dependent:
        return _white_level(color, layout)
    smallest = series.levels[-1]
    key = smallest.keyframe
    if int(key.imagewidth) * int(key.imagelength) > _OVERVIEW_MAX_PIXELS:
        return _white_level(color, layout)
    st = file.stat()
    return _overview_white(str(file.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _overview_white(path: str, _mtime_ns: int, _size: int) -> float:
    """White level of the smallest level of a TIFF (cached per file version)."""
    file = Path(path)
    with tifffile.TiffFile(file) as tif:
        series = _first_series(file, tif)
        planes = _level_planes(file, series.levels[-1])
        layout = _tiff_layout(file, planes)
        raw = np.concatenate([_page_raw(p) for p in planes], axis=-1)
        return _white_level(raw[..., : layout.ncolor], layout)


def _tiff_orientation(key) -> int:
    try:
        value = int(key.tags.valueof(274, 1))
    except (TypeError, ValueError, AttributeError):
        return 1
    return value if 1 <= value <= 8 else 1


def _tiff_info(file: Path, tif: tifffile.TiffFile) -> ImageInfo:
    series = _first_series(file, tif)
    levels = []
    for lvl in series.levels:
        k = lvl.keyframe
        levels.append((int(k.imagewidth), int(k.imagelength)))
    key = series.levels[0].keyframe
    if _tiff_orientation(key) in (5, 6, 7, 8):
        levels = [(h, w) for w, h in levels]
    return ImageInfo(
        width=levels[0][0],
        height=levels[0][1],
        levels=levels,
        pixel_size_um=_tiff_pixel_size(tif, key),
        tiled=bool(key.is_tiled),
        format="OME-TIFF" if tif.is_ome else "TIFF",
    )


# --------------------------------------------------------------------------- pixel size


def _unit_to_um(unit: str | None) -> float | None:
    if unit is None:
        return None
    u = unit.strip().replace("\\u00B5", "u").replace("\\u00b5", "u")
    u = u.replace("\u00b5", "u").replace("\u03bc", "u").lower()
    return _UNIT_UM.get(u)


def _positive(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value > 0 else None


def _plausible(um_per_px: float | None) -> float | None:
    lo, hi = _PLAUSIBLE_UM_PER_PX
    return um_per_px if um_per_px is not None and lo <= um_per_px <= hi else None


def _tiff_pixel_size(tif: tifffile.TiffFile, key) -> float | None:
    """Micrometres per pixel from OME, ImageJ, Aperio or resolution tags (first that says)."""
    for reader in (_ome_pixel_size, _imagej_pixel_size, _svs_pixel_size, _tag_pixel_size):
        try:
            value = reader(tif, key)
        except Exception:  # metadata are optional: a damaged block means "unknown"
            value = None
        if value is not None:
            return value
    return None


def _ome_pixel_size(tif: tifffile.TiffFile, key) -> float | None:
    xml = tif.ome_metadata if tif.is_ome else None
    if not xml:
        return None
    root = ET.fromstring(xml)
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Pixels":
            size = el.get("PhysicalSizeX")
            if size is None:
                return None
            factor = _unit_to_um(el.get("PhysicalSizeXUnit", "µm"))
            return _positive(float(size) * factor) if factor else None
    return None


def _xresolution(key) -> float | None:
    value = key.tags.valueof(282)
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        num, den = value[:2]
        return num / den if den else None
    return float(value)


def _imagej_pixel_size(tif: tifffile.TiffFile, key) -> float | None:
    meta = tif.imagej_metadata if tif.is_imagej else None
    if not meta:
        return None
    factor = _unit_to_um(meta.get("unit"))
    res = _xresolution(key)
    if not factor or not res:
        return None
    return _positive(factor / res)


def _svs_pixel_size(tif: tifffile.TiffFile, key) -> float | None:
    if not tif.is_svs:
        return None
    mpp = tifffile.svs_description_metadata(key.description).get("MPP")
    return _positive(float(mpp)) if mpp is not None else None


def _tag_pixel_size(tif: tifffile.TiffFile, key) -> float | None:
    unit = key.tags.valueof(296, 2)  # TIFF default unit: inch
    per_unit = {2: 25400.0, 3: 10000.0}.get(int(unit))
    res = _xresolution(key)
    if per_unit is None or not res:
        return None
    return _plausible(per_unit / res)


def _dpi_pixel_size(dpi) -> float | None:
    """Pixel size from Pillow's ``info['dpi']`` (PNG pHYs, JPEG JFIF), if plausible."""
    try:
        xdpi = float(dpi[0])
    except (TypeError, ValueError, IndexError):
        return None
    return _plausible(25400.0 / xdpi) if xdpi > 0 else None
