"""CaseDocument: a case of many fields reviewed through the one review document."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest
from onnx_factory import make_tiny_classifier

from leukview.core.analysis import analyze_image
from leukview.core.calls import differential_count, review_cells
from leukview.core.case import CellRef, load_case
from leukview.core.document import CaseDocument, contact_sheet, is_analysed, new_case
from leukview.core.io import read_image
from leukview.core.models import load_models


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, repo_root):
    """The four samples, analysed once with a tiny model: {file name: Analysis}."""
    folder = tmp_path_factory.mktemp("models")
    make_tiny_classifier(folder / "tiny", ["lymphocyte", "neutrophil", "blast"], seed=3)
    classifiers = load_models(None, folder)
    return {
        path.name: analyze_image(read_image(path), classifiers, image_name=str(path))
        for path in sorted((repo_root / "resources" / "samples").glob("*.jpg"))
    }


@pytest.fixture()
def thirty(tmp_path, repo_root):
    """30 fields: the four samples copied under other names; [(path, sample name)]."""
    samples = sorted((repo_root / "resources" / "samples").glob("*.jpg"))
    out = []
    for k in range(30):
        source = samples[k % len(samples)]
        path = tmp_path / f"field-{k + 1:02d}.jpg"
        shutil.copy(source, path)
        out.append((path, source.name))
    return out


@pytest.fixture()
def document(tmp_path, thirty, analysed):
    doc = CaseDocument(sessions_folder=tmp_path / "sessions", reviewer="tech")
    doc.open_case(new_case("patient-30", [p for p, _ in thirty]))
    for (_path, sample), image_id in zip(thirty, doc.case.ids(), strict=True):
        doc.set_field_analysis(image_id, copy.deepcopy(analysed[sample]))
    return doc


def test_a_new_case_is_pending_until_each_field_is_analysed(tmp_path, thirty, analysed):
    doc = CaseDocument(sessions_folder=tmp_path / "s")
    doc.open_case(new_case("p", [p for p, _ in thirty[:3]]))
    assert doc.case.ids() == ["field-01", "field-02", "field-03"]
    assert doc.pending() == doc.case.ids() and doc.session is None and doc.current == "field-01"
    assert doc.size == (640, 480)
    doc.set_field_analysis("field-02", copy.deepcopy(analysed[thirty[1][1]]))
    assert doc.pending() == ["field-01", "field-03"]
    assert doc.session is None  # field-02 is not the one shown
    doc.set_field_analysis("field-01", copy.deepcopy(analysed[thirty[0][1]]))
    assert doc.session is doc.case.image_session("field-01")
    assert doc.session.settings is doc.case.settings  # one settings object for the case


def test_the_differential_pools_all_thirty_fields(document, thirty, analysed):
    case = document.case
    assert len(case.images) == 30 and document.pending() == []
    everything = [c for image in case.images for c in image.analysis.cells]
    direct = differential_count(everything, case.images[0].analysis.models, document.threshold)
    pooled = document.differential()
    assert pooled.counts == direct.counts
    per_field = differential_count(document.cells, document.models, document.threshold)
    assert pooled.total > per_field.total  # more than the field shown
    assert pooled.total == sum(len(review_cells(i.analysis.cells)) for i in case.images)


def test_next_cell_goes_across_fields_and_undo_comes_back(document):
    case = document.case
    shown: list[str] = []
    document.events.field_changed.connect(shown.append)
    first = document.next_unreviewed()
    assert first is not None and first.image == "field-01"
    # review every cell of the first field; the next cell is then in another field
    for ref in [r for r in document.case_review_order() if r.image == "field-01"]:
        assert document.review(ref.cell, "blast")
    nxt = document.next_unreviewed()
    assert nxt is not None and nxt.image == "field-02"
    document.switch_field(nxt.image)
    assert document.current == "field-02" and shown == ["field-02"]
    assert document.review(nxt.cell, "neutrophil")
    assert case.cell(nxt).review.label == "neutrophil"
    assert document.differential().counts["neutrophil"] >= 1
    # undo the field-02 decision, then the field-01 ones: the document goes back to field-01
    assert document.undo()
    assert not case.cell(nxt).review.reviewed and document.current == "field-02"
    assert document.undo()
    assert document.current == "field-01" and shown[-1] == "field-01"
    assert document.redo() and document.current == "field-01"
    # the one audit log names each decision's field
    lines = [line for line in case.audit_log() if line.cell is not None]
    assert {line.image for line in lines} == {"field-01", "field-02"}


def test_step_field_wraps_and_the_gallery_spans_the_case(document):
    assert document.step_field(1) == "field-02"
    assert document.step_field(-1) == "field-01"
    assert document.step_field(-1) == "field-30"
    gallery = document.gallery()
    refs = [ref for refs in gallery.values() for ref in refs]
    assert len(refs) == len(document.case_review_order())
    assert len({ref.image for ref in refs}) == 30
    assert all(isinstance(ref, CellRef) for ref in refs)


def test_the_session_saves_and_restores_the_whole_case(document, tmp_path):
    ref = document.next_unreviewed()
    document.switch_field(ref.image)
    document.review(ref.cell, "lymphocyte")
    document.step_field(5)
    assert document.dirty
    outcome = document.save()
    assert outcome.path is not None and outcome.path.name == "patient-30.case.leukview.json"
    assert not document.dirty
    again = CaseDocument(sessions_folder=tmp_path / "other")
    again.open_case_file(outcome.path)
    assert again.case.ids() == document.case.ids()
    assert again.case.cell(ref).review.label == "lymphocyte"
    assert again.pending() == [] and again.differential().counts == document.differential().counts
    assert load_case(outcome.path).name == "patient-30"


def test_the_report_covers_the_case(document, thirty):
    ref = document.next_unreviewed()
    document.review(ref.cell, "blast")
    content = document.report_content()
    assert len(content.cells) == len(document.case_review_order())
    assert "30 fields" in content.image_name
    sheet = content.snapshot
    assert sheet is not None and sheet.shape[1] > 5 * 160  # six thumbnails across
    assert any("blast" in entry.describe() for entry in content.audit)
    assert content.gallery  # the cells' images, read from their own fields


def test_contact_sheet_lays_fields_out_in_rows():
    fields = [np.full((40, 80, 3), k * 20, np.uint8) for k in range(7)]
    sheet = contact_sheet(fields, columns=3, side=50, gap=2)
    assert sheet.shape == (3 * 52 + 2, 3 * 52 + 2, 3)
    assert sheet[2 + 10, 2 + 10, 0] == 0 and sheet[2 + 52 + 10, 2 + 10, 0] == 60  # the 4th starts row 2
    assert (sheet[-5, -5] == 255).all()  # empty cells stay white


def test_a_plain_document_is_unchanged(tmp_path, analysed, thirty):
    doc = CaseDocument(sessions_folder=tmp_path / "s")
    path = thirty[0][0]
    doc.open(path)
    doc.set_analysis(copy.deepcopy(analysed[thirty[0][1]]))
    assert doc.case is None and doc.differential().total == len(review_cells(doc.cells))
    assert doc.save().path is not None and doc.save().path.name.endswith(".leukview.json")
    assert all(not is_analysed(i) for i in new_case("q", [path]).images)
