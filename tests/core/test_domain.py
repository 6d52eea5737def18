"""The per-image and per-case warning: cells unlike the training data."""

from __future__ import annotations

import pytest
from cell_factory import make_cell

from leukview.core.cells import Prediction
from leukview.core.domain import (
    MIN_ATYPICAL,
    RATE_FACTOR,
    WARNING,
    DomainCheck,
    case_check,
    decide,
    domain_check,
)


def scored(cell_id: int, atypicality: float | None, kind: str = "wbc", review: str | None = None):
    cell = make_cell(cell_id, kind)
    cell.predictions["wbc-type"] = Prediction("neutrophil", {"neutrophil": 0.9, "lymphocyte": 0.1},
                                              atypicality=atypicality)
    if review:
        cell.review.label = review
    return cell


def test_the_rule_needs_enough_atypical_cells_and_a_rate_well_over_the_held_out_one():
    assert decide(100, 2).warning is None  # as in held-out cells
    assert decide(100, 6).warning is None  # exactly 3 x 2 %: not over it
    assert decide(100, 7).warning == WARNING
    assert decide(4, 2).warning is None  # 50 %, but two cells are no pattern
    assert decide(4, MIN_ATYPICAL).warning == WARNING
    check = decide(200, 20, 0.02)
    assert check.score == pytest.approx(5.0) and check.fraction == pytest.approx(0.1)
    low = decide(200, 8, 0.02)
    assert low.score == pytest.approx(2.0) and low.score < RATE_FACTOR and low.warning is None
    empty = decide(0, 0)
    assert empty.score is None and empty.warning is None and empty.fraction is None
    with pytest.raises(ValueError):
        decide(3, 4)
    with pytest.raises(ValueError):
        decide(10, 1, 0.0)


def test_an_image_counts_scored_white_cells_whatever_the_reviews():
    cells = [scored(i, 2.0 if i < 4 else 0.5) for i in range(10)]
    cells += [scored(20, 5.0, kind="rbc"), scored(21, None)]  # a red cell; a cell without a score
    cells[0].review.label = "lymphocyte"  # a review settles the count, not how unlike the image is
    check = domain_check(cells, 0.02)
    assert (check.cells, check.atypical) == (10, 4)
    assert check.warning == WARNING and check.score == pytest.approx(20.0)
    assert domain_check([scored(1, 0.3), scored(2, 0.9)]).warning is None


def test_cells_json_entry_round_trips_and_is_recomputed_from_its_counts():
    check = decide(50, 9, 0.021)
    data = check.to_dict()
    assert data == {"score": pytest.approx(9 / 50 / 0.021, abs=1e-4), "warning": WARNING, "cells": 50,
                    "atypical": 9, "expected_fraction": 0.021}
    assert DomainCheck.from_dict(data) == check
    # a hand-edited entry cannot carry a warning its counts do not support, nor nonsense counts
    assert DomainCheck.from_dict({**data, "atypical": 1}).warning is None
    odd = DomainCheck.from_dict({"cells": "many", "atypical": True, "expected_fraction": 7})
    assert (odd.cells, odd.atypical, odd.expected_fraction, odd.warning) == (0, 0, 0.02, None)


def test_a_case_pools_its_images():
    images = [decide(40, 1), decide(40, 2), None, decide(40, 1)]  # each image alone: no warning
    assert all(c is None or c.warning is None for c in images)
    assert case_check(images).warning is None and case_check(images).cells == 120
    many = [decide(10, 2), decide(10, 2), decide(10, 1)]  # two atypical per image: never three alone
    assert all(c.warning is None for c in many)
    pooled = case_check(many)
    assert (pooled.cells, pooled.atypical) == (30, 5) and pooled.warning == WARNING
    assert case_check([]).cells == 0 and case_check([None]).warning is None
