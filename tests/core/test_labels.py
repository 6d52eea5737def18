"""Greedy label placement: no overlap, never out of bounds, the important labels first, markers as a fallback."""

from __future__ import annotations

import itertools

import numpy as np

from leukview.core.labels import LabelRequest, place_labels, rects_overlap


def test_labels_never_overlap_and_never_leave_the_bounds():
    rng = np.random.default_rng(4)
    requests = []
    for key in range(300):
        x, y = rng.uniform(-20, 400, 2)  # some cells partly outside the view
        requests.append(LabelRequest(key, (x, y, x + 20, y + 20), [(90.0, 16.0), (24.0, 14.0)], rng.uniform()))
    placed = place_labels(requests, (0, 0, 400, 300), gap=3)
    assert 10 < len(placed) < 300
    for label in placed:
        x0, y0, x1, y1 = label.rect
        assert x0 >= 0 and x1 <= 400 and y0 >= 0 and y1 <= 300
    for a, b in itertools.combinations(placed, 2):
        assert not rects_overlap(a.rect, b.rect, 3 - 1e-9), (a, b)
    assert {p.form for p in placed} == {0, 1}  # full labels, and markers where they did not fit


def test_the_first_label_takes_the_usual_place_and_a_neighbour_moves_aside():
    first = LabelRequest(1, (100, 100, 140, 140), [(60, 16)], priority=0)
    touching = LabelRequest(2, (142, 100, 182, 140), [(60, 16)], priority=1)
    placed = {p.key: p for p in place_labels([touching, first], (0, 0, 400, 400), gap=3, pad=2)}
    assert placed[1].rect == (100, 82, 160, 98)  # above its cell, left-aligned
    assert placed[2].rect[0] >= 163 or placed[2].rect[1] >= 98  # not run together with the first
    assert not rects_overlap(placed[1].rect, placed[2].rect, 3)


def test_a_label_at_the_edge_is_shifted_in_and_one_that_fits_nowhere_is_left_out():
    edge = LabelRequest(1, (390, 0, 400, 10), [(80, 16)])
    placed = place_labels([edge], (0, 0, 400, 300))
    assert placed[0].rect[2] == 400 and placed[0].rect[1] >= 0  # never cut at the view's edge
    too_big = LabelRequest(2, (10, 10, 20, 20), [(500, 16)])
    assert place_labels([too_big], (0, 0, 400, 300)) == []
    same = [LabelRequest(k, (0, 0, 400, 300), [(400, 300)], k) for k in range(3)]
    assert [p.key for p in place_labels(same, (0, 0, 400, 300))] == [0]  # priority decides who stays


def test_a_marker_sits_on_its_cell():
    crowd = LabelRequest(1, (100, 60, 200, 100), [(300, 80)], priority=0)
    cell = LabelRequest(2, (140, 110, 160, 130), [(400, 40), (14, 12)], priority=1)  # the text fits nowhere
    placed = {p.key: p for p in place_labels([crowd, cell], (0, 0, 300, 200), gap=2)}
    assert placed[2].form == 1 and placed[2].rect == (143.0, 114.0, 157.0, 126.0)
