"""The counting area: polygons (with holes) in level-0 pixels, and which points lie inside."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import LeukViewError

__all__ = ["AREA_SOURCES", "CountingArea", "points_in_rings"]

#: Where a counting area came from.
AREA_SOURCES = ("auto", "user", "geojson")
_MAX_VERTICES = 1_000_000
_FINE = 8


def points_in_rings(points: np.ndarray, rings: Sequence[np.ndarray]) -> np.ndarray:
    """Even-odd rule: whether each point lies inside the rings (an outer ring minus its holes).

    Parameters
    ----------
    points : ndarray, shape (N, 2)
        (x, y) points.
    rings : sequence of ndarray, shape (M, 2)
        Closed or open rings; the first is the outline, the others holes
        (the even-odd rule makes the order immaterial).

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    inside = np.zeros(len(pts), bool)
    if not len(pts):
        return inside
    px, py = pts[:, 0:1], pts[:, 1:2]
    for ring in rings:
        r = np.asarray(ring, np.float64).reshape(-1, 2)
        if len(r) < 3:
            continue
        a, b = r, np.roll(r, -1, axis=0)
        # in chunks of edges: memory stays about 8 MB whatever the sizes
        step = max(1, 1_000_000 // len(pts))
        for s in range(0, len(a), step):
            x1, y1 = a[s : s + step, 0][None, :], a[s : s + step, 1][None, :]
            x2, y2 = b[s : s + step, 0][None, :], b[s : s + step, 1][None, :]
            straddle = (y1 > py) != (y2 > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                cross = px < x1 + (py - y1) * (x2 - x1) / (y2 - y1)
            inside ^= (np.count_nonzero(straddle & cross, axis=1) % 2).astype(bool)
    return inside


@dataclass
class CountingArea:
    """Where the differential counts: polygons in the image's level-0 pixels.

    Attributes
    ----------
    polygons : list of list of ndarray
        Each polygon is a list of rings ``(M, 2)`` float (x, y): its outline,
        then its holes. A point counts when it lies inside any polygon.
    source : {'auto', 'user', 'geojson'}
        Found from red-cell density (:func:`~leukview.core.tiling.counting_area`),
        drawn or edited by a person, or imported (QuPath GeoJSON).
    note : str
        How it was made, for a person (e.g. the thresholds of an automatic one).
    """

    polygons: list[list[np.ndarray]] = field(default_factory=list)
    source: str = "user"
    note: str = ""

    def __post_init__(self) -> None:
        if self.source not in AREA_SOURCES:
            raise LeukViewError(f"counting area source must be one of {AREA_SOURCES}, got {self.source!r}")
        clean: list[list[np.ndarray]] = []
        vertices = 0
        for polygon in self.polygons:
            rings = []
            for ring in polygon:
                r = np.asarray(ring, np.float64).reshape(-1, 2)
                if not np.isfinite(r).all():
                    raise LeukViewError("a counting-area polygon has a coordinate that is not a finite number")
                if len(r) >= 2 and np.array_equal(r[0], r[-1]):
                    r = r[:-1]  # GeoJSON closes its rings; stored open
                vertices += len(r)
                if len(r) >= 3:
                    rings.append(r)
            if rings:
                clean.append(rings)
        if vertices > _MAX_VERTICES:
            raise LeukViewError(f"a counting area of {vertices:,} vertices is too large (at most {_MAX_VERTICES:,})")
        self.polygons = clean

    @property
    def empty(self) -> bool:
        return not self.polygons

    def contains(self, points: np.ndarray | Iterable[Sequence[float]]) -> np.ndarray:
        """Whether each (x, y) point lies inside the area; shape (N,) bool."""
        pts = np.asarray(list(points) if not isinstance(points, np.ndarray) else points, np.float64).reshape(-1, 2)
        inside = np.zeros(len(pts), bool)
        for polygon in self.polygons:
            x0, y0 = polygon[0].min(axis=0)
            x1, y1 = polygon[0].max(axis=0)
            box = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
            candidates = box & ~inside
            if candidates.any():
                inside[candidates] = points_in_rings(pts[candidates], polygon)
        return inside

    def area_px(self) -> float:
        """Area in square level-0 pixels (outlines minus holes, shoelace formula)."""
        total = 0.0
        for polygon in self.polygons:
            for k, ring in enumerate(polygon):
                x, y = ring[:, 0], ring[:, 1]
                a = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
                total += a if k == 0 else -a
        return max(total, 0.0)

    def bounds(self) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1) of all outlines; None when empty."""
        if self.empty:
            return None
        pts = np.concatenate([p[0] for p in self.polygons])
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @classmethod
    def from_mask(
        cls, mask: np.ndarray, scale: float, *, source: str = "auto", note: str = "", simplify: float = 0.5
    ) -> CountingArea:
        """Polygons around the True pixels of a mask whose pixel is ``scale`` level-0 pixels a side.

        ``simplify`` (mask pixels) is the Douglas-Peucker tolerance.
        """
        import cv2

        m = np.ascontiguousarray(mask, np.uint8)
        if not m.any():
            return cls([], source, note)
        # contours run through pixel centres: on a mask 8 times finer the outline is within
        # 1/16 of a mask pixel of the pixels' edges
        k = _FINE
        m = np.repeat(np.repeat(m, k, axis=0), k, axis=1)
        contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        polygons: list[list[np.ndarray]] = []
        if hierarchy is None:
            return cls([], source, note)
        h = hierarchy[0]
        for i, contour in enumerate(contours):
            if h[i][3] != -1:
                continue  # a hole: added to its parent below
            rings = [contour]
            child = h[i][2]
            while child != -1:
                rings.append(contours[child])
                child = h[child][0]
            out = []
            for ring in rings:
                if simplify > 0:
                    ring = cv2.approxPolyDP(ring, simplify * k, True)
                r = ring.reshape(-1, 2).astype(np.float64)
                if len(r) >= 3:
                    # a mask pixel (i, j) covers [j, j+1) x [i, i+1) mask units
                    out.append((r + 0.5) * (scale / k))
            if out:
                polygons.append(out)
        return cls(polygons, source, note)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "note": self.note,
            "polygons": [[np.round(r, 2).tolist() for r in p] for p in self.polygons],
            "area_px": round(self.area_px(), 1),
        }

    @classmethod
    def from_dict(cls, data: Any) -> CountingArea:
        if not isinstance(data, dict) or not isinstance(data.get("polygons"), list):
            raise LeukViewError("a counting area must be an object with a list of polygons")
        polygons = []
        for polygon in data["polygons"]:
            if not isinstance(polygon, list):
                raise LeukViewError("a counting-area polygon must be a list of rings")
            rings = []
            for ring in polygon:
                try:
                    rings.append(np.asarray(ring, np.float64).reshape(-1, 2))
                except (TypeError, ValueError) as exc:
                    raise LeukViewError(f"a counting-area ring is not a list of (x, y) points ({exc})") from exc
            polygons.append(rings)
        return cls(polygons, str(data.get("source", "user")), str(data.get("note", "")))

    @classmethod
    def rectangle(cls, x0: float, y0: float, x1: float, y1: float, *, source: str = "user") -> CountingArea:
        """A rectangular area (what a person drags out)."""
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise LeukViewError("a counting-area rectangle needs finite coordinates")
        ring = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
        return cls([[ring]], source)
