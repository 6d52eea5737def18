"""One call per cell everywhere: analyze's cells.json, summary.csv and overlay PNG, report's CSV, the viewer.

On real fields with the shipped models, ``leukview analyze --overlay`` and
``leukview report --csv`` run on the same images; the viewer's review
document is given the cells.json analysis, and (when Qt can start
offscreen) the viewer's own label text is asked for each cell. They must
agree cell by cell, and the overlay PNG must be drawn from those calls.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from leukview.cli import EXIT_OK, run_analyze
from leukview.cli_report import run_report
from leukview.core.analysis import Analysis
from leukview.core.calls import (
    call_cell,
    class_rgb,
    differential_count,
    review_cells,
    review_classes,
)
from leukview.core.cells import Cell, ReviewState
from leukview.core.io import read_image
from leukview.core.overlay import REVIEWED_MARK, cell_label_text, render_overlay

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "resources" / "samples").glob("*.jpg"))
SHIPPED = ROOT / "models"
# every shipped model runs, in folder order (the call rule finds the type model by its role)
SHIPPED_NAMES = [json.loads(p.read_text(encoding="utf-8"))["name"] for p in sorted(SHIPPED.glob("*/model.json"))]


def viewer_labels(image: Path, analysis: Analysis) -> tuple[dict[int, str | None], dict[int, str], dict[str, int]]:
    """What the viewer shows for each cell: its review document's call, its label text, its differential.

    The label texts are empty when Qt cannot start here.
    """
    from leukview.core.document import ReviewDocument
    from leukview.core.session import SessionSettings

    document = ReviewDocument(
        SessionSettings(confidence_threshold=analysis.confidence_threshold),
        sessions_folder=image.parent / "sessions",
        autosave=False,
    )
    document.open(image)
    document.set_analysis(analysis)
    calls = {c.id: document.call(c).label for c in review_cells(document.cells)}
    texts: dict[int, str] = {}
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from leukview.gui.cellinfo import call_text
    except ImportError:  # no Qt here: the document's calls still count
        call_text = None
    if call_text is not None:
        texts = {c.id: call_text(c, document.call(c)) for c in review_cells(document.cells)}
    return calls, texts, dict(document.differential().counts)


def contour_colour_share(png: np.ndarray, cell: Cell, rgb: tuple[int, int, int]) -> float:
    """The share of a cell's contour points whose pixel in ``png`` is ``rgb`` (within anti-aliasing)."""
    points = np.asarray(cell.contour, int).reshape(-1, 2)
    h, w = png.shape[:2]
    points = points[(points[:, 0] < w) & (points[:, 1] < h)]
    pixels = png[points[:, 1], points[:, 0]].astype(int)
    return float((np.abs(pixels - np.asarray(rgb)).max(axis=1) <= 40).mean())


def check_agreement(images: list[Path], tmp_path: Path) -> int:
    """Run both commands and every view on ``images``; return how many cells had a call."""
    fields = tmp_path / "fields"
    fields.mkdir()
    for path in images:
        shutil.copy(path, fields / path.name)
    out = tmp_path / "out"
    err = io.StringIO()
    code = run_analyze([str(fields), "--out", str(out), "--overlay", "--quiet", "--models-dir", str(SHIPPED)],
                       stdout=io.StringIO(), stderr=err)  # fmt: skip
    assert code == EXIT_OK, err.getvalue()
    summary = {Path(r["image"]).name: r for r in csv.DictReader((out / "summary.csv").open(encoding="utf-8"))}
    called = 0
    for path in sorted(fields.iterdir()):
        if not path.is_file():
            continue
        stem = path.stem
        doc = json.loads((out / f"{stem}.cells.json").read_text(encoding="utf-8"))
        assert doc["schema_version"] == 2 and [m["name"] for m in doc["models"]] == SHIPPED_NAMES
        analysis = Analysis.from_dict(doc)
        threshold = analysis.confidence_threshold
        models = analysis.models

        # cells.json: every cell's stored call is the rule's
        stored = {c["id"]: c["call"]["label"] for c in doc["cells"]}
        rule = {c.id: call_cell(c, models, threshold).label for c in analysis.cells}
        assert stored == rule, stem
        assert {c["id"]: c["flags"] for c in doc["cells"]} == {
            c.id: list(call_cell(c, models, threshold).flags) for c in analysis.cells
        }

        # leukview report --csv (the image has no session: analysed again, the same way)
        report_csv = tmp_path / f"{stem}.report.csv"
        err = io.StringIO()
        code = run_report([str(path), "--csv", str(report_csv), "--models-dir", str(SHIPPED)],
                          stdout=io.StringIO(), stderr=err)  # fmt: skip
        assert code == EXIT_OK, err.getvalue()
        rows = list(csv.DictReader(report_csv.open(encoding="utf-8")))
        assert {int(r["id"]): (r["call"] or None) for r in rows} == stored, stem

        # summary.csv's call: columns are the differential of those calls
        row = summary[path.name]
        diff = differential_count(analysis.cells, models, threshold)
        # an unreviewed atypical cell keeps its label on screen but is counted in no class until reviewed
        atypical = {c["id"] for c in doc["cells"] if "atypical" in c["flags"]}
        wbc_calls = Counter(stored[c.id] for c in review_cells(analysis.cells) if c.id not in atypical)
        assert diff.atypical == len(atypical & {c.id for c in review_cells(analysis.cells)})
        for name in review_classes(models):
            assert int(row[f"call:{name}"]) == diff.counts[name] == wbc_calls.get(name, 0), (stem, name)
        assert int(row["call:unclassified"]) == diff.unclassified == wbc_calls.get(None, 0)
        assert row["blast_percent"] == ("" if diff.blast_percent is None else str(round(diff.blast_percent, 2)))

        # the viewer: its document's calls and differential, its label text
        viewer_calls, texts, viewer_counts = viewer_labels(path, Analysis.from_dict(doc))
        assert viewer_calls == {c.id: stored[c.id] for c in review_cells(analysis.cells)}, stem
        assert {k: v for k, v in viewer_counts.items() if v} == {k: v for k, v in diff.counts.items() if v}
        for cell in review_cells(analysis.cells):
            if texts:
                assert texts[cell.id] == cell_label_text(cell, models, threshold), (stem, cell.id)

        # the overlay PNG is drawn in each call's colour
        png = cv2.cvtColor(cv2.imread(str(out / f"{stem}.overlay.png")), cv2.COLOR_BGR2RGB)
        for cell in review_cells(analysis.cells):
            share = contour_colour_share(png, cell, class_rgb(stored[cell.id]))
            assert share > 0.5, (stem, cell.id, stored[cell.id], share)
        called += sum(stored[c.id] is not None for c in review_cells(analysis.cells))  # atypical cells too
    return called


def check_a_review_changes_the_overlay(image_path: Path, analysis: Analysis) -> None:
    """A reviewer's label recolours and relabels its cell in the overlay, and nothing else."""
    image = read_image(image_path)
    cell = next(c for c in analysis.cells if c.kind == "wbc" and call_cell(c, analysis.models).label)
    before_label = call_cell(cell, analysis.models).label
    new = next(n for n in review_classes(analysis.models) if class_rgb(n) != class_rgb(before_label))
    before = render_overlay(image, analysis, heatmap=False)
    cell.review = ReviewState(new, "jdoe", "2024-01-01T00:00:00+00:00")
    after = render_overlay(image, analysis, heatmap=False)
    assert cell_label_text(cell, analysis.models, analysis.confidence_threshold).endswith(REVIEWED_MARK)
    x0, y0, x1, y1 = cell.bbox
    # the label sits above the box; a reviewed contour is drawn a pixel thicker
    region = (slice(max(y0 - 30, 0), y1 + 5), slice(max(x0 - 5, 0), x1 + 5))
    assert not np.array_equal(before[region], after[region])
    assert contour_colour_share(after, cell, class_rgb(new)) > 0.5
    assert contour_colour_share(after, cell, class_rgb(before_label)) < 0.2
    # nothing else changes: only the cell's contour and its label (above the box, maybe wider)
    ys, xs = np.nonzero(np.any(before != after, axis=2))
    assert ys.min() >= region[0].start and ys.max() < region[0].stop
    assert xs.min() >= region[1].start and xs.max() < max(region[1].stop, x0 + 400)


def test_bundled_samples_agree_everywhere(tmp_path: Path):
    assert len(SAMPLES) == 4
    called = check_agreement(SAMPLES, tmp_path)
    assert called >= 4  # every sample has a classified white cell
    doc = json.loads((tmp_path / "out" / f"{SAMPLES[0].stem}.cells.json").read_text(encoding="utf-8"))
    check_a_review_changes_the_overlay(SAMPLES[0], Analysis.from_dict(doc))


@pytest.mark.real_data
def test_bccd_fields_agree_everywhere(data_dir: Path, tmp_path: Path):
    names = sorted((data_dir / "bccd" / "JPEGImages").glob("*.jpg"))[::26][:10]
    assert len(names) == 10
    assert check_agreement(names, tmp_path) >= 10
