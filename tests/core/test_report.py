"""The report's content without Qt: the calls' differential, the snapshot, the HTML."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest
from cell_factory import BLAST, TYPE, make_cell

from leukview.core.analysis import Analysis
from leukview.core.calibration import Calibration
from leukview.core.calls import class_colour, differential_count
from leukview.core.cells import ReviewState
from leukview.core.overlay import render_overlay
from leukview.core.report import (
    DISCLAIMER,
    SNAPSHOT_URL,
    build_report,
    corrections,
    provider_text,
    report_html,
    report_snapshot,
)
from leukview.core.session import Session


@dataclass
class Entry:
    when: str
    who: str
    text: str
    cell: int | None = None
    before: str | None = None
    after: str | None = None

    def describe(self) -> str:
        return self.text


def field(calibration: Calibration | None = None) -> tuple[np.ndarray, Analysis]:
    cells = [
        make_cell(1, x=60, y=60, half=30, wbc_type=("neutrophil", 0.95), all_blast=("normal", 0.9)),
        make_cell(2, x=200, y=60, half=30, wbc_type=("lymphocyte", 0.9), all_blast=("blast", 0.8)),
        make_cell(3, x=60, y=170, half=30, wbc_type=("neutrophil", 0.5), all_blast=("normal", 0.9)),
        make_cell(4, "rbc", x=200, y=170, half=20),
    ]
    image = np.full((240, 320, 3), 200, np.uint8)
    analysis = Analysis(
        width=320, height=240, cells=cells, models=[TYPE, BLAST], image="/data/field 7.jpg",
        calibration=calibration or Calibration.unknown(),
    )  # fmt: skip
    return image, analysis


def cell_text(html: str) -> list[str]:
    """The text of each table cell, tags stripped."""
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]


def test_build_report_gathers_the_field_and_renders_the_snapshot_with_the_core_overlay():
    image, analysis = field(Calibration.from_file(0.1))
    content = build_report(analysis, image, threshold=0.7, created="2024-05-02T10:00:00+02:00", reviewer="jdoe")
    assert (content.image_name, content.width, content.height) == ("field 7.jpg", 320, 240)
    assert content.cells is analysis.cells and list(content.models) == [TYPE, BLAST]
    assert content.calibration == Calibration.from_file(0.1) and content.threshold == 0.7
    assert (content.created, content.reviewer) == ("2024-05-02T10:00:00+02:00", "jdoe")
    assert content.snapshot is not None and content.snapshot.dtype == np.uint8
    assert np.array_equal(content.snapshot, render_overlay(image, analysis, threshold=0.7, heatmap=False))
    assert build_report(analysis, None, threshold=0.7).snapshot is None
    assert build_report(analysis, image, threshold=0.7, image_name="x.png").image_name == "x.png"


def test_the_snapshot_has_no_heatmap_unless_asked_and_is_reduced_to_print_size():
    image, analysis = field()
    pred = analysis.cells[0].predictions["wbc-type"]
    pred.cam, pred.cam_box = np.ones((4, 4), np.float32), (30.0, 30.0, 90.0, 90.0)
    plain = build_report(analysis, image, threshold=0.7).snapshot
    heat = build_report(analysis, image, threshold=0.7, heatmap=True).snapshot
    assert plain is not None and heat is not None
    assert (plain[50:70, 50:70] == 200).all() and not (heat[50:70, 50:70] == 200).all()
    small = report_snapshot(image, analysis, 0.7, max_side=160)
    assert small.shape == (120, 160, 3)


def test_the_html_reports_the_calls_differential_blast_percent_models_and_calibration():
    image, analysis = field(Calibration.from_user(0.25))
    analysis.cells[0].review = ReviewState("lymphocyte", "jdoe", "t")
    content = build_report(analysis, image, threshold=0.7, reviewer="jdoe", created="2024-05-02T10:00:00+02:00")
    html = report_html(content)
    cells = cell_text(html)
    diff = differential_count(analysis.cells, analysis.models, 0.7)
    for name, count in diff.counts.items():
        display = "IG" if name == "ig" else name
        row = next(i for i, text in enumerate(cells) if text.endswith(display) and len(text) <= len(display) + 2)
        assert cells[row + 1] == str(count)
    assert diff.counts["lymphocyte"] == 1 and diff.counts["blast"] == 1 and diff.counts["neutrophil"] == 1
    assert f"color:{class_colour('blast')}" in html  # the calls' palette
    assert "33.3 %" in html and "of 3 white cells" in html  # one blast of three classified white cells
    assert "all-blast 1.0.0" in html and "wbc-type" in html and "1.0.0" in html
    assert provider_text("CPUExecutionProvider") in cells and provider_text("CUDAExecutionProvider") == "GPU (CUDA)"
    assert "0.25 µm/px (set by the user)" in html
    assert DISCLAIMER in html and "not a diagnosis" in html
    assert "1 of 3 white cells reviewed" in html and "2 of them flagged for review" in html
    assert f"src='{SNAPSHOT_URL}'" in html
    assert "field 7.jpg (320 × 240 px)" in html and "by jdoe" in html
    assert "unknown (sizes in pixels)" in report_html(build_report(field()[1], None, threshold=0.7))
    assert "<img" not in report_html(build_report(field()[1], None, threshold=0.7))


def test_corrections_come_from_the_audit_log():
    _, analysis = field()
    session = Session.new(analysis, who="jdoe")
    session.set_review(1, "lymphocyte", who="jdoe")  # neutrophil -> lymphocyte: a correction
    session.set_review(3, "neutrophil", who="jdoe")  # confirmed: no change
    listed = corrections(session.audit)
    assert [getattr(e, "cell", None) for e in listed] == [1]
    html = report_html(build_report(analysis, None, audit=session.audit, threshold=0.7))
    assert listed[0].describe() in html.replace("&gt;", ">")
    assert "1 correction(s)" in html

    fake = [Entry("t1", "ann", "analyse"), Entry("t2", "ann", "cell 2: blast -> lymphocyte", 2, "blast", "lymphocyte")]
    html = report_html(build_report(analysis, None, audit=fake, threshold=0.7))
    assert "cell 2: blast -&gt; lymphocyte" in html and ">analyse<" not in html
    assert "No corrections." in report_html(build_report(analysis, None, threshold=0.7))


@pytest.mark.parametrize("threshold", [0.5, 0.96])
def test_the_threshold_decides_what_is_flagged(threshold: float):
    _, analysis = field()
    html = report_html(build_report(analysis, None, threshold=threshold))
    flagged = differential_count(analysis.cells, analysis.models, threshold).flagged
    assert f"{flagged} of them flagged for review" in html
    assert f"confidence threshold {threshold:.0%}" in html
