"""One pixel calibration per image: its size in µm and where that number came from.

As in QuPath, an image has one calibration and every physical figure is
derived from it when it is shown or exported (the table, the scale bar, the
CSV, cells.json, the report), never stored beside the pixel figures where it
could go stale after the user changes the pixel size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import LeukViewError

#: A typical red-cell diameter, for estimating the pixel size from the image.
RBC_DIAMETER_UM = 7.5
#: Plausible µm per pixel: a 100x oil objective on a small-pixel camera is ~0.05,
#: a 2x overview ~5. Outside this range a value is a typo or a damaged header.
MIN_PIXEL_SIZE_UM = 1e-3
MAX_PIXEL_SIZE_UM = 100.0

CalibrationSource = Literal["file", "user", "rbc-estimate"]
SOURCE_TEXT: dict[str, str] = {
    "file": "from the file",
    "user": "set by the user",
    "rbc-estimate": "estimated from red cells",
}

# Measurement keys that are lengths or areas in pixels, and the µm keys derived from them.
LENGTH_KEYS = ("equivalent_diameter", "perimeter")
AREA_KEYS = ("area", "nucleus_area")


def validate_pixel_size(value: object) -> float:
    """``value`` as a float µm per pixel, or LeukViewError naming why it is unusable.

    Parameters
    ----------
    value : object
        What a file header, a session or a user supplied.

    Returns
    -------
    float
        In [:data:`MIN_PIXEL_SIZE_UM`, :data:`MAX_PIXEL_SIZE_UM`].
    """
    if isinstance(value, bool):
        raise LeukViewError(f"pixel size {value!r} is not a number")
    try:
        size = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as exc:
        raise LeukViewError(f"pixel size {value!r} is not a number") from exc
    if not math.isfinite(size) or not MIN_PIXEL_SIZE_UM <= size <= MAX_PIXEL_SIZE_UM:
        raise LeukViewError(
            f"pixel size {value!r} µm is outside {MIN_PIXEL_SIZE_UM:g}-{MAX_PIXEL_SIZE_UM:g} µm per pixel"
        )
    return size


@dataclass(frozen=True)
class Calibration:
    """The size of one image pixel, and where it came from.

    Attributes
    ----------
    pixel_size_um : float or None
        µm per pixel (square pixels); None when unknown.
    source : {'file', 'user', 'rbc-estimate'} or None
        Where the value came from; None exactly when the size is unknown.

    Examples
    --------
    >>> cal = Calibration.from_user(0.25)
    >>> cal.area_um2(400.0)
    25.0
    >>> cal.describe()
    '0.25 µm/px (set by the user)'
    """

    pixel_size_um: float | None = None
    source: CalibrationSource | None = None

    def __post_init__(self) -> None:
        if self.pixel_size_um is None:
            if self.source is not None:
                raise LeukViewError("a calibration without a pixel size has no source")
            return
        object.__setattr__(self, "pixel_size_um", validate_pixel_size(self.pixel_size_um))
        if self.source not in SOURCE_TEXT:
            raise LeukViewError(f"unknown calibration source {self.source!r}")

    # -- construction
    @classmethod
    def unknown(cls) -> Calibration:
        return cls(None, None)

    @classmethod
    def from_file(cls, pixel_size_um: float | None) -> Calibration:
        """From image metadata; unknown when the file says nothing (or nothing usable)."""
        if pixel_size_um is None:
            return cls.unknown()
        try:
            return cls(float(pixel_size_um), "file")
        except (LeukViewError, TypeError, ValueError, OverflowError):
            return cls.unknown()  # a damaged header is no calibration, not an error

    @classmethod
    def from_user(cls, pixel_size_um: float | None) -> Calibration:
        """Typed by the user; None clears it. LeukViewError for an implausible value."""
        return cls.unknown() if pixel_size_um is None else cls(pixel_size_um, "user")

    @classmethod
    def from_rbc_diameter(cls, rbc_diameter_px: float, rbc_diameter_um: float = RBC_DIAMETER_UM) -> Calibration:
        """Assume the median red cell is ``rbc_diameter_um`` across (a rough scale)."""
        if not rbc_diameter_px or rbc_diameter_px <= 0:
            raise LeukViewError("no red-cell diameter to estimate the pixel size from")
        return cls(rbc_diameter_um / float(rbc_diameter_px), "rbc-estimate")

    # -- queries
    @property
    def known(self) -> bool:
        return self.pixel_size_um is not None

    @property
    def estimated(self) -> bool:
        return self.source == "rbc-estimate"

    def length_um(self, pixels: float) -> float | None:
        """A length in µm (None when the pixel size is unknown)."""
        return None if self.pixel_size_um is None else float(pixels) * self.pixel_size_um

    def area_um2(self, pixels: float) -> float | None:
        """An area in µm² (None when the pixel size is unknown)."""
        return None if self.pixel_size_um is None else float(pixels) * self.pixel_size_um**2

    def physical(self, key: str, value: float) -> tuple[float, str]:
        """A measurement in display units: (value, unit), µm / µm² when known, else px / px².

        Keys that are neither lengths nor areas come back unchanged with unit ``""``.
        """
        if key in AREA_KEYS:
            um2 = self.area_um2(value)
            return (um2, "µm²") if um2 is not None else (float(value), "px²")
        if key in LENGTH_KEYS:
            um = self.length_um(value)
            return (um, "µm") if um is not None else (float(value), "px")
        return float(value), ""

    def derived_measurements(self, measurements: Mapping[str, float]) -> dict[str, float]:
        """The µm keys of a cell's pixel measurements: ``area_um2``, ``nucleus_area_um2``,
        ``equivalent_diameter_um``, ``perimeter_um`` (empty when the size is unknown)."""
        if self.pixel_size_um is None:
            return {}
        out: dict[str, float] = {}
        for key in AREA_KEYS:
            if key in measurements:
                out[f"{key}_um2"] = float(measurements[key]) * self.pixel_size_um**2
        for key in LENGTH_KEYS:
            if key in measurements:
                out[f"{key}_um"] = float(measurements[key]) * self.pixel_size_um
        return out

    def describe(self) -> str:
        """``0.25 µm/px (from the file)``, or ``pixel size unknown``."""
        if self.pixel_size_um is None or self.source is None:
            return "pixel size unknown"
        return f"{self.pixel_size_um:.3g} µm/px ({SOURCE_TEXT[self.source]})"

    # -- serialisation (cells.json, sessions)
    def to_dict(self) -> dict[str, Any]:
        return {"pixel_size_um": self.pixel_size_um, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Calibration:
        """Read :meth:`to_dict`; an unusable value is LeukViewError (a damaged document)."""
        if not data or data.get("pixel_size_um") is None:
            return cls.unknown()
        source = str(data.get("source") or "user")
        legacy = {"set by the user": "user", "from the file": "file", "estimated from red cells": "rbc-estimate"}
        source = legacy.get(source, source)
        if source not in SOURCE_TEXT:
            raise LeukViewError(f"unknown calibration source {source!r}")
        return cls(data["pixel_size_um"], source)  # type: ignore[arg-type]  # checked above
