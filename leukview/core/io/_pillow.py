"""JPEG, PNG and BMP through Pillow (16-bit PNG through imagecodecs), EXIF orientation.

Pillow keeps its own bomb limit and truncation switch in module globals;
:func:`pillow_guard` pins them while LeukView decodes (see the notes of
:mod:`leukview.core.io`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..errors import ImageReadError
from ._geometry import orient
from ._info import ImageInfo
from ._limits import bomb_error
from ._pixelsize import dpi_pixel_size
from ._rgb import Layout, layout_for_channels, to_rgb8, white_level

__all__ = ["pillow_info", "pillow_read_image"]

# The Pillow plug-ins each sniffed format may use (a JPEG can be an MPO).
_PILLOW_FORMATS = {"JPEG": ("JPEG", "MPO"), "PNG": ("PNG",), "BMP": ("BMP",)}

# One lock, so that concurrent reads agree on Pillow's pinned globals.
_PILLOW_LOCK = threading.RLock()


def pillow_read_image(file: Path, fmt: str, limit: int) -> np.ndarray:
    """Decode a whole JPEG, PNG or BMP.

    Parameters
    ----------
    file : pathlib.Path
        The image.
    fmt : str
        ``'JPEG'``, ``'PNG'`` or ``'BMP'``, as sniffed.
    limit : int
        Most pixels allowed; checked on the header before decoding.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB, EXIF orientation applied, alpha on white.

    Raises
    ------
    ImageReadError
        Above the limit, empty, damaged, truncated or an unsupported mode.
    """
    with (
        pillow_errors(file, fmt),
        pillow_guard(),
        Image.open(file, formats=_PILLOW_FORMATS[fmt]) as im,
    ):
        w, h = im.size
        if w * h > limit:
            raise bomb_error(file, w, h, limit)
        if w < 1 or h < 1:
            raise ImageReadError(f"the {fmt} header gives an empty size {w} x {h}", file)
        if fmt == "PNG" and _png_bit_depth(file) == 16:
            raw = _png16_raw(file)
            layout = layout_for_channels(raw.shape[-1], bits=16)
            # Pillow would decode again to 8 bits just to find an eXIf chunk placed
            # after the pixels; only one before them (as the PNG spec asks) counts.
            orientation = pillow_orientation(im, loaded=False)
        else:
            im.load()
            raw, layout = _pillow_raw(im, file)
            orientation = pillow_orientation(im, loaded=True)
    color = raw[..., : layout.ncolor]
    rgb = to_rgb8(raw, layout, white_level(color, layout))
    return orient(rgb, orientation)


def pillow_info(file: Path, fmt: str) -> ImageInfo:
    """Size after EXIF orientation and pixel size from a JPEG, PNG or BMP header.

    Parameters
    ----------
    file : pathlib.Path
        The image.
    fmt : str
        ``'JPEG'``, ``'PNG'`` or ``'BMP'``, as sniffed.

    Returns
    -------
    ImageInfo
        One level, not tiled; no pixels are decoded and no limit applies.
    """
    with (
        pillow_errors(file, fmt),
        pillow_guard(),
        Image.open(file, formats=_PILLOW_FORMATS[fmt]) as im,
    ):
        w, h = im.size
        orientation = pillow_orientation(im, loaded=False)
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        return ImageInfo(
            width=w,
            height=h,
            levels=[(w, h)],
            pixel_size_um=dpi_pixel_size(im.info.get("dpi")),
            tiled=False,
            format=fmt,
        )


@contextlib.contextmanager
def pillow_guard() -> Iterator[None]:
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
def pillow_errors(file: Path, fmt: str) -> Iterator[None]:
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


def pillow_orientation(im: Image.Image, *, loaded: bool) -> int:
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


def _png_bit_depth(file: Path) -> int:
    with open(file, "rb") as fh:
        head = fh.read(26)
    return head[24] if len(head) >= 26 and head[12:16] == b"IHDR" else 8


def _png16_raw(file: Path) -> np.ndarray:
    import imagecodecs  # a tifffile companion; only 16-bit PNG needs it here

    raw = imagecodecs.png_decode(file.read_bytes())
    return raw[..., None] if raw.ndim == 2 else raw


def _pillow_raw(im: Image.Image, file: Path) -> tuple[np.ndarray, Layout]:
    """Samples ``(H, W, S)`` and their layout for a loaded Pillow image."""
    mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"
    elif mode in ("P", "PA"):
        palette_mode = im.palette.mode if im.palette is not None else None
        has_alpha = mode == "PA" or "transparency" in im.info or palette_mode == "RGBA"
        mode = "RGBA" if has_alpha else "RGB"
        im = im.convert(mode)
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im, mode = im.convert("RGB"), "RGB"
    layouts = {
        "RGB": Layout("rgb", bits=8),
        "RGBA": Layout("rgb", alpha=3, bits=8),
        "RGBa": Layout("rgb", alpha=3, premultiplied=True, bits=8),
        "L": Layout("grey", bits=8),
        "LA": Layout("grey", alpha=1, bits=8),
        "La": Layout("grey", alpha=1, premultiplied=True, bits=8),
        "I;16": Layout("grey", bits=16),
        "I;16L": Layout("grey", bits=16),
        "I;16B": Layout("grey", bits=16),
        "I;16N": Layout("grey", bits=16),
        "I": Layout("grey", bits=32),
        "F": Layout("grey", bits=32),
    }
    if mode not in layouts:
        raise ImageReadError(f"unsupported pixel mode {mode!r}", file)
    raw = np.asarray(im)
    if raw.ndim == 2:
        raw = raw[..., None]
    return raw, layouts[mode]
