"""Micrometres per pixel from OME-XML, ImageJ, Aperio, resolution tags or PNG/JPEG density.

Which source wins and when a resolution tag is believed is in the notes of
:mod:`leukview.core.io`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import tifffile

from ..calibration import validate_pixel_size
from ..errors import LeukViewError

__all__ = ["dpi_pixel_size", "tiff_pixel_size"]

# Plausible light-microscope pixel sizes; resolution tags outside are defaults.
_PLAUSIBLE_UM_PER_PX = (0.01, 20.0)
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


def tiff_pixel_size(tif: tifffile.TiffFile, key, warnings: list[str] | None = None) -> float | None:
    """Micrometres per pixel of a TIFF's level 0, from the first source that says.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file (for OME, ImageJ and Aperio metadata).
    key : tifffile.TiffPage
        The key frame of level 0 (for its resolution tags and description).
    warnings : list of str, optional
        Gets one sentence for every source that gives an unusable value (not a
        number, infinite, zero, negative or outside
        :data:`~leukview.core.calibration.MIN_PIXEL_SIZE_UM` ..
        :data:`~leukview.core.calibration.MAX_PIXEL_SIZE_UM`) or whose metadata
        block is damaged; such a source is skipped.

    Returns
    -------
    float or None
        From OME ``PhysicalSizeX``, ImageJ ``unit``, Aperio ``MPP`` or, when
        plausible, ``XResolution`` in inch or centimetre; always finite and in
        the calibration's range; None when no source gives a usable value.
    """
    problems: list[str] = []
    found: tuple[float, str] | None = None
    for reader, source in _SOURCES:
        try:
            value = reader(tif, key)
        except Exception as exc:  # metadata are optional: a damaged block means "unknown"
            problems.append(f"the {source} in the file cannot be read ({_short(exc)})")
            continue
        if value is None:
            continue
        try:
            found = validate_pixel_size(value), source
            break
        except LeukViewError as exc:
            problems.append(f"the {source} in the file is unusable: {exc.reason}")
    if warnings is not None:
        tail = "the pixel size is unknown" if found is None else f"the {found[1]} is used instead"
        warnings.extend(f"{p}; {tail}" for p in problems)
    return None if found is None else found[0]


def dpi_pixel_size(dpi) -> float | None:
    """Pixel size from Pillow's ``info['dpi']`` (PNG pHYs, JPEG JFIF), if plausible.

    Parameters
    ----------
    dpi : tuple of float or None
        ``(x, y)`` dots per inch as Pillow reports them.

    Returns
    -------
    float or None
        ``25400 / x`` when it lies in the light-microscope range, else None.
    """
    try:
        xdpi = float(dpi[0])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return _plausible(25400.0 / xdpi) if xdpi > 0 else None


def _unit_to_um(unit: str | None) -> float | None:
    if unit is None:
        return None
    u = unit.strip().replace("\\u00B5", "u").replace("\\u00b5", "u")
    u = u.replace("\u00b5", "u").replace("\u03bc", "u").lower()
    return _UNIT_UM.get(u)


def _short(exc: BaseException) -> str:
    """An exception as one short printable line (messages may quote header bytes)."""
    text = "".join(c if c.isprintable() else "?" for c in f"{type(exc).__name__}: {exc}")
    return text if len(text) <= 120 else text[:117] + "..."


def _plausible(um_per_px: float | None) -> float | None:
    lo, hi = _PLAUSIBLE_UM_PER_PX
    return um_per_px if um_per_px is not None and lo <= um_per_px <= hi else None


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
            return float(size) * factor if factor else None
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
    return factor / res


def _svs_pixel_size(tif: tifffile.TiffFile, key) -> float | None:
    if not tif.is_svs:
        return None
    # Not exported at the package's top level in current tifffile releases.
    mpp = tifffile.tifffile.svs_description_metadata(key.description).get("MPP")
    return float(mpp) if mpp is not None else None


def _tag_pixel_size(tif: tifffile.TiffFile, key) -> float | None:
    unit = key.tags.valueof(296, 2)  # TIFF default unit: inch
    per_unit = {2: 25400.0, 3: 10000.0}.get(int(unit))
    res = _xresolution(key)
    if per_unit is None or not res:
        return None
    return _plausible(per_unit / res)  # defaults (72 dpi, 1 per unit) are silence, not errors


# Every source, in order of trust, and its name in warnings.
_SOURCES = (
    (_ome_pixel_size, "OME PhysicalSizeX"),
    (_imagej_pixel_size, "ImageJ unit and XResolution"),
    (_svs_pixel_size, "Aperio MPP"),
    (_tag_pixel_size, "XResolution tag"),
)
