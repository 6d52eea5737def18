"""The cells CSV: one row per cell with its call, flags, review, models and measurements."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from cell_factory import BLAST, TYPE, make_cell

from leukview.core.calibration import Calibration
from leukview.core.calls import call_cell
from leukview.core.cells import ReviewState
from leukview.core.export import LEADING_COLUMNS, cells_csv, csv_table, write_cells_csv

MODELS = [TYPE, BLAST]
PIXELS = {"area": 400.0, "nucleus_area": 100.0, "equivalent_diameter": 22.57, "perimeter": 80.0, "circularity": 0.8}


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_row_per_cell_with_the_call_flags_review_and_models(tmp_path: Path):
    cells = [
        make_cell(1, wbc_type=("neutrophil", 0.6), all_blast=("normal", 0.9)),
        make_cell(2, wbc_type=("neutrophil", 0.9), all_blast=("blast", 0.65)),
        make_cell(3, wbc_type=("neutrophil", 0.9), all_blast=("normal", 0.9)),
        make_cell(4, "rbc", x=120.5),
    ]
    cells[2].review = ReviewState("basophil", "jdoe", "2024-01-01T00:00:00+00:00")
    path = write_cells_csv(tmp_path / "cells.csv", cells, MODELS, 0.7)
    text = path.read_text(encoding="utf-8")
    header = text.splitlines()[0].split(",")
    assert tuple(header[: len(LEADING_COLUMNS)]) == LEADING_COLUMNS
    assert header[: 6] == ["id", "call", "confidence", "source", "flags", "reviewed"]
    rows = rows_of(text)
    assert [int(r["id"]) for r in rows] == [1, 2, 3, 4]
    assert (rows[0]["call"], rows[0]["source"], rows[0]["flags"]) == ("neutrophil", "wbc-type", "low-confidence")
    assert float(rows[0]["confidence"]) == pytest.approx(0.6)
    assert (rows[1]["call"], rows[1]["source"]) == ("blast", "all-blast")
    assert rows[1]["flags"] == "low-confidence;blast"  # all flags, joined with ;
    assert (rows[2]["call"], rows[2]["source"], rows[2]["reviewed"], rows[2]["reviewer"]) == (
        "basophil", "review", "1", "jdoe",
    )  # fmt: skip
    assert rows[2]["confidence"] == "" and rows[2]["flags"] == ""
    assert rows[2]["model:wbc-type:label"] == "neutrophil"  # the model's own label beside the review
    assert float(rows[1]["model:all-blast:confidence"]) == pytest.approx(0.65)
    assert (rows[3]["kind"], rows[3]["call"], rows[3]["source"]) == ("rbc", "", "")
    assert float(rows[3]["centroid_x"]) == 120.5
    assert float(rows[0]["area"]) == 400.0
    # the CSV's call is the call, cell by cell
    assert [r["call"] for r in rows] == [call_cell(c, MODELS, 0.7).label or "" for c in cells]
    assert cells_csv(cells, MODELS, 0.7) == text
    assert len(list(csv.reader(io.StringIO(cells_csv([], MODELS))))) == 1  # header only


def test_micrometre_columns_derive_from_the_calibration_given():
    cells = [make_cell(i, wbc_type=("neutrophil", 0.9), measurements=PIXELS) for i in (1, 2)]
    cells[1].measurements = {k: 2 * v for k, v in PIXELS.items()}
    half = rows_of(cells_csv(cells, [TYPE], calibration=Calibration.from_user(0.5)))
    quarter = rows_of(cells_csv(cells, [TYPE], calibration=Calibration.from_file(0.25)))
    for a, b, cell in zip(half, quarter, cells, strict=True):
        assert float(a["area"]) == float(b["area"]) == cell.measurements["area"]  # pixels unchanged
        assert float(a["area_um2"]) == pytest.approx(cell.measurements["area"] * 0.25)
        assert float(a["area_um2"]) == pytest.approx(4 * float(b["area_um2"]))  # with the square
        assert float(a["nucleus_area_um2"]) == pytest.approx(4 * float(b["nucleus_area_um2"]))
        assert float(a["equivalent_diameter_um"]) == pytest.approx(2 * float(b["equivalent_diameter_um"]))
        assert float(a["perimeter_um"]) == pytest.approx(cell.measurements["perimeter"] * 0.5)
    # unknown pixel size: the columns are there, empty
    unknown = rows_of(cells_csv(cells, [TYPE]))
    assert all(r["area_um2"] == "" and r["perimeter_um"] == "" for r in unknown)


def test_stale_micrometre_values_on_a_cell_are_not_exported():
    cell = make_cell(1, wbc_type=("neutrophil", 0.9), measurements={**PIXELS, "area_um2": 174.8})
    header, rows = csv_table([cell], [TYPE], calibration=Calibration.from_user(1.0))
    assert header.count("area_um2") == 1
    assert rows[0][header.index("area_um2")] == pytest.approx(400.0)
