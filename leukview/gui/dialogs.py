"""Small dialogs: the pixel size, the keyboard shortcuts (from the keymap), about."""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from leukview import __version__
from leukview.core.calibration import MAX_PIXEL_SIZE_UM, RBC_DIAMETER_UM, Calibration
from leukview.core.keymap import help_sections

__all__ = ["PixelSizeDialog", "about_html", "shortcuts_html"]


class PixelSizeDialog(QDialog):
    """Set the pixel size by hand, or estimate it from the red cells.

    Parameters
    ----------
    current : Calibration
        What is in effect now.
    rbc_diameter_px : float, optional
        The field's median red-cell diameter (the estimate is off without it).
    """

    def __init__(self, current: Calibration, rbc_diameter_px: float | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Pixel size")
        self.rbc_diameter_px = rbc_diameter_px
        self.estimated = current.estimated
        self.spin = QDoubleSpinBox()
        self.spin.setDecimals(4)
        self.spin.setRange(0.0, MAX_PIXEL_SIZE_UM)
        self.spin.setSingleStep(0.01)
        self.spin.setSuffix(" µm/px")
        self.spin.setSpecialValueText("unknown")
        self.spin.setValue(current.pixel_size_um or 0.0)
        self.spin.valueChanged.connect(self._edited)
        form = QFormLayout()
        form.addRow("Micrometres per pixel", self.spin)
        estimate = QPushButton(f"Estimate from red cells ({RBC_DIAMETER_UM} µm)")
        estimate.setEnabled(bool(rbc_diameter_px))
        estimate.setToolTip(
            f"Assumes the median red cell of this field is {RBC_DIAMETER_UM} µm across: a rough scale for a "
            "smear whose file does not say its pixel size."
        )
        estimate.clicked.connect(self._estimate)
        note = QLabel(
            "The scale bar, µm measurements and the report use this value. Calibrate with a stage "
            "micrometer for measurements you rely on."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(estimate)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def _estimate(self) -> None:
        if self.rbc_diameter_px:
            self.spin.blockSignals(True)
            self.spin.setValue(Calibration.from_rbc_diameter(self.rbc_diameter_px).pixel_size_um or 0.0)
            self.spin.blockSignals(False)
            self.estimated = True

    def _edited(self) -> None:
        self.estimated = False

    def value(self) -> float | None:
        return self.spin.value() or None

    def calibration(self) -> Calibration:
        """The chosen calibration; LeukViewError for an implausible value."""
        if self.estimated and self.rbc_diameter_px:
            return Calibration.from_rbc_diameter(self.rbc_diameter_px)
        return Calibration.from_user(self.value())


def shortcuts_html(classes: Sequence[str]) -> str:
    """The keyboard-shortcuts help, generated from the keymap and the class list."""
    parts = []
    for title, rows in help_sections(classes):
        body = "".join(
            f"<tr><td><b>{html.escape(keys)}</b>&nbsp;&nbsp;</td><td>{html.escape(text)}</td></tr>"
            for keys, text in rows
        )
        parts.append(f"<h3>{html.escape(title)}</h3><table>{body}</table>")
    return "".join(parts)


def about_html() -> str:
    return (
        f"<h3>LeukView {__version__}</h3><p>Offline blood-smear viewer: classical segmentation, "
        "ONNX white-cell classification with class-activation maps, review and report.</p>"
        "<p><b>Decision support only: not a diagnosis.</b></p>"
    )
