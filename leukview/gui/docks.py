"""The window's layout: the central view with its banner, the docks, the status bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QListWidget,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from .differential import DifferentialPanel
from .layers import LayersPanel
from .review import ReviewPanel
from .viewer import Overview

if TYPE_CHECKING:
    from leukview.core.document import ReviewDocument

    from .overlays import CellOverlay
    from .settings import AppSettings
    from .viewer import SlideView

__all__ = ["Docks", "WELCOME"]

WELCOME = (
    "<div style='text-align:center'><h2>LeukView</h2>"
    "<p>Open a blood-smear image: <b>File ▸ Open</b> (Ctrl+O), drop a file here,<br>"
    "or <b>File ▸ Open sample</b>.</p>"
    "<p style='color:gray'>Decision support only: not a diagnosis.</p></div>"
)


class Docks:
    """Builds the main window's widgets (a mixin of :class:`MainWindow`, which connects them)."""

    document: ReviewDocument
    settings: AppSettings
    view: SlideView
    overlay: CellOverlay

    def _build_central(self) -> None:
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "QLabel { background: #FFF4CE; color: #4A3B00; padding: 6px 10px; border-bottom: 1px solid #E0C060; }"
        )
        self.banner.setVisible(False)
        self.welcome = QLabel(WELCOME)
        self.welcome.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.welcome.setStyleSheet("QLabel { background: #303034; color: #DDD; }")
        stack_host = QWidget()
        self.stack = QStackedLayout(stack_host)
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.view)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(stack_host, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.overview = Overview()
        self.overview.navigate.connect(lambda p: self.view.centre_on(p))
        self.view.view_changed.connect(self.overview.set_visible_rect)
        self.overview_dock = self._dock("Overview", self.overview, left)
        self.layers = LayersPanel(self.overlay)
        self.layers.heat_mode_changed.connect(self._heat_mode_changed)
        self.layers.heat_opacity_changed.connect(self._heat_opacity_changed)
        self.layer_boxes = self.layers.boxes
        self.layers_dock = self._dock("Layers", self.layers, left)
        self.review = ReviewPanel(self.document)
        self.review.use_settings(self.settings)  # the thumbnail size the reviewer chose last
        self.review.crop = self.crop_for
        self.review.cell_selected.connect(self._review_selected)
        self.review.next_requested.connect(self.go_next)
        self.review.table.customContextMenuRequested.connect(self._table_menu)
        self.review.gallery.customContextMenuRequested.connect(self._gallery_menu)
        self.review_dock = self._dock("Review", self.review, right)
        self.differential = DifferentialPanel()
        self.differential.set_target(self.settings.target)
        self.differential.target_changed.connect(self._target_changed)
        self.differential_dock = self._dock("Differential count", self.differential, right)
        self.audit_list = QListWidget()
        self.audit_list.setAlternatingRowColors(True)
        self.audit_dock = self._dock("Audit log", self.audit_list, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.audit_dock.setVisible(False)
        self.splitDockWidget(self.review_dock, self.differential_dock, Qt.Orientation.Vertical)
        self.resizeDocks([self.review_dock], [470], Qt.Orientation.Horizontal)
        self.resizeDocks([self.overview_dock], [250], Qt.Orientation.Horizontal)
        # the review panel gets the height: its gallery shows more than one row of cells
        self.resizeDocks([self.review_dock, self.differential_dock], [600, 300], Qt.Orientation.Vertical)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_").lower())
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _build_status(self) -> None:
        bar = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_analysis)
        self.cursor_label = QLabel("")
        self.zoom_label = QLabel("")
        self.pixel_label = QLabel("")
        self.pixel_label.setToolTip("Image ▸ Set pixel size… to change it")
        self.models_label = QLabel("")
        self.models_label.setObjectName("modelsLabel")
        for widget in (self.progress, self.cancel_button, self.cursor_label, self.zoom_label, self.pixel_label,
                       self.models_label):  # fmt: skip
            bar.addPermanentWidget(widget)
