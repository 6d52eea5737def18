"""The slide view: zoom about the cursor, keys, and a scale bar from the calibration."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from leukview.core.calibration import Calibration
from leukview.gui.tiles import ArrayTileSource
from leukview.gui.viewer import nice_length

pytestmark = pytest.mark.gui


def test_wheel_zooms_about_the_cursor_and_keys_navigate(qtbot, make_window, no_models: Path, sample: Path):
    window = make_window(no_models)
    assert window.open_image(sample, analyse=False)
    assert isinstance(window.source, ArrayTileSource)
    qtbot.wait(50)  # the deferred fit after opening
    view = window.view
    view.fit()
    fit = view.scale_factor
    assert fit == pytest.approx(view.fit_scale() * 0.98, rel=1e-3)
    cursor = QPoint(view.viewport().width() // 3, view.viewport().height() // 3)
    under = view.mapToScene(cursor)
    event = QWheelEvent(
        QPointF(cursor), QPointF(view.viewport().mapToGlobal(cursor)), QPoint(0, 0), QPoint(0, 240),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    view.wheelEvent(event)
    assert view.scale_factor == pytest.approx(fit * 1.0015**240)
    after = view.mapToScene(cursor)
    assert abs(after.x() - under.x()) < 2 / view.scale_factor + 0.5
    assert abs(after.y() - under.y()) < 2 / view.scale_factor + 0.5

    view.setFocus()
    centre = view.visible_rect().center()
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.visible_rect().center().x() > centre.x()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.visible_rect().center().y() > centre.y()
    window.activateWindow()
    scale = view.scale_factor
    window.act_zoom_out.trigger()
    assert view.scale_factor == pytest.approx(scale * 0.8)
    window.act_actual.trigger()
    assert view.scale_factor == pytest.approx(1.0)
    window.act_fit.trigger()
    assert view.scale_factor == pytest.approx(fit)


def test_the_scale_bar_follows_the_documents_calibration(make_window, no_models: Path, sample: Path):
    window = make_window(no_models)
    assert window.open_image(sample, analyse=False)
    view = window.view
    assert not view.calibration.known and "unknown" in window.pixel_label.text()
    window.set_calibration(Calibration.from_user(0.1))
    assert view.calibration.pixel_size_um == 0.1 and "0.1 µm/px (set by the user)" in window.pixel_label.text()
    window.set_calibration(Calibration.from_rbc_diameter(75.0))
    assert view.calibration.estimated and "estimated from red cells" in window.pixel_label.text()
    assert (nice_length(137.0), nice_length(420.0), nice_length(9.9)) == (100.0, 200.0, 5.0)
