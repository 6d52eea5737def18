"""The report's content without Qt: differential rows, a snapshot drawn for the page, cell images, sign-off."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from cell_factory import BLAST, TYPE, make_cell

from leukview.core.analysis import Analysis
from leukview.core.calibration import Calibration
from leukview.core.calls import class_colour, class_rgb, differential_count
from leukview.core.cells import ReviewState
from leukview.core.document import ReviewDocument
from leukview.core.report import (
    DISCLAIMER,
    SNAPSHOT_SIDE,
    SNAPSHOT_URL,
    SignOffRefused,
    build_report,
    corrections,
    page_footer,
    page_header,
    provider_text,
    report_blocks,
    report_gallery,
    report_html,
    report_snapshot,
    set_report_fields,
    sign_off,
    signature,
    snapshot_label_text,
    status_text,
    when_text,
)
from leukview.core.session import AuditAction, ReportFields, Session, SessionSettings

TAG = (20, 20, 26)  # the label tags' dark fill


@dataclass
class Entry:
    when: str
    who: str
    text: str
    cell: int | None = None
    before: str | None = None
    after: str | None = None

    def describe(self) -> str:
        return self.text


def field(calibration: Calibration | None = None) -> tuple[np.ndarray, Analysis]:
    cells = [
        make_cell(1, x=60, y=60, half=30, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.9)),
        make_cell(2, x=200, y=60, half=30, wbc_type=("lymphocyte", 0.9), all_blast=("blast", 0.8)),
        make_cell(3, x=60, y=170, half=30, wbc_type=("neutrophil", 0.5), all_blast=("normal", 0.9)),
        make_cell(4, "rbc", x=200, y=170, half=20),
    ]
    image = np.full((240, 320, 3), 200, np.uint8)
    analysis = Analysis(
        width=320, height=240, cells=cells, models=[TYPE, BLAST], image="/data/field 7.jpg",
        calibration=calibration or Calibration.unknown(),
    )  # fmt: skip
    return image, analysis


def cell_text(html: str) -> list[str]:
    """The text of each table cell, tags stripped."""
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]


def tag_boxes(snapshot: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x, y, w, h) of the label tags drawn on a snapshot."""
    mask = np.all(snapshot == TAG, axis=2).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [tuple(int(v) for v in stats[i, :4]) for i in range(1, count) if stats[i, 4] > 200]


def test_build_report_gathers_the_field_and_draws_the_snapshot_for_the_page():
    image, analysis = field(Calibration.from_file(0.1))
    fields = ReportFields("P-1", "S-2", "Dr X", "J. Doe")
    content = build_report(
        analysis, image, threshold=0.7, created="2024-05-02T10:00:00+02:00", reviewer="jdoe", fields=fields
    )
    assert (content.image_name, content.width, content.height) == ("field 7.jpg", 320, 240)
    assert content.cells is analysis.cells and list(content.models) == [TYPE, BLAST]
    assert content.calibration == Calibration.from_file(0.1) and content.threshold == 0.7
    assert (content.created, content.reviewer, content.fields) == ("2024-05-02T10:00:00+02:00", "jdoe", fields)
    assert content.snapshot is not None and content.snapshot.dtype == np.uint8
    assert content.snapshot.shape == (SNAPSHOT_SIDE * 240 // 320, SNAPSHOT_SIDE, 3)  # one size for the page
    assert np.array_equal(content.snapshot, report_snapshot(image, analysis, 0.7))
    assert not content.heatmap and "built in" in content.class_list
    assert build_report(analysis, None, threshold=0.7).snapshot is None
    assert build_report(analysis, image, threshold=0.7, image_name="x.png").image_name == "x.png"


def test_the_snapshot_has_no_heatmap_unless_chosen_for_the_report():
    image, analysis = field()
    pred = analysis.cells[0].predictions["wbc-type"]
    pred.cam, pred.cam_box = np.ones((4, 4), np.float32), (20.0, 20.0, 100.0, 100.0)
    plain = build_report(analysis, image, threshold=0.7).snapshot
    heat = build_report(analysis, image, threshold=0.7, heatmap=True).snapshot
    assert plain is not None and heat is not None
    scale = SNAPSHOT_SIDE / 320
    inside = (slice(int(50 * scale), int(70 * scale)), slice(int(50 * scale), int(70 * scale)))
    assert (plain[inside] == 200).all() and not (heat[inside] == 200).all()


def test_labels_are_sized_for_the_page_not_the_image_and_never_overlap():
    image, analysis = field()
    small = cv2.resize(image, (224, 168))
    big = cv2.resize(image, (1280, 960))
    boxes_small = tag_boxes(report_snapshot(small, analysis, 0.7))
    boxes_big = tag_boxes(report_snapshot(big, analysis, 0.7))
    assert len(boxes_small) == len(boxes_big) == 3  # one tag per white cell, none for the red cell
    assert sorted(b[3] for b in boxes_small) == sorted(b[3] for b in boxes_big)  # the same height on the page
    height = boxes_small[0][3]
    assert SNAPSHOT_SIDE / 100 < height < SNAPSHOT_SIDE / 40  # a label, not a banner

    # a crowded field: 280 touching white cells; every tag stays apart and inside the image
    cells = [
        make_cell(i + 1, x=6 + 8 * (i % 20), y=6 + 8 * (i // 20), half=4, wbc_type=("lymphocyte", 0.9))
        for i in range(280)
    ]
    crowded = Analysis(width=164, height=116, cells=cells, models=[TYPE])
    shot = report_snapshot(np.full((116, 164, 3), 210, np.uint8), crowded, 0.7)
    boxes = tag_boxes(shot)
    assert 40 <= len(boxes) < 280  # labels gave way (some as the id alone) instead of covering each other
    for i, (x, y, w, h) in enumerate(boxes):
        assert x >= 0 and y >= 0 and x + w <= shot.shape[1] and y + h <= shot.shape[0]
        for x2, y2, w2, h2 in boxes[i + 1 :]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y  # no two overlap


def test_the_snapshot_shows_the_region_it_is_given():
    image, analysis = field()
    region = (0, 0, 160, 120)  # the top-left quarter: cell 1 only
    shot = report_snapshot(image[:120, :160], analysis, 0.7, region=region)
    assert shot.shape == (SNAPSHOT_SIDE * 120 // 160, SNAPSHOT_SIDE, 3)
    assert len(tag_boxes(shot)) == 1
    colour = np.array(class_rgb("neutrophil"))
    x0, y0 = (np.array(analysis.cells[0].bbox[:2]) * SNAPSHOT_SIDE / 160).astype(int)
    assert (np.abs(shot[y0 - 2 : y0 + 3, x0 + 20].astype(int) - colour).max(axis=1) < 40).any()
    # the analysed field of a larger image: the snapshot is that field, not the whole image
    content = build_report(analysis, image, threshold=0.7, analysed_field=region)
    assert content.snapshot is not None and content.snapshot.shape[:2] == shot.shape[:2]
    assert "x=0, y=0, 160 × 120 px" in content.field_text


def test_snapshot_labels_name_the_cell_and_its_class_abbreviation():
    _, analysis = field()
    texts = [snapshot_label_text(c, analysis.models, 0.7) for c in analysis.cells[:3]]
    assert texts == ["1 Neut", "? 2 Blast", "? 3 Neut"]


def test_the_html_reports_the_differential_in_clinical_order_with_the_classes_counted_apart():
    image, analysis = field(Calibration.from_user(0.25))
    analysis.cells[0].review = ReviewState("lymphocyte", "jdoe", "t")
    analysis.cells[3].review = ReviewState("erythroblast", "jdoe", "t")  # an NRBC the segmentation called red
    content = build_report(analysis, image, threshold=0.7, reviewer="jdoe", created="2024-05-02T10:00:00+02:00")
    html = report_html(content)
    cells = cell_text(html)
    diff = differential_count(analysis.cells, analysis.models, 0.7)
    names = ["neutrophil", "band neutrophil", "lymphocyte", "monocyte"]
    rows = [cells.index(f"■ {n}") for n in names]
    assert rows == sorted(rows)  # clinical order
    assert cells[cells.index("■ lymphocyte") + 2] == "1" and cells[cells.index("■ blast") + 2] == "1"
    assert cells[cells.index("■ lymphocyte") + 3] == "33.3"  # of 3 white cells
    nrbc = cells.index("■ erythroblast (NRBC)")
    assert cells.index("Counted apart (not in the white-cell total)") < nrbc
    assert cells[nrbc + 1 : nrbc + 4] == ["NRBC", "1", "33.3 / 100 WBC"]
    assert cells[cells.index("White cells (total)") + 2] == "3" == str(diff.leukocytes)
    assert f"color:{class_colour('blast')}" in html  # the calls' palette, beside the name and abbreviation
    assert "33.3 %</b> of 3 white cells" in html
    assert "all-blast 1.0.0" in html and "wbc-type" in html and "1.0.0" in html
    assert provider_text("CPUExecutionProvider") in cells and provider_text("CUDAExecutionProvider") == "GPU (CUDA)"
    assert "0.25 µm/px (set by the user)" in html
    assert DISCLAIMER in html and "not a diagnosis" in html
    assert "2 of 4 white cells reviewed" in html and "2 of them flagged for review" in html
    assert f"src='{SNAPSHOT_URL}'" in html
    assert "field 7.jpg (320 × 240 px)" in html and "by jdoe" in html and "2024-05-02 10:00 (UTC+02:00)" in html
    assert "unknown (sizes in pixels)" in report_html(build_report(field()[1], None, threshold=0.7))
    assert "<img" not in report_html(build_report(field()[1], None, threshold=0.7))


def test_the_case_fields_are_printed_and_say_when_they_are_missing():
    image, analysis = field()
    content = build_report(analysis, None, threshold=0.7, fields=ReportFields("P-0012345", "", "Dr A. Example", ""))
    cells = cell_text(report_html(content))
    assert cells[cells.index("Patient ID") + 1] == "P-0012345"
    assert cells[cells.index("Specimen ID") + 1] == "not given"
    assert cells[cells.index("Ordering physician") + 1] == "Dr A. Example"
    assert page_header(content) == "LeukView report · field 7.jpg · Patient P-0012345"
    assert page_footer(content, 2, 3) == "DRAFT (not signed) · page 2 of 3"


def test_corrections_come_from_the_audit_log():
    _, analysis = field()
    session = Session.new(analysis, who="jdoe")
    session.set_review(1, "lymphocyte", who="jdoe")  # neutrophil -> lymphocyte: a correction
    session.set_review(3, "neutrophil", who="jdoe")  # confirmed: no change
    listed = corrections(session.audit)
    assert [getattr(e, "cell", None) for e in listed] == [1]
    html = report_html(build_report(analysis, None, audit=session.audit, threshold=0.7))
    assert listed[0].describe() in html.replace("&gt;", ">")
    assert "1 correction(s)" in html

    fake = [Entry("t1", "ann", "analyse"), Entry("t2", "ann", "cell 2: blast -> lymphocyte", 2, "blast", "lymphocyte")]
    html = report_html(build_report(analysis, None, audit=fake, threshold=0.7))
    assert "cell 2: blast -&gt; lymphocyte" in html and ">analyse<" not in html
    assert "No corrections." in report_html(build_report(analysis, None, threshold=0.7))
    # many corrections: tables of at most 20 rows, each a block of its own
    many = [Entry(f"t{i}", "ann", f"change {i}", i, "a", "b") for i in range(45)]
    blocks = [b for b in report_blocks(build_report(analysis, None, audit=many, threshold=0.7)) if "change " in b.html]
    assert [b.html.count("<tr>") - 1 for b in blocks] == [20, 20]  # the newest 40
    assert "The newest 40 of 45 are listed." in blocks[-1].html


@pytest.mark.parametrize("threshold", [0.5, 0.96])
def test_the_threshold_decides_what_is_flagged(threshold: float):
    _, analysis = field()
    html = report_html(build_report(analysis, None, threshold=threshold))
    flagged = differential_count(analysis.cells, analysis.models, threshold).flagged
    assert f"{flagged} of them flagged for review" in html
    assert f"confidence threshold {threshold:.0%}" in html


def test_sign_off_needs_every_flagged_cell_reviewed_and_is_audited_and_printed():
    _, analysis = field()
    session = Session.new(analysis, who="jdoe")
    with pytest.raises(SignOffRefused, match="cannot sign: 2 flagged cells are not reviewed yet") as refused:
        sign_off(session, "Dr Who", 0.7)
    assert refused.value.remaining == 2 and signature(session.audit) is None
    session.set_review(2, "lymphocyte", who="jdoe")
    with pytest.raises(SignOffRefused, match="1 flagged cell is not"):
        sign_off(session, "Dr Who", 0.7)
    session.set_review(3, "neutrophil", who="jdoe")
    entry = sign_off(session, "Dr Who", 0.7)
    assert entry.action is AuditAction.SIGN and entry.reviewer == "Dr Who" and "no flagged cell left" in entry.note
    sign = signature(session.audit)
    assert sign is not None and sign.valid and (sign.who, sign.when) == ("Dr Who", entry.time)
    content = build_report(analysis, None, audit=session.audit, threshold=0.7)
    html = report_html(content)
    assert content.signed and "Reviewed and signed</b> by <b>Dr Who</b>" in html and "DRAFT" not in html
    assert status_text(content) == f"SIGNED by Dr Who on {when_text(entry.time)}"
    # an export changes nothing; a review after the signature makes the report a draft again
    session.log(AuditAction.EXPORT_PDF, detail={"path": "/tmp/r.pdf"})
    assert signature(session.audit).valid
    session.set_review(1, "monocyte", who="jdoe")
    content = build_report(analysis, None, audit=session.audit, threshold=0.7)
    assert not content.signed and content.signature.changes_after == 1
    assert "changed after it was signed" in report_html(content) and status_text(content).startswith("DRAFT (signed by")


def test_the_document_signs_and_keeps_the_case_fields(tmp_path: Path):
    image, analysis = field()
    path = tmp_path / "field.png"
    cv2.imwrite(str(path), image)
    document = ReviewDocument(sessions_folder=tmp_path / "s", reviewer="jdoe", autosave=False)
    document.open(path)
    document.set_analysis(analysis)
    assert document.set_report_fields(ReportFields("P-1", "S-1", "Dr X", "J. Doe"))
    assert not document.set_report_fields(ReportFields("P-1", "S-1", "Dr X", "J. Doe"))  # unchanged
    last = document.session.audit[-1]
    assert last.action is AuditAction.SET_REPORT_DETAILS and "Patient ID: '' -> 'P-1'" in last.note
    with pytest.raises(SignOffRefused):
        document.sign()
    for cell in document.review_order():
        if document.call(cell).needs_review:
            document.confirm(cell.id)
    entry = document.sign("J. Doe")
    assert document.signature().valid and document.dirty and entry.reviewer == "J. Doe"
    content = document.report_content(image)
    assert content.fields.patient_id == "P-1" and content.signed and not content.heatmap
    saved = SessionSettings.from_dict(document.settings.to_dict())
    assert saved.report == ReportFields("P-1", "S-1", "Dr X", "J. Doe")  # saved with the session


def test_report_fields_are_validated():
    with pytest.raises(Exception, match="longer than 200"):
        ReportFields(patient_id="x" * 201)
    with pytest.raises(Exception, match="control characters"):
        ReportFields(specimen_id="a\nb")
    assert ReportFields(" P-1 ").patient_id == "P-1"
    assert SessionSettings.from_dict({"report": {"patient_id": "P-9"}}).report.patient_id == "P-9"
    _, analysis = field()
    session = Session.new(analysis, who="jdoe")
    assert set_report_fields(session, ReportFields(physician="Dr Y"), "jdoe") is not None
    assert set_report_fields(session, ReportFields(physician="Dr Y"), "jdoe") is None


def test_the_gallery_groups_cell_images_by_class_in_clinical_order():
    image, analysis = field()
    analysis.cells[3].review = ReviewState("erythroblast", "jdoe", "t")
    seen = []

    def crop(cell):  # noqa: ANN001, ANN202
        seen.append(cell.id)
        return np.full((30, 30, 3), cell.id * 40, np.uint8)

    groups = report_gallery(analysis.cells, analysis.models, 0.7, crop, side=16)
    assert [(g.name, [c.id for c in g.cells]) for g in groups] == [
        ("neutrophil", [3, 1]),  # review order: the flagged, unsure one first
        ("blast", [2]),
        ("erythroblast", [4]),  # after the white-cell classes, as in the list
    ]
    assert groups[0].cells[0].flagged and not groups[0].cells[1].flagged and groups[2].cells[0].reviewed
    assert groups[0].cells[0].crop.shape == (16, 16, 3) and groups[0].title == "neutrophil (Neut)"
    capped = report_gallery(analysis.cells, analysis.models, 0.7, crop, per_class=1)
    assert capped[0].total == 2 and len(capped[0].cells) == 1
    content = build_report(analysis, image, threshold=0.7)
    assert [g.name for g in content.gallery] == ["neutrophil", "blast", "erythroblast"]
    assert build_report(analysis, None, threshold=0.7).gallery_note.startswith("The image was not available")


def test_the_blocks_keep_the_table_whole_and_the_signature_with_what_precedes_it():
    image, analysis = field()
    blocks = report_blocks(build_report(analysis, image, threshold=0.7))
    kinds = [b.kind for b in blocks]
    assert kinds[:3] == ["html", "html", "snapshot"] and kinds[-2:] == ["gallery", "gallery"]  # neutrophils, blast
    table = [b for b in blocks if "Differential count" in b.html]
    assert len(table) == 1 and "White cells (total)" in table[0].html and "Counted apart" in table[0].html
    sign = next(b for b in blocks if "Disclaimer" in b.html)
    assert sign.keep_with_previous and "Reviewed and signed" in sign.html
    gallery = [i for i, b in enumerate(blocks) if b.kind == "gallery"]
    assert blocks[gallery[0] - 1].new_page and "Cell images by class" in blocks[gallery[0] - 1].html


# ---------------------------------------------------------------- the domain warning


def atypical_field(atypical: int, total: int = 20, name: str = "/data/odd.jpg") -> Analysis:
    """A field of scored white cells, the first ``atypical`` unlike the training data (atypicality > 1)."""
    from leukview.core.cells import Prediction
    from leukview.core.domain import domain_check

    cells = []
    for k in range(total):
        cell = make_cell(k + 1, x=20 + 14 * (k % 20), y=20 + 40 * (k // 20), half=6, wbc_type=("neutrophil", 0.95))
        cell.predictions[TYPE.name] = Prediction(
            "neutrophil", dict(cell.predictions[TYPE.name].probabilities), atypicality=2.0 if k < atypical else 0.3
        )
        cells.append(cell)
    return Analysis(320, 240, cells, models=[TYPE], image=name, domain=domain_check(cells, 0.02))


def test_the_report_warns_near_its_top_when_the_cells_are_unlike_the_training_data():
    from leukview.core.domain import WARNING

    analysis = atypical_field(8)
    assert analysis.domain is not None and analysis.domain.warning == WARNING
    content = build_report(analysis, None, threshold=0.7)
    assert content.domain is analysis.domain
    first = report_blocks(content)[0].html
    assert WARNING in first and "8 of 20 scored white cells atypical (40.0 %; about 2 % expected)" in first
    # above the case table: the first thing after the title
    assert first.index(WARNING) < first.index("Patient ID")
    assert report_html(content).count(WARNING) == 1
    for fine in (atypical_field(1), Analysis(320, 240, atypical_field(8).cells, models=[TYPE])):  # 5 %; no check
        html_text = report_html(build_report(fine, None, threshold=0.7))
        assert WARNING not in html_text and "scored white cells atypical" not in html_text


def test_a_case_report_warns_on_the_pooled_check():
    from leukview.core.case import Case
    from leukview.core.domain import WARNING

    case = Case.new("p2")
    # two atypical cells of ten in each field: never a pattern alone, 4 of 20 over the case
    for k in range(2):
        case.add_image(atypical_field(2, 10, name=f"f{k}.jpg"), image_id=f"f{k}")
    assert all(i.analysis.domain.warning is None for i in case.images)  # type: ignore[union-attr]
    pooled, _ = case.pooled_analysis()
    assert pooled.domain == case.domain() and case.domain().warning == WARNING
    head = report_blocks(build_report(pooled, None, threshold=0.7))[0].html
    assert WARNING in head and "4 of 20 scored white cells atypical" in head
    alone = report_blocks(build_report(case.images[0].analysis, None, threshold=0.7))[0].html
    assert WARNING not in alone
