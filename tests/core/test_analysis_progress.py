"""Progress within the stages of an analysis: each step of the segmentation, each batch of each model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leukview.core.analysis import SEGMENTATION_SHARE, analyze_image
from leukview.core.io import read_image
from leukview.core.progress import AnalysisCancelled
from leukview.core.segment import segment
from leukview.core.segment._pipeline import STAGES

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
WBC_CLASSES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]


@pytest.fixture(scope="module")
def mosaic() -> np.ndarray:
    """A 6x6 mosaic of the bundled fields (3840x2880): a large field with 36 white cells."""
    fields = [read_image(p) for p in sorted(SAMPLES.glob("*.jpg"))]
    rows = [np.hstack([fields[(r + c) % len(fields)] for c in range(6)]) for r in range(6)]
    return np.ascontiguousarray(np.vstack(rows))


def check_monotonic(seen: list[tuple[float, str]]) -> None:
    fractions = [f for f, _ in seen]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert all(b >= a for a, b in zip(fractions, fractions[1:], strict=False)), fractions
    assert fractions[-1] == 1.0


def test_segmentation_reports_each_of_its_steps():
    image = read_image(SAMPLES / "BloodImage_00056.jpg")
    seen: list[tuple[float, str]] = []
    found = segment(image, progress=lambda f, m: seen.append((f, m)))
    check_monotonic(seen)
    messages = [m for _, m in seen]
    assert messages[:-1] == [message for _, message in STAGES.values()]
    assert messages[-1] == f"segmented: {len(found.cells)} cells"
    assert len({f for f, _ in seen}) == len(seen)  # every step moves the bar


def test_an_analysis_reports_within_segmentation_and_per_batch(mosaic, tmp_path: Path):
    onnx_factory = pytest.importorskip("onnx_factory")
    from leukview.core.models import load_models

    onnx_factory.make_tiny_classifier(tmp_path / "wbc-type", WBC_CLASSES, input_size=32, seed=3)
    onnx_factory.make_tiny_classifier(tmp_path / "all-blast", ["blast", "normal"], input_size=32, seed=5, positive_class="blast")
    classifiers = load_models(["wbc-type", "all-blast"], tmp_path)
    seen: list[tuple[float, str]] = []
    result = analyze_image(mosaic, classifiers, progress=lambda f, m: seen.append((f, m)))
    check_monotonic(seen)
    white = sum(c.kind == "wbc" for c in result.cells)
    assert white > 32  # more than one batch of each model

    segmenting = [(f, m) for f, m in seen if m.startswith("segment")]
    assert len({m for _, m in segmenting}) >= 6  # never one "segmenting" for the whole step
    assert all(f <= SEGMENTATION_SHARE for f, _ in segmenting)
    assert segmenting[-1][0] == pytest.approx(SEGMENTATION_SHARE)
    for name in ("wbc-type", "all-blast"):
        batches = [(f, m) for f, m in seen if m.startswith(f"{name}: cells")]
        assert [m for _, m in batches] == [f"{name}: cells 1-32 of {white}", f"{name}: cells 33-{white} of {white}"]
        assert batches[1][0] > batches[0][0]  # the bar moves between batches
    assert seen[-1] == (1.0, "done")


def test_a_cancel_during_segmentation_stops_it_between_steps():
    image = read_image(SAMPLES / "BloodImage_00214.jpg")
    polls: list[int] = []

    def cancel() -> bool:
        polls.append(1)
        return len(polls) > 3  # after three steps

    seen: list[str] = []
    with pytest.raises(AnalysisCancelled):
        analyze_image(image, progress=lambda f, m: seen.append(m), should_cancel=cancel)
    assert seen == [message for _, message in list(STAGES.values())[:3]]
