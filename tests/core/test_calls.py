"""The one rule for a cell's call: precedence, flags, the differential and its one denominator."""

from __future__ import annotations

import re

import pytest
from cell_factory import BLAST, TYPE, make_cell

from leukview.core.analysis import ModelRun
from leukview.core.calls import (
    ARTEFACT,
    CLASS_COLOURS,
    DEFAULT_CONFIDENCE_THRESHOLD,
    FLAG_BLAST,
    FLAG_LOW_CONFIDENCE,
    NON_LEUKOCYTE,
    REVIEW,
    blast_percentage,
    call_cell,
    class_colour,
    class_rgb,
    differential_count,
    display_name,
    primary_model,
    review_classes,
    review_order,
)
from leukview.core.cells import Prediction, ReviewState

MODELS = [TYPE, BLAST]


def reviewed(label: str) -> ReviewState:
    return ReviewState(label, "jdoe", "2024-01-01T00:00:00+00:00")


def test_review_beats_a_positive_flag_model_which_beats_the_primary_model():
    cell = make_cell(1, wbc_type=("lymphocyte", 0.9), all_blast=("blast", 0.8))
    call = call_cell(cell, MODELS)
    assert (call.label, call.source, call.model) == ("blast", "all-blast", "all-blast")
    assert call.confidence == pytest.approx(0.8)

    cell.predictions["all-blast"] = Prediction("normal", {"blast": 0.2, "normal": 0.8})
    call = call_cell(cell, MODELS)
    assert (call.label, call.source) == ("lymphocyte", "wbc-type")  # a negative flag model never calls
    assert call.confidence == pytest.approx(0.9)

    cell.review = reviewed("neutrophil")
    call = call_cell(cell, MODELS)
    assert (call.label, call.source, call.confidence, call.model) == ("neutrophil", REVIEW, None, None)
    assert call.reviewed
    # the models' call is still there for the audit log
    assert call_cell(cell, MODELS, use_review=False).label == "lymphocyte"

    empty = call_cell(make_cell(2), MODELS)
    assert (empty.label, empty.source, empty.flags) == (None, None, ())


def test_the_primary_model_is_the_first_without_a_positive_class_whatever_the_order():
    other = ModelRun("wbc-other", "2.0", "CPU", ["lymphocyte", "neutrophil"])
    assert primary_model([BLAST, TYPE, other]) is TYPE
    cell = make_cell(1, wbc_type=("neutrophil", 0.9), all_blast=("normal", 0.9))
    assert call_cell(cell, [BLAST, TYPE]).source == "wbc-type"
    # only the blast model ran: its negative call is no class of the differential
    assert call_cell(make_cell(2, all_blast=("normal", 0.99)), [BLAST]).label is None


def test_flags_and_their_reasons():
    cell = make_cell(1, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.62))
    call = call_cell(cell, MODELS, 0.7)
    assert call.flags == (FLAG_LOW_CONFIDENCE,)
    assert call.needs_review and not call.reviewed
    assert len(call.reasons) == 1 and "all-blast 62% < 70%" in call.reasons[0]
    assert "wbc-type" not in call.reasons[0]  # only the unsure model is named
    assert call_cell(cell, MODELS, 0.6).flags == ()  # the threshold decides

    blast = make_cell(2, wbc_type=("lymphocyte", 0.9), all_blast=("blast", 0.95))
    call = call_cell(blast, MODELS, 0.7)
    assert call.flags == (FLAG_BLAST,) and call.reasons == ("called blast by all-blast",)

    # a reviewed cell is never low-confidence, but a reviewed blast still says so
    cell.review = reviewed("blast")
    call = call_cell(cell, MODELS, 0.7)
    assert call.flags == (FLAG_BLAST,) and call.reasons == ("called blast by the reviewer",)
    assert not call.needs_review  # reviewed: nothing left to look at
    assert call.to_dict() == {"label": "blast", "confidence": None, "source": REVIEW}


def test_the_blast_row_and_the_blast_percentage_share_one_denominator():
    cells = [
        make_cell(1, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.9)),
        make_cell(2, wbc_type=("neutrophil", 0.55), all_blast=("normal", 0.9)),
        make_cell(3, wbc_type=("lymphocyte", 0.9), all_blast=("blast", 0.7)),
        make_cell(4, wbc_type=("platelet", 0.9), all_blast=("normal", 0.9)),
        make_cell(5, "rbc"),
        make_cell(6, "wbc"),  # no prediction: unclassified
    ]
    diff = differential_count(cells, MODELS, 0.7)
    assert diff.total == 5  # the red cell is not a review cell
    assert (diff.counts["neutrophil"], diff.counts["blast"], diff.counts["platelet"]) == (2, 1, 1)
    assert diff.unclassified == 1
    assert diff.leukocytes == 3  # platelets and unclassified cells are outside the white-cell total
    assert diff.flagged == 2  # cell 2 (low confidence) and cell 3 (blast)
    assert diff.percent("platelet") is None
    assert diff.blast_percent == pytest.approx(diff.percent("blast"))
    assert diff.blast_percent == pytest.approx(100 * diff.blast_count / diff.leukocytes)
    leukocyte_classes = [c for c in diff.classes if c not in NON_LEUKOCYTE]
    assert sum(diff.percent(c) or 0.0 for c in leukocyte_classes) == pytest.approx(100.0)
    assert blast_percentage(cells, MODELS) == diff.blast_percent

    # a reviewer overrules the blast call; an artefact leaves the white-cell total
    cells[2].review = reviewed("lymphocyte")
    cells[1].review = reviewed(ARTEFACT)
    diff = differential_count(cells, MODELS)
    assert diff.reviewed == 2 and diff.counts[ARTEFACT] == 1 and diff.leukocytes == 2
    assert diff.blast_percent == 0.0

    # a red cell the reviewer calls a lymphocyte joins the count
    cells[4].review = reviewed("lymphocyte")
    assert differential_count(cells, MODELS).counts["lymphocyte"] == 2


def test_blast_percentage_is_unknown_when_nothing_could_call_a_blast():
    cells = [make_cell(1, wbc_type=("neutrophil", 0.9))]
    assert blast_percentage(cells, [TYPE]) is None
    assert blast_percentage([], MODELS) is None
    cells[0].review = reviewed("blast")
    assert blast_percentage(cells, [TYPE]) == 100.0


def test_an_unknown_label_stays_visible_in_the_differential():
    cells = [make_cell(1, wbc_type=("neutrophil", 0.9)), make_cell(2, wbc_type=("neutrophil", 0.9))]
    cells[1].review = reviewed("smudge")  # e.g. a class of an older model version
    diff = differential_count(cells, [TYPE])
    assert diff.counts["smudge"] == 1
    assert "smudge" in diff.classes and diff.classes[-1] == ARTEFACT  # artefact stays last
    assert diff.leukocytes == 2 and diff.percent("smudge") == pytest.approx(50.0)
    assert "smudge" not in review_classes([TYPE])  # the offered classes are unchanged


def test_review_classes_follow_clinical_order_and_add_blast_and_artefact():
    offered = review_classes(MODELS)  # the laboratory's class list, whatever the models know
    assert [n for n in offered if n in ("neutrophil", "lymphocyte", "basophil", "blast", "platelet")] == [
        "neutrophil", "lymphocyte", "basophil", "blast", "platelet"
    ]  # fmt: skip
    assert offered[-1] == ARTEFACT and len(offered) == len(set(offered))
    assert "blast" in review_classes([TYPE])  # a reviewer can call a blast whatever the models know
    manual = review_classes([])
    assert manual[0] == "neutrophil" and "blast" in manual and manual[-1] == ARTEFACT


def test_review_order_offers_flagged_then_unreviewed_then_reviewed_cells():
    cells = [
        make_cell(1, x=10, y=10, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.95)),
        make_cell(2, x=90, y=10, wbc_type=("lymphocyte", 0.4), all_blast=("normal", 0.95)),
        make_cell(3, x=10, y=90, wbc_type=("neutrophil", 0.9), all_blast=("normal", 0.6)),
        make_cell(4, "rbc"),
        make_cell(5, x=90, y=90, wbc_type=("neutrophil", 0.97), all_blast=("normal", 0.97)),
        make_cell(6, x=50, y=10, wbc_type=("neutrophil", 0.97), all_blast=("normal", 0.97)),
    ]
    assert [c.id for c in review_order(cells, MODELS, 0.7)] == [2, 3, 1, 6, 5]  # lower confidence first; ties: reading order
    cells[1].review = reviewed("lymphocyte")
    assert [c.id for c in review_order(cells, MODELS, 0.7)] == [3, 1, 6, 5, 2]
    assert [c.id for c in review_order(cells, MODELS, 0.3)][-1] == 2  # nothing flagged: reviewed still last


def test_one_palette_for_every_view():
    assert class_colour("blast") == CLASS_COLOURS["blast"]
    assert class_colour(None) == "#FFFFFF"
    unknown = class_colour("smudge")
    assert re.fullmatch(r"#[0-9A-F]{6}", unknown) and unknown == class_colour("smudge")
    assert unknown not in CLASS_COLOURS.values()
    for name in ("neutrophil", "smudge", None):
        r, g, b = class_rgb(name)
        assert f"#{r:02X}{g:02X}{b:02X}" == class_colour(name)
    assert (display_name("ig"), display_name(None), display_name("neutrophil")) == ("IG", "unclassified", "neutrophil")
    assert 0.0 < DEFAULT_CONFIDENCE_THRESHOLD < 1.0


# -- one type model with blast among its classes, and the atypical flag ---------------------------

TYPE2 = ModelRun("wbc-type", "2.0.0", "CPUExecutionProvider", ["lymphocyte", "neutrophil", "platelet", "blast"])


def typed(cell_id: int, label: str, confidence: float, atypicality: float | None = None, **kw) -> object:
    """A cell called by the 9-class type model (``TYPE2``), with an open-set score."""
    cell = make_cell(cell_id, **kw)
    rest = (1.0 - confidence) / (len(TYPE2.classes) - 1)
    cell.predictions[TYPE2.name] = Prediction(
        label, {c: confidence if c == label else rest for c in TYPE2.classes}, atypicality=atypicality
    )
    return cell


def test_a_type_model_with_a_blast_class_makes_the_one_call():
    cell = typed(1, "blast", 0.9, 0.4)
    call = call_cell(cell, [TYPE2])
    assert (call.label, call.source, call.flags) == ("blast", "wbc-type", (FLAG_BLAST,))
    assert call.reasons == ("called blast by wbc-type",)
    # a flag model that also ran (an old all-blast) no longer overrides a type that knows blasts
    cell = typed(2, "neutrophil", 0.95, 0.4)
    cell.predictions["all-blast"] = Prediction("blast", {"blast": 0.99, "normal": 0.01})
    call = call_cell(cell, [TYPE2, BLAST])
    assert (call.label, call.source) == ("neutrophil", "wbc-type") and FLAG_BLAST not in call.flags
    assert differential_count([cell], [TYPE2, BLAST]).blast_count == 0
    # without blasts among the type's classes the old flag model still calls (files of 1.x models)
    old = make_cell(3, wbc_type=("neutrophil", 0.95), all_blast=("blast", 0.99))
    assert call_cell(old, MODELS).label == "blast"


def test_an_atypical_cell_is_flagged_first_and_counted_unclassified_until_reviewed():
    from leukview.core.calls import FLAG_ATYPICAL

    cells = [
        typed(1, "neutrophil", 0.95, 0.5, x=10, y=10),
        typed(2, "lymphocyte", 0.99, 2.5, x=90, y=10),  # confident, but unlike the training cells
        typed(3, "blast", 0.9, 1.01, x=10, y=90),  # just over the threshold
        typed(4, "neutrophil", 0.5, 0.9, x=90, y=90),  # low confidence only
        typed(5, "neutrophil", 0.9, None, x=50, y=50),  # a model without an open-set score
    ]
    calls = [call_cell(c, [TYPE2]) for c in cells]
    assert calls[1].flags == (FLAG_ATYPICAL,) and calls[1].atypical and calls[1].needs_review
    assert "2.5x" in calls[1].reasons[0] and "wbc-type" in calls[1].reasons[0]
    assert calls[1].label == "lymphocyte" and calls[1].counted_label is None  # the guess stays visible
    assert set(calls[2].flags) == {FLAG_ATYPICAL, FLAG_BLAST}
    assert not calls[0].atypical and not calls[4].atypical and calls[3].flags == (FLAG_LOW_CONFIDENCE,)

    diff = differential_count(cells, [TYPE2])
    assert diff.atypical == 2 and diff.unclassified == 0
    assert diff.leukocytes == 3 and diff.counts["lymphocyte"] == 0 and diff.blast_count == 0
    assert diff.flagged == 3
    # the reviewer sees the atypical cells first, then the other flagged, then the rest
    assert [c.id for c in review_order(cells, [TYPE2])][:3] == [3, 2, 4]

    cells[1].review = reviewed("blast")  # the reviewer decides: it is counted as what they say
    diff = differential_count(cells, [TYPE2])
    assert diff.atypical == 1 and diff.counts["blast"] == 1 and diff.leukocytes == 4
    assert diff.blast_percent == pytest.approx(25.0)
    assert not call_cell(cells[1], [TYPE2]).atypical


def test_atypicality_round_trips_through_cells_json():
    from leukview.core.cells import Cell

    cell = typed(1, "neutrophil", 0.9, 1.75)
    data = cell.to_dict()
    assert data["predictions"]["wbc-type"]["atypicality"] == 1.75
    back = Cell.from_dict(data).predictions["wbc-type"]
    assert back.atypicality == pytest.approx(1.75) and back.atypical
    plain = typed(2, "neutrophil", 0.9).to_dict()["predictions"]["wbc-type"]
    assert "atypicality" not in plain  # files of models without the score are unchanged
    assert Cell.from_dict(typed(2, "neutrophil", 0.9).to_dict()).predictions["wbc-type"].atypicality is None


MONO = ModelRun(
    "wbc-mononuclear", "1.0.0", "CPUExecutionProvider", ["lymphocyte", "monocyte", "erythroblast", "blast"],
    refines=["lymphocyte", "monocyte", "erythroblast"],
)
TYPE8 = ModelRun(
    "wbc-type", "1.3.0", "CPUExecutionProvider",
    ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"],
)


def staged(cell_id: int, first: tuple[str, float], second: tuple[str, float] | None,
           atypicality: float | None = None) -> object:
    """A cell called by the 8-class type model and (optionally) the mononuclear second stage."""
    cell = make_cell(cell_id)
    for run, pick, score in ((TYPE8, first, None), (MONO, second, atypicality)):
        if pick is None:
            continue
        label, confidence = pick
        rest = (1.0 - confidence) / (len(run.classes) - 1)
        cell.predictions[run.name] = Prediction(
            label, {c: confidence if c == label else rest for c in run.classes}, atypicality=score
        )
    return cell


def test_a_refining_model_re_decides_only_the_classes_it_refines():
    models = [MONO, TYPE8]  # listed by folder name: the second stage comes first, the rule does not care
    assert primary_model(models) is TYPE8
    blast = staged(1, ("lymphocyte", 0.8), ("blast", 0.9))
    call = call_cell(blast, models)
    assert (call.label, call.source, call.confidence) == ("blast", "wbc-mononuclear", pytest.approx(0.9))
    assert FLAG_BLAST in call.flags and call.reasons[-1] == "called blast by wbc-mononuclear"
    monocyte = staged(2, ("lymphocyte", 0.9), ("monocyte", 0.8))
    assert call_cell(monocyte, models).label == "monocyte"
    # a granulocyte is never re-decided: the second stage's blast vote does not reach it
    neutrophil = staged(3, ("neutrophil", 0.95), ("blast", 0.99))
    call = call_cell(neutrophil, models)
    assert (call.label, call.source, call.flags) == ("neutrophil", "wbc-type", ())
    # the second stage's low confidence on a cell it did not re-decide flags nothing
    eosinophil = staged(4, ("eosinophil", 0.95), ("lymphocyte", 0.3))
    assert call_cell(eosinophil, models).flags == ()
    # ... but on a cell it re-decided, it does
    unsure = staged(5, ("monocyte", 0.95), ("blast", 0.4))
    assert FLAG_LOW_CONFIDENCE in call_cell(unsure, models).flags
    # without a second-stage prediction the type model's call stands
    assert call_cell(staged(6, ("lymphocyte", 0.9), None), models).label == "lymphocyte"
    diff = differential_count([blast, monocyte, neutrophil, eosinophil], models)
    assert (diff.blast_count, diff.leukocytes, diff.counts["monocyte"]) == (1, 4, 1)
    assert diff.blast_percent == pytest.approx(25.0) and diff.can_call_blast


def test_the_second_stage_open_set_score_flags_any_cell():
    cell = staged(1, ("neutrophil", 0.95), ("lymphocyte", 0.9), atypicality=2.5)
    call = call_cell(cell, [TYPE8, MONO])
    assert call.label == "neutrophil" and "atypical" in call.flags
    diff = differential_count([cell], [TYPE8, MONO])
    assert (diff.atypical, diff.leukocytes) == (1, 0)


def test_a_refining_run_round_trips_and_has_a_role():
    assert (MONO.role, TYPE8.role, BLAST.role) == ("refine", "type", "flag")
    again = ModelRun.from_dict(MONO.to_dict())
    assert again == MONO and again.refines == ["lymphocyte", "monocyte", "erythroblast"]
    assert "refines" not in TYPE8.to_dict()  # files of type models are unchanged
