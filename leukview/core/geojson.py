"""GeoJSON in and out, as QuPath reads and writes it.

Export (:func:`cells_geojson`, :func:`case_geojson`, :func:`write_geojson`):
a ``FeatureCollection`` per image, one ``Feature`` per cell with its outline
as a ``Polygon`` (closed ring, image pixels of level 0, x right, y down: QuPath's
image coordinates) and the properties QuPath reads for an object:
``objectType: "detection"``, ``classification`` ``{"name", "color": [r, g, b]}``
from the cell's call (:func:`~leukview.core.calls.call_cell`; no
classification for an unclassified cell) and ``measurements`` (a name ->
number object, as QuPath 0.4 and later write it: the pixel measurements,
their µm forms when the pixel size is known, and the call's confidence).
Each feature also carries ``id`` (a UUID derived from the case, image and
cell, so that exporting twice gives the same ids) and LeukView's own
``leukview`` object (image, cell id, kind, flags, call source), which QuPath
ignores. QuPath imports the file with File > Import objects (or by dragging
it onto the image).

Import (:func:`read_counting_area`): QuPath exports annotations drawn on an
image (a counting area, say) as Features with ``objectType: "annotation"``
and a ``Polygon`` or ``MultiPolygon`` geometry; their union becomes a
:class:`~leukview.core.tiling.CountingArea` (source ``geojson``) that a case
applies as the polygon filter of that image's cells
(:meth:`~leukview.core.case.Case.set_counting_area`). A FeatureCollection, a
single Feature, a bare geometry or a list of Features (QuPath's "export as
array") are all read; detections are skipped; ``classification`` names can
select which annotations count.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_write_text
from .calls import call_cell, class_rgb
from .errors import LeukViewError
from .tiling import CountingArea

if TYPE_CHECKING:
    from .analysis import Analysis
    from .case import Case

__all__ = [
    "MAX_GEOJSON_BYTES",
    "case_geojson",
    "cells_geojson",
    "read_counting_area",
    "write_geojson",
]

#: A GeoJSON file read as a counting area may be at most this large.
MAX_GEOJSON_BYTES = 64 * 1024 * 1024
_NAMESPACE = uuid.UUID("6f1e4c1a-4f0b-4c64-9d0e-9a3c1f5b2e11")


def _ring(points: np.ndarray) -> list[list[float]]:
    pts = np.asarray(points, float).reshape(-1, 2)
    ring = [[float(x), float(y)] for x, y in pts]
    if ring and ring[0] != ring[-1]:
        ring.append(list(ring[0]))  # GeoJSON rings are closed
    return ring


def cells_geojson(
    analysis: Analysis,
    *,
    threshold: float | None = None,
    kinds: Sequence[str] = ("wbc",),
    image_id: str = "",
    case_name: str = "",
    cells: Iterable[Any] | None = None,
) -> dict[str, Any]:
    """A QuPath-readable FeatureCollection of an analysis's cells.

    Parameters
    ----------
    analysis : Analysis
    threshold : float, optional
        For the flags (the analysis's when None).
    kinds : sequence of str
        Which cell kinds to export (white cells by default).
    image_id, case_name : str
        Name the image (and case) in each feature's ``leukview`` object and its id.
    cells : iterable of Cell, optional
        A subset to export (all of ``kinds`` when None).

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...]}``.
    """
    threshold = analysis.confidence_threshold if threshold is None else float(threshold)
    chosen = [c for c in (analysis.cells if cells is None else cells) if c.kind in kinds]
    features = []
    for cell in chosen:
        contour = np.asarray(cell.contour).reshape(-1, 2)
        if len(contour) < 3:
            x0, y0, x1, y1 = cell.bbox
            contour = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        call = call_cell(cell, analysis.models, threshold)
        measurements: dict[str, float] = {}
        for key, value in cell.measurements.items():
            if isinstance(value, (int, float)) and math.isfinite(float(value)):
                measurements[key] = round(float(value), 4)
        for key, value in analysis.calibration.derived_measurements(cell.measurements).items():
            if math.isfinite(value):
                measurements[key] = round(float(value), 4)
        if call.confidence is not None:
            measurements["confidence"] = round(float(call.confidence), 6)
        properties: dict[str, Any] = {"objectType": "detection", "isLocked": False}
        if call.label is not None:
            properties["classification"] = {"name": call.label, "color": list(class_rgb(call.label))}
        properties["measurements"] = measurements
        properties["leukview"] = {
            "image": image_id or analysis.image,
            "cell": int(cell.id),
            "kind": cell.kind,
            "source": call.source,
            "flags": list(call.flags),
        }
        feature_id = uuid.uuid5(_NAMESPACE, f"{case_name}/{image_id or analysis.image}/{cell.id}")
        features.append({
            "type": "Feature",
            "id": str(feature_id),
            "geometry": {"type": "Polygon", "coordinates": [_ring(contour)]},
            "properties": properties,
        })
    return {"type": "FeatureCollection", "features": features}


def case_geojson(case: Case, *, kinds: Sequence[str] = ("wbc",), counted_only: bool = False) -> dict[str, dict[str, Any]]:
    """One FeatureCollection per image of a case, keyed by image id.

    ``counted_only`` exports only the cells inside each image's counting area.
    """
    out = {}
    for image in case.images:
        cells = image.counted() if counted_only else None
        out[image.id] = cells_geojson(
            image.analysis, threshold=case.threshold, kinds=kinds, image_id=image.id, case_name=case.name,
            cells=cells,
        )
    return out


def write_geojson(path: str | os.PathLike[str], collection: dict[str, Any]) -> Path:
    """Write a FeatureCollection atomically."""
    path = Path(path)
    atomic_write_text(path, json.dumps(collection, separators=(",", ":")))
    return path


# ---------------------------------------------------------------- import


def _features(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return [f for f in data if isinstance(f, dict)]
    if not isinstance(data, dict):
        raise LeukViewError("GeoJSON must be an object or a list of features")
    kind = data.get("type")
    if kind == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise LeukViewError("a FeatureCollection needs a list of features")
        return [f for f in features if isinstance(f, dict)]
    if kind == "Feature":
        return [data]
    if kind in ("Polygon", "MultiPolygon"):
        return [{"type": "Feature", "geometry": data, "properties": {"objectType": "annotation"}}]
    raise LeukViewError(f"GeoJSON of type {kind!r} holds no features")


def _rings(coordinates: Any) -> list[np.ndarray]:
    if not isinstance(coordinates, list):
        raise LeukViewError("a Polygon's coordinates must be a list of rings")
    rings = []
    for ring in coordinates:
        try:
            r = np.asarray(ring, np.float64)
        except (TypeError, ValueError) as exc:
            raise LeukViewError(f"a polygon ring is not a list of points ({exc})") from exc
        if r.ndim != 2 or r.shape[1] < 2 or not np.isfinite(r).all():
            raise LeukViewError("a polygon ring must be a list of finite [x, y] points")
        rings.append(r[:, :2])
    return rings


def read_counting_area(
    source: str | os.PathLike[str] | dict[str, Any] | list[Any],
    *,
    classes: Sequence[str] | None = None,
) -> CountingArea:
    """The union of the annotations' polygons of a QuPath GeoJSON, as a counting area.

    Parameters
    ----------
    source : path, or the parsed GeoJSON
    classes : sequence of str, optional
        Keep only annotations with one of these classification names
        (e.g. ``["Region*"]`` is matched literally); all annotations when None.

    Returns
    -------
    CountingArea
        Source ``geojson``; its note names how many annotations went in.

    Raises
    ------
    LeukViewError
        Unreadable, too large, not GeoJSON, or without any polygon annotation.
    """
    name = "the GeoJSON"
    if isinstance(source, (dict, list)):
        data: Any = source
    else:
        path = Path(source)
        name = path.name
        try:
            if path.stat().st_size > MAX_GEOJSON_BYTES:
                raise LeukViewError(f"{name} is larger than {MAX_GEOJSON_BYTES // 2**20} MiB", path)
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise LeukViewError("no such file", path) from exc
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise LeukViewError(f"not a readable GeoJSON file ({exc})", path) from exc
    polygons: list[list[np.ndarray]] = []
    used = skipped = 0
    for feature in _features(data):
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            props = {}
        object_type = str(props.get("objectType", "annotation")).lower()
        if object_type not in ("annotation", "tma_core", "tmacore"):
            skipped += 1
            continue
        if classes is not None:
            cls = props.get("classification") or {}
            label = cls.get("name") if isinstance(cls, dict) else None
            if label not in classes:
                skipped += 1
                continue
        geometry = feature.get("geometry") or {}
        if not isinstance(geometry, dict):
            continue
        kind = geometry.get("type")
        coords = geometry.get("coordinates")
        if kind == "Polygon":
            polygons.append(_rings(coords))
        elif kind == "MultiPolygon":
            if not isinstance(coords, list):
                raise LeukViewError("a MultiPolygon's coordinates must be a list of polygons")
            polygons.extend(_rings(p) for p in coords)
        else:
            skipped += 1
            continue
        used += 1
    if not polygons:
        raise LeukViewError(f"{name} has no polygon annotation to count in ({skipped} other object(s) skipped)")
    note = f"imported from {name}: {used} annotation(s)" + (f", {skipped} other object(s) skipped" if skipped else "")
    return CountingArea(polygons, "geojson", note)
