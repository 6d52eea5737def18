"""A rectangle of one TIFF level, decoding only the tiles or strips it overlaps.

Memory is bounded by the region plus one segment, whatever the size of the level;
regions of more than 8 bits share the white level of the smallest pyramid level
(see the notes of :mod:`leukview.core.io`).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import tifffile

from ..errors import ImageReadError
from ._geometry import paste
from ._limits import bomb_error, memory_error
from ._rgb import Layout, band_temp_bytes, to_rgb8, white_level
from ._tiff import (
    JPEG_COMPRESSIONS,
    first_series,
    level_planes,
    missing_segments,
    missing_text,
    open_tiff,
    page_raw,
    segment_shape,
    tiff_layout,
    tiff_orientation,
    tiff_read_image,
)

__all__ = ["region_read_bytes", "tiff_read_region"]

# Smallest pyramid level up to this size sets the white level of region reads.
_OVERVIEW_MAX_PIXELS = 4_000_000


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
    th, tw = segment_shape(key)
    if th < 1 or tw < 1:
        raise ImageReadError(f"the TIFF has an invalid tile or strip size {tw} x {th}", file)
    if th * tw > limit:
        raise bomb_error(file, tw, th, limit, tiff=True, tile=True)
    nrows, ncols = math.ceil(length / th), math.ceil(width / tw)
    offsets, counts = page.dataoffsets, page.databytecounts
    if len(offsets) < (spp if separate else 1) * nrows * ncols or len(counts) < len(offsets):
        raise ImageReadError("the TIFF is damaged: tile or strip offsets are missing", file)
    rows = np.arange(y0 // th, (y1 - 1) // th + 1)
    cols = np.arange(x0 // tw, (x1 - 1) // tw + 1)
    needed = (
        (np.arange(spp if separate else 1)[:, None, None] * nrows + rows[None, :, None]) * ncols
        + cols[None, None, :]
    ).ravel()
    missing = missing_segments(page, needed)
    if missing:
        raise ImageReadError(
            f"the TIFF is damaged: {missing_text(page, missing, needed.size, of_region=True)} "
            "this region needs have no data (a zero offset or byte count)",
            file,
        )
    decodeargs: dict = {"_fullsize": False}
    if key.compression in JPEG_COMPRESSIONS:
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


def tiff_read_region(
    file: Path,
    tif: tifffile.TiffFile,
    x: int,
    y: int,
    width: int,
    height: int,
    level: int,
    limit: int,
    budget: int,
) -> np.ndarray:
    """``(height, width, 3)`` uint8 RGB of one level, white outside it.

    ``x, y`` are in the pixels of ``level``; only the segments that overlap are
    decoded, each checked against ``limit``, and the whole read against
    ``budget`` bytes (see :func:`region_read_bytes`). A rotated (Orientation)
    TIFF is oriented whole at level 0 (under the whole-read budget), then cropped.
    """
    series = first_series(file, tif)
    levels = series.levels
    if level >= len(levels):
        raise ImageReadError(
            f"level {level} does not exist: the TIFF has {len(levels)} level(s)", file
        )
    planes = level_planes(file, levels[level])
    key = planes[0].keyframe
    # Level 0's tag counts for every level (as in image_info): reduced levels often lack it.
    if tiff_orientation(key) != 1 or tiff_orientation(levels[0].keyframe) != 1:
        # Rare for slides: orient the whole level (bounded by the limit), then crop.
        if level != 0:
            raise ImageReadError(
                "unsupported: pyramid levels of a rotated (Orientation) TIFF", file
            )
        return paste(tiff_read_image(file, tif, limit, budget), x, y, width, height)
    layout = tiff_layout(file, planes)
    w, h = int(key.imagewidth), int(key.imagelength)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + width, w), min(y + height, h)
    th, tw = segment_shape(key)
    if th * tw > limit:  # one tile (or strip) would be decoded whole
        raise bomb_error(file, tw, th, limit, tiff=True, tile=True)
    need = region_read_bytes(planes, layout, width, height, max(x1 - x0, 0), max(y1 - y0, 0))
    if need > budget:
        raise memory_error(file, width, height, need, budget, fmt="TIFF", region=True)
    out = np.full((height, width, 3), 255, np.uint8)
    if x0 >= x1 or y0 >= y1:
        return out
    raw = np.concatenate(
        [_page_region_raw(file, p, x0, y0, x1, y1, limit) for p in planes], axis=-1
    )
    white = _region_white(file, series, layout, raw[..., : layout.ncolor])
    out[y0 - y : y1 - y, x0 - x : x1 - x] = to_rgb8(raw, layout, white)
    return out


def region_read_bytes(
    planes: list, layout: Layout, width: int, height: int, inside_w: int, inside_h: int
) -> int:
    """Estimated peak bytes of a region read: the white-padded result, the samples of
    the part inside the level (twice for separate planes), their RGB conversion with
    one band of temporaries, and one decoded segment with its compressed bytes."""
    key = planes[0].keyframe
    spp = int(key.samplesperpixel)
    itemsize = key.dtype.itemsize if key.dtype is not None else 8
    inside = inside_w * inside_h
    samples = inside * spp * itemsize * len(planes) * (2 if len(planes) > 1 else 1)
    th, tw = segment_shape(key)
    segment = 3 * th * tw * spp * itemsize  # compressed, decoded, and the decoder's own copy
    temps = band_temp_bytes(inside_w, inside_h, layout, itemsize)
    return width * height * 3 + samples + inside * 3 + temps + segment


def _region_white(
    file: Path, series: tifffile.TiffPageSeries, layout: Layout, color: np.ndarray
) -> float:
    """White level shared by all regions of a file (see :mod:`leukview.core.io`)."""
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
        return white_level(color, layout)
    smallest = series.levels[-1]
    key = smallest.keyframe
    if int(key.imagewidth) * int(key.imagelength) > _OVERVIEW_MAX_PIXELS:
        return white_level(color, layout)
    st = file.stat()
    return _overview_white(str(file.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _overview_white(path: str, _mtime_ns: int, _size: int) -> float:
    """White level of the smallest level of a TIFF (cached per file version)."""
    file = Path(path)
    with open_tiff(file) as tif:
        series = first_series(file, tif)
        planes = level_planes(file, series.levels[-1])
        layout = tiff_layout(file, planes)
        raw = np.concatenate([page_raw(p) for p in planes], axis=-1)
        return white_level(raw[..., : layout.ncolor], layout)
