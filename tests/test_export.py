"""Differential count, blast percentage and CSV export of reviewed cells."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from leukview.core.analysis import ModelRun
from leukview.core.cells import Cell, Prediction, ReviewState
from leukview.core.export import (
    ARTEFACT,
    blast_percentage,
    cell_call,
    cells_csv,
    differential_count,
    is_flagged,
    review_classes,
    review_order,
    write_cells_csv,
)

TYPE = ModelRun("wbc-type", "1.0.0", "CPU", ["basophil", "lymphocyte", "neutrophil", "platelet"])
BLAST = ModelRun("all-blast", "1.0.0", "CPU", ["blast", "normal"], positive_class="blast")


def make_cell(cell_id: int, kind: str = "wbc", *, x: float = 50.0, y: float = 50.0, **preds: tuple[str, float]) -> Cell:
    """A square cell; ``preds`` maps model name (with _ for -) to (label, confidence)."""
    contour = np.array([[x - 10, y - 10], [x + 10, y - 10], [x + 10, y + 10], [x - 10, y + 10]], np.int32)
    predictions = {}
    for key, (label, conf) in preds.items():
        name = key.replace("_", "-")
        run = TYPE if name == TYPE.name else BLAST
        rest = (1.0 - conf) / (len(run.classes) - 1)
        predictions[name] = Prediction(label, {c: (conf if c == label else rest) for c in run.classes})
    return Cell(
        id=cell_id,
        kind=kind,
        contour=contour,
        bbox=(int(x - 10), int(y - 10), int(x + 11), int(y + 11)),
        centroid=(x, y),
        measurements={"area": 400.0, "circularity": 0.8},
        predictions=predictions,
    )


def test_review_classes_follow_clinical_order_and_add_blast_and_artefact():
    assert review_classes([TYPE, BLAST]) == ["neutrophil", "lymphocyte", "basophil", "blast", "platelet", ARTEFACT]
    # a reviewer can call a blast even when no model knows the class
    assert "blast" in review_classes([TYPE])
    # without a type model the usual classes are offered for a manual differential
    manual = review_classes([])
    assert manual[0] == "neutrophil" and "blast" in manual and manual[-1] == ARTEFACT


def test_call_prefers_review_then_positive_flag_then_type():
    models = [TYPE, BLAST]
    cell = make_cell(1, wbc_type=("lymphocyte", 0.9), all_blast=("blast", 0.8))
    assert cell_call(cell, models).label == "blast"
    assert cell_call(cell, models).model == "all-blast"
    cell.predictions["all-blast"] = Prediction("normal", {"blast": 0.2, "normal": 0.8})
    call = cell_call(cell, models)
    assert (call.label, call.model) == ("lymphocyte", "wbc-type")
    assert call.confidence == pytest.approx(0.9)
    cell.review = ReviewState("neutrophil", "jdoe", "2024-01-01T00:00:00+00:00")
    call = cell_call(cell, models)
    assert call.reviewed and call.label == "neutrophil" and call.confidence is None
    assert cell_call(make_cell(2), models).label is None


def test_differential_counts_percentages_and_blast_share_one_rule():
    models = [TYPE, BLAST]
    cells = [
        make_cell(1, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.9)),
        make_cell(2, wbc_type=("neutrophil", 0.55), all_blast=("normal", 0.9)),
        make_cell(3, wbc_type=("lymphocyte", 0.9), all_blast=("blast", 0.7)),
        make_cell(4, wbc_type=("platelet", 0.9), all_blast=("normal", 0.9)),
        make_cell(5, "rbc"),
        make_cell(6, "wbc"),  # no prediction: unclassified
    ]
    diff = differential_count(cells, models)
    assert diff.total == 5  # the red cell is not a review cell
    assert diff.counts["neutrophil"] == 2 and diff.counts["blast"] == 1 and diff.counts["platelet"] == 1
    assert diff.unclassified == 1
    assert diff.leukocytes == 3  # platelets and unclassified cells are outside the white-cell total
    assert diff.percent("neutrophil") == pytest.approx(200 / 3)
    assert diff.percent("platelet") is None
    assert blast_percentage(cells, models) == pytest.approx(100 / 3)

    # a reviewer overrules the blast call; an artefact leaves the white-cell total
    cells[2].review = ReviewState("lymphocyte", "jdoe", "t")
    cells[1].review = ReviewState(ARTEFACT, "jdoe", "t")
    diff = differential_count(cells, models)
    assert diff.reviewed == 2 and diff.counts[ARTEFACT] == 1
    assert diff.leukocytes == 2
    assert blast_percentage(cells, models) == 0.0

    # a red cell that the reviewer calls a lymphocyte joins the count
    cells[4].review = ReviewState("lymphocyte", "jdoe", "t")
    assert differential_count(cells, models).counts["lymphocyte"] == 2


def test_blast_percentage_is_unknown_when_nothing_could_call_a_blast():
    cells = [make_cell(1, wbc_type=("neutrophil", 0.9))]
    assert blast_percentage(cells, [TYPE]) is None
    assert blast_percentage([], [TYPE, BLAST]) is None
    cells[0].review = ReviewState("blast", "jdoe", "t")
    assert blast_percentage(cells, [TYPE]) == 100.0


def test_low_confidence_cells_are_flagged_and_offered_first():
    models = [TYPE, BLAST]
    cells = [
        make_cell(1, x=10, y=10, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.95)),
        make_cell(2, x=90, y=10, wbc_type=("lymphocyte", 0.4), all_blast=("normal", 0.95)),
        make_cell(3, x=10, y=90, wbc_type=("neutrophil", 0.9), all_blast=("normal", 0.6)),
        make_cell(4, "rbc"),
    ]
    assert [is_flagged(c, models, 0.7) for c in cells] == [False, True, True, False]
    assert [c.id for c in review_order(cells, models, 0.7)] == [2, 3, 1]
    cells[1].review = ReviewState("lymphocyte", "jdoe", "t")
    assert not is_flagged(cells[1], models, 0.7)
    assert [c.id for c in review_order(cells, models, 0.7)] == [3, 1, 2]


def test_csv_has_a_row_per_cell_with_calls_models_and_measurements(tmp_path: Path):
    models = [TYPE, BLAST]
    cells = [make_cell(i, wbc_type=("neutrophil", 0.6), all_blast=("normal", 0.9)) for i in (1, 2)]
    cells.append(make_cell(3, "rbc", x=120.5))
    cells[1].review = ReviewState("basophil", "jdoe", "2024-01-01T00:00:00+00:00")
    path = write_cells_csv(tmp_path / "cells.csv", cells, models, threshold=0.7)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [int(r["id"]) for r in rows] == [1, 2, 3]
    assert rows[0]["class"] == "neutrophil" and rows[0]["source"] == "wbc-type" and rows[0]["flagged"] == "1"
    assert rows[1]["class"] == "basophil" and rows[1]["source"] == "reviewer" and rows[1]["reviewer"] == "jdoe"
    assert rows[1]["wbc-type:label"] == "neutrophil"  # the model's own call is kept beside the review
    assert rows[2]["kind"] == "rbc" and rows[2]["class"] == "" and float(rows[2]["centroid_x"]) == 120.5
    assert float(rows[0]["area"]) == 400.0
    assert cells_csv(cells, models, 0.7) == path.read_text(encoding="utf-8")
    assert len(list(csv.reader(io.StringIO(cells_csv([], models))))) == 1  # header only
