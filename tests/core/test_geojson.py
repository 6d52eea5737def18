"""GeoJSON: cells out as QuPath detections, QuPath annotations in as a counting area."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx_factory import make_tiny_classifier

from leukview.core.analysis import analyze_image
from leukview.core.calls import call_cell, class_rgb, review_cells
from leukview.core.case import Case
from leukview.core.errors import LeukViewError
from leukview.core.geojson import case_geojson, cells_geojson, read_counting_area, write_geojson
from leukview.core.io import read_image
from leukview.core.models import load_models


@pytest.fixture(scope="module")
def analysis(repo_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    make_tiny_classifier(folder / "tiny", ["lymphocyte", "neutrophil"])
    path = sorted((repo_root / "resources" / "samples").glob("*.jpg"))[1]
    return analyze_image(read_image(path), load_models(None, folder), image_name=str(path))


def test_cells_export_as_qupath_detections(analysis, tmp_path):
    collection = cells_geojson(analysis, kinds=("wbc", "rbc"))
    assert collection["type"] == "FeatureCollection"
    cells = [c for c in analysis.cells if c.kind in ("wbc", "rbc")]
    assert len(collection["features"]) == len(cells)
    for feature, cell in zip(collection["features"], cells, strict=True):
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
        ring = feature["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) >= 4
        props = feature["properties"]
        assert props["objectType"] == "detection"
        call = call_cell(cell, analysis.models, analysis.confidence_threshold)
        if call.label is None:
            assert "classification" not in props
        else:
            assert props["classification"] == {"name": call.label, "color": list(class_rgb(call.label))}
            assert props["measurements"]["confidence"] == pytest.approx(call.confidence, abs=1e-6)
        assert props["measurements"]["area"] == pytest.approx(cell.measurements["area"], abs=1e-3)
        assert props["leukview"]["cell"] == cell.id
    wbc = [f for f in collection["features"] if f["properties"]["leukview"]["kind"] == "wbc"]
    assert wbc and all(f["properties"]["classification"]["name"] in {"lymphocyte", "neutrophil"} for f in wbc)
    # the same export twice: the same ids (QuPath keeps objects by id)
    assert [f["id"] for f in cells_geojson(analysis)["features"]] == [f["id"] for f in wbc]
    path = write_geojson(tmp_path / "cells.geojson", collection)
    assert json.loads(path.read_text()) == collection


def _annotation(rings, name=None, kind="Polygon"):
    props = {"objectType": "annotation"}
    if name:
        props["classification"] = {"name": name, "color": [255, 0, 0]}
    return {"type": "Feature", "geometry": {"type": kind, "coordinates": rings}, "properties": props}


def test_qupath_annotations_import_as_a_counting_area(tmp_path):
    square = [[[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]], [[40, 40], [60, 40], [60, 60], [40, 60], [40, 40]]]
    other = [[[[200, 200], [300, 200], [300, 300], [200, 200]]]]
    data = {
        "type": "FeatureCollection",
        "features": [
            _annotation(square, "Region*"),
            _annotation(other, "Tumor", kind="MultiPolygon"),
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [5000, 0], [0, 5000]]]},
             "properties": {"objectType": "detection"}},
        ],
    }
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps(data))
    area = read_counting_area(path)
    assert area.source == "geojson" and "2 annotation(s)" in area.note and "1 other" in area.note
    pts = np.array([[10, 10], [50, 50], [280, 220], [220, 280], [1000, 10]], float)
    assert area.contains(pts).tolist() == [True, False, True, False, False]
    only = read_counting_area(data, classes=["Region*"])
    assert only.contains(pts).tolist() == [True, False, False, False, False]
    # QuPath's "export as array", and a bare geometry
    assert not read_counting_area(data["features"][:1]).empty
    assert not read_counting_area(data["features"][0]["geometry"]).empty


def test_unusable_geojson_is_a_clear_error(tmp_path):
    with pytest.raises(LeukViewError, match="no polygon annotation"):
        read_counting_area({"type": "FeatureCollection", "features": []})
    with pytest.raises(LeukViewError, match="finite"):
        read_counting_area(_annotation([[[0, 0], [1, float("nan")], [1, 1]]]))
    with pytest.raises(LeukViewError, match="not a list of points"):
        read_counting_area(_annotation([[[0, 0], [1, "x"], [1, 1]]]))
    bad = tmp_path / "bad.geojson"
    bad.write_text("{")
    with pytest.raises(LeukViewError, match="readable"):
        read_counting_area(bad)
    with pytest.raises(LeukViewError, match="no such file"):
        read_counting_area(tmp_path / "missing.geojson")
    with pytest.raises(LeukViewError):
        read_counting_area({"type": "Point", "coordinates": [1, 2]})


def test_an_imported_area_filters_a_case_and_exports_per_image(analysis):
    case = Case.new("c")
    image = case.add_image(analysis, analysis.image)
    wbc = review_cells(analysis.cells)
    x, y = wbc[0].centroid
    area = read_counting_area(_annotation([[[x - 5, y - 5], [x + 5, y - 5], [x + 5, y + 5], [x - 5, y + 5]]]))
    case.set_counting_area(image.id, area)
    assert case.differential().total == 1
    out = case_geojson(case, counted_only=True)
    assert list(out) == [image.id] and len(out[image.id]["features"]) == 1
    assert len(case_geojson(case)[image.id]["features"]) == len(wbc)
