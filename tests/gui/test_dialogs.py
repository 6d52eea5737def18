"""The pixel-size dialog gives a calibration with its source; the help is the keymap's."""

from __future__ import annotations

import pytest

from leukview.core.calibration import RBC_DIAMETER_UM, Calibration
from leukview.core.errors import LeukViewError
from leukview.gui.dialogs import PixelSizeDialog, shortcuts_html

pytestmark = pytest.mark.gui


def test_pixel_size_by_hand_or_from_red_cells(qtbot):  # noqa: ANN001
    dialog = PixelSizeDialog(Calibration.unknown(), rbc_diameter_px=60.0)
    qtbot.addWidget(dialog)
    assert dialog.calibration() == Calibration.unknown()
    dialog._estimate()
    estimate = dialog.calibration()
    assert estimate.source == "rbc-estimate" and estimate.pixel_size_um == pytest.approx(RBC_DIAMETER_UM / 60.0)
    dialog.spin.setValue(0.2)  # typed: the user's value
    assert dialog.calibration() == Calibration.from_user(0.2)
    dialog.spin.setValue(0.0001)  # below any microscope: refused, not silently used
    with pytest.raises(LeukViewError):
        dialog.calibration()
    assert PixelSizeDialog(Calibration.from_user(0.3), None).spin.value() == pytest.approx(0.3)


def test_shortcuts_help_lists_class_keys_and_commands():
    text = shortcuts_html(["neutrophil", "lymphocyte", "artefact"])
    assert "<b>1</b>" in text and "classify as neutrophil" in text and "<b>0</b>" in text
    assert "N / Space" in text and "Enter" in text and "Ctrl+Shift+Z / Ctrl+Y" in text
