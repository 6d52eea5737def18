"""The Qt half of the report: the core's HTML and snapshot printed to a PDF."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from cell_factory import BLAST, TYPE, make_cell

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from leukview.core.analysis import Analysis  # noqa: E402
from leukview.core.errors import LeukViewError  # noqa: E402
from leukview.core.report import build_report  # noqa: E402
from leukview.gui.report import (  # noqa: E402
    ensure_application,
    render_report_page,
    snapshot_qimage,
    write_pdf_report,
)


@pytest.fixture(scope="module")
def content():
    ensure_application()
    cells = [make_cell(1, x=60, y=60, half=30, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.9))]
    image = np.full((240, 320, 3), 200, np.uint8)
    analysis = Analysis(width=320, height=240, cells=cells, models=[TYPE, BLAST], image="field.jpg")
    return build_report(analysis, image, threshold=0.7, reviewer="jdoe")


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
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers
    page = render_report_page(content, 600)
    assert page.width() >= 600 and page.height() > page.width()  # one tall page


def test_an_unwritable_place_is_a_leukview_error(tmp_path: Path, content):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LeukViewError, match="cannot write the report"):
        write_pdf_report(blocker / "report.pdf", content)
