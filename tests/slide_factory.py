"""Whole-slide files written by the tests from real fields (the bundled BCCD samples).

Every writer takes an RGB array (a mosaic of real fields, :func:`mosaic`) and
writes it as a slide format with tifffile: a generic pyramidal tiled TIFF
(levels as pages, resolution tag: OpenSlide's ``generic-tiff``), the same
pyramid in SubIFDs (what OpenSlide does not see; tifffile reads it), an
SVS-like file (Aperio description with ``MPP``, thumbnail, label and macro:
OpenSlide's ``aperio``) and an OME-TIFF.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "resources" / "samples").glob("*.jpg"))


def sample_fields() -> list[np.ndarray]:
    """The four bundled BCCD fields (640 x 480 RGB)."""
    out = []
    for path in SAMPLES:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert bgr is not None, path
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return out


def mosaic(rows: int, cols: int, fields: list[np.ndarray] | None = None, *, flip: bool = True) -> np.ndarray:
    """A slide-like image: real fields side by side, cycled (mirrored on odd passes so no two neighbours repeat)."""
    fields = fields or sample_fields()
    h, w = fields[0].shape[:2]
    out = np.empty((rows * h, cols * w, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            f = fields[i % len(fields)]
            if flip and (i // len(fields)) % 2:
                f = f[:, ::-1]
            out[r * h : (r + 1) * h, c * w : (c + 1) * w] = f
    return out


def pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    out = [image]
    for _ in range(levels - 1):
        prev = out[-1]
        if min(prev.shape[:2]) < 32:
            break
        out.append(cv2.resize(prev, (prev.shape[1] // 2, prev.shape[0] // 2), interpolation=cv2.INTER_AREA))
    return out


def _resolution(mpp: float | None) -> dict:
    if mpp is None:
        return {}
    return {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}


def write_generic_tiff(path: Path, image: np.ndarray, *, mpp: float | None = 0.25, levels: int = 4,
                       tile: int = 256, compression: str = "jpeg") -> Path:
    """A pyramidal tiled TIFF, each level a page, pixel size in the resolution tag."""
    with tifffile.TiffWriter(path) as tw:
        for i, level in enumerate(pyramid(image, levels)):
            tw.write(level, tile=(tile, tile), compression=compression, photometric="rgb",
                     subfiletype=1 if i else 0, **_resolution(None if mpp is None else mpp * 2**i))
    return path


def write_subifd_tiff(path: Path, image: np.ndarray, *, mpp: float | None = 0.25, levels: int = 4) -> Path:
    """The same pyramid with the reduced levels in SubIFDs of the first page."""
    pyr = pyramid(image, levels)
    with tifffile.TiffWriter(path) as tw:
        tw.write(pyr[0], tile=(256, 256), compression="jpeg", photometric="rgb", subifds=len(pyr) - 1,
                 **_resolution(mpp))
        for level in pyr[1:]:
            tw.write(level, tile=(256, 256), compression="jpeg", photometric="rgb", subfiletype=1)
    return path


def aperio_description(width: int, height: int, mpp: float, extra: str = "") -> str:
    return (f"Aperio Image Library v12.0.15\r\n{width}x{height} [0,0 {width}x{height}] (256x256) "
            f"JPEG/RGB Q=90|AppMag = 40|MPP = {mpp:g}{extra}")


def write_svs(path: Path, image: np.ndarray, *, mpp: float = 0.25, levels: int = 4,
              label: np.ndarray | None = None) -> Path:
    """An SVS-like file: tiled JPEG levels with an Aperio description, a thumbnail, a label and a macro."""
    h, w = image.shape[:2]
    pyr = pyramid(image, levels)
    desc = aperio_description(w, h, mpp)
    thumb = cv2.resize(image, (max(1, w // 16), max(1, h // 16)), interpolation=cv2.INTER_AREA)
    label = label if label is not None else np.full((120, 160, 3), (230, 240, 250), np.uint8)
    macro = cv2.resize(image, (max(1, w // 32), max(1, h // 32)), interpolation=cv2.INTER_AREA)
    with tifffile.TiffWriter(path) as tw:
        tw.write(pyr[0], tile=(256, 256), compression="jpeg", photometric="rgb", description=desc, metadata=None)
        tw.write(thumb, photometric="rgb", compression="jpeg", metadata=None,
                 description=f"Aperio Image Library v12.0.15\r\n{w}x{h} -> {thumb.shape[1]}x{thumb.shape[0]}")
        for level in pyr[1:]:
            tw.write(level, tile=(256, 256), compression="jpeg", photometric="rgb", description=desc, metadata=None)
        tw.write(label, photometric="rgb", compression="lzw", subfiletype=1, metadata=None,
                 description="Aperio Image Library v12.0.15\r\nlabel 160x120")
        tw.write(macro, photometric="rgb", compression="jpeg", subfiletype=9, metadata=None,
                 description="Aperio Image Library v12.0.15\r\nmacro")
    return path


def write_ome_tiff(path: Path, image: np.ndarray, *, mpp: float = 0.25, levels: int = 3) -> Path:
    """An OME-TIFF pyramid (SubIFDs) with PhysicalSizeX."""
    pyr = pyramid(image, levels)
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(pyr[0], tile=(256, 256), compression="zlib", photometric="rgb", subifds=len(pyr) - 1,
                 metadata={"axes": "YXS", "PhysicalSizeX": mpp, "PhysicalSizeY": mpp})
        for level in pyr[1:]:
            tw.write(level, tile=(256, 256), compression="zlib", photometric="rgb", subfiletype=1)
    return path
