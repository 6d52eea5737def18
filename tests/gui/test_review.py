"""The Review panel: the table reads calls and µm from the document, filters, the key legend."""

from __future__ import annotations

import pytest
from cell_factory import BLAST, TYPE, make_cell
from PySide6.QtCore import Qt

from leukview.core.analysis import Analysis
from leukview.core.calibration import Calibration
from leukview.core.document import ReviewDocument
from leukview.gui.review import CellTableModel, ReviewPanel, legend_html, parse_filter

pytestmark = pytest.mark.gui


def panel_with_cells(qtbot) -> tuple[ReviewPanel, ReviewDocument]:  # noqa: ANN001
    cells = [
        make_cell(1, x=50, y=50, measurements={"area": 900.0}, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.95)),
        make_cell(2, x=150, y=50, measurements={"area": 300.0}, wbc_type=("lymphocyte", 0.5), all_blast=("normal", 0.9)),
        make_cell(3, x=50, y=150, measurements={"area": 600.0}, wbc_type=("neutrophil", 0.9), all_blast=("blast", 0.8)),
        make_cell(4, "rbc", x=150, y=150),
    ]
    document = ReviewDocument(read_only=True)
    document.set_analysis(Analysis(200, 200, cells, [TYPE, BLAST]))
    panel = ReviewPanel(document)
    qtbot.addWidget(panel)
    panel.set_classes(document.classes())
    panel.set_cells(document.cells)
    return panel, document


def test_the_table_lists_review_cells_flagged_first(qtbot):  # noqa: ANN001
    panel, document = panel_with_cells(qtbot)
    assert panel.model.rowCount() == 3  # the red cell is not a review cell
    order = panel.visible_order()
    assert set(order[:2]) == {2, 3}  # unsure, and a blast call: flagged before the sure one
    model: CellTableModel = panel.model
    assert model.index(model.row_of(3), 2).data() == "blast"
    assert model.index(model.row_of(2), 0).data() == "⚑ check"
    document.review(2, "monocyte")
    panel.refresh_cell(2)
    assert model.index(model.row_of(2), 0).data() == "✓ reviewed"
    assert model.index(model.row_of(2), 3).data() == "lymphocyte 50%"  # the models' call stays visible
    assert panel.progress.text() == "1 of 3 reviewed"


def test_filters_by_class_flag_and_terms(qtbot):  # noqa: ANN001
    panel, document = panel_with_cells(qtbot)
    panel.flagged_box.setChecked(True)
    assert sorted(panel.visible_order()) == [2, 3]
    panel.flagged_box.setChecked(False)
    panel.text_filter.setText("area>500")
    assert sorted(panel.visible_order()) == [1, 3]
    document.set_calibration(Calibration.from_user(0.5))  # area in µm² now: 225, 75, 150
    panel.proxy.refilter()
    panel.text_filter.setText("area>100")
    assert sorted(panel.visible_order()) == [1, 3]
    panel.text_filter.setText("neutro conf<0.96")  # words match the call, conf the models' call
    assert panel.visible_order() == [1]
    panel.text_filter.setText("blast conf<85")  # percent
    assert panel.visible_order() == [3]
    terms, words = parse_filter("lobes>=3 blast n:c<0.5")
    assert [t[0] for t in terms] == ["lobe_count", "nc_ratio"] and words == ["blast"]


def test_the_legend_names_each_class_key(qtbot):  # noqa: ANN001
    panel, document = panel_with_cells(qtbot)
    legend = panel.keys.text()
    assert legend == legend_html(document.classes())
    assert "&nbsp;0&nbsp;</span>&nbsp;<span style='color:#999999'>■</span>&nbsp;Art" in legend  # key, colour, code
    assert "&nbsp;Shift+1&nbsp;</span>&nbsp;<span style='color:#77aadd'>■</span>&nbsp;Meta" in legend
    assert "<td>Meta</td><td>metamyelocyte</td>" in panel.keys.toolTip()  # the full names
    assert panel.model.headerData(5, Qt.Orientation.Horizontal) == "Area (px²)"


def test_the_detail_shows_both_models_and_why_a_cell_is_flagged(qtbot):  # noqa: ANN001
    cells = [make_cell(1, x=50, y=50, wbc_type=("lymphocyte", 0.99), all_blast=("normal", 0.6))]
    document = ReviewDocument(read_only=True)
    document.set_analysis(Analysis(200, 200, cells, [TYPE, BLAST]))
    panel = ReviewPanel(document)
    qtbot.addWidget(panel)
    panel.set_classes(document.classes())
    panel.set_cells(document.cells)
    panel.select_cell(1)
    text = panel.detail.toPlainText()
    assert "Cell 1" in text and "lymphocyte (Lym), 99% by wbc-type" in text  # the call's own confidence
    assert "flagged for the low confidence of another model: all-blast 60% < 70%" in text
    assert "wbc-type 1.0.0" in text and "all-blast 1.0.0" in text and "normal 60% (unsure)" in text  # both models
    document.review(1, "monocyte")
    panel.refresh_cell(1)
    text = panel.detail.toPlainText()
    assert "reviewed by" in text and "the models said lymphocyte" in text and "flagged because" not in text
    panel.select_cell(None)
    assert panel.detail.toPlainText() == ""


def test_the_class_column_fits_the_longest_class_name(qtbot):  # noqa: ANN001
    from PySide6.QtGui import QFont, QFontMetrics

    panel, document = panel_with_cells(qtbot)
    font = QFont(panel.table.font())
    font.setBold(True)
    assert panel.table.columnWidth(2) > QFontMetrics(font).horizontalAdvance("large granular lymphocyte")


def test_the_heatmap_starts_off_at_every_launch(tmp_path):  # noqa: ANN001
    from PySide6.QtCore import QSettings

    from leukview.gui.settings import AppSettings

    store = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings = AppSettings(store)
    settings.heat_mode = "all"
    assert settings.heat_mode == "all"  # for this run
    store.sync()
    assert AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)).heat_mode == "off"
