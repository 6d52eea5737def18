"""The Layers panel: which overlays show, the class-activation heatmap, classes on and off."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from leukview.core.analysis import ModelRun
from leukview.core.calls import display_name
from leukview.core.classes import abbreviation

from .cellinfo import class_colour
from .occlusion import MAP_KINDS
from .overlays import HEAT_MODES, CellOverlay

__all__ = ["HEAT_MODE_NAMES", "LayersPanel"]

LAYERS = (
    ("wbc", "White cells"),
    ("labels", "Labels (class, confidence)"),
    ("rbc", "Red cells"),
    ("platelets", "Platelets"),
    ("nuclei", "Nuclei outlines"),
)
HEAT_MODE_NAMES = {"off": "off", "selected": "selected cell", "all": "all cells (field)"}


class LayersPanel(QWidget):
    """Edits the overlay's options; says when the heatmap's mode or opacity changed (to store them)."""

    heat_mode_changed = Signal(str)
    heat_opacity_changed = Signal(float)
    map_kind_changed = Signal(str)  # "cam" or "occlusion" (gui.occlusion draws the latter)

    def __init__(self, overlay: CellOverlay, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overlay = overlay
        opts = overlay.options
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)

        shown = QGroupBox("Show")
        shown_layout = QVBoxLayout(shown)
        self.boxes: dict[str, QCheckBox] = {}
        for key, title in LAYERS:
            box = QCheckBox(title)
            box.setChecked(getattr(opts, key))
            box.toggled.connect(lambda on, k=key: self._set_layer(k, on))
            shown_layout.addWidget(box)
            self.boxes[key] = box
        layout.addWidget(shown)

        heat = QGroupBox("Heatmap (where the model looked)")
        heat_layout = QVBoxLayout(heat)
        self.heat_buttons = QButtonGroup(self)
        for mode, title in (("off", "Off"), ("selected", "Selected cell"), ("all", "All cells (field)")):
            button = QRadioButton(title)
            button.setChecked(opts.heat_mode == mode)
            button.setProperty("mode", mode)
            self.heat_buttons.addButton(button)
            heat_layout.addWidget(button)
        self.heat_buttons.buttonToggled.connect(self._heat_mode_toggled)
        self.heat_model = QComboBox()
        self.heat_model.addItem("Model behind each call", None)
        self.heat_model.currentIndexChanged.connect(self._heat_model_changed)
        heat_layout.addWidget(self.heat_model)
        self.map_kind = QComboBox()
        for kind, title in MAP_KINDS.items():
            self.map_kind.addItem(title, kind)
        self.map_kind.setToolTip("Map: the class-activation map (free with the call), or the occlusion map "
                                 "(what greying out each region does to the call; computed for the selected cell)")  # fmt: skip
        self.map_kind.currentIndexChanged.connect(self._map_kind_changed)
        heat_layout.addWidget(self.map_kind)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(int(opts.heat_opacity * 100))
        self.opacity.valueChanged.connect(self._opacity_changed)
        self.opacity.setToolTip("Heatmap opacity")
        opacity_row.addWidget(self.opacity, 1)
        heat_layout.addLayout(opacity_row)
        self.heat_note = QLabel("")
        self.heat_note.setWordWrap(True)
        self.heat_note.setStyleSheet("color: gray;")
        heat_layout.addWidget(self.heat_note)
        layout.addWidget(heat)

        # the lab's list may be long: two columns of codes in a scroll area, full names in the tooltips
        self.class_group = QGroupBox("Classes")
        group_layout = QVBoxLayout(self.class_group)
        group_layout.setContentsMargins(4, 4, 4, 4)
        holder = QWidget()
        self.class_layout = QGridLayout(holder)
        self.class_layout.setContentsMargins(0, 0, 0, 0)
        self.class_layout.setVerticalSpacing(2)
        scroll = QScrollArea()
        scroll.setWidget(holder)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setMinimumHeight(90)
        group_layout.addWidget(scroll)
        self.class_boxes: dict[str, QCheckBox] = {}
        layout.addWidget(self.class_group, 1)

    # -- layers -------------------------------------------------------------

    def _set_layer(self, key: str, on: bool) -> None:
        setattr(self.overlay.options, key, on)
        self.overlay.apply_options()

    def set_classes(self, classes: Sequence[str]) -> None:
        """One tick box per class (and unclassified), in the class's colour."""
        for box in self.class_boxes.values():
            self.class_layout.removeWidget(box)
            box.deleteLater()
        self.class_boxes = {}
        for index, name in enumerate([*classes, "unclassified"]):
            box = QCheckBox("unclassified" if name == "unclassified" else f"{abbreviation(name)}")
            box.setToolTip(display_name(name))
            box.setChecked(name not in self.overlay.options.hidden_classes)
            colour = "#D0D0D0" if name == "unclassified" else class_colour(name).name()
            box.setStyleSheet(
                "QCheckBox { color: palette(text); } "
                f"QCheckBox::indicator:checked {{ background: {colour}; border: 1px solid #555; }}"
            )
            box.toggled.connect(lambda on, n=name: self._set_class_visible(n, on))
            self.class_layout.addWidget(box, index // 2, index % 2)
            self.class_boxes[name] = box

    def _set_class_visible(self, name: str, on: bool) -> None:
        hidden = self.overlay.options.hidden_classes
        if on:
            hidden.discard(name)
        else:
            hidden.add(name)
        self.overlay.apply_options()

    # -- heatmap ------------------------------------------------------------

    @property
    def heat_mode(self) -> str:
        checked = self.heat_buttons.checkedButton()
        return str(checked.property("mode")) if checked is not None else self.overlay.options.heat_mode

    @property
    def kind(self) -> str:
        """The map shown: ``cam`` or ``occlusion``."""
        return str(self.map_kind.currentData())

    def set_map_kind(self, kind: str) -> None:
        self.map_kind.setCurrentIndex(max(self.map_kind.findData(kind), 0))

    def cycle_map_kind(self) -> str:
        """CAM -> occlusion -> CAM; returns the new kind."""
        self.map_kind.setCurrentIndex((self.map_kind.currentIndex() + 1) % self.map_kind.count())
        return self.kind

    def _map_kind_changed(self, _index: int) -> None:
        # the overlay draws CAMs only: while occlusion is chosen its own maps are off
        self.overlay.options.heat_mode = self.heat_mode if self.kind == "cam" else "off"
        if self.kind == "occlusion":
            self._cam_note = self.heat_note.text()
            self.heat_note.setText("Red: where greying out part of the cell lowers the model's call most "
                                   "(computed for the selected cell; a fraction of a second).")  # fmt: skip
        elif getattr(self, "_cam_note", None) is not None:
            self.heat_note.setText(self._cam_note)
        self.overlay.apply_options()
        self.map_kind_changed.emit(self.kind)

    def set_heat_mode(self, mode: str) -> None:
        for button in self.heat_buttons.buttons():
            if button.property("mode") == mode:
                button.setChecked(True)

    def cycle_heat_mode(self) -> str:
        """Off -> selected cell -> all cells -> off; returns the new mode."""
        modes = list(HEAT_MODES)
        self.set_heat_mode(modes[(modes.index(self.heat_mode) + 1) % len(modes)])
        return self.heat_mode

    def _heat_mode_toggled(self, button: QRadioButton, checked: bool) -> None:
        if checked:
            mode = str(button.property("mode"))
            self.overlay.options.heat_mode = mode if self.kind == "cam" else "off"
            self.overlay.apply_options()
            self.heat_mode_changed.emit(mode)

    def _heat_model_changed(self, _index: int) -> None:
        self.overlay.options.heat_model = self.heat_model.currentData()
        self.overlay.apply_options()

    def _opacity_changed(self, value: int) -> None:
        self.overlay.options.heat_opacity = value / 100.0
        self.overlay.apply_options()
        self.heat_opacity_changed.emit(value / 100.0)

    def set_heat_models(self, models: Sequence[ModelRun]) -> None:
        """The models whose maps can be shown, and a note on what the maps are."""
        self.heat_model.blockSignals(True)
        self.heat_model.clear()
        self.heat_model.addItem("Model behind each call", None)
        for run in models:
            self.heat_model.addItem(f"{run.name} {run.version}", run.name)
        self.heat_model.blockSignals(False)
        self.overlay.options.heat_model = None  # the combo shows its first entry again
        if not models:
            self.heat_note.setText("No model: no heatmap.")
        elif not self.overlay.has_heatmaps():
            self.heat_note.setText("These models give no class-activation maps.")
        else:
            self.heat_note.setText(
                "Red: where the model looked for its call; smooth, and faint away from the cell "
                "(beyond its outline grown by 15 % of its diameter). Off at every start; never in a "
                "report unless chosen for it."
            )
