"""TIFF through tifffile: the first series, its pages, their sample layout, whole reads.

Region reads of tiled and stripped levels are in :mod:`._tiff_region`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from ..errors import ImageReadError
from ._geometry import orient
from ._info import ImageInfo
from ._limits import bomb_error, memory_error
from ._pixelsize import tiff_pixel_size
from ._rgb import Layout, band_temp_bytes, is_plain_rgb8, to_rgb8, white_level

__all__ = [
    "JPEG_COMPRESSIONS",
    "READ_BUFFER_BYTES",
    "first_series",
    "level_planes",
    "missing_segments",
    "missing_text",
    "open_tiff",
    "page_raw",
    "refuse_external_references",
    "segment_shape",
    "tiff_errors",
    "tiff_info",
    "tiff_layout",
    "tiff_log",
    "tiff_orientation",
    "tiff_read_bytes",
    "tiff_read_image",
]

#: TIFF Compression values whose tiles are JPEG (old-style, new-style, Adobe, Aperio).
JPEG_COMPRESSIONS = {6, 7, 34892, 33007}

#: Compressed bytes that tifffile reads in one batch for a whole read.
READ_BUFFER_BYTES = 64 * 1024**2


@contextlib.contextmanager
def tiff_errors(file: Path) -> Iterator[None]:
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


class _TifffileLog(logging.Handler):
    """Keeps tifffile's warnings for the read in progress; prints nothing.

    tifffile logs what it finds odd in a file (to stderr, through logging's
    last resort, once per open: twice when a file is looked at, then read).
    These messages are about the file being read, so they belong to its
    result: :func:`open_tiff` collects them and :func:`tiff_info` turns them
    into ``ImageInfo.warnings``; outside a read they are dropped.
    """

    def emit(self, record: logging.LogRecord) -> None:
        messages = _TIFF_LOG.get()
        if messages is None or len(messages) >= _MAX_LOG_MESSAGES:
            return
        try:
            text = record.getMessage()
        except Exception:  # a malformed record must not cost the read
            return
        text = _TIFF_REPR.sub("", text).strip()
        text = text.removeprefix("raised ")
        text = "".join(c if c.isprintable() else "?" for c in text).strip()
        text = "tifffile: " + (text if len(text) <= 200 else text[:197] + "...")
        if text not in messages:
            messages.append(text)


_TIFF_LOG: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "leukview_tifffile_log", default=None
)
_MAX_LOG_MESSAGES = 10
# tifffile's object reprs (<tifffile.TiffTag 270 @70>, <TiffTag.fromfile>) say nothing to a person.
_TIFF_REPR = re.compile(r"<(?:tifffile\.)?[A-Z][A-Za-z_.]*(?: [^<>]*)?>\s*")


def _route_tifffile_log() -> None:
    logger = logging.getLogger("tifffile")
    if not any(isinstance(h, _TifffileLog) for h in logger.handlers):
        logger.addHandler(_TifffileLog(logging.WARNING))
    logger.propagate = False


_route_tifffile_log()


def tiff_log() -> list[str]:
    """tifffile's warnings so far in the :func:`open_tiff` block in progress."""
    return list(_TIFF_LOG.get() or [])


@contextlib.contextmanager
def open_tiff(file: Path) -> Iterator[tifffile.TiffFile]:
    """Open a TIFF so that nothing but this file is ever read, errors as ImageReadError.

    tifffile follows references to other files: OME-XML ``UUID FileName`` (any
    path, ``../../etc/passwd`` included), Micro-Manager stacks (every
    ``*_MMStack*.tif`` beside it) and NDTiff indexes. Here the multi-file OME
    series is off, Micro-Manager and NDTiff series are not tried, and an
    OME-XML that puts pixel data in other files is refused before any series
    is built (:func:`refuse_external_references`). tifffile's log lines while
    the block runs are kept for :func:`tiff_log`, not printed.
    """
    token = _TIFF_LOG.set([])
    try:
        with (
            tiff_errors(file),
            tifffile.TiffFile(file, _multifile=False, is_mmstack=False, is_ndtiff=False) as tif,
        ):
            refuse_external_references(file, tif)
            yield tif
    finally:
        _TIFF_LOG.reset(token)


def refuse_external_references(file: Path, tif: tifffile.TiffFile) -> None:
    """ImageReadError when the OME-XML puts pixel data in files other than ``file``.

    A ``TiffData`` ``UUID`` is this file when it is the OME root's UUID or, with no
    root UUID, when its ``FileName`` is this file's name (tifffile's own rule);
    any other names another file. The names go into the message as written in
    this file's XML; nothing of the other files is read.
    """
    if not tif.is_ome:
        return
    try:
        root = ET.fromstring(tif.ome_metadata or "")
    except ET.ParseError:
        return  # tifffile does not build an OME series from XML it cannot parse either
    own = {root.get("UUID")} - {None}
    uuids = [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "UUID"]
    if not own:
        own = {
            (el.text or "").strip()
            for el in uuids
            if el.get("FileName", "").lower() == file.name.lower()
        }
    others = sorted(
        {el.get("FileName") or (el.text or "").strip() for el in uuids}
        - {""}
        - {el.get("FileName") or "" for el in uuids if (el.text or "").strip() in own}
    )
    if others:
        names = ", ".join(_printable(name) for name in others[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        raise ImageReadError(
            f"the OME-TIFF puts its pixel data in {len(others)} other file(s) ({names}{more}); "
            "LeukView reads only the file it is given and never opens the files an OME-TIFF "
            "names",
            file,
        )


def _printable(name: str, most: int = 60) -> str:
    text = repr(name)
    return text if len(text) <= most else text[: most - 3] + "..."


def first_series(file: Path, tif: tifffile.TiffFile) -> tifffile.TiffPageSeries:
    """The first series (tifffile's own choice), or an error when there is none."""
    if not tif.series or not tif.series[0].levels:
        raise ImageReadError("the TIFF holds no image", file)
    return tif.series[0]


def level_planes(file: Path, level: tifffile.TiffPageSeries) -> list:
    """The pages that make one 2-D image of a level: the first plane, or C = 3 planes as RGB."""
    pages: list = list(level.pages)  # pages and frames, typed loosely as elsewhere here
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


def tiff_layout(file: Path, planes: list) -> Layout:
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
        return Layout("rgb", **common)
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
        return Layout(
            "grey", alpha=alpha, premultiplied=premultiplied, invert=photometric == 0, **common
        )
    rgb_like = photometric == 2 or (photometric == 6 and key.compression in JPEG_COMPRESSIONS)
    if rgb_like:
        if ncolor != 3:
            raise ImageReadError(
                f"unsupported sample layout: {spp} samples per pixel with photometric {name}", file
            )
        return Layout("rgb", alpha=alpha, premultiplied=premultiplied, **common)
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
        return Layout("palette", alpha=alpha, premultiplied=premultiplied, colormap=cmap8, **common)
    raise ImageReadError(
        f"unsupported sample layout: photometric interpretation {name} "
        "(LeukView reads grey, RGB and palette TIFFs)",
        file,
    )


def page_raw(page) -> np.ndarray:
    """All samples of a page as ``(H, W, S)``."""
    # tifffile reads compressed segments in batches of buffersize bytes: keep them small.
    a = page.asarray(squeeze=False, buffersize=READ_BUFFER_BYTES)
    a = a[:, 0]  # (separate samples, depth, length, width, contig samples) without depth
    if a.shape[0] > 1:
        return np.moveaxis(a[..., 0], 0, -1)
    return a[0]


def segment_shape(key) -> tuple[int, int]:
    """``(rows, columns)`` of one tile, or of one strip, of a key frame."""
    if key.is_tiled:
        return int(key.tilelength), int(key.tilewidth)
    length = int(key.imagelength)
    return min(int(key.rowsperstrip or length), length), int(key.imagewidth)


def tiff_read_bytes(planes: list) -> int:
    """Estimated peak bytes of :func:`tiff_read_image` for the pages of level 0.

    The largest of: the samples of every plane (twice when separate planes are
    joined) with tifffile's working set (one batch of compressed bytes, and a
    decoded segment and its copy per worker thread); the samples with the RGB
    result and one band of temporaries (no result when the samples already are
    RGB uint8); the result and its rotated copy when the Orientation tag turns it.
    """
    key = planes[0].keyframe
    w, h = int(key.imagewidth), int(key.imagelength)
    spp = int(key.samplesperpixel)
    itemsize = key.dtype.itemsize if key.dtype is not None else 8
    px = w * h
    samples = px * spp * itemsize * len(planes)
    if len(planes) > 1:
        samples *= 2  # np.concatenate copies the planes
    th, tw = segment_shape(key)
    segment = th * tw * spp * itemsize
    workers = int(tifffile.TIFF.MAXWORKERS)
    stored = int(np.asarray(planes[0].databytecounts, dtype=np.float64).sum())
    decode = min(stored, 2 * READ_BUFFER_BYTES) + workers * 3 * segment
    plain = (
        key.dtype == np.uint8
        and int(key.bitspersample) == 8
        and spp == 3
        and len(planes) == 1
        and int(key.photometric) in (2, 6)  # RGB, or JPEG's YCbCr decoded to RGB
    )
    out = 0 if plain else 3 * px
    # the layout is not known here: assume float temporaries unless 8-bit without alpha
    light = Layout("rgb" if spp >= 3 else "grey", bits=8) if spp in (1, 3) else None
    temps = 0 if plain else band_temp_bytes(w, h, light, itemsize)
    convert = px * spp * itemsize * len(planes) + out + temps
    rotate = 2 * 3 * px if tiff_orientation(key) != 1 else 0
    return max(samples + decode, convert, rotate)


def tiff_read_image(file: Path, tif: tifffile.TiffFile, limit: int, budget: int) -> np.ndarray:
    """Level 0 of the first series as ``(H, W, 3)`` uint8 RGB, orientation applied.

    Raises :class:`~leukview.core.errors.ImageReadError` when level 0 has more
    than ``limit`` pixels, would need more than ``budget`` bytes (see
    :func:`tiff_read_bytes`), is empty, has an unsupported layout or is truncated.
    """
    series = first_series(file, tif)
    planes = level_planes(file, series.levels[0])
    key = planes[0].keyframe
    w, h = int(key.imagewidth), int(key.imagelength)
    if w * h > limit:
        raise bomb_error(file, w, h, limit, tiff=True)
    if w < 1 or h < 1:
        raise ImageReadError(f"the TIFF header gives an empty size {w} x {h}", file)
    layout = tiff_layout(file, planes)
    th, tw = segment_shape(key)
    if th * tw > limit:  # each tile is decoded whole, whatever the size of the image
        raise bomb_error(file, tw, th, limit, tiff=True, tile=True)
    need = tiff_read_bytes(planes)
    if need > budget:
        raise memory_error(file, w, h, need, budget, fmt="TIFF")
    _check_complete(file, planes)
    if len(planes) == 1:
        raw = page_raw(planes[0])
    else:
        raw = np.concatenate([page_raw(p) for p in planes], axis=-1)
    if is_plain_rgb8(raw, layout):
        rgb = raw  # already RGB uint8: no second copy
    else:
        rgb = to_rgb8(raw, layout, white_level(raw[..., : layout.ncolor], layout))
    del raw
    return orient(rgb, tiff_orientation(key))


def _check_complete(file: Path, planes: list) -> None:
    """A clear message for a cut-off file or missing tiles, instead of a codec error or black."""
    size = file.stat().st_size
    for page in planes:
        offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        counts = np.asarray(page.databytecounts, dtype=np.int64)
        n = min(len(offsets), len(counts))
        missing = missing_segments(page)
        if missing:
            raise ImageReadError(
                f"the TIFF is damaged: {missing_text(page, missing)} have no data (a zero "
                "offset or byte count); they would be read as black",
                file,
            )
        if n and int((offsets[:n] + counts[:n]).max()) > size:
            raise ImageReadError("the TIFF file is truncated: pixel data end early", file)


def missing_segments(page, indices: np.ndarray | None = None) -> int:
    """How many tiles or strips (of ``indices``, or all) have a zero offset or byte count."""
    offsets = np.asarray(page.dataoffsets, dtype=np.int64)
    counts = np.asarray(page.databytecounts, dtype=np.int64)
    n = min(len(offsets), len(counts))
    empty = (offsets[:n] <= 0) | (counts[:n] <= 0)
    return int(empty.sum() if indices is None else empty[indices[indices < n]].sum())


def missing_text(page, missing: int, total: int | None = None, *, of_region: bool = False) -> str:
    """``3 of 256 tiles`` (or strips; ``of the 4 tiles`` for a region)."""
    kind = "tiles" if page.keyframe.is_tiled else "strips"
    if total is None:
        total = min(len(page.dataoffsets), len(page.databytecounts))
    return f"{missing} of {'the ' if of_region else ''}{total} {kind}"


def tiff_orientation(key) -> int:
    """The Orientation tag 1..8 of a key frame (1 when absent or invalid)."""
    try:
        value = int(key.tags.valueof(274, 1))
    except (TypeError, ValueError, AttributeError):
        return 1
    return value if 1 <= value <= 8 else 1


def tiff_info(file: Path, tif: tifffile.TiffFile) -> ImageInfo:
    """Level sizes (after orientation), pixel size, tiling and format from the header."""
    series = first_series(file, tif)
    levels = []
    for lvl in series.levels:
        k = lvl.keyframe
        levels.append((int(k.imagewidth), int(k.imagelength)))
    key = series.levels[0].keyframe
    if tiff_orientation(key) in (5, 6, 7, 8):
        levels = [(h, w) for w, h in levels]
    warnings: list[str] = []
    pixel_size = tiff_pixel_size(tif, key, warnings)
    try:
        planes = level_planes(file, series.levels[0])
        read_bytes: int | None = tiff_read_bytes(planes)
    except ImageReadError:
        planes, read_bytes = [], None  # a layout that reading refuses with its own message
    for page in planes:
        missing = missing_segments(page)
        if missing:
            warnings.append(
                f"{missing_text(page, missing)} of the image have no data (a damaged file): "
                "reading it whole is refused, and so are regions that need them"
            )
    warnings.extend(tiff_log())
    return ImageInfo(
        width=levels[0][0],
        height=levels[0][1],
        levels=levels,
        pixel_size_um=pixel_size,
        tiled=bool(key.is_tiled),
        format="OME-TIFF" if tif.is_ome else "TIFF",
        warnings=tuple(warnings),
        read_bytes=read_bytes,
    )
