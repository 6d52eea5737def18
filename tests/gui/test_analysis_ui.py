"""Analysing from the window: cancel, autosave, a newer image during an analysis, fields of large images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from leukview.core.preprocess import crop_box
from leukview.core.session import load_session, session_path
from leukview.gui.review_ui import GALLERY_RULE

pytestmark = pytest.mark.gui


def test_cancel_leaves_the_window_as_it_was_and_autosave_writes_the_session(qtbot, make_window, models_dir: Path, field: Path, dialogs):
    window = make_window(models_dir)
    assert window.open_image(field, analyse=False)
    assert window.session is None
    window.analyse()
    assert window.runner.busy and window.cancel_button.isVisible()
    window.cancel_analysis()
    qtbot.waitUntil(lambda: not window.runner.busy and not window.progress.isVisible(), timeout=60000)
    assert window.session is None and window.act_analyse.isEnabled()
    assert "cancelled" in window.statusBar().currentMessage()

    window._autosave_timer.setInterval(10)
    window.analyse()
    qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=60000)
    target = session_path(field)
    qtbot.waitUntil(target.is_file, timeout=5000)  # saved without asking, after the analysis
    cell_id = window.review.visible_order()[0]
    window.classify("monocyte", cell_id=cell_id)
    qtbot.waitUntil(lambda: load_session(target).cell(cell_id).review.label == "monocyte", timeout=5000)
    assert not window.dirty and not dialogs


def test_opening_another_image_during_analysis_drops_the_old_result(qtbot, make_window, models_dir: Path, field: Path, sample: Path, dialogs):
    window = make_window(models_dir)
    assert window.open_image(field)
    assert window.runner.busy
    assert window.open_image(sample)  # does not wait for the first analysis
    qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=60000)
    qtbot.wait(200)  # time for a stale result to arrive, if it could
    assert window.path == sample and window.analysis.image == str(sample)
    assert (window.analysis.width, window.analysis.height) == (640, 480)
    assert not session_path(field).exists() or load_session(session_path(field)).analysis.image == str(field)


def test_field_analysis_of_a_large_image_keeps_image_coordinates(qtbot, make_window, no_models: Path, mosaic):
    from leukview.core.segment import segment

    path, image = mosaic
    window = make_window(no_models)
    window.document.large_image_pixels = 1_000_000
    window.document.max_field_side = 800
    assert window.open_image(path, analyse=False)
    window.view.set_scale(1.0)
    window.view.centerOn(QPointF(1000, 700))
    window.analyse()
    qtbot.waitUntil(lambda: window.session is not None and not window.runner.busy, timeout=60000)
    x, y, w, h = window.document.settings.analysed_field
    assert w <= 800 and h <= 800
    assert x <= 1000 <= x + w and y <= 700 <= y + h
    assert (window.analysis.width, window.analysis.height) == (1920, 1440)
    expected = segment(np.ascontiguousarray(image[y : y + h, x : x + w])).cells
    got = window.analysis.cells
    assert len(got) == len(expected) > 0
    for a, b in zip(got, expected, strict=True):
        assert a.centroid == pytest.approx((b.centroid[0] + x, b.centroid[1] + y))
        assert a.bbox == (b.bbox[0] + x, b.bbox[1] + y, b.bbox[2] + x, b.bbox[3] + y)
    assert "Large image" in window.banner.text()
    # the gallery crops come from the file at the cells' image coordinates
    wbc = next(c for c in got if c.kind == "wbc")
    crop = window.crop_for(wbc)
    x0, y0, x1, y1 = crop_box(wbc, GALLERY_RULE)
    assert crop is not None and crop.shape[:2] == (y1 - y0, x1 - x0)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, 1920), min(y1, 1440)
    np.testing.assert_array_equal(crop[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], image[cy0:cy1, cx0:cx1])
    # the settings' live preview takes the same field (one rule for large images)
    requested: list[tuple[int, int]] = []
    window.preview.request = lambda field, params, offset: requested.append((offset, field.shape[:2]))
    window._settings_dialog = None
    from leukview.core.segment import SegmentationParams

    class Dialog:  # what the preview answers, without showing the dialog
        def show_preview_result(self, counts, error):  # noqa: ANN001
            pass

    window._settings_dialog = Dialog()
    window.view.centerOn(QPointF(1000, 700))
    px, py, pw, ph = window.document.analysis_field(window._visible_rect())
    assert pw <= 800 and ph <= 800  # the analysis's cap, not one of its own
    window._request_preview(SegmentationParams())
    assert requested == [((px, py), (ph, pw))]


def test_changed_settings_set_the_threshold_once_for_every_view(make_window, analysed, models_dir: Path, field: Path, dialogs):
    window = make_window(models_dir)
    analysed(window, field)
    window.settings.confidence_threshold = 0.99
    window.apply_settings({"threshold": True, "models": False, "segmentation": False})
    assert window.document.threshold == 0.99 == window.session.settings.confidence_threshold
    assert window.document.defaults.confidence_threshold == 0.99  # the next image starts with it
    assert window.session.audit[-1].detail == {"confidence_threshold": 0.99}
    model = window.review.model
    assert all(model.index(r, 0).data() in ("⚑ check", "✓ reviewed") for r in range(model.rowCount()))
