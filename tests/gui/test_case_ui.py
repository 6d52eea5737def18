"""A 30-field case in the viewer, analysed in the background and reviewed end to end by keyboard."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from leukview.core.calls import review_cells
from leukview.core.case import CellRef, load_case
from leukview.core.keymap import class_keys
from leukview.gui.case_ui import case_paths

pytestmark = pytest.mark.gui

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
SAMPLE_NAMES = sorted(p.name for p in SAMPLES.glob("*.jpg"))


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """30 fields of one 'patient': the four bundled samples copied under 30 names."""
    out = tmp_path / "patient-30"
    out.mkdir()
    for k in range(30):
        shutil.copy(SAMPLES / SAMPLE_NAMES[k % len(SAMPLE_NAMES)], out / f"field-{k + 1:02d}.jpg")
    (out / "notes.txt").write_text("not an image")
    return out


def key(qtbot, window, k, modifier=Qt.KeyboardModifier.NoModifier) -> None:  # noqa: ANN001
    qtbot.keyClick(window.view, k, modifier)


def test_case_paths_lists_a_folders_images_in_order(folder: Path):
    paths = case_paths([folder])
    assert [p.name for p in paths] == [f"field-{k:02d}.jpg" for k in range(1, 31)]


def test_thirty_fields_analysed_in_the_background_and_reviewed_by_keyboard(
    qtbot, make_window, models_dir: Path, folder: Path, dialogs
):
    window = make_window(models_dir)
    assert window.open_case([folder], analyse=True)
    document = window.document
    assert document.case.name == "patient-30" and len(document.case.images) == 30
    assert window.case_dock.isVisible() and window.source is not None
    seen: list[int] = []
    window.case_panel.progress.valueChanged.connect(seen.append)
    assert window.wait_for_case(180000)
    assert document.pending() == [] and max(seen) == 30  # progress field by field
    case = document.case

    # the differential pools every field
    total = sum(len(review_cells(i.analysis.cells)) for i in case.images)
    assert total >= 30
    diff = document.differential()
    assert diff.total == total
    assert window.differential.table.rowCount() > 0

    # the gallery spans the case; a gallery cell opens its field centred on it
    refs = window.case_panel.gallery.refs()
    assert len(refs) == len(document.case_review_order()) and len({r.image for r in refs}) == 30
    target = next(r for r in refs if r.image == "field-17")
    item = window.case_panel.gallery.item_of(target)
    window.case_panel.gallery.itemClicked.emit(item)
    assert document.current == "field-17" and window.selected == target.cell
    cell = case.cell(target)
    assert window.view.visible_rect().contains(*cell.centroid)  # centred as far as the field allows
    assert window.overlay.item(cell.id) is not None  # the field's own cells are drawn

    # by keyboard: PgDown / PgUp step fields
    window.view.setFocus()
    key(qtbot, window, Qt.Key.Key_PageDown)
    assert document.current == "field-18"
    key(qtbot, window, Qt.Key.Key_PageUp)
    key(qtbot, window, Qt.Key.Key_PageUp)
    assert document.current == "field-16"
    # go to the first field and review every cell there and beyond, with the class keys and N
    window.show_field("field-01")
    keys = dict((name, k) for k, name in class_keys(window.classes()) if k)
    label_key = keys["lymphocyte"]
    first_field_cells = [r for r in document.case_review_order() if r.image == "field-01"]
    # a field shown selects its first cell; N alone goes on to the next field's when that was its last
    assert CellRef(document.current, window.selected) == first_field_cells[0]
    if len(first_field_cells) == 1:
        key(qtbot, window, Qt.Key.Key_N)
        assert document.current == "field-02"
        key(qtbot, window, Qt.Key.Key_PageUp)
        assert document.current == "field-01" and window.selected == first_field_cells[0].cell
    reviewed: list[CellRef] = []
    while True:
        ref = CellRef(document.current, window.selected)
        qtbot.keyClicks(window.view, label_key)  # classify; advance goes to the next cell, across fields
        reviewed.append(ref)
        if document.current not in ("field-01", "field-02") or len(reviewed) > 40:
            break
    assert {r.image for r in reviewed} >= {"field-01", "field-02"}
    assert all(case.cell(r).review.label == "lymphocyte" for r in reviewed)
    assert document.current == "field-03"  # next cell went on to the third field
    assert document.differential().counts["lymphocyte"] >= len(reviewed)

    # undo (Ctrl+Z) takes back the last decision, made on field-02: its field comes back
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert document.current == reviewed[-1].image == "field-02"
    assert not case.cell(reviewed[-1]).review.reviewed

    # one session: Ctrl+S writes the case file; reopening restores the whole case
    key(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    saved = folder / "patient-30.case.leukview.json"
    assert saved.is_file() and not document.dirty
    again = load_case(saved)
    assert [r for r in reviewed[:-1] if again.cell(r).review.label == "lymphocyte"] == reviewed[:-1]
    window.close_image()
    assert window.open_case([folder])  # the folder's saved case, not a new one
    assert window.document.pending() == [] and window.document.differential().total == total
    assert window.document.case.cell(reviewed[0]).review.label == "lymphocyte"

    # one report over the case: the pooled cells and a thumbnail of every field
    content = window.document.report_content()
    assert len(content.cells) == total and "30 fields" in content.image_name
    assert content.snapshot.shape[0] > 4 * 160  # five rows of six thumbnails
    assert any(line.image == "field-01" for line in window.document.case.audit_log() if line.cell is not None)


def test_cancel_leaves_the_rest_for_a_resume(qtbot, make_window, models_dir: Path, folder: Path, dialogs):
    window = make_window(models_dir)
    assert window.open_case(case_paths([folder])[:6], name="six", analyse=False)
    assert window.document.pending() == [f"field-{k:02d}" for k in range(1, 7)]
    window.analyse_case()
    qtbot.waitUntil(lambda: len(window.document.pending()) <= 4, timeout=60000)
    key(qtbot, window, Qt.Key.Key_Escape)  # Esc cancels the case's analysis after the field in hand
    assert window.wait_for_case(60000)
    left = window.document.pending()
    assert 0 < len(left) < 6 or left == []
    window.analyse_case()  # resumes with what is left
    assert window.wait_for_case(60000) and window.document.pending() == []


def _review_field(window, image_id: str, label: str = "lymphocyte") -> list[CellRef]:  # noqa: ANN001
    window.show_field(image_id)
    refs = [r for r in window.document.case_review_order() if r.image == image_id]
    for ref in refs:
        assert window.document.review(ref.cell, label)
    return refs


def test_signing_and_the_report_fields_are_the_cases_whichever_field_is_shown(
    qtbot, make_window, models_dir: Path, folder: Path, dialogs
):
    from leukview.core.errors import LeukViewError
    from leukview.core.session import AuditAction, ReportFields
    from leukview.gui.report import ReportDialog

    window = make_window(models_dir)
    assert window.open_case(case_paths([folder])[:3], name="three", analyse=True)
    assert window.wait_for_case(120000) and window.document.pending() == []
    document, case = window.document, window.document.case
    case.settings.confidence_threshold = 1.0  # every call flagged until a person reviews it
    per_field = {i.id: [r for r in document.case_review_order() if r.image == i.id] for i in case.images}
    assert all(per_field.values()), per_field  # every field has a cell to review

    # field-01 reviewed, field-02 not: the case cannot be signed from field-01
    _review_field(window, "field-01")
    assert document.differential().flagged == len(per_field["field-02"]) + len(per_field["field-03"])
    with pytest.raises(LeukViewError):
        document.sign("dr-a")
    dialog = ReportDialog(document)
    assert not dialog.sign_button.isEnabled() and not dialog.sign()
    assert document.signature() is None

    # the rest reviewed, then signed from the first field (the other fields were reviewed last)
    _review_field(window, "field-02")
    _review_field(window, "field-03")
    window.show_field("field-01")
    dialog = ReportDialog(document)
    dialog.editors["patient_id"].setText("P-0042")
    dialog.editors["reviewer"].setText("dr-a")
    assert dialog.sign_button.isEnabled() and dialog.sign()
    sign = document.signature()
    assert sign is not None and sign.valid and sign.who == "dr-a"
    signs = [line for line in case.audit_log() if line.action is AuditAction.SIGN]
    assert len(signs) == 1 and "3 field(s)" in signs[0].entry.note
    # signed is signed on every field, in the dialog and the PDF report
    for image_id in ("field-02", "field-03", "field-01"):
        window.show_field(image_id)
        sign = document.signature()
        assert sign is not None and sign.valid, image_id
        assert "Signed" in ReportDialog(document).status.text()
        assert document.settings.report.patient_id == "P-0042"
    assert document.report_content().signed
    # a later change on any field makes it a draft again
    import time

    time.sleep(1.1)  # the case's log is ordered by time, to the second
    window.show_field("field-02")
    assert document.review(per_field["field-02"][0].cell, "neutrophil")
    window.show_field("field-03")
    sign = document.signature()
    assert sign is not None and not sign.valid and sign.changes_after == 1
    assert not document.report_content().signed
    # the report's fields were audited once, for the case, and kept with it
    window.save_session_file()
    again = load_case(folder / "three.case.leukview.json")
    assert again.settings.report == ReportFields(patient_id="P-0042", reviewer="dr-a")
    assert sum(1 for line in again.audit_log() if line.action is AuditAction.SET_REPORT_DETAILS) == 1


def test_a_case_is_saved_when_the_field_shown_is_not_analysed(qtbot, make_window, models_dir: Path, folder: Path,
                                                                 dialogs):
    from leukview.core.document import analyse_field
    from leukview.core.io import read_image
    from leukview.core.segment import SegmentationParams
    from leukview.core.session import AuditAction
    from leukview.gui.report import ReportDialog

    window = make_window(models_dir)
    paths = case_paths([folder])[:2]
    assert window.open_case(paths, name="two", analyse=False)
    document = window.document
    window.document.set_field_analysis("field-01", analyse_field(read_image(paths[0]), [], SegmentationParams()))
    refs = _review_field(window, "field-01")
    assert refs and document.dirty
    window.show_field("field-02")  # not analysed: no session of its own
    assert document.session is None and document.pending() == ["field-02"]
    # the report's fields typed here are the case's: audited, and the case has changes to save
    dialog = ReportDialog(document)
    dialog.editors["specimen_id"].setText("S-7")
    dialog.apply_fields()
    saved = window.save_session_file()
    assert saved == folder / "two.case.leukview.json" and saved.is_file() and not document.dirty
    again = load_case(saved)
    assert again.cell(refs[0]).review.label == "lymphocyte" and again.settings.report.specimen_id == "S-7"
    assert [line.image for line in again.audit_log() if line.action is AuditAction.SET_REPORT_DETAILS] == ["field-01"]
    assert not dialogs


def test_the_exports_are_the_whole_cases_when_the_field_shown_is_not_analysed(
    qtbot, make_window, no_models: Path, folder: Path, tmp_path: Path, monkeypatch, dialogs
):
    import csv

    from PySide6.QtWidgets import QFileDialog

    from leukview.core.document import analyse_field
    from leukview.core.io import read_image
    from leukview.core.segment import SegmentationParams
    from leukview.core.session import AuditAction
    from leukview.gui.report import ReportDialog, report_dialog

    window = make_window(no_models)
    paths = case_paths([folder])[:2]
    assert window.open_case(paths, name="two", analyse=False)
    document = window.document
    document.set_field_analysis("field-01", analyse_field(read_image(paths[0]), [], SegmentationParams()))
    counted = review_cells(document.case.image("field-01").analysis.cells)
    assert counted
    window.show_field("field-02")  # not analysed: the field shown has no session
    assert document.session is None and document.pending() == ["field-02"]
    assert window.actions["export_csv"].isEnabled() and window.actions["export_pdf"].isEnabled()

    # the CSV: the case's pooled cells, each with its field and its id there; audited in the case's log
    written = window.export_csv(tmp_path / "out" / "case.csv")
    assert written is not None
    rows = list(csv.DictReader(written.open(encoding="utf-8")))
    assert [(r["case_image"], int(r["image_cell"])) for r in rows] == [("field-01", c.id) for c in counted]
    assert [int(r["id"]) for r in rows] == list(range(1, len(counted) + 1))
    exports = [line for line in document.case.audit_log() if line.action is AuditAction.EXPORT_CSV]
    assert len(exports) == 1 and exports[0].entry.detail == {"path": str(written)}

    # the PDF, named after the case (not the field shown), through the report dialog
    asked: list[str] = []

    def save_name(parent, title, default, filters):  # noqa: ANN001
        asked.append(default)
        return str(tmp_path / "out" / Path(default).name), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_name)
    monkeypatch.setattr(ReportDialog, "exec", lambda self: ReportDialog.WRITE)
    pdf = report_dialog(window)
    assert asked == [str(folder / "two.report.pdf")]
    assert pdf == tmp_path / "out" / "two.report.pdf" and pdf.read_bytes().startswith(b"%PDF")
    content = window.report_content()
    assert "case two (2 fields)" in content.image_name and len(content.cells) == len(counted)
    assert any(line.action is AuditAction.EXPORT_PDF for line in document.case.audit_log())
    assert document.current == "field-02" and document.dirty
    assert not [d for d in dialogs if d[0] == "critical"]
