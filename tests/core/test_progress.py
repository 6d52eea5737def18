"""One progress callback, one cancellation check, one exception, for every long step of the core."""

from __future__ import annotations

import numpy as np
import pytest

from leukview.core import analysis, progress
from leukview.core.errors import LeukViewError
from leukview.core.progress import AnalysisCancelled, checkpoint, scaled


def test_checkpoint_reports_then_stops_when_asked() -> None:
    reports: list[tuple[float, str]] = []
    answers = iter([False, True])

    def report(fraction: float, message: str) -> None:
        reports.append((fraction, message))

    checkpoint(report, lambda: next(answers), 0.25, "a")
    assert reports == [(0.25, "a")]
    with pytest.raises(AnalysisCancelled) as info:
        checkpoint(report, lambda: next(answers), 0.5, "b")
    assert reports == [(0.25, "a")]  # a cancelled step reports nothing more
    assert isinstance(info.value, LeukViewError) and info.value.reason == "analysis cancelled"


def test_checkpoint_without_callbacks_does_nothing() -> None:
    checkpoint(None, None, 1.0, "done")


def test_scaled_maps_a_sub_step_onto_its_share() -> None:
    reports: list[tuple[float, str]] = []
    part = scaled(lambda f, m: reports.append((f, m)), 0.3, 0.7)
    assert part is not None
    for fraction in (0.0, 0.5, 1.0, 2.0, -1.0):
        part(fraction, "x")
    got = [f for f, _ in reports]
    np.testing.assert_allclose(got, [0.3, 0.5, 0.7, 0.7, 0.3])
    assert scaled(None, 0.0, 1.0) is None


def test_analysis_uses_the_same_types() -> None:
    assert analysis.AnalysisCancelled is AnalysisCancelled
    assert analysis.ProgressCallback is progress.ProgressCallback


def test_analysis_cancelled_before_it_starts_changes_nothing() -> None:
    image = np.full((64, 64, 3), 230, np.uint8)
    reports: list[float] = []
    with pytest.raises(AnalysisCancelled):
        analysis.analyze_image(
            image, progress=lambda f, _: reports.append(f), should_cancel=lambda: True
        )
    assert reports == []
