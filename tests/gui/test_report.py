"""The Qt half of the report: the core's blocks laid out on A4 pages and printed to a PDF."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from cell_factory import BLAST, TYPE, make_cell

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PySide6.QtGui import QImage  # noqa: E402

from leukview.core.analysis import Analysis  # noqa: E402
from leukview.core.errors import LeukViewError  # noqa: E402
from leukview.core.report import build_report  # noqa: E402
from leukview.core.session import ReportFields, Session  # noqa: E402
from leukview.gui.report import (  # noqa: E402
    ReportLayout,
    ensure_application,
    render_report_page,
    render_report_pages,
    snapshot_qimage,
    write_pdf_report,
)


def make_content(width: int = 320, height: int = 240, cells: int = 1, corrections: int = 0, **kwargs):  # noqa: ANN003
    ensure_application()
    made = [
        make_cell(i + 1, x=40 + (i * 53) % (width - 80), y=40 + ((i * 53) // (width - 80)) * 50 % (height - 80),
                  half=18, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.9))
        for i in range(cells)
    ]  # fmt: skip
    image = np.full((height, width, 3), 200, np.uint8)
    analysis = Analysis(width=width, height=height, cells=made, models=[TYPE, BLAST], image="field.jpg")
    session = Session.new(analysis, who="jdoe")
    for i in range(corrections):
        session.set_review(made[i % cells].id, "lymphocyte" if i % 2 == 0 else "monocyte", who="jdoe")
    return build_report(analysis, image, audit=session.audit, threshold=0.7, reviewer="jdoe", **kwargs)


@pytest.fixture(scope="module")
def content():
    return make_content(fields=ReportFields("P-1", "S-1", "Dr X", "J. Doe"))


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", data))


def test_the_snapshot_array_becomes_a_qimage_with_the_same_pixels():
    ensure_application()
    rgb = np.zeros((3, 5, 3), np.uint8)
    rgb[1, 2] = (10, 200, 30)
    image = snapshot_qimage(rgb)
    assert (image.width(), image.height()) == (5, 3)
    colour = image.pixelColor(2, 1)
    assert (colour.red(), colour.green(), colour.blue()) == (10, 200, 30)
    del rgb  # the QImage owns a copy
    assert image.pixelColor(2, 1).green() == 200


def test_write_pdf_report_writes_an_a4_pdf(tmp_path: Path, content):
    path = write_pdf_report(tmp_path / "sub" / "report.pdf", content)
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 5_000
    assert pdf_pages(data) == len(layout_of(content, 300).pages) >= 2
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers
    pages = render_report_pages(content, 50)
    assert len(pages) == len(layout_of(content, 50).pages)
    assert pages[0].height() / pages[0].width() == pytest.approx(297 / 210, rel=0.01)  # A4
    tall = render_report_page(content, 600)
    assert tall.width() == pytest.approx(600, abs=2) and tall.height() > 2 * tall.width()


def layout_of(content, dpi: int = 150) -> ReportLayout:  # noqa: ANN001
    probe = QImage(8, 8, QImage.Format.Format_RGB32)
    probe.setDotsPerMeterX(round(dpi / 0.0254))
    probe.setDotsPerMeterY(round(dpi / 0.0254))
    return ReportLayout(content, probe)


def text_of(item) -> str:  # noqa: ANN001
    return item.document.toPlainText() if item.document is not None else ""


@pytest.mark.parametrize("size", [(224, 168), (6000, 900), (800, 3000)])
def test_the_snapshot_is_never_cut_off(size):
    layout = layout_of(make_content(*size))
    items = [(page, item) for page in layout.pages for item in page if item.kind == "snapshot"]
    assert len(items) == 1
    _, item = items[0]
    rect = item.image_rect
    assert rect.left() >= layout.left - 0.5 and rect.right() <= layout.left + layout.width + 0.5
    assert item.y >= layout.top and item.y + rect.height() <= layout.bottom
    assert rect.width() / rect.height() == pytest.approx(size[0] / size[1], rel=0.02)  # the whole image, not a crop


def test_blocks_are_kept_whole_and_the_signature_never_stands_alone():
    for corrections in (0, 12, 30, 40):
        layout = layout_of(make_content(cells=8, corrections=corrections))
        for page in layout.pages:
            for item in page:
                assert item.y >= layout.top - 0.5 and item.y + item.height <= layout.bottom + 0.5, corrections
        where = {i for i, page in enumerate(layout.pages) for item in page if "Differential count" in text_of(item)}
        assert len(where) == 1  # the table in one piece, on one page
        table = next(item for page in layout.pages for item in page if "Differential count" in text_of(item))
        assert "White cells (total)" in text_of(table) and "Counted apart" in text_of(table)
        sign_page = next(page for page in layout.pages for item in page if "Disclaimer" in text_of(item))
        assert len(sign_page) >= 2 and "Disclaimer" not in text_of(sign_page[0]), corrections


def test_the_cell_images_come_by_class_from_a_new_page():
    layout = layout_of(make_content(cells=30))
    first = next(i for i, page in enumerate(layout.pages) for item in page if item.kind == "gallery")
    assert "Cell images by class" in text_of(layout.pages[first][0])
    gallery = [item for page in layout.pages for item in page if item.kind == "gallery"]
    shown = sum(min(len(g.group.cells), g.rows[1] * layout.columns) - g.rows[0] * layout.columns for g in gallery)
    assert gallery[0].group.name == "neutrophil" and shown == 30


def test_an_unwritable_place_is_a_leukview_error(tmp_path: Path, content):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LeukViewError, match="cannot write the report"):
        write_pdf_report(blocker / "report.pdf", content)


def test_the_dialog_edits_the_case_and_signs_only_when_no_flagged_cell_is_left(qtbot, tmp_path: Path):  # noqa: ANN001
    import cv2

    from leukview.core.document import ReviewDocument
    from leukview.core.session import AuditAction
    from leukview.gui.report import ReportDialog

    cells = [
        make_cell(1, x=60, y=60, half=30, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.9)),
        make_cell(2, x=200, y=60, half=30, wbc_type=("lymphocyte", 0.5), all_blast=("normal", 0.9)),
    ]
    path = tmp_path / "field.png"
    cv2.imwrite(str(path), np.full((240, 320, 3), 200, np.uint8))
    document = ReviewDocument(sessions_folder=tmp_path / "s", reviewer="jdoe", autosave=False)
    document.open(path)
    document.set_analysis(Analysis(320, 240, cells, [TYPE, BLAST]))
    dialog = ReportDialog(document)
    qtbot.addWidget(dialog)
    assert not dialog.heatmap.isChecked()  # never carried over: chosen for each report
    assert not dialog.sign_button.isEnabled() and "1 flagged cell is not reviewed yet" in dialog.status.text()
    dialog.editors["patient_id"].setText("P-0012345")
    dialog.editors["reviewer"].setText("Dr Who")
    assert not dialog.sign()  # refused, with the count left
    assert "cannot sign: 1 flagged cell is not reviewed yet" in dialog.status.text()
    assert document.settings.report.patient_id == "P-0012345"  # the fields were kept all the same
    assert document.session.audit[-1].action is AuditAction.SET_REPORT_DETAILS
    document.confirm(2)
    dialog.update_status()
    assert dialog.sign_button.isEnabled() and "ready to sign" in dialog.status.text()
    assert dialog.sign()
    entry = document.session.audit[-1]
    assert entry.action is AuditAction.SIGN and entry.reviewer == "Dr Who"
    assert "Signed" in dialog.status.text() and not dialog.sign_button.isEnabled()
    content = document.report_content(None)
    assert content.signed and content.fields.reviewer == "Dr Who"
