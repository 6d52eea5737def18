"""The Qt-free overlay: labels and colours are the cells' calls, as in the viewer."""

from __future__ import annotations

import numpy as np
from cell_factory import BLAST, TYPE, make_cell

from leukview.core import overlay
from leukview.core.analysis import Analysis
from leukview.core.calls import class_rgb
from leukview.core.cells import ReviewState
from leukview.core.overlay import cell_label_text, render_overlay

MODELS = [TYPE, BLAST]


def field() -> tuple[np.ndarray, Analysis]:
    cells = [
        make_cell(1, x=60, y=60, half=30, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.9)),
        make_cell(2, x=200, y=60, half=30, wbc_type=("lymphocyte", 0.9), all_blast=("blast", 0.8)),
        make_cell(3, "rbc", x=120, y=160, half=20),
    ]
    image = np.full((240, 320, 3), 200, np.uint8)
    return image, Analysis(width=320, height=240, cells=cells, models=list(MODELS))


def colours_on_contour(out: np.ndarray, x: int, y0: int, y1: int) -> set[tuple[int, int, int]]:
    """The colours along a vertical stretch of a cell's left edge, snapped to the palette.

    Anti-aliased lines blend a little with the background, so each pixel is
    named by the nearest palette colour within 30 levels per channel.
    """
    palette = [class_rgb(n) for n in ("neutrophil", "blast", "eosinophil", "lymphocyte")] + [(230, 80, 80)]
    found = set()
    for y in range(y0, y1):
        pixel = np.asarray(out[y, x], int)
        near = [c for c in palette if np.abs(pixel - np.asarray(c)).max() <= 30]
        found.update(near or [tuple(int(v) for v in pixel)])
    return found


def test_label_text_marks_reviewed_and_doubtful_calls():
    cell = make_cell(12, wbc_type=("neutrophil", 0.87), all_blast=("normal", 0.95))
    assert cell_label_text(cell, MODELS, 0.7) == "12 neutrophil 87%"
    assert cell_label_text(cell, MODELS, 0.9) == "? 12 neutrophil 87%"  # under the threshold
    blast = make_cell(5, wbc_type=("lymphocyte", 0.9), all_blast=("blast", 0.99))
    assert cell_label_text(blast, MODELS, 0.7) == "? 5 blast 99%"  # blasts go to the reviewer first
    cell.review = ReviewState("ig", "jdoe", "t")
    assert cell_label_text(cell, MODELS, 0.9) == "12 IG ✓"
    assert cell_label_text(make_cell(7), MODELS) == "7"  # no call: the id alone


def test_contours_take_the_calls_colour_and_a_review_changes_it():
    image, analysis = field()
    out = render_overlay(image, analysis, heatmap=False)
    left_edge = colours_on_contour(out, 30, 45, 75)
    assert class_rgb("neutrophil") in left_edge
    assert class_rgb("blast") in colours_on_contour(out, 170, 45, 75)  # the flag model's call, not wbc-type's
    assert (230, 80, 80) in colours_on_contour(out, 100, 150, 170)  # red cells keep their kind colour
    untouched = out[100:120, 100:140]
    assert (untouched == 200).all()  # no heatmap, nothing drawn between cells

    analysis.cells[0].review = ReviewState("eosinophil", "jdoe", "t")
    reviewed = render_overlay(image, analysis, heatmap=False)
    assert class_rgb("eosinophil") in colours_on_contour(reviewed, 30, 45, 75)
    assert class_rgb("neutrophil") not in colours_on_contour(reviewed, 30, 45, 75)
    assert not np.array_equal(out[20:95, 20:100], reviewed[20:95, 20:100])
    assert np.array_equal(out[:, 160:], reviewed[:, 160:])  # the other cell is drawn as before


def test_without_red_cells_only_review_cells_are_drawn():
    image, analysis = field()
    out = render_overlay(image, analysis, heatmap=False, show_rbc=False)
    assert (230, 80, 80) not in colours_on_contour(out, 100, 150, 170)
    analysis.cells[2].review = ReviewState("lymphocyte", "jdoe", "t")  # a reviewed red cell is a review cell
    out = render_overlay(image, analysis, heatmap=False, show_rbc=False)
    assert class_rgb("lymphocyte") in colours_on_contour(out, 100, 150, 170)


def test_a_reduced_image_gets_contours_at_its_scale():
    image, analysis = field()
    small = np.full((120, 160, 3), 200, np.uint8)
    out = render_overlay(small, analysis, heatmap=False, show_rbc=False)
    assert out.shape == small.shape
    assert class_rgb("neutrophil") in colours_on_contour(out, 15, 22, 38)  # x 30 / 2, y 45..75 / 2


def test_a_heatmap_is_blended_only_when_asked():
    image, analysis = field()
    pred = analysis.cells[0].predictions["wbc-type"]  # the first model run
    pred.cam = np.ones((4, 4), np.float32)
    pred.cam_box = (30.0, 30.0, 90.0, 90.0)
    plain = render_overlay(image, analysis, heatmap=False)
    heat = render_overlay(image, analysis)  # the first model's map, as before
    inside = (slice(50, 70), slice(50, 70))
    assert (plain[inside] == 200).all() and not (heat[inside] == 200).all()
    assert (render_overlay(image, analysis, "all-blast")[inside] == 200).all()  # that model has no map
    small = render_overlay(np.full((120, 160, 3), 200, np.uint8), analysis)
    assert not (small[25:35, 25:35] == 200).all() and (small[60:, 100:] == 200).all()


def test_one_palette():
    assert not hasattr(overlay, "class_colour")  # the calls' palette is the only one
