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


# ---------------------------------------------------------------- cells unlike the training data


def scored_analysis(atypical: int, total: int = 10, name: str = "f.jpg"):  # noqa: ANN201
    """An analysed field of scored white cells, the first ``atypical`` over the open-set threshold."""
    from leukview.core.analysis import Analysis
    from leukview.core.cells import Prediction
    from leukview.core.domain import domain_check

    cells = []
    for k in range(total):
        cell = make_cell(k + 1, x=40.0 + 50 * k, y=100.0, wbc_type=("neutrophil", 0.95))
        cell.predictions[TYPE.name] = Prediction(
            "neutrophil", dict(cell.predictions[TYPE.name].probabilities), atypicality=3.0 if k < atypical else 0.2
        )
        cells.append(cell)
    return Analysis(640, 480, cells, models=[TYPE], image=name, domain=domain_check(cells, 0.02))


def test_the_banner_shows_the_domain_warning_with_its_numbers_and_hides_when_the_check_is_fine(qtbot):  # noqa: ANN001
    from leukview.core.domain import WARNING

    panel = DifferentialPanel()
    qtbot.addWidget(panel)
    assert panel.domain_warning.isHidden()
    odd = scored_analysis(6).domain
    assert odd is not None and odd.warning == WARNING
    panel.set_domain(odd)
    assert not panel.domain_warning.isHidden()
    text = panel.domain_warning.text()
    assert WARNING in text and "This image: 6 of 10 scored white cells atypical (60.0 %" in text
    panel.set_domain(odd, "case")
    assert "This case: 6 of 10" in panel.domain_warning.text()
    for fine in (scored_analysis(0).domain, None):
        panel.set_domain(fine)
        assert panel.domain_warning.isHidden() and panel.domain_warning.text() == ""


def test_document_domain_is_the_open_images_check_or_the_cases(tmp_path):  # noqa: ANN001
    from leukview.core.case import Case
    from leukview.core.document import CaseDocument
    from leukview.gui.differential import document_domain

    document = CaseDocument(sessions_folder=tmp_path / "s")
    assert document_domain(document) == (None, "image")
    case = Case.new("p3")
    for k in range(2):
        case.add_image(scored_analysis(2, name=f"f{k}.jpg"), image_id=f"f{k}")
    document.open_case(case)
    check, scope = document_domain(document)
    assert scope == "case" and check == case.domain() and (check.cells, check.atypical) == (20, 4)


def test_the_viewer_warns_when_the_cases_cells_are_unlike_the_training_data(
    qtbot, make_window, no_models, tmp_path  # noqa: ANN001
):
    import shutil
    from pathlib import Path

    from leukview.core.domain import WARNING

    samples = Path(__file__).resolve().parents[2] / "resources" / "samples"
    paths = []
    for name in ("a", "b"):
        paths.append(tmp_path / "p4" / f"{name}.jpg")
        paths[-1].parent.mkdir(exist_ok=True)
        shutil.copy(samples / "BloodImage_00056.jpg", paths[-1])
    window = make_window(no_models)
    assert window.open_case(paths, analyse=False)
    document, banner = window.document, window.differential.domain_warning
    assert document.current == "a" and banner.isHidden()
    document.set_field_analysis("a", scored_analysis(0, name=str(paths[0])))  # the field shown: fine
    qtbot.wait(100)
    assert banner.isHidden()
    # another field's analysis changes the case's pooled check: the banner follows
    document.set_field_analysis("b", scored_analysis(5, name=str(paths[1])))
    qtbot.waitUntil(lambda: not banner.isHidden(), timeout=5000)
    assert WARNING in banner.text() and "This case: 5 of 20 scored white cells atypical" in banner.text()
    assert banner.isVisible()  # on screen, in the shown window's differential dock
    document.set_field_analysis("b", scored_analysis(1, name=str(paths[1])))
    qtbot.waitUntil(banner.isHidden, timeout=5000)
