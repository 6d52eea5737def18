"""JPEG, PNG and BMP through Pillow (16-bit PNG through imagecodecs), EXIF orientation.

Pillow keeps its own bomb limit and truncation switch in module globals;
:func:`pillow_guard` pins them while LeukView decodes (see the notes of
:mod:`leukview.core.io`).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..errors import ImageReadError
from ._geometry import orient
from ._info import ImageInfo
from ._jpeg import check_jpeg_fill, check_jpeg_structure, jpeg_structure
from ._limits import bomb_error, memory_error
from ._pixelsize import dpi_pixel_size
from ._rgb import (
    Layout,
    band_rows,
    band_temp_bytes,
    layout_for_channels,
    to_rgb8,
    white_level,
)

__all__ = ["pillow_info", "pillow_read_bytes", "pillow_read_image"]

# The Pillow plug-ins each sniffed format may use (a JPEG can be an MPO).
_PILLOW_FORMATS = {"JPEG": ("JPEG", "MPO"), "PNG": ("PNG",), "BMP": ("BMP",)}

# Bytes a pixel of Pillow's own image by mode (every other mode, RGB too, takes 4).
_PILLOW_CORE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# Samples a pixel of a PNG by IHDR colour type.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}

# One lock, so that concurrent reads agree on Pillow's pinned globals.
_PILLOW_LOCK = threading.RLock()


def pillow_read_image(file: Path, fmt: str, limit: int, budget: int) -> np.ndarray:
    """Decode a whole JPEG, PNG or BMP.

    Parameters
    ----------
    file : pathlib.Path
        The image.
    fmt : str
        ``'JPEG'``, ``'PNG'`` or ``'BMP'``, as sniffed.
    limit : int
        Most pixels allowed; checked on the header before decoding.
    budget : int
        Most bytes the read may allocate (see :func:`pillow_read_bytes`);
        checked on the header before decoding.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB, EXIF orientation applied, alpha on white.

    Raises
    ------
    ImageReadError
        Above the limit or the budget, empty, damaged, truncated (for JPEG also
        data that end early before an EOI marker, see :mod:`._jpeg`) or an
        unsupported mode.
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
        jpeg = jpeg_structure(file) if fmt == "JPEG" else None
        if jpeg is not None:
            check_jpeg_structure(file, jpeg)  # a lying header or a cut file, before decoding
        need = pillow_read_bytes(im, file)
        if need > budget:
            raise memory_error(file, w, h, need, budget, fmt=fmt)
        if fmt == "PNG" and _png_header(file)[0] == 16:
            raw = _png16_raw(file)
            # Pillow would decode again to 8 bits just to find an eXIf chunk placed
            # after the pixels; only one before them (as the PNG spec asks) counts.
            orientation = pillow_orientation(im, loaded=False)
            layout = layout_for_channels(raw.shape[-1], bits=16)
            rgb = to_rgb8(raw, layout, white_level(raw[..., : layout.ncolor], layout))
            del raw
        else:
            im.load()
            orientation = pillow_orientation(im, loaded=True)
            rgb = _pillow_rgb8(im, file)
        im.close()  # Pillow's own copy of the pixels goes before any rotated copy is made
    if jpeg is not None:
        check_jpeg_fill(file, jpeg, rgb)
    return orient(rgb, orientation)


def pillow_read_bytes(im: Image.Image, file: Path) -> int:
    """Estimated peak bytes of :func:`pillow_read_image` for an opened, unloaded image.

    The largest of: Pillow's image (1 byte a pixel for grey and palette, 2 for
    16-bit grey, 4 for everything else, RGB included) with, for progressive
    JPEG, libjpeg's whole-image coefficient buffer (2 bytes a sample); Pillow's
    image with the ``(H, W, 3)`` result and one band of temporaries; the result
    and its rotated copy when the EXIF orientation turns it. A 16-bit PNG (read
    by imagecodecs) counts its file, its samples and the result instead.
    """
    w, h = im.size
    px = w * h
    out = 3 * px
    rotate = 2 * out if pillow_orientation(im, loaded=False) != 1 else 0
    depth, color_type = _png_header(file) if im.format == "PNG" else (8, 0)
    if depth == 16:
        samples = px * _PNG_CHANNELS.get(color_type, 4) * 2
        decode = file.stat().st_size + samples
        return max(decode, samples + out + band_temp_bytes(w, h, None, 2), rotate)
    core = px * _PILLOW_CORE_BYTES.get(im.mode, 4)
    decode = core + _jpeg_coefficient_bytes(im)
    try:
        target, layout = _pillow_layout(im, file)
    except ImageReadError:
        return max(decode, rotate)  # refused when read, for its mode
    if layout.bits > 8:  # converted whole: Pillow's image, the samples and the result
        samples = px * 4
        return max(decode, core + samples + out + band_temp_bytes(w, h, layout, 4), rotate)
    temps = band_temp_bytes(w, h, layout) + (band_rows(w) * w * 4 if target else 0)
    return max(decode, core + out + temps, rotate)


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
        One level, not tiled, with the estimated memory of a whole read; no
        pixels are decoded and no limit applies.
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
            read_bytes=pillow_read_bytes(im, file),
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


def _png_header(file: Path) -> tuple[int, int]:
    """Bit depth and colour type from a PNG's IHDR (8 and 0 when it cannot be read)."""
    with open(file, "rb") as fh:
        head = fh.read(26)
    return (head[24], head[25]) if len(head) >= 26 and head[12:16] == b"IHDR" else (8, 0)


def _jpeg_coefficient_bytes(im: Image.Image) -> int:
    """libjpeg's whole-image coefficient buffer of a progressive JPEG (0 for baseline)."""
    if im.format not in ("JPEG", "MPO") or not im.info.get("progressive"):
        return 0
    layers = getattr(im, "layer", None) or [("", 1, 1, 0)] * 3
    w, h = im.size
    hmax = max(int(layer[1]) for layer in layers) or 1
    vmax = max(int(layer[2]) for layer in layers) or 1
    mcu_x, mcu_y = math.ceil(w / (8 * hmax)), math.ceil(h / (8 * vmax))
    # every component's blocks of whole MCUs, 64 coefficients of 2 bytes each
    total = sum(mcu_x * int(layer[1]) * mcu_y * int(layer[2]) * 128 for layer in layers)
    return total


def _png16_raw(file: Path) -> np.ndarray:
    import imagecodecs  # a tifffile companion; only 16-bit PNG needs it here

    raw = imagecodecs.png_decode(file.read_bytes())
    return raw[..., None] if raw.ndim == 2 else raw


def _pillow_layout(im: Image.Image, file: Path) -> tuple[str | None, Layout]:
    """The mode each band is converted to (None: kept) and the layout of its samples."""
    mode = im.mode
    target: str | None = None
    if mode == "1":
        target = "L"
    elif mode in ("P", "PA"):
        palette_mode = im.palette.mode if im.palette is not None else None
        has_alpha = mode == "PA" or "transparency" in im.info or palette_mode == "RGBA"
        target = "RGBA" if has_alpha else "RGB"
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        target = "RGB"
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
    layout = layouts.get(target or mode)
    if layout is None:
        raise ImageReadError(f"unsupported pixel mode {mode!r}", file)
    return target, layout


def _samples(im: Image.Image) -> np.ndarray:
    raw = np.asarray(im)
    return raw[..., None] if raw.ndim == 2 else raw


def _pillow_rgb8(im: Image.Image, file: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a loaded Pillow image, converted band by band.

    Bands keep the temporaries (Pillow's crop, its bytes, the float conversion)
    to one band, so the peak is Pillow's image plus the result.
    """
    target, layout = _pillow_layout(im, file)
    if layout.bits > 8:  # 16/32-bit grey: the white level needs the whole image's maximum
        raw = _samples(im.convert(target) if target else im)
        return to_rgb8(raw, layout, white_level(raw[..., : layout.ncolor], layout))
    w, h = im.size
    out = np.empty((h, w, 3), np.uint8)
    step = band_rows(w)
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        band = im.crop((0, r0, w, r1))
        if target:
            band = band.convert(target)
        raw = _samples(band)
        to_rgb8(raw, layout, white_level(raw[..., : layout.ncolor], layout), out[r0:r1])
    return out
