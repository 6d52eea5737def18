"""What a cell looks like on screen: the one palette, the call's reasons, µm from the calibration."""

from __future__ import annotations

from pathlib import Path

import pytest
from cell_factory import BLAST, TYPE, make_cell
from PySide6.QtGui import QColor

from leukview.core import calls
from leukview.core.calibration import Calibration
from leukview.core.calls import call_cell
from leukview.gui.cellinfo import call_text, class_colour, measure_text, tooltip_html

pytestmark = pytest.mark.gui


def test_colours_are_the_core_palette():
    for name in ("neutrophil", "blast", "artefact", "some new class", None):
        assert class_colour(name) == QColor(calls.class_colour(name))


def test_the_tooltip_says_why_a_cell_is_flagged():
    cell = make_cell(1, wbc_type=("neutrophil", 0.55), all_blast=("blast", 0.9), measurements={"area": 400.0})
    call = call_cell(cell, [TYPE, BLAST], 0.7)
    assert call.needs_review and call.reasons
    html = tooltip_html(cell, call, [TYPE, BLAST], Calibration.unknown())
    for reason in call.reasons:
        assert reason.replace("<", "&lt;") in html
    assert "please review" in html and "400 px²" in html
    assert call_text(cell, call).startswith("? 1 blast")


def test_measurements_follow_the_calibration():
    cell = make_cell(1, measurements={"area": 400.0, "equivalent_diameter": 22.6, "lobe_count": 3.0})
    assert measure_text(cell, "area", Calibration.unknown()) == "400 px²"
    assert measure_text(cell, "area", Calibration.from_user(0.5)) == "100 µm²"
    assert measure_text(cell, "equivalent_diameter", Calibration.from_user(0.5)) == "11.3 µm"
    assert measure_text(cell, "lobe_count", Calibration.from_user(0.5)) == "3"


def test_changing_the_pixel_size_changes_the_table_and_the_tooltip(make_window, analysed, no_models: Path, field: Path, dialogs):
    window = make_window(no_models)
    analysed(window, field)
    model = window.review.model
    area_column = next(c for c in range(model.columnCount()) if str(model.headerData(c, _horizontal())).startswith("Area"))
    cell = model.cells[0]
    area_px = cell.measurements["area"]

    def shown() -> tuple[str, str, str, str]:
        row = model.row_of(cell.id)
        return (
            model.index(row, area_column).data(),
            model.headerData(area_column, _horizontal()),
            window.overlay.item(cell.id).toolTip(),
            model.index(row, 0).data(_tooltip_role()),
        )

    text, header, overlay_tip, table_tip = shown()
    assert text == f"{area_px:,.0f} px²" and header == "Area (px²)"
    assert f"{area_px:,.0f} px²" in overlay_tip and f"{area_px:,.0f} px²" in table_tip
    window.set_calibration(Calibration.from_user(0.25))
    um2 = area_px * 0.0625
    expected = f"{um2:,.0f} µm²" if um2 >= 100 else f"{um2:.1f} µm²"
    text, header, overlay_tip, table_tip = shown()
    assert text == expected and header == "Area (µm²)"
    assert expected in overlay_tip and expected in table_tip
    assert window.session.audit[-1].detail == {"pixel_size_um": 0.25, "source": "user"}
    # and back: unknown again
    window.set_calibration(Calibration.unknown())
    assert shown()[0] == f"{area_px:,.0f} px²"


def _horizontal():  # noqa: ANN202
    from PySide6.QtCore import Qt

    return Qt.Orientation.Horizontal


def _tooltip_role():  # noqa: ANN202
    from PySide6.QtCore import Qt

    return Qt.ItemDataRole.ToolTipRole


def test_a_second_stage_that_did_not_re_decide_a_cell_casts_no_doubt_on_its_label() -> None:
    from cell_factory import make_cell

    from leukview.core.analysis import ModelRun
    from leukview.core.calls import call_cell
    from leukview.core.cells import Prediction
    from leukview.gui.cellinfo import doubting_models, marker_text

    first = ModelRun("wbc-type", "1", "CPU", ["lymphocyte", "neutrophil"])
    second = ModelRun("wbc-mononuclear", "1", "CPU", ["lymphocyte", "blast"], refines=["lymphocyte"])
    cell = make_cell(1)
    cell.predictions["wbc-type"] = Prediction("neutrophil", {"lymphocyte": 0.05, "neutrophil": 0.95})
    cell.predictions["wbc-mononuclear"] = Prediction("blast", {"lymphocyte": 0.4, "blast": 0.6})
    models = [second, first]
    call = call_cell(cell, models)
    assert call.label == "neutrophil" and not call.needs_review
    assert doubting_models(cell, call, models, 0.7) == [] and marker_text(cell, call, models, 0.7) == ""
    from leukview.core.calibration import Calibration
    from leukview.gui.cellinfo import detail_html

    detail = detail_html(cell, call, call, models, Calibration(None), 0.7)
    assert "(unsure)" not in detail and "not asked (it re-decides only lymphocyte)" in detail
    # re-decided: the type model's own doubt shows beside the second stage's call
    cell.predictions["wbc-type"] = Prediction("lymphocyte", {"lymphocyte": 0.6, "neutrophil": 0.4})
    cell.predictions["wbc-mononuclear"] = Prediction("lymphocyte", {"lymphocyte": 0.9, "blast": 0.1})
    call = call_cell(cell, models)
    assert call.model == "wbc-mononuclear" and doubting_models(cell, call, models, 0.7) == [("wbc-type", 0.6)]
