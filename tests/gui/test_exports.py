"""Files written from the window: CSV, PNG, PDF, each audited; the report is the core's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from leukview.core.calibration import Calibration
from leukview.core.session import AuditAction

pytestmark = pytest.mark.gui


def test_exports_csv_png_pdf(make_window, analysed, models_dir: Path, field: Path, tmp_path: Path, dialogs):
    window = make_window(models_dir)
    analysed(window, field)
    cells = window.analysis.cells
    window.set_calibration(Calibration.from_user(0.5))
    csv_path = window.export_csv(tmp_path / "out" / "cells.csv")
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert len(rows) == len(cells)
    assert [int(r["id"]) for r in rows] == [c.id for c in cells]
    assert {r["kind"] for r in rows} >= {"wbc", "rbc"}
    # the CSV's µm² follow the calibration set, as the table's do
    wbc = next(c for c in cells if c.kind == "wbc")
    row = next(r for r in rows if int(r["id"]) == wbc.id)
    assert float(row["area_um2"]) == pytest.approx(wbc.measurements["area"] * 0.25, rel=1e-3)
    assert window.session.audit[-1].action is AuditAction.EXPORT_CSV
    assert window.session.audit[-1].detail == {"path": str(csv_path)}

    png = window.export_png(tmp_path / "out" / "snapshot.png")
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1280, 480)
    assert window.session.audit[-1].action is AuditAction.EXPORT_PNG

    window.classify("neutrophil", cell_id=cells[0].id)
    content = window.report_content()
    assert content.threshold == window.document.threshold
    assert content.calibration == window.document.calibration
    assert content.snapshot is not None and content.snapshot.shape[:2] == (675, 1800)  # drawn for the page
    assert not content.heatmap and window.report_content(heatmap=True).heatmap  # only when chosen
    pdf = window.export_pdf(tmp_path / "out" / "report.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000  # the snapshot is embedded
    assert window.session.audit[-1].action is AuditAction.EXPORT_PDF
    assert window.session.audit[-1].describe() == f"export PDF report: {pdf}"
    assert not dialogs


def test_a_large_image_reports_the_rendered_view(make_window, no_models: Path, mosaic, qtbot):
    path, _ = mosaic
    window = make_window(no_models)
    window.document.large_image_pixels = 1_000_000
    assert window.open_image(path, analyse=True)
    qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=60000)
    content = window.report_content()
    assert content.snapshot is not None and max(content.snapshot.shape[:2]) <= 2000
    # the report shows the analysed field (the part of a large image in view; here it may be all), whole
    field = window.document.settings.analysed_field
    assert field is not None
    assert content.snapshot.shape[1] / content.snapshot.shape[0] == pytest.approx(field[2] / field[3], rel=0.02)
