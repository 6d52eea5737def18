"""The differential panel shows the core's differential: one denominator, the blast row is the blast %."""

from __future__ import annotations

import pytest
from cell_factory import BLAST, TYPE, make_cell

from leukview.core.calls import differential_count
from leukview.core.keymap import class_keys
from leukview.gui.differential import DifferentialPanel

pytestmark = pytest.mark.gui


def test_counts_percentages_and_blasts(qtbot):  # noqa: ANN001
    cells = [
        make_cell(1, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.9)),
        make_cell(2, wbc_type=("neutrophil", 0.95), all_blast=("blast", 0.9)),
        make_cell(3, wbc_type=("lymphocyte", 0.95), all_blast=("normal", 0.9)),
        make_cell(4, wbc_type=("platelet", 0.95), all_blast=("normal", 0.9)),
    ]
    models = [TYPE, BLAST]
    diff = differential_count(cells, models)
    panel = DifferentialPanel()
    qtbot.addWidget(panel)
    classes = diff.classes
    panel.update_counts(diff, models, classes)
    assert panel.blast.text() == "Blasts: 33.3 %"  # 1 of 3 white cells; the platelet is not one
    assert "1 of 3 white cells" in panel.blast_note.text() and "all-blast 1.0.0" in panel.blast_note.text()
    rows = {panel.table.item(r, 0).text(): r for r in range(panel.table.rowCount())}
    assert panel.table.item(rows["blast"], 2).text() == "1" and panel.table.item(rows["blast"], 3).text() == "33.3"
    assert panel.table.item(rows["platelet"], 3).text() == ""  # counted, not a percentage
    keys = dict((name, key) for key, name in class_keys(classes))
    assert panel.table.item(rows["neutrophil"], 1).text() == keys["neutrophil"]
    assert panel.table.item(rows["White cells (total)"], 2).text() == "3"
    panel.update_counts(differential_count([], []), [], [])
    assert panel.blast.text() == "Blasts: —"
