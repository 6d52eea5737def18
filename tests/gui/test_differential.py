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


def test_rows_follow_the_class_list_with_the_classes_counted_apart_and_a_clear_progress(qtbot):  # noqa: ANN001
    from leukview.core.cells import ReviewState
    from leukview.gui.differential import progress_text

    cells = [make_cell(i, wbc_type=("neutrophil", 0.95)) for i in range(1, 106)]
    cells.append(make_cell(200, wbc_type=("lymphocyte", 0.95)))
    cells[0].review = ReviewState("erythroblast", "jdoe", "t")
    cells[1].review = ReviewState("smudge cell", "jdoe", "t")
    cells[2].review = ReviewState("band", "jdoe", "t")
    diff = differential_count(cells, [TYPE])
    panel = DifferentialPanel()
    qtbot.addWidget(panel)
    panel.update_counts(diff, [TYPE], diff.classes)
    names = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]
    assert names == [
        "neutrophil", "band neutrophil", "lymphocyte", "White cells (total)", "Counted apart",
        "erythroblast (NRBC)", "smudge cell", "Unclassified",
    ]  # fmt: skip
    nrbc = names.index("erythroblast (NRBC)")
    assert panel.table.item(nrbc, 2).text() == "1" and panel.table.item(nrbc, 3).text() == "1.0/100"  # per 100 WBC
    assert panel.table.item(names.index("White cells (total)"), 2).text() == "104"  # smudge and NRBC apart
    assert panel.row_of("band") == 1 and panel.table.item(1, 1).text() == "2"  # its key
    assert panel.progress.text() == "104 white cells counted (target 100 reached) · 3 reviewed"
    assert progress_text(42, 100) == "42 of 100 white cells counted"
    panel.show_all.setChecked(True)  # every class of the list, also those without a cell
    assert panel.row_of("myelocyte") is not None and panel.table.rowCount() == 22 + 3
