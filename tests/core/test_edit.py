"""Corrections of the segmentation on the bundled samples: add, delete, split, redraw; undo, audit, save."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from leukview.core.document import RestoreStatus, ReviewDocument, analyse_field
from leukview.core.edit import (
    EditContext,
    EditError,
    absorbed_cells,
    cell_from_click,
    cell_from_outline,
    cell_mask,
    cells_crossed,
    split_cell,
)
from leukview.core.io import read_image
from leukview.core.segment import segment
from leukview.core.session import EDIT_ACTIONS, AuditAction, AuditEntry, load_session

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
WBC_CLASSES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
CROWDED = "BloodImage_00056.jpg"  # many touching red cells and a white cell touching them


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> list:
    onnx_factory = pytest.importorskip("onnx_factory")
    from leukview.core.models import load_models

    root = tmp_path_factory.mktemp("models")
    onnx_factory.make_tiny_classifier(root / "wbc-type", WBC_CLASSES, input_size=32, seed=3)
    onnx_factory.make_tiny_classifier(root / "all-blast", ["blast", "normal"], input_size=32, seed=5, positive_class="blast")
    return load_models(["wbc-type", "all-blast"], root)


@pytest.fixture(scope="module")
def crowded(classifiers: list) -> tuple[np.ndarray, object]:
    image = read_image(SAMPLES / CROWDED)
    return image, analyse_field(image, classifiers)


@pytest.fixture()
def document(tmp_path: Path, crowded, classifiers: list) -> ReviewDocument:  # noqa: ANN001
    path = tmp_path / "slides" / CROWDED
    path.parent.mkdir()
    shutil.copy(SAMPLES / CROWDED, path)
    doc = ReviewDocument(sessions_folder=tmp_path / "fallback", reviewer="tester", autosave=False)
    doc.open(path)
    assert doc.restore().status is RestoreStatus.NO_SESSION
    doc.set_analysis(copy.deepcopy(crowded[1]), field=(0, 0, 640, 480))
    return doc


@pytest.fixture()
def context(document: ReviewDocument, crowded, classifiers: list) -> EditContext:  # noqa: ANN001
    image = crowded[0]
    return document.edit_context(lambda x, y, w, h: image[y : y + h, x : x + w], classifiers)


def mask_of(cell, shape=(480, 640)) -> np.ndarray:  # noqa: ANN001
    return cell_mask(cell, (0, 0), shape)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def touching_pair(cells, kinds=("rbc", "rbc")):  # noqa: ANN001
    """Two cells of these kinds that touch, well inside the image, of similar size."""
    inner = [c for c in cells if c.bbox[0] > 5 and c.bbox[1] > 5 and c.bbox[2] < 635 and c.bbox[3] < 475]
    best = None
    for a in (c for c in inner if c.kind == kinds[0]):
        grown = cv2.dilate(mask_of(a).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        for b in (c for c in inner if c.kind == kinds[1] and c.id != a.id):
            contact = int((grown & mask_of(b)).sum())
            ratio = min(a.measurements["area"], b.measurements["area"]) / max(a.measurements["area"], b.measurements["area"])
            if contact > 20 and ratio > 0.5 and (best is None or contact > best[0]):
                best = (contact, a, b)
    assert best is not None, "the sample has no touching cells of these kinds"
    return best[1], best[2]


def union_outline(a, b) -> np.ndarray:  # noqa: ANN001
    """The outline of two touching cells drawn as one (what a merge looks like)."""
    union = cv2.morphologyEx((mask_of(a) | mask_of(b)).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return _contour(union > 0)


def _contour(mask: np.ndarray) -> np.ndarray:
    """The outer boundary of a mask's largest part, (N, 2) xy (as a reviewer would trace it)."""
    found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return max(found, key=cv2.contourArea).reshape(-1, 2)


def disc(cx: float, cy: float, r: float, n: int = 48) -> np.ndarray:
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.c_[cx + r * np.cos(angle), cy + r * np.sin(angle)]


def ids(document: ReviewDocument) -> set[int]:
    return {c.id for c in document.cells}


def total_white(document: ReviewDocument) -> int:
    return sum(document.differential().counts.values())


# ---------------------------------------------------------------- split


@pytest.mark.parametrize("kinds", [("rbc", "rbc"), ("wbc", "rbc")])
@pytest.mark.parametrize("how", ["seeds", "line"])
def test_a_merge_of_two_touching_cells_is_split_back_into_them(document, context, kinds, how):  # noqa: ANN001
    a, b = touching_pair(document.cells, kinds)
    before_merge = [c.id for c in document.cells]
    merged = document.redraw_cell(context, a.id, union_outline(a, b))
    assert b.id not in ids(document) and a.id not in ids(document)  # the merge covers b's centre: it went too
    assert merged.kind == a.kind and merged.id > max(before_merge)
    assert merged.measurements["area"] == pytest.approx((mask_of(a) | mask_of(b)).sum(), rel=0.05)
    snapshot = document.analysis.to_dict()

    if how == "seeds":
        parts = document.split_cell(context, merged.id, seeds=[a.centroid, b.centroid])
    else:
        ca, cb = np.array(a.centroid), np.array(b.centroid)
        across = np.array([cb[1] - ca[1], ca[0] - cb[0]]) / np.linalg.norm(cb - ca)
        # where the two meet: the contact pixels' centre, and a line through it across the join
        contact = (cv2.dilate(mask_of(a).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & mask_of(b)
        ys, xs = np.nonzero(contact)
        mid = np.array([xs.mean(), ys.mean()])
        parts = document.split_cell(context, line=[mid - 1.5 * merged.diameter * across, mid + 1.5 * merged.diameter * across])
    assert len(parts) == 2 and merged.id not in ids(document)
    assert all(p.id > merged.id for p in parts) and len({p.id for p in parts}) == 2
    for original in (a, b):
        best = max(parts, key=lambda p: iou(mask_of(p), mask_of(original)))
        assert iou(mask_of(best), mask_of(original)) > 0.85
        assert best.kind == original.kind  # a piece with a nucleus is a white cell, one without is not
        if original.kind == "wbc":
            assert best.nucleus_contour is not None and best.measurements["nucleus_area"] > 0
            assert set(best.predictions) == {"wbc-type", "all-blast"}
            assert all(p.cam is not None and p.cam_box is not None for p in best.predictions.values())
    entry = document.session.audit[-1]
    assert entry.action is AuditAction.SPLIT_CELL and entry.reviewer == "tester"
    assert entry.detail["cells_before"] == [merged.id] and entry.detail["cells_after"] == [p.id for p in parts]
    assert entry.detail["method"] == how and len(entry.detail["geometry"]) == 2
    assert entry.models == {"wbc-type": "0.0.1", "all-blast": "0.0.1"}
    assert document.undo_stack.undo_text == f"Split cell {merged.id} into {parts[0].id}, {parts[1].id}"

    assert document.undo()
    assert document.analysis.to_dict() == snapshot
    assert document.session.audit[-1].action is AuditAction.UNDO_EDIT


def test_a_split_that_cannot_be_made_changes_nothing(document, context):  # noqa: ANN001
    cell = next(c for c in document.cells if c.kind == "rbc" and c.bbox[0] > 20)
    snapshot, audit = document.analysis.to_dict(), len(document.session.audit)
    x0, y0, x1, y1 = cell.bbox
    with pytest.raises(EditError, match="does not cut the cell in two"):
        document.split_cell(context, cell.id, line=[(x0 + 2, y0 + 2), (x0 + 6, y0 + 6)])  # a scratch at its edge
    with pytest.raises(EditError, match="at least two seeds"):
        document.split_cell(context, cell.id, seeds=[cell.centroid, (-50, -50)])
    with pytest.raises(EditError, match="no cell there"):
        document.split_cell(context, line=[(-40, -40), (-10, -10)])
    assert document.analysis.to_dict() == snapshot and len(document.session.audit) == audit
    assert not document.undo_stack.can_undo


# ---------------------------------------------------------------- add


def test_a_cell_drawn_as_a_disc_is_added_measured_and_classified(document, context):  # noqa: ANN001
    white = next(c for c in document.cells if c.kind == "wbc")
    top = max(c.id for c in document.cells)
    wbc_before = total_white(document)
    document.delete_cells([white.id])
    assert total_white(document) == wbc_before - 1
    # a disc around the white cell's nucleus, as a reviewer would draw a missed one
    radius = 0.5 * white.diameter
    cell = document.add_cell(context, outline=disc(*white.centroid, radius))
    assert cell.kind == "wbc" and cell.id == top + 1
    assert cell.measurements["area"] == pytest.approx(np.pi * radius**2, rel=0.05)
    assert 0 < cell.measurements["nucleus_area"] < cell.measurements["area"]
    assert cell.nucleus_contour is not None
    assert set(cell.predictions) == {"wbc-type", "all-blast"}
    assert all(p.cam is not None for p in cell.predictions.values())
    # the differential follows: one white cell more, counted under its call
    assert total_white(document) == wbc_before
    assert document.call(cell).label in document.differential().counts
    entry = document.session.audit[-1]
    assert entry.action is AuditAction.ADD_CELL and entry.detail["cells_after"] == [cell.id]
    assert entry.detail["method"] == "outline" and len(entry.detail["geometry"]) == 48
    assert entry.detail["calls_after"] == [document.call(cell).label] and entry.detail["unclassified"] == []
    assert f"add cell: — -> {cell.id} (" in entry.describe()


def test_a_disc_on_glass_is_a_red_cell_or_nothing(document, context):  # noqa: ANN001
    # a disc where there is only glass is still what the reviewer drew (no nucleus: not a white cell)
    cells = document.cells
    empty = np.ones((480, 640), bool)
    for c in cells:
        empty &= ~mask_of(c)
    dist = cv2.distanceTransform(empty.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    cell = document.add_cell(context, outline=disc(x, y, 12))
    assert cell.kind in ("rbc", "platelet") and cell.predictions == {}
    with pytest.raises(EditError, match="no stained cell under the click"):
        document.add_cell(context, point=(x, y))
    with pytest.raises(EditError, match="at least three points"):
        document.add_cell(context, outline=[(x, y), (x + 5, y)])


def test_a_click_on_a_missed_white_cell_finds_it_as_the_pipeline_would(document, context):  # noqa: ANN001
    white = next(c for c in document.cells if c.kind == "wbc")
    document.delete_cells([white.id])
    cell = document.add_cell(context, point=white.centroid)
    assert cell.kind == "wbc" and iou(mask_of(cell), mask_of(white)) > 0.8
    assert cell.measurements["nucleus_area"] == pytest.approx(white.measurements["nucleus_area"], rel=0.25)
    assert set(cell.predictions) == {"wbc-type", "all-blast"}
    with pytest.raises(EditError, match=f"cell {cell.id} is already there"):
        document.add_cell(context, point=cell.centroid)
    assert document.session.audit[-1].detail["method"] == "click"


def test_a_white_cell_drawn_over_red_cells_replaces_them(crowded, context):  # noqa: ANN001
    image, analysis = crowded
    cells = copy.deepcopy(analysis.cells)
    white = next(c for c in cells if c.kind == "wbc")
    others = [c for c in cells if c is not white]
    # a white cell drawn far too large: the red cells whose centre it covers are pieces of it
    grown = cell_from_outline(context, disc(*white.centroid, 1.2 * white.diameter), 1000, others=others)
    inside = mask_of(grown)
    covered = absorbed_cells([grown], others)
    assert covered and all(c.kind != "wbc" and inside[int(c.centroid[1]), int(c.centroid[0])] for c in covered)
    rest = [c for c in others if c not in covered and c.kind != "wbc"]
    assert rest and not any(inside[int(round(c.centroid[1])), int(round(c.centroid[0]))] for c in rest)
    # the cell itself, drawn as it is, covers none
    assert absorbed_cells([cell_from_outline(context, _contour(mask_of(white)), 999, others=others)], others) == []


# ---------------------------------------------------------------- delete and redraw


def test_delete_and_redraw_are_undone_and_redone_exactly(document, context):  # noqa: ANN001
    white = next(c for c in document.cells if c.kind == "wbc")
    red = next(c for c in document.cells if c.kind == "rbc")
    start = document.analysis.to_dict()
    wbc = total_white(document)

    assert document.delete_cells([red.id, white.id])
    deleted = document.analysis.to_dict()
    assert red.id not in ids(document) and white.id not in ids(document) and total_white(document) == wbc - 1
    entry = document.session.audit[-1]
    assert entry.action is AuditAction.DELETE_CELL and entry.detail["cells_before"] == [red.id, white.id]
    assert entry.detail["calls_before"] == [None, document.model_call(white).label] and entry.detail["cells_after"] == []
    assert document.undo_stack.undo_text == f"Delete cells {red.id}, {white.id}"
    assert document.undo() and document.analysis.to_dict() == start
    assert document.redo() and document.analysis.to_dict() == deleted
    assert document.undo() and document.analysis.to_dict() == start

    # a smaller outline for the white cell: a new cell of the same kind, measured again
    smaller = disc(*white.centroid, 0.4 * white.diameter)
    new = document.redraw_cell(context, white.id, smaller)
    redrawn = document.analysis.to_dict()
    assert new.kind == "wbc" and new.id not in {c["id"] for c in start["cells"]}
    assert new.measurements["area"] < white.measurements["area"]
    assert [c["id"] for c in redrawn["cells"]].index(new.id) == [c["id"] for c in start["cells"]].index(white.id)
    assert document.session.audit[-1].action is AuditAction.REDRAW_CELL
    assert document.undo() and document.analysis.to_dict() == start
    assert document.redo() and document.analysis.to_dict() == redrawn
    assert [e.action for e in document.session.audit if e.action in EDIT_ACTIONS] == [
        AuditAction.DELETE_CELL, AuditAction.UNDO_EDIT, AuditAction.REDO_EDIT, AuditAction.UNDO_EDIT,
        AuditAction.REDRAW_CELL, AuditAction.UNDO_EDIT, AuditAction.REDO_EDIT,
    ]  # fmt: skip


def test_ids_are_never_reused_even_after_undo(document, context):  # noqa: ANN001
    white = next(c for c in document.cells if c.kind == "wbc")
    top = max(c.id for c in document.cells)
    document.delete_cells([white.id])
    first = document.add_cell(context, outline=disc(*white.centroid, 0.5 * white.diameter))
    assert first.id == top + 1
    document.undo()
    second = document.add_cell(context, outline=disc(*white.centroid, 0.45 * white.diameter))
    assert second.id == top + 2  # the undone cell's id stays its own
    assert not document.undo_stack.can_redo  # a new edit drops what was undone


def test_a_review_of_an_edited_cell_undoes_in_order(document, context):  # noqa: ANN001
    white = next(c for c in document.cells if c.kind == "wbc")
    document.delete_cells([white.id])
    cell = document.add_cell(context, point=white.centroid)
    assert document.review(cell.id, "lymphocyte")
    assert document.differential().counts["lymphocyte"] == 1
    assert document.undo() and document.cell(cell.id).review.label is None
    assert document.undo() and cell.id not in ids(document)
    assert document.redo() and document.redo()
    assert document.cell(cell.id).review.label == "lymphocyte"


# ---------------------------------------------------------------- save and restore


def test_edits_survive_save_and_restore(document, context, tmp_path: Path):  # noqa: ANN001
    a, b = touching_pair(document.cells, ("wbc", "rbc"))
    merged = document.redraw_cell(context, a.id, union_outline(a, b))
    parts = document.split_cell(context, merged.id, seeds=[a.centroid, b.centroid])
    document.delete_cells([next(c.id for c in document.cells if c.kind == "rbc")])
    saved = document.analysis.to_dict()
    outcome = document.save()
    assert outcome.path is not None and not document.dirty

    again = ReviewDocument(sessions_folder=tmp_path / "fallback", reviewer="tester")
    again.open(document.path)
    assert again.restore().restored
    assert again.analysis.to_dict() == saved
    white = next(p for p in parts if p.kind == "wbc")
    restored = again.cell(white.id)
    assert np.array_equal(restored.contour, white.contour)
    assert restored.predictions["wbc-type"].cam is not None  # the maps are saved with the cells
    actions = [e.action for e in load_session(outcome.path).audit]
    assert actions[-3:] == [AuditAction.REDRAW_CELL, AuditAction.SPLIT_CELL, AuditAction.DELETE_CELL]
    # the ids of the restored image's edits stay used
    assert again.next_cell_id() == document.next_cell_id() > max(c.id for c in again.cells)


def test_an_edit_entry_reads_back_and_a_wrong_detail_is_refused():
    detail = {
        "cells_before": [3], "cells_after": [9, 10], "calls_before": ["monocyte"],
        "calls_after": ["monocyte", "lymphocyte"], "method": "line",
        "geometry": [[1.0, 2.0], [30.5, 40.0]], "unclassified": [],
    }  # fmt: skip
    entry = AuditEntry("2024-05-02T10:00:00+00:00", "jdoe", AuditAction.SPLIT_CELL, detail=detail)
    again = AuditEntry.from_dict(entry.to_dict())
    assert again == entry
    assert again.describe() == "split cell: 3 (monocyte) -> 9 (monocyte), 10 (lymphocyte) by line"
    from leukview.core.errors import SessionError

    with pytest.raises(SessionError, match="has keys"):
        AuditEntry("t", "jdoe", AuditAction.ADD_CELL, detail={"cells_after": [1]})  # type: ignore[typeddict-item]


# ---------------------------------------------------------------- the pure functions


def test_the_pure_functions_on_a_sample_without_a_document(crowded):  # noqa: ANN001
    image, _ = crowded
    found = segment(image)
    context = EditContext.from_image(image, rbc_diameter=found.rbc_diameter)
    assert context.levels.nucleus_threshold > 0 and context.levels.cell_threshold > 0
    a, b = touching_pair(found.cells, ("rbc", "rbc"))
    crossed = cells_crossed(found.cells, [a.centroid, b.centroid])
    assert {a.id, b.id} <= {c.id for c in crossed}
    merged = cell_from_outline(context, union_outline(a, b), 500, kind="rbc")
    parts = split_cell(context, merged, 501, seeds=[a.centroid, b.centroid])
    assert [p.id for p in parts] == [501, 502]
    white = found.cells_of_kind("wbc")[0]
    again = cell_from_click(context, white.centroid, 600, others=[c for c in found.cells if c is not white])
    assert again.kind == "wbc" and iou(mask_of(again), mask_of(white)) > 0.8
    with pytest.raises(EditError):
        split_cell(context, merged, 1)  # neither a line nor seeds
