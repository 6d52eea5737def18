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

__all__ = ["jpeg_with_lying_size", "ome_xml", "write_ome_tiff"]


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
