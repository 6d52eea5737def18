"""The hostile image corpus: damaged, lying and odd files that LeukView must refuse clearly.

The crafting helpers below (an OME-XML header, a TIFF written and then patched,
...) are also used by the image-input tests one by one.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

__all__ = [
    "jpeg_cut_and_closed",
    "jpeg_with_lying_size",
    "ome_xml",
    "tiff_with_huge_tiles",
    "tiff_with_missing_tiles",
    "write_ome_tiff",
]


def ome_xml(
    width: int = 32,
    height: int = 32,
    *,
    physical_size_x: str | None = "0.25",
    unit: str = "&#181;m",
    references: tuple[tuple[str, str], ...] = (),
) -> str:
    """Minimal OME-XML for one RGB plane (``SizeC=3``, one 3-sample channel).

    Parameters
    ----------
    width, height : int
        ``SizeX``, ``SizeY``.
    physical_size_x : str or None
        ``PhysicalSizeX`` written as is (so ``'1e308'``, ``'inf'``, ``'nan'``, ``'-1'`` fit);
        None leaves the attribute out.
    unit : str
        ``PhysicalSizeXUnit`` (XML-escaped: TIFF descriptions are ASCII).
    references : tuple of (file name, UUID)
        ``TiffData`` elements whose ``UUID FileName`` names another file; empty:
        the plane is in this file.
    """
    size = "" if physical_size_x is None else f' PhysicalSizeX="{physical_size_x}"'
    size += f' PhysicalSizeXUnit="{unit}"' if physical_size_x is not None else ""
    if references:
        data = "".join(
            f'<TiffData IFD="0" PlaneCount="1"><UUID FileName="{name}">{uuid}</UUID></TiffData>'
            for name, uuid in references
        )
    else:
        data = '<TiffData IFD="0" PlaneCount="1"/>'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        'UUID="urn:uuid:00000000-0000-0000-0000-000000000001">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" '
        f'SizeX="{width}" SizeY="{height}" SizeC="3" SizeZ="1" SizeT="1"{size}>'
        '<Channel ID="Channel:0:0" SamplesPerPixel="3"/>'
        f"{data}</Pixels></Image></OME>"
    )


def write_ome_tiff(path: Path, rgb: np.ndarray, xml: str) -> Path:
    """An RGB ``(H, W, 3)`` uint8 plane with ``xml`` as its OME-XML description."""
    tifffile.imwrite(path, rgb, photometric="rgb", description=xml, metadata=None)
    return path


def jpeg_with_lying_size(path: Path, width: int, height: int) -> Path:
    """A 40 x 40 baseline JPEG (about 1.5 KB) whose SOF0 header claims ``width x height``.

    Its data end, with an EOI marker, long before the claimed size: libjpeg
    fills the rest with grey without an error.
    """
    noise = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG", quality=60)
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def jpeg_cut_and_closed(path: Path, source: bytes, fraction: float) -> Path:
    """The first ``fraction`` of a JPEG's bytes, closed again with an EOI marker."""
    path.write_bytes(source[: int(len(source) * fraction)] + b"\xff\xd9")
    return path


def tiff_with_missing_tiles(
    path: Path, missing: tuple[int, ...] = (5, 77, 200), side: int = 256, tile: int = 16
) -> tuple[Path, np.ndarray]:
    """A ``side`` x ``side`` RGB TIFF of ``(side / tile)**2`` tiles, some with no data.

    The tiles at the indices in ``missing`` get a zero offset and byte count, as a
    damaged writer leaves them; tifffile reads them as black without a word.
    Returns the path and the pixels as written.
    """
    data = np.random.default_rng(11).integers(0, 256, (side, side, 3), dtype=np.uint8)
    tifffile.imwrite(path, data, tile=(tile, tile), photometric="rgb", compression="zlib")
    with tifffile.TiffFile(path, mode="r+b") as tif:
        page = tif.pages.first
        offsets, counts = list(page.dataoffsets), list(page.databytecounts)
        for i in missing:
            offsets[i] = counts[i] = 0
        page.tags["TileOffsets"].overwrite(offsets)
        page.tags["TileByteCounts"].overwrite(counts)
    return path, data


def tiff_with_huge_tiles(
    path: Path, tile_width: int = 65536, tile_length: int = 32768, compression: str = "jpeg"
) -> Path:
    """A 64 x 64 RGB TIFF of one tile whose tags claim ``tile_width x tile_length`` (2**31).

    Decoding that tile would allocate the claimed size (6 GB for RGB).
    """
    data = np.random.default_rng(12).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    tifffile.imwrite(path, data, tile=(64, 64), photometric="rgb", compression=compression)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        page = tif.pages.first
        page.tags["TileWidth"].overwrite(tile_width)
        page.tags["TileLength"].overwrite(tile_length)
    return path
