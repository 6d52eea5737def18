"""A case: many images of one specimen pooled into one differential, one session file, one audit log."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from onnx_factory import make_tiny_classifier

from leukview.core.analysis import analyze_image
from leukview.core.calls import differential_count, review_cells
from leukview.core.case import (
    CASE_SUFFIX,
    Case,
    CaseAction,
    CellRef,
    case_path,
    case_summary,
    load_case,
    save_case,
)
from leukview.core.errors import SessionError
from leukview.core.io import read_image
from leukview.core.models import load_models
from leukview.core.session import AuditAction, ImageMatch, Session
from leukview.core.tiling import CountingArea


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    make_tiny_classifier(folder / "tiny", ["lymphocyte", "neutrophil", "blast"], seed=3)
    return load_models(None, folder)


@pytest.fixture()
def fields(tmp_path, repo_root):
    out = []
    for path in sorted((repo_root / "resources" / "samples").glob("*.jpg")):
        copy = tmp_path / path.name
        shutil.copy(path, copy)
        out.append(copy)
    return out


@pytest.fixture()
def case(fields, classifiers):
    case = Case.new("patient-17")
    for path in fields:
        case.add_image(analyze_image(read_image(path), classifiers, image_name=str(path)), path, who="tech")
    return case


def test_the_differential_is_pooled_over_every_field(case):
    per_image = [differential_count(i.analysis.cells, i.analysis.models, case.threshold) for i in case.images]
    pooled = case.differential()
    everything = [c for i in case.images for c in i.analysis.cells]
    direct = differential_count(everything, case.images[0].analysis.models, case.threshold)
    assert pooled.leukocytes == sum(d.leukocytes for d in per_image) == direct.leukocytes > 0
    assert pooled.counts == direct.counts
    assert pooled.total == len(review_cells(everything))
    assert case.counts_by_kind()["wbc"] == sum(i.analysis.counts_by_kind()["wbc"] for i in case.images)
    fraction = case.blast_fraction()
    assert fraction == pytest.approx(pooled.counts["blast"] / pooled.leukocytes)


def test_cells_are_addressed_by_image_and_id_and_fields_step_in_order(case, fields):
    assert case.ids() == [p.stem for p in fields]
    first, second = case.ids()[:2]
    assert case.step(first) == second and case.step(first, -1) is None and case.step(case.ids()[-1]) is None
    refs = [ref for ref, _ in case.cells()]
    assert len(set(refs)) == len(refs) and all(isinstance(r, CellRef) for r in refs)
    ref = refs[-1]
    assert case.cell(ref) is case.image(ref.image).cell(ref.cell)
    assert str(CellRef("a", 3)) == "a#3"
    # a second image with the same stem gets its own id
    again = case.add_image(case.images[0].analysis, fields[0])
    assert again.id == f"{fields[0].stem}-2"
    with pytest.raises(SessionError):
        case.add_image(case.images[0].analysis, fields[0], image_id=first)


def test_review_through_the_case_lands_in_one_audit_log(case):
    ref = case.review_order()[0]
    before = case.differential()
    previous, entry = case.review(ref, "lymphocyte", who="dr-a")
    assert case.cell(ref).review.label == "lymphocyte" and entry.cell == ref.cell
    after = case.differential()
    assert after.reviewed == before.reviewed + 1
    case.restore_review(ref, previous, action=AuditAction.UNDO, who="dr-a")
    assert case.cell(ref).review.label is None
    log = case.audit_log()
    mine = [line for line in log if line.image == ref.image and line.entry.action in (AuditAction.RECLASSIFY, AuditAction.UNDO)]
    assert [line.entry.action for line in mine] == [AuditAction.RECLASSIFY, AuditAction.UNDO]
    assert any(line.entry.action is CaseAction.ADD_IMAGE for line in log)
    assert all(log[k].when <= log[k + 1].when for k in range(len(log) - 1))
    assert mine[0].describe().startswith(f"{ref.image}: reclassify cell {ref.cell}")


def test_review_order_and_gallery_span_the_case(case):
    order = case.review_order()
    assert len(order) == sum(1 for _ in case.counted())
    assert len({r.image for r in order}) > 1
    case.review(order[0], "neutrophil", who="dr-a")
    order = case.review_order()
    assert order[-1] == order[-1] and case.cell(order[-1]).review.label == "neutrophil"  # reviewed last
    gallery = case.gallery()
    assert sum(len(v) for v in gallery.values()) == len(order)
    assert order[-1] in gallery["neutrophil"]


def test_a_counting_area_filters_the_differential_and_is_audited(case):
    image = case.images[0]
    wbc = review_cells(image.analysis.cells)
    assert wbc
    total = case.differential().total
    x, y = wbc[0].centroid
    area = CountingArea.rectangle(x - 2, y - 2, x + 2, y + 2)
    case.set_counting_area(image.id, area, who="dr-a")
    assert case.differential().total == total - len(wbc) + 1
    assert case.differential(in_area=False).total == total
    assert case.events[-1].action is CaseAction.SET_COUNTING_AREA and "1 white cells inside" in case.events[-1].note
    case.set_counting_area(image.id, None)
    assert case.differential().total == total and case.events[-1].action is CaseAction.CLEAR_COUNTING_AREA


def test_one_case_file_round_trips_images_reviews_areas_and_the_log(case, tmp_path):
    ref = case.review_order()[0]
    case.review(ref, "blast", who="dr-b")
    case.set_counting_area(case.ids()[1], CountingArea.rectangle(0, 0, 320, 480), who="dr-b")
    path = save_case(case, case_path(tmp_path, case.name))
    assert path.name == f"patient-17{CASE_SUFFIX}"
    data = json.loads(path.read_text())
    assert data["format"] == "leukview-case" and len(data["images"]) == 4
    assert all(len(i["fingerprint"]) == 64 for i in data["images"])
    again = load_case(path)
    assert again.ids() == case.ids()
    assert again.cell(ref).review.label == "blast"
    assert again.differential().counts == case.differential().counts
    assert again.image(case.ids()[1]).counting_area is not None
    assert [line.describe() for line in again.audit_log()] == [line.describe() for line in case.audit_log()]
    # all images share the case's one settings object
    assert all(i.session.settings is again.settings for i in again.images)
    assert [m for _, m, _ in again.check_images()] == [ImageMatch.SAME] * 4


def test_a_changed_or_missing_image_is_noticed(case, fields):
    fields[0].write_bytes(fields[0].read_bytes() + b"\0")
    fields[1].unlink()
    matches = {image_id: match for image_id, match, _ in case.check_images()}
    assert matches[fields[0].stem] is ImageMatch.CHANGED
    assert matches[fields[1].stem] is ImageMatch.UNREADABLE
    assert matches[fields[2].stem] is ImageMatch.SAME


def test_damaged_or_newer_case_files_are_refused(tmp_path, case):
    path = save_case(case, tmp_path / "x.case.leukview.json")
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(SessionError, match="newer"):
        load_case(path)
    data["schema_version"] = 1
    data["audit"].append({"image": "nobody", "action": "reclassify", "time": "t", "reviewer": "r"})
    path.write_text(json.dumps(data))
    with pytest.raises(SessionError, match="names no image"):
        load_case(path)
    path.write_text("{not json")
    with pytest.raises(SessionError, match="JSON"):
        load_case(path)
    with pytest.raises(SessionError):
        Case.new("../escape")


def test_a_single_image_session_becomes_a_case_that_shares_it(case):
    session = Session.new(case.images[0].analysis, case.images[0].path)
    single = Case.from_session(session)
    assert single.image_session(single.ids()[0]) is session
    assert single.settings is session.settings
    ref = next(ref for ref, _ in single.cells())
    single.review(ref, "neutrophil")
    assert session.cell(ref.cell).review.label == "neutrophil"


def test_case_summary_has_the_documented_keys(case):
    summary = case_summary(case)
    assert summary["case"] == "patient-17" and len(summary["images"]) == 4
    assert set(summary) >= {"images", "counts_by_kind", "differential", "blast_fraction", "leukocytes", "target"}
    assert sum(summary["differential"].values()) == case.differential().total - case.differential().unclassified - case.differential().atypical
    assert summary["blast_fraction"] == pytest.approx(case.blast_fraction(), abs=1e-6)
    assert summary["target_reached"] is (case.differential().leukocytes >= 100)


def test_pooled_analysis_renumbers_copies_and_keeps_the_way_back(case):
    analysis, refs = case.pooled_analysis()
    assert [c.id for c in analysis.cells] == list(range(1, len(refs) + 1))
    for cell, ref in zip(analysis.cells, refs, strict=True):
        original = case.cell(ref)
        assert cell is not original and np.array_equal(cell.contour, original.contour)
