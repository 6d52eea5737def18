"""cells.json: schema_version 2 with calls, flags and the calibration; version 1 still loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cell_factory import BLAST, TYPE, make_cell

from leukview.core.analysis import RESULT_SCHEMA_VERSION, Analysis, analyze_image
from leukview.core.calibration import Calibration
from leukview.core.calls import call_cell
from leukview.core.cells import ReviewState
from leukview.core.errors import LeukViewError

PIXELS = {"area": 400.0, "nucleus_area": 100.0, "equivalent_diameter": 22.57, "perimeter": 80.0}


def sample_analysis(calibration: Calibration | None = None) -> Analysis:
    cells = [
        make_cell(1, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.9), measurements=PIXELS),
        make_cell(2, x=120, wbc_type=("lymphocyte", 0.55), all_blast=("normal", 0.9), measurements=PIXELS),
        make_cell(3, x=200, wbc_type=("lymphocyte", 0.9), all_blast=("blast", 0.8), measurements=PIXELS),
        make_cell(4, "rbc", x=300),
    ]
    cells[0].review = ReviewState("band", "jdoe", "2024-01-01T00:00:00+00:00")
    return Analysis(
        width=400, height=200, cells=cells, models=[TYPE, BLAST], image="field.jpg",
        calibration=calibration or Calibration.from_file(0.5), rbc_diameter_px=41.3,
    )  # fmt: skip


def v1_document() -> dict:
    """A cells.json as LeukView wrote it before schema 2: µm stored on the cells, no call, no source."""
    analysis = sample_analysis()
    cells = []
    for cell in analysis.cells:
        data = cell.to_dict()
        if "equivalent_diameter" in cell.measurements:  # measured with a pixel size of 0.25 at analysis time
            data["measurements"]["area_um2"] = cell.measurements["area"] * 0.0625
            data["measurements"]["equivalent_diameter_um"] = cell.measurements["equivalent_diameter"] * 0.25
        cells.append(data)
    return {
        "schema_version": 1,
        "image": "field.jpg",
        "width": 400,
        "height": 200,
        "pixel_size_um": 0.5,  # the user changed it afterwards: the stored µm are stale
        "rbc_diameter_px": 41.3,
        "models": [TYPE.to_dict(), BLAST.to_dict()],
        "cells": cells,
    }


def test_schema_2_carries_each_cells_call_flags_and_the_calibration():
    analysis = sample_analysis()
    analysis.confidence_threshold = 0.7
    doc = json.loads(json.dumps(analysis.to_dict()))
    assert doc["schema_version"] == RESULT_SCHEMA_VERSION == 2
    assert (doc["pixel_size_um"], doc["pixel_size_source"], doc["confidence_threshold"]) == (0.5, "file", 0.7)
    by_id = {c["id"]: c for c in doc["cells"]}
    assert by_id[1]["call"] == {"label": "band", "confidence": None, "source": "review"}
    assert by_id[1]["flags"] == []
    assert by_id[1]["review"]["label"] == "band" and by_id[1]["predictions"]["wbc-type"]["label"] == "neutrophil"
    assert by_id[2]["call"]["label"] == "lymphocyte" and by_id[2]["call"]["source"] == "wbc-type"
    assert by_id[2]["call"]["confidence"] == pytest.approx(0.55)
    assert by_id[2]["flags"] == ["low-confidence"]
    assert by_id[3]["call"]["source"] == "all-blast" and by_id[3]["flags"] == ["blast"]
    assert by_id[4]["call"] == {"label": None, "confidence": None, "source": None} and by_id[4]["flags"] == []
    for cell in analysis.cells:  # the call in the document is the rule's
        call = call_cell(cell, analysis.models, 0.7)
        assert by_id[cell.id]["call"] == call.to_dict() and by_id[cell.id]["flags"] == list(call.flags)
    # flags follow the threshold the document is written with
    assert json.loads(json.dumps(analysis.to_dict(threshold=0.5)))["cells"][1]["flags"] == []


def test_micrometre_figures_are_derived_when_written_never_stored():
    analysis = sample_analysis(Calibration.from_user(0.5))
    doc = analysis.to_dict()
    cell = doc["cells"][0]["measurements"]
    assert cell["area"] == 400.0 and cell["area_um2"] == pytest.approx(100.0)
    assert cell["perimeter_um"] == pytest.approx(40.0) and cell["equivalent_diameter_um"] == pytest.approx(11.285)
    assert "area_um2" not in analysis.cells[0].measurements  # the cell keeps pixels only
    analysis.calibration = Calibration.from_user(0.25)
    assert analysis.to_dict()["cells"][0]["measurements"]["area_um2"] == pytest.approx(25.0)
    analysis.calibration = Calibration.unknown()
    assert "area_um2" not in analysis.to_dict()["cells"][0]["measurements"]

    loaded = Analysis.from_dict(json.loads(json.dumps(doc)))
    assert all(not k.endswith(("_um", "_um2")) for c in loaded.cells for k in c.measurements)
    assert loaded.calibration == Calibration.from_user(0.5)


def test_schema_2_round_trip():
    analysis = sample_analysis()
    analysis.confidence_threshold = 0.6
    loaded = Analysis.from_dict(json.loads(json.dumps(analysis.to_dict())))
    assert loaded.to_dict() == analysis.to_dict()
    assert loaded.confidence_threshold == 0.6 and loaded.calibration == analysis.calibration
    assert [call_cell(c, loaded.models) for c in loaded.cells] == [call_cell(c, analysis.models) for c in analysis.cells]


def test_version_1_documents_still_load_with_calls_recomputed_and_stale_micrometres_dropped():
    old = v1_document()
    loaded = Analysis.from_dict(json.loads(json.dumps(old)))
    assert loaded.calibration == Calibration.from_user(0.5)  # no source in version 1: the user's
    assert all(not k.endswith(("_um", "_um2")) for c in loaded.cells for k in c.measurements)
    assert loaded.cells[0].measurements["area"] == 400.0
    doc = loaded.to_dict()
    assert doc["schema_version"] == 2
    # the µm now follow the calibration (0.5), not what was stored (0.25)
    assert doc["cells"][0]["measurements"]["area_um2"] == pytest.approx(100.0)
    assert [c["call"]["label"] for c in doc["cells"]] == ["band", "lymphocyte", "blast", None]
    assert doc["cells"][1]["flags"] == ["low-confidence"]


@pytest.mark.parametrize("version", [3, 99])
def test_a_newer_version_is_refused_clearly(version):
    doc = sample_analysis().to_dict()
    doc["schema_version"] = version
    with pytest.raises(LeukViewError, match=f"schema_version {version} is newer.*update LeukView"):
        Analysis.from_dict(doc)


@pytest.mark.parametrize("version", [None, 0, "2", True, 1.5])
def test_a_missing_or_odd_version_is_refused(version):
    doc = sample_analysis().to_dict()
    doc["schema_version"] = version
    with pytest.raises(LeukViewError, match="unsupported result schema_version"):
        Analysis.from_dict(doc)


@pytest.mark.parametrize("threshold", [1.5, -0.1, "0.7", None, float("nan"), True])
def test_a_damaged_threshold_is_refused(threshold):
    doc = sample_analysis().to_dict()
    doc["confidence_threshold"] = threshold
    with pytest.raises(LeukViewError, match="confidence_threshold"):
        Analysis.from_dict(doc)


def test_the_pipeline_stores_pixel_measurements_only():
    image = np.full((120, 160, 3), 235, np.uint8)
    yy, xx = np.mgrid[:120, :160]
    disc = (yy - 60) ** 2 + (xx - 80) ** 2 <= 22**2
    image[disc] = (120, 60, 170)  # a violet, nucleated-looking blob on a pale background
    analysis = analyze_image(image, calibration=Calibration.from_user(0.5), confidence_threshold=0.6)
    assert analysis.calibration == Calibration.from_user(0.5) and analysis.confidence_threshold == 0.6
    assert analysis.cells, "the test image should give at least one cell"
    assert all(not k.endswith(("_um", "_um2")) for c in analysis.cells for k in c.measurements)
    measured = [c for c in analysis.to_dict()["cells"] if "area" in c["measurements"]]
    assert measured and all(
        c["measurements"]["area_um2"] == pytest.approx(c["measurements"]["area"] * 0.25, rel=1e-3) for c in measured
    )
    # the deprecated pixel_size_um argument still records the calibration, as the user's
    assert analyze_image(image, pixel_size_um=0.2).calibration == Calibration.from_user(0.2)
